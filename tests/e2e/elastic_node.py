"""A real Elasticsearch node for the end-to-end tests (scripts/elasticsearch.sh: the 9.x
integ-test distribution from Maven Central, on loopback), the `llmq elastic|kibana` commands, and
small query helpers.

Isolation on a shared node: each test writes its own data streams through
`llmq serve --elastic-namespace <ns>` (logs-llmq.requests-<ns>, metrics-llmq.runtime-<ns>).
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from llmq_e2e import REPO, free_port, llmq_bin, server_env

ES_SCRIPT = REPO / "scripts" / "elasticsearch.sh"
TEMPLATES = {"logs-llmq.requests": REPO / "elastic" / "logs-llmq.requests.json",
             "metrics-llmq.runtime": REPO / "elastic" / "metrics-llmq.runtime.json"}


def requests_stream(ns: str) -> str:
    return f"logs-llmq.requests-{ns}"


def runtime_stream(ns: str) -> str:
    return f"metrics-llmq.runtime-{ns}"


def new_namespace(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class ElasticNode:
    """One node started by scripts/elasticsearch.sh, with its data in a fresh directory."""

    def __init__(self, nice: int = 0):
        self.port = free_port()
        # Under /var/tmp: as root the node runs as `nobody`, who cannot enter pytest's tmp dirs.
        self.data = Path(tempfile.mkdtemp(prefix="llmq-e2e-es-", dir="/var/tmp"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.nice = nice

    def _script(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        argv = [str(ES_SCRIPT), command, "--port", str(self.port), "--data", str(self.data)]
        if not (self.nice and command == "start"):
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        # With the kernel's autogroups on, a niced process only yields to its own session: the
        # llmq servers run in sessions of their own and would still share the CPU half and half
        # with the JVM. So the node gets a session of its own, and that session's group the nice.
        lowered = ["sh", "-c", f'echo {self.nice} >/proc/self/autogroup 2>/dev/null; exec nice -n {self.nice} "$@"',
                   "sh", *argv]
        return subprocess.run(lowered, capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)

    def start(self) -> "ElasticNode":
        r = self._script("start", 300)
        if r.returncode != 0:
            raise AssertionError(f"elasticsearch.sh start failed ({r.returncode}):\n{r.stderr[-3000:]}")
        return self

    def stop(self) -> None:
        self._script("stop", 120)

    def kill(self) -> None:
        """The node dies at once (SIGKILL), as in a crash; start() brings it back from its data."""
        pidfile = self.data / "elasticsearch.pid"
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        pidfile.unlink()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)

    # ---- queries ------------------------------------------------------------------------------

    def refresh(self, target: str) -> None:
        httpx.post(f"{self.url}/{target}/_refresh", timeout=30).raise_for_status()

    def search_all(self, target: str) -> list[dict]:
        self.refresh(target)
        r = httpx.post(f"{self.url}/{target}/_search", json={"size": 10000, "query": {"match_all": {}}},
                       timeout=30)
        r.raise_for_status()
        return r.json()["hits"]["hits"]

    def ids(self, target: str) -> collections.Counter:
        """How many documents carry each _id (all backing indices of a data stream)."""
        return collections.Counter(h["_id"] for h in self.search_all(target))

    def search(self, target: str, body: dict) -> dict:
        r = httpx.post(f"{self.url}/{target}/_search", json=body, timeout=30)
        assert r.status_code == 200, f"{target}: {r.status_code} {r.text[:1000]}"
        return r.json()

    def backing_indices(self, stream: str) -> list[str]:
        r = httpx.get(f"{self.url}/{stream}/_mapping", timeout=30)
        r.raise_for_status()
        return sorted(r.json())

    def template(self, name: str) -> dict | None:
        r = httpx.get(f"{self.url}/_index_template/{name}", timeout=30)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()["index_templates"][0]["index_template"]

    def delete_templates(self) -> None:
        for name in TEMPLATES:
            httpx.delete(f"{self.url}/_index_template/{name}", timeout=30)


def run_llmq(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs `llmq <args>` (a one-shot command) with a clean environment."""
    return subprocess.run([str(llmq_bin()), *args], capture_output=True, text=True, timeout=timeout,
                          env=server_env(env))


def elastic_setup(url: str, *extra: str) -> subprocess.CompletedProcess:
    return run_llmq("elastic", "setup", "--elastic-url", url, *extra)
