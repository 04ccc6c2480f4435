"""Part 5 of bench/scale_out.py: a simulated M/G/c queue fed with part 1's measured service
times. It projects; it measures nothing."""

from __future__ import annotations

import heapq
import math
import random
import statistics

from run import log, percentile
from so_load import fmt
from so_procs import ABORT


# --------------------------------------------------------------------------------------------
# Part 5: SIMULATION (not a measurement): M/G/c from part 1's measured service times


def simulate_mgc(rate: float, servers: int, service_s: list[float], n: int, seed: int,
                 warm_frac: float = 0.1) -> dict:
    """FCFS M/G/c: Poisson arrivals at `rate`/s, `servers` servers sharing one queue, service
    times drawn (with replacement) from `service_s`. The same seed gives the same arrivals and
    service times whatever `servers` is (common random numbers), so p95 falls monotonically
    as servers are added. The first `warm_frac` of the arrivals are not counted."""
    rng = random.Random(seed)
    free = [0.0] * servers  # when each server is next free (a heap)
    t = 0.0
    soj, waits = [], []
    skip = int(n * warm_frac)
    for j in range(n):
        t += rng.expovariate(rate)
        s = service_s[rng.randrange(len(service_s))]
        f = heapq.heappop(free)
        start = t if f < t else f
        heapq.heappush(free, start + s)
        if j >= skip:
            soj.append(start + s - t)
            waits.append(start - t)
    return {"servers": servers, "p50_ms": 1000 * percentile(soj, 50),
            "p95_ms": 1000 * percentile(soj, 95), "p99_ms": 1000 * percentile(soj, 99),
            "mean_wait_ms": 1000 * statistics.fmean(waits),
            "waited_fraction": sum(1 for w in waits if w > 0) / len(waits)}


