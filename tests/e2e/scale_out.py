"""A scale-out deployment on this machine for the end-to-end tests: a real nats-server (Debian's,
with JetStream and a file store), one `llmq gateway` and `llmq worker`s, each its own process.
Nothing is mocked; the tests kill and restart these processes as an operator's bad day would."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from llmq_e2e import LlmqServer, free_port, model_path, port_is_listening


class NatsServer:
    """nats-server with JetStream on loopback; stop() and start() again keep its store."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.monitor_port = free_port()
        self.store = log_dir / f"nats-{self.port}"
        self.log = log_dir / f"nats-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> "NatsServer":
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [exe, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port),
                 "-sd", str(self.store)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"nats-server exited: {self.log.read_text()}"
            if port_is_listening(self.port):
                return self
            time.sleep(0.05)
        raise AssertionError("nats-server did not listen within 15 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)

    def jsz(self) -> dict:
        """The monitoring endpoint's JetStream report (what KEDA's scaler reads)."""
        return httpx.get(f"http://127.0.0.1:{self.monitor_port}/jsz?consumers=true", timeout=5).json()


def gemma_path() -> Path:
    return model_path().parent / "gemma-3-270m-q4_k_m.gguf"


class ScaleOut:
    """A gateway and workers on one NATS. Every process is stopped by stop_all()."""

    def __init__(self, factory, nats: NatsServer):
        self.factory = factory
        self.nats = nats
        self.gateway: LlmqServer | None = None
        self.workers: list[LlmqServer] = []

    def start_gateway(self, *extra: str, models: list[Path] | None = None) -> LlmqServer:
        port = free_port()
        args = ["gateway", "--nats-url", self.nats.url, "--host", "127.0.0.1", "--port", str(port),
                "--model", str(model_path()), "--ping-interval-ms", "200", "--ctx-size", "2048",
                "--ack-wait-ms", "2000", *extra]
        if models:
            args += ["--models", ",".join(str(m) for m in models)]
        self.gateway = self.factory.create("gateway", args=args, port=port).start()
        return self.gateway

    def start_worker(self, *extra: str, name: str | None = None, models: list[Path] | None = None,
                     wait: bool = True) -> LlmqServer:
        port = free_port()
        args = ["worker", "--nats-url", self.nats.url, "--host", "127.0.0.1", "--port", str(port),
                "--model", str(model_path()), "--slots", "2", "--threads", "1", "--ctx-size", "2048",
                "--ack-wait-ms", "2000", "--drain-timeout-ms", "3000", *extra]
        if models:
            args += ["--models", ",".join(str(m) for m in models)]
        w = self.factory.create(name or f"worker{len(self.workers) + 1}", args=args, port=port)
        if wait:
            w.start()
        else:
            w.spawn()
        self.workers.append(w)
        return w

    def kill(self, server: LlmqServer) -> None:
        """SIGKILL: no handler runs, nothing is handed back."""
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
