"""Hostile clients: slow headers, slow bodies and idle keep-alive connections are cut after their
timeouts; connections past --max-connections get a fast 503; thousands of idle connections do
not exhaust descriptors; a client that reads its stream too slowly is cut and its job cancelled.
After each, the server keeps serving."""

from __future__ import annotations

import json
import resource
import select
import socket
import subprocess
import time

import pytest

from llmq_e2e import LONG_PROMPT, LlmqServer, llmq_bin, model_path
from metrics_util import promtool_problems, scrape
from raw_http import build_request
from sse_client import stream_request

# Timeouts of the `strict` server, small so that the tests are quick; the margins on the other
# side are wide (a loaded 2-core machine), so a test fails only when a cut is far off.
HEADER_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 1.5
IDLE_TIMEOUT_S = 1.0
LATE_MARGIN_S = 3.0
EARLY_MARGIN_S = 0.2

CLOSED = "llmq_connections_closed_total"
REJECTED = "llmq_requests_rejected_total"


@pytest.fixture(scope="module")
def strict(tmp_path_factory, _prerequisites):
    s = LlmqServer(tmp_path_factory.mktemp("llmq-hostile"), {
        "header_timeout_ms": int(HEADER_TIMEOUT_S * 1000),
        "body_timeout_ms": int(BODY_TIMEOUT_S * 1000),
        "idle_timeout_ms": int(IDLE_TIMEOUT_S * 1000),
    }, name="strict")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def connect(srv: LlmqServer, *, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((srv.host, srv.port))
    return s


def closed_by_server(s: socket.socket, wait: float) -> bool:
    """True when the server closed (EOF or reset) within `wait` s. Reads and drops any data."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([s], [], [], left)
        if not ready:
            return False
        try:
            if s.recv(65536) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True


def dribble_until_closed(s: socket.socket, data: bytes, interval: float, limit: float) -> float:
    """Sends `data` a byte every `interval` s, from now; returns the seconds until the server
    closed. Fails when it has not closed after `limit` s (or all bytes went out)."""
    t0 = time.monotonic()
    for byte in data:
        try:
            s.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        if closed_by_server(s, interval):
            return time.monotonic() - t0
        assert time.monotonic() - t0 < limit, f"still open after {limit:.1f} s of dribbling"
    raise AssertionError("every byte was sent and the server did not close")


def read_response(s: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    """One Content-Length response: status line, lower-case headers, body."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = s.recv(65536)
        assert chunk, f"closed before a response: {raw!r}"
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = s.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return lines[0].encode(), headers, body


def wait_for_metric(srv: LlmqServer, pred, what: str, within: float = 30.0):
    deadline = time.monotonic() + within
    while True:
        m = scrape(srv.base_url)
        if pred(m):
            return m
        assert time.monotonic() < deadline, f"{what}: not within {within:.0f} s"
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Timeouts


def test_slow_headers_are_cut_after_the_header_timeout(strict):
    before = scrape(strict.base_url).get(CLOSED, reason="header_timeout")
    s = connect(strict)
    with s:
        head = build_request("GET", "/healthz", headers=[("X-Padding", "a" * 200)],
                             content_type=None)
        t = dribble_until_closed(s, head, 0.1, HEADER_TIMEOUT_S + LATE_MARGIN_S)
    assert HEADER_TIMEOUT_S - EARLY_MARGIN_S <= t, f"cut after {t:.2f} s, before the timeout"
    m = scrape(strict.base_url)
    assert m.get(CLOSED, reason="header_timeout") == before + 1
    strict.assert_serving()


def test_a_silent_connection_is_cut_after_the_header_timeout(strict):
    s = connect(strict)
    with s:
        t0 = time.monotonic()
        assert closed_by_server(s, HEADER_TIMEOUT_S + LATE_MARGIN_S), "never closed"
        t = time.monotonic() - t0
    assert t >= HEADER_TIMEOUT_S - EARLY_MARGIN_S, f"cut after {t:.2f} s, before the timeout"
    strict.assert_serving()


def test_slow_body_is_cut_after_the_body_timeout(strict):
    before = scrape(strict.base_url).get(CLOSED, reason="body_timeout")
    body = json.dumps({"prompt": "Hello " * 40, "max_tokens": 1}).encode()
    data = build_request("POST", "/api/v1/req", body=body)
    head_len = data.index(b"\r\n\r\n") + 4
    s = connect(strict)
    with s:
        s.sendall(data[:head_len])  # the headers at once: the header timeout is not the one
        t = dribble_until_closed(s, data[head_len:], 0.1, BODY_TIMEOUT_S + LATE_MARGIN_S)
    assert t >= BODY_TIMEOUT_S - EARLY_MARGIN_S, f"cut after {t:.2f} s, before the timeout"
    assert scrape(strict.base_url).get(CLOSED, reason="body_timeout") == before + 1
    strict.assert_serving()


def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout(strict):
    before = scrape(strict.base_url).get(CLOSED, reason="idle_timeout")
    keep_alive = build_request("GET", "/healthz", headers=[("Connection", "keep-alive")],
                               content_type=None)
    s = connect(strict)
    with s:
        s.sendall(keep_alive)
        assert b" 200 " in read_response(s)[0]
        # Used again within the idle timeout, it still answers ...
        time.sleep(IDLE_TIMEOUT_S / 3)
        s.sendall(keep_alive)
        assert b" 200 " in read_response(s)[0]
        # ... and left idle, it is closed.
        t0 = time.monotonic()
        assert closed_by_server(s, IDLE_TIMEOUT_S + LATE_MARGIN_S), "idle connection never closed"
        t = time.monotonic() - t0
    assert t >= IDLE_TIMEOUT_S - EARLY_MARGIN_S, f"closed after {t:.2f} s, before the timeout"
    assert scrape(strict.base_url).get(CLOSED, reason="idle_timeout") == before + 1


def test_connection_metrics_are_clean_for_promtool(strict):
    m = scrape(strict.base_url)
    assert promtool_problems(m.text) == []
    assert m.types.get(CLOSED) == "counter"
    assert m.types.get("llmq_connections_open") == "gauge"
    for reason in ("header_timeout", "body_timeout", "idle_timeout", "send_timeout",
                   "slow_reader"):
        assert m.has(CLOSED, reason=reason), reason
    assert m.has(REJECTED, reason="too_many_connections")
    assert m.get("llmq_connections_open") >= 1  # this scrape's own
    assert m.get("llmq_connections_max") == 1024


# --------------------------------------------------------------------------------------------
# Connection limits


def test_connections_past_the_limit_get_a_fast_503(llmq_factory):
    limit, extra = 20, 10
    srv = llmq_factory.start(max_connections=limit, header_timeout_ms=60000)
    socks, times = [], []
    try:
        for _ in range(limit + extra):
            times.append(time.monotonic())
            socks.append(connect(srv))
        # The first `limit` are served (they wait for a request); the others are answered at
        # once, before they send anything.
        ready, _, _ = select.select(socks[:limit], [], [], 1.0)
        assert not ready, f"{len(ready)} connections within the limit were answered or closed"
        for s, t0 in zip(socks[limit:], times[limit:]):
            status, headers, body = read_response(s)
            waited = time.monotonic() - t0
            assert b" 503 " in status, status
            assert waited < 2.0, f"the 503 took {waited:.2f} s"
            assert headers.get("connection", "").lower() == "close", headers
            assert headers.get("retry-after"), headers
            assert json.loads(body)["error"]["code"] == "too_many_connections", body
            assert closed_by_server(s, 5.0), "closed after the 503"
    finally:
        for s in socks:
            s.close()
    m = wait_for_metric(srv, lambda m: m.get("llmq_connections_open") <= 1,
                        "the held connections released", within=10)
    assert m.get(REJECTED, reason="too_many_connections") == extra
    assert m.get("llmq_requests_total", route="other", code="503") == extra
    srv.assert_serving()


def test_thousands_of_idle_connections_do_not_exhaust_descriptors(llmq_factory):
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 500
    if soft < want:
        assert hard == resource.RLIM_INFINITY or hard >= want, (
            f"this test needs {want} descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                    else want, hard))
    srv = llmq_factory.start(max_connections=n + 100, header_timeout_ms=60000)
    socks = []
    try:
        for _ in range(n):
            socks.append(connect(srv))
        m = wait_for_metric(srv, lambda m: m.get("llmq_connections_open") >= n + 1,
                            f"{n} idle connections open", within=20)
        assert m.get("process_open_fds") > n
        assert m.get("process_max_fds") > n + 100
        srv.assert_serving()
    finally:
        for s in socks:
            s.close()
    wait_for_metric(srv, lambda m: m.get("llmq_connections_open") <= 1,
                    "the idle connections released", within=20)


def test_max_connections_is_clamped_to_the_open_file_limit(tmp_path):
    """With a hard limit of 256 descriptors, --max-connections 5000 cannot be honoured: the
    server says so and serves fewer. (Reads the start-up log only; stopped before the model.)"""
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    p = subprocess.Popen(
        [str(llmq_bin()), "serve", "--model", str(model_path()), "--port", "0",
         "--max-connections", "5000", "--spool-dir", str(tmp_path / "spool")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=low_limit, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "at most" in line and "connections" in line and "open-file limit" in line:
                break
    finally:
        p.kill()
        p.wait()
    log = "".join(lines)
    assert "--max-connections 5000 does not fit the open-file limit 256" in log, log
    assert "at most 127 connections" in log, log


# --------------------------------------------------------------------------------------------
# Slow readers


def test_slow_reader_is_cut_and_its_job_cancelled(llmq_factory):
    """A client that never reads its stream: once 4 KiB wait unread, the server cancels the job
    (the slot frees at once) and closes the connection, instead of buffering the whole
    generation for it."""
    srv = llmq_factory.start(slots=1, max_stream_buffer_bytes=4096)
    before = scrape(srv.base_url)
    body = json.dumps({"prompt": LONG_PROMPT, "max_tokens": 1900, "temperature": 0}).encode()
    s = connect(srv, rcvbuf=1024)  # the kernel rounds it up to its minimum
    with s:
        s.sendall(build_request("POST", "/api/v1/req", body=body))
        m = wait_for_metric(srv, lambda m: m.get(CLOSED, reason="slow_reader") >= 1,
                            "the slow reader cut", within=60)
        t_cut = time.monotonic()
        # What the client's socket holds, then the reset: never the end of the stream.
        received, ended = b"", True
        s.settimeout(5)
        try:
            while chunk := s.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            ended = False
        assert ended, "the connection of the cut client is still open"
        assert b"event: done" not in received
    assert m.get(CLOSED, reason="slow_reader") == 1
    assert "reads too slowly" in srv.stdout_path.read_text(errors="replace")
    # The job was cancelled: the one slot takes the next request at once.
    b = stream_request(srv.base_url, {"prompt": "Hello", "max_tokens": 4, "temperature": 0})
    assert b.started.t - t_cut < 5.0, "the slow reader's job kept the slot"
    after = scrape(srv.base_url)
    generated = (after.get("llmq_generated_tokens_total", model=model_path().stem)
                 - before.get("llmq_generated_tokens_total", model=model_path().stem))
    assert generated < 1900, f"the cut job generated {generated:.0f} tokens: it ran to its end"
    rss_growth = (after.get("process_resident_memory_bytes")
                  - before.get("process_resident_memory_bytes"))
    assert rss_growth < 64 << 20, f"RSS grew by {rss_growth / 2**20:.0f} MiB"
