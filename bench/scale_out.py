#!/usr/bin/env python3
"""Scale-out benchmark: `llmq gateway` + `llmq worker`s on a real NATS JetStream server
(Debian's `nats-server`), against each other and against the all-in-one `llmq serve`, in one
run on this machine. See bench/README.md ("bench/scale_out.py") for what each number means.

    python bench/scale_out.py --plots docs/img             # full run (~5-7 minutes, idle machine)
    python bench/scale_out.py --quick                      # smoke run (~2-3 minutes)
    python bench/scale_out.py --parts 2 --requests 60      # one part only

Parts (--parts, comma-separated):
  1  throughput: 1 worker vs 2 workers (--threads 1 --slots 4 each) behind one gateway, the same
     closed-loop load (--clients, --duration); requests/s, tokens/s, p95 latency, the ratio
  2  overhead: gateway + JetStream + 1 worker vs `llmq serve`, same threads and slots, sequential
     single requests alternated between the two; TTFT p50 and decode tokens/s, the deltas
  3  cold / warm / swap TTFT of both models with --max-loaded 1, gateway+worker and serve
  4  redelivery: SIGKILL the worker running long streams; time to `started` attempt 2
  5  SIMULATION (not a measurement): M/G/c projection from part 1's measured service times

Every process runs on free ports and is stopped at the end, also on Ctrl-C or an error.
Results: bench/results/scale-out-<timestamp>.json; process logs in
bench/results/logs/scale-out-<timestamp>/; PNG plots with --plots DIR.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import json
import math
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clients import T_ORIGIN, iter_sse, new_client, now
from run import (RESULTS_DIR, counting_prompt, default_llmq_bin, default_model, free_port,
                 host_info, log, median, percentile)

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
# One request to POST /api/v1/req, streamed, every event timed on arrival (seconds on the
# monotonic clock since clients.T_ORIGIN). The events are those of tests/e2e/sse_client.py:
# queued, ping, loading, started {worker, queue_ms, attempt}, token {i, text}, done, error.


@dataclass
class Rec:
    label: str
    i: int
    ok: bool = False                  # ended with done
    error: str = ""
    cancelled: bool = False           # we closed the stream ourselves
    sent: float | None = None
    queued: float | None = None
    loading: list[float] = field(default_factory=list)
    started: list[dict] = field(default_factory=list)   # {"t", "worker", "queue_ms", "attempt"}
    first_token: float | None = None
    last_token: float | None = None
    end: float | None = None
    pieces: int = 0
    index_ok: bool = True             # token i went 0, 1, 2, ... (none repeated or skipped)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    timings: dict | None = None

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.sent) * 1000

    @property
    def latency_ms(self) -> float | None:
        return (self.end - self.sent) * 1000 if self.ok else None

    @property
    def worker(self) -> str | None:
        return self.started[0]["worker"] if self.started else None

    @property
    def service_ms(self) -> float | None:
        """Latency minus the time the job waited in the queue (`started.queue_ms` of its first
        run): what a slot spent on it, plus the fixed transport cost."""
        if not self.ok or not self.started:
            return None
        return self.latency_ms - self.started[0]["queue_ms"]

    def row(self) -> dict:
        d = asdict(self)
        d.update(ttft_ms=self.ttft_ms, latency_ms=self.latency_ms, service_ms=self.service_ms)
        return d


def body(prompt: str, max_tokens: int, seed: int, **extra) -> dict:
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "seed": seed,
            "stream": True, **extra}


def send(client: httpx.Client, base_url: str, req: dict, rec: Rec,
         stop: threading.Event | None = None) -> Rec:
    """Sends `req` and fills `rec` as the events come (another thread may watch it); closes the
    stream early (the server cancels the job) once `stop` is set."""
    rec.sent = now()
    try:
        with client.stream("POST", base_url + "/api/v1/req", json=req) as r:
            if r.status_code != 200:
                r.read()
                rec.error = f"HTTP {r.status_code}: {r.text[:200]}"
                return rec
            for name, data, t in iter_sse(r):
                t -= T_ORIGIN
                d = json.loads(data)
                if name == "queued":
                    rec.queued = t
                elif name == "loading":
                    rec.loading.append(t)
                elif name == "started":
                    rec.started.append({"t": t, "worker": d.get("worker"),
                                        "queue_ms": d.get("queue_ms"), "attempt": d.get("attempt")})
                elif name == "token":
                    if d.get("i") != rec.pieces:
                        rec.index_ok = False
                    rec.pieces += 1
                    if rec.first_token is None:
                        rec.first_token = t
                    rec.last_token = t
                elif name == "done":
                    u, tm = d.get("usage") or {}, d.get("timings") or {}
                    rec.ok = True
                    rec.finish_reason = d.get("finish_reason")
                    rec.prompt_tokens = u.get("prompt_tokens")
                    rec.completion_tokens = u.get("completion_tokens")
                    rec.cached_tokens = u.get("cached_tokens")
                    rec.timings = tm
                elif name == "error":
                    rec.error = data[:300]
                if stop is not None and stop.is_set():
                    rec.cancelled = True
                    break
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        rec.error = rec.error or f"{type(e).__name__}: {e}"
    rec.end = now()
    if not rec.ok and not rec.error and not rec.cancelled:
        rec.error = "stream ended without done"
    return rec


def one(base_url: str, req: dict, label: str, i: int) -> Rec:
    with new_client() as c:
        return send(c, base_url, req, Rec(label, i))


def pctl(xs, p):
    return percentile([x for x in xs if x is not None], p)


def fmt(x, nd=1, unit=""):
    return "-" if x is None else f"{x:.{nd}f}{unit}"


# --------------------------------------------------------------------------------------------
# Part 1: throughput, 1 worker vs 2 workers


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


def overlap(r: Rec, a: float, b: float) -> float:
    """The fraction of the request's run (its first `started` -> the end of its stream) inside
    [a, b]."""
    s, e = (r.started[0]["t"] if r.started else r.sent), r.end
    if e <= s:
        return 1.0 if a <= e <= b else 0.0
    return max(0.0, min(e, b) - max(s, a)) / (e - s)


def closed_loop(base_url: str, args, stride: int, offset: int, label: str,
                procs: list[Proc]) -> dict:
    """`args.clients` threads, each sending its next request when its last one ended, from now
    for warmup + duration seconds; the window is the last `duration` seconds. Request n of the
    level gets prompt counting_prompt(n * stride + offset), so levels draw their prompts from
    the same range and no prompt is sent twice in a run."""
    lock = threading.Lock()
    counter = [0]
    recs: list[Rec] = []
    t_begin = now()
    t_win = t_begin + args.warmup
    t_end = t_win + args.duration

    def client_loop():
        with new_client() as c:
            while not ABORT.is_set() and now() < t_end:
                with lock:
                    n = counter[0]
                    counter[0] += 1
                k = n * stride + offset
                rec = Rec(label, k)
                send(c, base_url, body(counting_prompt(k), args.max_tokens, seed=1000 + k), rec)
                with lock:
                    recs.append(rec)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, t_win - now()))
    cpu0, c0 = cpu_snapshot(procs), now()
    time.sleep(max(0.0, t_end - now()))
    cpu1, c1 = cpu_snapshot(procs), now()
    for t in threads:
        while t.is_alive():
            t.join(0.5)

    done_in_window = [r for r in recs if r.ok and t_win <= r.end <= t_end]
    sent_in_window = [r for r in recs if r.ok and t_win <= r.sent < t_end]
    lat = [r.latency_ms for r in sent_in_window]
    # Throughput counts the part of each request's run (started -> done) that fell inside the
    # window: a request run half inside counts half, its tokens too. Counting whole completions
    # instead would quantise the figure: the slots of a worker start and end their requests
    # together (same max_tokens), so completions come in bursts of --slots.
    ok = [(r, overlap(r, t_win, t_end)) for r in recs if r.ok]
    per_worker: dict[str, float] = {}
    for r, f in ok:
        per_worker[r.worker] = per_worker.get(r.worker, 0) + f
    per_worker = {k: round(v, 1) for k, v in per_worker.items()}
    cpu = {k: (None if cpu0.get(k) is None or cpu1.get(k) is None
               else round(100 * (cpu1[k] - cpu0[k]) / (c1 - c0), 1)) for k in cpu0}
    ours = sum(v for k, v in cpu.items() if v is not None and not k.startswith("machine"))
    if cpu.get("machine (all processes)") is not None:
        # Anything else running on the machine meanwhile (a build, a test run) shows here.
        cpu["other processes"] = round(max(0.0, cpu["machine (all processes)"] - ours), 1)
    return {
        "label": label, "clients": args.clients, "warmup_s": args.warmup,
        "duration_s": args.duration, "window": [t_win, t_end],
        "completed_in_window": len(done_in_window),
        "completions_per_s": len(done_in_window) / args.duration,
        "requests_per_s": sum(f for _, f in ok) / args.duration,
        "tokens_per_s": sum(f * r.completion_tokens for r, f in ok) / args.duration,
        "latency_ms_p50": pctl(lat, 50), "latency_ms_p95": pctl(lat, 95),
        "ttft_ms_p50": pctl([r.ttft_ms for r in sent_in_window], 50),
        "ttft_ms_p95": pctl([r.ttft_ms for r in sent_in_window], 95),
        "queue_ms_p50": pctl([r.started[0]["queue_ms"] for r in sent_in_window], 50),
        "service_ms": [r.service_ms for r in sent_in_window],
        "completion_tokens_p50": pctl([r.completion_tokens for r in sent_in_window], 50),
        "per_worker_requests": per_worker,  # requests run inside the window, by worker
        "cpu_percent_of_one_core": cpu,
        "errors": [r.error for r in recs if not r.ok],
        "samples": [r.row() for r in recs],
    }


def part1(args, log_dir: Path) -> dict:
    wargs = ["--threads", str(args.p1_threads), "--slots", str(args.p1_slots)]
    out: dict[str, Any] = {"worker_flags": wargs, "runs": [], "baseline": None}
    with System("gateway", args, log_dir, "p1") as s:
        s.start_gateway("--queue-max", str(max(64, 4 * args.clients)))
        s.start_worker(*wargs)
        # Single-request latency on one idle worker: the reference of part 5's target.
        log(f"part 1: {args.baseline_requests} single requests, one at a time (baseline)")
        # Prompts: request n of a closed-loop run gets counting_prompt(n * stride + its offset),
        # the baseline's the last offset: the same range of numbers (so prompts of the same
        # length) everywhere, no prompt twice.
        stride = 2 * args.rounds + 1
        one(s.base_url, body(counting_prompt(stride * 10_000), 8, seed=1), "warm-up", -1)
        base = [one(s.base_url, body(counting_prompt(j * stride + stride - 1), args.max_tokens,
                                     seed=1000 + j * stride + stride - 1), "baseline", j)
                for j in range(args.baseline_requests)]
        out["baseline"] = {
            "latency_ms_median": median([r.latency_ms for r in base]),
            "ttft_ms_median": median([r.ttft_ms for r in base]),
            "decode_tps_median": median([(r.timings or {}).get("decode_tokens_per_s") for r in base]),
            "errors": [r.error for r in base if not r.ok],
            "samples": [r.row() for r in base]}
        for rnd in range(args.rounds):
            for n_workers in (1, 2):
                while len([w for w in s.workers if w.alive()]) > n_workers:
                    next(w for w in reversed(s.workers) if w.alive()).stop()
                while len([w for w in s.workers if w.alive()]) < n_workers:
                    s.start_worker(*wargs)
                label = f"{n_workers} worker{'s' if n_workers > 1 else ''}"
                log(f"part 1, round {rnd + 1}/{args.rounds}: {label}, {args.clients} clients, "
                    f"{args.warmup:.0f} s warm-up + {args.duration:.0f} s measured")
                live = [p for p in s.procs() if p.alive()]
                r = closed_loop(s.base_url, args, stride, 2 * rnd + n_workers - 1, label, live)
                r.update(round=rnd + 1, workers=n_workers)
                out["runs"].append(r)
                log(f"  {r['requests_per_s']:.2f} req/s, {r['tokens_per_s']:.1f} tok/s, "
                    f"p95 {fmt(r['latency_ms_p95'], 0)} ms, errors {len(r['errors'])}")
        out["processes"] = [p.describe() for p in s.procs()]
    for n in (1, 2):
        runs = [r for r in out["runs"] if r["workers"] == n]
        dur = sum(r["duration_s"] for r in runs)
        out[f"w{n}"] = {
            "requests_per_s": sum(r["requests_per_s"] * r["duration_s"] for r in runs) / dur,
            "tokens_per_s": sum(r["tokens_per_s"] * r["duration_s"] for r in runs) / dur,
            "latency_ms_p95": median([r["latency_ms_p95"] for r in runs]),
            "latency_ms_p50": median([r["latency_ms_p50"] for r in runs]),
        }
    out["ratio_requests"] = ratio(out["w2"]["requests_per_s"], out["w1"]["requests_per_s"])
    out["ratio_tokens"] = ratio(out["w2"]["tokens_per_s"], out["w1"]["tokens_per_s"])
    return out


def ratio(a, b):
    return a / b if a is not None and b else None


def report1(p: dict, args) -> str:
    L = [f"Part 1: throughput, gateway + N workers ({' '.join(p['worker_flags'])} each), "
         f"{args.clients} closed-loop clients, max_tokens {args.max_tokens}, "
         f"{args.duration:.0f} s measured per run after {args.warmup:.0f} s warm-up"]
    b = p["baseline"]
    L.append(f"  one request alone on 1 worker (median of {len(b['samples'])}): latency "
             f"{fmt(b['latency_ms_median'], 0)} ms, TTFT {fmt(b['ttft_ms_median'], 0)} ms, "
             f"decode {fmt(b['decode_tps_median'])} tok/s")
    L.append(f"  {'run':<22} {'req/s':>7} {'tok/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
             f"{'TTFT p50':>9} {'done':>5} {'errors':>6}  requests per worker")
    for r in p["runs"]:
        L.append(f"  {'round ' + str(r['round']) + ', ' + r['label']:<22} "
                 f"{r['requests_per_s']:>7.2f} {r['tokens_per_s']:>8.1f} "
                 f"{fmt(r['latency_ms_p50'], 0):>8} {fmt(r['latency_ms_p95'], 0):>8} "
                 f"{fmt(r['ttft_ms_p50'], 0):>9} {r['completed_in_window']:>5} "
                 f"{len(r['errors']):>6}  {sorted(r['per_worker_requests'].values(), reverse=True)}")
    for r in p["runs"]:
        cpu = ", ".join(f"{k.split('-', 1)[-1]} {v}%" for k, v in r["cpu_percent_of_one_core"].items())
        L.append(f"  CPU during the window ({r['label']}, % of one core): {cpu}")
        other = r["cpu_percent_of_one_core"].get("other processes")
        if other is not None and other > 10:
            L.append(f"  WARNING: other processes took {other}% of a core during this window: "
                     f"the machine was not idle, the figures are not clean")
    rr, rt = p["ratio_requests"], p["ratio_tokens"]
    L.append(f"  2 workers / 1 worker: requests/s {fmt(rr, 2)}, tokens/s {fmt(rt, 2)}; "
             f"p95 {fmt(p['w1']['latency_ms_p95'], 0)} -> {fmt(p['w2']['latency_ms_p95'], 0)} ms")
    L.append(f"  {'PASS' if rr is not None and rr >= 1.8 else 'MISS'}  throughput ratio "
             f"(requests/s) {fmt(rr, 2)} (goal >= 1.8)")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Part 2: gateway + JetStream + worker vs llmq serve, sequential single requests, alternated


def part2(args, log_dir: Path) -> dict:
    flags = ["--threads", str(args.p2_threads), "--slots", str(args.p2_slots)]
    res: dict[str, Any] = {"flags": flags, "samples": {"gateway": [], "serve": []}}
    with System("gateway", args, log_dir, "p2gw") as gw, System("serve", args, log_dir, "p2sv") as sv:
        gw.start_gateway()
        gw.start_worker(*flags)
        sv.start_serve(*flags)
        urls = {"gateway": gw.base_url, "serve": sv.base_url}
        for name, url in urls.items():  # warm-up, not measured
            for j in range(2):
                one(url, body(counting_prompt(10_000 + j), args.max_tokens, seed=j), "warm-up", j)
        log(f"part 2: {args.requests} requests per system, alternated (AB BA ...), one at a time, "
            f"{args.gap_ms} ms apart")
        for i in range(args.requests):
            order = ("gateway", "serve") if i % 2 == 0 else ("serve", "gateway")
            k = i  # the same short prompt and seed to both systems; new to each
            for name in order:
                if ABORT.is_set():
                    raise KeyboardInterrupt
                time.sleep(args.gap_ms / 1000)
                res["samples"][name].append(
                    one(urls[name], body(counting_prompt(k), args.max_tokens, seed=k), name, k).row())
        res["processes"] = [p.describe() for p in (*gw.procs(), *sv.procs())]
    for name in ("gateway", "serve"):
        ok = [r for r in res["samples"][name] if r["ok"]]
        res[name] = {
            "n": len(ok), "errors": [r["error"] for r in res["samples"][name] if not r["ok"]],
            "ttft_ms_client_p50": pctl([r["ttft_ms"] for r in ok], 50),
            "ttft_ms_client_p95": pctl([r["ttft_ms"] for r in ok], 95),
            "ttft_ms_server_p50": pctl([r["timings"]["ttft_ms"] for r in ok], 50),
            "decode_tps_median": median([r["timings"]["decode_tokens_per_s"] for r in ok]),
            "latency_ms_p50": pctl([r["latency_ms"] for r in ok], 50),
            "completion_tokens_p50": pctl([r["completion_tokens"] for r in ok], 50),
            "prompt_tokens_p50": pctl([r["prompt_tokens"] for r in ok], 50),
            "cached_tokens_p50": pctl([r["cached_tokens"] for r in ok], 50),
        }
    g, s = res["gateway"], res["serve"]
    res["ttft_p50_delta_ms"] = _sub(g["ttft_ms_client_p50"], s["ttft_ms_client_p50"])
    res["ttft_server_p50_delta_ms"] = _sub(g["ttft_ms_server_p50"], s["ttft_ms_server_p50"])
    # Paired: the same prompt on both, sent one after the other.
    pairs = [(a, b) for a, b in zip(res["samples"]["gateway"], res["samples"]["serve"])
             if a["ok"] and b["ok"]]
    res["ttft_paired_delta_ms_median"] = median([a["ttft_ms"] - b["ttft_ms"] for a, b in pairs])
    gd, sd = g["decode_tps_median"], s["decode_tps_median"]
    res["decode_tps_rel_delta"] = (gd - sd) / sd if gd is not None and sd else None
    return res


def _sub(a, b):
    return a - b if a is not None and b is not None else None


def report2(p: dict, args) -> str:
    g, s = p["gateway"], p["serve"]
    L = [f"Part 2: overhead, gateway + JetStream + 1 worker vs llmq serve ({' '.join(p['flags'])} "
         f"both), {args.requests} sequential requests each, alternated, max_tokens {args.max_tokens}"]
    L.append(f"  {'':<34} {'gateway':>9} {'serve':>9} {'delta':>9}")
    rows = [("TTFT p50 ms (client: sent -> 1st token)", "ttft_ms_client_p50", 1),
            ("TTFT p95 ms (client)", "ttft_ms_client_p95", 1),
            ("TTFT p50 ms (done.timings.ttft_ms)", "ttft_ms_server_p50", 1),
            ("decode tok/s (done.timings, median)", "decode_tps_median", 1),
            ("request ms p50 (client)", "latency_ms_p50", 1),
            ("completion tokens p50", "completion_tokens_p50", 0),
            ("prompt / cached tokens p50", None, 0)]
    for label, key, nd in rows:
        if key is None:
            L.append(f"  {label:<34} {fmt(g['prompt_tokens_p50'], 0) + '/' + fmt(g['cached_tokens_p50'], 0):>9} "
                     f"{fmt(s['prompt_tokens_p50'], 0) + '/' + fmt(s['cached_tokens_p50'], 0):>9}")
            continue
        L.append(f"  {label[:34]:<34} {fmt(g[key], nd):>9} {fmt(s[key], nd):>9} "
                 f"{fmt(_sub(g[key], s[key]), nd):>9}")
    if g["errors"] or s["errors"]:
        L.append(f"  errors: gateway {g['errors'][:3]}, serve {s['errors'][:3]}")
    d, rel = p["ttft_p50_delta_ms"], p["decode_tps_rel_delta"]
    L.append(f"  paired TTFT delta (same prompt, back to back), median: "
             f"{fmt(p['ttft_paired_delta_ms_median'])} ms")
    L.append(f"  {'PASS' if d is not None and d <= 5 else 'MISS'}  TTFT p50 delta (client) "
             f"{fmt(d)} ms (goal <= 5 ms)")
    L.append(f"  {'PASS' if rel is not None and rel >= -0.03 else 'MISS'}  decode tok/s delta "
             f"{fmt(None if rel is None else 100 * rel, 2)} % (goal: no more than 3 % slower)")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Part 3: cold, warm and swap TTFT of both models with --max-loaded 1


def part3(args, log_dir: Path) -> dict:
    gemma, smol = args.gemma.stem, args.model.stem
    flags = ["--threads", str(args.p3_threads), "--slots", str(args.p3_slots)]
    pool = ["--models", str(args.gemma), "--max-loaded", "1"]
    res: dict[str, Any] = {"flags": flags + pool, "paths": {}}
    counter = [20_000]

    def ask(url: str, model: str, step: str) -> dict:
        counter[0] += 1
        k = counter[0]
        r = one(url, body(counting_prompt(k), args.p3_max_tokens, seed=k, model=model,
                          keep_alive=-1), step, k)
        row = r.row()
        row.update(model=model, step=step,
                   loading_ms=None if not r.loading else (r.loading[0] - r.sent) * 1000,
                   had_loading=bool(r.loading))
        log(f"  {step:<14} {model:<32} TTFT {fmt(r.ttft_ms, 0)} ms"
            f"{' (loading)' if r.loading else ''}{' ERROR ' + r.error if not r.ok else ''}")
        return row

    def sequence(url: str) -> list[dict]:
        steps = [ask(url, gemma, "cold")]
        steps += [ask(url, gemma, "warm") for _ in range(args.warm_reps)]
        steps.append(ask(url, smol, "swap"))            # evicts gemma, reloads SmolLM2
        steps += [ask(url, smol, "warm") for _ in range(args.warm_reps)]
        steps.append(ask(url, gemma, "swap"))           # evicts SmolLM2, reloads gemma
        return steps

    preload_gemma = ["--preload", gemma]
    for path in ("gateway", "serve"):
        log(f"part 3: {path}, {' '.join(flags + pool)}")
        with System(path, args, log_dir, f"p3{path[:2]}") as s:
            if path == "gateway":
                s.start_gateway("--models", str(args.gemma))
                w = s.start_worker(*flags, *pool)
                steps = sequence(s.base_url)
                ready = [w.ready_s]
                # SmolLM2 cold: a fresh worker that preloaded gemma instead.
                w.stop()
                w2 = s.start_worker(*flags, *pool, *preload_gemma)
                steps.append(ask(s.base_url, smol, "cold"))
                ready.append(w2.ready_s)
            else:
                sv = s.start_serve(*flags, *pool)
                steps = sequence(s.base_url)
                ready = [sv.ready_s]
                sv.stop()
                sv2 = s.start_serve(*flags, *pool, *preload_gemma)
                steps.append(ask(s.base_url, smol, "cold"))
                ready.append(sv2.ready_s)
            res["paths"][path] = {"steps": steps, "ready_s": ready,
                                  "processes": [p.describe() for p in s.procs()]}
    res["table"] = table3(res, args)
    return res


def table3(res: dict, args) -> list[dict]:
    rows = []
    for model in (args.gemma.stem, args.model.stem):
        for path, d in res["paths"].items():
            st = [x for x in d["steps"] if x["model"] == model]
            by = lambda step: [x for x in st if x["step"] == step]  # noqa: E731
            cold, swap, warm = by("cold"), by("swap"), by("warm")
            rows.append({
                "model": model, "path": path,
                "cold_ttft_ms": cold[0]["ttft_ms"] if cold else None,
                "warm_ttft_ms": median([x["ttft_ms"] for x in warm]),
                "swap_ttft_ms": swap[0]["ttft_ms"] if swap else None,
                "cold_loading": cold[0]["had_loading"] if cold else None,
                "swap_loading": swap[0]["had_loading"] if swap else None,
                "warm_loading": any(x["had_loading"] for x in warm),
                "errors": [x["error"] for x in st if not x["ok"]],
            })
    return rows


def report3(p: dict, args) -> str:
    L = [f"Part 3: TTFT (client: sent -> first token) with {' '.join(p['flags'])}; "
         f"warm = median of {args.warm_reps}; max_tokens {args.p3_max_tokens}",
         "", "| model | path | cold TTFT ms | warm TTFT ms | swap TTFT ms |", "|---|---|---|---|---|"]
    for r in p["table"]:
        flag = lambda ok: "" if ok else " (no `loading`!)"  # noqa: E731
        warm_flag = " (`loading`!)" if r["warm_loading"] else ""
        L.append(f"| {r['model']} | {'gateway + worker' if r['path'] == 'gateway' else 'serve'} | "
                 f"{fmt(r['cold_ttft_ms'], 0)}{flag(r['cold_loading'])} | "
                 f"{fmt(r['warm_ttft_ms'], 0)}{warm_flag} | "
                 f"{fmt(r['swap_ttft_ms'], 0)}{flag(r['swap_loading'])} |")
    L.append("")
    L.append("  cold: first load of the model in the process (the other model, idle, is evicted); "
             "swap: load again after it was evicted; gemma cold = first request after start "
             "(SmolLM2 preloaded), SmolLM2 cold = first request to a process started with "
             "--preload gemma")
    for path, d in p["paths"].items():
        L.append(f"  {path}: start -> ready {', '.join(fmt(x, 1) + ' s' for x in d['ready_s'])}")
    errs = [e for r in p["table"] for e in r["errors"]]
    if errs:
        L.append(f"  errors: {errs[:4]}")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Part 4: redelivery after SIGKILL


def part4(args, log_dir: Path) -> dict:
    ack = ["--ack-wait-ms", str(args.ack_wait_ms)]
    wflags = ["--threads", str(args.p1_threads), "--slots", str(args.p1_slots), *ack]
    res: dict[str, Any] = {"ack_wait_ms": args.ack_wait_ms, "worker_flags": wflags, "reps": []}
    with System("gateway", args, log_dir, "p4") as s:
        s.start_gateway(*ack, "--queue-max", "64")
        current = s.start_worker(*wflags)
        for rep in range(args.kill_reps):
            log(f"part 4, rep {rep + 1}/{args.kill_reps}: {args.kill_streams} streams of "
                f"max_tokens {args.kill_max_tokens} on {current.name} (pid {current.pid})")
            stop = threading.Event()
            recs = [Rec("kill", 30_000 + 100 * rep + j) for j in range(args.kill_streams)]

            def run(rec: Rec):
                with httpx.Client(timeout=600) as c:
                    send(c, s.base_url, body(counting_prompt(rec.i), args.kill_max_tokens,
                                             seed=rec.i), rec, stop)

            threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in recs]
            for t in threads:
                t.start()
            wait_for(lambda: all(r.pieces >= 3 or r.end is not None for r in recs), 120,
                     "every stream's first tokens")
            standby = s.start_worker(*wflags)
            time.sleep(0.5)
            victims = [r for r in recs if r.worker and r.worker.endswith(f"/{current.pid}")]
            pieces_at_kill = [r.pieces for r in recs]
            t_kill = now()
            current.kill()
            log(f"  SIGKILL {current.name} (pid {current.pid}); {len(victims)} of its streams "
                f"wait for attempt 2")
            timeout = 10 * args.ack_wait_ms / 1000 + 30
            wait_for(lambda: all(len(r.started) >= 2 or r.end is not None for r in victims),
                     timeout, "started attempt 2 on every stream", fail=False)
            delays = [(r.started[1]["t"] - t_kill) * 1000 for r in victims if len(r.started) >= 2]
            time.sleep(0.5)  # a few tokens of the rerun, to check their indices go on
            stop.set()
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
            rep_res = {
                "victim": current.describe(), "standby": standby.describe(),
                "victim_streams": len(victims), "restarted": len(delays),
                "delays_ms": delays,
                "min_ms": min(delays) if delays else None, "median_ms": median(delays),
                "max_ms": max(delays) if delays else None,
                "pieces_at_kill": pieces_at_kill,
                "attempt2_workers": [r.started[1]["worker"] for r in victims if len(r.started) >= 2],
                "token_indices_contiguous": all(r.index_ok for r in recs),
                "samples": [r.row() for r in recs],
            }
            res["reps"].append(rep_res)
            log(f"  attempt 2 after {', '.join(f'{d:.0f}' for d in delays)} ms"
                f"{'' if len(delays) == len(victims) else f' ({len(victims) - len(delays)} never restarted)'}")
            # The cancelled reruns leave the standby's slots; it is the next victim.
            wait_for(lambda: metric(standby.base_url, "llmq_slots_busy") == 0, 20,
                     "the standby's slots to empty", fail=False)
            current = standby
        res["processes"] = [p.describe() for p in s.procs()]
    alld = [d for r in res["reps"] for d in r["delays_ms"]]
    res["all_delays_ms"] = {"n": len(alld), "min": min(alld) if alld else None,
                            "median": median(alld), "max": max(alld) if alld else None}
    return res


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


def report4(p: dict, args) -> str:
    L = [f"Part 4: redelivery after SIGKILL, gateway and 2 workers with --ack-wait-ms "
         f"{p['ack_wait_ms']} (workers heartbeat every third of it), {args.kill_streams} streams "
         f"of max_tokens {args.kill_max_tokens}; time from the kill to `started` attempt 2"]
    L.append(f"  {'rep':>3} {'streams':>7} {'restarted':>9} {'min ms':>8} {'median':>8} "
             f"{'max ms':>8}  indices ok")
    for i, r in enumerate(p["reps"], 1):
        L.append(f"  {i:>3} {r['victim_streams']:>7} {r['restarted']:>9} {fmt(r['min_ms'], 0):>8} "
                 f"{fmt(r['median_ms'], 0):>8} {fmt(r['max_ms'], 0):>8}  "
                 f"{r['token_indices_contiguous']}")
    a = p["all_delays_ms"]
    L.append(f"  all {a['n']} restarts: min {fmt(a['min'], 0)} ms, median {fmt(a['median'], 0)} ms, "
             f"max {fmt(a['max'], 0)} ms (AckWait {p['ack_wait_ms']} ms)")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Part 5: SIMULATION (not a measurement): M/G/c from part 1's measured service times


def simulate_mgc(rate: float, servers: int, service_s: list[float], n: int, seed: int,
                 warm_frac: float = 0.1) -> dict:
    """FCFS M/G/c: Poisson arrivals at `rate`/s, `servers` servers sharing one queue, service
    times drawn (with replacement) from `service_s`. The same seed gives the same arrivals and
    service times whatever `servers` is (common random numbers), so p95 falls monotonically
    as servers are added. The first `warm_frac` of the arrivals are not counted."""
    rng = random.Random(seed)
    free = [0.0] * servers  # when each server is next free (a heap)
    t = 0.0
    soj, waits = [], []
    skip = int(n * warm_frac)
    for j in range(n):
        t += rng.expovariate(rate)
        s = service_s[rng.randrange(len(service_s))]
        f = heapq.heappop(free)
        start = t if f < t else f
        heapq.heappush(free, start + s)
        if j >= skip:
            soj.append(start + s - t)
            waits.append(start - t)
    return {"servers": servers, "p50_ms": 1000 * percentile(soj, 50),
            "p95_ms": 1000 * percentile(soj, 95), "p99_ms": 1000 * percentile(soj, 99),
            "mean_wait_ms": 1000 * statistics.fmean(waits),
            "waited_fraction": sum(1 for w in waits if w > 0) / len(waits)}


def search_workers(lam: float, c_w: int, service_s: list[float], target: float | None,
                   args) -> dict:
    """The simulated p95 against the number of workers (c_w servers each), and the fewest
    workers whose p95 is at most `target` (None when no number of workers gets there: the p95
    of the service time alone is at or above the target)."""
    mean_s = statistics.fmean(service_s)
    w_stable = math.floor(lam * mean_s / c_w) + 1     # fewest with utilisation < 1
    floor_p95 = 1000 * percentile(service_s, 95)      # p95 with no wait at all
    sims: dict[int, dict] = {}

    def sim(w: int) -> dict:
        if w not in sims:
            if ABORT.is_set():
                raise KeyboardInterrupt
            sims[w] = {"workers": w, "utilization": lam * mean_s / (w * c_w),
                       **simulate_mgc(lam, w * c_w, service_s, args.sim_arrivals, args.sim_seed)}
        return sims[w]

    needed = None
    feasible = target is not None and floor_p95 < target
    if feasible:
        lo, hi, step = w_stable - 1, w_stable, 1       # p95 at lo is over the target (or unstable)
        while sim(hi)["p95_ms"] > target:
            lo, hi, step = hi, hi + step, step * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if sim(mid)["p95_ms"] > target:
                lo = mid
            else:
                hi = mid
        needed = hi
    top = max(needed or 0, w_stable) + max(3, w_stable // 10)
    for w in {w_stable, w_stable + 1, w_stable + 2, top,
              *range(w_stable, top + 1, max(1, (top - w_stable) // 8))}:
        sim(w)
    return {"servers_per_worker": c_w, "service_mean_ms": 1000 * mean_s,
            "service_p95_ms": floor_p95, "service_n": len(service_s),
            "workers_stable_min": w_stable, "workers_needed": needed, "feasible": feasible,
            "curve": [sims[w] for w in sorted(sims)]}


def part5(args, p1: dict) -> dict:
    """SIMULATION. Two ways a worker could run, each with service times measured in part 1:
    `batched` (its slots kept busy, as under part 1's load: the scenario the brief asks for) and
    `one at a time` (one request per worker, served as fast as a request alone)."""
    service_b = [x / 1000 for r in p1["runs"] if r["workers"] == 1 for x in r["service_ms"] if x]
    service_1 = [r["service_ms"] / 1000 for r in p1["baseline"]["samples"] if r["service_ms"]]
    mean_b = statistics.fmean(service_b)
    mu_w = p1["w1"]["requests_per_s"]                   # per-worker throughput, measured
    conc = mu_w * mean_b                                # Little: slots busy on average
    c_w = max(1, round(conc))
    lam8 = p1[f"w{args.sim_base}"]["requests_per_s"]    # the 8 clients' arrival rate, measured
    lam = args.sim_factor * lam8
    single_ms = p1["baseline"]["latency_ms_median"]
    target = args.sim_target_ms or (2 * single_ms if single_ms else None)
    log(f"  batched: {c_w} servers per worker, {len(service_b)} service times")
    batched = search_workers(lam, c_w, service_b, target, args)
    log(f"  one at a time: 1 server per worker, {len(service_1)} service times")
    single = search_workers(lam, 1, service_1, target, args) if service_1 else None
    assumptions = [
        f"SIMULATION, not a measurement: a discrete-event FCFS M/G/c queue ({args.sim_arrivals} "
        f"Poisson arrivals per point, the first 10 % not counted, seed {args.sim_seed})",
        f"arrival rate = {args.sim_factor:g} x the measured rate of part 1's {args.clients} "
        f"closed-loop clients with {args.sim_base} worker(s): {args.sim_factor:g} x {lam8:.3f} = "
        f"{lam:.1f} requests/s",
        "service time = a request's measured latency (client: sent -> done) minus its queue wait "
        "(started.queue_ms); drawn at random from the measured ones; independent of the load",
        f"batched (the main projection): servers per worker = measured concurrency = per-worker "
        f"throughput x mean service time (Little) = {mu_w:.3f}/s x {mean_b:.3f} s = {conc:.2f} "
        f"-> c = workers x {c_w} (--slots {args.p1_slots}); service times of the "
        f"{len(service_b)} requests of the 1-worker run (every slot busy: service at full batch), "
        f"mean {batched['service_mean_ms']:.0f} ms, p95 {batched['service_p95_ms']:.0f} ms",
        f"one at a time (for comparison): c = workers x 1, service times of the "
        f"{len(service_1)} single requests alone on an idle worker"
        + (f", mean {single['service_mean_ms']:.0f} ms" if single else "")
        + " (a worker given one request at a time: more workers, each faster)",
        "one FCFS queue for all workers (a free slot takes the oldest job, as JetStream's pull "
        "consumers do); gateway, NATS, network and clients are never the bottleneck (in part 1 "
        "they shared the same 2 cores); no failures, no redelivery, one model (no swaps)",
        f"target p95 = {'--sim-target-ms' if args.sim_target_ms else '2 x the measured single-request latency'}"
        f" = {fmt(target, 0)} ms (one request alone on one worker: {fmt(single_ms, 0)} ms)",
        f"fewest workers for a stable queue (utilisation < 1), batched: {batched['workers_stable_min']}"
        f" (by the measured per-worker throughput {mu_w:.3f}/s: {math.floor(lam / mu_w) + 1})",
    ]
    return {"label": "SIMULATION (not a measurement)", "assumptions": assumptions,
            "arrival_rate_rps": lam, "base_rate_rps": lam8, "factor": args.sim_factor,
            "target_p95_ms": target, "single_request_ms": single_ms,
            "measured_concurrency": conc, "per_worker_throughput_rps": mu_w,
            "scenarios": {"batched": batched, "one at a time": single},
            "service_ms_batched": [1000 * x for x in service_b],
            "service_ms_one_at_a_time": [1000 * x for x in service_1]}


def report5(p: dict, args) -> str:
    L = ["Part 5: *** SIMULATION, NOT A MEASUREMENT *** (M/G/c projection from part 1)",
         "  assumptions:"]
    L += [f"  - {a}" for a in p["assumptions"]]
    for name, sc in p["scenarios"].items():
        if sc is None:
            continue
        L.append(f"  {name}: {sc['servers_per_worker']} server(s) per worker, service mean "
                 f"{sc['service_mean_ms']:.0f} ms, p95 {sc['service_p95_ms']:.0f} ms "
                 f"(n={sc['service_n']})")
        L.append(f"    {'workers':>7} {'servers':>7} {'util':>6} {'p50 ms':>8} {'p95 ms':>8} "
                 f"{'p99 ms':>8} {'waited':>7}")
        for r in sc["curve"]:
            mark = "  <- fewest under the target" if r["workers"] == sc["workers_needed"] else ""
            L.append(f"    {r['workers']:>7} {r['servers']:>7} {r['utilization']:>6.2f} "
                     f"{r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} {r['p99_ms']:>8.0f} "
                     f"{100 * r['waited_fraction']:>6.1f}%{mark}")
        if sc["workers_needed"]:
            L.append(f"    SIMULATED ({name}): {sc['workers_needed']} workers keep p95 under "
                     f"{p['target_p95_ms']:.0f} ms at {p['arrival_rate_rps']:.1f} requests/s "
                     f"({p['factor']:g} x part 1's load); {sc['workers_stable_min']} is the fewest "
                     f"for a stable queue")
        else:
            L.append(f"    SIMULATED ({name}): no number of workers keeps p95 under "
                     f"{fmt(p['target_p95_ms'], 0)} ms: the service time's own p95 "
                     f"({sc['service_p95_ms']:.0f} ms) is at or above it")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Plots


def plots(res: dict, out_dir: Path) -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        log("matplotlib not installed (pip install -r bench/requirements.txt): no plots")
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    parts = res["parts"]

    def save(fig, name):
        fig.tight_layout()
        p = out_dir / name
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)

    if "1" in parts:
        p1 = parts["1"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        labels = ["1 worker", "2 workers"]
        rps = [p1["w1"]["requests_per_s"], p1["w2"]["requests_per_s"]]
        tps = [p1["w1"]["tokens_per_s"], p1["w2"]["tokens_per_s"]]
        a1.bar([0, 1], rps, color=["tab:blue", "tab:orange"])
        a1.set_xticks([0, 1], labels)
        a1.set_ylabel("requests/s (run inside the window)")
        a1.set_ylim(0, 1.3 * max(rps))
        for x, (r, t) in enumerate(zip(rps, tps)):
            a1.text(x, r, f"{r:.2f} req/s\n{t:.0f} tok/s", ha="center", va="bottom", fontsize=8)
        a1.set_title(f"throughput, {res['config']['clients']} clients "
                     f"(ratio {fmt(p1['ratio_requests'], 2)})")
        for r in p1["runs"]:
            a, b = r["window"]
            lat = sorted(x["latency_ms"] for x in r["samples"]
                         if x["latency_ms"] is not None and a <= x["sent"] < b)
            if lat:
                a2.plot([x / 1000 for x in lat], [(i + 1) / len(lat) for i in range(len(lat))],
                        label=f"{r['label']} (round {r['round']})")
        a2.axhline(0.95, color="grey", lw=0.5, ls="--")
        a2.set_xlabel("request latency (s)")
        a2.set_ylabel("fraction of requests")
        a2.set_title("latency CDF (requests sent in the window)")
        a2.legend(fontsize=8)
        save(fig, "scale-out-throughput.png")
    if "2" in parts:
        p2 = parts["2"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        for name, m in (("gateway", "o"), ("serve", "x")):
            s = [x for x in p2["samples"][name] if x["ok"]]
            a1.plot([x["i"] for x in s], [x["ttft_ms"] for x in s], m, ms=4,
                    label=f"{name} (client TTFT)")
            a2.plot([x["i"] for x in s], [x["timings"]["decode_tokens_per_s"] for x in s],
                    m, ms=4, label=name)
        a1.set_xlabel("request #")
        a1.set_ylabel("ms")
        a1.set_title(f"TTFT, p50 delta {fmt(p2['ttft_p50_delta_ms'])} ms")
        a1.legend(fontsize=8)
        a2.set_xlabel("request #")
        a2.set_ylabel("decode tok/s (done.timings)")
        rel = p2["decode_tps_rel_delta"]
        a2.set_title(f"decode speed, delta {fmt(None if rel is None else 100 * rel, 2)} %")
        a2.legend(fontsize=8)
        save(fig, "scale-out-overhead.png")
    if "3" in parts:
        rows = parts["3"]["table"]
        fig, ax = plt.subplots(figsize=(9, 4))
        kinds = [("cold_ttft_ms", "cold"), ("warm_ttft_ms", "warm"), ("swap_ttft_ms", "swap")]
        for j, (key, name) in enumerate(kinds):
            ax.bar([i + 0.27 * (j - 1) for i in range(len(rows))],
                   [r[key] or 0 for r in rows], width=0.27, label=name)
        ax.set_xticks(range(len(rows)), [f"{r['model'][:18]}\n{r['path']}" for r in rows], fontsize=8)
        ax.set_ylabel("TTFT ms (client)")
        ax.set_yscale("log")
        ax.set_title("cold / warm / swap TTFT, --max-loaded 1")
        ax.legend(fontsize=8)
        save(fig, "scale-out-cold-warm.png")
    if "4" in parts:
        p4 = parts["4"]
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, r in enumerate(p4["reps"], 1):
            ax.plot([i] * len(r["delays_ms"]), r["delays_ms"], "o", ms=5)
        ax.axhline(p4["ack_wait_ms"], color="grey", ls="--", lw=1, label="--ack-wait-ms")
        ax.set_xticks(range(1, len(p4["reps"]) + 1))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("repetition")
        ax.set_ylabel("SIGKILL -> started attempt 2 (ms)")
        ax.set_title("redelivery after a worker is killed")
        ax.legend(fontsize=8)
        save(fig, "scale-out-redelivery.png")
    if "5" in parts:
        p5 = parts["5"]
        fig, ax = plt.subplots(figsize=(8, 4))
        for name, sc in p5["scenarios"].items():
            if sc is None:
                continue
            c = sc["curve"]
            ax.plot([r["workers"] for r in c], [r["p95_ms"] for r in c], "o-", ms=4,
                    label=f"p95, {name} ({sc['servers_per_worker']}/worker)")
        if p5["target_p95_ms"]:
            ax.axhline(p5["target_p95_ms"], color="red", ls="--", lw=1, label="target p95")
        ax.set_yscale("log")
        ax.set_xlabel("workers")
        ax.set_ylabel("simulated latency p95 (ms)")
        ax.set_title(f"SIMULATION (M/G/c), not a measurement: {p5['arrival_rate_rps']:.0f} req/s "
                     f"= {p5['factor']:g} x part 1's load", fontsize=10)
        ax.legend(fontsize=8)
        save(fig, "scale-out-simulation.png")
    return paths


# --------------------------------------------------------------------------------------------


def version_of(argv: list[str]) -> str | None:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=llmq_env())
        return (cp.stdout + cp.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable: {e}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmq" / "models"
    p.add_argument("--parts", default="1,2,3,4,5", help="which parts to run (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --duration 8 --warmup 2 --requests 8 --baseline-requests 2 "
                        "--warm-reps 1 --sim-arrivals 40000 (flags given explicitly still win)")
    g = p.add_argument_group("everything")
    g.add_argument("--model", type=Path, default=default_model(), help="default model (default: %(default)s)")
    g.add_argument("--gemma", type=Path, default=cache / "gemma-3-270m-q4_k_m.gguf",
                   help="second model, parts 3 (default: %(default)s)")
    g.add_argument("--llmq-bin", type=Path, default=default_llmq_bin(), help="default: %(default)s")
    g.add_argument("--nats-server", default=shutil.which("nats-server") or "/usr/sbin/nats-server",
                   help="default: %(default)s")
    g.add_argument("--ctx-size", type=int, default=2048, help="tokens per slot, every process (default: %(default)s)")
    g.add_argument("--max-tokens", type=int, default=64, help="tokens per request, parts 1 and 2 (default: %(default)s)")
    g.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default: %(default)s)")
    g.add_argument("--plots", type=Path, default=None, help="write PNG plots into this folder (e.g. docs/img)")
    g = p.add_argument_group("part 1: throughput")
    g.add_argument("--clients", type=int, default=8, help="closed-loop clients (default: %(default)s)")
    g.add_argument("--duration", type=float, default=None, help="measured seconds per run (default: 30; --quick 8)")
    g.add_argument("--warmup", type=float, default=None, help="seconds of load before measuring (default: 5; --quick 2)")
    g.add_argument("--rounds", type=int, default=1, help="1-worker/2-worker pairs, alternated (default: %(default)s)")
    g.add_argument("--p1-threads", type=int, default=1, help="--threads of each worker, parts 1 and 4 (default: %(default)s)")
    g.add_argument("--p1-slots", type=int, default=4, help="--slots of each worker, parts 1 and 4 (default: %(default)s)")
    g.add_argument("--baseline-requests", type=int, default=None,
                   help="single requests alone on 1 worker, part 5's reference (default: 5; --quick 2)")
    g = p.add_argument_group("part 2: gateway overhead")
    g.add_argument("--requests", type=int, default=None, help="requests per system (default: 30; --quick 8)")
    g.add_argument("--gap-ms", type=int, default=300, help="pause before each request (default: %(default)s)")
    g.add_argument("--p2-threads", type=int, default=2, help="default: %(default)s")
    g.add_argument("--p2-slots", type=int, default=1, help="default: %(default)s")
    g = p.add_argument_group("part 3: cold / warm / swap")
    g.add_argument("--warm-reps", type=int, default=None, help="warm requests per model (default: 3; --quick 1)")
    g.add_argument("--p3-threads", type=int, default=2, help="default: %(default)s")
    g.add_argument("--p3-slots", type=int, default=4, help="default: %(default)s")
    g.add_argument("--p3-max-tokens", type=int, default=8, help="default: %(default)s")
    g = p.add_argument_group("part 4: redelivery")
    g.add_argument("--ack-wait-ms", type=int, default=2000, help="gateway's and workers' (default: %(default)s)")
    g.add_argument("--kill-reps", type=int, default=3, help="default: %(default)s")
    g.add_argument("--kill-streams", type=int, default=4, help="long streams on the victim (default: %(default)s)")
    g.add_argument("--kill-max-tokens", type=int, default=2000, help="default: %(default)s")
    g = p.add_argument_group("part 5: SIMULATION")
    g.add_argument("--sim-factor", type=float, default=100, help="load multiple (default: %(default)s)")
    g.add_argument("--sim-base", type=int, choices=(1, 2), default=2,
                   help="whose measured 8-client rate is the base load: the 1- or 2-worker run (default: %(default)s)")
    g.add_argument("--sim-target-ms", type=float, default=None,
                   help="p95 target (default: 2 x part 1's single-request latency)")
    g.add_argument("--sim-arrivals", type=int, default=None, help="arrivals per point (default: 200000; --quick 40000)")
    g.add_argument("--sim-seed", type=int, default=1)
    g.add_argument("--sim-from", type=Path, default=None,
                   help="take part 1 from this earlier results JSON instead of running it")
    a = p.parse_args(argv)
    for k, full, quick in (("duration", 30, 8), ("warmup", 5, 2), ("requests", 30, 8),
                           ("baseline_requests", 5, 2), ("warm_reps", 3, 1),
                           ("sim_arrivals", 200_000, 40_000)):
        if getattr(a, k) is None:
            setattr(a, k, quick if a.quick else full)
    a.parts = sorted({x.strip() for x in a.parts.split(",") if x.strip()})
    if set(a.parts) - {"1", "2", "3", "4", "5"}:
        p.error(f"--parts takes 1,2,3,4,5, not {','.join(a.parts)}")
    if "5" in a.parts and "1" not in a.parts and not a.sim_from:
        p.error("part 5 needs part 1's measurements: run part 1 too, or give --sim-from")
    for f, what in ((a.llmq_bin, "llmq binary (--llmq-bin)"), (a.model, "model (--model)")):
        if not f.is_file():
            p.error(f"{what} not found: {f}")
    if "3" in a.parts and not a.gemma.is_file():
        p.error(f"gemma model (--gemma) not found: {a.gemma}")
    if {"1", "2", "3", "4"} & set(a.parts) and not Path(a.nats_server).is_file():
        p.error(f"nats-server not found: {a.nats_server}")
    return a


REPORTS = {"1": report1, "2": report2, "3": report3, "4": report4, "5": report5}


def main(argv=None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    log_dir = args.out / "logs" / f"scale-out-{stamp}"
    args.out.mkdir(parents=True, exist_ok=True)
    if set(args.parts) - {"5"}:  # part 5 alone starts no process
        log_dir.mkdir(parents=True, exist_ok=True)
    out_path = args.out / f"scale-out-{stamp}.json"
    res: dict[str, Any] = {
        "started_utc": started.isoformat(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "host": host_info(),
        "llmq_version": version_of([str(args.llmq_bin), "--version"]),
        "nats_server_version": version_of([args.nats_server, "--version"]),
        "log_dir": str(log_dir),
        "parts": {},
    }
    log(f"host: {res['host']['cpu_model']}, {res['host']['cpus']} CPUs, load average "
        f"{res['host']['loadavg']}")

    def save() -> None:
        res["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat()
        out_path.write_text(json.dumps(res, indent=1))

    def on_signal(signum, frame):
        ABORT.set()
        raise KeyboardInterrupt
    # Explicitly, also where the shell started us with SIGINT ignored (a background job).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    runners = {"1": part1, "2": part2, "3": part3, "4": part4}
    status = 0
    try:
        for part in args.parts:
            if part == "5":
                p1 = res["parts"].get("1")
                if p1 is None:
                    p1 = json.loads(args.sim_from.read_text())["parts"]["1"]
                    res["sim_from"] = str(args.sim_from)
                log("part 5: simulating (not a measurement)")
                t_part = time.monotonic()
                res["parts"]["5"] = part5(args, p1)
                res["parts"]["5"]["elapsed_s"] = round(time.monotonic() - t_part, 1)
            else:
                t_part = time.monotonic()
                res["parts"][part] = runners[part](args, log_dir)
                res["parts"][part]["elapsed_s"] = round(time.monotonic() - t_part, 1)
            print("\n" + REPORTS[part](res["parts"][part], args), flush=True)
            save()
    except KeyboardInterrupt:
        log("interrupted: stopping every process started")
        status = 130
    except Exception as e:  # noqa: BLE001 - report, stop the processes, keep what was measured
        import traceback
        traceback.print_exc()
        res["error"] = f"{type(e).__name__}: {e}"
        status = 1
    finally:
        ABORT.set()
        stop_all()
        res["all_processes"] = [p.describe() for p in PROCS]
        save()
    if res["parts"]:
        print("\n" + "=" * 100)
        print(f"llmq: {res['llmq_version'].splitlines()[0] if res['llmq_version'] else '?'}; "
              f"CPU: {res['host']['cpu_model']} x {res['host']['cpus']}")
        for part in sorted(res["parts"]):
            print("\n" + REPORTS[part](res["parts"][part], args))
        if args.plots:
            for p in plots(res, args.plots):
                print(f"plot: {p}")
    print(f"\nresults: {out_path}\nlogs: {log_dir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
