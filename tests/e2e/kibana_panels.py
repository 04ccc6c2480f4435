"""Reading llmq's Kibana saved objects (kibana/llmq-saved-objects.ndjson) the way Kibana would,
for the tests that cannot run Kibana itself:

- the index templates' mappings as {dotted field: type};
- a tiny KQL translator for exactly the forms the panels use (`field : *`, `field : "v"`,
  `field > n`, `>=`, `<`, `<=`); any other form raises UnsupportedKql, so a panel with new KQL
  is noticed instead of silently untested;
- a Lens form-based layer as an Elasticsearch `_search` body (size 0, the bucket columns nested
  in columnOrder, so the outermost bucket picks its top values over the whole range, the metric
  columns as sub-aggregations), and its answer read back as rows of {column id: value}, as the
  chart or table would show them: with the "Other" row of a terms column whose otherBucket is on
  and the "(missing value)" row of one whose missingBucket is on;
- a value as Lens draws it under its column's format (percent, bytes, or the default number
  format).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "kibana" / "llmq-saved-objects.ndjson"
TEMPLATE_FILES = [ROOT / "elastic" / "logs-llmq.requests.json",
                  ROOT / "elastic" / "metrics-llmq.runtime.json"]

RECORDS = "___records___"  # Lens's pseudo field of a plain document count
OTHER = "__other__"        # the key Lens gives the "Other" bucket of a terms column
MISSING = "__missing__"    # and the bucket of documents without the field
NUMERIC = frozenset({"long", "integer", "short", "byte", "double", "float", "half_float",
                     "scaled_float", "unsigned_long"})
DATE = frozenset({"date", "date_nanos"})
KEYWORD = frozenset({"keyword", "constant_keyword"})
ANY = None  # any mapped type

# The mapped types an operation may read (Lens offers an operation only on fields of these).
OPERATION_TYPES: dict[str, frozenset[str] | None] = {
    "date_histogram": DATE,
    "terms": KEYWORD,
    "percentile": NUMERIC,
    "median": NUMERIC,
    "average": NUMERIC,
    "sum": NUMERIC,
    "max": NUMERIC,
    "min": NUMERIC,
    "unique_count": ANY,
    "count": ANY,  # with a real field: the count of its values
}


class UnsupportedKql(AssertionError):
    pass


class UnsupportedLens(AssertionError):
    pass


# ---- saved objects and templates ------------------------------------------------------------

def load_objects() -> list[dict]:
    return [json.loads(line) for line in NDJSON.read_text(encoding="utf-8").splitlines() if line.strip()]


def lens_objects(objects: list[dict] | None = None) -> list[dict]:
    return [o for o in (objects if objects is not None else load_objects()) if o["type"] == "lens"]


def load_templates() -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in TEMPLATE_FILES]


def flatten_mapping(properties: dict, prefix: str = "") -> dict[str, str]:
    """{"llmq": {"properties": {"queue_ms": {"type": "double"}}}} -> {"llmq.queue_ms": "double"}."""
    out = {}
    for name, spec in properties.items():
        path = prefix + name
        if "type" in spec and spec["type"] != "object":
            out[path] = spec["type"]
        if "properties" in spec:
            out.update(flatten_mapping(spec["properties"], path + "."))
    return out


def template_for(title: str, templates: list[dict]) -> dict:
    """The index template whose index_patterns cover data view `title` (a `…-*` pattern)."""
    sample = title.replace("*", "somenamespace")
    matches = [t for t in templates if any(fnmatch.fnmatchcase(sample, p) for p in t["index_patterns"])]
    assert len(matches) == 1, f"data view {title!r}: {len(matches)} index templates match it"
    return matches[0]


@dataclass
class Layer:
    """One form-based Lens layer with what it reads."""
    vis: dict
    layer_id: str
    layer: dict
    data_view: dict

    @property
    def title(self) -> str:
        return self.vis["attributes"]["title"]

    @property
    def columns(self) -> dict[str, dict]:
        return self.layer["columns"]

    @property
    def order(self) -> list[str]:
        return self.layer["columnOrder"]

    @property
    def buckets(self) -> list[str]:
        return [c for c in self.order if self.columns[c]["isBucketed"]]

    @property
    def metrics(self) -> list[str]:
        return [c for c in self.order if not self.columns[c]["isBucketed"]]

    @property
    def pattern(self) -> str:
        return self.data_view["attributes"]["title"]

    @property
    def query(self) -> dict:
        return self.vis["attributes"]["state"]["query"]


def layers_of(vis: dict, objects: list[dict]) -> list[Layer]:
    views = {o["id"]: o for o in objects if o["type"] == "index-pattern"}
    refs = {r["name"]: r for r in vis["references"]}
    out = []
    for layer_id, layer in vis["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].items():
        ref = refs[f"indexpattern-datasource-layer-{layer_id}"]
        out.append(Layer(vis, layer_id, layer, views[ref["id"]]))
    return out


# ---- KQL ------------------------------------------------------------------------------------

_CLAUSE = re.compile(
    r'\s*(?P<field>[A-Za-z_@][\w.@]*)\s*'
    r'(?:(?P<colon>:)\s*(?P<word>\*|"(?P<text>(?:[^"\\]|\\.)*)")'
    r'|(?P<cmp><=|>=|<|>)\s*(?P<num>-?\d+(?:\.\d+)?))\s*')


@dataclass(frozen=True)
class KqlClause:
    field: str
    op: str          # "exists", "term" or "gt"/"gte"/"lt"/"lte"
    value: object = None


def parse_kql(query: str) -> KqlClause | None:
    """The one clause of a panel's KQL; None for the empty query. Raises UnsupportedKql for
    anything else (and/or/not, an unquoted value, a wildcard value, nested fields, ...)."""
    if not query.strip():
        return None
    m = _CLAUSE.fullmatch(query)
    if not m:
        raise UnsupportedKql(f"KQL form the test cannot translate: {query!r} (extend parse_kql)")
    if m["colon"]:
        if m["word"] == "*":
            return KqlClause(m["field"], "exists")
        return KqlClause(m["field"], "term", re.sub(r"\\(.)", r"\1", m["text"]))
    num = float(m["num"]) if "." in m["num"] else int(m["num"])
    return KqlClause(m["field"], {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[m["cmp"]], num)


def kql_types(clause: KqlClause) -> frozenset[str] | None:
    """The mapped types a clause makes sense on."""
    if clause.op == "exists":
        return ANY
    if clause.op == "term":
        return KEYWORD
    return NUMERIC | DATE


def kql_to_es(query: str) -> dict:
    clause = parse_kql(query)
    if clause is None:
        return {"match_all": {}}
    if clause.op == "exists":
        return {"exists": {"field": clause.field}}
    if clause.op == "term":
        return {"term": {clause.field: clause.value}}
    return {"range": {clause.field: {clause.op: clause.value}}}


def kuery(q: dict, where: str) -> str:
    if q.get("language") != "kuery":
        raise UnsupportedKql(f"{where}: query language {q.get('language')!r}, only kuery is translated")
    return q["query"]


# ---- Lens layer -> Elasticsearch ------------------------------------------------------------

@dataclass
class PanelSearch:
    layer: Layer
    index: str
    body: dict
    names: dict[str, str] = field(default_factory=dict)  # column id -> aggregation name


def _metric_agg(col: dict) -> dict | None:
    """The aggregation of a metric column, its filter left out; None: the bucket's doc_count."""
    op, f = col["operationType"], col.get("sourceField")
    if op == "count":
        return None if f == RECORDS else {"value_count": {"field": f}}
    if op == "percentile":
        return {"percentiles": {"field": f, "percents": [col["params"]["percentile"]], "keyed": True}}
    if op == "median":
        return {"percentiles": {"field": f, "percents": [50], "keyed": True}}
    simple = {"average": "avg", "max": "max", "min": "min", "sum": "sum", "unique_count": "cardinality"}
    if op in simple:
        return {simple[op]: {"field": f}}
    raise UnsupportedLens(f"metric operation {op!r} is not translated (extend kibana_panels)")


