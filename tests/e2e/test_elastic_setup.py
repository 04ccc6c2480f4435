"""`llmq elastic setup` and `llmq elastic replay` against the real Elasticsearch node: the index
templates (idempotent, retention, every written field mapped with a fitting type, real data
streams), serve --elastic-setup, replaying a spool exactly once, and one process per spool."""

from __future__ import annotations

import json
import time

import httpx

from elastic_node import (TEMPLATES, elastic_setup, new_namespace, requests_stream, run_llmq,
                          runtime_stream)
from llmq_e2e import free_port
from stand_in_http import Recorded, StandInServer
from test_elastic import send_mix


def leaves(doc: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for key, value in doc.items():
        path = prefix + key
        if isinstance(value, dict):
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


def mapped_types(properties: dict, prefix: str = "") -> dict[str, str]:
    """The leaf fields of a mapping's properties: {"llmq.queue_ms": "double", ...}."""
    out = {}
    for name, spec in properties.items():
        if "properties" in spec:
            out.update(mapped_types(spec["properties"], prefix + name + "."))
        else:
            out[prefix + name] = spec["type"]
    return out


FITTING = {str: {"keyword", "date"}, bool: {"boolean"}, int: {"long", "integer", "double"},
           float: {"double"}}


def test_setup_installs_both_templates_and_is_idempotent(elastic):
    for _ in range(2):  # the second run changes nothing and succeeds too
        r = elastic_setup(elastic.url)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("installed") == 2, r.stdout
    for name, path in TEMPLATES.items():
        installed = elastic.template(name)
        ours = json.loads(path.read_text())
        assert installed["index_patterns"] == ours["index_patterns"]
        assert "data_stream" in installed, installed
        assert installed["template"]["mappings"] == ours["template"]["mappings"], name
        assert installed["template"]["lifecycle"]["data_retention"] == \
            ours["template"]["lifecycle"]["data_retention"]


def stream_fields(elastic, stream: str) -> dict[str, dict]:
    """What a Kibana data view asks Elasticsearch for its fields: _field_caps on the stream."""
    r = httpx.get(f"{elastic.url}/{stream}/_field_caps", params={"fields": "*"}, timeout=30)
    assert r.status_code == 200, r.text
    return {name: next(iter(caps.values())) for name, caps in r.json()["fields"].items()
            if not name.startswith("_")}


def test_setup_creates_both_data_streams_so_the_data_views_have_fields_on_day_one(elastic):
    ns = new_namespace()
    r = elastic_setup(elastic.url, "--elastic-namespace", ns)
    assert r.returncode == 0, r.stderr
    for name, stream in (("logs-llmq.requests", requests_stream(ns)),
                         ("metrics-llmq.runtime", runtime_stream(ns))):
        assert f"data stream {stream} created" in r.stdout, r.stdout
        # A real data stream (a hidden .ds- backing index), and empty.
        backing = elastic.backing_indices(stream)
        assert backing and all(i.startswith(f".ds-{stream}-") for i in backing), backing
        assert elastic.search(stream, {"size": 0})["hits"]["total"]["value"] == 0
        # Every field of the template, aggregatable, before llmq wrote a document.
        fields = stream_fields(elastic, stream)
        mapping = mapped_types(json.loads(TEMPLATES[name].read_text())["template"]["mappings"]["properties"])
        assert set(mapping) <= set(fields), sorted(set(mapping) - set(fields))
        for path, type_ in mapping.items():
            assert fields[path]["type"] == type_ and fields[path]["aggregatable"], (path, fields[path])
    again = elastic_setup(elastic.url, "--elastic-namespace", ns)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("exists; its mappings are up to date") == 2, again.stdout


def test_setup_adds_new_fields_to_a_stream_an_older_llmq_created(elastic):
    """A runtime stream from before llmq.worker existed gets the field at setup, not at the
    next rollover (days away), so the per-worker panels work at once."""
    ns = new_namespace()
    older = json.loads(TEMPLATES["metrics-llmq.runtime"].read_text())
    del older["template"]["mappings"]["properties"]["llmq"]["properties"]["worker"]
    older["version"] = 1
    try:
        httpx.put(f"{elastic.url}/_index_template/metrics-llmq.runtime", json=older,
                  timeout=30).raise_for_status()
        # The stream as an older llmq's first snapshot made it.
        httpx.put(f"{elastic.url}/{runtime_stream(ns)}/_create/old-1", timeout=30,
                  json={"@timestamp": "2026-01-01T00:00:00.000Z"}).raise_for_status()
        assert "llmq.worker" not in stream_fields(elastic, runtime_stream(ns))
        r = elastic_setup(elastic.url, "--elastic-namespace", ns)
        assert r.returncode == 0, r.stderr
        assert f"data stream {runtime_stream(ns)} exists; its mappings are up to date" in r.stdout
        assert stream_fields(elastic, runtime_stream(ns))["llmq.worker"]["type"] == "keyword"
    finally:
        assert elastic_setup(elastic.url).returncode == 0


def test_setup_namespace_is_checked_before_anything_is_sent(elastic):
    r = elastic_setup(elastic.url, "--elastic-namespace", "Has-Dash")
    assert r.returncode == 2 and "--elastic-namespace" in r.stderr, r.stderr


def test_setup_retention_flags(elastic):
    try:
        r = elastic_setup(elastic.url, "--requests-retention", "90d", "--runtime-retention", "")
        assert r.returncode == 0, r.stderr
        assert elastic.template("logs-llmq.requests")["template"]["lifecycle"]["data_retention"] == "90d"
        assert "data_retention" not in elastic.template("metrics-llmq.runtime")["template"]["lifecycle"]
    finally:
        assert elastic_setup(elastic.url).returncode == 0  # back to the defaults for other tests


def test_setup_failures_are_one_clear_line():
    port = free_port()  # nothing listens there
    r = elastic_setup(f"http://127.0.0.1:{port}")
    assert r.returncode == 1
    assert r.stderr.startswith("llmq: cannot reach Elasticsearch at http://127.0.0.1:") and \
        r.stderr.count("\n") == 1, r.stderr
    r = run_llmq("elastic", "setup")
    assert r.returncode == 2 and "--elastic-url is required" in r.stderr, r.stderr
    r = elastic_setup("http://user:secret@127.0.0.1:%d" % port)
    assert r.returncode == 1 and "secret" not in r.stderr and "***@" in r.stderr, r.stderr


def test_every_written_field_is_mapped_with_a_fitting_type(llmq_factory, elastic, tmp_path):
    ns = new_namespace()
    srv = llmq_factory.start(slots=1, queue_max=1, ctx_size=1024, elastic_url=elastic.url,
                             elastic_namespace=ns, spool_dir=tmp_path / "spool",
                             snapshot_interval_ms=300)
    send_mix(srv)
    time.sleep(1.0)
    assert srv.stop() == 0, srv.stderr_text(50)
    for name, stream in (("logs-llmq.requests", requests_stream(ns)),
                         ("metrics-llmq.runtime", runtime_stream(ns))):
        # A real data stream: its documents live in a hidden .ds- backing index.
        backing = elastic.backing_indices(stream)
        assert backing and all(i.startswith(f".ds-{stream}-") for i in backing), backing
        mapping = mapped_types(json.loads(TEMPLATES[name].read_text())["template"]["mappings"]["properties"])
        docs = [h["_source"] for h in elastic.search_all(stream)]
        assert docs, stream
        seen = set()
        for doc in docs:
            for path, value in leaves(doc).items():
                seen.add(path)
                assert path in mapping, f"{stream}: {path} is written but not in the template"
                assert mapping[path] in FITTING[type(value)], \
                    f"{stream}: {path}={value!r} is mapped as {mapping[path]}"
        # Every field is searchable as mapped: a range query on a numeric one, a term on a keyword.
        if name == "logs-llmq.requests":
            hits = elastic.search(stream, {"query": {"range": {"llmq.total_ms": {"gte": 0}}}})
            assert hits["hits"]["total"]["value"] > 0
            hits = elastic.search(stream, {"query": {"term": {"llmq.rejection_reason": "queue_full"}}})
            assert hits["hits"]["total"]["value"] == 1, hits


def test_serve_elastic_setup_installs_the_templates_before_the_first_document(llmq_factory, elastic, tmp_path):
    elastic.delete_templates()
    try:
        ns = new_namespace()
        srv = llmq_factory.start(elastic_url=elastic.url, elastic_setup=True, elastic_namespace=ns,
                                 spool_dir=tmp_path / "spool", snapshot_interval_ms=60000)
        r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 2, "stream": False}, timeout=60)
        assert r.status_code == 200, r.text
        assert srv.stop() == 0, srv.stderr_text(50)
        assert elastic.template("logs-llmq.requests") is not None
        assert elastic.template("metrics-llmq.runtime") is not None
        # No snapshot was due (every 60 s), yet the runtime stream is there with its fields.
        assert elastic.search(runtime_stream(ns), {"size": 0})["hits"]["total"]["value"] == 0
        assert "process.cpu.pct" in stream_fields(elastic, runtime_stream(ns))
        backing = elastic.backing_indices(requests_stream(ns))
        assert backing[0].startswith(".ds-"), backing
        mapping = httpx.get(f"{elastic.url}/{requests_stream(ns)}/_mapping", timeout=30).json()
        assert mapping[backing[0]]["mappings"]["dynamic"] == "false", mapping
    finally:
        assert elastic_setup(elastic.url).returncode == 0


