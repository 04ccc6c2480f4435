"""Static checks of the Kibana saved objects (kibana/llmq-saved-objects.ndjson and its generator):
the export envelope, the data views, references, the dashboard, and that every panel reads only
fields llmq's documents have.

No Kibana runs here: these tests read the files only. They need neither the llmq binary nor the
model (the suite's prerequisite check is switched off below). tests/e2e/test_kibana.py runs the
panels' queries against a real Elasticsearch node.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "kibana" / "llmq-saved-objects.ndjson"
GENERATOR = ROOT / "kibana" / "build_saved_objects.py"

DASHBOARD_TITLE = "llmq — Inference overview"

# The fields of llmq's documents, by the data view (index pattern) that reads them. This is the
# one list the panels are checked against; a later change is to check against the real index
# templates instead.
DOC_FIELDS: dict[str, frozenset[str]] = {
    "logs-llmq.requests-*": frozenset({
        "@timestamp", "event.outcome", "event.duration", "http.response.status_code",
        "service.name", "host.name", "llmq.request_id", "llmq.model", "llmq.queue_ms",
        "llmq.ttft_ms", "llmq.total_ms", "llmq.tokens.prompt", "llmq.tokens.generated",
        "llmq.tokens.cached", "llmq.user",
        "llmq.decode_tokens_per_s", "llmq.worker", "llmq.attempts", "llmq.finish_reason",
        "llmq.rejection_reason", "llmq.route",
    }),
    "metrics-llmq.runtime-*": frozenset({
        "@timestamp", "service.name", "host.name", "llmq.worker", "llmq.queue.depth", "llmq.slots.busy",
        "llmq.slots.total", "llmq.latency.p50_ms", "llmq.latency.p95_ms", "llmq.latency.p99_ms",
        "llmq.tokens_per_s", "process.cpu.pct", "process.memory.rss_bytes", "host.cpu.pct",
        "host.memory.used_bytes",
    }),
}



@pytest.fixture(scope="session", autouse=True)
def _prerequisites():
    """Overrides the suite's check for the binary and the model: not needed here."""
    return None


# ---- Kibana saved objects --------------------------------------------------------------------

@pytest.fixture(scope="module")
def objects() -> list[dict]:
    out = []
    for n, line in enumerate(NDJSON.read_text(encoding="utf-8").splitlines(), start=1):
        assert line.strip(), f"line {n} is empty"
        obj = json.loads(line)
        assert isinstance(obj, dict), f"line {n} is not an object"
        out.append(obj)
    return out


@pytest.fixture(scope="module")
def by_id(objects) -> dict[tuple[str, str], dict]:
    return {(o["type"], o["id"]): o for o in objects}


def test_ndjson_is_what_the_generator_writes():
    r = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_ndjson_objects_have_the_export_envelope(objects):
    assert objects
    for o in objects:
        for key in ("id", "type", "attributes", "references", "coreMigrationVersion",
                    "typeMigrationVersion"):
            assert key in o, f"{o.get('id')}: no {key}"
        assert isinstance(o["attributes"], dict) and isinstance(o["references"], list)
        assert re.fullmatch(r"\d+\.\d+\.\d+", o["coreMigrationVersion"]), o["id"]
        assert re.fullmatch(r"\d+\.\d+\.\d+", o["typeMigrationVersion"]), o["id"]
        assert o["type"] in ("index-pattern", "lens", "dashboard"), o["type"]
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(ids) == len(set(ids)), "duplicate ids"


def test_data_views(objects):
    views = {o["attributes"]["title"]: o for o in objects if o["type"] == "index-pattern"}
    assert set(views) == set(DOC_FIELDS)
    for v in views.values():
        assert v["attributes"]["timeFieldName"] == "@timestamp"


def test_every_reference_resolves(objects, by_id):
    for o in objects:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in by_id, f"{o['id']} -> {ref} does not resolve"
        names = [r["name"] for r in o["references"]]
        assert len(names) == len(set(names)), f"{o['id']}: duplicate reference names"


def dashboard_of(objects) -> dict:
    dashboards = [o for o in objects if o["type"] == "dashboard"]
    assert len(dashboards) == 1
    return dashboards[0]


