"""GET /metrics: valid exposition (promtool), every contract metric with its type, and counters
that move by exactly what the requests did."""

from __future__ import annotations

import httpx

from llmq_e2e import model_name
from sse_client import json_request
from raw_http import build_request, raw_http
from metrics_util import promtool_problems, scrape

CONTRACT = {
    "llmq_requests_total": "counter",
    "llmq_requests_rejected_total": "counter",
    "llmq_queue_depth": "gauge",
    "llmq_slots_busy": "gauge",
    "llmq_slots": "gauge",
    "llmq_queue_wait_seconds": "histogram",
    "llmq_time_to_first_token_seconds": "histogram",
    "llmq_inter_token_latency_seconds": "histogram",
    "llmq_request_duration_seconds": "histogram",
    "llmq_request_duration_window_seconds": "summary",
    "llmq_prompt_tokens_total": "counter",
    "llmq_generated_tokens_total": "counter",
    "llmq_job_retries_total": "counter",
    "llmq_jobs_dead_lettered_total": "counter",
    "llmq_build_info": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "llmq_host_cpu_usage_ratio": "gauge",
    "llmq_host_memory_used_bytes": "gauge",
    "llmq_host_memory_total_bytes": "gauge",
    "llmq_spool_documents": "gauge",
    "llmq_spool_bytes": "gauge",
    "llmq_spool_dropped_documents_total": "counter",
    "llmq_model_loads_total": "counter",
    "llmq_model_evictions_total": "counter",
    "llmq_model_load_seconds": "histogram",
    "llmq_model_loaded": "gauge",
}

REQ = "/api/v1/req"


def test_metrics_are_valid_and_complete(server):
    json_request(server.base_url, {"prompt": "Hi", "max_tokens": 2, "temperature": 0})
    m = scrape(server.base_url)
    assert promtool_problems(m.text) == []
    for name, kind in CONTRACT.items():
        assert m.types.get(name) == kind, f"{name}: TYPE {m.types.get(name)!r}, want {kind}"
    for reason in ("queue_full", "too_large", "headers_too_large", "invalid", "not_ready",
                   "shutting_down", "not_found", "deadline", "unsupported_media_type",
                   "cors_not_allowed"):
        assert m.has("llmq_requests_rejected_total", reason=reason), reason
    assert [v for (n, labels), v in m.samples.items()
            if n == "llmq_build_info" and ("version", "0.1.0") in labels] == [1]
    assert m.get("llmq_job_retries_total") == 0 and m.has("llmq_job_retries_total")
    assert m.has("llmq_jobs_dead_lettered_total")
    assert 0 <= m.get("llmq_host_cpu_usage_ratio") <= 1
    assert 0 < m.get("llmq_host_memory_used_bytes") < m.get("llmq_host_memory_total_bytes")
    assert m.get("process_resident_memory_bytes") > 10 << 20  # the model is in memory
    assert 0 < m.get("process_open_fds") <= m.get("process_max_fds")


def test_counters_move_by_what_the_requests_did(server):
    model = model_name()
    before = scrape(server.base_url)
    answers = [
        json_request(server.base_url, {"prompt": p, "max_tokens": 6, "temperature": 0})
        for p in ("Name a colour.", "Count: 1, 2,", "Hello")
    ]
    bad = httpx.post(server.req_url, json={"prompt": 5}, timeout=10)
    assert bad.status_code == 400
    assert httpx.get(server.base_url + "/no/such/route", timeout=10).status_code == 404
    big = raw_http(server.port, build_request("POST", REQ, body=b"{}",
                                              headers=[("X-Pad", "a" * (17 << 10))]))
    assert big.status == 431
    after = scrape(server.base_url)

    def delta(name, **labels):
        return after.get(name, **labels) - before.get(name, **labels)

    n = len(answers)
    completion = [a["usage"]["completion_tokens"] for a in answers]
    assert delta("llmq_requests_total", route=REQ, code="200") == n
    assert delta("llmq_requests_total", route=REQ, code="400") == 1
    assert delta("llmq_requests_total", route="other", code="404") == 1
    assert delta("llmq_requests_total", route="other", code="431") == 1
    assert delta("llmq_requests_total", route="/metrics", code="200") == 1  # `before` itself
    assert delta("llmq_requests_rejected_total", reason="invalid") == 1
    assert delta("llmq_requests_rejected_total", reason="not_found") == 1
    assert delta("llmq_requests_rejected_total", reason="headers_too_large") == 1
    assert delta("llmq_requests_rejected_total", reason="queue_full") == 0
    assert delta("llmq_generated_tokens_total", model=model) == sum(completion)
    assert delta("llmq_prompt_tokens_total", model=model) == sum(
        a["usage"]["prompt_tokens"] for a in answers)
    assert delta("llmq_queue_wait_seconds_count") == n
    assert delta("llmq_time_to_first_token_seconds_count", model=model) == n
    assert delta("llmq_request_duration_seconds_count", model=model) == n
    assert delta("llmq_request_duration_window_seconds_count", model=model) == n
    # One inter-token gap per token after the first of each request.
    assert delta("llmq_inter_token_latency_seconds_count", model=model) == sum(
        c - 1 for c in completion if c > 0)
    # The histogram's sum agrees with the durations the server reported (ms, rounded).
    total_s = sum(a["timings"]["total_ms"] for a in answers) / 1000
    assert abs(delta("llmq_request_duration_seconds_sum", model=model) - total_s) < 0.002 * n + 0.01
    # Cumulative buckets end at the count.
    assert after.get("llmq_request_duration_seconds_bucket", model=model, le="+Inf") == after.get(
        "llmq_request_duration_seconds_count", model=model)
    # The window holds these requests (and maybe earlier tests'): ordered, positive quantiles.
    q = [after.get("llmq_request_duration_window_seconds", model=model, quantile=x)
         for x in ("0.5", "0.95", "0.99")]
    assert 0 < q[0] <= q[1] <= q[2], q


def test_gauges_of_an_idle_server(server):
    m = scrape(server.base_url)
    assert m.get("llmq_queue_depth", queue="LLM_INFERENCE") == 0
    assert m.get("llmq_slots_busy") == 0
    assert m.get("llmq_slots") == 2  # the suite's --slots


def test_queue_full_is_counted(llmq_factory):
    from llmq_e2e import LONG_PROMPT
    from sse_client import OpenStream

    s = llmq_factory.start("small-queue", slots=1, queue_max=1)
    running = OpenStream(s.base_url, {"prompt": LONG_PROMPT, "max_tokens": 2000, "temperature": 0})
    waiting = None
    try:
        running.read_until(lambda e: e.event == "token", "the first token")
        waiting = OpenStream(s.base_url, {"prompt": "Hi", "max_tokens": 1})
        waiting.read_until(lambda e: e.event == "queued", "queued")
        m = scrape(s.base_url)
        assert m.get("llmq_slots_busy") == 1 and m.get("llmq_slots") == 1
        assert m.get("llmq_queue_depth", queue="LLM_INFERENCE") == 1
        refused = httpx.post(s.req_url, json={"prompt": "Hi"}, timeout=10)
        assert refused.status_code == 429
        m = scrape(s.base_url)
        assert m.get("llmq_requests_rejected_total", reason="queue_full") == 1
        assert m.get("llmq_requests_total", route=REQ, code="429") == 1
    finally:
        running.close()
        if waiting:
            waiting.close()
