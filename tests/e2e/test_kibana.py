"""llmq's Kibana dashboard without a Kibana (none runs on this machine): what can be tested.

1. Every field a Lens panel reads exists in the index template behind its data view, with a type
   the operation works on (static; test_deploy_files checks the NDJSON's shape, references and a
   hand-kept field list).
2. Every panel's aggregation, issued as the Elasticsearch query Lens would send, against the
   suite's real node holding documents a real `llmq serve` wrote, is accepted and returns data.
   The panels are read from the NDJSON, so a new panel is covered without touching this file.

`llmq kibana setup` against a stand-in Kibana is tested in test_kibana_setup.py.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

import kibana_panels as kp
from elastic_node import new_namespace, requests_stream, runtime_stream
from llmq_e2e import LlmqServer
from scale_out import NatsServer, ScaleOut
from test_elastic import send_mix

OBJECTS = kp.load_objects()
TEMPLATES = kp.load_templates()
LENS = kp.lens_objects(OBJECTS)
LENS_IDS = [o["id"] for o in LENS]

# Filtered counts nothing in the test's traffic produces yet: llmq does not retry a request
# (every document has llmq.attempts 1), so "Retried (attempts > 1)" is 0 in every bucket. Such a
# column may be all zeros; any other filtered count must count something, so that a filter that
# can never match (a wrong field or value) is noticed.
NOT_PRODUCED_YET = {"llmq.attempts > 1"}


def time_range_of(vis: dict) -> tuple[str, str]:
    """The time range of the dashboard that shows `vis` (what Kibana queries with)."""
    for d in (o for o in OBJECTS if o["type"] == "dashboard"):
        if any(r["type"] == "lens" and r["id"] == vis["id"] for r in d["references"]):
            a = d["attributes"]
            return a["timeFrom"], a["timeTo"]
    return "now-15m", "now"  # Kibana's default


# ---- 1. fields vs the index templates ---------------------------------------------------------

def test_panel_fields_exist_in_the_template_with_a_fitting_type():
    assert LENS, "no Lens objects in the NDJSON"
    problems = []
    for vis in LENS:
        for layer in kp.layers_of(vis, OBJECTS):
            title = f"{layer.title!r} ({layer.pattern})"
            mapping = kp.flatten_mapping(
                kp.template_for(layer.pattern, TEMPLATES)["template"]["mappings"]["properties"])
            uses: list[tuple[str, frozenset[str] | None, str]] = []  # field, types, why
            for col_id, col in layer.columns.items():
                op = col["operationType"]
                assert op in kp.OPERATION_TYPES, f"{title}: column {col_id}: unknown operation {op!r}"
                if col.get("sourceField") and col["sourceField"] != kp.RECORDS:
                    uses.append((col["sourceField"], kp.OPERATION_TYPES[op], f"{op} column {col_id}"))
                if col.get("filter"):
                    c = kp.parse_kql(kp.kuery(col["filter"], title))
                    if c:
                        uses.append((c.field, kp.kql_types(c), f"filter of column {col_id}"))
            c = kp.parse_kql(kp.kuery(layer.query, title))
            if c:
                uses.append((c.field, kp.kql_types(c), "panel query"))
            for f, types, why in uses:
                if f not in mapping:
                    problems.append(f"{title}: {why}: field {f} is not in the index template")
                elif types is not None and mapping[f] not in types:
                    problems.append(f"{title}: {why}: field {f} is {mapping[f]}, "
                                    f"needs one of {sorted(types)}")
    assert not problems, "\n".join(problems)


def test_kql_translator_refuses_forms_it_does_not_know():
    """A panel with KQL the translator cannot read must fail the tests, not pass untested."""
    assert kp.kql_to_es('event.outcome : "failure"') == {"term": {"event.outcome": "failure"}}
    assert kp.kql_to_es("llmq.attempts >= 2") == {"range": {"llmq.attempts": {"gte": 2}}}
    assert kp.kql_to_es("llmq.rejection_reason : *") == {"exists": {"field": "llmq.rejection_reason"}}
    for q in ('event.outcome : "failure" and llmq.attempts > 1', "not llmq.worker : *",
              "event.outcome : fail*", "llmq.attempts > abc", "http.response.status_code : 429"):
        with pytest.raises(kp.UnsupportedKql):
            kp.kql_to_es(q)


# ---- 2. panel aggregations against the real node ---------------------------------------------

@pytest.fixture(scope="module")
def mix_ns() -> str:
    return new_namespace("kb")


@pytest.fixture(scope="module")
def mix_server(elastic, mix_ns, tmp_path_factory, _prerequisites):
    """A server that wrote send_mix's documents, 20 more refused requests (so more requests than
    the slowest-requests table lists) and a few runtime snapshots into `mix_ns`, then stopped
    (which flushes them)."""
    logs = tmp_path_factory.mktemp("kibana-mix")
    srv = LlmqServer(logs, dict(slots=1, queue_max=1, ctx_size=1024, elastic_url=elastic.url,
                                elastic_namespace=mix_ns, spool_dir=logs / "spool",
                                snapshot_interval_ms=300), name="kibana-mix")
    try:
        srv.start()
        srv.expected = send_mix(srv)
        with httpx.Client(timeout=30) as client:
            for _ in range(20):
                r = client.post(srv.req_url, json={"prompt": 5})  # 400: prompt not a string
                assert r.status_code == 400, r.text
                srv.expected[r.headers["x-request-id"]] = 400
        time.sleep(1.5)  # a few runtime snapshots
        assert srv.stop() == 0, srv.stderr_text(50)
        yield srv
    finally:
        srv.stop()


def run_panel(elastic, layer: kp.Layer, ns: str) -> tuple[kp.PanelSearch, list[dict]]:
    search = kp.panel_search(layer, ns, time_range_of(layer.vis))
    elastic.refresh(search.index)
    answer = elastic.search(search.index, search.body)  # asserts 200, with ES's reason if not
    assert not answer.get("timed_out") and answer["_shards"]["failed"] == 0, answer
    return search, kp.rows(search, answer)


@pytest.mark.parametrize("lens_id", LENS_IDS)
def test_panel_aggregation_returns_data(elastic, mix_ns, mix_server, lens_id):
    vis = next(o for o in LENS if o["id"] == lens_id)
    for layer in kp.layers_of(vis, OBJECTS):
        search, table = run_panel(elastic, layer, mix_ns)
        where = f"{layer.title!r} on {search.index}: {json.dumps(search.body)}"
        assert table, f"{where}\nno buckets"
        for m in layer.metrics:
            col = layer.columns[m]
            values = [r[m] for r in table]
            if col["operationType"] == "count":
                filt = (col.get("filter") or {}).get("query")
                if filt in NOT_PRODUCED_YET:
                    assert all(isinstance(v, int) and v >= 0 for v in values), (where, values)
                    continue
                assert any(v for v in values), f"{where}\ncount column {m} ({filt}) is 0 everywhere"
            else:
                assert any(v is not None for v in values), \
                    f"{where}\nmetric column {m} ({col['label']}) has no value in any bucket: {table}"


def counted_by_terms(field: str) -> kp.Layer:
    """The layer that counts documents split by terms of `field`."""
    found = [l for vis in LENS for l in kp.layers_of(vis, OBJECTS)
             if any(c["operationType"] == "terms" and c["sourceField"] == field
                    for c in l.columns.values())
             and [l.columns[m]["operationType"] for m in l.metrics] == ["count"]
             and not l.columns[l.metrics[0]].get("filter")]
    assert len(found) == 1, f"{len(found)} panels count documents by {field}"
    return found[0]


def test_panel_aggregation_matches_documents(elastic, mix_ns, mix_server):
    """The counts the panels draw add up to the documents llmq wrote: the request-rate bars to
    one per request, the rejection bars to the refused requests by reason."""
    hits = elastic.search_all(requests_stream(mix_ns))
    docs = [h["_source"] for h in hits]
    assert {d["llmq"]["request_id"] for d in docs} == set(mix_server.expected), docs

    layer = counted_by_terms("event.outcome")
    _, table = run_panel(elastic, layer, mix_ns)
    (outcome,) = [c for c in layer.buckets if layer.columns[c]["operationType"] == "terms"]
    (count,) = layer.metrics
    got: dict[str, int] = {}
    for r in table:
        got[r[outcome]] = got.get(r[outcome], 0) + r[count]
    want: dict[str, int] = {}
    for d in docs:
        want[d["event"]["outcome"]] = want.get(d["event"]["outcome"], 0) + 1
    assert got == want and want.get("success") and want.get("failure"), (got, want)

    layer = counted_by_terms("llmq.rejection_reason")
    _, table = run_panel(elastic, layer, mix_ns)
    (reason,) = [c for c in layer.buckets if layer.columns[c]["operationType"] == "terms"]
    (count,) = layer.metrics
    got = {}
    for r in table:
        got[r[reason]] = got.get(r[reason], 0) + r[count]
    assert {"queue_full", "invalid"} <= set(got), got
    want = {}
    for d in docs:
        if d["llmq"].get("rejection_reason"):
            want[d["llmq"]["rejection_reason"]] = want.get(d["llmq"]["rejection_reason"], 0) + 1
    assert got == want, (got, want)


def test_slowest_requests_table_top_row_is_the_slowest_request(elastic, mix_ns, mix_server):
    tables = [o for o in LENS if o["attributes"]["visualizationType"] == "lnsDatatable"
              and o["attributes"]["title"] == "Slowest requests"]
    assert len(tables) == 1, [o["attributes"]["title"] for o in LENS]
    (layer,) = kp.layers_of(tables[0], OBJECTS)
    _, table = run_panel(elastic, layer, mix_ns)
    (rid,) = [c for c in layer.buckets if layer.columns[c]["sourceField"] == "llmq.request_id"]
    total = layer.columns[rid]["params"]["orderBy"]["columnId"]
    assert layer.columns[total]["sourceField"] == "llmq.total_ms"

    docs = [h["_source"] for h in elastic.search_all(requests_stream(mix_ns))]
    timed = [d for d in docs if d["llmq"].get("total_ms") is not None]
    assert len(timed) >= 2, "\n".join(json.dumps({k: d[k] for k in ("event", "http", "llmq")}) for d in docs)
    slowest = max(timed, key=lambda d: d["llmq"]["total_ms"])
    assert table[0][rid] == slowest["llmq"]["request_id"], (table, slowest)
    assert table[0][total] == pytest.approx(slowest["llmq"]["total_ms"])
    shown = [r[total] for r in table if r[total] is not None]
    assert shown == sorted(shown, reverse=True), table
    # More requests than the table lists: exactly its top N, no row "Other" after them.
    assert len({d["llmq"]["request_id"] for d in docs}) > layer.columns[rid]["params"]["size"]
    assert len(table) == layer.columns[rid]["params"]["size"], table
    assert kp.OTHER not in [r[rid] for r in table], table


def test_resource_panels_read_in_percent_and_bytes(elastic, mix_ns, mix_server):
    """What the CPU and memory panels draw from a real llmq's snapshots: "3.5%" and "412.3MB",
    not 0.035 and 432345088."""
    seen = {"percent": 0, "bytes": 0}
    for vis in LENS:
        for layer in kp.layers_of(vis, OBJECTS):
            cols = {m: layer.columns[m] for m in layer.metrics
                    if layer.columns[m].get("sourceField", "").endswith((".pct", "_bytes"))}
            if not cols:
                continue
            _, table = run_panel(elastic, layer, mix_ns)
            for m, col in cols.items():
                shown = [kp.display(col, r[m]) for r in table if r[m] is not None]
                assert shown, f"{layer.title}: {m} has no value"
                if col["sourceField"].endswith(".pct"):
                    seen["percent"] += 1
                    for text in shown:
                        assert re.fullmatch(r"\d{1,3}\.\d%", text), f"{layer.title}: {m} reads {text}"
                else:
                    seen["bytes"] += 1
                    for text in shown:
                        assert re.fullmatch(r"\d{1,4}\.\d[KMGT]B", text), f"{layer.title}: {m} reads {text}"
    assert seen["percent"] >= 2 and seen["bytes"] >= 2, seen


def worker_layer(lens_id: str) -> kp.Layer:
    (vis,) = [o for o in LENS if o["id"] == lens_id]
    (layer,) = kp.layers_of(vis, OBJECTS)
    return layer


@pytest.mark.slow
def test_per_worker_panels_show_each_scale_out_worker(elastic, llmq_factory, tmp_path):
    """Workers have no Elasticsearch: their heartbeats carry their CPU and memory, and the
    gateway writes them. The per-worker panels then draw one series per worker process, in
    percent and bytes; the gateway's own snapshots are not among them."""
    ns = new_namespace("kbw")
    nats = NatsServer(tmp_path).start()
    try:
        cluster = ScaleOut(llmq_factory, nats)
        gateway = cluster.start_gateway("--elastic-url", elastic.url, "--elastic-namespace", ns,
                                        "--spool-dir", str(tmp_path / "spool"),
                                        "--snapshot-interval-ms", "500")
        workers = [cluster.start_worker(), cluster.start_worker()]
        r = httpx.post(gateway.req_url, json={"prompt": "Hello", "max_tokens": 8, "stream": False},
                       timeout=120)
        assert r.status_code == 200, r.text
        pids = {str(w.proc.pid) for w in workers}

        def loaded_workers() -> set[str]:
            """The workers with a snapshot taken once their model was loaded (slots 2)."""
            return {d["llmq"]["worker"].rsplit("/", 1)[1]
                    for d in (h["_source"] for h in elastic.search_all(runtime_stream(ns)))
                    if d["llmq"].get("worker") and d["llmq"]["slots"]["total"] == 2
                    and "pct" in d["host"]["cpu"]}

        deadline = time.monotonic() + 60  # a heartbeat every 2 s; a busy machine ships slowly
        while loaded_workers() != pids and time.monotonic() < deadline:
            time.sleep(0.5)
        assert gateway.stop() == 0, gateway.stderr_text(50)
    finally:
        llmq_factory.stop_all()
        nats.stop()

    docs = [h["_source"] for h in elastic.search_all(runtime_stream(ns))]
    per_worker = [d for d in docs if d["llmq"].get("worker")]
    assert {d["llmq"]["worker"].rsplit("/", 1)[1] for d in per_worker} == pids, docs
    for d in per_worker:  # a worker's: its resources and slots, not the queue the gateway sees
        # CPU shares over 0.5 s at least: none on a worker's first heartbeat, at its start.
        assert 0 <= d["process"]["cpu"].get("pct", 0) <= 1, d
        assert d["process"]["memory"]["rss_bytes"] > 10**7, d
        assert d["llmq"]["slots"]["total"] in (0, 2) and "queue" not in d["llmq"], d  # 0: loading
        assert d["host"]["name"] and d["llmq"]["worker"].startswith(d["host"]["name"] + "/"), d
    # Once its model is loaded, each worker reports its slots and its host's CPU use.
    assert loaded_workers() == pids, \
        sorted((d["llmq"]["worker"], d["@timestamp"], d["llmq"]["slots"]["total"], d["host"]["cpu"])
               for d in per_worker)
    assert any("queue" in d["llmq"] for d in docs if not d["llmq"].get("worker")), "gateway snapshots"

    for lens_id, unit in (("llmq-lens-worker-cpu", r"\d{1,3}\.\d%"),
                          ("llmq-lens-worker-memory", r"\d{1,4}\.\d[KMG]B")):
        layer = worker_layer(lens_id)
        _, table = run_panel(elastic, layer, ns)
        (split,) = [c for c in layer.buckets if layer.columns[c]["operationType"] == "terms"]
        (metric,) = layer.metrics
        assert {r[split].rsplit("/", 1)[1] for r in table} == pids, (lens_id, table)
        for row in table:
            if row[metric] is not None:
                text = kp.display(layer.columns[metric], row[metric])
                assert re.fullmatch(unit, text), (lens_id, text)