def metric_agg(col: dict, where: str) -> dict | None:
    agg = _metric_agg(col)
    if col.get("filter"):
        q = {"filter": kql_to_es(kuery(col["filter"], where))}
        if agg is not None:
            q["aggs"] = {"v": agg}
        return q
    return agg


def _order_key(col: dict, name: str) -> str:
    """The terms `order` key sorting by metric column `col` aggregated as `name`."""
    op = col["operationType"]
    if op == "count" and col.get("sourceField") == RECORDS and not col.get("filter"):
        return "_count"
    if col.get("filter"):
        return name if op == "count" and col.get("sourceField") == RECORDS else f"{name}>v"
    if op in ("percentile", "median"):
        pct = col["params"]["percentile"] if op == "percentile" else 50
        return f"{name}[{float(pct)}]"
    return name


def _bucket_agg(col: dict, where: str) -> dict:
    op, f = col["operationType"], col["sourceField"]
    if op == "date_histogram":
        # Lens's "auto" picks ~1 min for the dashboard's hour; the test's data spans seconds.
        return {"date_histogram": {"field": f, "fixed_interval": "1s", "min_doc_count": 1,
                                   "time_zone": "UTC"}}
    if op == "terms":
        terms = {"field": f, "size": col["params"]["size"]}
        if col["params"].get("missingBucket"):
            terms["missing"] = MISSING
        return {"terms": terms}
    raise UnsupportedLens(f"{where}: bucket operation {op!r} is not translated (extend kibana_panels)")


