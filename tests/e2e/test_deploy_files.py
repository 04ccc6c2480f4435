"""Static checks of the deployment files: Dockerfile, .dockerignore, docker-compose.yml and the
Kibana saved objects (kibana/llmq-saved-objects.ndjson and its generator).

No Docker engine, Elasticsearch or Kibana runs here: these tests read the files only. They need
neither the llmq binary nor the model (the suite's prerequisite check is switched off below).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
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
        "@timestamp", "service.name", "host.name", "llmq.queue.depth", "llmq.slots.busy",
        "llmq.slots.total", "llmq.latency.p50_ms", "llmq.latency.p95_ms", "llmq.latency.p99_ms",
        "llmq.tokens_per_s", "process.cpu.pct", "process.memory.rss_bytes", "host.cpu.pct",
        "host.memory.used_bytes",
    }),
}


@pytest.fixture(scope="session", autouse=True)
def _prerequisites():
    """Overrides the suite's check for the binary and the model: not needed here."""
    return None


# ---- Dockerfile ------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return out


def dockerfile_stages() -> list[dict]:
    """Stages with their resolved base image, name and instructions."""
    args, stages = {}, []
    for word, rest in dockerfile_instructions():
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, f"cannot read FROM {rest}"
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda v: args[v.group(1) or v.group(2)],
                           m.group(1))
            stages.append({"image": image, "name": m.group(2), "body": []})
        else:
            assert stages or word in ("ARG",), f"{word} before the first FROM"
            if stages:
                stages[-1]["body"].append((word, rest))
    return stages


def stage_text(stage: dict, word: str) -> list[str]:
    return [rest for w, rest in stage["body"] if w == word]


def test_dockerfile_has_build_and_slim_runtime_stages():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    build, runtime = stages[0], stages[-1]
    assert build["name"] == "build"
    assert re.fullmatch(r"debian:12\.\d+", build["image"]), build["image"]
    assert runtime["name"] == "runtime"
    assert re.fullmatch(r"debian:12(\.\d+)?-slim", runtime["image"]), runtime["image"]
    for s in stages:
        assert ":" in s["image"] and not s["image"].endswith(":latest"), s["image"]


def test_dockerfile_build_stage_does_what_setup_does():
    run = " ".join(stage_text(dockerfile_stages()[0], "RUN"))
    for needed in ("scripts/llama.sh", "scripts/models.sh", "cmake --preset release",
                   "cmake --build", "libboost1.81-dev", "libspdlog-dev", "libtomlplusplus-dev",
                   "nlohmann-json3-dev", "libcli11-dev", "npm", "ninja-build"):
        assert needed in run, f"build stage does not run/install {needed}"


def test_dockerfile_builds_llama_cpp_for_a_fixed_baseline_without_amx():
    """An image runs where it is pulled, not where it was built: llama.cpp for the x86-64-v3
    baseline (scripts/cpu_features.sh), never tuned to the build machine, never with AMX."""
    build = dockerfile_stages()[0]
    env = " ".join(stage_text(build, "ENV"))
    assert re.search(r"(?<![\w])LLMQ_LLAMA_CPU=x86-64-v3(?![\w-])", env), env
    text = DOCKERFILE.read_text()
    assert not re.search(r"GGML_NATIVE\s*=\s*ON|-march=native|LLMQ_LLAMA_AMX=1", text)
    llama = next(r for r in stage_text(build, "RUN") if "scripts/llama.sh" in r)
    assert "LLMQ_LLAMA_CPU" not in llama, "the RUN line must not override the baseline"


def test_dockerfile_runtime_stage_has_only_runtime_libs():
    runtime = dockerfile_stages()[-1]
    run = " ".join(stage_text(runtime, "RUN"))
    for lib in ("libspdlog1.10", "libfmt9", "libtomlplusplus3", "libgomp1", "libcurl4"):
        assert re.search(rf"(?<![\w.-]){re.escape(lib)}(?![\w.-])", run), f"runtime lacks {lib}"
    assert not re.search(r"[\w.+-]+-dev\b", run), "no -dev packages in the runtime stage"
    for tool in ("g++", "cmake", "npm", "ninja-build"):
        assert not re.search(rf"(?<![\w.-]){re.escape(tool)}(?![\w.-])", run), tool
    copies = " ".join(stage_text(runtime, "COPY"))
    assert "--from=build" in copies and "/llmq" in copies
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in copies, "the default model is in the image"


def test_dockerfile_runs_as_non_root_user():
    users = stage_text(dockerfile_stages()[-1], "USER")
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user


def test_dockerfile_expose_healthcheck_entrypoint():
    runtime = dockerfile_stages()[-1]
    assert "8080" in " ".join(stage_text(runtime, "EXPOSE")).split()
    health = stage_text(runtime, "HEALTHCHECK")
    assert len(health) == 1 and " CMD " in f" {health[0]} " and "/healthz" in health[0]
    assert "8080" in health[0]
    entry = stage_text(runtime, "ENTRYPOINT")
    assert len(entry) == 1
    assert json.loads(entry[0]) == ["llmq", "serve", "--host", "0.0.0.0"]


