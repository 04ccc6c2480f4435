"""Client side of bench/scale_out.py: one streamed request to POST /api/v1/req with every event
timed (Rec, send), the closed-loop load of part 1, and small number helpers."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field

import httpx

from clients import T_ORIGIN, iter_sse, new_client, now
from run import counting_prompt, percentile
from so_procs import ABORT, Proc, cpu_snapshot


# --------------------------------------------------------------------------------------------
# One request to POST /api/v1/req, streamed, every event timed on arrival (seconds on the
# monotonic clock since clients.T_ORIGIN). The events are those of tests/e2e/sse_client.py:
# queued, ping, loading, started {worker, queue_ms, attempt}, token {i, text}, done, error.


@dataclass
class Rec:
    label: str
    i: int
    ok: bool = False                  # ended with done
    error: str = ""
    cancelled: bool = False           # we closed the stream ourselves
    sent: float | None = None
    queued: float | None = None
    loading: list[float] = field(default_factory=list)
    started: list[dict] = field(default_factory=list)   # {"t", "worker", "queue_ms", "attempt"}
    first_token: float | None = None
    last_token: float | None = None
    end: float | None = None
    pieces: int = 0
    index_ok: bool = True             # token i went 0, 1, 2, ... (none repeated or skipped)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    timings: dict | None = None

    @property
    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.sent) * 1000

    @property
    def latency_ms(self) -> float | None:
        return (self.end - self.sent) * 1000 if self.ok else None

    @property
    def worker(self) -> str | None:
        return self.started[0]["worker"] if self.started else None

    @property
    def service_ms(self) -> float | None:
        """Latency minus the time the job waited in the queue (`started.queue_ms` of its first
        run): what a slot spent on it, plus the fixed transport cost."""
        if not self.ok or not self.started:
            return None
        return self.latency_ms - self.started[0]["queue_ms"]

    def row(self) -> dict:
        d = asdict(self)
        d.update(ttft_ms=self.ttft_ms, latency_ms=self.latency_ms, service_ms=self.service_ms)
        return d


def body(prompt: str, max_tokens: int, seed: int, **extra) -> dict:
    return {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "seed": seed,
            "stream": True, **extra}


def send(client: httpx.Client, base_url: str, req: dict, rec: Rec,
         stop: threading.Event | None = None) -> Rec:
    """Sends `req` and fills `rec` as the events come (another thread may watch it); closes the
    stream early (the server cancels the job) once `stop` is set."""
    rec.sent = now()
    try:
        with client.stream("POST", base_url + "/api/v1/req", json=req) as r:
            if r.status_code != 200:
                r.read()
                rec.error = f"HTTP {r.status_code}: {r.text[:200]}"
                return rec
            for name, data, t in iter_sse(r):
                t -= T_ORIGIN
                d = json.loads(data)
                if name == "queued":
                    rec.queued = t
                elif name == "loading":
                    rec.loading.append(t)
                elif name == "started":
                    rec.started.append({"t": t, "worker": d.get("worker"),
                                        "queue_ms": d.get("queue_ms"), "attempt": d.get("attempt")})
                elif name == "token":
                    if d.get("i") != rec.pieces:
                        rec.index_ok = False
                    rec.pieces += 1
                    if rec.first_token is None:
                        rec.first_token = t
                    rec.last_token = t
                elif name == "done":
                    u, tm = d.get("usage") or {}, d.get("timings") or {}
                    rec.ok = True
                    rec.finish_reason = d.get("finish_reason")
                    rec.prompt_tokens = u.get("prompt_tokens")
                    rec.completion_tokens = u.get("completion_tokens")
                    rec.cached_tokens = u.get("cached_tokens")
                    rec.timings = tm
                elif name == "error":
                    rec.error = data[:300]
                if stop is not None and stop.is_set():
                    rec.cancelled = True
                    break
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        rec.error = rec.error or f"{type(e).__name__}: {e}"
    rec.end = now()
    if not rec.ok and not rec.error and not rec.cancelled:
        rec.error = "stream ended without done"
    return rec


def one(base_url: str, req: dict, label: str, i: int) -> Rec:
    with new_client() as c:
        return send(c, base_url, req, Rec(label, i))


def pctl(xs, p):
    return percentile([x for x in xs if x is not None], p)


def fmt(x, nd=1, unit=""):
    return "-" if x is None else f"{x:.{nd}f}{unit}"


# --------------------------------------------------------------------------------------------
# Closed-loop load (part 1)


def overlap(r: Rec, a: float, b: float) -> float:
    """The fraction of the request's run (its first `started` -> the end of its stream) inside
    [a, b]."""
    s, e = (r.started[0]["t"] if r.started else r.sent), r.end
    if e <= s:
        return 1.0 if a <= e <= b else 0.0
    return max(0.0, min(e, b) - max(s, a)) / (e - s)


def closed_loop(base_url: str, args, stride: int, offset: int, label: str,
                procs: list[Proc]) -> dict:
    """`args.clients` threads, each sending its next request when its last one ended, from now
    for warmup + duration seconds; the window is the last `duration` seconds. Request n of the
    level gets prompt counting_prompt(n * stride + offset), so levels draw their prompts from
    the same range and no prompt is sent twice in a run."""
    lock = threading.Lock()
    counter = [0]
    recs: list[Rec] = []
    t_begin = now()
    t_win = t_begin + args.warmup
    t_end = t_win + args.duration

    def client_loop():
        with new_client() as c:
            while not ABORT.is_set() and now() < t_end:
                with lock:
                    n = counter[0]
                    counter[0] += 1
                k = n * stride + offset
                rec = Rec(label, k)
                send(c, base_url, body(counting_prompt(k), args.max_tokens, seed=1000 + k), rec)
                with lock:
                    recs.append(rec)

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, t_win - now()))
    cpu0, c0 = cpu_snapshot(procs), now()
    time.sleep(max(0.0, t_end - now()))
    cpu1, c1 = cpu_snapshot(procs), now()
    for t in threads:
        while t.is_alive():
            t.join(0.5)

    done_in_window = [r for r in recs if r.ok and t_win <= r.end <= t_end]
    sent_in_window = [r for r in recs if r.ok and t_win <= r.sent < t_end]
    lat = [r.latency_ms for r in sent_in_window]
    # Throughput counts the part of each request's run (started -> done) that fell inside the
    # window: a request run half inside counts half, its tokens too. Counting whole completions
    # instead would quantise the figure: the slots of a worker start and end their requests
    # together (same max_tokens), so completions come in bursts of --slots.
    ok = [(r, overlap(r, t_win, t_end)) for r in recs if r.ok]
    per_worker: dict[str, float] = {}
    for r, f in ok:
        per_worker[r.worker] = per_worker.get(r.worker, 0) + f
    per_worker = {k: round(v, 1) for k, v in per_worker.items()}
    cpu = {k: (None if cpu0.get(k) is None or cpu1.get(k) is None
               else round(100 * (cpu1[k] - cpu0[k]) / (c1 - c0), 1)) for k in cpu0}
    ours = sum(v for k, v in cpu.items() if v is not None and not k.startswith("machine"))
    if cpu.get("machine (all processes)") is not None:
        # Anything else running on the machine meanwhile (a build, a test run) shows here.
        cpu["other processes"] = round(max(0.0, cpu["machine (all processes)"] - ours), 1)
    return {
        "label": label, "clients": args.clients, "warmup_s": args.warmup,
        "duration_s": args.duration, "window": [t_win, t_end],
        "completed_in_window": len(done_in_window),
        "completions_per_s": len(done_in_window) / args.duration,
        "requests_per_s": sum(f for _, f in ok) / args.duration,
        "tokens_per_s": sum(f * r.completion_tokens for r, f in ok) / args.duration,
        "latency_ms_p50": pctl(lat, 50), "latency_ms_p95": pctl(lat, 95),
        "ttft_ms_p50": pctl([r.ttft_ms for r in sent_in_window], 50),
        "ttft_ms_p95": pctl([r.ttft_ms for r in sent_in_window], 95),
        "queue_ms_p50": pctl([r.started[0]["queue_ms"] for r in sent_in_window], 50),
        "service_ms": [r.service_ms for r in sent_in_window],
        "completion_tokens_p50": pctl([r.completion_tokens for r in sent_in_window], 50),
        "per_worker_requests": per_worker,  # requests run inside the window, by worker
        "cpu_percent_of_one_core": cpu,
        "errors": [r.error for r in recs if not r.ok],
        "samples": [r.row() for r in recs],
    }