def search_workers(lam: float, c_w: int, service_s: list[float], target: float | None,
                   args) -> dict:
    """The simulated p95 against the number of workers (c_w servers each), and the fewest
    workers whose p95 is at most `target` (None when no number of workers gets there: the p95
    of the service time alone is at or above the target)."""
    mean_s = statistics.fmean(service_s)
    w_stable = math.floor(lam * mean_s / c_w) + 1     # fewest with utilisation < 1
    floor_p95 = 1000 * percentile(service_s, 95)      # p95 with no wait at all
    sims: dict[int, dict] = {}

    def sim(w: int) -> dict:
        if w not in sims:
            if ABORT.is_set():
                raise KeyboardInterrupt
            sims[w] = {"workers": w, "utilization": lam * mean_s / (w * c_w),
                       **simulate_mgc(lam, w * c_w, service_s, args.sim_arrivals, args.sim_seed)}
        return sims[w]

    needed = None
    feasible = target is not None and floor_p95 < target
    if feasible:
        lo, hi, step = w_stable - 1, w_stable, 1       # p95 at lo is over the target (or unstable)
        while sim(hi)["p95_ms"] > target:
            lo, hi, step = hi, hi + step, step * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if sim(mid)["p95_ms"] > target:
                lo = mid
            else:
                hi = mid
        needed = hi
    top = max(needed or 0, w_stable) + max(3, w_stable // 10)
    for w in {w_stable, w_stable + 1, w_stable + 2, top,
              *range(w_stable, top + 1, max(1, (top - w_stable) // 8))}:
        sim(w)
    return {"servers_per_worker": c_w, "service_mean_ms": 1000 * mean_s,
            "service_p95_ms": floor_p95, "service_n": len(service_s),
            "workers_stable_min": w_stable, "workers_needed": needed, "feasible": feasible,
            "curve": [sims[w] for w in sorted(sims)]}


def part5(args, p1: dict) -> dict:
    """SIMULATION. Two ways a worker could run, each with service times measured in part 1:
    `batched` (its slots kept busy, as under part 1's load: the scenario the brief asks for) and
    `one at a time` (one request per worker, served as fast as a request alone)."""
    service_b = [x / 1000 for r in p1["runs"] if r["workers"] == 1 for x in r["service_ms"] if x]
    service_1 = [r["service_ms"] / 1000 for r in p1["baseline"]["samples"] if r["service_ms"]]
    mean_b = statistics.fmean(service_b)
    mu_w = p1["w1"]["requests_per_s"]                   # per-worker throughput, measured
    conc = mu_w * mean_b                                # Little: slots busy on average
    c_w = max(1, round(conc))
    lam8 = p1[f"w{args.sim_base}"]["requests_per_s"]    # the 8 clients' arrival rate, measured
    lam = args.sim_factor * lam8
    single_ms = p1["baseline"]["latency_ms_median"]
    target = args.sim_target_ms or (2 * single_ms if single_ms else None)
    log(f"  batched: {c_w} servers per worker, {len(service_b)} service times")
    batched = search_workers(lam, c_w, service_b, target, args)
    log(f"  one at a time: 1 server per worker, {len(service_1)} service times")
    single = search_workers(lam, 1, service_1, target, args) if service_1 else None
    assumptions = [
        f"SIMULATION, not a measurement: a discrete-event FCFS M/G/c queue ({args.sim_arrivals} "
        f"Poisson arrivals per point, the first 10 % not counted, seed {args.sim_seed})",
        f"arrival rate = {args.sim_factor:g} x the measured rate of part 1's {args.clients} "
        f"closed-loop clients with {args.sim_base} worker(s): {args.sim_factor:g} x {lam8:.3f} = "
        f"{lam:.1f} requests/s",
        "service time = a request's measured latency (client: sent -> done) minus its queue wait "
        "(started.queue_ms); drawn at random from the measured ones; independent of the load",
        f"batched (the main projection): servers per worker = measured concurrency = per-worker "
        f"throughput x mean service time (Little) = {mu_w:.3f}/s x {mean_b:.3f} s = {conc:.2f} "
        f"-> c = workers x {c_w} (--slots {args.p1_slots}); service times of the "
        f"{len(service_b)} requests of the 1-worker run (every slot busy: service at full batch), "
        f"mean {batched['service_mean_ms']:.0f} ms, p95 {batched['service_p95_ms']:.0f} ms",
        f"one at a time (for comparison): c = workers x 1, service times of the "
        f"{len(service_1)} single requests alone on an idle worker"
        + (f", mean {single['service_mean_ms']:.0f} ms" if single else "")
        + " (a worker given one request at a time: more workers, each faster)",
        "one FCFS queue for all workers (a free slot takes the oldest job, as JetStream's pull "
        "consumers do); gateway, NATS, network and clients are never the bottleneck (in part 1 "
        "they shared the same 2 cores); no failures, no redelivery, one model (no swaps)",
        f"target p95 = {'--sim-target-ms' if args.sim_target_ms else '2 x the measured single-request latency'}"
        f" = {fmt(target, 0)} ms (one request alone on one worker: {fmt(single_ms, 0)} ms)",
        f"fewest workers for a stable queue (utilisation < 1), batched: {batched['workers_stable_min']}"
        f" (by the measured per-worker throughput {mu_w:.3f}/s: {math.floor(lam / mu_w) + 1})",
    ]
    return {"label": "SIMULATION (not a measurement)", "assumptions": assumptions,
            "arrival_rate_rps": lam, "base_rate_rps": lam8, "factor": args.sim_factor,
            "target_p95_ms": target, "single_request_ms": single_ms,
            "measured_concurrency": conc, "per_worker_throughput_rps": mu_w,
            "scenarios": {"batched": batched, "one at a time": single},
            "service_ms_batched": [1000 * x for x in service_b],
            "service_ms_one_at_a_time": [1000 * x for x in service_1]}


def report5(p: dict, args) -> str:
    L = ["Part 5: *** SIMULATION, NOT A MEASUREMENT *** (M/G/c projection from part 1)",
         "  assumptions:"]
    L += [f"  - {a}" for a in p["assumptions"]]
    for name, sc in p["scenarios"].items():
        if sc is None:
            continue
        L.append(f"  {name}: {sc['servers_per_worker']} server(s) per worker, service mean "
                 f"{sc['service_mean_ms']:.0f} ms, p95 {sc['service_p95_ms']:.0f} ms "
                 f"(n={sc['service_n']})")
        L.append(f"    {'workers':>7} {'servers':>7} {'util':>6} {'p50 ms':>8} {'p95 ms':>8} "
                 f"{'p99 ms':>8} {'waited':>7}")
        for r in sc["curve"]:
            mark = "  <- fewest under the target" if r["workers"] == sc["workers_needed"] else ""
            L.append(f"    {r['workers']:>7} {r['servers']:>7} {r['utilization']:>6.2f} "
                     f"{r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} {r['p99_ms']:>8.0f} "
                     f"{100 * r['waited_fraction']:>6.1f}%{mark}")
        if sc["workers_needed"]:
            L.append(f"    SIMULATED ({name}): {sc['workers_needed']} workers keep p95 under "
                     f"{p['target_p95_ms']:.0f} ms at {p['arrival_rate_rps']:.1f} requests/s "
                     f"({p['factor']:g} x part 1's load); {sc['workers_stable_min']} is the fewest "
                     f"for a stable queue")
        else:
            L.append(f"    SIMULATED ({name}): no number of workers keeps p95 under "
                     f"{fmt(p['target_p95_ms'], 0)} ms: the service time's own p95 "
                     f"({sc['service_p95_ms']:.0f} ms) is at or above it")
    return "\n".join(L)
