"""Request documents and runtime snapshots: shipped to a real Elasticsearch node, exactly one
document per request (refusals included), and kept in the spool when no node is configured.

The node is the session's (conftest `elastic`), with llmq's index templates installed, so the
documents land in real data streams.
"""

from __future__ import annotations

import collections
import json
import time

import httpx

from elastic_node import new_namespace, requests_stream, runtime_stream
from llmq_e2e import LONG_PROMPT
from sse_client import OpenStream
from raw_http import raw_http

REQUESTS = "logs-llmq.requests-default"  # the spool keeps the stream name of serve's default


def send_mix(srv) -> dict[str, int]:
    """Two completed requests (JSON and SSE), a client that leaves, a 429 and a 400.
    Returns {request id: expected HTTP status}."""
    expected: dict[str, int] = {}
    body = {"prompt": "Hello", "max_tokens": 4, "temperature": 0}
    r = httpx.post(srv.req_url, json={**body, "stream": False}, timeout=60)
    assert r.status_code == 200, r.text
    expected[r.json()["id"]] = 200
    r = httpx.post(srv.req_url, json={"prompt": 5}, timeout=30)  # invalid: prompt not a string
    assert r.status_code == 400, r.text
    expected[r.headers["x-request-id"]] = 400

    # slots=1, queue_max=1: A runs, B waits, C is refused with 429.
    long_body = {"prompt": LONG_PROMPT, "max_tokens": 400, "temperature": 0}
    a = OpenStream(srv.base_url, long_body)
    b = None
    try:
        expected[a.read_until(lambda e: e.event == "queued", "A queued").data["id"]] = 200
        a.read_until(lambda e: e.event == "started", "A started")
        b = OpenStream(srv.base_url, body)
        expected[b.read_until(lambda e: e.event == "queued", "B queued").data["id"]] = 200
        r = httpx.post(srv.req_url, json={**body, "stream": False}, timeout=30)
        assert r.status_code == 429, r.text
        expected[r.headers["x-request-id"]] = 429
    finally:
        a.close()  # A's client leaves: its job is cancelled, its document still written
    b.read_all()
    b.close()
    return expected


def test_documents_reach_elasticsearch_once_each(llmq_factory, elastic, tmp_path):
    ns = new_namespace()
    srv = llmq_factory.start(slots=1, queue_max=1, ctx_size=1024, elastic_url=elastic.url,
                             elastic_namespace=ns, spool_dir=tmp_path / "spool",
                             snapshot_interval_ms=300, service_name="llmq-e2e")
    expected = send_mix(srv)
    time.sleep(1.0)  # a few snapshots while idle, too
    assert srv.stop() == 0, srv.stderr_text(50)  # shutdown flushes what is still queued

    hits = elastic.search_all(requests_stream(ns))
    per_id = collections.Counter(h["_id"] for h in hits)
    assert {i: per_id[i] for i in expected} == {i: 1 for i in expected}, per_id
    assert set(per_id) == set(expected), f"unexpected documents: {set(per_id) - set(expected)}"
    docs = {h["_id"]: h["_source"] for h in hits}
    for rid, status in expected.items():
        d = docs[rid]
        assert d["llmq"]["request_id"] == rid
        assert d["http"]["response"]["status_code"] == status, d
        assert d["service"]["name"] == "llmq-e2e" and d["host"]["name"], d
        assert d["@timestamp"].endswith("Z") and d["event"]["duration"] > 0, d
        assert d["llmq"]["route"] == "/api/v1/req", d
        assert "Hello" not in json.dumps(d) and "1, 2, 3" not in json.dumps(d), d  # no prompts
    refused = {docs[i]["llmq"].get("rejection_reason") for i, s in expected.items() if s != 200}
    assert refused == {"invalid", "queue_full"}, refused
    completed = [docs[i] for i, s in expected.items() if s == 200
                 and docs[i]["llmq"].get("finish_reason") in ("stop", "length")]
    assert len(completed) == 2, [docs[i] for i in expected]
    for d in completed:
        l = d["llmq"]
        assert d["event"]["outcome"] == "success", d
        assert l["tokens"]["prompt"] > 0 and 0 < l["tokens"]["generated"] <= 4, d
        assert l["attempts"] == 1 and l["worker"] and l["model"], d
        assert 0 <= l["queue_ms"] <= l["total_ms"] and l["ttft_ms"] >= 0, d
    for i, s in expected.items():
        if s != 200:
            assert docs[i]["event"]["outcome"] == "failure", docs[i]
    gone = [d for d in docs.values() if d["llmq"].get("rejection_reason") == "client_gone"]
    assert len(gone) == 1 and gone[0]["llmq"]["total_ms"] > 0, gone  # seen by the latency panels

    snapshots = elastic.search_all(runtime_stream(ns))
    assert len(snapshots) >= 2, snapshots
    s = max((h["_source"] for h in snapshots), key=lambda d: d["@timestamp"])
    assert s["service"]["name"] == "llmq-e2e"
    assert s["llmq"]["slots"]["total"] == 1 and s["llmq"]["queue"]["depth"] >= 0, s
    assert s["process"]["memory"]["rss_bytes"] > 0 and s["host"]["memory"]["used_bytes"] > 0, s
    assert any("p95_ms" in h["_source"]["llmq"]["latency"] for h in snapshots), snapshots
    assert any(h["_source"]["llmq"]["tokens_per_s"] > 0 for h in snapshots), snapshots


