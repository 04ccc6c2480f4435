"""Static checks of the scale-out deployment files: the compose profile `scale-out` and the
Kubernetes manifests under deploy/k8s/ (NATS, gateway, workers, the KEDA ScaledObject).

No Docker engine or cluster runs here. Each file goes through a schema validator from a package
registry (pinned in requirements-dev.txt), and each validator is shown a broken copy it must reject:

- docker-compose.yml: the compose-spec JSON schema that check-jsonschema vendors
  (`check-jsonschema --builtin-schema vendor.compose-spec`);
- the Kubernetes objects: kubernetes-validate's JSON schemas of the Kubernetes API, in strict mode
  (an unknown field is an error), for the oldest and the newest version checked;
- the ScaledObject: cloudcoil-models-keda, pydantic models generated from KEDA's CRD, plus a
  check that the model kept every field given (pydantic drops the fields it does not know).

Then the properties the scale-out mode relies on: one KEDA trigger per model with the stream and
consumer names llmq uses, lagThreshold equal to a worker's slots, a worker grace period longer
than the longest generation, probes and resources, and the compose profile leaving the default
stack as it was. nats-server (Debian's, the image's version) is started on loopback with the
flags of both files, to prove they enable JetStream and the monitoring port.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
MODELS_SH = ROOT / "scripts" / "models.sh"

STREAM = "LLM_INFERENCE"
PROFILE = "scale-out"
DEFAULT_SERVICES = {"elasticsearch", "kibana", "setup", "llmq"}
SCALE_OUT_SERVICES = {"nats", "gateway", "worker-1", "worker-2"}
# Kubernetes versions the objects are validated against: the oldest KEDA 2.16 supports, and the
# newest kubernetes-validate ships.
K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
# Trigger metadata is a free map in KEDA's CRD; these are the nats-jetstream scaler's keys.
NATS_JETSTREAM_KEYS = {"natsServerMonitoringEndpoint", "account", "stream", "consumer",
                       "lagThreshold", "activationLagThreshold", "useHttps"}
# Time a worker's grace period must leave after its drain timeout, for the process to exit.
GRACE_MARGIN_S = 30


@pytest.fixture(scope="session", autouse=True)
def _prerequisites():
    """Overrides the suite's check for the binary and the model: not needed here."""
    return None


# ---- helpers ---------------------------------------------------------------------------------

def model_token(model_path: str) -> str:
    """The name llmq gives a model on the wire: the GGUF file's stem, every character outside
    [A-Za-z0-9_-] replaced by `_` (subjects llmq.jobs.<token>, consumers llmq-<token>)."""
    stem = Path(model_path).name.removesuffix(".gguf")
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem)


def flags(words: list[str]) -> dict[str, str]:
    """`--flag value` and `--flag=value` pairs of a command line (a lone flag maps to "")."""
    out, i = {}, 0
    while i < len(words):
        w = words[i]
        if w.startswith("-"):
            name, eq, value = w.partition("=")
            if not eq and i + 1 < len(words) and not words[i + 1].startswith("-"):
                value, i = words[i + 1], i + 1
            out[name] = value
        i += 1
    return out


