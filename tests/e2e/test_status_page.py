"""The live page at / and its status endpoint GET /api/v1/status (docs/api.md, "Live status").

With one slot held by a long stream, a second request waits: the status lists it (id, place,
age, model; never its prompt), and the page, opened in Debian's own headless Chromium (driven by
Playwright, no browser download), shows it in its waiting table with no console error. The
page's screenshot is kept as an artifact: $LLMQ_ARTIFACTS/status-page.png (default
build/artifacts/). With API keys, the status is behind them and the page asks for one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from llmq_e2e import LONG_PROMPT, REPO, model_name, sanitized_build
from scale_out import NatsServer, ScaleOut
from sse_client import OpenStream

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (scripts/setup.sh installs it)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Long enough to hold the slot while the page loads and polls a few times; bounded all the same
# (the stream is closed, and the job cancelled, at the end of each test).
LONG = {"prompt": LONG_PROMPT, "max_tokens": 1500, "temperature": 0}
SECRET = "zebra-7319 keep this prompt private"
WAITING = {"prompt": SECRET, "max_tokens": 4, "temperature": 0}
KEY = "sk-status-page-0001"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def artifacts_dir() -> Path:
    d = Path(os.environ.get("LLMQ_ARTIFACTS") or REPO / "build" / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def one_running_one_waiting(srv, wait_for_token: bool = True):
    """A long stream in the only slot and a short request queued behind it: (running id,
    waiting id). Both streams are closed (their jobs cancelled) on exit."""
    a = OpenStream(srv.base_url, LONG)
    b = None
    try:
        a.read_until(lambda e: e.event == ("token" if wait_for_token else "started"), "A running")
        b = OpenStream(srv.base_url, WAITING)
        queued = b.read_until(lambda e: e.event == "queued", "B queued")
        yield a.events[0].data["id"], queued.data["id"]
    finally:
        a.close()
        if b is not None:
            b.close()


def status(srv, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(srv.base_url + "/api/v1/status", headers=headers, timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Console:
    """What a page reported as wrong: console errors and uncaught exceptions."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def test_status_lists_the_waiting_request_without_its_prompt(llmq_factory):
    srv = llmq_factory.start(slots=1)
    # One finished request, so that the latency window has a sample.
    done = httpx.post(srv.req_url, json={"prompt": "Hi", "max_tokens": 4, "stream": False},
                      timeout=60)
    assert done.status_code == 200, done.text
    with one_running_one_waiting(srv) as (running, waiting):
        r = status(srv)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        s = r.json()
        assert SECRET not in r.text and "zebra" not in r.text
        assert LONG_PROMPT not in r.text
        assert s["ready"] is True and s["draining"] is False
        assert s["models"] == [{"name": model_name(), "loaded": True}]
        assert s["version"] and s["uptime_s"] >= 0 and s["time"].endswith("Z")
        q = s["queue"]
        assert q["name"] == "LLM_INFERENCE" and q["capacity"] == 16, q
        assert q["depth"] == 1 and q["waiting_truncated"] is False, q
        [job] = q["waiting"]
        assert set(job) == {"id", "model", "place", "age_ms"}, job
        assert job["id"] == waiting and job["place"] == 0 and job["model"] == model_name(), job
        assert 0 <= job["age_ms"] < 60_000, job
        slots = s["slots"]
        assert slots["busy"] == 1 and slots["total"] == 1 and slots["workers"] is None, slots
        [slot] = slots["list"]
        assert slot["id"] == running and slot["state"] in ("prefill", "generating"), slot
        assert slot["slot"] == 0 and slot["model"] == model_name(), slot
        assert slot["tokens"] >= 1 and slot["running_ms"] >= 0, slot
        lat = s["latency"]
        assert lat["count"] == 1 and lat["window_s"] > 0, lat
        assert lat["ttft_ms"]["p50"] > 0 and lat["total_ms"]["p95"] > 0, lat
        assert "queue_full" in s["refusals"] and "unauthorized" in s["refusals"], s["refusals"]
        assert s["process"]["rss_bytes"] > 1_000_000 and s["process"]["cpu_percent"] >= 0, s
        # A second look: the job has aged and kept its place; the running one went on.
        later = status(srv).json()
        assert later["queue"]["waiting"][0]["id"] == waiting
        assert later["queue"]["waiting"][0]["age_ms"] >= job["age_ms"]
        assert later["slots"]["list"][0]["tokens"] >= slot["tokens"]


