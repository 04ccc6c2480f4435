#!/usr/bin/env python3
"""Sums up a step trace (`llmq serve --step-trace FILE`): where the decode thread's time went.

    python bench/steps.py FILE [FILE ...]

For each kind of step (how many sequences generate, and whether prompt tokens rode along) it
prints the count, the mean time before the step (taking jobs, building the batch), in llama.cpp's
decode, and after it (sampling, detokenizing, stop strings, handing events over), and the share of
the thread's time that each part took. Steps with nothing but prompt tokens are their own row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def kind(step: dict) -> tuple[int, str]:
    prompt = step["prompt"]
    if prompt == 0:
        return step["gen"], "decode"
    return step["gen"], "prompt" if step["gen"] == 0 else "mixed"


def summarize(steps: list[dict]) -> str:
    groups: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for s in steps:
        groups[kind(s)].append(s)
    # Idle waits (no job at all) are not the scheduler's cost: a wait over 50 ms before a step
    # with nothing generating is the worker waiting for work, and is left out of the shares.
    busy = lambda s: not (s["gen"] == 0 and s["wait_ms"] > 50)  # noqa: E731
    total = {"wait_ms": sum(s["wait_ms"] for s in steps if busy(s)),
             "decode_ms": sum(s["decode_ms"] for s in steps),
             "sample_ms": sum(s["sample_ms"] for s in steps)}
    whole = sum(total.values()) or 1
    span = (steps[-1]["t_ms"] - steps[0]["t_ms"] + steps[0]["decode_ms"] + steps[0]["sample_ms"]) / 1000
    tokens = sum(s["sampled"] for s in steps)
    lines = [f"{len(steps)} steps over {span:.1f} s, {tokens} tokens sampled "
             f"({tokens / span if span > 0 else 0:.1f}/s); decode thread busy {whole / 1000:.1f} s: "
             f"before {100 * total['wait_ms'] / whole:.1f} %, decode {100 * total['decode_ms'] / whole:.1f} %, "
             f"after {100 * total['sample_ms'] / whole:.1f} %",
             "",
             f"{'gen':>4} {'kind':<7} {'steps':>6} {'prompt tok':>10} {'before ms':>9} {'decode ms':>9} "
             f"{'p95':>7} {'after ms':>8} {'after/seq':>9} {'time %':>6}"]
    for key in sorted(groups):
        g = groups[key]
        decode = [s["decode_ms"] for s in g]
        sampled = sum(s["sampled"] for s in g) or 1
        share = sum(s["decode_ms"] + s["sample_ms"] + (s["wait_ms"] if busy(s) else 0) for s in g)
        p95 = sorted(decode)[max(0, int(0.95 * len(decode)) - 1)]
        lines.append(
            f"{key[0]:>4} {key[1]:<7} {len(g):>6} {statistics.mean(s['prompt'] for s in g):>10.1f} "
            f"{statistics.mean(s['wait_ms'] for s in g if busy(s)) if any(busy(s) for s in g) else 0:>9.3f} "
            f"{statistics.mean(decode):>9.3f} {p95:>7.2f} {statistics.mean(s['sample_ms'] for s in g):>8.3f} "
            f"{sum(s['sample_ms'] for s in g) / sampled:>9.3f} {100 * share / whole:>6.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    a = p.parse_args(argv)
    for f in a.files:
        steps = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        print(f"== {f}")
        print(summarize(steps) if steps else "no steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
