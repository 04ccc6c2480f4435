"""The command line and the process: help, usage errors, a missing model, LLMQ_* variables,
the health endpoints, SIGTERM."""

from __future__ import annotations

from pathlib import Path

import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from llmq_e2e import LONG_PROMPT, free_port, llmq_bin, model_path, port_is_listening, server_env
from sse_client import OpenStream

# Flag -> the spellings its default may take in the help (per src/cli/config.h, README.md).
FLAG_DEFAULTS = {
    "--host": ["127.0.0.1"],
    "--port": ["8080"],
    "--slots": ["4"],
    "--threads": ["0", "all cores"],
    "--ctx-size": ["4096"],
    "--batch-size": ["512"],
    "--queue-max": ["64"],
    "--ping-interval-ms": ["1000"],
    "--timeout-ms": ["600000"],
    "--default-max-tokens": ["256"],
    "--max-body-bytes": ["1048576", "1 MiB", "1MiB"],
    "--max-header-bytes": ["16384", "16 KiB", "16KiB"],
    "--header-timeout-ms": ["10000"],
    "--body-timeout-ms": ["30000"],
    "--idle-timeout-ms": ["60000"],
    "--send-timeout-ms": ["60000"],
    "--max-connections": ["1024"],
    "--max-stream-buffer-bytes": ["1048576", "1 MiB", "1MiB"],
}


def run_watching_port(argv: list[str], port: int, env: dict | None = None,
                      timeout: float = 30.0) -> tuple[subprocess.CompletedProcess, bool]:
    """Runs llmq to its end; also reports whether anything listened on `port` meanwhile."""
    p = subprocess.Popen([str(llmq_bin()), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=server_env(env))
    listened = False
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        listened |= port_is_listening(port)
        time.sleep(0.05)
    if p.poll() is None:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"llmq {' '.join(argv)} still running after {timeout:.0f} s; "
                             f"stderr: {err.decode(errors='replace')!r}")
    out, err = p.communicate()
    return subprocess.CompletedProcess(argv, p.returncode, out, err), listened


def one_stderr_line(cp: subprocess.CompletedProcess) -> str:
    text = cp.stderr.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"want exactly one line on stderr, got {len(lines)}:\n{text}"
    return lines[0]


def test_help_lists_flags_with_defaults(_prerequisites):
    cp = subprocess.run([str(llmq_bin()), "serve", "--help"], capture_output=True, timeout=30,
                        env=server_env())
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.decode().splitlines()
    for flag, defaults in FLAG_DEFAULTS.items():
        idx = [i for i, line in enumerate(lines) if re.search(re.escape(flag) + r"(?![\w-])", line)]
        assert idx, f"{flag} missing from `llmq serve --help`:\n" + "\n".join(lines)
        # The flag's entry: its line and the continuation lines up to the next flag.
        entry = [lines[idx[0]]]
        for line in lines[idx[0] + 1:]:
            if line.strip().startswith("-") or not line.strip():
                break
            entry.append(line)
        entry_text = " ".join(entry)
        assert any(re.search(r"(?<![\w.])" + re.escape(d) + r"(?![\w.])", entry_text)
                   for d in defaults), f"{flag}: default {defaults[0]} not shown in {entry_text!r}"
    assert "--model" in cp.stdout.decode()


@pytest.mark.parametrize("extra, culprit", [
    (["--no-such-flag"], "no-such-flag"),
    (["--slots", "abc"], "slots"),
    (["--slots", "0"], "slots"),
    (["--ctx-size", "-1"], "ctx.size"),
    (["--port", "70000"], "port"),
    (["--queue-max"], "queue.max"),           # the value is missing
    (["--cors-origins", "*", "--cors-credentials"], "credentials"),
    (["--cors-origins", "https://app.example/"], "app.example/"),
], ids=["unknown_flag", "slots_not_a_number", "slots_zero", "ctx_size_negative",
        "port_out_of_range", "value_missing", "cors_star_with_credentials", "cors_origin_with_path"])
