"""Chunked prefill against the real model, read from the server's own step trace
(`--step-trace`): a long prompt that arrives while a stream generates is prefilled in chunks
beside it, so the stream goes on getting tokens; with `--decode-stall-factor 0` the prompt goes
in whole batches and the stream waits. And the trace itself: one line per step, in which every
sampled token is counted.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
from pathlib import Path

from llmq_e2e import free_port, llmq_bin, model_path, server_env
from sse_client import OpenStream, stream_request

# ~1,200 tokens of plain words: far more than one step may take beside a stream, and within
# the suite's 2,048-token slots.
LONG_PROMPT = " ".join(f"river{i % 50} stone garden window" for i in range(200))
BATCH = 512


def steps(path: Path) -> list[dict]:
    """The trace's whole lines (one still being written, without its newline, is left out)."""
    whole = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in whole if line.strip()]


def test_the_trace_has_a_line_per_step_counting_every_sampled_token(llmq_factory, tmp_path):
    trace = tmp_path / "steps.jsonl"
    srv = llmq_factory.start(step_trace=str(trace))
    s = stream_request(srv.base_url, {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0})
    usage = s.done["usage"]
    # A step's line is written when the step ends, and the last step sends `done` before it
    # ends: the client can read the trace before the last line is there (a slow ASan build did).
    lines = steps(trace)
    deadline = time.monotonic() + 10
    while sum(line["sampled"] for line in lines) < usage["completion_tokens"] and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = steps(trace)
    assert lines, "no step traced"
    for line in lines:
        assert set(line) >= {"model", "t_ms", "gen", "prompt", "prefilling", "sampled", "wait_ms",
                             "decode_ms", "sample_ms"}, line
        assert line["decode_ms"] > 0, line
    # Alone, the prompt went in whole, in the first step; then one token a step.
    assert lines[0]["prompt"] == usage["prompt_tokens"] and lines[0]["gen"] == 0, lines[0]
    assert sum(line["sampled"] for line in lines) == usage["completion_tokens"], (lines, usage)
    assert all(line["gen"] == 1 and line["prompt"] == 0 for line in lines[1:]), lines


def arrival_beside_a_stream(srv) -> tuple[int, dict]:
    """A stream generates; a long prompt arrives. Returns the stream's tokens received between
    the arrival's send and its first token, and the arrival's `done`."""
    with OpenStream(srv.base_url, {"prompt": "Count from one to a thousand: one, two,",
                                   "max_tokens": 1500, "temperature": 0}) as running:
        running.read_until(lambda e: e.event == "token" and e.data["i"] >= 10, "10 tokens")
        seen = threading.Event()
        times: list[float] = []

        def read_running():
            for e in running.iter_all():
                if e.event == "token":
                    times.append(e.t)
                if seen.is_set() or e.event in ("done", "error"):
                    return

        reader = threading.Thread(target=read_running, daemon=True)
        reader.start()
        arrival = stream_request(srv.base_url, {"prompt": LONG_PROMPT, "max_tokens": 2, "temperature": 0})
        seen.set()
        reader.join(30)  # it returns at the stream's next token
        first = next(e.t for e in arrival.events if e.event == "token")
        during = sum(1 for t in times if arrival.t_sent <= t <= first)
    return during, arrival.done


def test_a_long_prompt_beside_a_stream_is_prefilled_in_chunks(llmq_factory, tmp_path):
    trace = tmp_path / "steps.jsonl"
    srv = llmq_factory.start(step_trace=str(trace))
    during, done = arrival_beside_a_stream(srv)
    prompt_tokens = done["usage"]["prompt_tokens"]
    assert prompt_tokens > BATCH, done  # more than one whole batch
    mixed = [s for s in steps(trace) if s["gen"] >= 1 and s["prompt"] > 0]
    # Chunks beside the stream, each far smaller than the prompt: the stream moved at every one.
    assert len(mixed) >= 10, mixed
    assert sum(s["prompt"] for s in mixed) >= prompt_tokens - BATCH, (mixed, prompt_tokens)
    assert during >= max(10, len(mixed) // 2), (during, len(mixed))


def test_without_a_stall_limit_the_prompt_goes_whole_and_the_stream_waits(llmq_factory, tmp_path):
    trace = tmp_path / "steps.jsonl"
    srv = llmq_factory.start(step_trace=str(trace), decode_stall_factor=0)
    during, done = arrival_beside_a_stream(srv)
    prompt_tokens = done["usage"]["prompt_tokens"]
    mixed = [s for s in steps(trace) if s["gen"] >= 1 and s["prompt"] > 0]
    # Whole batches: as few steps as --batch-size allows, and the stream frozen meanwhile.
    assert len(mixed) <= math.ceil(prompt_tokens / (BATCH - 1)), mixed
    # A token per step: those chunks, and the few steps before the prompt was taken up.
    assert during <= len(mixed) + 3, (during, mixed)


def test_a_step_trace_that_cannot_be_written_stops_the_start(_prerequisites, tmp_path):
    bad = tmp_path / "no-such-dir" / "steps.jsonl"
    cp = subprocess.run([str(llmq_bin()), "serve", "--model", str(model_path()), "--port", str(free_port()),
                         "--step-trace", str(bad)], capture_output=True, timeout=60, env=server_env())
    assert cp.returncode != 0
    lines = [line for line in cp.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1 and "step trace" in lines[0] and str(bad) in lines[0], lines
