"""bench/run.py's table: the rounds' values and ratios (see bench/README.md, "Rounds"), and the
small number helpers the other benchmarks share through run.py."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def spread(values: list[float | None], nd: int = 2) -> str:
    """A ratio over rounds: its median, and its range when there were several."""
    xs = sorted(x for x in values if x is not None)
    if not xs:
        return "-"
    mid = fmt(statistics.median(xs), nd)
    return mid if len(xs) == 1 else f"{mid} ({fmt(xs[0], nd)}-{fmt(xs[-1], nd)})"


def round_ratios(res: dict, value: Callable[[dict], float | None]) -> list[float | None]:
    """llmq / llama-server of one value, per round (each round ran both, in turn)."""
    return [ratio(value(r["llmq"]), value(r["llama-server"]))
            for r in res["rounds"] if "llmq" in r and "llama-server" in r]


def across(res: dict, engine: str, value: Callable[[dict], float | None]) -> float | None:
    """The median over rounds of one engine's value."""
    return median([value(r[engine]) for r in res["rounds"] if engine in r])


def level_of(e: dict, n: int) -> dict | None:
    return next((c for c in e["concurrency"] if c["clients"] == n), None)


def report(res: dict) -> str:
    lines = []
    lb = res.get("llama_bench") or {}
    cfg = res["config"]
    rounds = len(res["rounds"])
    lines.append(f"model {Path(cfg['model']).name}, threads {cfg['threads']}, slots {cfg['slots']}, "
                 f"ctx/slot {cfg['ctx_size']}, max_tokens {cfg['max_tokens']}, {rounds} round(s), "
                 f"the order of the servers alternating")
    if lb:
        lines.append(f"llama-bench: pp512 {fmt(lb.get('pp512_tps'))} tok/s, "
                     f"tg128 {fmt(lb.get('tg128_tps'))} tok/s")
    lines.append("values: median over rounds; ratios: median (min-max) of the rounds' ratios")
    lines.append("")
    lines.append(f"single stream, median of {cfg['reps']}   {'llmq':>10} {'llama-server':>13} "
                 f"{'llmq/ls':>17} {'llmq/tg128':>10}")
    rows = [("decode tok/s (server)", "decode_tps_server", True),
            ("decode tok/s (client)", "decode_tps_client", True),
            ("TTFT ms (server)", "ttft_ms_server", False),
            ("TTFT ms (client)", "ttft_ms_client", False),
            ("request ms (client)", "latency_ms", False),
            ("completion tokens", "completion_tokens", False)]
    for label, key, vs_tg in rows:
        def value(e: dict, key=key):
            return e["single_stream"]["median"][key]
        a, b = across(res, "llmq", value), across(res, "llama-server", value)
        tg = ratio(a, lb.get("tg128_tps")) if vs_tg else None
        lines.append(f"  {label:<33} {fmt(a):>10} {fmt(b):>13} "
                     f"{spread(round_ratios(res, value)):>17} {fmt(tg, 2):>10}")
    lines.append("")
    lines.append(f"closed loop, {cfg['requests']} requests per level")
    lines.append(f"  {'clients':>7} {'llmq tok/s':>11} {'ls tok/s':>9} {'ratio':>17}   "
                 f"{'llmq p50/p95 ms':>17} {'ls p50/p95 ms':>17} {'TTFT p50 ratio':>17}")
    for n in cfg["concurrency"]:
        def get(key, n=n):
            return lambda e: (level_of(e, n) or {}).get(key)
        at, bt = across(res, "llmq", get("aggregate_tps")), across(res, "llama-server", get("aggregate_tps"))
        pa = f"{fmt(across(res, 'llmq', get('latency_ms_p50')), 0)}/{fmt(across(res, 'llmq', get('latency_ms_p95')), 0)}"
        pb = (f"{fmt(across(res, 'llama-server', get('latency_ms_p50')), 0)}/"
              f"{fmt(across(res, 'llama-server', get('latency_ms_p95')), 0)}")
        errs = sum(len((level_of(e, n) or {}).get("errors", [])) for r in res["rounds"] for e in r.values())
        lines.append(f"  {n:>7} {fmt(at):>11} {fmt(bt):>9} {spread(round_ratios(res, get('aggregate_tps'))):>17}   "
                     f"{pa:>17} {pb:>17} {spread(round_ratios(res, get('ttft_ms_p50'))):>17}"
                     + (f"   ({errs} failed requests)" if errs else ""))
    return "\n".join(lines)
