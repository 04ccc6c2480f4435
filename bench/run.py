#!/usr/bin/env python3
"""Benchmarks llmq against llama.cpp's own llama-server and llama-bench, in one run, on the same
model and thread count. See bench/README.md for what each number means.

    python bench/run.py                 # full run
    python bench/run.py --quick         # smoke run: fewer repetitions and requests

Servers run one at a time (never side by side: they would share the cores). Results go to
bench/results/<timestamp>.json; a summary table is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, TypeVar

import httpx

from clients import RequestFn, Sample, llama_server_request, llmq_request, new_client
from run_report import fmt, median, ratio, report  # noqa: F401 (fmt, ratio: for the other benchmarks)

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
S = TypeVar("S")

# Every request of a run gets a prompt of its own: a run of numbers that greedy decoding goes on
# counting for a long time (so both servers produce max_tokens tokens without llama.cpp's
# ignore_eos, which llmq does not have), starting at a different number each time. No request
# shares more than a token or two with an earlier one, so neither server's prompt cache (both
# keep theirs on, as they run by default) can skip a prefill that the other must do.
def counting_prompt(i: int) -> str:
    start = 100 + 37 * i
    return ", ".join(str(n) for n in range(start, start + 10)) + ","



def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def default_model() -> Path:
    if os.environ.get("LLMQ_MODEL"):
        return Path(os.environ["LLMQ_MODEL"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "llmq" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_llmq_bin() -> Path:
    return Path(os.environ.get("LLMQ_BIN") or REPO / "build" / "release" / "llmq")


def llama_prefix(arg: str | None) -> Path:
    """--llama-prefix, else $LLMQ_LLAMA_PREFIX, else the last stdout line of scripts/llama.sh
    (which builds llama.cpp once, then just prints the cached prefix)."""
    if arg:
        return Path(arg)
    if os.environ.get("LLMQ_LLAMA_PREFIX"):
        return Path(os.environ["LLMQ_LLAMA_PREFIX"])
    log("asking scripts/llama.sh for the llama.cpp prefix (builds it on first use)")
    out = subprocess.run(["bash", str(REPO / "scripts" / "llama.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


# --------------------------------------------------------------------------------------------
# Server processes


class ServerProcess:
    """A server started for the benchmark, logging to a file, stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], port: int, ready_path: str, log_dir: Path,
                 env: dict[str, str] | None = None):
        self.name, self.argv, self.port, self.ready_path = name, argv, port, ready_path
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServerProcess":
        log(f"starting {self.name}: {' '.join(self.argv)}")
        with open(self.log_path, "wb") as f:
            self.proc = subprocess.Popen(self.argv, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode} before it was "
                                 f"ready; log: {self.log_path}\n{self.log_tail()}")
            try:
                if httpx.get(self.base_url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise SystemExit(f"{self.name} not ready within 120 s; log: {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


def engine_server(engine: str, args, prefix: Path | None, log_dir: Path,
                  queue_max: int = 64) -> ServerProcess:
    """The server for `engine` ("llmq" or "llama-server"), not yet started, on a free port with
    args.model, args.threads, args.slots and args.ctx_size per slot: llama-server gets the same
    total context (-c ctx_size*slots) split over --parallel slots, and its defaults otherwise
    (prompt cache on). llmq runs without the caller's LLMQ_* variables, so only the flags count."""
    port = free_port()
    if engine == "llmq":
        argv = [str(args.llmq_bin), "serve", "--model", str(args.model),
                "--host", "127.0.0.1", "--port", str(port),
                "--threads", str(args.threads), "--slots", str(args.slots),
                "--ctx-size", str(args.ctx_size), "--queue-max", str(queue_max)]
        argv += shlex.split(getattr(args, "llmq_args", "") or "")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_")}
        return ServerProcess("llmq", argv, port, "/readyz", log_dir, env)
    argv = [str(prefix / "bin" / "llama-server"), "-m", str(args.model),
            "-t", str(args.threads), "-c", str(args.ctx_size * args.slots),
            "--parallel", str(args.slots), "--port", str(port), "--host", "127.0.0.1"]
    argv += shlex.split(getattr(args, "llama_server_args", "") or "")
    return ServerProcess("llama-server", argv, port, "/health", log_dir)


def host_info() -> dict:
    """What the numbers were measured on: CPU, OS, and how busy the machine was at the start."""
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in
              (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
              if line.startswith("model name")]
    return {"cpus": os.cpu_count(), "cpu_model": models[0] if models else None,
            "platform": platform.platform(), "python": platform.python_version(),
            "loadavg": list(os.getloadavg())}


def single_stream(fn: RequestFn, base_url: str, reps: int, max_tokens: int) -> dict:
    with new_client() as c:
        fn(c, base_url, counting_prompt(10_000), 8)  # warm-up, not measured
        samples = [fn(c, base_url, counting_prompt(20_000 + r), max_tokens) for r in range(reps)]
    bad = [s.error for s in samples if not s.ok]
    if bad:
        log(f"single-stream errors: {bad}")
    good = [s for s in samples if s.ok]
    return {
        "samples": [asdict(s) for s in samples],
        "median": {
            k: median([getattr(s, k) for s in good])
            for k in ("decode_tps_server", "decode_tps_client", "ttft_ms_server",
                      "ttft_ms_client", "latency_ms", "completion_tokens")
        },
    }


def drive_closed_loop(clients: int, requests: int, send: Callable[[httpx.Client, int], S],
                      failed: Callable[[str], S]) -> tuple[list[S], float]:
    """`clients` threads send `requests` requests in total, each its next one as soon as its
    previous one ends: `send(client, i)` sends request number i. Returns the samples (in order of
    completion; a transport error becomes `failed(message)`) and the wall time in seconds."""
    lock = threading.Lock()
    next_i = [0]
    samples: list[S] = []

    def worker():
        with new_client() as c:
            while True:
                with lock:
                    i = next_i[0]
                    if i >= requests:
                        return
                    next_i[0] += 1
                try:
                    s = send(c, i)
                except httpx.HTTPError as e:
                    s = failed(f"{type(e).__name__}: {e}")
                with lock:
                    samples.append(s)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples, time.monotonic() - t0


def closed_loop(fn: RequestFn, base_url: str, clients: int, requests: int, max_tokens: int) -> dict:
    samples, wall = drive_closed_loop(
        clients, requests,
        lambda c, i: fn(c, base_url, counting_prompt(clients * 1000 + i), max_tokens),
        lambda msg: Sample(ok=False, error=msg))
    good = [s for s in samples if s.ok]
    lat = [s.latency_ms for s in good]
    tokens = sum(s.completion_tokens for s in good)
    return {
        "clients": clients,
        "requests": requests,
        "errors": [s.error for s in samples if not s.ok],
        "wall_s": wall,
        "completion_tokens": tokens,
        "aggregate_tps": tokens / wall if wall > 0 else None,
        "latency_ms_p50": percentile(lat, 50),
        "latency_ms_p95": percentile(lat, 95),
        "ttft_ms_p50": percentile([s.ttft_ms_client for s in good], 50),
        "ttft_ms_p95": percentile([s.ttft_ms_client for s in good], 95),
        "samples": [asdict(s) for s in samples],
    }


def bench_server(fn: RequestFn, base_url: str, args) -> dict:
    log("  single stream")
    res = {"single_stream": single_stream(fn, base_url, args.reps, args.max_tokens),
           "concurrency": []}
    for c in args.concurrency:
        log(f"  {c} concurrent client(s), {args.requests} requests")
        res["concurrency"].append(closed_loop(fn, base_url, c, args.requests, args.max_tokens))
    return res


def run_llama_bench(prefix: Path, args) -> dict:
    argv = [str(prefix / "bin" / "llama-bench"), "-m", str(args.model), "-t", str(args.threads),
            "-p", "512", "-n", "128", "-o", "json", "-r", str(2 if args.quick else 5)]
    log("llama-bench: " + " ".join(argv))
    cp = subprocess.run(argv, capture_output=True, text=True)
    if cp.returncode != 0:
        raise SystemExit(f"llama-bench failed ({cp.returncode}):\n{cp.stderr[-2000:]}")
    rows = json.loads(cp.stdout)
    out: dict[str, Any] = {"raw": rows}
    for r in rows:
        if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0:
            out["pp512_tps"] = r["avg_ts"]
        elif r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0:
            out["tg128_tps"] = r["avg_ts"]
    return out


# --------------------------------------------------------------------------------------------
# Flags and the run (the table: run_report.py)


def add_server_args(p: argparse.ArgumentParser, ctx_size: int) -> None:
    """The flags every benchmark that starts llmq and llama-server shares."""
    p.add_argument("--model", type=Path, default=default_model(), help="GGUF file (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every engine (default: 2)")
    p.add_argument("--slots", type=int, default=4,
                   help="llmq --slots and llama-server --parallel (default: 4)")
    p.add_argument("--ctx-size", type=int, default=ctx_size,
                   help="context per slot; llama-server gets -c ctx_size*slots (default: %(default)s)")
    p.add_argument("--engines", default="llmq,llama-server",
                   help="which servers to run, comma-separated (default: llmq,llama-server)")
    p.add_argument("--llmq-bin", type=Path, default=default_llmq_bin(), help="default: %(default)s")
    p.add_argument("--llama-prefix", default=None,
                   help="llama.cpp install prefix with bin/llama-server and bin/llama-bench "
                        "(default: $LLMQ_LLAMA_PREFIX, else the output of scripts/llama.sh)")
    p.add_argument("--llmq-args", default="",
                   help="more flags for llmq serve, one string (e.g. \"--decode-stall-factor 0\")")
    p.add_argument("--llama-server-args", default="", help="more flags for llama-server, one string")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default: %(default)s)")


def parse_engines(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """--engines as a list, checked."""
    a.engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    unknown = set(a.engines) - {"llmq", "llama-server"}
    if unknown:
        p.error(f"unknown engine(s): {', '.join(sorted(unknown))}")


def find_inputs(args, need_llama: bool) -> Path | None:
    """Checks the model and the llmq binary exist; returns the llama.cpp prefix if needed."""
    if not args.model.is_file():
        raise SystemExit(f"model not found: {args.model} (set --model or LLMQ_MODEL)")
    prefix = llama_prefix(args.llama_prefix) if need_llama else None
    if "llmq" in args.engines and not args.llmq_bin.is_file():
        raise SystemExit(f"llmq binary not found: {args.llmq_bin} (set --llmq-bin or LLMQ_BIN, "
                         f"or run with --engines llama-server)")
    return prefix


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_args(p, ctx_size=1024)
    p.add_argument("--max-tokens", type=int, default=128, help="tokens per request (default: 128)")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per concurrency level (default: 16, --quick: 8)")
    p.add_argument("--reps", type=int, default=None,
                   help="single-stream repetitions (default: 5, --quick: 2)")
    p.add_argument("--concurrency", default="1,2,4,8", help="client counts (default: 1,2,4,8)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds of every engine, in alternating order (default: 4, --quick: 1)")
    p.add_argument("--no-llama-bench", action="store_true", help="skip llama-bench")
    p.add_argument("--quick", action="store_true", help="smoke run: fewer repetitions/requests")
    a = p.parse_args(argv)
    a.requests = a.requests or (8 if a.quick else 16)
    a.reps = a.reps or (2 if a.quick else 5)
    a.rounds = a.rounds or (1 if a.quick else 4)
    a.concurrency = [int(x) for x in a.concurrency.split(",") if x]
    parse_engines(p, a)
    return a


def new_run(args, prefix: Path | None) -> tuple[dict, str]:
    """The results document a benchmark run starts with (its start, command line, flags, host
    and llama.cpp prefix; "engines" to fill), and the UTC stamp that names its files."""
    started = dt.datetime.now(dt.timezone.utc)
    res = {
        "started_utc": started.isoformat(),
        "command": sys.argv,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "host": host_info(),
        "llama_prefix": str(prefix) if prefix else None,
        "engines": {},
    }
    return res, started.strftime("%Y%m%dT%H%M%SZ")


def run_engines(args, name: str, bench_engine, report) -> int:
    """Runs bench_engine(engine, args, prefix, log_dir) for each of args.engines, one after the
    other, and writes and prints the results as <args.out>/<name>-<stamp>.json."""
    prefix = find_inputs(args, need_llama="llama-server" in args.engines)
    res, stamp = new_run(args, prefix)
    log_dir = args.out / "logs" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    for engine in args.engines:
        res["engines"][engine] = bench_engine(engine, args, prefix, log_dir)
    finish(res, args.out / f"{name}-{stamp}.json", report)
    return 0


def finish(res: dict, path: Path, report) -> None:
    """Stamps the end of a run, writes its results as JSON to `path` and prints its table."""
    res["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(report(res))
    print(f"\nresults: {path}")


def main(argv=None) -> int:
    args = parse_args(argv)
    prefix = find_inputs(args, need_llama="llama-server" in args.engines or not args.no_llama_bench)

    started = dt.datetime.now(dt.timezone.utc)
    res: dict[str, Any] = {
        "started_utc": started.isoformat(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "host": host_info(),
        "llama_prefix": str(prefix) if prefix else None,
    }

    log_dir = args.out / "logs" / started.strftime("%Y%m%dT%H%M%SZ")
    log_dir.mkdir(parents=True, exist_ok=True)
    res["log_dir"] = str(log_dir)
    if not args.no_llama_bench:
        res["llama_bench"] = run_llama_bench(prefix, args)

    # Each round runs every engine once; the order alternates from round to round, so that a
    # drift of the machine's speed (this project's machines are shared VMs) falls on both.
    res["rounds"] = []
    for n in range(args.rounds):
        res["rounds"].append({})
        for engine in (args.engines if n % 2 == 0 else args.engines[::-1]):
            srv = engine_server(engine, args, prefix, log_dir,
                                queue_max=max(64, max(args.concurrency) * 2))
            fn = llmq_request if engine == "llmq" else llama_server_request
            with srv:
                log(f"round {n + 1} of {args.rounds}: benchmarking {engine}")
                r = bench_server(fn, srv.base_url, args)
                r["argv"] = srv.argv
                res["rounds"][-1][engine] = r

    finish(res, args.out / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
