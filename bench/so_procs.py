"""The processes of a scale-out run (bench/scale_out.py): nats-server, gateways, workers and
`llmq serve`, each started on a free port with its own log and stopped by pid; plus readiness
polling, /metrics samples and CPU accounting from /proc."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from run import free_port, log

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# Processes: every one this run starts is in PROCS and stopped at the end, whatever happens.

PROCS: list["Proc"] = []
ABORT = threading.Event()  # set on Ctrl-C / an error: client threads send nothing more


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def llmq_env() -> dict[str, str]:
    """Our environment minus LLMQ_*: only the command line configures the processes."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_")}


class Proc:
    """One process of the run: its own session (a Ctrl-C in the terminal reaches only us, and we
    stop it), output to a log file, ready when `ready_path` answers 200 (or, without one, when
    its port listens)."""

    def __init__(self, name: str, argv: list[str], port: int, log_dir: Path,
                 ready_path: str | None = "/readyz"):
        self.name, self.argv, self.port, self.ready_path = name, argv, port, ready_path
        self.log_path = log_dir / f"{name}-{port}.log"
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self.ready_s: float | None = None  # start -> ready, seconds

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, wait: bool = True, timeout: float = 180) -> "Proc":
        log(f"starting {self.name}: {' '.join(self.argv)}")
        with open(self.log_path, "ab") as f:
            self.proc = subprocess.Popen(self.argv, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=llmq_env(),
                                         start_new_session=True)
        PROCS.append(self)
        self.started_at = time.monotonic()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ABORT.is_set():
                raise KeyboardInterrupt
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was "
                                   f"ready; log {self.log_path}:\n{self.log_tail()}")
            try:
                if self.ready_path is None:
                    ok = port_open(self.port)
                else:
                    ok = httpx.get(self.base_url + self.ready_path, timeout=2).status_code == 200
            except httpx.TransportError:
                ok = False
            if ok:
                self.ready_s = time.monotonic() - self.started_at
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f} s; log {self.log_path}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` (this pid only)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.pid}) ignored SIGTERM for {timeout:.0f} s: SIGKILL")
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is handed back."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def cpu_s(self) -> float | None:
        """User + system CPU seconds of the process so far (all its threads), from /proc."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        rest = stat[stat.rindex(")") + 2:].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def describe(self) -> dict:
        return {"name": self.name, "argv": self.argv, "pid": self.proc.pid if self.proc else None,
                "ready_s": self.ready_s, "log": str(self.log_path)}


def stop_all() -> None:
    """Stops every process still running, llmq first, nats-server last (by pid, never by name)."""
    for p in sorted(PROCS, key=lambda p: p.name.startswith("nats")):
        try:
            p.stop()
        except Exception as e:  # noqa: BLE001 - keep stopping the others
            log(f"stopping {p.name}: {e}")


def metric(base_url: str, name: str) -> float | None:
    """One unlabelled sample of a process's /metrics."""
    try:
        text = httpx.get(base_url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class System:
    """Either a NATS server, one gateway and workers (kind "gateway"), or one `llmq serve`
    (kind "serve"). `base_url` is where clients send requests."""

    def __init__(self, kind: str, args, log_dir: Path, tag: str):
        self.kind, self.args, self.log_dir, self.tag = kind, args, log_dir, tag
        self.nats: Proc | None = None
        self.store: str | None = None
        self.front: Proc | None = None  # the gateway or the serve process
        self.workers: list[Proc] = []
        self.n_workers_started = 0

    def common(self, port: int, name: str) -> list[str]:
        a = self.args
        return ["--host", "127.0.0.1", "--port", str(port), "--model", str(a.model),
                "--ctx-size", str(a.ctx_size), "--drain-timeout-ms", "2000",
                "--spool-dir", str(self.log_dir / f"spool-{name}-{port}")]

    def start_nats(self) -> None:
        port, mport = free_port(), free_port()
        self.store = tempfile.mkdtemp(prefix=f"llmq-bench-nats-{self.tag}-")
        self.nats = Proc(f"{self.tag}-nats", [self.args.nats_server, "-js", "-a", "127.0.0.1",
                                              "-p", str(port), "-m", str(mport), "-sd", self.store],
                         port, self.log_dir, ready_path=None).start(timeout=20)

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats.port}"

    def start_gateway(self, *extra: str) -> Proc:
        self.start_nats()
        port = free_port()
        argv = [str(self.args.llmq_bin), "gateway", "--nats-url", self.nats_url,
                *self.common(port, "gateway"), *extra]
        self.front = Proc(f"{self.tag}-gateway", argv, port, self.log_dir).start()
        return self.front

    def start_worker(self, *extra: str, wait: bool = True) -> Proc:
        port = free_port()
        self.n_workers_started += 1
        name = f"{self.tag}-worker{self.n_workers_started}"
        argv = [str(self.args.llmq_bin), "worker", "--nats-url", self.nats_url,
                *self.common(port, name), *extra]
        w = Proc(name, argv, port, self.log_dir).start(wait=wait)
        self.workers.append(w)
        return w

    def start_serve(self, *extra: str) -> Proc:
        port = free_port()
        argv = [str(self.args.llmq_bin), "serve", *self.common(port, "serve"), *extra]
        self.front = Proc(f"{self.tag}-serve", argv, port, self.log_dir).start()
        return self.front

    @property
    def base_url(self) -> str:
        return self.front.base_url

    def procs(self) -> list[Proc]:
        return [p for p in (self.front, *self.workers, self.nats) if p is not None]

    def stop(self) -> None:
        for p in [*self.workers, self.front]:
            if p is not None:
                p.stop()
        if self.nats is not None:
            self.nats.stop()
        if self.store:
            shutil.rmtree(self.store, ignore_errors=True)
            self.store = None

    def __enter__(self) -> "System":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()



# --------------------------------------------------------------------------------------------
# CPU time and waiting


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
    return (sum(f[:8]) - f[3] - f[4]) / CLK_TCK


def cpu_snapshot(procs: list[Proc]) -> dict:
    r = resource.getrusage(resource.RUSAGE_SELF)
    snap = {p.name: p.cpu_s() for p in procs}
    snap["bench client (this process)"] = r.ru_utime + r.ru_stime
    snap["machine (all processes)"] = machine_busy_s()
    return snap


def wait_for(pred, timeout: float, what: str, fail: bool = True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ABORT.is_set():
            raise KeyboardInterrupt
        if pred():
            return True
        time.sleep(0.02)
    if fail:
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
    log(f"  timed out after {timeout:.0f} s waiting for {what}")
    return False