def panel_search(layer: Layer, namespace: str, time_range: tuple[str, str]) -> PanelSearch:
    """The `_search` a Kibana would send for `layer`, on the data view narrowed to `namespace`,
    over `time_range` (the dashboard's timeFrom/timeTo, e.g. now-1h..now)."""
    where = f"{layer.title!r}"
    state = layer.vis["attributes"]["state"]
    if state.get("filters"):
        raise UnsupportedLens(f"{where}: panel filters are not translated (extend kibana_panels)")
    assert layer.pattern.endswith("-*"), f"{where}: data view {layer.pattern!r} is not a namespace pattern"
    index = layer.pattern[:-1] + namespace
    cols = layer.columns
    names = {c: f"c{i}" for i, c in enumerate(layer.order)}

    inner = {names[m]: a for m in layer.metrics if (a := metric_agg(cols[m], where)) is not None}
    buckets = layer.buckets
    for depth in range(len(buckets) - 1, -1, -1):
        b = buckets[depth]
        agg = _bucket_agg(cols[b], where)
        subs = dict(inner)
        if "terms" in agg:
            params = cols[b]["params"]
            order_by = params.get("orderBy", {"type": "column"})
            direction = params.get("orderDirection", "desc")
            if order_by["type"] == "alphabetical":
                agg["terms"]["order"] = {"_key": direction}
            elif order_by["type"] == "column":
                target = order_by["columnId"]
                tcol = cols[target]
                name = names[target]
                if depth != len(buckets) - 1:  # the metric sits deeper: a copy beside this level
                    name = f"{name}_order"
                    if (a := metric_agg(tcol, where)) is not None:
                        subs[name] = a
                agg["terms"]["order"] = {_order_key(tcol, name): direction}
            else:
                raise UnsupportedLens(f"{where}: terms orderBy {order_by['type']!r} is not translated")
        if subs:
            agg["aggs"] = subs
        inner = {names[b]: agg}

    filters = [kql_to_es(kuery(layer.query, where)),
               {"range": {layer.data_view["attributes"]["timeFieldName"]:
                          {"gte": time_range[0], "lte": time_range[1]}}}]
    body = {"size": 0, "track_total_hits": True, "query": {"bool": {"filter": filters}}}
    if inner:
        body["aggs"] = inner
    return PanelSearch(layer, index, body, names)


def metric_value(bucket: dict, col: dict, name: str):
    if col["operationType"] == "count" and col.get("sourceField") == RECORDS and not col.get("filter"):
        return bucket["doc_count"]
    agg = bucket[name]
    if col.get("filter"):
        if "v" not in agg:
            return agg["doc_count"]
        agg = agg["v"]
    if "values" in agg:  # percentiles, keyed: {"95.0": value}
        (value,) = agg["values"].values()
        return value
    return agg["value"]


def rows(search: PanelSearch, answer: dict) -> list[dict]:
    """The answer as the table Lens would draw: one row per innermost bucket, with every bucket
    column's key and every metric column's value (None: no value). A terms column with
    otherBucket on adds a row keyed OTHER when documents fell outside its top values (Lens
    fetches that bucket with a second request; its metrics are left None here)."""
    layer, names = search.layer, search.names
    top = {**answer.get("aggregations", {}), "doc_count": answer["hits"]["total"]["value"]}
    out: list[dict] = []

    def walk(bucket: dict, depth: int, prefix: dict) -> None:
        if depth == len(layer.buckets):
            out.append({**prefix, **{m: metric_value(bucket, layer.columns[m], names[m])
                                      for m in layer.metrics}})
            return
        b = layer.buckets[depth]
        agg = bucket[names[b]]
        for sub in agg["buckets"]:
            walk(sub, depth + 1, {**prefix, b: sub.get("key_as_string", sub["key"])})
        if layer.columns[b]["params"].get("otherBucket") and agg.get("sum_other_doc_count", 0) > 0:
            out.append({**prefix, b: OTHER, **{c: None for c in layer.buckets[depth + 1:]},
                        **{m: None for m in layer.metrics}})

    walk(top, 0, {})
    return out


# ---- values as Lens draws them ----------------------------------------------------------------

def _number(value: float, decimals: int) -> str:
    """numeral.js "0,0.[000]"-like: thousands separators, trailing zeros dropped."""
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def display(col: dict, value) -> str:
    """`value` of metric column `col` as the chart's axis or the table shows it: the column's
    format (params.format) if it has one, else the data view's default number format."""
    if value is None:
        return "-"
    fmt = col.get("params", {}).get("format")
    if not fmt:
        return _number(value, 3)
    decimals = fmt.get("params", {}).get("decimals", 2)
    if fmt["id"] == "percent":
        return f"{value * 100:.{decimals}f}%"
    if fmt["id"] == "bytes":  # 1024-based, as numeral's "b"
        units = ["B", "KB", "MB", "GB", "TB", "PB"]
        n, unit = float(value), 0
        while abs(n) >= 1024 and unit < len(units) - 1:
            n, unit = n / 1024, unit + 1
        return f"{n:.{decimals}f}{units[unit]}" if unit else f"{int(n)}B"
    if fmt["id"] == "number":
        return _number(value, decimals)
    raise UnsupportedLens(f"format {fmt['id']!r} is not translated (extend kibana_panels)")
