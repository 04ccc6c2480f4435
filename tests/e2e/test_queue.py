"""Queueing: positions and pings while waiting, the slot limit, 429 at the queue threshold,
deadlines."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from llmq_e2e import LONG_PROMPT
from sse_client import OpenStream, run_concurrently, stream_request

PROMPTS = [
    "Write a short poem about the sea.",
    "List three colours:",
    "The history of bread begins",
    "def fibonacci(n):",
    "Tell me about the moon.",
    "A recipe for pancakes:",
]


def max_overlap(intervals: list[tuple[float, float]], shrink: float) -> int:
    """Most intervals open at one instant, each shrunk by `shrink` s at both ends (so that a
    done and the next started, which reach the client on different connections, may arrive in
    either order within that slack)."""
    points = []
    for a, b in intervals:
        if b - a > 2 * shrink:
            points += [(a + shrink, 1), (b - shrink, -1)]
    open_, best = 0, 0
    for _, d in sorted(points, key=lambda p: (p[0], p[1])):
        open_ += d
        best = max(best, open_)
    return best


def test_waiting_pings_positions_and_slot_limit(server):
    """6 requests on 2 slots: waiting ones see non-increasing positions and ~200 ms pings, all
    get to run, never more than 2 at once."""
    assert server.flags["slots"] == 2 and server.flags["ping_interval_ms"] == 200
    bodies = [{"prompt": p, "max_tokens": 48, "temperature": 0} for p in PROMPTS]
    streams = run_concurrently(server.base_url, bodies)

    for s in streams:
        assert s.started is not None, f"never started: {s.terminal.data}"
        assert s.done["finish_reason"] in ("stop", "length")
        pos = s.positions()
        assert all(a >= b for a, b in zip(pos, pos[1:])), f"queue position went up: {pos}"
        waited = [p.data["waited_ms"] for p in s.waiting_pings]
        assert waited == sorted(waited), f"waited_ms went down: {waited}"

    assert any(s.queued.data["position"] >= 1 for s in streams), (
        f"no request queued behind another: {[s.queued.data for s in streams]}"
    )
    for s in streams:
        # (A position >= 1 alone does not mean a wait: the jobs ahead may all get a slot.)
        if s.started.data["queue_ms"] >= 3 * 200:
            assert s.waiting_pings, f"waited {s.started.data['queue_ms']} ms without a ping"

    gaps = [
        (b.t - a.t) * 1000
        for s in streams
        for a, b in zip(s.waiting_pings, s.waiting_pings[1:])
    ]
    assert len(gaps) >= 3, f"too few pings to judge their interval: {gaps}"
    assert 100 <= statistics.median(gaps) <= 600, f"ping gaps (ms): {sorted(gaps)}"

    intervals = [(s.started.t, s.terminal.t) for s in streams]
    assert max_overlap(intervals, shrink=0.1) <= 2, f"more than 2 running at once: {intervals}"
    # And both slots were used: two requests did decode side by side.
    assert max_overlap(intervals, shrink=0.1) == 2, f"never 2 running at once: {intervals}"


def test_queue_full_429(llmq_factory):
    srv = llmq_factory.start(slots=1, queue_max=1, ctx_size=1024)
    long_body = {"prompt": LONG_PROMPT, "max_tokens": 400, "temperature": 0}
    a = OpenStream(srv.base_url, long_body)
    b = None
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        b = OpenStream(srv.base_url, long_body)
        q = b.read_until(lambda e: e.event == "queued", "B queued")
        assert q.data["position"] == 0, q.data

        # Streamed, so that a wrongly accepted request fails here at once instead of waiting.
        with httpx.stream("POST", srv.req_url, json={"prompt": "Hi", "max_tokens": 4},
                          timeout=30) as r:
            assert r.status_code == 429, f"{r.status_code} instead of 429 with A running, B waiting"
            r.read()
        assert "retry-after" in r.headers, dict(r.headers)
        assert r.headers["retry-after"].strip().isdigit(), r.headers["retry-after"]
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == "queue_full", r.text
        # Non-streaming requests are refused the same way.
        r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 4, "stream": False},
                       timeout=30)
        assert r.status_code == 429, f"{r.status_code}: {r.text}"
        assert r.json()["error"]["code"] == "queue_full", r.text
    finally:
        a.close()
        if b:
            b.close()
    # With both clients gone the server takes work again.
    deadline = time.monotonic() + 20
    while True:
        r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 2, "stream": False},
                       timeout=60)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200, f"server still refuses after the clients left: {r.text}"


@pytest.mark.slow
def test_deadline_exceeded(llmq_factory):
    """timeout_ms covers the queue wait and the run: both end in error deadline_exceeded."""
    srv = llmq_factory.start(slots=1, ctx_size=2048)
    a = OpenStream(srv.base_url, {"prompt": LONG_PROMPT, "max_tokens": 1500, "temperature": 0})
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        # B waits behind A for far longer than its 600 ms.
        b = stream_request(srv.base_url, {"prompt": "Hi", "max_tokens": 4, "timeout_ms": 600},
                           timeout=30)
        assert b.terminal.event == "error", f"expected deadline error, got {b.terminal.data}"
        assert b.terminal.data["code"] == "deadline_exceeded", b.terminal.data
        assert b.started is None
        assert 0.5 <= b.terminal.t - b.t_sent <= 5.0, "deadline enforced at the wrong time"
        # Without a stream, the same ends as 504 deadline_exceeded.
        r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 4, "timeout_ms": 600,
                                          "stream": False}, timeout=30)
        assert r.status_code == 504, f"{r.status_code}: {r.text}"
        assert r.json()["error"]["code"] == "deadline_exceeded", r.text
    finally:
        a.close()
    # Once this one-token request has run, A's slot is free again.
    stream_request(srv.base_url, {"prompt": "Hi", "max_tokens": 1}, timeout=60)

    # C runs, but cannot produce 1500 tokens in 800 ms.
    c = stream_request(srv.base_url, {"prompt": LONG_PROMPT, "max_tokens": 1500,
                                      "temperature": 0, "timeout_ms": 800}, timeout=60)
    assert c.started is not None
    assert c.terminal.event == "error" and c.terminal.data["code"] == "deadline_exceeded", (
        c.terminal.data
    )
    assert c.terminal.t - c.t_sent <= 5.0