def test_dockerfile_model_env_points_at_the_copied_model():
    runtime = dockerfile_stages()[-1]
    env = " ".join(stage_text(runtime, "ENV"))
    m = re.search(r"LLMQ_MODEL=(\S+)", env)
    assert m, "LLMQ_MODEL is set"
    assert any(c.split()[-1] == m.group(1) for c in stage_text(runtime, "COPY"))


def dockerignore_patterns() -> list[str]:
    return [l.strip() for l in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
            if l.strip() and not l.strip().startswith("#")]


def test_dockerignore_excludes_build_outputs_and_caches():
    patterns = dockerignore_patterns()
    for p in ("build/", ".git", ".venv/", "**/__pycache__/", ".pytest_cache/"):
        assert p in patterns, p


def test_dockerfile_copy_sources_exist_and_are_not_ignored():
    ignored_tops = {p.strip("/").split("/")[0] for p in dockerignore_patterns()
                    if not p.startswith("*") and not p.startswith("!")}
    for stage in dockerfile_stages():
        for rest in stage_text(stage, "COPY"):
            if rest.startswith("--from"):
                continue
            *sources, _dest = shlex.split(rest)
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
                assert src.strip("/").split("/")[0] not in ignored_tops, f"{src} is dockerignored"


# ---- docker-compose.yml ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


SERVICES = ("elasticsearch", "kibana", "setup", "llmq")


def test_compose_services_present(compose):
    assert set(SERVICES) <= set(compose["services"])


def test_compose_every_service_on_llm_network(compose):
    assert "llm-network" in compose["networks"]
    assert (compose["networks"]["llm-network"] or {}).get("name", "llm-network") == "llm-network"
    for name, svc in compose["services"].items():
        nets = svc.get("networks")
        assert nets and "llm-network" in nets, f"{name} is not on llm-network"


def test_compose_images_pinned(compose):
    versions = {}
    for name, svc in compose["services"].items():
        image = svc.get("image")
        assert image or svc.get("build"), name
        if not image:
            continue
        repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and tag, f"{name}: {image}"
        versions[name] = (repo, tag)
    assert versions["elasticsearch"][0] == "docker.elastic.co/elasticsearch/elasticsearch"
    assert versions["kibana"][0] == "docker.elastic.co/kibana/kibana"
    es_tag = versions["elasticsearch"][1]
    assert re.fullmatch(r"9\.\d+\.\d+", es_tag), es_tag
    assert versions["kibana"][1] == es_tag, "Kibana's version must equal Elasticsearch's"


def healthcheck_text(svc: dict) -> str:
    test = svc["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def test_compose_healthchecks(compose):
    s = compose["services"]
    for name in ("elasticsearch", "kibana", "llmq"):
        assert "healthcheck" in s[name], name
        assert not s[name]["healthcheck"].get("disable"), name
    assert "_cluster/health" in healthcheck_text(s["elasticsearch"])
    assert "5601/api/status" in healthcheck_text(s["kibana"])
    assert "/healthz" in healthcheck_text(s["llmq"])


def published(svc: dict) -> set[str]:
    out = set()
    for p in svc.get("ports", []):
        p = str(p["published"]) + ":" + str(p["target"]) if isinstance(p, dict) else str(p)
        parts = p.split(":")
        out.add(f"{parts[-2]}:{parts[-1]}")
    return out


def test_compose_ports(compose):
    s = compose["services"]
    assert "8080:8080" in published(s["llmq"])
    assert "5601:5601" in published(s["kibana"])
    assert "setup" not in compose["services"] or not s["setup"].get("ports")


def test_compose_publishes_every_port_on_loopback_only(compose):
    """llmq, Elasticsearch and Kibana answer anyone who reaches them (no keys by default, no
    security on the stack): published on 127.0.0.1 unless an operator opens them on purpose."""
    for name, svc in compose["services"].items():
        for p in svc.get("ports", []):
            host_ip = p.get("host_ip") if isinstance(p, dict) else (
                str(p).split(":")[0] if str(p).count(":") == 2 else None)
            assert host_ip == "127.0.0.1", f"{name} publishes {p!r} on every interface"


def test_compose_elasticsearch_single_node_without_security(compose):
    es = compose["services"]["elasticsearch"]
    env = es["environment"]
    assert env["discovery.type"] == "single-node"
    assert str(env["xpack.security.enabled"]).lower() == "false"
    volumes = es.get("volumes") or []
    assert any(str(v).endswith(":/usr/share/elasticsearch/data") for v in volumes)
    named = str(volumes[0]).split(":")[0]
    assert named in (compose.get("volumes") or {}), "the data volume is declared"


def test_compose_start_order(compose):
    s = compose["services"]
    assert s["kibana"]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert s["setup"]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    assert s["setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"
    assert s["setup"]["restart"] == "no"
    assert s["llmq"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"


def test_compose_setup_and_llmq_commands(compose):
    s = compose["services"]
    setup = " ".join(s["setup"].get("entrypoint") or []) + " " + " ".join(s["setup"]["command"])
    assert "llmq elastic setup" in setup and "http://elasticsearch:9200" in setup
    assert "llmq kibana setup" in setup and "http://kibana:5601" in setup
    cmd = s["llmq"]["command"]
    assert cmd[cmd.index("--elastic-url") + 1] == "http://elasticsearch:9200"
    assert s["llmq"]["build"] and s["setup"]["build"]


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