def test_without_elastic_documents_go_to_the_spool(llmq_factory, tmp_path):
    spool = tmp_path / "spool"
    srv = llmq_factory.start(spool_dir=spool, snapshot_interval_ms=60000)
    r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 2, "stream": False},
                   timeout=60)
    assert r.status_code == 200, r.text
    ok_id = r.json()["id"]
    r = httpx.post(srv.req_url, content=b"{", headers={"content-type": "application/json"},
                   timeout=30)
    assert r.status_code == 400, r.text
    bad_id = r.headers["x-request-id"]
    # Refused by the HTTP server itself (no version): a document without a route or known id.
    assert raw_http(srv.port, b"GET /\r\n\r\n").status == 400
    assert srv.stop() == 0, srv.stderr_text(50)

    records = [json.loads(line) for f in sorted(spool.glob("*.ndjson"))
               for line in f.read_text().splitlines() if line.strip()]
    ids = collections.Counter(r["id"] for r in records if r["stream"] == REQUESTS)
    by_id = {r["id"]: r["doc"] for r in records}
    server_ids = [i for i in ids if i not in (ok_id, bad_id)]
    assert len(server_ids) == 1 and "route" not in by_id[server_ids[0]]["llmq"], records
    assert ids == {ok_id: 1, bad_id: 1, server_ids[0]: 1}, records
    assert by_id[server_ids[0]]["http"]["response"]["status_code"] == 400
    assert by_id[ok_id]["event"]["outcome"] == "success"
    assert by_id[bad_id]["llmq"]["rejection_reason"] == "invalid"


