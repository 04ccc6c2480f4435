#!/usr/bin/env python3
"""Overload: open-loop Poisson arrivals at 1x, 2x and 4x the measured capacity, llmq and
llama-server one after the other on the same model and threads. For each level: goodput
(completed requests/s), the latency of admitted requests (p50/p95/p99), how fast refusals come
(p99), errors, and the server's RSS over time. Writes a JSON file, a Markdown table and PNG
plots (docs/img/overload-*.png with --plots).

    python bench/overload.py                    # 60 s per level
    python bench/overload.py --seconds 20       # a shorter run

Capacity is measured first, per engine, with `slots` closed-loop clients for --capacity-seconds.
Requests are non-streaming with --max-tokens tokens, so a request's latency is its whole time.
llmq runs with --queue-max 2*slots (the queue threshold of the done-when); llama-server has no
queue bound and takes everything.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import random
import sys
import threading
import time
from pathlib import Path

import httpx

from run import (REPO, RESULTS_DIR, ServerProcess, default_llmq_bin, default_model, free_port,
                 llama_prefix, log, percentile)

PROMPTS = [f"Count from {n}: {n}, {n + 1}, {n + 2}," for n in range(1, 200, 7)]


def llmq_body(prompt: str, max_tokens: int) -> tuple[str, dict]:
    return "/api/v1/req", {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                           "stream": False}


def llama_body(prompt: str, max_tokens: int) -> tuple[str, dict]:
    return "/completion", {"prompt": prompt, "n_predict": max_tokens, "temperature": 0,
                           "cache_prompt": False}


class RssSampler:
    """The server's resident memory every second, from /proc."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()
        self._t.start()

    def _run(self):
        while not self._stop.wait(1.0):
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append((time.monotonic() - self.t0, int(line.split()[1]) * 1024))
            except FileNotFoundError:
                return

    def stop(self):
        self._stop.set()
        self._t.join()


async def one(client: httpx.AsyncClient, url: str, body: dict, t_start: float, out: list):
    t0 = time.monotonic()
    try:
        r = await client.post(url, json=body)
        status = r.status_code
    except httpx.HTTPError as e:
        status = f"{type(e).__name__}"
    out.append({"at": t0 - t_start, "status": status, "latency_ms": (time.monotonic() - t0) * 1000})


async def closed_loop_capacity(base_url: str, make_body, clients: int, seconds: float,
                               max_tokens: int) -> float:
    done = 0
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=120) as client:
        async def worker(i: int):
            nonlocal done
            while time.monotonic() < end:
                path, body = make_body(PROMPTS[(i * 5 + done) % len(PROMPTS)], max_tokens)
                r = await client.post(base_url + path, json=body)
                if r.status_code == 200:
                    done += 1
        t0 = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        return done / (time.monotonic() - t0)


async def open_loop(base_url: str, make_body, rate: float, seconds: float, max_tokens: int,
                    grace: float, seed: int) -> list[dict]:
    """Poisson arrivals at `rate`/s for `seconds`; waits up to `grace` s for the last answers."""
    rng = random.Random(seed)
    out: list[dict] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=seconds + grace, limits=limits) as client:
        tasks = []
        t_start = time.monotonic()
        next_at = 0.0
        n = 0
        while next_at < seconds:
            await asyncio.sleep(max(0.0, t_start + next_at - time.monotonic()))
            path, body = make_body(PROMPTS[n % len(PROMPTS)], max_tokens)
            tasks.append(asyncio.create_task(one(client, base_url + path, body, t_start, out)))
            n += 1
            next_at += rng.expovariate(rate)
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, t_start + seconds + grace - time.monotonic()))
        for t in pending:
            t.cancel()
        unfinished = len(pending)
    for _ in range(unfinished):
        out.append({"at": None, "status": "unfinished", "latency_ms": None})
    return out


def summarize(results: list[dict], seconds: float) -> dict:
    ok = [r["latency_ms"] for r in results if r["status"] == 200]
    refused = [r["latency_ms"] for r in results if r["status"] in (429, 503)]
    other = [r for r in results if r["status"] not in (200, 429, 503)]
    return {
        "sent": len(results), "completed": len(ok), "refused": len(refused),
        "errors": len(other), "error_kinds": sorted({str(r["status"]) for r in other}),
        "goodput_rps": len(ok) / seconds,
        "admitted_p50_ms": percentile(ok, 50), "admitted_p95_ms": percentile(ok, 95),
        "admitted_p99_ms": percentile(ok, 99), "refusal_p99_ms": percentile(refused, 99),
        "http_5xx": sum(1 for r in results if isinstance(r["status"], int) and r["status"] >= 500
                        and r["status"] != 503),
    }


def bench_engine(name: str, srv: ServerProcess, make_body, args) -> dict:
    cap = asyncio.run(closed_loop_capacity(srv.base_url, make_body, args.slots,
                                           args.capacity_seconds, args.max_tokens))
    log(f"{name}: capacity {cap:.2f} requests/s")
    rss = RssSampler(srv.proc.pid)
    levels = []
    for k in args.levels:
        log(f"{name}: {k}x capacity ({k * cap:.2f}/s) for {args.seconds:.0f} s")
        t_level = time.monotonic() - rss.t0
        results = asyncio.run(open_loop(srv.base_url, make_body, k * cap, args.seconds,
                                        args.max_tokens, args.grace, seed=k))
        s = summarize(results, args.seconds)
        s.update({"multiple": k, "rate_rps": k * cap, "started_s": t_level,
                  "latencies": [(r["at"], r["latency_ms"], r["status"]) for r in results if r["at"] is not None]})
        levels.append(s)
        log(f"  goodput {s['goodput_rps']:.2f}/s, admitted p95 {s['admitted_p95_ms']} ms, "
            f"refused {s['refused']}, errors {s['errors']}")
        time.sleep(2)
    rss.stop()
    return {"capacity_rps": cap, "levels": levels, "rss": rss.samples}