def test_bad_flag_exits_with_one_line(extra, culprit, _prerequisites):
    port = free_port()
    argv = ["serve", "--model", str(model_path()), "--port", str(port), "--threads", "2"]
    if extra[0] == "--port":
        argv = argv[:3] + ["--threads", "2"]  # let the bad --port be the only one
    cp, listened = run_watching_port(argv + extra, port)
    assert cp.returncode != 0
    line = one_stderr_line(cp)
    assert re.search(culprit, line, re.IGNORECASE), f"the error does not name {culprit!r}: {line!r}"
    assert not listened, "llmq listened although its command line was bad"


def test_missing_model_exits_with_one_line(_prerequisites, tmp_path):
    port = free_port()
    missing = tmp_path / "nowhere" / "no-such-model.gguf"
    cp, listened = run_watching_port(
        ["serve", "--model", str(missing), "--port", str(port), "--threads", "2"], port)
    assert cp.returncode != 0
    line = one_stderr_line(cp)
    assert "no-such-model.gguf" in line, f"the error does not name the file: {line!r}"
    assert not listened


def test_corrupt_model_exits_non_zero(_prerequisites, tmp_path):
    """A file that is not a GGUF model: llmq must exit non-zero and never become ready."""
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"this is not a gguf file\n" * 1000)
    port = free_port()
    p = subprocess.Popen([str(llmq_bin()), "serve", "--model", str(bad), "--port", str(port),
                          "--threads", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=server_env())
    try:
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                assert r.status_code != 200, "ready with a corrupt model"
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert p.poll() is not None, "llmq still running 60 s after being given a corrupt model"
        assert p.returncode != 0
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_port_from_environment(llmq_factory):
    port = free_port()
    srv = llmq_factory.create(
        "env-port", port=port, env={"LLMQ_PORT": str(port)},
        args=["serve", "--model", str(model_path()), "--threads", "2", "--slots", "1"])
    srv.start()  # waits for /readyz on `port`
    assert httpx.get(srv.base_url + "/healthz", timeout=10).status_code == 200


def test_flag_beats_environment(llmq_factory):
    env_port, flag_port = free_port(), free_port()
    srv = llmq_factory.create(
        "flag-port", port=flag_port, env={"LLMQ_PORT": str(env_port)},
        args=["serve", "--model", str(model_path()), "--threads", "2", "--slots", "1",
              "--port", str(flag_port)])
    srv.start()
    assert not port_is_listening(env_port), "listening on the environment's port too"


def test_all_settings_from_environment(llmq_factory):
    """Multi-word flags map to LLMQ_CTX_SIZE etc.; even the model comes from LLMQ_MODEL."""
    port = free_port()
    srv = llmq_factory.create("env-all", port=port, args=["serve"], env={
        "LLMQ_MODEL": str(model_path()), "LLMQ_PORT": str(port), "LLMQ_HOST": "127.0.0.1",
        "LLMQ_THREADS": "2", "LLMQ_SLOTS": "1", "LLMQ_CTX_SIZE": "128",
    })
    srv.start()
    # max_tokens is bounded by the context size, 128 here.
    r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 129, "stream": False},
                   timeout=30)
    assert r.status_code == 400, f"LLMQ_CTX_SIZE=128 ignored? {r.status_code}: {r.text}"
    assert r.json()["error"].get("field") == "max_tokens", r.text
    r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 2, "stream": False},
                   timeout=30)
    assert r.status_code == 200, r.text


def test_health_endpoints(server):
    assert httpx.get(server.base_url + "/healthz", timeout=10).status_code == 200
    assert httpx.get(server.base_url + "/readyz", timeout=10).status_code == 200
    r = httpx.get(server.base_url + "/no-such-route", timeout=10)
    assert r.status_code == 404 and "error" in r.json(), r.text


