"""The deployment files name only flags the binary has: every `llmq` command line of
docker-compose.yml and every LLMQ_* variable of the Dockerfile's runtime stage is checked
against `llmq <command> --help` of the real binary (no Docker engine runs here to try them)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from llmq_e2e import REPO, llmq_bin, server_env

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def llmq_commands(compose) -> list[list[str]]:
    """Every llmq command line of the compose file and of the Kubernetes manifests, as words:
    the setup service's shell lines, the llmq service's command (the image's entrypoint is
    `llmq serve`), the scale-out services' (entrypoint `llmq`), and the containers of
    deploy/k8s."""
    s = compose["services"]
    script = " ".join(s["setup"]["command"])
    lines = [part.split() for part in script.split("&&")]
    commands = [words for words in lines if words and words[0] == "llmq"] + \
        [["llmq", "serve", *s["llmq"]["command"]]]
    for service in s.values():
        if service.get("entrypoint") == ["llmq"]:
            commands.append(["llmq", *service["command"]])
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            spec = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("containers", []):
                if c.get("command") == ["llmq"]:
                    commands.append(["llmq", *c.get("args", [])])
    return commands


def test_every_compose_flag_exists_in_the_binary(compose):
    """The files name flags of the real binary: each one appears in `llmq <command> --help`."""
    commands = llmq_commands(compose)
    assert [c[:3] for c in commands[:2]] == [["llmq", "elastic", "setup"], ["llmq", "kibana", "setup"]]
    subcommands = [c[1] for c in commands]
    assert subcommands.count("gateway") >= 2 and subcommands.count("worker") >= 3, subcommands
    for words in commands:
        sub = [w for w in words[1:3] if not w.startswith("-")]
        help_text = subprocess.run([str(llmq_bin()), *sub, "--help"], capture_output=True,
                                   text=True, env=server_env(), timeout=30).stdout
        for flag in (w.split("=")[0] for w in words if w.startswith("--")):
            assert f"{flag} " in help_text, f"{' '.join(words)}: {flag} is not a flag of llmq {' '.join(sub)}"
    runtime_stage = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[-1]  # the build stage's are the scripts'
    dockerfile_env = re.findall(r"\bLLMQ_([A-Z_]+)=", runtime_stage)
    assert dockerfile_env, "the runtime stage sets no LLMQ_ variable"
    serve_help = subprocess.run([str(llmq_bin()), "serve", "--help"], capture_output=True,
                                text=True, env=server_env(), timeout=30).stdout
    for name in dockerfile_env:
        flag = "--" + name.lower().replace("_", "-")
        assert f"{flag} " in serve_help, f"Dockerfile sets LLMQ_{name}, but serve has no {flag}"
