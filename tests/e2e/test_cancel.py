"""A client that disconnects cancels its job: a running one frees its slot, a waiting one leaves
the queue."""

from __future__ import annotations

import socket
import time

from llmq_e2e import LONG_PROMPT
from sse_client import OpenStream, stream_request
from raw_http import build_request

# With one slot, 2000 greedy tokens of counting take far longer than the few seconds the tests
# allow for the next request to start (SmolLM2-135M does ~100 tokens/s at best on 2 cores).
LONG = {"prompt": LONG_PROMPT, "max_tokens": 2000, "temperature": 0}
START_WITHIN_S = 3.0


def test_disconnect_while_running_frees_the_slot(llmq_factory):
    srv = llmq_factory.start(slots=1, ctx_size=2048)
    a = OpenStream(srv.base_url, LONG)
    try:
        a.read_until(lambda e: e.event == "token" and e.data["i"] == 1, "A's second token")
    finally:
        a.close()
    t_closed = time.monotonic()

    b = stream_request(srv.base_url, {"prompt": "Hello", "max_tokens": 8, "temperature": 0})
    assert b.started is not None
    assert b.started.t - t_closed < START_WITHIN_S, (
        f"B started {b.started.t - t_closed:.1f} s after A's client left: A kept its slot"
    )
    assert b.done["finish_reason"] in ("stop", "length")


def test_disconnect_of_non_streaming_client_frees_the_slot(llmq_factory):
    """stream:false clients are watched too: closing the socket cancels the job."""
    srv = llmq_factory.start(slots=1, ctx_size=2048)
    body = (b'{"prompt": "%s", "max_tokens": 2000, "temperature": 0, "stream": false}'
            % LONG_PROMPT.encode())
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(build_request("POST", "/api/v1/req", body=body))
        time.sleep(1.5)  # long enough to be admitted and started
    t_closed = time.monotonic()

    b = stream_request(srv.base_url, {"prompt": "Hello", "max_tokens": 8, "temperature": 0})
    assert b.started.t - t_closed < START_WITHIN_S, (
        f"B started {b.started.t - t_closed:.1f} s after A's client left: A kept its slot"
    )


def test_disconnect_while_waiting_leaves_the_queue(llmq_factory):
    srv = llmq_factory.start(slots=1, ctx_size=2048, ping_interval_ms=200)
    a = OpenStream(srv.base_url, LONG)
    b = c = None
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        b = OpenStream(srv.base_url, {"prompt": "Hi", "max_tokens": 8})
        q = b.read_until(lambda e: e.event == "queued", "B queued")
        assert q.data["position"] == 0, q.data
        b.read_until(lambda e: e.event == "ping", "B's first ping")
        b.close()
        time.sleep(1.0)  # several ping intervals: time for the server to notice

        c = OpenStream(srv.base_url, {"prompt": "Hi", "max_tokens": 8, "temperature": 0})
        qc = c.read_until(lambda e: e.event == "queued", "C queued")
        assert qc.data["position"] == 0, f"B is still ahead of C: {qc.data}"
        assert qc.data["queue_depth"] <= 1, f"B still counted in the queue: {qc.data}"
        for _ in range(3):
            p = c.read_until(lambda e: e.event == "ping", "C's pings")
            assert p.data["position"] == 0, f"B is still ahead of C: {p.data}"

        # A leaves too; C, the only job left, runs at once.
        a.close()
        t_closed = time.monotonic()
        cs = c.read_all()
        assert cs.started.t - t_closed < START_WITHIN_S
        assert cs.done["finish_reason"] in ("stop", "length")
    finally:
        for s in (a, b, c):
            if s:
                s.close()
