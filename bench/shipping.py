#!/usr/bin/env python3
"""What shipping documents to Elasticsearch costs llmq: single-stream decode tokens/s with
shipping off (documents only appended to the spool) and on (`--elastic-url` to a real local
node, `scripts/elasticsearch.sh`, templates installed), alternating the two modes for several
rounds so a drift of the machine hits both alike. The goal: on within 2 % of off.

    python bench/shipping.py                  # 3 rounds of 5 requests per mode
    python bench/shipping.py --rounds 5 --reps 8

The node runs on the same 2 cores as llmq (as on a laptop); in production it usually runs
elsewhere, which can only make shipping cheaper for llmq.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from run import (REPO, RESULTS_DIR, ServerProcess, default_llmq_bin, default_model, free_port,
                 log, median, single_stream)
from clients import llmq_request

ES_SCRIPT = REPO / "scripts" / "elasticsearch.sh"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=default_model())
    p.add_argument("--llmq-bin", type=Path, default=default_llmq_bin())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--reps", type=int, default=5, help="requests per mode and round (default: 5)")
    p.add_argument("--rounds", type=int, default=3, help="off/on rounds (default: 3)")
    p.add_argument("--snapshot-interval-ms", type=int, default=1000,
                   help="runtime snapshots while measuring (default: 1000, 10x serve's default)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    log_dir = args.out / "logs" / ("shipping-" + started.strftime("%Y%m%dT%H%M%SZ"))
    log_dir.mkdir(parents=True, exist_ok=True)
    es_port = free_port()
    es_data = Path(tempfile.mkdtemp(prefix="llmq-bench-es-", dir="/var/tmp"))
    es_args = ["--port", str(es_port), "--data", str(es_data)]
    work = Path(tempfile.mkdtemp(prefix="llmq-bench-spool-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMQ_")}
    samples: dict[str, list[float]] = {"off": [], "on": []}
    try:
        log("starting Elasticsearch")
        out = subprocess.run(["bash", str(ES_SCRIPT), "start", *es_args], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        es_url = out.split()[0]
        subprocess.run([str(args.llmq_bin), "elastic", "setup", "--elastic-url", es_url],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        for round_no in range(args.rounds):
            for mode in ("off", "on"):
                port = free_port()
                argv_ = [str(args.llmq_bin), "serve", "--model", str(args.model), "--port", str(port),
                         "--threads", str(args.threads), "--slots", "4", "--ctx-size", "1024",
                         "--spool-dir", str(work / f"spool-{mode}-{round_no}"),
                         "--snapshot-interval-ms", str(args.snapshot_interval_ms)]
                if mode == "on":
                    argv_ += ["--elastic-url", es_url, "--elastic-namespace", "bench"]
                with ServerProcess(f"llmq-{mode}-{round_no}", argv_, port, "/readyz", log_dir, env) as srv:
                    log(f"round {round_no + 1}/{args.rounds}, shipping {mode}")
                    r = single_stream(llmq_request, srv.base_url, args.reps, args.max_tokens)
                    samples[mode] += [s["decode_tps_server"] for s in r["samples"] if s["ok"]]
    finally:
        subprocess.run(["bash", str(ES_SCRIPT), "stop", *es_args], stdout=subprocess.DEVNULL)
        shutil.rmtree(es_data, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    off, on = median(samples["off"]), median(samples["on"])
    res = {"started_utc": started.isoformat(), "config": {k: str(v) for k, v in vars(args).items()},
           "decode_tps_server": samples, "median_off": off, "median_on": on,
           "ratio_on_off": on / off if off else None}
    path = args.out / f"shipping-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(res, indent=2))
    print(f"single-stream decode tok/s (server), median of {len(samples['off'])} requests per mode, "
          f"{args.max_tokens} tokens")
    print(f"  shipping off {off:.1f}   on {on:.1f}   on/off {on / off:.3f}   (goal >= 0.98)")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
