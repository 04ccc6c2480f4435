"""Talking to POST /api/v1/req in the end-to-end tests: an SSE parser that decodes every line as
strict UTF-8, the contract checks every stream goes through, and request helpers."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx


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
    loading: list[SseEvent] = field(default_factory=list)   # model loads this job waited for
    restarts: list[SseEvent] = field(default_factory=list)  # `started` of later runs (attempt 2+)
    requeues: list[SseEvent] = field(default_factory=list)  # `requeued`: why a later run came

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


def check_logprob_entries(entries: list, where: str = "") -> None:
    """Log-probability entries as the token events and OpenAI's chat give them: each a token, its
    exact bytes, a log-probability (<= 0) and the likeliest alternatives, most likely first."""
    assert isinstance(entries, list) and entries, f"logprobs not a non-empty list: {where}"
    for entry in entries:
        for alt in [entry] + entry["top_logprobs"]:
            assert isinstance(alt["token"], str), f"logprobs token not a string: {where}"
            assert _is_num(alt["logprob"]) and alt["logprob"] <= 0, f"bad logprob {alt}: {where}"
            assert all(_is_int(b) and 0 <= b <= 255 for b in alt["bytes"]), f"bad bytes: {where}"
        top = [alt["logprob"] for alt in entry["top_logprobs"]]
        assert top == sorted(top, reverse=True), f"top_logprobs not most likely first: {where}"


def check_stream(events: list[SseEvent], *, complete: bool = True) -> Stream:
    """Checks the stream grammar of the contract and returns the stream's parts.

    queued, (ping | loading)*, [started, (token | running ping | requeued | loading |
    started of a later attempt)*],
    done|error — with `id`s 0,1,2,...,
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

    waiting, running, tokens, loading, restarts, requeues = [], [], [], [], [], []
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
        elif e.event == "loading":
            assert isinstance(d.get("model"), str) and d["model"], f"bad loading: {where(i)}"
            assert _is_int(d.get("waited_ms")) and d["waited_ms"] >= 0, f"bad loading: {where(i)}"
            loading.append(e)
        elif e.event == "requeued":
            assert started is not None, f"requeued before any run started: {where(i)}"
            assert _is_int(d.get("attempt")) and d["attempt"] > started.data["attempt"], where(i)
            assert d.get("reason") in ("worker_lost", "worker_stopping"), f"bad requeued: {where(i)}"
            requeues.append(e)
        elif e.event == "started":
            assert isinstance(d.get("worker"), str) and d["worker"], f"bad started: {where(i)}"
            assert _is_int(d.get("queue_ms")) and d["queue_ms"] >= 0, f"bad started: {where(i)}"
            assert _is_int(d.get("attempt")) and d["attempt"] >= 1, f"bad started: {where(i)}"
            # A job runs again (a worker died, or a decode failed before any token): its new
            # run starts with a higher attempt, and its tokens go on from where the last stopped.
            if started is not None:
                assert d["attempt"] > started.data["attempt"], f"a second started, same attempt: {where(i)}"
                restarts.append(e)
            started = e
        elif e.event == "token":
            assert started is not None, f"a token before started: {where(i)}"
            assert d.get("i") == len(tokens), f"token i={d.get('i')} where {len(tokens)} was due"
            assert isinstance(d.get("text"), str), f"token text not a string: {where(i)}"
            assert d["text"] != "", f"empty token piece: {where(i)}"
            # json.loads accepts lone-surrogate escapes (\\ud800); such text is not UTF-8.
            d["text"].encode("utf-8")
            if "logprobs" in d:
                check_logprob_entries(d["logprobs"], where(i))
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
    first_started = next((e for e in events if e.event == "started"), None)
    return Stream(events, q, waiting, first_started, tokens, running, terminal, loading=loading,
                  restarts=restarts, requeues=requeues)


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

    def __init__(self, base_url: str, body: dict, timeout: float = 120.0,
                 headers: dict[str, str] | None = None):
        self._client = httpx.Client(timeout=timeout)
        self._cm = self._client.stream("POST", base_url + "/api/v1/req", json=body, headers=headers)
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

    def iter_all(self):
        """The remaining events, as they come (each also kept in `events`)."""
        for e in self._it:
            self.events.append(e)
            yield e

    def checked(self) -> Stream:
        """The events read so far, checked as a whole stream (check_stream)."""
        return check_stream(self.events)

    def __enter__(self) -> "OpenStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._cm.__exit__(None, None, None)
        self._client.close()
