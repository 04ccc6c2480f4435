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
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from run import RESULTS_DIR, default_llmq_bin, default_model, host_info, log
from so_parts import part1, part2, part3, part4, report1, report2, report3, report4
from so_plots import plots
from so_procs import ABORT, PROCS, llmq_env, stop_all
from so_sim import part5, report5


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
