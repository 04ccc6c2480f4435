"""Greedy decoding gives a request the same text whatever else shares the batch; a fixed seed
reproduces a sampled text."""

from __future__ import annotations

import pytest

from sse_client import OpenStream, json_request, stream_request

TARGET = "Explain in two sentences why the sky is blue."
OTHERS = [
    "Write a haiku about autumn leaves.",
    "1, 1, 2, 3, 5, 8,",
    "The three most important inventions of the twentieth century are",
    "Translate to French: The cat sleeps on the warm windowsill all afternoon.",
    "Q: What is 17 times 3?\nA:",
]


@pytest.mark.slow
def test_greedy_output_independent_of_batch(llmq_factory):
    # 6 slots: the target and the five others all decode together.
    srv = llmq_factory.start(slots=6, ctx_size=512)
    body = {"prompt": TARGET, "max_tokens": 32, "temperature": 0}
    alone = stream_request(srv.base_url, body).text
    assert stream_request(srv.base_url, body).text == alone, "greedy differs between two runs alone"

    # The others start first and run longer than the target, so the target's prompt and every
    # one of its tokens go through batches shared with them.
    others = []
    try:
        for p in OTHERS:
            others.append(OpenStream(srv.base_url, {"prompt": p, "max_tokens": 160,
                                                    "temperature": 0}))
        for o in others:
            o.read_until(lambda e: e.event == "started", "another request started")
        batched = stream_request(srv.base_url, body)
        for o in others:
            o.read_all()
    finally:
        for o in others:
            o.close()
    # Those still generating when the target started shared its batches.
    sharing = sum(1 for o in others if o.events[-1].t > batched.started.t)
    assert sharing >= 1, "the others had all ended before the target started"
    assert batched.text == alone, (
        f"greedy text changed when batched with {sharing} other requests:\n"
        f"alone:   {alone!r}\nbatched: {batched.text!r}"
    )


def test_seed_reproduces_sampling(server):
    body = {"prompt": "Write a sentence about a dragon.", "max_tokens": 24,
            "temperature": 1.0, "top_p": 0.95, "top_k": 50}
    a = json_request(server.base_url, {**body, "seed": 1234})["text"]
    b = json_request(server.base_url, {**body, "seed": 1234})["text"]
    assert a == b, f"same seed, different text:\n{a!r}\n{b!r}"
    # Different seeds do sample: three seeds giving one text would mean the seed is ignored
    # (or sampling is greedy).
    texts = {a} | {json_request(server.base_url, {**body, "seed": s})["text"] for s in (1, 2)}
    assert len(texts) > 1, f"seeds 1234, 1, 2 all gave {a!r}"