def test_page_and_routes_are_served_with_their_headers(server):
    r = httpx.get(server.base_url + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp, csp
    assert "unsafe-inline" not in csp and "connect-src 'self'" in csp, csp
    assert "/api/v1/status" in r.text and "https://" not in r.text and "http://" not in r.text
    head = httpx.head(server.base_url + "/", timeout=10)
    assert head.status_code == 200 and head.content == b""
    for method, path in (("POST", "/"), ("DELETE", "/api/v1/status"), ("POST", "/api/v1/status")):
        r = httpx.request(method, server.base_url + path, timeout=10)
        assert r.status_code == 405, (method, path, r.status_code)
        assert r.json()["error"]["code"] == "method_not_allowed"
    assert status(server).headers["cache-control"] == "no-store"


def test_page_shows_the_request_waiting_in_line(llmq_factory, browser):
    srv = llmq_factory.start(slots=1)
    with one_running_one_waiting(srv) as (running, waiting):
        page = browser.new_page(viewport={"width": 1280, "height": 960})
        console = Console(page)
        page.goto(srv.base_url + "/", wait_until="load")
        page.locator("#waiting tbody td.id", has_text=waiting).wait_for(timeout=20_000)
        page.locator("#slots tbody td.id", has_text=running).wait_for(timeout=20_000)
        assert page.locator("#queue-depth").text_content() == "1"
        assert page.locator("#slots-busy").text_content() == "1"
        assert page.locator("#state").text_content() == "ready"
        page.wait_for_timeout(2_500)  # a few more polls: updates must stay clean too
        assert page.locator("#waiting tbody td.id", has_text=waiting).count() == 1
        assert SECRET not in page.content()
        shot = artifacts_dir() / "status-page.png"
        page.screenshot(path=str(shot), full_page=True)
        page.close()
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 20_000, (shot, len(data))
    assert console.errors == [], console.errors


def test_status_is_behind_the_api_key_and_the_page_asks_for_it(llmq_factory, browser):
    srv = llmq_factory.start(api_key=KEY)
    r = status(srv)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert status(srv, {"Authorization": "Bearer sk-not-the-key-1"}).status_code == 401
    ok = status(srv, {"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200 and ok.json()["queue"]["depth"] == 0, ok.text
    assert httpx.get(srv.base_url + "/", timeout=10).status_code == 200, "the page holds no data"

    page = browser.new_page()
    console = Console(page)
    page.goto(srv.base_url + "/")
    page.locator("#auth").wait_for(state="visible", timeout=10_000)
    assert page.locator("#queue-depth").text_content() == "–", "no data without the key"
    page.fill("#key", KEY)
    page.click("#key-form button")
    page.locator("#auth").wait_for(state="hidden", timeout=10_000)
    page.wait_for_function("document.getElementById('queue-depth').textContent === '0'",
                           timeout=10_000)
    assert page.locator("#state").text_content() == "ready"
    page.close()
    # The one 401 before the key was entered is the browser's own resource-load message; the
    # page itself stops polling until a key is given, so there is exactly one.
    unexpected = [e for e in console.errors if "401" not in e]
    assert unexpected == [] and len(console.errors) <= 1, console.errors


# A worker may fetch one job more than its free slots while its scheduler is between popping a
# job from its inbox and counting the slot busy (ModelPool::room); the slower ASan build widens
# that moment until the second job leaves JetStream for the worker's inbox, and the gateway
# rightly no longer lists it as waiting. Known, not fixed yet (see the issue notes).
@pytest.mark.skipif(sanitized_build(), reason="a worker's over-fetch race shows in the ASan build")
def test_a_gateway_reports_its_waiting_jobs_and_the_workers_slots(llmq_factory, tmp_path):
    """In a gateway the queue is JetStream's and the slots are the workers': `waiting` lists the
    gateway's jobs no worker took, `slots.workers` what each worker's heartbeat says."""
    nats = NatsServer(tmp_path).start()
    try:
        cluster = ScaleOut(llmq_factory, nats)
        gw = cluster.start_gateway()
        cluster.start_worker("--slots", "1", name="only")
        with one_running_one_waiting(gw, wait_for_token=False) as (running, waiting):
            s = None
            for _ in range(50):  # heartbeats and the consumer's state arrive within seconds
                s = status(gw).json()
                if s["slots"]["busy"] == 1 and s["queue"]["waiting"]:
                    break
                time.sleep(0.2)
            assert SECRET not in json.dumps(s)
            assert s["slots"]["list"] is None and s["slots"]["total"] == 1, s["slots"]
            [worker] = s["slots"]["workers"]
            assert worker["slots"] == 1 and worker["busy"] == 1, worker
            [job] = s["queue"]["waiting"]
            assert job["id"] == waiting and job["place"] == 0, job
            assert running not in json.dumps(s["queue"]), "a taken job no longer waits"
        llmq_factory.stop_all()  # while the broker still runs
    finally:
        nats.stop()
