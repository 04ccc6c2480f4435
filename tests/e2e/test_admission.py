"""Admission: API keys (401 without a valid one), per-client concurrency and rate limits (429
rate_limited with Retry-After), the predicted-wait refusal (429 deadline at once instead of a
deadline_exceeded later), and every refusal counted by reason."""

from __future__ import annotations

import time

import httpx

from elastic_node import run_llmq
from llmq_e2e import LONG_PROMPT, free_port
from metrics_util import scrape
from sse_client import OpenStream

SHORT = {"prompt": "Hi", "max_tokens": 2, "temperature": 0, "stream": False}
LONG = {"prompt": LONG_PROMPT, "max_tokens": 400, "temperature": 0}


def rejected(srv, reason: str) -> float:
    return scrape(srv.base_url).get("llmq_requests_rejected_total", reason=reason)


def test_api_keys_required_on_the_inference_route(llmq_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# ops\nsk-file-key-0001 name=ops\n")
    srv = llmq_factory.start(api_key="sk-flag-key-0001,sk-flag-key-0002", api_key_file=keys)
    for headers in ({}, {"Authorization": "Bearer sk-wrong-key-01"}, {"X-API-Key": "sk-flag-key-000"},
                    {"Authorization": "Basic c2stZmxhZy1rZXktMDAwMQ=="}):
        r = httpx.post(srv.req_url, json=SHORT, headers=headers, timeout=30)
        assert r.status_code == 401, (headers, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer"), r.headers
    for headers in ({"Authorization": "Bearer sk-flag-key-0002"}, {"X-API-Key": "sk-flag-key-0001"},
                    {"authorization": "bearer sk-file-key-0001"}):
        r = httpx.post(srv.req_url, json=SHORT, headers=headers, timeout=60)
        assert r.status_code == 200, (headers, r.text)
    # Probes and metrics stay open; the keys never reach the log.
    assert httpx.get(srv.base_url + "/healthz", timeout=10).status_code == 200
    assert httpx.get(srv.base_url + "/metrics", timeout=10).status_code == 200
    assert rejected(srv, "unauthorized") == 4
    assert srv.stop() == 0
    # The log is where llmq writes it (stdout), shown by lines it must hold; before, this test
    # read stderr, where no log line goes, and could not have failed.
    log = srv.log_text()
    assert "API keys required on /api/v1/req: 3 key(s)" in log, log[-2000:]
    assert "config: " in log and "api_key=" in log
    for secret in ("sk-flag-key-0001", "sk-flag-key-0002", "sk-file-key-0001"):
        assert secret not in log, f"{secret} appears in the log"


def test_a_bad_key_file_stops_the_start_with_one_line(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("sk-file-key-0001 colour=red\n")
    r = run_llmq("serve", "--api-key-file", str(keys), "--port", str(free_port()), timeout=30)
    assert r.returncode == 2, r.stderr
    assert f"{keys}:1: unknown option \"colour\"" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_per_client_concurrency_limit(llmq_factory):
    srv = llmq_factory.start(slots=2, client_max_concurrent=1)
    a = OpenStream(srv.base_url, LONG)
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        t0 = time.monotonic()
        r = httpx.post(srv.req_url, json=SHORT, timeout=30)
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited", r.text
        assert time.monotonic() - t0 < 1.0, "the refusal must be immediate"
        assert int(r.headers["retry-after"]) >= 1
    finally:
        a.close()
    deadline = time.monotonic() + 20
    while True:  # the client's slot in its limit comes back when its request ends
        r = httpx.post(srv.req_url, json=SHORT, timeout=60)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200, r.text
    assert rejected(srv, "rate_limited") >= 1


def test_per_client_rate_limit_per_key(llmq_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("sk-slow-key-0001 name=slow rate=0.02 burst=2\nsk-fast-key-0001 name=fast\n")
    srv = llmq_factory.start(api_key_file=keys)
    slow = {"Authorization": "Bearer sk-slow-key-0001"}
    codes = [httpx.post(srv.req_url, json=SHORT, headers=slow, timeout=60).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429], codes
    r = httpx.post(srv.req_url, json=SHORT, headers=slow, timeout=60)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 50, r.headers  # one token every 50 s
    fast = {"Authorization": "Bearer sk-fast-key-0001"}
    assert all(httpx.post(srv.req_url, json=SHORT, headers=fast, timeout=60).status_code == 200
               for _ in range(4)), "another key has its own (here: no) limits"


def test_predicted_wait_past_the_deadline_is_refused_at_once(llmq_factory):
    srv = llmq_factory.start(slots=1, queue_max=8, ctx_size=1024)
    # Measure the service time: a few jobs of ~1 s each.
    body = {"prompt": LONG_PROMPT, "max_tokens": 64, "temperature": 0, "stream": False}
    for _ in range(3):
        assert httpx.post(srv.req_url, json=body, timeout=60).status_code == 200
    streams = []
    try:
        for _ in range(4):  # one running, three waiting: ~3 service times ahead of a newcomer
            streams.append(OpenStream(srv.base_url, {**body, "stream": True, "max_tokens": 400}))
            streams[-1].read_until(lambda e: e.event in ("queued", "started"), "queued")
        t0 = time.monotonic()
        r = httpx.post(srv.req_url, json={**SHORT, "timeout_ms": 500}, timeout=30)
        took = time.monotonic() - t0
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "deadline", r.text
        assert took < 0.5, f"refused after {took:.2f} s; it must not wait"
        assert int(r.headers["retry-after"]) >= 1
        # A request whose deadline leaves room for the wait is admitted.
        ok = OpenStream(srv.base_url, {"prompt": "Hi", "max_tokens": 2, "timeout_ms": 600000})
        streams.append(ok)
        assert ok.read_until(lambda e: e.event == "queued", "queued").data["position"] >= 1
    finally:
        for s in streams:
            s.close()
    assert rejected(srv, "deadline") >= 1
