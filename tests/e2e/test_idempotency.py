"""Idempotency-Key: one inference per key however often the request arrives: concurrent copies
attach to the running job, later ones get the stored result, another body is refused (422), and
a shared job survives one of its clients leaving."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from llmq_e2e import LONG_PROMPT, model_name
from metrics_util import scrape
from sse_client import OpenStream

BODY = {"prompt": LONG_PROMPT, "max_tokens": 48, "temperature": 0.9, "seed": 7, "stream": False}


def inferences(srv) -> float:
    """Jobs that finished on the worker (one per inference run)."""
    return scrape(srv.base_url).get("llmq_request_duration_seconds_count", model=model_name())


def test_50_concurrent_submissions_with_one_key_run_one_inference(llmq_factory):
    srv = llmq_factory.start(slots=2, queue_max=64)
    headers = {"Idempotency-Key": "order-4711"}

    def send(_):
        return httpx.post(srv.req_url, json=BODY, headers=headers, timeout=120)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(send, range(50)))
    assert [r.status_code for r in answers] == [200] * 50, [r.text for r in answers if r.status_code != 200][:3]
    bodies = [r.json() for r in answers]
    assert len({b["id"] for b in bodies}) == 1, "every copy must get the one job's answer"
    assert len({b["text"] for b in bodies}) == 1
    assert inferences(srv) == 1, "more than one inference ran for one key"

    # Later: the stored result, at once, without running again.
    t0 = time.monotonic()
    again = httpx.post(srv.req_url, json=BODY, headers=headers, timeout=30)
    assert again.status_code == 200 and again.json()["id"] == bodies[0]["id"]
    assert again.json()["text"] == bodies[0]["text"]
    assert time.monotonic() - t0 < 1.0
    assert inferences(srv) == 1

    # The same key with another body is a client error; another key is another job.
    r = httpx.post(srv.req_url, json={**BODY, "max_tokens": 5}, headers=headers, timeout=30)
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused", r.text
    r = httpx.post(srv.req_url, json=BODY, headers={"Idempotency-Key": "order-4712"}, timeout=60)
    assert r.status_code == 200 and r.json()["id"] != bodies[0]["id"]
    assert inferences(srv) == 2


def test_a_shared_job_survives_one_client_leaving(llmq_factory):
    srv = llmq_factory.start(slots=1)
    body = {"prompt": LONG_PROMPT, "max_tokens": 120, "temperature": 0}
    headers = {"Idempotency-Key": "shared-1"}
    a = OpenStream(srv.base_url, body, headers=headers)
    b = OpenStream(srv.base_url, body, headers=headers)
    try:
        a.read_until(lambda e: e.event == "token", "A's first token")
        b.read_until(lambda e: e.event == "started", "B attached")
        a.close()  # the first client leaves; B still wants the result
        sb = b.read_all()
        assert sb.terminal.event == "done", sb.terminal
        assert sb.terminal.data["usage"]["completion_tokens"] == 120
        # A later copy replays the stored stream: the same tokens, the same job.
        sc = OpenStream(srv.base_url, body, headers=headers).read_all()
        assert sc.terminal.event == "done"
        text = lambda st: "".join(e.data["text"] for e in st.events if e.event == "token")
        assert text(sc) == text(sb) and len(text(sb)) > 0
    finally:
        a.close()
        b.close()


def test_bad_idempotency_keys_are_refused(llmq_factory):
    srv = llmq_factory.start()
    for key in ("x" * 256, "has space"):
        r = httpx.post(srv.req_url, json=BODY, headers={"Idempotency-Key": key}, timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["field"] == "Idempotency-Key", r.text
