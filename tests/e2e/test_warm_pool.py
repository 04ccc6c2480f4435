"""The warm pool of `llmq serve --models`: a cold model is loaded for its request (`loading`, then
`started`), /v1/models says which models are in memory, a warm model answers without `loading`,
keep_alive 0 unloads a model after its job, and under --max-loaded 1 a request for another model
evicts the least recently used one. Runs SmolLM2 (the default) beside Gemma 3 270M."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from llmq_e2e import llmq_bin, model_name, model_path, server_env
from metrics_util import promtool_problems, scrape
from sse_client import stream_request

GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"


def gemma_path() -> Path:
    """Gemma 3 270M, fetched by scripts/models.sh beside the default model ($LLMQ_GEMMA wins)."""
    path = Path(os.environ.get("LLMQ_GEMMA") or model_path().parent / GEMMA_FILE)
    if not path.is_file():
        pytest.fail(f"second model not found at {path} (run scripts/models.sh, or set LLMQ_GEMMA)",
                    pytrace=False)
    return path


GEMMA = Path(GEMMA_FILE).stem
SMOL = model_name()


def body(model: str, **fields) -> dict:
    return {"model": model, "prompt": "Name a colour.", "max_tokens": 4, "temperature": 0,
            **fields}


def loaded(base_url: str) -> dict[str, bool]:
    """/v1/models as {model: loaded}."""
    r = httpx.get(base_url + "/v1/models", timeout=10)
    assert r.status_code == 200, r.text
    return {m["id"]: m["loaded"] for m in r.json()["data"]}


def wait_loaded(base_url: str, model: str, want: bool, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while loaded(base_url)[model] != want:
        assert time.monotonic() < deadline, f"{model} loaded={not want} after {within:.0f} s"
        time.sleep(0.05)


def evictions(base_url: str, model: str, reason: str) -> float:
    return scrape(base_url).get("llmq_model_evictions_total", model=model, reason=reason)


def test_a_cold_model_is_loaded_for_its_request_and_then_answers_warm(llmq_factory):
    s = llmq_factory.start(models=gemma_path(), max_loaded=1)
    assert loaded(s.base_url) == {SMOL: True, GEMMA: False}  # the default model is preloaded

    cold = stream_request(s.base_url, body(GEMMA))
    names = [e.event for e in cold.events]
    assert [e.data["model"] for e in cold.loading] == [GEMMA], names
    assert names.index("loading") < names.index("started"), names
    assert cold.tokens and cold.done["usage"]["completion_tokens"] == 4
    assert loaded(s.base_url) == {SMOL: False, GEMMA: True}  # room made: SmolLM2 went

    warm = stream_request(s.base_url, body(GEMMA))
    assert warm.loading == [], [e.event for e in warm.events]
    assert warm.done["finish_reason"] == "length"
    assert warm.text == cold.text  # greedy: the same model, the same answer

    m = scrape(s.base_url)
    assert promtool_problems(m.text) == []
    assert m.types["llmq_model_loads_total"] == "counter"
    assert m.types["llmq_model_load_seconds"] == "histogram"
    assert m.types["llmq_model_loaded"] == "gauge"
    assert m.get("llmq_model_loads_total", model=GEMMA) == 1
    assert m.get("llmq_model_loads_total", model=SMOL) == 1
    assert m.get("llmq_model_evictions_total", model=SMOL, reason="lru") == 1
    assert m.has("llmq_model_evictions_total", model=GEMMA, reason="keep_alive")
    assert m.get("llmq_model_loaded", model=GEMMA) == 1
    assert m.get("llmq_model_loaded", model=SMOL) == 0
    assert m.get("llmq_model_load_seconds_count", model=GEMMA) == 1
    assert 0 < m.get("llmq_model_load_seconds_sum", model=GEMMA) < 60
    assert m.get("llmq_slots") == 2  # the slots of the models in memory: gemma's


def test_keep_alive_zero_unloads_the_model_after_its_job(llmq_factory):
    s = llmq_factory.start(models=gemma_path(), max_loaded=2)
    stream_request(s.base_url, body(GEMMA, keep_alive=0)).done
    wait_loaded(s.base_url, GEMMA, False)
    assert loaded(s.base_url)[SMOL] is True  # room for both: the default model stays
    assert evictions(s.base_url, GEMMA, "keep_alive") == 1
    assert evictions(s.base_url, GEMMA, "lru") == 0
    assert scrape(s.base_url).get("llmq_model_loaded", model=GEMMA) == 0

    # An llmq extension on the OpenAI routes too, as a duration string.
    r = httpx.post(s.base_url + "/v1/completions", timeout=120,
                   json={"model": GEMMA, "prompt": "Hi", "max_tokens": 2, "keep_alive": "0s"})
    assert r.status_code == 200, r.text
    wait_loaded(s.base_url, GEMMA, False)
    assert evictions(s.base_url, GEMMA, "keep_alive") == 2
    assert scrape(s.base_url).get("llmq_model_loads_total", model=GEMMA) == 2
    # The default model is no exception; the service stays ready and loads it again on demand.
    r = httpx.post(s.base_url + "/v1/chat/completions", timeout=120,
                   json={"model": SMOL, "messages": [{"role": "user", "content": "Hi"}],
                         "max_tokens": 2, "keep_alive": 0})
    assert r.status_code == 200, r.text
    wait_loaded(s.base_url, SMOL, False)
    assert evictions(s.base_url, SMOL, "keep_alive") == 1
    assert scrape(s.base_url).get("llmq_slots") == 0
    assert httpx.get(s.base_url + "/readyz", timeout=10).status_code == 200
    assert stream_request(s.base_url, body(SMOL)).loading != []


def test_a_request_for_another_model_evicts_the_least_recently_used(llmq_factory):
    s = llmq_factory.start(models=gemma_path(), max_loaded=1)
    stream_request(s.base_url, body(GEMMA)).done
    assert loaded(s.base_url) == {SMOL: False, GEMMA: True}

    back = stream_request(s.base_url, body(SMOL))
    assert [e.data["model"] for e in back.loading] == [SMOL]
    assert back.done["usage"]["completion_tokens"] == 4
    assert loaded(s.base_url) == {SMOL: True, GEMMA: False}
    assert evictions(s.base_url, GEMMA, "lru") == 1
    assert evictions(s.base_url, SMOL, "lru") == 1
    assert scrape(s.base_url).get("llmq_model_loads_total", model=SMOL) == 2


def test_a_bad_keep_alive_is_refused_naming_the_field(server):
    for route, payload in [
        ("/api/v1/req", {"prompt": "x", "keep_alive": "soon"}),
        ("/v1/completions", {"prompt": "x", "keep_alive": True}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "keep_alive": "5 m"}),
    ]:
        r = httpx.post(server.base_url + route, json=payload, timeout=10)
        assert r.status_code == 400, (route, r.text)
        error = r.json()["error"]
        assert error.get("field", error.get("param")) == "keep_alive", (route, error)


def test_pool_flags_that_name_no_served_model_are_usage_errors(_prerequisites):
    for extra in (["--pin", "nope"], ["--preload", "nope"], ["--keep-alive", "a while"],
                  ["--max-loaded", "1", "--pin", f"{SMOL},{GEMMA}"]):
        cp = subprocess.run([str(llmq_bin()), "serve", "--model", str(model_path()), "--models",
                             str(gemma_path()), *extra], capture_output=True, timeout=30,
                            env=server_env())
        assert cp.returncode == 2, (extra, cp.stderr)
        lines = cp.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("llmq: "), (extra, lines)
