#!/usr/bin/env python3
"""What structured output and log-probabilities cost, llmq beside llama.cpp's llama-server, in one
run, same model, same threads, same slots.

    python bench/structured.py            # both engines
    python bench/structured.py --quick    # fewer repetitions

Each round fills every slot at once with greedy completions of counting prompts (the model goes
on counting, so every request produces --max-tokens tokens) and takes each request's decode
tokens/s as the server reports it. Rounds:

  free         every slot unconstrained
  mixed        half the slots constrained by a JSON Schema (an array of at least 100 integers,
               which the counting prompt fills), half unconstrained
  constrained  every slot constrained
  logprobs     (llmq only) every slot with logprobs and top_logprobs 5

The goal (issue 13): unconstrained streams beside constrained ones decode at least 97 % as fast
as beside unconstrained ones ("mixed free / free" >= 0.97). The table also gives llmq's
constrained speed over llama-server's.
"""

from __future__ import annotations

import argparse
import concurrent.futures
from pathlib import Path
from typing import Any

import httpx

from run import add_server_args, counting_prompt, engine_server, log, median, parse_engines, run_engines

SCHEMA = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1000000},
          "minItems": 100, "maxItems": 1000}
GOAL = 0.97


def llmq_one(client: httpx.Client, base_url: str, i: int, max_tokens: int, constrained: bool,
             logprobs: bool) -> dict:
    body: dict[str, Any] = {"prompt": counting_prompt(i), "max_tokens": max_tokens,
                            "temperature": 0, "stream": False}
    if constrained:
        body["json_schema"] = SCHEMA
    if logprobs:
        body.update(logprobs=True, top_logprobs=5)
    r = client.post(base_url + "/api/v1/req", json=body, timeout=600)
    r.raise_for_status()
    d = r.json()
    return {"tps": d["timings"]["decode_tokens_per_s"], "tokens": d["usage"]["completion_tokens"],
            "constrained": constrained, "text": d["text"][:80]}


def llama_one(client: httpx.Client, base_url: str, i: int, max_tokens: int, constrained: bool,
              logprobs: bool) -> dict:
    body: dict[str, Any] = {"prompt": counting_prompt(i), "n_predict": max_tokens,
                            "temperature": 0, "stream": False, "cache_prompt": False}
    if constrained:
        body["json_schema"] = SCHEMA
    if logprobs:
        body["n_probs"] = 5
    r = client.post(base_url + "/completion", json=body, timeout=600)
    r.raise_for_status()
    d = r.json()
    return {"tps": d["timings"]["predicted_per_second"], "tokens": d["tokens_predicted"],
            "constrained": constrained, "text": d["content"][:80]}


def round_of(one, base_url: str, slots: int, kinds: list[tuple[bool, bool]], max_tokens: int,
             first: int) -> list[dict]:
    """One request per slot, all at once; kinds[k] = (constrained, logprobs) of request k."""
    with httpx.Client() as client, concurrent.futures.ThreadPoolExecutor(slots) as pool:
        futures = [pool.submit(one, client, base_url, first + k, max_tokens, c, lp)
                   for k, (c, lp) in enumerate(kinds)]
        return [f.result() for f in futures]


def bench_engine(engine: str, args, prefix, log_dir: Path) -> dict:
    one = llmq_one if engine == "llmq" else llama_one
    half = args.slots // 2
    rounds = {
        "free": [(False, False)] * args.slots,
        "mixed": [(True, False)] * half + [(False, False)] * (args.slots - half),
        "constrained": [(True, False)] * args.slots,
    }
    if engine == "llmq":
        rounds["logprobs"] = [(False, True)] * args.slots
    out: dict[str, Any] = {}
    with engine_server(engine, args, prefix, log_dir) as srv:
        round_of(one, srv.base_url, args.slots, rounds["constrained"], 8, 90_000)  # warm-up
        for name, kinds in rounds.items():
            samples = []
            for rep in range(args.reps):
                log(f"{engine}: {name} round {rep + 1}/{args.reps}")
                samples += round_of(one, srv.base_url, args.slots, kinds, args.max_tokens,
                                    1000 * (rep + 1) + 100 * len(out))
            short = [s for s in samples if s["tokens"] < args.max_tokens]
            if short:
                log(f"{engine}: {name}: {len(short)} requests ended early: {short[:2]}")
            out[name] = {
                "samples": samples,
                "free_tps": median([s["tps"] for s in samples if not s["constrained"]]),
                "constrained_tps": median([s["tps"] for s in samples if s["constrained"]]),
            }
    return out


def ratio(a, b):
    return a / b if a and b else None


def fmt(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def report(res: dict) -> str:
    lines = [f"structured output and logprobs, {res['host']['cpu_model']}, "
             f"{res['config']['threads']} threads, {res['config']['slots']} slots, "
             f"{res['config']['max_tokens']} tokens per request", ""]
    lines.append(f"{'decode tok/s per stream (median)':44} " +
                 " ".join(f"{e:>13}" for e in res["engines"]))
    rows = [("all free", "free", "free_tps"), ("free, beside constrained", "mixed", "free_tps"),
            ("constrained, beside free", "mixed", "constrained_tps"),
            ("all constrained", "constrained", "constrained_tps"),
            ("all with logprobs (top 5)", "logprobs", "free_tps")]
    for label, rnd, key in rows:
        cells = [fmt(e.get(rnd, {}).get(key), 1) for e in res["engines"].values()]
        lines.append(f"{label:44} " + " ".join(f"{c:>13}" for c in cells))
    lines.append("")
    for name, e in res["engines"].items():
        r = ratio(e["mixed"]["free_tps"], e["free"]["free_tps"])
        verdict = "" if r is None else ("PASS" if r >= GOAL else "MISSED")
        lines.append(f"{name}: free beside constrained / free beside free = {fmt(r, 3)} "
                     f"(goal >= {GOAL}) {verdict}")
        lines.append(f"{name}: all constrained / all free = "
                     f"{fmt(ratio(e['constrained']['constrained_tps'], e['free']['free_tps']), 3)}")
        if "logprobs" in e:
            lines.append(f"{name}: logprobs / free = "
                         f"{fmt(ratio(e['logprobs']['free_tps'], e['free']['free_tps']), 3)}")
    engines = res["engines"]
    if "llmq" in engines and "llama-server" in engines:
        lines.append("llmq / llama-server, all constrained: " + fmt(ratio(
            engines["llmq"]["constrained"]["constrained_tps"],
            engines["llama-server"]["constrained"]["constrained_tps"]), 3))
        lines.append("llmq / llama-server, all free: " + fmt(ratio(
            engines["llmq"]["free"]["free_tps"], engines["llama-server"]["free"]["free_tps"]), 3))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_args(p, ctx_size=1024)
    p.add_argument("--max-tokens", type=int, default=128, help="tokens per request (default: 128)")
    p.add_argument("--reps", type=int, default=None, help="rounds of each kind (default: 3, --quick: 1)")
    p.add_argument("--quick", action="store_true", help="one round of each kind")
    a = p.parse_args(argv)
    a.reps = a.reps or (1 if a.quick else 3)
    parse_engines(p, a)
    return a


def main(argv=None) -> int:
    return run_engines(parse_args(argv), "structured", bench_engine, report)


if __name__ == "__main__":
    raise SystemExit(main())
