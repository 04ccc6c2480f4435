"""Fault test: with requests flowing, Elasticsearch dies (SIGKILL) and is started again 30 s later.
Afterwards every request has exactly one document (counted by request id), so has every runtime
snapshot, the spool is empty, and llmq's request latency did not suffer: the p95 of the run with
the outage is within 10 % of the p95 of the same load without it.

The node is this module's own (it is killed and restarted). It runs at nice 19, in a session of
its own (see ElasticNode): its indexing would otherwise take the 2 cores from llmq and measure the
test machine, not llmq. The report breaks the outage run's p95 down by phase (before the kill,
node down, node back) to show where a difference arose. Against an ASan build the p95s are
reported, not compared: there the first 5 s of two identical runs differed by 14 %.
"""

from __future__ import annotations

import math
import threading
import time

import httpx
import pytest

from elastic_node import ElasticNode, elastic_setup, new_namespace, requests_stream, runtime_stream
from llmq_e2e import sanitized_build
from metrics_util import Metrics, promtool_problems, scrape

OUTAGE_AT_S = 5.0
OUTAGE_S = 30.0
AFTER_S = 15.0  # load after the node is back: the sink finds it and replays the spool
# Unmeasured load before each measured one: the first seconds after a server starts (caches,
# the node's first bulk requests) were slower in either run, and the outage run's "before"
# phase, a sixth of it, carried that into its p95 (13.8-15.6 ms against 12-14 over the rest, on
# a 2-core AMD EPYC). Both runs now start measuring on a warmed server.
WARM_S = 5.0
# One client, one-token requests back to back: what is measured is the request path around
# Elasticsearch, not decoding, and short requests give thousands of samples, so the p95s compared
# are tight. Two clients would add the noise of how their requests happen to overlap in a batch.
BODY = {"prompt": "Write one sentence about the sea.", "max_tokens": 1, "temperature": 0,
        "stream": False}


@pytest.fixture(scope="module")
def node():
    n = ElasticNode(nice=19)
    try:
        n.start()
        assert elastic_setup(n.url).returncode == 0
        yield n
    finally:
        n.remove()


