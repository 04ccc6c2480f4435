#!/usr/bin/env python3
"""`n` choices in one request against as many requests: llmq decodes a request's n choices side
by side from one prefill of the prompt (its KV cells copied to the other choices' slots); the
alternatives are n requests at once (each prefills its own copy of the prompt) or one after the
other (the later ones find the prompt in the prefix cache).

    python bench/choices.py --quick      # smoke run
    python bench/choices.py              # full run (on an idle machine)

For each prompt length (a short counting prompt, and the same after ~N words of text) and each
round, in an order that alternates from round to round: one /v1/completions request with n
choices, n concurrent requests with n=1, and n sequential ones; every one with its own prompt (so
no mode finds another's prompt cached), greedy, max_tokens each. Prints the median wall time per
mode and the ratios, with their range over the rounds. Writes bench/results/choices-<stamp>.json.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx

from run import add_server_args, engine_server, find_inputs, finish, log, new_run, parse_engines
from run_report import fmt, median, spread

WORDS = ("time year people way day man thing woman life child world school state family student "
         "group country problem hand part place case week company system program question work "
         "night point home water room mother area money story fact month lot right study book").split()

MODES = ("n_choices", "n_concurrent", "n_sequential")


def prompt(i: int, words: int) -> str:
    """A prompt of its own (it differs from the first character) that greedy decoding goes on
    counting from, after `words` words of text."""
    start = 100 + 37 * i
    text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(words))
    head = f"{start}. " + (text + "\n" if words else "")
    return head + ", ".join(str(n) for n in range(start, start + 10)) + ","


def complete(client: httpx.Client, base: str, text: str, n: int, max_tokens: int) -> int:
    r = client.post(base + "/v1/completions", json={"prompt": text, "n": n, "max_tokens": max_tokens,
                                                      "temperature": 0}, timeout=600)
    r.raise_for_status()
    body = r.json()
    assert len(body["choices"]) == n, body
    return body["usage"]["completion_tokens"]


def run_mode(mode: str, base: str, n: int, texts: list[str], max_tokens: int) -> dict:
    """One measurement: the wall time from the first send to the last answer, and the tokens."""
    tokens = [0] * n
    with httpx.Client() as client:
        t0 = time.perf_counter()
        if mode == "n_choices":
            tokens[0] = complete(client, base, texts[0], n, max_tokens)
        elif mode == "n_sequential":
            for k in range(n):
                tokens[k] = complete(client, base, texts[k], 1, max_tokens)
        else:
            def one(k: int) -> None:
                with httpx.Client() as own:
                    tokens[k] = complete(own, base, texts[k], 1, max_tokens)
            threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "completion_tokens": sum(tokens)}


def bench_llmq(engine: str, args, prefix, log_dir: Path) -> dict:
    out: dict = {}
    with engine_server(engine, args, prefix, log_dir) as srv:
        complete(httpx.Client(), srv.base_url, prompt(999, 0), 1, 4)  # warm-up
        i = 0
        for words in args.words:
            rounds = []
            for r in range(args.rounds):
                order = MODES if r % 2 == 0 else tuple(reversed(MODES))
                got = {}
                for mode in order:
                    texts = [prompt(i + k, words) for k in range(args.n)]
                    i += args.n
                    got[mode] = run_mode(mode, srv.base_url, args.n, texts, args.max_tokens)
                    log(f"words={words} round {r + 1}: {mode} {got[mode]['wall_s']:.2f} s, "
                        f"{got[mode]['completion_tokens']} tokens")
                rounds.append(got)
            out[str(words)] = rounds
    return out


def report(res: dict) -> str:
    lines = []
    n = res["config"]["n"]
    for words, rounds in res["engines"]["llmq"].items():
        lines.append(f"\nprompt after {words} words, n={n}, max_tokens={res['config']['max_tokens']}"
                     f" ({len(rounds)} rounds)")
        lines.append(f"  {'mode':<14} {'wall s (median)':>16} {'tokens':>8} {'vs n choices':>22}")
        for mode in MODES:
            walls = [r[mode]["wall_s"] for r in rounds]
            toks = median([r[mode]["completion_tokens"] for r in rounds])
            ratios = [r[mode]["wall_s"] / r["n_choices"]["wall_s"] for r in rounds]
            lines.append(f"  {mode:<14} {fmt(median(walls), 2):>16} {fmt(toks, 0):>8} "
                         f"{spread(ratios):>22}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_args(p, ctx_size=2048)
    p.set_defaults(engines="llmq")
    p.add_argument("--n", type=int, default=3, help="choices per request (default: 3)")
    p.add_argument("--max-tokens", type=int, default=64, help="tokens per choice (default: 64)")
    p.add_argument("--words", default="0,500", help="prompt lengths in words of text before the "
                   "counting (default: 0,500)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default: 5, --quick: 1)")
    p.add_argument("--quick", action="store_true", help="smoke run")
    a = p.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 5)
    a.words = [int(w) for w in a.words.split(",") if w]
    parse_engines(p, a)
    if a.engines != ["llmq"]:
        p.error("only llmq serves n choices here (--engines llmq)")
    if a.slots < a.n:
        p.error(f"--slots {a.slots} is fewer than --n {a.n}")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    prefix = find_inputs(args, need_llama=False)
    res, stamp = new_run(args, prefix)
    log_dir = args.out / "logs" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    res["engines"]["llmq"] = bench_llmq("llmq", args, prefix, log_dir)
    finish(res, args.out / f"choices-{stamp}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
