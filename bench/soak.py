#!/usr/bin/env python3
"""Soak: llmq under open-loop Poisson load at 1.5x its measured capacity for 20 minutes (run
before closing a release, not in CI). Samples RSS and open descriptors every 10 s and reports:

  - RSS drift: the mean of the last 2 minutes against the mean of minutes 2-4 (after warm-up),
    goal under 5 %;
  - descriptor growth: the same two windows, goal none;
  - crashes: the process must still run at the end, and answer /healthz.

    python bench/soak.py                   # 20 minutes
    python bench/soak.py --minutes 5       # a shorter look
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

from overload import closed_loop_capacity, llmq_body, open_loop, summarize
from run import RESULTS_DIR, ServerProcess, default_llmq_bin, default_model, free_port, log


def sample(pid: int) -> tuple[int, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def window_mean(samples, start_s, end_s, index):
    xs = [s[index] for s in samples if start_s <= s[0] < end_s]
    return statistics.mean(xs) if xs else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=default_model())
    p.add_argument("--llmq-bin", type=Path, default=default_llmq_bin())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--multiple", type=float, default=1.5)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    log_dir = args.out / "logs" / f"soak-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv_ = [str(args.llmq_bin), "serve", "--model", str(args.model), "--port", str(port),
             "--threads", str(args.threads), "--slots", str(args.slots), "--ctx-size", "1024",
             "--queue-max", str(2 * args.slots), "--spool-dir", str(log_dir / "spool")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_")}
    seconds = args.minutes * 60
    with ServerProcess("llmq", argv_, port, "/readyz", log_dir, env) as srv:
        cap = asyncio.run(closed_loop_capacity(srv.base_url, llmq_body, args.slots, 20, args.max_tokens))
        log(f"capacity {cap:.2f} requests/s; soaking at {args.multiple * cap:.2f}/s for {args.minutes} min")
        samples: list[tuple[float, int, int]] = []
        stop = threading.Event()
        t0 = time.monotonic()

        def sampler():
            while not stop.wait(10):
                try:
                    samples.append((time.monotonic() - t0, *sample(srv.proc.pid)))
                except FileNotFoundError:
                    return

        th = threading.Thread(target=sampler, daemon=True)
        samples.append((0.0, *sample(srv.proc.pid)))
        th.start()
        results = asyncio.run(open_loop(srv.base_url, llmq_body, args.multiple * cap, seconds,
                                        args.max_tokens, grace=30, seed=1))
        stop.set()
        th.join()
        alive = srv.proc.poll() is None
        healthy = alive and httpx.get(srv.base_url + "/healthz", timeout=5).status_code == 200
    early = (120, 240)
    late = (seconds - 120, seconds + 60)
    rss_early, rss_late = window_mean(samples, *early, 1), window_mean(samples, *late, 1)
    fd_early, fd_late = window_mean(samples, *early, 2), window_mean(samples, *late, 2)
    summary = summarize(results, seconds)
    res = {"started_utc": started.isoformat(), "capacity_rps": cap, "config": vars(args) | {"out": str(args.out), "model": str(args.model), "llmq_bin": str(args.llmq_bin)},
           "samples": samples, "summary": summary, "alive": alive, "healthy": healthy,
           "rss_drift": (rss_late - rss_early) / rss_early if rss_early and rss_late else None,
           "fd_growth": (fd_late - fd_early) if fd_early is not None and fd_late is not None else None}
    path = args.out / f"soak-{stamp}.json"
    path.write_text(json.dumps(res, indent=1, default=str))
    print(f"{args.minutes:.0f} min at {args.multiple}x capacity ({args.multiple * cap:.2f}/s): "
          f"{summary['completed']} completed, {summary['refused']} refused, {summary['errors']} errors "
          f"{summary['error_kinds']}, 5xx {summary['http_5xx']}")
    if rss_early and rss_late:
        print(f"RSS minutes 2-4 {rss_early / 2**20:.1f} MiB, last 2 min {rss_late / 2**20:.1f} MiB: "
              f"drift {res['rss_drift'] * 100:+.2f} % (goal < 5 %)")
    if fd_early is not None and fd_late is not None:
        print(f"open fds minutes 2-4 {fd_early:.1f}, last 2 min {fd_late:.1f} (goal: no growth)")
    print(f"process alive at the end: {alive}, /healthz: {healthy}")
    print(f"results: {path}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
