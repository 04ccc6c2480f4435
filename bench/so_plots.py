"""PNG plots of a bench/scale_out.py results dict (--plots DIR), one per part run."""

from __future__ import annotations

from pathlib import Path

from run import log
from so_load import fmt


# --------------------------------------------------------------------------------------------
# Plots


def plots(res: dict, out_dir: Path) -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        log("matplotlib not installed (pip install -r bench/requirements.txt): no plots")
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    parts = res["parts"]

    def save(fig, name):
        fig.tight_layout()
        p = out_dir / name
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)

    if "1" in parts:
        p1 = parts["1"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        labels = ["1 worker", "2 workers"]
        rps = [p1["w1"]["requests_per_s"], p1["w2"]["requests_per_s"]]
        tps = [p1["w1"]["tokens_per_s"], p1["w2"]["tokens_per_s"]]
        a1.bar([0, 1], rps, color=["tab:blue", "tab:orange"])
        a1.set_xticks([0, 1], labels)
        a1.set_ylabel("requests/s (run inside the window)")
        a1.set_ylim(0, 1.3 * max(rps))
        for x, (r, t) in enumerate(zip(rps, tps)):
            a1.text(x, r, f"{r:.2f} req/s\n{t:.0f} tok/s", ha="center", va="bottom", fontsize=8)
        a1.set_title(f"throughput, {res['config']['clients']} clients "
                     f"(ratio {fmt(p1['ratio_requests'], 2)})")
        for r in p1["runs"]:
            a, b = r["window"]
            lat = sorted(x["latency_ms"] for x in r["samples"]
                         if x["latency_ms"] is not None and a <= x["sent"] < b)
            if lat:
                a2.plot([x / 1000 for x in lat], [(i + 1) / len(lat) for i in range(len(lat))],
                        label=f"{r['label']} (round {r['round']})")
        a2.axhline(0.95, color="grey", lw=0.5, ls="--")
        a2.set_xlabel("request latency (s)")
        a2.set_ylabel("fraction of requests")
        a2.set_title("latency CDF (requests sent in the window)")
        a2.legend(fontsize=8)
        save(fig, "scale-out-throughput.png")
    if "2" in parts:
        p2 = parts["2"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        for name, m in (("gateway", "o"), ("serve", "x")):
            s = [x for x in p2["samples"][name] if x["ok"]]
            a1.plot([x["i"] for x in s], [x["ttft_ms"] for x in s], m, ms=4,
                    label=f"{name} (client TTFT)")
            a2.plot([x["i"] for x in s], [x["timings"]["decode_tokens_per_s"] for x in s],
                    m, ms=4, label=name)
        a1.set_xlabel("request #")
        a1.set_ylabel("ms")
        a1.set_title(f"TTFT, p50 delta {fmt(p2['ttft_p50_delta_ms'])} ms")
        a1.legend(fontsize=8)
        a2.set_xlabel("request #")
        a2.set_ylabel("decode tok/s (done.timings)")
        rel = p2["decode_tps_rel_delta"]
        a2.set_title(f"decode speed, delta {fmt(None if rel is None else 100 * rel, 2)} %")
        a2.legend(fontsize=8)
        save(fig, "scale-out-overhead.png")
    if "3" in parts:
        rows = parts["3"]["table"]
        fig, ax = plt.subplots(figsize=(9, 4))
        kinds = [("cold_ttft_ms", "cold"), ("warm_ttft_ms", "warm"), ("swap_ttft_ms", "swap")]
        for j, (key, name) in enumerate(kinds):
            ax.bar([i + 0.27 * (j - 1) for i in range(len(rows))],
                   [r[key] or 0 for r in rows], width=0.27, label=name)
        ax.set_xticks(range(len(rows)), [f"{r['model'][:18]}\n{r['path']}" for r in rows], fontsize=8)
        ax.set_ylabel("TTFT ms (client)")
        ax.set_yscale("log")
        ax.set_title("cold / warm / swap TTFT, --max-loaded 1")
        ax.legend(fontsize=8)
        save(fig, "scale-out-cold-warm.png")
    if "4" in parts:
        p4 = parts["4"]
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, r in enumerate(p4["reps"], 1):
            ax.plot([i] * len(r["delays_ms"]), r["delays_ms"], "o", ms=5)
        ax.axhline(p4["ack_wait_ms"], color="grey", ls="--", lw=1, label="--ack-wait-ms")
        ax.set_xticks(range(1, len(p4["reps"]) + 1))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("repetition")
        ax.set_ylabel("SIGKILL -> started attempt 2 (ms)")
        ax.set_title("redelivery after a worker is killed")
        ax.legend(fontsize=8)
        save(fig, "scale-out-redelivery.png")
    if "5" in parts:
        p5 = parts["5"]
        fig, ax = plt.subplots(figsize=(8, 4))
        for name, sc in p5["scenarios"].items():
            if sc is None:
                continue
            c = sc["curve"]
            ax.plot([r["workers"] for r in c], [r["p95_ms"] for r in c], "o-", ms=4,
                    label=f"p95, {name} ({sc['servers_per_worker']}/worker)")
        if p5["target_p95_ms"]:
            ax.axhline(p5["target_p95_ms"], color="red", ls="--", lw=1, label="target p95")
        ax.set_yscale("log")
        ax.set_xlabel("workers")
        ax.set_ylabel("simulated latency p95 (ms)")
        ax.set_title(f"SIMULATION (M/G/c), not a measurement: {p5['arrival_rate_rps']:.0f} req/s "
                     f"= {p5['factor']:g} x part 1's load", fontsize=10)
        ax.legend(fontsize=8)
        save(fig, "scale-out-simulation.png")
    return paths
