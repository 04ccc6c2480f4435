"""Shared helpers of the llmq end-to-end suite: locating the binary and model, starting a server,
parsing its SSE streams, checking the stream grammar of the contract, and raw-socket HTTP.

Everything here talks to a real `llmq serve` process over TCP; nothing is mocked.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]

# Flags every server of the suite gets unless a test overrides them. `threads` 2: the machine
# has 2 cores. ctx-size is per slot.
DEFAULT_FLAGS: dict[str, Any] = {
    "threads": 2,
    "slots": 2,
    "ctx_size": 2048,
    "queue_max": 16,
    "ping_interval_ms": 200,
    "drain_timeout_ms": 3000,  # below STOP_TIMEOUT_S: a test's stop() never waits for a long job
    # Models stay loaded however long a server idles (the shared one does, while other tests
    # run): a test meets a cold start only where it asks for one (test_warm_pool.py).
    "keep_alive": "-1",
}

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

# A plain-completion prompt the model continues for a long time under greedy decoding (it keeps
# counting), so a request with a large max_tokens really runs long and does not end by an
# end-of-generation token after a few words. Used wherever a test needs a "long" job.
LONG_PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


def pick_stop_word(text: str) -> str:
    """A word of the text (3+ letters) whose first occurrence is past its first third, so that
    several pieces stream before the stop string and it likely spans more than one token."""
    for w in text.split():
        w = w.strip(".,;:!?\"'()")
        if len(w) >= 3 and text.find(w) >= len(text) // 3:
            return w
    raise AssertionError(f"no usable stop word in {text!r}")


# --------------------------------------------------------------------------------------------
# Locating what the suite runs


def llmq_bin() -> Path:
    return Path(os.environ.get("LLMQ_BIN") or REPO / "build" / "release" / "llmq")


@functools.cache
def sanitized_build() -> bool:
    """Whether the binary under test is built with AddressSanitizer (scripts/test.sh runs the
    suite against one too): its timings then measure the instrumentation, not llmq."""
    return b"__asan_init" in llmq_bin().read_bytes()


def model_path() -> Path:
    if os.environ.get("LLMQ_MODEL"):
        return Path(os.environ["LLMQ_MODEL"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "llmq" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_name() -> str:
    """The name the server gives its model: the GGUF file stem."""
    return model_path().stem


def missing_prerequisites() -> list[str]:
    """Human-readable reasons the suite cannot run; empty when it can."""
    problems = []
    b = llmq_bin()
    if not b.is_file():
        problems.append(
            f"llmq binary not found at {b} (build it, or set LLMQ_BIN to its path)"
        )
    elif not os.access(b, os.X_OK):
        problems.append(f"llmq binary at {b} is not executable")
    m = model_path()
    if not m.is_file():
        problems.append(
            f"model not found at {m} (run the set-up, or set LLMQ_MODEL to a GGUF file)"
        )
    return problems


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an llmq process: ours minus every LLMQ_* variable (LLMQ_BIN,
    LLMQ_MODEL, ... are the suite's own settings, and would otherwise silently configure the
    server), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_")}
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def flags_to_args(flags: dict[str, Any]) -> list[str]:
    """{"ctx_size": 2048} -> ["--ctx-size", "2048"]; a switch {"elastic_setup": True} ->
    ["--elastic-setup"] (False and None leave the flag out)."""
    args = []
    for name, value in flags.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


# --------------------------------------------------------------------------------------------
# A running server


class LlmqServer:
    """One `llmq serve` process on a free port. stdout and stderr go to files in `log_dir`."""

    def __init__(self, log_dir: Path, flags: dict[str, Any] | None = None, name: str = "llmq",
                 *, env: dict[str, str] | None = None, args: list[str] | None = None,
                 port: int | None = None):
        """`flags` override DEFAULT_FLAGS. `args`, when given, replaces the whole command line
        after the binary (then `port` must say where the server will listen); `env` adds
        LLMQ_* variables to the server's environment."""
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.flags = {**DEFAULT_FLAGS, **(flags or {})}
        self.name = name
        # Request documents go to a spool per server, not to the user's cache (a test's own
        # env or --spool-dir still wins).
        self.env = {"LLMQ_SPOOL_DIR": str(log_dir / f"{name}-{self.port}-spool"), **(env or {})}
        self.args = args
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log_dir / f"{name}-{self.port}.stderr.log"
        self.stdout_path = log_dir / f"{name}-{self.port}.stdout.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def req_url(self) -> str:
        return self.base_url + "/api/v1/req"

    def argv(self) -> list[str]:
        if self.args is not None:
            return [str(llmq_bin()), *self.args]
        return [
            str(llmq_bin()), "serve",
            "--model", str(model_path()),
            "--host", self.host,
            "--port", str(self.port),
            *flags_to_args(self.flags),
        ]

    def start(self) -> "LlmqServer":
        self.spawn()
        self.wait_ready()
        return self

    def spawn(self) -> "LlmqServer":
        """Starts the process without waiting for it to be ready."""
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=server_env(self.env), start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"llmq exited with code {self.proc.returncode} before it was ready\n"
                    f"argv: {' '.join(self.argv())}\n--- stderr ---\n{self.stderr_text()}"
                )
            try:
                r = httpx.get(self.base_url + "/readyz", timeout=2.0)
                if r.status_code == 200:
                    return
                last = f"/readyz answered {r.status_code}"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.1)
        raise AssertionError(
            f"llmq not ready within {timeout:.0f} s ({last})\n"
            f"argv: {' '.join(self.argv())}\n--- stderr ---\n{self.stderr_text()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self, tail_lines: int | None = None) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        if tail_lines is not None:
            text = "\n".join(text.splitlines()[-tail_lines:])
        return text

    def log_text(self) -> str:
        """Everything the server wrote: its log (stdout) and its stderr."""
        try:
            return self.stdout_path.read_text(errors="replace") + self.stderr_text()
        except FileNotFoundError:
            return self.stderr_text()

    def assert_serving(self) -> None:
        """The server still answers: /healthz is 200 and a one-token request completes."""
        assert self.alive(), f"llmq died (exit code {self.proc.returncode})"
        r = httpx.get(self.base_url + "/healthz", timeout=10.0)
        assert r.status_code == 200, f"/healthz answered {r.status_code}: {r.text!r}"
        r = httpx.post(
            self.req_url,
            json={"prompt": "Hello", "max_tokens": 1, "temperature": 0, "stream": False},
            timeout=60.0,
        )
        assert r.status_code == 200, f"a normal request got {r.status_code}: {r.text!r}"
        assert r.json()["usage"]["completion_tokens"] >= 0
