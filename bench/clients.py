"""Streaming clients for the benchmarks: one request to llmq or to llama-server, timed on the
client side, plus each server's own figures. `chat_stream` speaks the OpenAI chat API that both
servers serve, so one client measures both (bench/ttft.py)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
import threading
from typing import Callable, Iterator

import httpx


# --------------------------------------------------------------------------------------------
# Streaming clients: one request, timed on the client side, plus the server's own numbers


@dataclass
class Sample:
    ok: bool
    error: str = ""
    completion_tokens: int = 0
    ttft_ms_client: float | None = None      # request sent -> first text received
    decode_tps_client: float | None = None   # (tokens - 1) / (last text - first text)
    latency_ms: float | None = None          # request sent -> stream finished
    ttft_ms_server: float | None = None      # the server's own figure (see README)
    decode_tps_server: float | None = None   # the server's own figure (see README)


def iter_sse(response: httpx.Response) -> Iterator[tuple[str, str, float]]:
    """(event name, data, arrival time) for each SSE event. Event name "message" when absent
    (llama-server sends only `data:` lines)."""
    name, data = None, []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name or "message", "\n".join(data), time.monotonic()
            name, data = None, []
        elif line.startswith(":"):
            continue
        else:
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "event":
                name = v
            elif k == "data":
                data.append(v)
    if data:
        yield name or "message", "\n".join(data), time.monotonic()


def _finish(s: Sample, t0: float, t_first: float | None, t_last: float | None, t_end: float):
    s.latency_ms = (t_end - t0) * 1000
    if t_first is not None:
        s.ttft_ms_client = (t_first - t0) * 1000
        if t_last is not None and t_last > t_first and s.completion_tokens > 1:
            s.decode_tps_client = (s.completion_tokens - 1) / (t_last - t_first)
    return s


def llmq_request(client: httpx.Client, base_url: str, prompt: str, max_tokens: int) -> Sample:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    s = Sample(ok=False)
    t0 = time.monotonic()
    t_first = t_last = None
    with client.stream("POST", base_url + "/api/v1/req", json=body) as r:
        if r.status_code != 200:
            r.read()
            s.error = f"HTTP {r.status_code}: {r.text[:200]}"
            return s
        for name, data, t in iter_sse(r):
            if name == "token":
                if t_first is None:
                    t_first = t
                t_last = t
            elif name == "done":
                d = json.loads(data)
                s.ok = True
                s.completion_tokens = d["usage"]["completion_tokens"]
                s.ttft_ms_server = d["timings"].get("ttft_ms")
                s.decode_tps_server = d["timings"].get("decode_tokens_per_s")
            elif name == "error":
                s.error = data
    return _finish(s, t0, t_first, t_last, time.monotonic())


def llama_server_request(client: httpx.Client, base_url: str, prompt: str, max_tokens: int) -> Sample:
    # The prompt cache stays at llama-server's default (on), as llmq's is: bench/run.py sends
    # every request a prompt of its own, so neither can reuse one.
    body = {"prompt": prompt, "n_predict": max_tokens, "temperature": 0, "stream": True}
    s = Sample(ok=False)
    t0 = time.monotonic()
    t_first = t_last = None
    with client.stream("POST", base_url + "/completion", json=body) as r:
        if r.status_code != 200:
            r.read()
            s.error = f"HTTP {r.status_code}: {r.text[:200]}"
            return s
        for _, data, t in iter_sse(r):
            try:
                d = json.loads(data)
            except json.JSONDecodeError:
                continue  # "[DONE]"
            if d.get("content"):
                if t_first is None:
                    t_first = t
                t_last = t
            if d.get("stop"):
                tm = d.get("timings", {})
                s.ok = True
                s.completion_tokens = tm.get("predicted_n", d.get("tokens_predicted", 0))
                # llama-server has no TTFT of its own; prompt processing time is the part of it
                # the server sees (the first token's sampling follows it immediately).
                s.ttft_ms_server = tm.get("prompt_ms")
                s.decode_tps_server = tm.get("predicted_per_second")
    return _finish(s, t0, t_first, t_last, time.monotonic())


# --------------------------------------------------------------------------------------------
# OpenAI chat completions, streamed: the same client for both servers

# Origin of ChatSample times, so they are small numbers in the JSON and comparable across threads.
T_ORIGIN = time.monotonic()


def now() -> float:
    """Seconds since T_ORIGIN, on the monotonic clock."""
    return time.monotonic() - T_ORIGIN


@dataclass
class ChatSample:
    ok: bool = False                  # the stream ended with [DONE] (or was cancelled by us)
    error: str = ""
    cancelled: bool = False           # we closed the stream early (stop event set)
    sent: float | None = None         # request sent, seconds since T_ORIGIN
    chunk_times: list[float] = field(default_factory=list)  # arrival of each content chunk
    ttft_ms: float | None = None      # sent -> first chunk with non-empty delta content
    prompt_tokens: int | None = None  # from the usage chunk
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    completion_tokens: int | None = None
    finish_reason: str | None = None
    server_timings: dict | None = None  # llama-server's `timings` on its last chunks, if any


def chat_stream(client: httpx.Client, base_url: str, messages: list[dict], max_tokens: int,
                into: ChatSample | None = None, stop: threading.Event | None = None) -> ChatSample:
    """POST /v1/chat/completions with stream and usage, temperature 0. Fills `into` (or a new
    sample) while the stream runs, so another thread may watch chunk_times grow; closes the
    stream early, marking the sample cancelled, once `stop` is set."""
    s = into if into is not None else ChatSample()
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    s.sent = now()
    with client.stream("POST", base_url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            r.read()
            s.error = f"HTTP {r.status_code}: {r.text[:200]}"
            return s
        for _, data, t in iter_sse(r):
            t -= T_ORIGIN
            if data == "[DONE]":
                s.ok = True
                break
            try:
                d = json.loads(data)
            except json.JSONDecodeError:
                s.error = f"not JSON: {data[:200]}"
                break
            if "error" in d:
                s.error = json.dumps(d["error"])[:300]
                break
            for choice in d.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    if s.ttft_ms is None:
                        s.ttft_ms = (t - s.sent) * 1000
                    s.chunk_times.append(t)
                if choice.get("finish_reason"):
                    s.finish_reason = choice["finish_reason"]
            if d.get("usage"):
                u = d["usage"]
                s.prompt_tokens = u.get("prompt_tokens")
                s.completion_tokens = u.get("completion_tokens")
                s.cached_tokens = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
            if d.get("timings"):
                s.server_timings = d["timings"]
            if stop is not None and stop.is_set():
                s.ok = s.cancelled = True
                break
    if not s.ok and not s.error:
        s.error = "stream ended without [DONE]"
    return s


RequestFn = Callable[[httpx.Client, str, str, int], Sample]


def new_client() -> httpx.Client:
    # A fresh connection per request (Connection: close): llama-server closes idle keep-alive
    # connections at times, and a reused dead one fails the request; the same for both servers.
    return httpx.Client(timeout=600, headers={"Connection": "close"})
