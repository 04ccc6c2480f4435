"""Parts 1 to 4 of bench/scale_out.py (throughput, gateway overhead, cold/warm/swap TTFT,
redelivery after SIGKILL): each part's runner returns the dict stored in the results JSON, and
its report function turns that dict into the printed table."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from clients import now
from run import counting_prompt, log, median
from so_load import Rec, body, closed_loop, fmt, one, pctl, send
from so_procs import ABORT, System, metric, wait_for


# --------------------------------------------------------------------------------------------
# Part 1: throughput, 1 worker vs 2 workers


def part1(args, log_dir: Path) -> dict:
    wargs = ["--threads", str(args.p1_threads), "--slots", str(args.p1_slots)]
    out: dict[str, Any] = {"worker_flags": wargs, "runs": [], "baseline": None}
    with System("gateway", args, log_dir, "p1") as s:
        s.start_gateway("--queue-max", str(max(64, 4 * args.clients)))
        s.start_worker(*wargs)
        # Single-request latency on one idle worker: the reference of part 5's target.
        log(f"part 1: {args.baseline_requests} single requests, one at a time (baseline)")
        # Prompts: request n of a closed-loop run gets counting_prompt(n * stride + its offset),
        # the baseline's the last offset: the same range of numbers (so prompts of the same
        # length) everywhere, no prompt twice.
        stride = 2 * args.rounds + 1
        one(s.base_url, body(counting_prompt(stride * 10_000), 8, seed=1), "warm-up", -1)
        base = [one(s.base_url, body(counting_prompt(j * stride + stride - 1), args.max_tokens,
                                     seed=1000 + j * stride + stride - 1), "baseline", j)
                for j in range(args.baseline_requests)]
        out["baseline"] = {
            "latency_ms_median": median([r.latency_ms for r in base]),
            "ttft_ms_median": median([r.ttft_ms for r in base]),
            "decode_tps_median": median([(r.timings or {}).get("decode_tokens_per_s") for r in base]),
            "errors": [r.error for r in base if not r.ok],
            "samples": [r.row() for r in base]}
        for rnd in range(args.rounds):
            for n_workers in (1, 2):
                while len([w for w in s.workers if w.alive()]) > n_workers:
                    next(w for w in reversed(s.workers) if w.alive()).stop()
                while len([w for w in s.workers if w.alive()]) < n_workers:
                    s.start_worker(*wargs)
                label = f"{n_workers} worker{'s' if n_workers > 1 else ''}"
                log(f"part 1, round {rnd + 1}/{args.rounds}: {label}, {args.clients} clients, "
                    f"{args.warmup:.0f} s warm-up + {args.duration:.0f} s measured")
                live = [p for p in s.procs() if p.alive()]
                r = closed_loop(s.base_url, args, stride, 2 * rnd + n_workers - 1, label, live)
                r.update(round=rnd + 1, workers=n_workers)
                out["runs"].append(r)
                log(f"  {r['requests_per_s']:.2f} req/s, {r['tokens_per_s']:.1f} tok/s, "
                    f"p95 {fmt(r['latency_ms_p95'], 0)} ms, errors {len(r['errors'])}")
        out["processes"] = [p.describe() for p in s.procs()]
    for n in (1, 2):
        runs = [r for r in out["runs"] if r["workers"] == n]
        dur = sum(r["duration_s"] for r in runs)
        out[f"w{n}"] = {
            "requests_per_s": sum(r["requests_per_s"] * r["duration_s"] for r in runs) / dur,
            "tokens_per_s": sum(r["tokens_per_s"] * r["duration_s"] for r in runs) / dur,
            "latency_ms_p95": median([r["latency_ms_p95"] for r in runs]),
            "latency_ms_p50": median([r["latency_ms_p50"] for r in runs]),
        }
    out["ratio_requests"] = ratio(out["w2"]["requests_per_s"], out["w1"]["requests_per_s"])
    out["ratio_tokens"] = ratio(out["w2"]["tokens_per_s"], out["w1"]["tokens_per_s"])
    return out


def ratio(a, b):
    return a / b if a is not None and b else None


def report1(p: dict, args) -> str:
    L = [f"Part 1: throughput, gateway + N workers ({' '.join(p['worker_flags'])} each), "
         f"{args.clients} closed-loop clients, max_tokens {args.max_tokens}, "
         f"{args.duration:.0f} s measured per run after {args.warmup:.0f} s warm-up"]
    b = p["baseline"]
    L.append(f"  one request alone on 1 worker (median of {len(b['samples'])}): latency "
             f"{fmt(b['latency_ms_median'], 0)} ms, TTFT {fmt(b['ttft_ms_median'], 0)} ms, "
             f"decode {fmt(b['decode_tps_median'])} tok/s")
    L.append(f"  {'run':<22} {'req/s':>7} {'tok/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
             f"{'TTFT p50':>9} {'done':>5} {'errors':>6}  requests per worker")
    for r in p["runs"]:
        L.append(f"  {'round ' + str(r['round']) + ', ' + r['label']:<22} "
                 f"{r['requests_per_s']:>7.2f} {r['tokens_per_s']:>8.1f} "
                 f"{fmt(r['latency_ms_p50'], 0):>8} {fmt(r['latency_ms_p95'], 0):>8} "
                 f"{fmt(r['ttft_ms_p50'], 0):>9} {r['completed_in_window']:>5} "
                 f"{len(r['errors']):>6}  {sorted(r['per_worker_requests'].values(), reverse=True)}")
    for r in p["runs"]:
        cpu = ", ".join(f"{k.split('-', 1)[-1]} {v}%" for k, v in r["cpu_percent_of_one_core"].items())
        L.append(f"  CPU during the window ({r['label']}, % of one core): {cpu}")
        other = r["cpu_percent_of_one_core"].get("other processes")
        if other is not None and other > 10:
            L.append(f"  WARNING: other processes took {other}% of a core during this window: "
                     f"the machine was not idle, the figures are not clean")
    rr, rt = p["ratio_requests"], p["ratio_tokens"]
    L.append(f"  2 workers / 1 worker: requests/s {fmt(rr, 2)}, tokens/s {fmt(rt, 2)}; "
             f"p95 {fmt(p['w1']['latency_ms_p95'], 0)} -> {fmt(p['w2']['latency_ms_p95'], 0)} ms")
    L.append(f"  {'PASS' if rr is not None and rr >= 1.8 else 'MISS'}  throughput ratio "
             f"(requests/s) {fmt(rr, 2)} (goal >= 1.8)")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Part 2: gateway + JetStream + worker vs llmq serve, sequential single requests, alternated


def part2(args, log_dir: Path) -> dict:
    flags = ["--threads", str(args.p2_threads), "--slots", str(args.p2_slots)]
    res: dict[str, Any] = {"flags": flags, "samples": {"gateway": [], "serve": []}}
    with System("gateway", args, log_dir, "p2gw") as gw, System("serve", args, log_dir, "p2sv") as sv:
        gw.start_gateway()
        gw.start_worker(*flags)
        sv.start_serve(*flags)
        urls = {"gateway": gw.base_url, "serve": sv.base_url}
        for name, url in urls.items():  # warm-up, not measured
            for j in range(2):
                one(url, body(counting_prompt(10_000 + j), args.max_tokens, seed=j), "warm-up", j)
        log(f"part 2: {args.requests} requests per system, alternated (AB BA ...), one at a time, "
            f"{args.gap_ms} ms apart")
        for i in range(args.requests):
            order = ("gateway", "serve") if i % 2 == 0 else ("serve", "gateway")
            k = i  # the same short prompt and seed to both systems; new to each
            for name in order:
                if ABORT.is_set():
                    raise KeyboardInterrupt
                time.sleep(args.gap_ms / 1000)
                res["samples"][name].append(
                    one(urls[name], body(counting_prompt(k), args.max_tokens, seed=k), name, k).row())
        res["processes"] = [p.describe() for p in (*gw.procs(), *sv.procs())]
    for name in ("gateway", "serve"):
        ok = [r for r in res["samples"][name] if r["ok"]]
        res[name] = {
            "n": len(ok), "errors": [r["error"] for r in res["samples"][name] if not r["ok"]],
            "ttft_ms_client_p50": pctl([r["ttft_ms"] for r in ok], 50),
            "ttft_ms_client_p95": pctl([r["ttft_ms"] for r in ok], 95),
            "ttft_ms_server_p50": pctl([r["timings"]["ttft_ms"] for r in ok], 50),
            "decode_tps_median": median([r["timings"]["decode_tokens_per_s"] for r in ok]),
            "latency_ms_p50": pctl([r["latency_ms"] for r in ok], 50),
            "completion_tokens_p50": pctl([r["completion_tokens"] for r in ok], 50),
            "prompt_tokens_p50": pctl([r["prompt_tokens"] for r in ok], 50),
            "cached_tokens_p50": pctl([r["cached_tokens"] for r in ok], 50),
        }
    g, s = res["gateway"], res["serve"]
    res["ttft_p50_delta_ms"] = _sub(g["ttft_ms_client_p50"], s["ttft_ms_client_p50"])
    res["ttft_server_p50_delta_ms"] = _sub(g["ttft_ms_server_p50"], s["ttft_ms_server_p50"])
    # Paired: the same prompt on both, sent one after the other.
    pairs = [(a, b) for a, b in zip(res["samples"]["gateway"], res["samples"]["serve"])
             if a["ok"] and b["ok"]]
    res["ttft_paired_delta_ms_median"] = median([a["ttft_ms"] - b["ttft_ms"] for a, b in pairs])
    gd, sd = g["decode_tps_median"], s["decode_tps_median"]
    res["decode_tps_rel_delta"] = (gd - sd) / sd if gd is not None and sd else None
    return res


def _sub(a, b):
    return a - b if a is not None and b is not None else None


def report2(p: dict, args) -> str:
    g, s = p["gateway"], p["serve"]
    L = [f"Part 2: overhead, gateway + JetStream + 1 worker vs llmq serve ({' '.join(p['flags'])} "
         f"both), {args.requests} sequential requests each, alternated, max_tokens {args.max_tokens}"]
    L.append(f"  {'':<34} {'gateway':>9} {'serve':>9} {'delta':>9}")
    rows = [("TTFT p50 ms (client: sent -> 1st token)", "ttft_ms_client_p50", 1),
            ("TTFT p95 ms (client)", "ttft_ms_client_p95", 1),
            ("TTFT p50 ms (done.timings.ttft_ms)", "ttft_ms_server_p50", 1),
            ("decode tok/s (done.timings, median)", "decode_tps_median", 1),
            ("request ms p50 (client)", "latency_ms_p50", 1),
            ("completion tokens p50", "completion_tokens_p50", 0),
            ("prompt / cached tokens p50", None, 0)]
    for label, key, nd in rows:
        if key is None:
            L.append(f"  {label:<34} {fmt(g['prompt_tokens_p50'], 0) + '/' + fmt(g['cached_tokens_p50'], 0):>9} "
                     f"{fmt(s['prompt_tokens_p50'], 0) + '/' + fmt(s['cached_tokens_p50'], 0):>9}")
            continue
        L.append(f"  {label[:34]:<34} {fmt(g[key], nd):>9} {fmt(s[key], nd):>9} "
                 f"{fmt(_sub(g[key], s[key]), nd):>9}")
    if g["errors"] or s["errors"]:
        L.append(f"  errors: gateway {g['errors'][:3]}, serve {s['errors'][:3]}")
    d, rel = p["ttft_p50_delta_ms"], p["decode_tps_rel_delta"]
    L.append(f"  paired TTFT delta (same prompt, back to back), median: "
             f"{fmt(p['ttft_paired_delta_ms_median'])} ms")
    L.append(f"  {'PASS' if d is not None and d <= 5 else 'MISS'}  TTFT p50 delta (client) "
             f"{fmt(d)} ms (goal <= 5 ms)")
    L.append(f"  {'PASS' if rel is not None and rel >= -0.03 else 'MISS'}  decode tok/s delta "
             f"{fmt(None if rel is None else 100 * rel, 2)} % (goal: no more than 3 % slower)")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Part 3: cold, warm and swap TTFT of both models with --max-loaded 1


def part3(args, log_dir: Path) -> dict:
    gemma, smol = args.gemma.stem, args.model.stem
    flags = ["--threads", str(args.p3_threads), "--slots", str(args.p3_slots)]
    pool = ["--models", str(args.gemma), "--max-loaded", "1"]
    res: dict[str, Any] = {"flags": flags + pool, "paths": {}}
    counter = [20_000]

    def ask(url: str, model: str, step: str) -> dict:
        counter[0] += 1
        k = counter[0]
        r = one(url, body(counting_prompt(k), args.p3_max_tokens, seed=k, model=model,
                          keep_alive=-1), step, k)
        row = r.row()
        row.update(model=model, step=step,
                   loading_ms=None if not r.loading else (r.loading[0] - r.sent) * 1000,
                   had_loading=bool(r.loading))
        log(f"  {step:<14} {model:<32} TTFT {fmt(r.ttft_ms, 0)} ms"
            f"{' (loading)' if r.loading else ''}{' ERROR ' + r.error if not r.ok else ''}")
        return row

    def sequence(url: str) -> list[dict]:
        steps = [ask(url, gemma, "cold")]
        steps += [ask(url, gemma, "warm") for _ in range(args.warm_reps)]
        steps.append(ask(url, smol, "swap"))            # evicts gemma, reloads SmolLM2
        steps += [ask(url, smol, "warm") for _ in range(args.warm_reps)]
        steps.append(ask(url, gemma, "swap"))           # evicts SmolLM2, reloads gemma
        return steps

    preload_gemma = ["--preload", gemma]
    for path in ("gateway", "serve"):
        log(f"part 3: {path}, {' '.join(flags + pool)}")
        with System(path, args, log_dir, f"p3{path[:2]}") as s:
            if path == "gateway":
                s.start_gateway("--models", str(args.gemma))
                w = s.start_worker(*flags, *pool)
                steps = sequence(s.base_url)
                ready = [w.ready_s]
                # SmolLM2 cold: a fresh worker that preloaded gemma instead.
                w.stop()
                w2 = s.start_worker(*flags, *pool, *preload_gemma)
                steps.append(ask(s.base_url, smol, "cold"))
                ready.append(w2.ready_s)
            else:
                sv = s.start_serve(*flags, *pool)
                steps = sequence(s.base_url)
                ready = [sv.ready_s]
                sv.stop()
                sv2 = s.start_serve(*flags, *pool, *preload_gemma)
                steps.append(ask(s.base_url, smol, "cold"))
                ready.append(sv2.ready_s)
            res["paths"][path] = {"steps": steps, "ready_s": ready,
                                  "processes": [p.describe() for p in s.procs()]}
    res["table"] = table3(res, args)
    return res


def table3(res: dict, args) -> list[dict]:
    rows = []
    for model in (args.gemma.stem, args.model.stem):
        for path, d in res["paths"].items():
            st = [x for x in d["steps"] if x["model"] == model]
            by = lambda step: [x for x in st if x["step"] == step]  # noqa: E731
            cold, swap, warm = by("cold"), by("swap"), by("warm")
            rows.append({
                "model": model, "path": path,
                "cold_ttft_ms": cold[0]["ttft_ms"] if cold else None,
                "warm_ttft_ms": median([x["ttft_ms"] for x in warm]),
                "swap_ttft_ms": swap[0]["ttft_ms"] if swap else None,
                "cold_loading": cold[0]["had_loading"] if cold else None,
                "swap_loading": swap[0]["had_loading"] if swap else None,
                "warm_loading": any(x["had_loading"] for x in warm),
                "errors": [x["error"] for x in st if not x["ok"]],
            })
    return rows


def report3(p: dict, args) -> str:
    L = [f"Part 3: TTFT (client: sent -> first token) with {' '.join(p['flags'])}; "
         f"warm = median of {args.warm_reps}; max_tokens {args.p3_max_tokens}",
         "", "| model | path | cold TTFT ms | warm TTFT ms | swap TTFT ms |", "|---|---|---|---|---|"]
    for r in p["table"]:
        flag = lambda ok: "" if ok else " (no `loading`!)"  # noqa: E731
        warm_flag = " (`loading`!)" if r["warm_loading"] else ""
        L.append(f"| {r['model']} | {'gateway + worker' if r['path'] == 'gateway' else 'serve'} | "
                 f"{fmt(r['cold_ttft_ms'], 0)}{flag(r['cold_loading'])} | "
                 f"{fmt(r['warm_ttft_ms'], 0)}{warm_flag} | "
                 f"{fmt(r['swap_ttft_ms'], 0)}{flag(r['swap_loading'])} |")
    L.append("")
    L.append("  cold: first load of the model in the process (the other model, idle, is evicted); "
             "swap: load again after it was evicted; gemma cold = first request after start "
             "(SmolLM2 preloaded), SmolLM2 cold = first request to a process started with "
             "--preload gemma")
    for path, d in p["paths"].items():
        L.append(f"  {path}: start -> ready {', '.join(fmt(x, 1) + ' s' for x in d['ready_s'])}")
    errs = [e for r in p["table"] for e in r["errors"]]
    if errs:
        L.append(f"  errors: {errs[:4]}")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Part 4: redelivery after SIGKILL


def part4(args, log_dir: Path) -> dict:
    ack = ["--ack-wait-ms", str(args.ack_wait_ms)]
    wflags = ["--threads", str(args.p1_threads), "--slots", str(args.p1_slots), *ack]
    res: dict[str, Any] = {"ack_wait_ms": args.ack_wait_ms, "worker_flags": wflags, "reps": []}
    with System("gateway", args, log_dir, "p4") as s:
        s.start_gateway(*ack, "--queue-max", "64")
        current = s.start_worker(*wflags)
        for rep in range(args.kill_reps):
            log(f"part 4, rep {rep + 1}/{args.kill_reps}: {args.kill_streams} streams of "
                f"max_tokens {args.kill_max_tokens} on {current.name} (pid {current.pid})")
            stop = threading.Event()
            recs = [Rec("kill", 30_000 + 100 * rep + j) for j in range(args.kill_streams)]

            def run(rec: Rec):
                with httpx.Client(timeout=600) as c:
                    send(c, s.base_url, body(counting_prompt(rec.i), args.kill_max_tokens,
                                             seed=rec.i), rec, stop)

            threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in recs]
            for t in threads:
                t.start()
            wait_for(lambda: all(r.pieces >= 3 or r.end is not None for r in recs), 120,
                     "every stream's first tokens")
            standby = s.start_worker(*wflags)
            time.sleep(0.5)
            victims = [r for r in recs if r.worker and r.worker.endswith(f"/{current.pid}")]
            pieces_at_kill = [r.pieces for r in recs]
            t_kill = now()
            current.kill()
            log(f"  SIGKILL {current.name} (pid {current.pid}); {len(victims)} of its streams "
                f"wait for attempt 2")
            timeout = 10 * args.ack_wait_ms / 1000 + 30
            wait_for(lambda: all(len(r.started) >= 2 or r.end is not None for r in victims),
                     timeout, "started attempt 2 on every stream", fail=False)
            delays = [(r.started[1]["t"] - t_kill) * 1000 for r in victims if len(r.started) >= 2]
            time.sleep(0.5)  # a few tokens of the rerun, to check their indices go on
            stop.set()
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
            rep_res = {
                "victim": current.describe(), "standby": standby.describe(),
                "victim_streams": len(victims), "restarted": len(delays),
                "delays_ms": delays,
                "min_ms": min(delays) if delays else None, "median_ms": median(delays),
                "max_ms": max(delays) if delays else None,
                "pieces_at_kill": pieces_at_kill,
                "attempt2_workers": [r.started[1]["worker"] for r in victims if len(r.started) >= 2],
                "token_indices_contiguous": all(r.index_ok for r in recs),
                "samples": [r.row() for r in recs],
            }
            res["reps"].append(rep_res)
            log(f"  attempt 2 after {', '.join(f'{d:.0f}' for d in delays)} ms"
                f"{'' if len(delays) == len(victims) else f' ({len(victims) - len(delays)} never restarted)'}")
            # The cancelled reruns leave the standby's slots; it is the next victim.
            wait_for(lambda: metric(standby.base_url, "llmq_slots_busy") == 0, 20,
                     "the standby's slots to empty", fail=False)
            current = standby
        res["processes"] = [p.describe() for p in s.procs()]
    alld = [d for r in res["reps"] for d in r["delays_ms"]]
    res["all_delays_ms"] = {"n": len(alld), "min": min(alld) if alld else None,
                            "median": median(alld), "max": max(alld) if alld else None}
    return res


def report4(p: dict, args) -> str:
    L = [f"Part 4: redelivery after SIGKILL, gateway and 2 workers with --ack-wait-ms "
         f"{p['ack_wait_ms']} (workers heartbeat every third of it), {args.kill_streams} streams "
         f"of max_tokens {args.kill_max_tokens}; time from the kill to `started` attempt 2"]
    L.append(f"  {'rep':>3} {'streams':>7} {'restarted':>9} {'min ms':>8} {'median':>8} "
             f"{'max ms':>8}  indices ok")
    for i, r in enumerate(p["reps"], 1):
        L.append(f"  {i:>3} {r['victim_streams']:>7} {r['restarted']:>9} {fmt(r['min_ms'], 0):>8} "
                 f"{fmt(r['median_ms'], 0):>8} {fmt(r['max_ms'], 0):>8}  "
                 f"{r['token_indices_contiguous']}")
    a = p["all_delays_ms"]
    L.append(f"  all {a['n']} restarts: min {fmt(a['min'], 0)} ms, median {fmt(a['median'], 0)} ms, "
             f"max {fmt(a['max'], 0)} ms (AckWait {p['ack_wait_ms']} ms)")
    return "\n".join(L)