def table(res: dict) -> str:
    lines = ["| engine | load | offered req/s | goodput req/s | admitted p50 / p95 / p99 ms | "
             "refused | refusal p99 ms | errors | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    f = lambda x: "-" if x is None else f"{x:.0f}"
    for name, e in res["engines"].items():
        peak = max((b for _, b in e["rss"]), default=0) / 2**20
        for s in e["levels"]:
            lines.append(f"| {name} | {s['multiple']}x | {s['rate_rps']:.2f} | {s['goodput_rps']:.2f} | "
                         f"{f(s['admitted_p50_ms'])} / {f(s['admitted_p95_ms'])} / {f(s['admitted_p99_ms'])} | "
                         f"{s['refused']} | {f(s['refusal_p99_ms'])} | {s['errors']} | {peak:.0f} |")
    lq = res["engines"].get("llmq")
    if lq and len(lq["levels"]) >= 2:
        base = lq["levels"][0]["admitted_p95_ms"]
        top = lq["levels"][-1]["admitted_p95_ms"]
        if base and top:
            lines.append("")
            lines.append(f"llmq admitted p95 at {lq['levels'][-1]['multiple']}x / at "
                         f"{lq['levels'][0]['multiple']}x: {top / base:.2f} (goal <= 1.5)")
    return "\n".join(lines)


def plots(res: dict, out_dir: Path, stamp: str) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, axes = plt.subplots(1, len(res["engines"]), figsize=(6 * len(res["engines"]), 4), squeeze=False)
    for ax, (name, e) in zip(axes[0], res["engines"].items()):
        for s in e["levels"]:
            pts = [(at, ms) for at, ms, st in s["latencies"] if st == 200]
            ax.scatter([p[0] for p in pts], [p[1] / 1000 for p in pts], s=4, label=f"{s['multiple']}x admitted")
            ref = [(at, ms) for at, ms, st in s["latencies"] if st in (429, 503)]
            if ref:
                ax.scatter([p[0] for p in ref], [p[1] / 1000 for p in ref], s=4, marker="x",
                           label=f"{s['multiple']}x refused")
        ax.set_title(f"{name}: latency by arrival time"); ax.set_xlabel("arrival (s into the level)")
        ax.set_ylabel("latency (s)"); ax.legend(fontsize=7)
    fig.tight_layout()
    p = out_dir / f"overload-latency.png"; fig.savefig(p, dpi=100); paths.append(p)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, e in res["engines"].items():
        ax.plot([t for t, _ in e["rss"]], [b / 2**20 for _, b in e["rss"]], label=name)
    ax.set_title("RSS during the overload levels"); ax.set_xlabel("s"); ax.set_ylabel("MiB"); ax.legend()
    fig.tight_layout()
    p = out_dir / f"overload-rss.png"; fig.savefig(p, dpi=100); paths.append(p)
    return paths


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=default_model())
    p.add_argument("--llmq-bin", type=Path, default=default_llmq_bin())
    p.add_argument("--llama-prefix", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--ctx-size", type=int, default=1024)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--capacity-seconds", type=float, default=20)
    p.add_argument("--grace", type=float, default=30, help="wait for answers after a level (s)")
    p.add_argument("--levels", default="1,2,4")
    p.add_argument("--engines", default="llmq,llama-server")
    p.add_argument("--plots", type=Path, default=None, help="write PNG plots into this folder")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    a = p.parse_args(argv)
    a.levels = [int(x) for x in a.levels.split(",")]
    a.engines = [e for e in a.engines.split(",") if e]
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    log_dir = args.out / "logs" / f"overload-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    res = {"started_utc": started.isoformat(), "config": {k: str(v) for k, v in vars(args).items()},
           "engines": {}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_")}
    for engine in args.engines:
        port = free_port()
        if engine == "llmq":
            argv_ = [str(args.llmq_bin), "serve", "--model", str(args.model), "--port", str(port),
                     "--threads", str(args.threads), "--slots", str(args.slots),
                     "--ctx-size", str(args.ctx_size), "--queue-max", str(2 * args.slots),
                     "--max-connections", "4096"]
            srv, make_body = ServerProcess("llmq", argv_, port, "/readyz", log_dir, env), llmq_body
        else:
            prefix = llama_prefix(args.llama_prefix)
            argv_ = [str(prefix / "bin" / "llama-server"), "-m", str(args.model), "-t", str(args.threads),
                     "-c", str(args.ctx_size * args.slots), "--parallel", str(args.slots),
                     "--port", str(port), "--host", "127.0.0.1"]
            srv, make_body = ServerProcess("llama-server", argv_, port, "/health", log_dir), llama_body
        with srv:
            res["engines"][engine] = bench_engine(engine, srv, make_body, args)
            res["engines"][engine]["argv"] = argv_
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"overload-{stamp}.json"
    path.write_text(json.dumps(res, indent=1))
    print(table(res))
    if args.plots:
        for p in plots(res, args.plots, stamp):
            print(f"plot: {p}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
