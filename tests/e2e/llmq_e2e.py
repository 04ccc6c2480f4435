"""Shared helpers of the llmq end-to-end suite: locating the binary and model, starting a server,
parsing its SSE streams, checking the stream grammar of the contract, and raw-socket HTTP.

Everything here talks to a real `llmq serve` process over TCP; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

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
}

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

# A plain-completion prompt the model continues for a long time under greedy decoding (it keeps
# counting), so a request with a large max_tokens really runs long and does not end by an
# end-of-generation token after a few words. Used wherever a test needs a "long" job.
LONG_PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


# --------------------------------------------------------------------------------------------
# Locating what the suite runs


def llmq_bin() -> Path:
    return Path(os.environ.get("LLMQ_BIN") or REPO / "build" / "release" / "llmq")


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
    """{"ctx_size": 2048} -> ["--ctx-size", "2048"]."""
    args = []
    for name, value in flags.items():
        if value is None:
            continue
        args += ["--" + name.replace("_", "-"), str(value)]
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
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                env=server_env(self.env), start_new_session=True,
            )
        self.wait_ready()
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


# --------------------------------------------------------------------------------------------
# Server-sent events


@dataclass
class SseEvent:
    id: str | None     # the `id:` field as sent (the contract wants "0", "1", ...)
    event: str         # the `event:` field ("message" when absent, as in the SSE spec)
    data: Any          # the `data:` payload, JSON-decoded
    t: float           # time.monotonic() when the blank line ending the event arrived
    raw_data: str = ""


def iter_sse(response: httpx.Response) -> Iterator[SseEvent]:
    """Yields the events of a streaming httpx response as they arrive.

    Works on bytes and decodes each line as strict UTF-8, so a stream that is not valid UTF-8
    fails here (httpx's text decoding would silently substitute U+FFFD). Lines end with LF or
    CRLF. Each event's data must be JSON, as every llmq event's is.
    """
    buf = b""
    ev_id: str | None = None
    ev_name: str | None = None
    data_lines: list[str] = []
    last = "none yet"
    chunks = response.iter_bytes()
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            break
        except httpx.RemoteProtocolError as e:
            raise AssertionError(
                f"the server cut the stream (last event: {last}) without finishing the "
                f"response: {e}"
            ) from None
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            raw_line, buf = buf[:nl], buf[nl + 1:]
            if raw_line.endswith(b"\r"):
                raw_line = raw_line[:-1]
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise AssertionError(f"SSE line is not valid UTF-8 ({e}): {raw_line!r}") from None
            if line == "":
                if data_lines or ev_name is not None or ev_id is not None:
                    raw = "\n".join(data_lines)
                    try:
                        data = json.loads(raw) if data_lines else None
                    except json.JSONDecodeError as e:
                        raise AssertionError(
                            f"SSE event {ev_name!r} has non-JSON data ({e}): {raw!r}"
                        ) from None
                    last = f"{ev_name} {raw}"
                    yield SseEvent(ev_id, ev_name or "message", data, time.monotonic(), raw)
                ev_id, ev_name, data_lines = None, None, []
                continue
            if line.startswith(":"):
                continue  # comment / keep-alive
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "id":
                ev_id = value
            elif name == "event":
                ev_name = value
            elif name == "data":
                data_lines.append(value)
            # "retry" and unknown fields are ignored, as the SSE spec says.
    assert not data_lines and ev_name is None, (
        f"stream ended inside an event (no blank line after it): event={ev_name!r} "
        f"data={data_lines!r}"
    )


TERMINAL = ("done", "error")
FINISH_REASONS = ("stop", "length", "cancelled")


@dataclass
class Stream:
    """One complete SSE response of POST /api/v1/req, checked against the contract."""
    events: list[SseEvent]
    queued: SseEvent
    waiting_pings: list[SseEvent]      # pings between queued and started (or the terminal)
    started: SseEvent | None
    tokens: list[SseEvent]
    running_pings: list[SseEvent]
    terminal: SseEvent
    t_sent: float = 0.0                # time.monotonic() when the request was sent

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.tokens)

    @property
    def done(self) -> dict:
        assert self.terminal.event == "done", (
            f"stream ended with {self.terminal.event}: {self.terminal.data}"
        )
        return self.terminal.data

    @property
    def finish_reason(self) -> str:
        return self.done["finish_reason"]

    def positions(self) -> list[int]:
        """Queue positions reported while waiting: the queued event's, then each ping's."""
        return [self.queued.data["position"]] + [p.data["position"] for p in self.waiting_pings]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_stream(events: list[SseEvent], *, complete: bool = True) -> Stream:
    """Checks the stream grammar of the contract and returns the stream's parts.

    queued, ping*, [started, (token | running ping)*], done|error — with `id`s 0,1,2,...,
    token `i` 0,1,2,..., every payload of the documented shape. With complete=False (a stream
    the client abandoned) the terminal event is not required.
    """
    where = lambda i: f"event #{i} of {[(e.event, e.data) for e in events][:40]}"  # noqa: E731
    assert events, "the stream had no event at all"
    for i, e in enumerate(events):
        assert e.id == str(i), f"SSE id {e.id!r} where {i} was due: {where(i)}"

    q = events[0]
    assert q.event == "queued", f"the first event is {q.event!r}, not queued: {where(0)}"
    assert isinstance(q.data, dict), where(0)
    assert isinstance(q.data.get("id"), str) and q.data["id"], f"queued without an id: {q.data}"
    assert _is_int(q.data.get("position")) and q.data["position"] >= 0, q.data
    assert _is_int(q.data.get("queue_depth")) and q.data["queue_depth"] >= 0, q.data

    waiting, running, tokens = [], [], []
    started = terminal = None
    for i, e in enumerate(events[1:], start=1):
        assert terminal is None, f"an event after the terminal {terminal.event}: {where(i)}"
        d = e.data
        assert isinstance(d, dict), f"data is not a JSON object: {where(i)}"
        if e.event == "ping":
            assert _is_int(d.get("position")) and d["position"] >= 0, f"bad ping: {where(i)}"
            assert _is_int(d.get("waited_ms")) and d["waited_ms"] >= 0, f"bad ping: {where(i)}"
            if started is None:
                assert not d.get("running", False), f"running ping before started: {where(i)}"
                waiting.append(e)
            else:
                assert d.get("running") is True, f"ping after started lacks running:true: {where(i)}"
                assert d["position"] == 0, f"running ping with position != 0: {where(i)}"
                running.append(e)
        elif e.event == "started":
            assert started is None, f"a second started: {where(i)}"
            assert isinstance(d.get("worker"), str) and d["worker"], f"bad started: {where(i)}"
            assert _is_int(d.get("queue_ms")) and d["queue_ms"] >= 0, f"bad started: {where(i)}"
            assert _is_int(d.get("attempt")) and d["attempt"] >= 1, f"bad started: {where(i)}"
            started = e
        elif e.event == "token":
            assert started is not None, f"a token before started: {where(i)}"
            assert d.get("i") == len(tokens), f"token i={d.get('i')} where {len(tokens)} was due"
            assert isinstance(d.get("text"), str), f"token text not a string: {where(i)}"
            assert d["text"] != "", f"empty token piece: {where(i)}"
            # json.loads accepts lone-surrogate escapes (\\ud800); such text is not UTF-8.
            d["text"].encode("utf-8")
            tokens.append(e)
        elif e.event == "done":
            assert started is not None, f"done without started: {where(i)}"
            assert d.get("finish_reason") in FINISH_REASONS, f"bad finish_reason: {where(i)}"
            u, t = d.get("usage"), d.get("timings")
            assert isinstance(u, dict) and isinstance(t, dict), f"done lacks usage/timings: {d}"
            assert _is_int(u.get("prompt_tokens")) and u["prompt_tokens"] > 0, d
            assert _is_int(u.get("completion_tokens")) and u["completion_tokens"] >= 0, d
            # A piece holds at least one token's text, so pieces <= tokens.
            assert len(tokens) <= u["completion_tokens"], (
                f"{len(tokens)} token events but completion_tokens={u['completion_tokens']}"
            )
            for k in ("queue_ms", "ttft_ms", "total_ms"):
                assert _is_int(t.get(k)) and t[k] >= 0, f"timings.{k} bad: {d}"
            assert _is_num(t.get("decode_tokens_per_s")) and t["decode_tokens_per_s"] >= 0, d
            terminal = e
        elif e.event == "error":
            assert isinstance(d.get("code"), str) and d["code"], f"error without code: {d}"
            assert isinstance(d.get("message"), str), f"error without message: {d}"
            terminal = e
        else:
            raise AssertionError(f"unknown event {e.event!r}: {where(i)}")
    if complete:
        assert terminal is not None, (
            f"the stream ended without done/error; last event: {events[-1].event} {events[-1].data}"
        )
    return Stream(events, q, waiting, started, tokens, running, terminal)


def stream_request(
    base_url: str, body: dict, *, timeout: float = 120.0, client: httpx.Client | None = None
) -> Stream:
    """POSTs a streaming request, reads the whole stream and checks it (check_stream)."""
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    try:
        t_sent = time.monotonic()
        with client.stream("POST", base_url + "/api/v1/req", json=body) as r:
            if r.status_code != 200:
                r.read()
                raise AssertionError(f"status {r.status_code} for {body}: {r.text!r}")
            ctype = r.headers.get("content-type", "")
            assert ctype.startswith("text/event-stream"), f"content-type {ctype!r}"
            events = []
            for e in iter_sse(r):
                events.append(e)
                # Pings keep a stream alive forever; bound the whole request, not each read.
                assert e.t - t_sent < timeout, (
                    f"stream unfinished after {timeout:.0f} s: {[(x.event, x.data) for x in events[-5:]]}"
                )
            s = check_stream(events)
            s.t_sent = t_sent
            return s
    finally:
        if own:
            client.close()


def json_request(base_url: str, body: dict, *, timeout: float = 120.0) -> dict:
    """POSTs a stream:false request and returns its JSON body, checking its shape."""
    r = httpx.post(base_url + "/api/v1/req", json={**body, "stream": False}, timeout=timeout)
    assert r.status_code == 200, f"status {r.status_code}: {r.text!r}"
    ctype = r.headers.get("content-type", "")
    assert ctype.startswith("application/json"), f"content-type {ctype!r}"
    j = r.json()
    for k in ("id", "text", "finish_reason", "usage", "timings"):
        assert k in j, f"non-streaming answer lacks {k!r}: {j}"
    assert isinstance(j["text"], str) and isinstance(j["id"], str) and j["id"]
    assert j["finish_reason"] in FINISH_REASONS, j
    assert _is_int(j["usage"].get("prompt_tokens")) and j["usage"]["prompt_tokens"] > 0, j
    assert _is_int(j["usage"].get("completion_tokens")), j
    for k in ("queue_ms", "ttft_ms", "total_ms", "decode_tokens_per_s"):
        assert _is_num(j["timings"].get(k)), f"timings.{k} missing: {j}"
    return j


def run_concurrently(base_url: str, bodies: list[dict]) -> list[Stream]:
    """Sends all requests at once (one connection each) and returns their checked streams."""
    barrier = threading.Barrier(len(bodies))

    def one(body):
        with httpx.Client(timeout=180) as c:
            barrier.wait()
            return stream_request(base_url, body, client=c)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


class OpenStream:
    """A streaming request read event by event, which the test may abandon (disconnect) at any
    point with close(). Uses its own connection, so closing it really closes the socket."""

    def __init__(self, base_url: str, body: dict, timeout: float = 120.0):
        self._client = httpx.Client(timeout=timeout)
        self._cm = self._client.stream("POST", base_url + "/api/v1/req", json=body)
        self.t_sent = time.monotonic()
        self.response = self._cm.__enter__()
        assert self.response.status_code == 200, (
            f"status {self.response.status_code}: {self.response.read()!r}"
        )
        self._it = iter_sse(self.response)
        self.events: list[SseEvent] = []

    def next(self) -> SseEvent:
        e = next(self._it)
        self.events.append(e)
        return e

    def read_until(self, pred, what: str = "the awaited event", within: float = 120.0) -> SseEvent:
        """Reads events until pred(event) is true; fails if the stream ends first or `within`
        seconds pass (judged at each event: pings keep coming while a job waits)."""
        t0 = time.monotonic()
        for e in self._it:
            self.events.append(e)
            if pred(e):
                return e
            assert e.t - t0 < within, f"no {what} within {within:.0f} s: {self.events[-5:]}"
        raise AssertionError(f"stream ended before {what}: {[(e.event, e.data) for e in self.events]}")

    def read_all(self) -> Stream:
        self.events.extend(self._it)
        return check_stream(self.events)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cm.__exit__(None, None, None)
        self._client.close()


# --------------------------------------------------------------------------------------------
# Raw HTTP over a socket (for what httpx would refuse to send or would "fix")


@dataclass
class RawResponse:
    status: int | None                      # None: the server closed without answering
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    raw: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: str,
    path: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = "application/json",
    version: str | None = "HTTP/1.1",
) -> bytes:
    """A raw HTTP/1.1 request. Host, Content-Length (when there is a body or the method is POST)
    and Connection: close are added unless `headers` sets them."""
    hs = list(headers or [])
    names = {k.lower() for k, _ in hs}
    if "host" not in names:
        hs.insert(0, ("Host", "127.0.0.1"))
    if content_type is not None and "content-type" not in names:
        hs.append(("Content-Type", content_type))
    if "content-length" not in names and (body or method in ("POST", "PUT")):
        hs.append(("Content-Length", str(len(body))))
    if "connection" not in names:
        hs.append(("Connection", "close"))
    line = f"{method} {path}" + (f" {version}" if version else "")
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
    return head.encode("latin-1") + body


def _parse_response(raw: bytes) -> RawResponse:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"incomplete HTTP response: {raw[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert parts[0].startswith("HTTP/") and len(parts) >= 2, f"bad status line {lines[0]!r}"
    headers = {}
    for h in lines[1:]:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = rest
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, data = b"", rest
        while data:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body, data = body + data[:size], data[size + 2:]
    elif "content-length" in headers:
        body = rest[: int(headers["content-length"])]
    return RawResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body, raw)


def _response_complete(raw: bytes) -> bool:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(rest) >= int(v.strip())
        if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
            return rest.endswith(b"0\r\n\r\n")
    return False  # no length: read until the server closes


def raw_http(port: int, data: bytes, *, head_len: int | None = None, timeout: float = 15.0,
             host: str = "127.0.0.1") -> RawResponse:
    """Sends `data` on a fresh connection and reads one response.

    With head_len (the length of the request head inside `data`), the head goes first and the
    body is sent only if no response arrives within a second: a server may refuse a too-large
    body after the headers without reading it, and the body write then fails, which is fine.
    A server that closes without answering yields RawResponse(status=None). A server that neither
    answers nor closes within `timeout` fails the test.
    """
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            if head_len is None:
                s.sendall(data)
            else:
                s.sendall(data[:head_len])
                ready, _, _ = select.select([s], [], [], 1.0)
                if not ready:
                    s.sendall(data[head_len:])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered/closed early; read what it sent
        raw = b""
        deadline = time.monotonic() + timeout
        while not _response_complete(raw):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise AssertionError(
                    f"no complete response and no close within {timeout:.0f} s; got {raw[:300]!r}"
                ) from None
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
    if not raw:
        return RawResponse(None)
    return _parse_response(raw)
