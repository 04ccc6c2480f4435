"""Static checks of the deployment files: Dockerfile, .dockerignore and docker-compose.yml (the
Kibana saved objects have test_kibana_saved_objects.py).

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
                   "nlohmann-json3-dev", "libcli11-dev", "libnats-dev", "npm", "ninja-build"):
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
    for lib in ("libspdlog1.10", "libfmt9", "libtomlplusplus3", "libgomp1", "libcurl4", "libnats3.4"):
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