class Load:
    """One closed-loop client. `run(seconds)` runs them for that long; `run(during=f)` runs
    them beside f(load), which may pause() and resume() them, and for AFTER_S once f returned.
    Collects the request ids and, for each request, when it ended (s since the start) and its
    latency as the client saw it in ms: an answer held back by the telemetry would show here, not
    in llmq's total_ms."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.ids: list[str] = []
        self.latencies: list[tuple[float, float]] = []
        self.active_s = 0.0  # time the clients ran, pauses excluded
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._go = threading.Event()
        self._go.set()
        self._end = math.inf
        self.t0 = time.monotonic()

    def pause(self) -> None:
        self._go.clear()
        self._paused_at = time.monotonic()
        time.sleep(1.0)  # the request in flight ends

    def resume(self) -> None:
        self.active_s -= time.monotonic() - self._paused_at
        self._go.set()

    def since_start(self) -> float:
        return time.monotonic() - self.t0

    def warm(self, seconds: float) -> "Load":
        """Load for `seconds` that is not measured: its requests stay in `ids` (their documents
        must arrive too), their latencies do not count."""
        self.run(seconds)
        self.latencies.clear()
        self.active_s = 0.0
        return self

    def run(self, seconds: float | None = None, during=None) -> "Load":
        self.t0 = time.monotonic()
        self._end = self.t0 + seconds if seconds is not None else math.inf

        def client():
            with httpx.Client(timeout=60) as http:
                while self._go.wait() and time.monotonic() < self._end:
                    sent = time.monotonic()
                    r = http.post(self.base_url + "/api/v1/req", json=BODY)
                    ended = time.monotonic()
                    with self._lock:
                        if r.status_code != 200:
                            self.errors.append(f"{r.status_code} {r.text[:200]}")
                            continue
                        self.ids.append(r.json()["id"])
                        self.latencies.append((ended - self.t0, (ended - sent) * 1000))

        def side():
            try:
                during(self)
            finally:
                self._go.set()
                self._end = time.monotonic() + AFTER_S

        threads = [threading.Thread(target=client)]
        if during:
            threads.append(threading.Thread(target=side))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.active_s += time.monotonic() - self.t0
        assert not self.errors, self.errors[:5]
        return self


def p95(latencies: list[tuple[float, float]]) -> float:
    ms = sorted(ms for _, ms in latencies)
    return ms[math.ceil(0.95 * len(ms)) - 1]


def wait_for_documents(node: ElasticNode, stream: str, expected: set[str], within: float) -> dict:
    deadline = time.monotonic() + within
    counts: dict = {}
    while time.monotonic() < deadline:
        try:
            counts = node.ids(stream)
            if expected <= set(counts):
                return counts
        except httpx.HTTPError:
            pass  # the node is still starting
        time.sleep(1.0)
    return counts


def spooled_documents(spool) -> int:
    return sum(1 for f in spool.glob("spool-*.ndjson") for line in f.read_text().splitlines()
               if line.strip())


def serve(llmq_factory, node, tmp_path, name):
    ns = new_namespace(name)
    spool = tmp_path / f"spool-{name}"
    srv = llmq_factory.start(name, slots=2, elastic_url=node.url, elastic_namespace=ns,
                             spool_dir=spool, snapshot_interval_ms=1000)
    return srv, ns, spool


def check_exactly_once(node, srv, ns, spool, ids) -> None:
    counts = wait_for_documents(node, requests_stream(ns), set(ids), within=120)
    shipped = scrape(srv.base_url)
    assert shipped.get("llmq_elastic_documents_total", outcome="stored") >= len(ids), shipped.text
    assert shipped.get("llmq_elastic_documents_total", outcome="lost") == 0, shipped.text
    assert shipped.get("llmq_spool_dropped_documents_total") == 0, shipped.text
    assert srv.stop() == 0, srv.stderr_text(50)
    assert spooled_documents(spool) == 0, "documents left in the spool"
    counts = node.ids(requests_stream(ns))
    assert len(ids) == len(set(ids))
    missing = [i for i in ids if counts[i] == 0]
    doubled = {i: n for i, n in counts.items() if n != 1}
    assert not missing and not doubled, f"missing {missing[:5]}, duplicated {doubled}"
    assert set(counts) == set(ids), set(counts) - set(ids)
    snapshots = node.ids(runtime_stream(ns))
    assert snapshots and all(n == 1 for n in snapshots.values()), snapshots


@pytest.mark.slow
@pytest.mark.timeout(900)  # two loads of ~1 min, a node restart, waiting for delivery
def test_a_30_s_outage_loses_nothing_duplicates_nothing_and_costs_no_latency(llmq_factory, node, tmp_path):
    # The load with the outage first (how long it runs depends on how long the node takes to
    # start), then the same load for as long with Elasticsearch up throughout. While the JVM
    # starts the load pauses: at any nice the start-up either takes the 2 cores from llmq or,
    # starved, does not finish. The load goes on for AFTER_S once the node is back.
    srv, ns, spool = serve(llmq_factory, node, tmp_path, "outage")
    spooled_during: list[int] = []
    during: list[Metrics] = []  # /metrics in the middle of the outage
    marks: dict[str, float] = {}

    def outage(load: Load) -> None:
        time.sleep(OUTAGE_AT_S)
        node.kill()
        marks["down"] = load.since_start()
        time.sleep(OUTAGE_S / 2)
        spooled_during.append(spooled_documents(spool))
        during.append(scrape(srv.base_url))
        time.sleep(OUTAGE_S / 2)
        load.pause()
        node.start()  # waits until the node is healthy again
        load.resume()
        marks["up"] = load.since_start()

    outage_load = Load(srv.base_url).warm(WARM_S).run(during=outage)
    assert spooled_during and spooled_during[0] > 0, "nothing was spooled during the outage"
    # The metrics tell an operator the same: documents wait in the spool, batches fail.
    assert during[0].get("llmq_spool_documents") > 0, during[0].text
    assert during[0].get("llmq_elastic_failed_batches_total") > 0, during[0].text
    assert promtool_problems(during[0].text) == []
    check_exactly_once(node, srv, ns, spool, outage_load.ids)

    srv, ns, spool = serve(llmq_factory, node, tmp_path, "steady")
    steady_load = Load(srv.base_url).warm(WARM_S).run(outage_load.active_s)
    check_exactly_once(node, srv, ns, spool, steady_load.ids)

    steady, with_outage = p95(steady_load.latencies), p95(outage_load.latencies)
    report = (f"p95 latency without outage {steady:.1f} ms ({len(steady_load.ids)} requests), with "
              f"outage {with_outage:.1f} ms ({len(outage_load.ids)} requests); with outage by "
              f"phase: {phases(outage_load.latencies, marks)}")
    print(report)
    if sanitized_build():
        return  # ASan's overhead moves p95 by more than 10 % between two identical runs
    # 10 %, but never less than 3 ms: p95s of ~12 ms requests on 2 shared cores differ by 2-4 ms
    # between identical phases (once the outage run's own "before" phase, no outage yet, had
    # 16.8 ms against the steady run's 12.5 ms). An outage that costs latency costs more.
    assert with_outage <= max(steady * 1.10, steady + 3.0), report


def phases(latencies, marks) -> str:
    """The p95 over each stretch of a load: before the kill, node down, node back."""
    edges = [0.0, marks["down"], marks["up"], math.inf]
    parts = []
    for name, lo, hi in zip(["before", "down", "back"], edges, edges[1:]):
        part = [(t, ms) for t, ms in latencies if lo <= t < hi]
        if part:
            parts.append(f"{name} {p95(part):.1f} ms ({len(part)})")
    return ", ".join(parts)