def dashboard_panels(objects, by_id) -> list[dict]:
    """The Lens objects the dashboard's panels show, panel references resolved."""
    d = dashboard_of(objects)
    refs = {r["name"]: r for r in d["references"]}
    out = []
    for p in json.loads(d["attributes"]["panelsJSON"]):
        assert p["type"] == "lens", p
        ref = refs[f"{p['panelIndex']}:{p['panelRefName']}"]
        assert ref["type"] == "lens"
        out.append(by_id[("lens", ref["id"])])
    return out


def test_dashboard(objects, by_id):
    d = dashboard_of(objects)
    assert d["attributes"]["title"] == DASHBOARD_TITLE
    panels = json.loads(d["attributes"]["panelsJSON"])
    assert len(panels) >= 10
    indices = [p["panelIndex"] for p in panels]
    assert len(indices) == len(set(indices))
    for p in panels:
        g = p["gridData"]
        assert g["i"] == p["panelIndex"] and g["x"] + g["w"] <= 48 and g["w"] > 0 and g["h"] > 0
    # No two panels overlap on the grid.
    cells = set()
    for p in panels:
        g = p["gridData"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['panelIndex']} overlaps another"
        cells |= mine
    used = {o["id"] for o in dashboard_panels(objects, by_id)}
    lens_ids = {o["id"] for o in objects if o["type"] == "lens"}
    assert used == lens_ids, "every Lens object is on the dashboard, and only those"


def kql_fields(query: str) -> set[str]:
    """Field names of the simple KQL the panels use: `field : value`, `field > n`, and/or."""
    fields = set()
    for clause in re.split(r"\s+(?:and|or)\s+", query.strip(), flags=re.IGNORECASE):
        clause = clause.strip().removeprefix("not ").strip("() ")
        if not clause:
            continue
        m = re.fullmatch(r'([\w.@]+)\s*(?::|<=|>=|<|>)\s*(?:\*|"[^"]*"|[\w.\-]+)', clause)
        assert m, f"KQL clause the test cannot read: {clause!r}"
        fields.add(m.group(1))
    return fields