def duration_s(text: str) -> float:
    """A compose duration (`11m`, `1m30s`, `40s`, `500ms`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"cannot read duration {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def load_k8s() -> list[tuple[str, dict]]:
    """(file name, object) for every object of every manifest under deploy/k8s/."""
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((path.name, doc))
    return out


def k8s_object(kind: str, name: str) -> dict:
    found = [d for _, d in load_k8s() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def k8s_command(deployment: dict) -> list[str]:
    c = container(deployment)
    return [*c.get("command", []), *c.get("args", [])]


def compose_command(svc: dict) -> list[str]:
    return [*(svc.get("entrypoint") or []), *(svc.get("command") or [])]


def model_paths(words: list[str]) -> list[str]:
    return flags(words)["--models"].split(",")


def unknown_fields(given, kept, path: str = "") -> list[str]:
    """Paths present in `given` but not in `kept` (a model's dump): the fields it ignored."""
    if isinstance(given, dict) and isinstance(kept, dict):
        out = []
        for key, value in given.items():
            if key not in kept:
                out.append(f"{path}.{key}")
            else:
                out += unknown_fields(value, kept[key], f"{path}.{key}")
        return out
    if isinstance(given, list) and isinstance(kept, list):
        return [p for i, (g, k) in enumerate(zip(given, kept))
                for p in unknown_fields(g, k, f"{path}[{i}]")]
    return []


def validate_scaled_object(doc: dict) -> None:
    """KEDA's CRD as pydantic models; raises on a wrong type, a missing field, an unknown one."""
    model = ScaledObject.model_validate(doc)
    ignored = unknown_fields(doc, model.model_dump(by_alias=True, exclude_unset=True, mode="json"))
    if ignored:
        raise ValueError(f"fields not in KEDA's ScaledObject: {ignored}")


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


# ---- the validators --------------------------------------------------------------------------

def test_compose_file_passes_the_compose_spec_schema():
    r = check_compose_schema(COMPOSE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_spec_schema_rejects_a_broken_copy(tmp_path):
    """A misspelt key (`profile:` for `profiles:`) must fail, or the validator proves nothing."""
    text = COMPOSE.read_text(encoding="utf-8")
    broken = re.sub(r"^(\s+)profiles:", r"\1profile:", text, flags=re.MULTILINE)
    assert broken != text
    path = tmp_path / "docker-compose.yml"
    path.write_text(broken, encoding="utf-8")
    r = check_compose_schema(path)
    assert r.returncode != 0 and "'profile' was unexpected" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_objects_pass_the_strict_schemas(version):
    kinds = set()
    for name, doc in load_k8s():
        if doc["kind"] in ("Kustomization", "ScaledObject"):
            continue  # not Kubernetes API kinds: checked below
        error = None
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:  # its text carries the whole schema
            error = f"{name}: {doc['kind']}/{doc['metadata']['name']}: " \
                    f"{'.'.join(str(p) for p in e.path)}: {e.message}"
        if error:
            pytest.fail(error, pytrace=False)
        kinds.add(doc["kind"])
    assert {"Namespace", "Service", "StatefulSet", "Deployment"} <= kinds, kinds


@pytest.mark.parametrize("breakage", ["misspelt field", "wrong type", "missing field"])
def test_kubernetes_schemas_reject_a_broken_worker(breakage):
    worker = copy.deepcopy(k8s_object("Deployment", "llmq-worker"))
    pod = worker["spec"]["template"]["spec"]
    if breakage == "misspelt field":
        pod["terminationGracePeriod"] = pod.pop("terminationGracePeriodSeconds")
    elif breakage == "wrong type":
        pod["terminationGracePeriodSeconds"] = "660s"
    else:
        del container(worker)["name"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, K8S_VERSIONS[-1], strict=True)


def test_scaled_object_passes_kedas_crd_model():
    validate_scaled_object(k8s_object("ScaledObject", "llmq-worker"))


@pytest.mark.parametrize("breakage", ["lagThreshold as a number", "misspelt field",
                                      "no scaleTargetRef"])
def test_kedas_crd_model_rejects_a_broken_scaled_object(breakage):
    so = copy.deepcopy(k8s_object("ScaledObject", "llmq-worker"))
    if breakage == "lagThreshold as a number":
        so["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 4
    elif breakage == "misspelt field":
        so["spec"]["minReplicas"] = so["spec"].pop("minReplicaCount")
    else:
        del so["spec"]["scaleTargetRef"]
    with pytest.raises((pydantic.ValidationError, ValueError)):
        validate_scaled_object(so)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert len(kustomization["resources"]) == len(manifests)
    namespaces = {d["metadata"].get("namespace") for _, d in load_k8s()
                  if d["kind"] not in ("Kustomization", "Namespace")}
    assert namespaces == {kustomization["namespace"]}
    assert k8s_object("Namespace", kustomization["namespace"])


# ---- Kubernetes: what the scale-out mode relies on -------------------------------------------

def test_model_tokens_follow_llmqs_rule():
    assert model_token("/m/SmolLM2-135M-Instruct.Q4_1.gguf") == "SmolLM2-135M-Instruct_Q4_1"
    assert model_token("/m/gemma-3-270m-q4_k_m.gguf") == "gemma-3-270m-q4_k_m"


def test_keda_has_one_trigger_per_model_with_llmqs_names():
    worker = k8s_object("Deployment", "llmq-worker")
    worker_flags = flags(k8s_command(worker))
    so = k8s_object("ScaledObject", "llmq-worker")
    assert so["metadata"]["namespace"] == worker["metadata"]["namespace"]
    target = so["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == worker["metadata"]["name"]

    nats = k8s_object("Service", "nats")
    monitor = {p["name"]: p["port"] for p in nats["spec"]["ports"]}["monitor"]
    endpoint = f"nats.{nats['metadata']['namespace']}.svc.cluster.local:{monitor}"
    assert monitor == 8222

    triggers = so["spec"]["triggers"]
    tokens = [model_token(p) for p in model_paths(k8s_command(worker))]
    assert len(tokens) == 2 and len(set(tokens)) == 2
    consumers = sorted(t["metadata"]["consumer"] for t in triggers)
    assert consumers == sorted(f"llmq-{t}" for t in tokens)
    for t in triggers:
        m = t["metadata"]
        assert t["type"] == "nats-jetstream"
        assert set(m) <= NATS_JETSTREAM_KEYS, set(m) - NATS_JETSTREAM_KEYS
        assert m["natsServerMonitoringEndpoint"] == endpoint
        assert m["account"] == "$G"
        assert m["stream"] == STREAM
        assert m["lagThreshold"] == worker_flags["--slots"], "lagThreshold = slots of one worker"
    # The scaler counts a consumer's lag only once the consumer exists: a worker stays up.
    assert so["spec"]["minReplicaCount"] >= 1
    assert so["spec"]["maxReplicaCount"] > so["spec"]["minReplicaCount"]
    assert "replicas" not in worker["spec"], "KEDA owns the worker count"


def test_gateway_and_workers_agree_on_models_and_nats():
    gateway = k8s_object("Deployment", "llmq-gateway")
    worker = k8s_object("Deployment", "llmq-worker")
    g, w = k8s_command(gateway), k8s_command(worker)
    assert g[:2] == ["llmq", "gateway"] and w[:2] == ["llmq", "worker"]
    assert model_paths(g) == model_paths(w)
    nats = k8s_object("Service", "nats")
    client = {p["name"]: p["port"] for p in nats["spec"]["ports"]}["client"]
    assert flags(g)["--nats-url"] == flags(w)["--nats-url"] == f"nats://nats:{client}"


def test_worker_grace_period_outlasts_the_longest_generation():
    """A worker told to stop lets its running jobs finish: the drain timeout covers the request
    deadline (the gateway's --timeout-ms, default 600000), the grace period covers the drain."""
    timeout_ms = int(flags(k8s_command(k8s_object("Deployment", "llmq-gateway")))
                     .get("--timeout-ms", "600000"))
    assert timeout_ms > 0, "a request without deadline could outlast any grace period"
    worker = k8s_object("Deployment", "llmq-worker")
    drain_ms = int(flags(k8s_command(worker)).get("--drain-timeout-ms", "30000"))
    grace_s = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert drain_ms >= timeout_ms
    assert grace_s >= 600 + GRACE_MARGIN_S
    assert grace_s >= drain_ms / 1000 + GRACE_MARGIN_S


@pytest.mark.parametrize("name", ["llmq-gateway", "llmq-worker"])
def test_llmq_pods_have_probes_and_resources(name):
    deployment = k8s_object("Deployment", name)
    c = container(deployment)
    port = int(flags(k8s_command(deployment))["--port"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports.get(get["port"], get["port"]) == port, f"{probe} asks another port"
    requests = c["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert c["resources"]["limits"]["memory"]
    threads = flags(k8s_command(deployment)).get("--threads")
    if threads:
        assert cpu_cores(requests["cpu"]) >= int(threads), "a core per decode thread"


def test_nats_statefulset_runs_jetstream_with_monitoring_on_a_volume():
    sts = k8s_object("StatefulSet", "nats")
    c = container(sts)
    f = flags(c.get("args", []))
    assert "-js" in f or "--jetstream" in f
    assert (f.get("-m") or f.get("--http_port")) == "8222"
    store = f.get("-sd") or f.get("--store_dir")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts.get(store) in {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    assert "/healthz" in c["readinessProbe"]["httpGet"]["path"]


# ---- compose: the profile scale-out ----------------------------------------------------------

def test_compose_default_stack_is_unchanged(compose):
    """`docker compose up` without a profile starts the four services it always did."""
    services = compose["services"]
    default = {n for n, s in services.items() if not s.get("profiles")}
    assert default == DEFAULT_SERVICES
    for name in default:
        deps = set(services[name].get("depends_on") or [])
        assert deps <= DEFAULT_SERVICES, f"{name} depends on {deps - DEFAULT_SERVICES}"
        assert "nats" not in yaml.safe_dump(services[name]), name
    for name in ("setup", "llmq"):  # the default image: no build arguments, no Gemma
        assert services[name]["image"] == "llmq:local" and services[name]["build"] == ".", name


def test_compose_scale_out_profile(compose):
    services = compose["services"]
    profiled = {n for n, s in services.items() if s.get("profiles")}
    assert profiled == SCALE_OUT_SERVICES
    for name in SCALE_OUT_SERVICES:
        assert services[name]["profiles"] == [PROFILE], name
        assert "llm-network" in services[name]["networks"], name


def test_compose_nats_has_jetstream_monitoring_and_a_volume(compose):
    nats = compose["services"]["nats"]
    assert re.fullmatch(r"nats:2\.9\.\d+(-alpine[\d.]*)?", nats["image"]), nats["image"]
    f = flags(nats["command"])
    assert "-js" in f or "--jetstream" in f
    assert (f.get("-m") or f.get("--http_port")) == "8222"
    store = f.get("-sd") or f.get("--store_dir")
    volume = next(v.split(":")[0] for v in nats["volumes"] if v.split(":")[1] == store)
    assert volume in compose["volumes"], "JetStream's store is a named volume"
    health = " ".join(nats["healthcheck"]["test"])
    assert "8222/healthz" in health


def test_compose_gateway_and_workers(compose):
    s = compose["services"]
    gateway = compose_command(s["gateway"])
    assert gateway[:2] == ["llmq", "gateway"]
    g = flags(gateway)
    assert g["--nats-url"] == "nats://nats:4222"
    assert g["--host"] == "0.0.0.0" and g["--port"] == "8080"
    default_ports = {p.split(":")[-2] for n in DEFAULT_SERVICES for p in s[n].get("ports", [])}
    gateway_ports = [p.split(":") for p in s["gateway"]["ports"]]
    assert [p[-1] for p in gateway_ports] == ["8080"]
    assert not {p[-2] for p in gateway_ports} & default_ports, "a host port of the default stack"
    assert s["gateway"]["depends_on"]["nats"]["condition"] == "service_healthy"

    timeout_ms = int(g.get("--timeout-ms", "600000"))
    for name in ("worker-1", "worker-2"):
        worker = compose_command(s[name])
        assert worker[:2] == ["llmq", "worker"], name
        w = flags(worker)
        assert w["--nats-url"] == "nats://nats:4222"
        assert model_paths(worker) == model_paths(gateway)
        assert int(w["--slots"]) >= 1 and w["--port"] in " ".join(s[name]["healthcheck"]["test"])
        drain_ms = int(w.get("--drain-timeout-ms", "30000"))
        assert drain_ms >= timeout_ms
        assert duration_s(s[name]["stop_grace_period"]) >= drain_ms / 1000 + GRACE_MARGIN_S, name
        assert s[name]["depends_on"]["nats"]["condition"] == "service_healthy"
        assert not s[name].get("ports"), "two workers cannot publish the same host port"


def test_models_named_in_the_files_are_in_the_image(compose):
    """The --models paths are files the Dockerfile puts into /opt/llmq/models: the default model
    always, the others (Gemma) when built with LLMQ_SKIP_GEMMA=0, as the scale-out services are."""
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    models_sh = MODELS_SH.read_text(encoding="utf-8")
    gemma = re.search(r"^gemma=(\S+)$", models_sh, re.MULTILINE).group(1)
    in_image = {"SmolLM2-135M-Instruct.Q4_1.gguf", gemma}
    assert "COPY --from=build /opt/llmq-extra-models/ /opt/llmq/models/" in dockerfile
    assert re.search(r"^ARG LLMQ_SKIP_GEMMA=1$", dockerfile, re.MULTILINE)
    commands = [compose_command(compose["services"][n]) for n in SCALE_OUT_SERVICES - {"nats"}]
    commands += [k8s_command(k8s_object("Deployment", n)) for n in ("llmq-gateway", "llmq-worker")]
    for words in commands:
        for path in model_paths(words):
            assert Path(path).parent == Path("/opt/llmq/models"), path
            assert Path(path).name in in_image, path
    for name in SCALE_OUT_SERVICES - {"nats"}:
        svc = compose["services"][name]
        assert svc["image"] == "llmq:scale-out"
        assert str(svc["build"]["args"]["LLMQ_SKIP_GEMMA"]) == "0", name


# ---- the NATS flags against nats-server itself -----------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nats_server() -> str:
    path = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/bin")
    if not path:
        pytest.fail("nats-server is not installed (scripts/setup.sh installs Debian's)",
                    pytrace=False)
    return path


@pytest.mark.parametrize("source", ["compose", "k8s"])
def test_nats_flags_start_jetstream_on_the_same_nats_server(source, compose, tmp_path):
    """The image's flags given to Debian's nats-server of the same version: JetStream comes up
    with its store where the volume is mounted, and the monitoring port answers the health check
    the files use. Only the store directory and the ports are remapped, to loopback."""
    args = (compose["services"]["nats"]["command"] if source == "compose"
            else container(k8s_object("StatefulSet", "nats"))["args"])
    version = subprocess.run([nats_server(), "--version"], capture_output=True, text=True).stdout
    assert "2.9." in version, version
    client, monitor = free_port(), free_port()
    remap = {"-sd": str(tmp_path), "--store_dir": str(tmp_path),
             "-m": str(monitor), "--http_port": str(monitor)}
    words, i = [], 0
    while i < len(args):
        words.append(args[i])
        if args[i] in remap:
            words.append(remap[args[i]])
            i += 1
        i += 1
    assert str(monitor) in words, "no monitoring port in the flags"
    proc = subprocess.Popen([nats_server(), *words, "-a", "127.0.0.1", "-p", str(client)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
        deadline, body = time.monotonic() + 10, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.1)
        if body is None:
            proc.terminate()
            pytest.fail(f"nats-server {' '.join(words)} did not answer:\n{proc.communicate()[1]}")
        assert '"ok"' in body
        assert (tmp_path / "jetstream").is_dir(), "JetStream's store is not where the volume is"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
