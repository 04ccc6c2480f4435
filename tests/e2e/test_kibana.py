"""llmq's Kibana dashboard without a Kibana (none runs on this machine): what can be tested.

1. Every field a Lens panel reads exists in the index template behind its data view, with a type
   the operation works on (static; test_deploy_files checks the NDJSON's shape, references and a
   hand-kept field list).
2. Every panel's aggregation, issued as the Elasticsearch query Lens would send, against the
   suite's real node holding documents a real `llmq serve` wrote, is accepted and returns data.
   The panels are read from the NDJSON, so a new panel is covered without touching this file.
3. `llmq kibana setup` against a stand-in Kibana (a small HTTP server in this process that
   records what it receives and answers like Kibana's status and saved-objects import APIs):
   the upload, space, auth, and the errors a user gets.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import kibana_panels as kp
from elastic_node import new_namespace, requests_stream, run_llmq, runtime_stream
from llmq_e2e import LlmqServer, free_port
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


# ---- 3. `llmq kibana setup` against a stand-in Kibana -----------------------------------------

NDJSON_BYTES = kp.NDJSON.read_bytes()
N_OBJECTS = len(OBJECTS)


@dataclass
class Recorded:
    method: str
    path: str  # with the query
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)


class StandInKibana:
    """Answers like Kibana's GET /api/status and POST [/s/<space>]/api/saved_objects/_import,
    recording every request. `import_refuses`: an object id the import reports as failed.

    Like Kibana 8+, an id is global for the `multiple-isolated` types (lens, dashboard): the
    first space to import one keeps its id; another space gets a copy under a new id, reported
    as `destinationId`, and keeps that copy on every later import (Kibana finds it by origin)."""

    def __init__(self, version: str = "9.5.0", status_code: int = 200,
                 spaces: tuple[str, ...] = ("default", "ops"), import_refuses: str | None = None):
        self.version, self.status_code = version, status_code
        self.spaces, self.import_refuses = spaces, import_refuses
        self.requests: list[Recorded] = []
        self.uploads: list[dict] = []  # the parsed multipart file part of each import
        self.owner: dict[tuple[str, str], str] = {}  # (type, id) -> the space that holds the id
        self.copies: dict[tuple[str, str, str], str] = {}  # (space, type, origin id) -> its id
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def imports(self) -> list[Recorded]:
        return [r for r in self.requests if r.route.endswith("/api/saved_objects/_import")]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- answers --

    def answer(self, req: Recorded) -> tuple[int, dict]:
        parts = req.route.split("/")
        space = "default"
        route = req.route
        if len(parts) > 3 and parts[1] == "s":
            space, route = parts[2], "/" + "/".join(parts[3:])
        if space not in self.spaces:
            return 404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"}
        if req.method == "GET" and route == "/api/status":
            if self.status_code != 200:
                return self.status_code, {"statusCode": self.status_code, "error": "Unauthorized",
                                          "message": "[security_exception]: unable to authenticate"}
            return 200, {"name": "stand-in", "version": {"number": self.version,
                                                         "build_flavor": "traditional"},
                         "status": {"overall": {"level": "available"}}}
        if req.method == "POST" and route == "/api/saved_objects/_import":
            if "kbn-xsrf" not in req.headers:
                return 400, {"statusCode": 400, "error": "Bad Request",
                             "message": "Request must contain a kbn-xsrf header."}
            upload = parse_upload(req)
            if upload is None:
                return 400, {"statusCode": 400, "error": "Bad Request",
                             "message": "[request body.file]: expected value of type [Stream]"}
            self.uploads.append(upload)
            objs = [json.loads(line) for line in upload["content"].decode("utf-8").splitlines()
                    if line.strip()]
            ok = [o for o in objs if o["id"] != self.import_refuses]
            bad = [o for o in objs if o["id"] == self.import_refuses]
            answer = {"success": not bad, "successCount": len(ok),
                      "successResults": [self.place(space, o) for o in ok]}
            if bad:
                answer["errors"] = [{"type": o["type"], "id": o["id"],
                                     "meta": {"title": o["attributes"].get("title")},
                                     "error": {"type": "missing_references",
                                               "references": [{"type": "index-pattern",
                                                               "id": "nowhere"}]}} for o in bad]
            return 200, answer
        return 404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"}

    def place(self, space: str, o: dict) -> dict:
        result = {"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"].get("title")}}
        if o["type"] not in ("lens", "dashboard"):
            return result
        owner = self.owner.setdefault((o["type"], o["id"]), space)
        if owner != space:
            key = (space, o["type"], o["id"])
            result["destinationId"] = self.copies.setdefault(key, f"copy-{len(self.copies)}-{o['id']}")
        return result

    def _handler(self):
        kibana = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers curl's Expect: 100-continue at once

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Recorded(self.command, self.path,
                               {k.lower(): v for k, v in self.headers.items()}, body)
                with kibana._lock:
                    kibana.requests.append(req)
                    status, answer = kibana.answer(req)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args):
                pass

        return Handler


def parse_upload(req: Recorded) -> dict | None:
    """The `file` part of a multipart/form-data body: {"content", "filename", "content_type"}."""
    ctype = req.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return None
    msg = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + req.body)
    if not msg.is_multipart() or msg.defects:
        return None
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return {"content": part.get_payload(decode=True), "filename": part.get_filename(),
                    "content_type": part.get_content_type()}
    return None


@pytest.fixture
def kibana():
    made: list[StandInKibana] = []

    def make(**kw) -> StandInKibana:
        made.append(StandInKibana(**kw))
        return made[-1]

    yield make
    for k in made:
        k.close()


def kibana_setup(url: str, *extra: str):
    return run_llmq("kibana", "setup", "--kibana-url", url, *extra, timeout=60)


def assert_one_error_line(r, *needles: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmq: "), r.stderr
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def test_setup_imports_into_a_space_with_an_api_key(kibana):
    k = kibana(version="9.5.0")
    r = kibana_setup(k.url, "--space", "ops", "--kibana-api-key", "S0meKey==")
    assert r.returncode == 0, r.stderr
    assert str(N_OBJECTS) in r.stdout.split() and "ops" in r.stdout, r.stdout
    (imp,) = k.imports()
    assert imp.method == "POST" and imp.route == "/s/ops/api/saved_objects/_import", imp.path
    assert imp.params.get("overwrite") == ["true"], imp.path
    assert imp.headers.get("kbn-xsrf"), imp.headers
    for req in k.requests:  # the status check too
        assert req.headers.get("authorization") == "ApiKey S0meKey==", (req.path, req.headers)
    (upload,) = k.uploads
    assert upload["content"] == NDJSON_BYTES, "the uploaded file is not kibana/llmq-saved-objects.ndjson"
    assert upload["filename"].endswith(".ndjson"), upload["filename"]  # Kibana checks the extension


def test_setup_default_space_with_basic_auth(kibana):
    k = kibana(version="8.8.0")  # the oldest Kibana the objects' migration versions allow
    r = kibana_setup(k.url + "/", "--kibana-user", "elastic", "--kibana-password", "pa:ss")
    assert r.returncode == 0, r.stderr
    assert str(N_OBJECTS) in r.stdout.split() and "default" in r.stdout, r.stdout
    (imp,) = k.imports()
    assert imp.route == "/api/saved_objects/_import", imp.path
    assert imp.params.get("overwrite") == ["true"], imp.path
    basic = "Basic " + base64.b64encode(b"elastic:pa:ss").decode()
    assert imp.headers.get("authorization") == basic, imp.headers
    assert k.uploads[0]["content"] == NDJSON_BYTES


def test_setup_prints_where_the_dashboard_is_in_each_space(kibana):
    """The fixed id holds in the first space only: the line names the dashboard's address in the
    space imported into, the id Kibana gave its copy there included."""
    k = kibana()
    first = f"dashboard: {k.url}/app/dashboards#/view/llmq-inference-overview"
    r = kibana_setup(k.url + "/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == first, r.stdout
    r = kibana_setup(k.url, "--space", "ops")
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[-1]
    assert line.startswith(f"dashboard: {k.url}/s/ops/app/dashboards#/view/") and \
        not line.endswith("/llmq-inference-overview"), line
    (copy,) = [c for key, c in k.copies.items() if key == ("ops", "dashboard", "llmq-inference-overview")]
    assert line.endswith("/" + copy), (line, copy)
    again = kibana_setup(k.url, "--space", "ops")
    assert again.stdout.splitlines()[-1] == line, "the same copy is updated, not another made"
    # Credentials in the URL are not part of the address printed.
    port = k.url.rsplit(":", 1)[1]
    r = kibana_setup(f"http://elastic:s3cret@127.0.0.1:{port}")
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout and r.stdout.splitlines()[-1] == first, r.stdout


@pytest.mark.parametrize("version", ["7.17.0", "8.7.1", "10.0.0"])
def test_setup_refuses_an_unsupported_kibana(kibana, version):
    k = kibana(version=version)
    r = kibana_setup(k.url)
    assert_one_error_line(r, version, "not supported")
    assert not k.imports(), "nothing may be imported into an unsupported Kibana"


def test_setup_reports_the_objects_kibana_refused(kibana):
    k = kibana(import_refuses="llmq-lens-latency")
    r = kibana_setup(k.url)
    assert_one_error_line(r, "llmq-lens-latency")
    assert len(k.imports()) == 1


def test_setup_wrong_credentials(kibana):
    k = kibana(status_code=401)
    r = kibana_setup(k.url, "--kibana-user", "elastic", "--kibana-password", "wrong")
    line = assert_one_error_line(r)
    assert "credentials" in line and "401" in line, line
    assert "wrong" not in line, "the password must not be printed"
    assert not k.imports()


def test_setup_unreachable_kibana():
    port = free_port()  # nothing listens there
    r = kibana_setup(f"http://127.0.0.1:{port}")
    assert_one_error_line(r, "cannot reach Kibana", str(port))


def test_setup_space_that_does_not_exist(kibana):
    k = kibana()
    r = kibana_setup(k.url, "--space", "nope")
    line = assert_one_error_line(r, "nope")
    assert "space" in line, line