def lens_layers(vis: dict, by_id) -> list[tuple[str, dict]]:
    """(data view title, layer) for each layer of a Lens object."""
    refs = {r["name"]: r for r in vis["references"]}
    out = []
    for layer_id, layer in vis["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].items():
        ref = refs.get(f"indexpattern-datasource-layer-{layer_id}")
        assert ref and ref["type"] == "index-pattern", f"{vis['id']}: layer {layer_id} has no data view"
        out.append((by_id[("index-pattern", ref["id"])]["attributes"]["title"], layer))
    return out


def panel_fields(vis: dict, by_id) -> dict[str, set[str]]:
    """Fields a Lens object uses, by data view title."""
    used: dict[str, set[str]] = {}
    query = vis["attributes"]["state"]["query"]
    assert query["language"] == "kuery"
    for title, layer in lens_layers(vis, by_id):
        fields = used.setdefault(title, set())
        fields |= kql_fields(query["query"])
        for col in layer["columns"].values():
            if col.get("sourceField") and col["sourceField"] != "___records___":
                fields.add(col["sourceField"])
            if col.get("filter"):
                assert col["filter"]["language"] == "kuery"
                fields |= kql_fields(col["filter"]["query"])
            if col.get("params", {}).get("sortField"):
                fields.add(col["params"]["sortField"])
    return used


def test_panels_use_only_document_fields(objects, by_id):
    for vis in dashboard_panels(objects, by_id):
        for title, fields in panel_fields(vis, by_id).items():
            unknown = fields - DOC_FIELDS[title]
            assert not unknown, f"{vis['attributes']['title']}: {sorted(unknown)} not in {title}"


def test_lens_state_is_consistent(objects, by_id):
    for vis in (o for o in objects if o["type"] == "lens"):
        a = vis["attributes"]
        assert a["visualizationType"] in ("lnsXY", "lnsDatatable", "lnsMetric"), a["title"]
        layers = dict(lens_layers(vis, by_id))
        all_columns = {}
        for _title, layer in layers.items():
            assert sorted(layer["columnOrder"]) == sorted(layer["columns"]), a["title"]
            all_columns.update(layer["columns"])
            for col in layer["columns"].values():
                order_by = col.get("params", {}).get("orderBy", {})
                if order_by.get("type") == "column":
                    assert order_by["columnId"] in layer["columns"], a["title"]
        v = a["state"]["visualization"]
        layer_ids = set(a["state"]["datasourceStates"]["formBased"]["layers"])
        if a["visualizationType"] == "lnsXY":
            for l in v["layers"]:
                assert l["layerId"] in layer_ids
                accessors = [*l["accessors"], l["xAccessor"], *([l["splitAccessor"]] if "splitAccessor" in l else [])]
                for acc in accessors:
                    assert acc in all_columns, f"{a['title']}: accessor {acc}"
        elif a["visualizationType"] == "lnsDatatable":
            assert v["layerId"] in layer_ids
            for c in v["columns"]:
                assert c["columnId"] in all_columns, f"{a['title']}: column {c['columnId']}"


def operations(objects, by_id) -> set[tuple[str, str, str]]:
    """(operation, field or filter query, percentile) over all the dashboard's columns."""
    out = set()
    for vis in dashboard_panels(objects, by_id):
        for _title, layer in lens_layers(vis, by_id):
            for col in layer["columns"].values():
                what = col.get("filter", {}).get("query") or col.get("sourceField", "")
                out.add((col["operationType"], what, str(col.get("params", {}).get("percentile", ""))))
    return out


def test_dashboard_covers_the_required_panels(objects, by_id):
    ops = operations(objects, by_id)
    for p in ("50", "95", "99"):
        assert ("percentile", "llmq.total_ms", p) in ops, f"latency p{p}"
    assert ("percentile", "llmq.ttft_ms", "95") in ops
    assert ("percentile", "llmq.queue_ms", "95") in ops
    assert any(op[1] == "llmq.queue.depth" for op in ops)
    assert any(op[1] == "llmq.tokens_per_s" for op in ops)
    assert ("terms", "event.outcome", "") in ops, "request rate by outcome"
    assert ("terms", "llmq.rejection_reason", "") in ops
    assert ("count", "llmq.attempts > 1", "") in ops, "retries"
    assert any(op[0] == "count" and "event.outcome" in op[1] and "failure" in op[1] for op in ops)
    for f in ("process.cpu.pct", "process.memory.rss_bytes", "host.cpu.pct", "host.memory.used_bytes"):
        assert any(op[1] == f for op in ops), f
    slowest = [v for v in dashboard_panels(objects, by_id)
               if v["attributes"]["visualizationType"] == "lnsDatatable"]
    assert slowest, "a table of the slowest requests"
    (_title, layer), = lens_layers(slowest[0], by_id)
    cols = layer["columns"]
    ids = [c for c in cols.values() if c.get("sourceField") == "llmq.request_id"]
    assert ids and ids[0]["operationType"] == "terms"
    order = cols[ids[0]["params"]["orderBy"]["columnId"]]
    assert order["sourceField"] == "llmq.total_ms" and ids[0]["params"]["orderDirection"] == "desc"


# ---- what Kibana itself accepts and draws -------------------------------------------------------

# The oldest Kibana llmq supports (`llmq kibana setup` refuses older ones) and, per type, the
# newest migration version that Kibana knows: what an 8.8 export writes. An object at a newer
# version is refused by 8.8's import ("newer than the current Kibana version").
OLDEST_KIBANA = (8, 8, 0)
NEWEST_MIGRATION_IN_OLDEST_KIBANA = {"index-pattern": (8, 0, 0), "lens": (8, 6, 0),
                                     "dashboard": (8, 7, 0)}

# The dashboard attributes Kibana's dashboard schema allows (8.9 and later refuse any other key):
# {key: None, or the keys allowed inside it}.
DASHBOARD_ATTRIBUTES = {
    "title": None, "description": None,
    "kibanaSavedObjectMeta": {"searchSourceJSON"},
    "timeRestore": None, "timeFrom": None, "timeTo": None,
    "refreshInterval": {"pause", "value", "display", "section"},
    "controlGroupInput": {"panelsJSON", "controlStyle", "chainingSystem",
                          "ignoreParentSettingsJSON", "showApplySelections"},
    "panelsJSON": None, "optionsJSON": None,
    "hits": None, "version": None,
}


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_migration_versions_are_ones_the_oldest_supported_kibana_knows(objects):
    for o in objects:
        assert version_tuple(o["coreMigrationVersion"]) <= OLDEST_KIBANA, o["id"]
        newest = NEWEST_MIGRATION_IN_OLDEST_KIBANA[o["type"]]
        assert version_tuple(o["typeMigrationVersion"]) <= newest, \
            f"{o['id']}: typeMigrationVersion {o['typeMigrationVersion']} is newer than " \
            f"Kibana {'.'.join(map(str, OLDEST_KIBANA))} knows for {o['type']} " \
            f"({'.'.join(map(str, newest))})"


def test_dashboard_attributes_are_ones_kibanas_schema_allows(objects):
    attrs = dashboard_of(objects)["attributes"]
    unknown = set(attrs) - set(DASHBOARD_ATTRIBUTES)
    assert not unknown, f"Kibana 8.9+ refuses dashboards with attributes {sorted(unknown)}"
    for key, inner in DASHBOARD_ATTRIBUTES.items():
        if inner is not None and key in attrs:
            assert set(attrs[key]) <= inner, f"{key}: {sorted(set(attrs[key]) - inner)}"
    assert isinstance(attrs["title"], str) and isinstance(attrs["panelsJSON"], str)
    assert isinstance(attrs["optionsJSON"], str)


def metric_columns(objects, by_id):
    for vis in dashboard_panels(objects, by_id):
        for _title, layer in lens_layers(vis, by_id):
            for col in layer["columns"].values():
                if not col["isBucketed"]:
                    yield vis, col


def test_fractions_read_as_percent_and_byte_counts_as_bytes(objects, by_id):
    """ECS *.pct fields are fractions (0.35 is 35 %) and *_bytes fields byte counts: without a
    format Lens draws 0.35 and 1234567890."""
    checked = 0
    for vis, col in metric_columns(objects, by_id):
        field = col.get("sourceField", "")
        fmt = col.get("params", {}).get("format", {}).get("id")
        if field.endswith(".pct"):
            assert fmt == "percent", f"{vis['attributes']['title']}: {field} has format {fmt}"
            checked += 1
        elif field.endswith("_bytes"):
            assert fmt == "bytes", f"{vis['attributes']['title']}: {field} has format {fmt}"
            checked += 1
        else:
            assert fmt in (None, "number"), f"{vis['attributes']['title']}: {field} has format {fmt}"
    assert checked >= 4


def test_a_table_of_the_top_n_has_no_other_row(objects, by_id):
    tables = [v for v in dashboard_panels(objects, by_id)
              if v["attributes"]["visualizationType"] == "lnsDatatable"]
    assert tables
    for vis in tables:
        for _title, layer in lens_layers(vis, by_id):
            for col in layer["columns"].values():
                if col["operationType"] == "terms":
                    assert col["params"]["otherBucket"] is False, \
                        f"{vis['attributes']['title']}: a row \"Other\" after the top " \
                        f"{col['params']['size']}"


def test_a_breakdown_sits_above_the_date_histogram(objects, by_id):
    """Lens puts a breakdown (terms) added to a time chart above its date histogram, so the top
    values are picked over the whole range; below it, each interval picks its own."""
    split = 0
    for vis in dashboard_panels(objects, by_id):
        for _title, layer in lens_layers(vis, by_id):
            ops = [layer["columns"][c]["operationType"] for c in layer["columnOrder"]]
            if "terms" in ops and "date_histogram" in ops:
                split += 1
                last_terms = max(i for i, op in enumerate(ops) if op == "terms")
                assert last_terms < ops.index("date_histogram"), \
                    f"{vis['attributes']['title']}: columnOrder {layer['columnOrder']}"
    assert split >= 3