def spooled_ids(spool) -> list[str]:
    return [json.loads(line)["id"] for f in sorted(spool.glob("spool-*.ndjson"))
            for line in f.read_text().splitlines() if line.strip()]


def test_replay_sends_a_spool_exactly_once(llmq_factory, elastic, tmp_path):
    ns = new_namespace()
    spool = tmp_path / "spool"
    srv = llmq_factory.start(elastic_namespace=ns, spool_dir=spool, snapshot_interval_ms=60000)
    ids = []
    for i in range(5):
        r = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 2, "stream": False}, timeout=60)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    assert srv.stop() == 0, srv.stderr_text(50)
    assert set(ids) <= set(spooled_ids(spool))

    # Elasticsearch unreachable: replay gives up after its timeout and keeps every document.
    before = spooled_ids(spool)
    r = run_llmq("elastic", "replay", "--elastic-url", f"http://127.0.0.1:{free_port()}",
                 "--spool-dir", str(spool), "--timeout-ms", "1500")
    assert r.returncode == 1 and "still in" in r.stderr, (r.stdout, r.stderr)
    assert sorted(spooled_ids(spool)) == sorted(before)

    for attempt in range(2):  # a second replay of an empty spool stores nothing twice
        r = run_llmq("elastic", "replay", "--elastic-url", elastic.url, "--spool-dir", str(spool),
                     "--timeout-ms", "60000")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert spooled_ids(spool) == []
        counts = elastic.ids(requests_stream(ns))
        assert {i: counts[i] for i in ids} == {i: 1 for i in ids}, counts

    r = run_llmq("elastic", "replay", "--elastic-url", elastic.url, "--spool-dir", str(tmp_path / "none"))
    assert r.returncode == 1 and "no spool directory" in r.stderr, r.stderr