def test_sigterm_without_drain_ends_streams_and_exits(llmq_factory):
    """--drain-timeout-ms 0: every open stream still ends with a terminal event (the waiting job
    with error shutting_down), and the process exits 0 promptly."""
    srv = llmq_factory.start(slots=1, ctx_size=2048, drain_timeout_ms=0)
    long = {"prompt": LONG_PROMPT, "max_tokens": 300, "temperature": 0}
    a = OpenStream(srv.base_url, long)
    b = None
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        b = OpenStream(srv.base_url, long)
        b.read_until(lambda e: e.event == "queued", "B queued")

        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        with ThreadPoolExecutor(2) as pool:
            sa, sb = pool.map(lambda s: s.read_all(), (a, b))
        assert sa.terminal.event == "error" and sa.terminal.data["code"] == "shutting_down", sa.terminal
        assert sb.terminal.event == "error", f"waiting job got {sb.terminal.event}: {sb.terminal.data}"
        assert sb.terminal.data["code"] == "shutting_down", sb.terminal.data
        try:
            rc = srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError("llmq still running 15 s after SIGTERM") from None
        assert rc == 0, f"exit code {rc} after SIGTERM"
        assert time.monotonic() - t0 < 5
    finally:
        a.close()
        if b:
            b.close()


def test_sigterm_drains_running_and_queued_jobs(llmq_factory):
    """SIGTERM during a generation: /readyz turns 503, a new request gets 503 shutting_down at
    once, the running job and the one waiting behind it both complete, and the process exits 0."""
    srv = llmq_factory.start(slots=1, ctx_size=2048, drain_timeout_ms=60000)
    body = {"prompt": LONG_PROMPT, "max_tokens": 120, "temperature": 0}
    a = OpenStream(srv.base_url, body)
    b = None
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        b = OpenStream(srv.base_url, body)
        b.read_until(lambda e: e.event == "queued", "B queued")
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while httpx.get(srv.base_url + "/readyz", timeout=5).status_code != 503:
            assert time.monotonic() < deadline, "/readyz still 200 while draining"
            time.sleep(0.05)
        r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 2, "stream": False}, timeout=10)
        assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down", r.text
        assert "retry-after" in r.headers
        with ThreadPoolExecutor(2) as pool:
            sa, sb = pool.map(lambda s: s.read_all(), (a, b))
        assert sa.terminal.event == "done", sa.terminal
        assert sb.terminal.event == "done", f"the queued job got {sb.terminal.event}: {sb.terminal.data}"
        assert sa.terminal.data["usage"]["completion_tokens"] == 120
        assert srv.proc.wait(30) == 0
    finally:
        a.close()
        if b:
            b.close()


def test_drain_timeout_ends_what_remains(llmq_factory):
    srv = llmq_factory.start(slots=1, ctx_size=2048, drain_timeout_ms=1500)
    a = OpenStream(srv.base_url, {"prompt": LONG_PROMPT, "max_tokens": 1500, "temperature": 0})
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        sa = a.read_all()
        took = time.monotonic() - t0
        assert sa.terminal.event == "error" and sa.terminal.data["code"] == "shutting_down", sa.terminal
        assert 1.2 < took < 10, f"the running job ended {took:.1f} s after SIGTERM"
        assert srv.proc.wait(15) == 0
    finally:
        a.close()


def test_a_second_signal_cuts_the_drain_short(llmq_factory):
    srv = llmq_factory.start(slots=1, ctx_size=2048, drain_timeout_ms=600000)
    a = OpenStream(srv.base_url, {"prompt": LONG_PROMPT, "max_tokens": 1500, "temperature": 0})
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        srv.proc.send_signal(signal.SIGINT)
        sa = a.read_all()
        assert sa.terminal.event == "error" and sa.terminal.data["code"] == "shutting_down", sa.terminal
        assert srv.proc.wait(15) == 0
    finally:
        a.close()


def test_decode_threads_run_at_worker_nice(llmq_factory):
    """--worker-nice: the decode thread and the compute threads it starts run at that niceness;
    the HTTP thread (the process's main thread here) stays at 0, so it answers refusals and
    pings without waiting for a core."""
    srv = llmq_factory.start(worker_nice=7, threads=2)
    r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 4, "stream": False}, timeout=60)
    assert r.status_code == 200, r.text
    nice = {}
    for task in Path(f"/proc/{srv.proc.pid}/task").iterdir():
        stat = (task / "stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        nice[int(task.name)] = int(fields[16])  # field 19 of stat: nice
    assert nice[srv.proc.pid] == 0, nice
    assert sum(1 for n in nice.values() if n == 7) >= 2, f"decode and compute threads: {nice}"
