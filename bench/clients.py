"""Streaming clients for bench/run.py: one request to llmq or to llama-server, timed on the
client side, plus each server's own figures."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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
    # cache_prompt false: llmq keeps no prompt cache, so neither may llama-server (the
    # repetitions send the same prompt).
    body = {"prompt": prompt, "n_predict": max_tokens, "temperature": 0, "stream": True,
            "cache_prompt": False}
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


RequestFn = Callable[[httpx.Client, str, str, int], Sample]


def new_client() -> httpx.Client:
    # A fresh connection per request (Connection: close): llama-server closes idle keep-alive
    # connections at times, and a reused dead one fails the request; the same for both servers.
    return httpx.Client(timeout=600, headers={"Connection": "close"})