def test_one_process_per_spool_directory(llmq_factory, tmp_path):
    spool = tmp_path / "spool"
    first = llmq_factory.start(spool_dir=spool, snapshot_interval_ms=60000)
    r = run_llmq("serve", "--spool-dir", str(spool), "--port", str(free_port()), timeout=30)
    assert r.returncode != 0 and "in use by another llmq process" in r.stderr, r.stderr
    first.assert_serving()
    r = run_llmq("elastic", "replay", "--elastic-url", "http://127.0.0.1:1", "--spool-dir", str(spool))
    assert r.returncode == 1 and "in use by another llmq process" in r.stderr, r.stderr


class StandInElastic(StandInServer):
    """Answers like a default Elasticsearch distribution's GET /, PUT _index_template/<name>,
    PUT _data_stream/<name> (which the suite's integ-test node lacks) and PUT <stream>/_mapping,
    recording each request. `forbid_streams`: PUT _data_stream answers 403."""

    def __init__(self, forbid_streams: bool = False):
        self.forbid_streams = forbid_streams
        self.streams: set[str] = set()
        super().__init__()

    def answer(self, req: Recorded) -> tuple[int, dict]:
        method, path = req.method, req.path
        if method == "GET" and path == "/":
            return 200, {"version": {"number": "9.1.0"}}
        if method == "PUT" and path.startswith("/_index_template/"):
            return 200, {"acknowledged": True}
        if method == "PUT" and path.startswith("/_data_stream/"):
            name = path.rsplit("/", 1)[1]
            if self.forbid_streams:
                return 403, {"error": {"type": "security_exception", "reason": "unauthorized"},
                             "status": 403}
            if name in self.streams:
                return 400, {"error": {"type": "resource_already_exists_exception",
                                       "reason": f"data_stream [{name}] already exists"},
                             "status": 400}
            self.streams.add(name)
            return 200, {"acknowledged": True}
        if method == "PUT" and path.endswith("/_mapping") and path[1:-len("/_mapping")] in self.streams:
            return 200, {"acknowledged": True}
        return 404, {"error": {"type": "not_found"}, "status": 404}


def test_setup_uses_the_data_stream_api_where_elasticsearch_has_it():
    """The suite's node lacks PUT _data_stream (its creation goes through a placeholder write);
    a default distribution has it, and setup uses it: created once, then its mappings updated."""
    es = StandInElastic()
    try:
        r = elastic_setup(es.url, "--elastic-namespace", "prod")
        assert r.returncode == 0, r.stderr
        assert es.streams == {"logs-llmq.requests-prod", "metrics-llmq.runtime-prod"}
        assert r.stdout.count(" created") == 2, r.stdout
        assert not [q for q in es.requests if "_create" in q.path or q.method == "DELETE"], es.requests
        es.requests.clear()
        r = elastic_setup(es.url, "--elastic-namespace", "prod")
        assert r.returncode == 0, r.stderr
        mappings = {q.path[1:-len("/_mapping")]: json.loads(q.body) for q in es.requests
                    if q.path.endswith("/_mapping")}
        for name, path in TEMPLATES.items():
            assert mappings[f"{name}-prod"] == json.loads(path.read_text())["template"]["mappings"]
    finally:
        es.close()


def test_setup_says_which_privilege_a_data_stream_needs():
    es = StandInElastic(forbid_streams=True)
    try:
        r = elastic_setup(es.url, "--elastic-namespace", "prod")
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and "403" in r.stderr and \
            "create_index privilege on logs-llmq.requests-prod" in r.stderr, r.stderr
    finally:
        es.close()
