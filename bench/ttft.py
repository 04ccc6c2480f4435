#!/usr/bin/env python3
"""Time to first token and decode stalls: llmq against llama.cpp's llama-server, one after the
other, on the same model, threads, slots and context, through the OpenAI chat API both serve
(`POST /v1/chat/completions`, streamed). See bench/README.md, "bench/ttft.py", for each row.

    python bench/ttft.py --quick        # smoke run
    python bench/ttft.py                # full run (on an idle machine)

1. TTFT p50/p95 at 1 and 8 closed-loop clients, for cold prompts (unique from the first
   character) and for a shared ~500-token system message with a different question each time.
2. Stall test: --streams long answers decoding; their inter-token gaps while nothing else
   arrives, then while a unique ~2,000-token prompt is being processed (its send -> its first
   token).

Writes bench/results/ttft-<timestamp>.json (every sample, command lines, host).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from clients import ChatSample, chat_stream, new_client, now
from run import (add_server_args, drive_closed_loop, engine_server, find_inputs, finish, fmt, log,
                 new_run, parse_engines, percentile, ratio)

# Plain words, mostly one token each with their leading space, from which the long prompts are
# drawn: ~N words come to ~N tokens (the JSON records what each server counted).
WORDS = """time year people way day man thing woman life child world school state family
student group country problem hand part place case week company system program question work
government number night point home water room mother area money story fact month lot right
study book eye job word business issue side kind head house service friend father power hour
game line end member law car city community name president team minute idea kid body
information back parent face others level office door health person art war history party
result change morning reason research girl guy moment air teacher force education river
garden window bread stone paper music market table light winter summer letter horse field
forest island bridge train coffee apple orange cloud rain snow wind road ship engine""".split()

QUESTIONS = [
    "Which word appears first in the text above?",
    "Name one animal mentioned in the text above.",
    "Summarize the text above in five words.",
    "Is the text above about a river?",
    "Which season does the text above mention?",
    "Give one word from the text above that names a drink.",
    "How would you title the text above?",
    "Does the text above mention a train?",
]

SHARED_SYSTEM_WORDS = 480   # ~500 tokens with the chat template around it
ARRIVAL_WORDS = 1950        # ~2,000 tokens
# Every conversation carries its own system message: given none, llama-server's Jinja template
# inserts SmolLM2's default one and llmq's does not, so the two would see different prompts
# (and answer the long-stream requests differently).
DEFAULT_SYSTEM = {"role": "system",
                  "content": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"}
# Requests the model answers by counting for many hundreds of tokens (checked at temperature 0
# on SmolLM2-135M-Instruct, after DEFAULT_SYSTEM: each reaches max_tokens 500, the first 1000,
# without stopping). Counting from elsewhere does not: "101, 102, ..." stops after 25 tokens,
# "2, 4, ..." at once.
LONG_ANSWERS = [
    "Continue this sequence for as long as you can: 1, 2, 3, 4, 5,",
    "Keep counting for as long as you can: 1, 2, 3, 4, 5,",
    "Continue this list of numbers for as long as you can: 1, 2, 3, 4, 5,",
]


def word_text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


class Prompts:
    """Every prompt of a run, drawn once from --seed so that both servers get the same ones."""

    def __init__(self, seed: int, levels: list[int], requests: int, streams: int):
        rng = random.Random(seed)
        self.shared_system = word_text(rng, SHARED_SYSTEM_WORDS)
        words = self.shared_system.rstrip(".").split()
        q = iter(range(10**6))  # question numbers: no two requests of a run ask the same

        def question() -> str:
            i = next(q)
            return f"Question {i}: {QUESTIONS[i % len(QUESTIONS)]}"

        def nonce() -> str:
            return f"{rng.getrandbits(64):016x} "

        def cold() -> list[dict]:
            # Unique from the first character: a nonce, then the shared words shuffled.
            shuffled = words[:]
            rng.shuffle(shuffled)
            return [{"role": "system", "content": nonce() + " ".join(shuffled) + "."},
                    {"role": "user", "content": question()}]

        def shared() -> list[dict]:
            return [{"role": "system", "content": self.shared_system},
                    {"role": "user", "content": question()}]

        self.warmup = [DEFAULT_SYSTEM, {"role": "user", "content": "Say hello."}]
        self.cold = {c: [cold() for _ in range(requests)] for c in levels}
        self.shared = {c: [shared() for _ in range(requests)] for c in levels}
        self.arrival = [{"role": "system", "content": nonce() + word_text(rng, ARRIVAL_WORDS)},
                        {"role": "user", "content": question()}]
        self.long = [[DEFAULT_SYSTEM,
                      {"role": "user", "content": LONG_ANSWERS[k % len(LONG_ANSWERS)]}]
                     for k in range(streams)]


# --------------------------------------------------------------------------------------------
# 1. TTFT, closed loop


def ttft_level(base_url: str, prompts: list[list[dict]], clients: int, max_tokens: int) -> dict:
    samples, wall = drive_closed_loop(
        clients, len(prompts),
        lambda c, i: chat_stream(c, base_url, prompts[i], max_tokens),
        lambda msg: ChatSample(error=msg))
    good = [s for s in samples if s.ok and s.ttft_ms is not None]
    ttft = [s.ttft_ms for s in good]
    return {
        "clients": clients, "requests": len(prompts), "wall_s": wall,
        "errors": [s.error or "no content" for s in samples if s not in good],
        "ttft_ms_p50": percentile(ttft, 50), "ttft_ms_p95": percentile(ttft, 95),
        "prompt_tokens_p50": percentile([s.prompt_tokens for s in good], 50),
        "cached_tokens_p50": percentile([s.cached_tokens for s in good], 50),
        "samples": [asdict(s) for s in samples],
    }


# --------------------------------------------------------------------------------------------
# 2. Stall test


def gaps_in(streams: list[list[ChatSample]], t0: float, t1: float) -> list[float]:
    """Inter-chunk gaps (ms) of the streams' requests that overlap [t0, t1]: a gap that starts
    before t1 and ends after t0, so a stall spanning the whole window counts."""
    out = []
    for reqs in streams:
        for s in reqs:
            ts = list(s.chunk_times)
            out += [(b - a) * 1000 for a, b in zip(ts, ts[1:]) if b > t0 and a < t1]
    return out


def spans(streams: list[list[ChatSample]], t0: float, t1: float) -> bool:
    """Every stream has one request with a chunk before t0 and one after t1: none finished (or
    restarted) inside the window."""
    return all(any(s.chunk_times and s.chunk_times[0] <= t0 and s.chunk_times[-1] >= t1
                   for s in reqs) for reqs in streams)


def window_stats(streams, t0: float, t1: float) -> dict:
    g = gaps_in(streams, t0, t1)
    return {"start": t0, "end": t1, "gaps": len(g), "p50_ms": percentile(g, 50),
            "p95_ms": percentile(g, 95), "max_ms": max(g, default=None),
            "streams_ran_through": spans(streams, t0, t1)}


def stall_test(base_url: str, prompts: Prompts, args) -> dict:
    """--streams long answers decode; an idle window of --idle-seconds; then the ~2,000-token
    arrival, whose window runs from its send to its first token."""
    stop = threading.Event()
    streams: list[list[ChatSample]] = [[] for _ in prompts.long]

    def stream_worker(k: int):
        # Restarts its answer if it ends, so a stream is running whenever the windows are open
        # (the JSON then says whether one request spanned each window).
        with new_client() as c:
            while not stop.is_set():
                s = ChatSample()
                streams[k].append(s)
                try:
                    chat_stream(c, base_url, prompts.long[k], args.stream_tokens, into=s, stop=stop)
                except httpx.HTTPError as e:
                    s.error = f"{type(e).__name__}: {e}"
                if not s.ok:
                    log(f"  long stream {k} failed: {s.error}")
                    time.sleep(0.5)

    workers = [threading.Thread(target=stream_worker, args=(k,), daemon=True)
               for k in range(len(streams))]
    for w in workers:
        w.start()
    # Steady state: every stream's current answer has produced some chunks.
    deadline = time.monotonic() + 120
    while not all(r and len(r[-1].chunk_times) >= 16 for r in streams):
        if time.monotonic() > deadline:
            stop.set()
            raise SystemExit("stall test: the long streams did not start within 120 s")
        time.sleep(0.05)
    idle_t0 = now()
    time.sleep(args.idle_seconds)
    idle_t1 = now()

    with new_client() as c:
        arrival = chat_stream(c, base_url, prompts.arrival, 8)
    if arrival.ttft_ms is None:
        log(f"  the arrival request failed: {arrival.error}")
    arr_t0 = arrival.sent
    arr_t1 = arr_t0 + (arrival.ttft_ms or 0) / 1000
    time.sleep(1.0)  # so the gap in flight at the arrival's first token ends and is counted
    stop.set()
    for w in workers:
        w.join(30)

    idle = window_stats(streams, idle_t0, idle_t1)
    during = window_stats(streams, arr_t0, arr_t1)
    for name, w in (("idle", idle), ("arrival", during)):
        if not w["streams_ran_through"]:
            log(f"  warning: a long stream ended inside the {name} window; raise --stream-tokens")
    return {
        "idle": idle, "arrival": during,
        "p95_ratio": ratio(during["p95_ms"], idle["p95_ms"]),
        "arrival_sample": asdict(arrival),
        "streams": [[asdict(s) for s in reqs] for reqs in streams],
    }


# --------------------------------------------------------------------------------------------
# One server


def bench_server(base_url: str, prompts: Prompts, args) -> dict:
    with new_client() as c:
        w = chat_stream(c, base_url, prompts.warmup, args.max_tokens)  # not measured
    if not w.ok:
        raise SystemExit(f"warm-up request failed: {w.error}")
    res: dict[str, Any] = {"cold": [], "shared": []}
    for kind in ("cold", "shared"):
        if kind not in args.parts:
            continue
        for clients in args.levels:
            log(f"  {kind} prompts, {clients} client(s), {args.requests} requests")
            res[kind].append(ttft_level(base_url, getattr(prompts, kind)[clients], clients,
                                        args.max_tokens))
    if "stall" in args.parts:
        log(f"  stall test: {args.streams} long streams, then a ~2,000-token arrival")
        res["stall"] = stall_test(base_url, prompts, args)
    return res


def token_flush(base_url: str) -> dict | None:
    """llmq's llmq_token_flush_seconds over the whole run (every streamed token: sampling ->
    written to the socket): the count and the bucket bounds holding p50, p99 and the max."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    buckets = []
    for line in text.splitlines():
        if line.startswith("llmq_token_flush_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    def bound(q: float) -> float:
        return next(le for le, n in buckets if n >= q * total)
    below = lambda le: next(n for b, n in buckets if b == le)
    return {"count": int(total), "p50_le_s": bound(0.5), "p99_le_s": bound(0.99),
            "max_le_s": bound(1.0), "share_within_1ms": below(0.001) / total}


def tokenize_count(base_url: str, text: str) -> int | None:
    """llama-server's token count of `text` (no template, no BOS)."""
    try:
        r = httpx.post(base_url + "/tokenize", json={"content": text}, timeout=30)
        return len(r.json()["tokens"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Report


def level(e: dict | None, kind: str, clients: int) -> dict | None:
    return next((x for x in e[kind] if x["clients"] == clients), None) if e else None


def get(d: dict | None, *keys):
    for k in keys:
        if d is None:
            return None
        d = d.get(k)
    return d


def check(label: str, value: float | None, limit: float) -> str:
    if value is None:
        return f"  n/a   {label}: not measured"
    return f"  {'PASS' if value <= limit else 'MISS'}  {label}: {value:.2f} (goal <= {limit:g})"


def report(res: dict) -> str:
    cfg = res["config"]
    lq, ls = res["engines"].get("llmq"), res["engines"].get("llama-server")
    out = [f"model {Path(cfg['model']).name}, threads {cfg['threads']}, slots {cfg['slots']}, "
           f"ctx/slot {cfg['ctx_size']}, {cfg['requests']} requests per level, "
           f"max_tokens {cfg['max_tokens']}"]
    if res.get("tokenized"):
        t = res["tokenized"]
        out.append(f"llama-server /tokenize: shared system text {t['shared_system']} tokens, "
                   f"arrival prompt {t['arrival']} tokens (without the chat template)")
    out += ["", f"  {'':<40} {'llmq':>10} {'llama-server':>13} {'ratio':>7}"]

    def row(label: str, a, b, nd=0, with_ratio=True):
        r = fmt(ratio(a, b), 2) if with_ratio else ""
        out.append(f"  {label:<40} {fmt(a, nd):>10} {fmt(b, nd):>13} {r:>7}")

    for kind in ("cold", "shared"):
        for c in cfg["levels"]:
            a, b = level(lq, kind, c), level(ls, kind, c)
            n = f"{kind}, {c} client{'s' if c > 1 else ''}"
            row(f"TTFT p50 ms, {n}", get(a, "ttft_ms_p50"), get(b, "ttft_ms_p50"))
            row(f"TTFT p95 ms, {n}", get(a, "ttft_ms_p95"), get(b, "ttft_ms_p95"))
            errs = sum(len(x["errors"]) for x in (a, b) if x)
            if errs:
                out.append(f"    ({errs} failed requests, see the JSON)")
    c1 = cfg["levels"][0]
    for kind in ("cold", "shared"):
        row(f"prompt tokens p50, {kind} (usage)", get(level(lq, kind, c1), "prompt_tokens_p50"),
            get(level(ls, kind, c1), "prompt_tokens_p50"), with_ratio=False)
        row(f"cached tokens p50, {kind} (usage)", get(level(lq, kind, c1), "cached_tokens_p50"),
            get(level(ls, kind, c1), "cached_tokens_p50"), with_ratio=False)
    for c in cfg["levels"]:
        row(f"shared / cold TTFT p50, {c} client{'s' if c > 1 else ''}",
            *(ratio(get(level(e, "shared", c), "ttft_ms_p50"),
                    get(level(e, "cold", c), "ttft_ms_p50")) for e in (lq, ls)),
            nd=2, with_ratio=False)

    out.append(f"  stall test: {cfg['streams']} streams, ~2,000-token arrival")
    sa, sb = get(lq, "stall"), get(ls, "stall")
    row("  inter-token p95 ms, idle", get(sa, "idle", "p95_ms"), get(sb, "idle", "p95_ms"), 1)
    row("  inter-token p95 ms, during arrival", get(sa, "arrival", "p95_ms"),
        get(sb, "arrival", "p95_ms"), 1)
    row("  max gap ms, idle", get(sa, "idle", "max_ms"), get(sb, "idle", "max_ms"))
    row("  max gap ms, during arrival", get(sa, "arrival", "max_ms"), get(sb, "arrival", "max_ms"))
    row("  arrival p95 / idle p95", get(sa, "p95_ratio"), get(sb, "p95_ratio"), 2, with_ratio=False)
    row("  arrival TTFT ms", get(sa, "arrival_sample", "ttft_ms"),
        get(sb, "arrival_sample", "ttft_ms"))
    row("  arrival prompt tokens (usage)", get(sa, "arrival_sample", "prompt_tokens"),
        get(sb, "arrival_sample", "prompt_tokens"), with_ratio=False)
    for name, s in (("llmq", sa), ("llama-server", sb)):
        if s and not (s["idle"]["streams_ran_through"] and s["arrival"]["streams_ran_through"]):
            out.append(f"    ({name}: a long stream ended inside a window; see the JSON)")

    flush = get(lq, "token_flush")
    if flush:
        ms = lambda v: "inf" if v == float("inf") else f"{v * 1000:g}"
        out.append(f"  llmq token flush (sampled -> written to the socket), {flush['count']} tokens: "
                   f"p50 <= {ms(flush['p50_le_s'])} ms, p99 <= {ms(flush['p99_le_s'])} ms, "
                   f"max <= {ms(flush['max_le_s'])} ms, {flush['share_within_1ms']:.1%} within 1 ms")

    cold1 = lambda e: get(level(e, "cold", c1), "ttft_ms_p50")
    out += ["", "done when:",
            check(f"(i)   llmq cold TTFT p50 / llama-server's, {c1} client", ratio(cold1(lq), cold1(ls)), 1)]
    for c in cfg["levels"]:
        out.append(check(f"(ii)  llmq shared / cold TTFT p50, {c} client{'s' if c > 1 else ''}"
                         + ("" if c == c1 else " (for information)"),
                         ratio(get(level(lq, "shared", c), "ttft_ms_p50"),
                               get(level(lq, "cold", c), "ttft_ms_p50")), 0.3))
    out.append(check("(iii) llmq inter-token p95 during the arrival / idle", get(sa, "p95_ratio"), 3))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_args(p, ctx_size=4096)
    p.add_argument("--requests", type=int, default=None,
                   help="requests per TTFT level (default: 16, --quick: 4)")
    p.add_argument("--levels", default="1,8", help="closed-loop client counts (default: 1,8)")
    p.add_argument("--max-tokens", type=int, default=16, help="tokens per TTFT request (default: 16)")
    p.add_argument("--streams", type=int, default=3, help="long streams in the stall test (default: 3)")
    p.add_argument("--stream-tokens", type=int, default=1000,
                   help="max_tokens of each long stream; they are cancelled after the arrival "
                        "(default: 1000)")
    p.add_argument("--idle-seconds", type=float, default=None,
                   help="idle window of the stall test (default: 5, --quick: 2)")
    p.add_argument("--seed", type=int, default=1, help="seed of the prompts (default: 1)")
    p.add_argument("--parts", default="cold,shared,stall",
                   help="which parts to run, comma-separated (default: cold,shared,stall)")
    p.add_argument("--quick", action="store_true", help="smoke run: fewer requests, shorter windows")
    a = p.parse_args(argv)
    a.parts = [x.strip() for x in a.parts.split(",") if x.strip()]
    if not a.parts or set(a.parts) - {"cold", "shared", "stall"}:
        p.error("--parts takes cold, shared and stall")
    a.requests = a.requests or (4 if a.quick else 16)
    a.idle_seconds = a.idle_seconds or (2.0 if a.quick else 5.0)
    a.levels = [int(x) for x in a.levels.split(",") if x]
    parse_engines(p, a)
    if a.streams >= a.slots:
        p.error("--streams must leave a slot free for the arrival request")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    prefix = find_inputs(args, need_llama="llama-server" in args.engines)
    res, stamp = new_run(args, prefix)
    log_dir = args.out / "logs" / f"ttft-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    res["log_dir"] = str(log_dir)
    prompts = Prompts(args.seed, args.levels, args.requests, args.streams)

    for engine in args.engines:
        srv = engine_server(engine, args, prefix, log_dir, queue_max=max(64, 2 * max(args.levels)))
        with srv:
            log(f"benchmarking {engine}")
            if engine == "llama-server":
                res["tokenized"] = {
                    "shared_system": tokenize_count(srv.base_url, prompts.shared_system),
                    "arrival": tokenize_count(srv.base_url, prompts.arrival[0]["content"])}
            r = bench_server(srv.base_url, prompts, args)
            r["argv"] = srv.argv
            if engine == "llmq":
                r["token_flush"] = token_flush(srv.base_url)
            res["engines"][engine] = r

    finish(res, args.out / f"ttft-{stamp}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