def test_openai_requests_are_documented_with_route_user_and_cached_tokens(llmq_factory, elastic,
                                                                          tmp_path):
    """A request through the OpenAI routes gets its document like any other, with its route,
    the `user` it named, and how many prompt tokens the prefix cache spared, all indexed."""
    ns = new_namespace()
    srv = llmq_factory.start(slots=1, elastic_url=elastic.url, elastic_namespace=ns,
                             spool_dir=tmp_path / "spool")
    system = {"role": "system",
              "content": "You answer questions about the weather in one short sentence. " * 8}
    ids = []
    for question in ("Is it raining?", "Is it sunny?"):
        r = httpx.post(f"{srv.base_url}/v1/chat/completions", timeout=60, json={
            "messages": [system, {"role": "user", "content": question}], "max_tokens": 4,
            "temperature": 0, "user": "end-user-7"})
        assert r.status_code == 200, r.text
        ids.append((r.headers["x-request-id"], r.json()["usage"]))
    r = httpx.post(f"{srv.base_url}/v1/completions", timeout=60,
                   json={"prompt": "Hello", "max_tokens": 2, "temperature": 0})
    assert r.status_code == 200, r.text
    completion_id = r.headers["x-request-id"]
    assert srv.stop() == 0, srv.stderr_text(50)

    docs = {h["_id"]: h["_source"] for h in elastic.search_all(requests_stream(ns))}
    assert set(docs) == {i for i, _ in ids} | {completion_id}, docs
    for rid, usage in ids:
        l = docs[rid]["llmq"]
        assert l["route"] == "/v1/chat/completions" and l["user"] == "end-user-7", l
        assert l["tokens"]["cached"] == usage["prompt_tokens_details"]["cached_tokens"], (l, usage)
    assert docs[ids[1][0]]["llmq"]["tokens"]["cached"] > 0, docs[ids[1][0]]
    assert docs[completion_id]["llmq"]["route"] == "/v1/completions"
    assert "user" not in docs[completion_id]["llmq"]
    # Indexed, not just stored: the template maps both fields.
    found = elastic.search(requests_stream(ns), {"query": {"bool": {"filter": [
        {"term": {"llmq.user": "end-user-7"}}, {"range": {"llmq.tokens.cached": {"gt": 0}}}]}}})
    assert [h["_id"] for h in found["hits"]["hits"]] == [ids[1][0]], found


def test_a_killed_server_loses_no_document(llmq_factory, elastic, tmp_path):
    """SIGKILL right after the answers, while their documents still wait in memory for the
    next batch: the journal (a write-ahead copy) keeps them, and the next start ships each
    exactly once. Before the journal, what sat in the in-memory queue died with the process."""
    ns = new_namespace()
    spool = tmp_path / "spool"
    flags = dict(elastic_url=elastic.url, elastic_namespace=ns, spool_dir=spool,
                 snapshot_interval_ms=60000)
    srv = llmq_factory.start("first", **flags)
    ids = []
    for i in range(12):
        r = httpx.post(srv.req_url, json={"prompt": f"Hi {i}", "max_tokens": 1, "stream": False},
                       timeout=60)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    r = httpx.post(srv.req_url, json={"prompt": 7}, timeout=30)  # a refusal: documented too
    ids.append(r.headers["x-request-id"])
    # A request's document is handed to the sink just after its answer went out; the kill must
    # come after that (microseconds in a release build, more under ASan), and before the next
    # batch, which leaves within the batch interval (1 s) of the first queued document.
    # Every document passes through the journal; a file is deleted a second or more after its
    # last document was shipped, so polling sees each id there.
    journal, seen = spool / "journal", set()
    deadline = time.monotonic() + 10
    while not set(ids) <= seen:
        assert time.monotonic() < deadline, f"never handed to the sink: {set(ids) - seen}"
        for f in journal.glob("journal-*.ndjson"):
            try:
                seen.update(i for i in ids if i in f.read_text())
            except FileNotFoundError:
                pass  # deleted meanwhile: its documents were shipped
        time.sleep(0.01)
    srv.proc.kill()
    srv.proc.wait(10)

    again = llmq_factory.start("second", **flags)
    stream = requests_stream(ns)
    deadline = time.monotonic() + 60
    got: collections.Counter = collections.Counter()
    while time.monotonic() < deadline and not all(got.get(i) for i in ids):
        time.sleep(0.5)
        try:
            got = elastic.ids(stream)
        except httpx.HTTPStatusError:  # the stream is created by the first document shipped
            continue
    assert {i: got.get(i, 0) for i in ids} == {i: 1 for i in ids}, got
    assert again.stop() == 0
    assert not any(spool.glob("journal/journal-*.ndjson")), "a clean stop leaves no journal"
