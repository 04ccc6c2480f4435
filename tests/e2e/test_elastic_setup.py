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
