#!/usr/bin/env python3
"""Embeddings: llmq beside llama.cpp's llama-server (--embeddings --pooling mean), one at a time,
same model, same threads.

    python bench/embeddings.py            # both engines
    python bench/embeddings.py --quick    # fewer repetitions

For each engine, the same 64 texts (a sentence each, 10-20 tokens) are embedded three ways:

  one call      POST /v1/embeddings with all 64 inputs
  64 calls      one input per call, one after the other
  64 calls, 8   one input per call, 8 clients at once

and the wall time of each is the median over --reps. The goal (issue 13): 64 inputs in one call
are faster than 64 calls ("64 calls / one call" > 1).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time
from pathlib import Path
from typing import Any

import httpx

from run import add_server_args, engine_server, log, median, parse_engines, run_engines

SUBJECTS = ["cat", "river", "engine", "violin", "glacier", "market", "teacher", "satellite"]
VERBS = ["crossed", "measured", "painted", "repaired", "followed", "described", "ignored", "found"]
TEXTS = [f"The {s} {v} the old bridge near the village on day {i}."
         for i, (s, v) in enumerate((s, v) for s in SUBJECTS for v in VERBS)]


def embed(client: httpx.Client, base_url: str, inputs: list[str]) -> int:
    r = client.post(base_url + "/v1/embeddings", json={"input": inputs}, timeout=600)
    r.raise_for_status()
    return len(r.json()["data"])


def one_call(base_url: str) -> float:
    with httpx.Client() as c:
        t0 = time.perf_counter()
        assert embed(c, base_url, TEXTS) == len(TEXTS)
        return time.perf_counter() - t0


def many_calls(base_url: str, clients: int) -> float:
    with httpx.Client() as c, concurrent.futures.ThreadPoolExecutor(clients) as pool:
        t0 = time.perf_counter()
        done = sum(pool.map(lambda t: embed(c, base_url, [t]), TEXTS))
        assert done == len(TEXTS)
        return time.perf_counter() - t0


def bench_engine(engine: str, args, prefix, log_dir: Path) -> dict:
    srv = engine_server(engine, args, prefix, log_dir)
    if engine == "llama-server":
        # Embeddings need the flag; mean pooling as llmq uses for a model whose GGUF names none.
        srv.argv += ["--embeddings", "--pooling", "mean", "-ub", str(args.ctx_size), "-b", str(args.ctx_size)]
    out: dict[str, Any] = {}
    with srv:
        one_call(srv.base_url)  # warm-up
        for name, run in (("one_call", lambda: one_call(srv.base_url)),
                          ("calls_1", lambda: many_calls(srv.base_url, 1)),
                          ("calls_8", lambda: many_calls(srv.base_url, 8))):
            times = []
            for rep in range(args.reps):
                log(f"{engine}: {name} {rep + 1}/{args.reps}")
                times.append(run())
            out[name] = {"seconds": times, "median_s": median(times)}
    return out


def ratio(a, b):
    return a / b if a and b else None


def fmt(x, nd=3):
    return "—" if x is None else f"{x:.{nd}f}"


def report(res: dict) -> str:
    lines = [f"embeddings of {len(TEXTS)} texts, {res['host']['cpu_model']}, "
             f"{res['config']['threads']} threads", "",
             f"{'wall time, s (median)':32} " + " ".join(f"{e:>13}" for e in res["engines"])]
    for label, key in (("one call of 64 inputs", "one_call"), ("64 calls, one client", "calls_1"),
                       ("64 calls, 8 clients", "calls_8")):
        lines.append(f"{label:32} " + " ".join(f"{fmt(e[key]['median_s']):>13}"
                                                 for e in res["engines"].values()))
    lines.append("")
    for name, e in res["engines"].items():
        r1 = ratio(e["calls_1"]["median_s"], e["one_call"]["median_s"])
        r8 = ratio(e["calls_8"]["median_s"], e["one_call"]["median_s"])
        verdict = "" if r1 is None else ("PASS" if r1 > 1 else "MISSED")
        lines.append(f"{name}: 64 calls / one call = {fmt(r1, 2)} (one client), {fmt(r8, 2)} "
                     f"(8 clients); goal > 1: {verdict}")
    engines = res["engines"]
    if "llmq" in engines and "llama-server" in engines:
        lines.append("llmq / llama-server, time of one call of 64 inputs: " + fmt(ratio(
            engines["llmq"]["one_call"]["median_s"], engines["llama-server"]["one_call"]["median_s"]), 2))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_args(p, ctx_size=512)
    p.add_argument("--reps", type=int, default=None, help="repetitions (default: 5, --quick: 2)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    a = p.parse_args(argv)
    a.reps = a.reps or (2 if a.quick else 5)
    parse_engines(p, a)
    return a


def main(argv=None) -> int:
    return run_engines(parse_args(argv), "embeddings", bench_engine, report)


if __name__ == "__main__":
    raise SystemExit(main())
