#!/usr/bin/env python3
"""Writes kibana/llmq-saved-objects.ndjson: llmq's Kibana data views, Lens visualizations and
the dashboard "llmq — Inference overview", in Kibana's saved-objects export format (one JSON
object per line, as Stack Management → Saved objects → Import takes it).

    python3 kibana/build_saved_objects.py            # rewrites the .ndjson beside this script
    python3 kibana/build_saved_objects.py --check    # exits 1 if the committed file is stale

The output is deterministic (fixed ids, fixed timestamps, sorted keys), so a change here shows
as a reviewable diff of the .ndjson. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "llmq-saved-objects.ndjson"

CORE_MIGRATION_VERSION = "8.8.0"
# Each type's migration version the objects are written at; Kibana migrates older ones on import.
TYPE_MIGRATION_VERSION = {"index-pattern": "8.0.0", "lens": "8.6.0", "dashboard": "8.7.0"}
PANEL_VERSION = "8.8.0"
TIMESTAMP = "2026-01-01T00:00:00.000Z"

DASHBOARD_ID = "llmq-inference-overview"
DASHBOARD_TITLE = "llmq — Inference overview"

REQUESTS = "llmq-dv-requests"
RUNTIME = "llmq-dv-runtime"
DATA_VIEWS = {
    REQUESTS: ("logs-llmq.requests-*", "llmq requests"),
    RUNTIME: ("metrics-llmq.runtime-*", "llmq runtime"),
}


def envelope(obj_id: str, obj_type: str, attributes: dict, references: list[dict]) -> dict:
    return {
        "attributes": attributes,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "created_at": TIMESTAMP,
        "id": obj_id,
        "managed": False,
        "references": references,
        "type": obj_type,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION[obj_type],
        "updated_at": TIMESTAMP,
    }


def data_view(obj_id: str) -> dict:
    pattern, name = DATA_VIEWS[obj_id]
    return envelope(obj_id, "index-pattern", {
        "allowNoIndex": True,
        "fieldAttrs": "{}",
        "fieldFormatMap": "{}",
        "fields": "[]",  # Kibana reads the fields from Elasticsearch
        "name": name,
        "runtimeFieldMap": "{}",
        "sourceFilters": "[]",
        "timeFieldName": "@timestamp",
        "title": pattern,
        "typeMeta": "{}",
    }, [])


# ---- Lens columns (form-based datasource) ---------------------------------------------------

def col_date() -> dict:
    return {"label": "@timestamp", "dataType": "date", "operationType": "date_histogram",
            "sourceField": "@timestamp", "isBucketed": True, "scale": "interval",
            "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False}}


def col_count(label: str, kql: str | None = None) -> dict:
    c = {"label": label, "customLabel": True, "dataType": "number", "operationType": "count",
         "sourceField": "___records___", "isBucketed": False, "scale": "ratio",
         "params": {"emptyAsNull": False}}
    if kql:
        c["filter"] = {"query": kql, "language": "kuery"}
    return c


# Value formats of a Lens column (its params.format). A `*.pct` field holds a fraction (0.35 is
# 35 %) and a `*_bytes` field a byte count: without these, Lens draws 0.35 and 1234567890.
PERCENT = {"id": "percent", "params": {"decimals": 1}}
BYTES = {"id": "bytes", "params": {"decimals": 1}}


def col_metric(op: str, field: str, label: str, fmt: dict | None = None, **params) -> dict:
    """op: average, max, min, sum, median, percentile (params percentile=95); fmt: PERCENT,
    BYTES or None (Lens's default number format)."""
    c = {"label": label, "customLabel": True, "dataType": "number", "operationType": op,
         "sourceField": field, "isBucketed": False, "scale": "ratio"}
    c["params"] = dict(params) if op == "percentile" else {"emptyAsNull": True, **params}
    if fmt:
        c["params"]["format"] = fmt
    return c


def col_terms(field: str, label: str, order_by: str, size: int, other: bool) -> dict:
    """Top `size` values of `field` over the time range. `other`: one more bucket ("Other")
    for the rest, right for a stacked chart's total, wrong for a table that lists the top N."""
    return {"label": label, "customLabel": True, "dataType": "string", "operationType": "terms",
            "sourceField": field, "isBucketed": True, "scale": "ordinal",
            "params": {"size": size, "orderBy": {"type": "column", "columnId": order_by},
                       "orderDirection": "desc", "otherBucket": other, "missingBucket": False,
                       "parentFormat": {"id": "terms"}, "include": [], "exclude": [],
                       "includeIsRegex": False, "excludeIsRegex": False}}


# ---- Lens visualizations ---------------------------------------------------------------------

def lens(obj_id: str, title: str, view: str, columns: dict[str, dict], visualization_type: str,
         visualization: dict, description: str = "", query: str = "") -> dict:
    """One Lens visualization with one layer named `layer` on data view `view`. Column order as
    Lens builds it: terms buckets, then the date histogram (a breakdown added to a time chart
    goes above it, so its top values are taken over the whole range, not per interval), then
    the metrics in insertion order."""
    layer = f"{obj_id}-layer"
    buckets = [k for k, c in columns.items() if c["isBucketed"]]
    order = [k for k in buckets if columns[k]["operationType"] != "date_histogram"] + \
            [k for k in buckets if columns[k]["operationType"] == "date_histogram"] + \
            [k for k, c in columns.items() if not c["isBucketed"]]
    visualization = json.loads(json.dumps(visualization).replace('"@LAYER@"', json.dumps(layer)))
    return envelope(obj_id, "lens", {
        "description": description,
        "state": {
            "adHocDataViews": {},
            "datasourceStates": {"formBased": {"layers": {layer: {
                "columnOrder": order, "columns": columns, "incompleteColumns": {},
                "sampling": 1}}}},
            "filters": [],
            "internalReferences": [],
            "query": {"language": "kuery", "query": query},
            "visualization": visualization,
        },
        "title": title,
        "visualizationType": visualization_type,
    }, [{"id": view, "name": f"indexpattern-datasource-layer-{layer}", "type": "index-pattern"}])


def xy(series: str, x: str, accessors: list[str], split: str | None = None,
       right_axis: list[str] = (), y_title: str | None = None) -> dict:
    layer = {"layerId": "@LAYER@", "layerType": "data", "seriesType": series, "xAccessor": x,
             "accessors": accessors, "position": "top", "showGridlines": False}
    if split:
        layer["splitAccessor"] = split
    if right_axis:
        layer["yConfig"] = [{"forAccessor": a, "axisMode": "right"} for a in right_axis]
    vis = {"layers": [layer], "legend": {"isVisible": True, "position": "bottom"},
           "preferredSeriesType": series, "valueLabels": "hide", "fittingFunction": "Linear",
           "axisTitlesVisibilitySettings": {"x": False, "yLeft": True, "yRight": True}}
    if y_title:
        vis["yTitle"] = y_title
    return vis


def visualizations() -> list[dict]:
    out = []

    out.append(lens("llmq-lens-request-rate", "Requests by outcome", REQUESTS,
        {"t": col_date(), "n": col_count("Requests"),
         "o": col_terms("event.outcome", "Outcome", order_by="n", size=5, other=True)},
        "lnsXY", xy("bar_stacked", "t", ["n"], split="o"),
        "Requests finished per interval, split by event.outcome."))

    out.append(lens("llmq-lens-latency", "Request latency p50 / p95 / p99 (ms)", REQUESTS,
        {"t": col_date(),
         "p50": col_metric("percentile", "llmq.total_ms", "p50", percentile=50),
         "p95": col_metric("percentile", "llmq.total_ms", "p95", percentile=95),
         "p99": col_metric("percentile", "llmq.total_ms", "p99", percentile=99)},
        "lnsXY", xy("line", "t", ["p50", "p95", "p99"], y_title="total_ms"),
        "Percentiles of llmq.total_ms (arrival to done, queue wait included)."))

    out.append(lens("llmq-lens-ttft", "Time to first token p95 (ms)", REQUESTS,
        {"t": col_date(),
         "p95": col_metric("percentile", "llmq.ttft_ms", "TTFT p95", percentile=95)},
        "lnsXY", xy("line", "t", ["p95"], y_title="ttft_ms"),
        "p95 of llmq.ttft_ms (started to first token, queue wait excluded)."))

    out.append(lens("llmq-lens-queue-depth", "Queue depth", RUNTIME,
        {"t": col_date(),
         "avg": col_metric("average", "llmq.queue.depth", "Average depth"),
         "max": col_metric("max", "llmq.queue.depth", "Max depth")},
        "lnsXY", xy("line", "t", ["avg", "max"], y_title="jobs waiting"),
        "Jobs waiting in LLM_INFERENCE, from the runtime snapshots."))

    out.append(lens("llmq-lens-queue-wait", "Queue wait p95 (ms)", REQUESTS,
        {"t": col_date(),
         "p95": col_metric("percentile", "llmq.queue_ms", "Queue wait p95", percentile=95)},
        "lnsXY", xy("line", "t", ["p95"], y_title="queue_ms"),
        "p95 of llmq.queue_ms (admission to a worker taking the job)."))

    out.append(lens("llmq-lens-tokens-per-s", "Tokens per second", RUNTIME,
        {"t": col_date(),
         "tps": col_metric("average", "llmq.tokens_per_s", "Tokens/s")},
        "lnsXY", xy("area", "t", ["tps"], y_title="tokens/s"),
        "Generated tokens per second across all slots."))

    out.append(lens("llmq-lens-rejections", "Rejections by reason", REQUESTS,
        {"t": col_date(), "n": col_count("Rejections"),
         "r": col_terms("llmq.rejection_reason", "Reason", order_by="n", size=10, other=True)},
        "lnsXY", xy("bar_stacked", "t", ["n"], split="r"),
        "Refused requests (429 queue_full, 413, 400, 503, deadline, ...) by llmq.rejection_reason.",
        query="llmq.rejection_reason : *"))

    out.append(lens("llmq-lens-retries", "Retries and dead letters", REQUESTS,
        {"t": col_date(),
         "retried": col_count("Retried (attempts > 1)", "llmq.attempts > 1"),
         "failed": col_count("Failed / dead-lettered", 'event.outcome : "failure"')},
        "lnsXY", xy("bar", "t", ["retried", "failed"]),
        "Requests that needed more than one attempt, and requests that failed."))

    out.append(lens("llmq-lens-prompt-cache", "Prompt tokens: cached vs all", REQUESTS,
        {"t": col_date(),
         "prompt": col_metric("sum", "llmq.tokens.prompt", "Prompt tokens"),
         "cached": col_metric("sum", "llmq.tokens.cached", "Cached (not prefilled)")},
        "lnsXY", xy("line", "t", ["prompt", "cached"], y_title="tokens"),
        "Prompt tokens per interval, and those the prefix cache spared from prefill."))

    # Per process that decodes: `llmq serve`'s own snapshots, and each worker's (its heartbeats,
    # written by the gateways); a gateway's snapshots have no llmq.worker.
    out.append(lens("llmq-lens-worker-cpu", "CPU per worker", RUNTIME,
        {"t": col_date(),
         "cpu": col_metric("average", "process.cpu.pct", "CPU", PERCENT),
         "w": col_terms("llmq.worker", "Worker", order_by="cpu", size=10, other=False)},
        "lnsXY", xy("line", "t", ["cpu"], split="w", y_title="share of the host's cores"),
        "Each decoding process's CPU use (llmq serve, or each scale-out worker), as a share "
        "of its host's cores.",
        query="llmq.worker : *"))

    out.append(lens("llmq-lens-worker-memory", "Memory (RSS) per worker", RUNTIME,
        {"t": col_date(),
         "rss": col_metric("max", "process.memory.rss_bytes", "RSS", BYTES),
         "w": col_terms("llmq.worker", "Worker", order_by="rss", size=10, other=False)},
        "lnsXY", xy("line", "t", ["rss"], split="w", y_title="resident memory"),
        "Each decoding process's resident memory: the loaded models' weights and KV caches.",
        query="llmq.worker : *"))

    out.append(lens("llmq-lens-host", "Host CPU % and memory", RUNTIME,
        {"t": col_date(),
         "cpu": col_metric("average", "host.cpu.pct", "Host CPU", PERCENT),
         "mem": col_metric("max", "host.memory.used_bytes", "Memory used", BYTES)},
        "lnsXY", xy("line", "t", ["cpu", "mem"], right_axis=["mem"]),
        "The machine's CPU use (left) and used memory (right)."))

    out.append(lens("llmq-lens-workers", "Requests by worker", REQUESTS,
        {"t": col_date(), "n": col_count("Requests"),
         "w": col_terms("llmq.worker", "Worker", order_by="n", size=10, other=True)},
        "lnsXY", xy("bar_stacked", "t", ["n"], split="w"),
        "Requests per interval by the worker (host/pid) whose run ended them; with scale-out, "
        "one series per worker process.",
        query="llmq.worker : *"))

    out.append(lens("llmq-lens-slowest", "Slowest requests", REQUESTS,
        {"id": col_terms("llmq.request_id", "Request id", order_by="total", size=20, other=False),
         "total": col_metric("max", "llmq.total_ms", "total_ms"),
         "ttft": col_metric("max", "llmq.ttft_ms", "ttft_ms"),
         "queue": col_metric("max", "llmq.queue_ms", "queue_ms"),
         "gen": col_metric("max", "llmq.tokens.generated", "tokens generated")},
        "lnsDatatable",
        {"layerId": "@LAYER@", "layerType": "data",
         "columns": [{"columnId": c} for c in ("id", "total", "ttft", "queue", "gen")],
         "sorting": {"columnId": "total", "direction": "desc"}},
        "The 20 requests with the largest llmq.total_ms in the time range."))
    return out


# ---- the dashboard ---------------------------------------------------------------------------

# (visualization id, width, height) in reading order on a 48-column grid.
LAYOUT = [
    ("llmq-lens-request-rate", 24, 12), ("llmq-lens-latency", 24, 12),
    ("llmq-lens-ttft", 16, 12), ("llmq-lens-queue-depth", 16, 12), ("llmq-lens-queue-wait", 16, 12),
    ("llmq-lens-tokens-per-s", 16, 12), ("llmq-lens-rejections", 16, 12), ("llmq-lens-retries", 16, 12),
    ("llmq-lens-worker-cpu", 16, 12), ("llmq-lens-worker-memory", 16, 12), ("llmq-lens-host", 16, 12),
    ("llmq-lens-prompt-cache", 16, 12), ("llmq-lens-workers", 32, 12),
    ("llmq-lens-slowest", 48, 15),
]


def dashboard() -> dict:
    panels, refs = [], []
    x = y = row_h = 0
    for n, (vis_id, w, h) in enumerate(LAYOUT, start=1):
        if x + w > 48:
            x, y, row_h = 0, y + row_h, 0
        panel_index = f"p{n}"
        panels.append({"version": PANEL_VERSION, "type": "lens", "panelIndex": panel_index,
                       "gridData": {"x": x, "y": y, "w": w, "h": h, "i": panel_index},
                       "embeddableConfig": {"enhancements": {}},
                       "panelRefName": f"panel_{panel_index}"})
        refs.append({"id": vis_id, "name": f"{panel_index}:panel_{panel_index}", "type": "lens"})
        x += w
        row_h = max(row_h, h)
    return envelope(DASHBOARD_ID, "dashboard", {
        "description": "llmq requests (logs-llmq.requests-*) and runtime snapshots "
                       "(metrics-llmq.runtime-*): throughput, latency, queue, rejections, "
                       "retries, resources, slowest requests.",
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
            {"query": {"query": "", "language": "kuery"}, "filter": []}, sort_keys=True)},
        "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True,
                                   "syncTooltips": False, "hidePanelTitles": False},
                                  sort_keys=True),
        "panelsJSON": json.dumps(panels, sort_keys=True),
        "refreshInterval": {"pause": False, "value": 10000},
        "timeFrom": "now-1h",
        "timeRestore": True,
        "timeTo": "now",
        "title": DASHBOARD_TITLE,
        "version": 1,
    }, refs)


def objects() -> list[dict]:
    return [data_view(REQUESTS), data_view(RUNTIME), *visualizations(), dashboard()]


def render() -> str:
    return "".join(json.dumps(o, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n" for o in objects())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the file is not up to date")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(objects())} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
