"""POST /v1/embeddings, driven with the official `openai` SDK and `curl`.

What users rely on: the same text gets the same vector (whatever else is in the call, or in the
queue beside it), vectors are unit length and similar texts are closer than unrelated ones,
base64 carries the same floats, usage counts the input tokens, and the route shares the queue,
API keys, metrics and refusals of the completion routes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import subprocess

import httpx
import openai
import pytest

from metrics_util import scrape
from openai_clients import MODEL, async_client, client, sync_client  # noqa: F401 (client: a fixture)

CAT = "The cat sat on the mat."
SIMILAR = [(CAT, "A kitten rested on the rug."),
           ("How do I bake bread at home?", "What is a simple recipe for homemade bread?"),
           ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon.")]
UNRELATED = [(CAT, "Quarterly revenue grew by eight percent."),
             ("How do I bake bread at home?", "The stock market fell sharply today."),
             ("Share prices dropped steeply this afternoon.", "A kitten rested on the rug.")]


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


def embed(client, texts, **kw):
    return client.embeddings.create(model=MODEL, input=texts, **kw)


def test_vectors_are_unit_length_and_usage_counts_tokens(client):
    r = embed(client, [CAT, "Hello"])
    assert r.object == "list" and r.model == MODEL
    assert [d.index for d in r.data] == [0, 1]
    for d in r.data:
        assert d.object == "embedding" and len(d.embedding) == len(r.data[0].embedding) > 0
        assert math.sqrt(sum(x * x for x in d.embedding)) == pytest.approx(1.0, abs=1e-4)
    assert r.usage.prompt_tokens == r.usage.total_tokens > 2


def test_same_text_same_vector_across_calls_and_batch_compositions(client, server):
    alone = embed(client, CAT).data[0].embedding
    again = embed(client, CAT).data[0].embedding
    among = embed(client, ["Something else entirely, and longer than the cat.", CAT, "x"]).data[1].embedding
    many = embed(client, [f"filler text number {i}" for i in range(40)] + [CAT]).data[40].embedding

    # And beside other requests in the queue, which llmq runs in the same engine call.
    async def crowd():
        async with async_client(server) as c:
            rs = await asyncio.gather(*[c.embeddings.create(model=MODEL, input=t)
                                        for t in [CAT, "one", "two three", CAT]])
            return [r.data[0].embedding for r in rs]
    crowded = asyncio.run(crowd())
    for other in (again, among, many, crowded[0], crowded[3]):
        assert max(abs(a - b) for a, b in zip(alone, other)) < 1e-5


def test_similar_texts_are_closer_than_unrelated_ones(client):
    texts = sorted({t for pair in SIMILAR + UNRELATED for t in pair})
    vectors = dict(zip(texts, (d.embedding for d in embed(client, texts).data)))
    similar = [cosine(vectors[a], vectors[b]) for a, b in SIMILAR]
    unrelated = [cosine(vectors[a], vectors[b]) for a, b in UNRELATED]
    assert min(similar) > max(unrelated), (similar, unrelated)


def test_base64_is_the_same_floats(client):
    floats = embed(client, CAT).data[0].embedding
    # The SDK decodes base64 itself when it asked for it; read the raw answer instead.
    raw = client.embeddings.with_raw_response.create(model=MODEL, input=CAT, encoding_format="base64")
    encoded = json.loads(raw.text)["data"][0]["embedding"]
    decoded = struct.unpack(f"<{len(floats)}f", base64.b64decode(encoded))
    assert max(abs(a - b) for a, b in zip(floats, decoded)) < 1e-6


def test_curl(server):
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "60", server.base_url + "/v1/embeddings",
         "-H", "Content-Type: application/json",
         "-d", json.dumps({"model": MODEL, "input": ["a", "b"], "encoding_format": "float"})],
        capture_output=True, text=True, check=True, timeout=90).stdout
    body = json.loads(out)
    assert [d["index"] for d in body["data"]] == [0, 1] and body["usage"]["prompt_tokens"] > 0


REFUSED = [
    ({"input": []}, "input", "out_of_range"),
    ({"input": ""}, "input", "out_of_range"),
    ({"input": [1, 2, 3]}, "input", "unsupported"),
    ({"input": "x", "dimensions": 7}, "dimensions", "unsupported"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format", "out_of_range"),
    ({"input": ["x"] * 513}, "input", "out_of_range"),
    ({"input": "word " * 3000}, "input", "context_length_exceeded"),
    ({"input": ["short", "word " * 600]}, "input[1]", "context_length_exceeded"),
]


@pytest.mark.parametrize("body,param,code", REFUSED, ids=[f"{r[1]}-{r[2]}-{i}" for i, r in enumerate(REFUSED)])
def test_refusals_name_the_param(client, body, param, code):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=MODEL, **body)
    assert (e.value.param, e.value.code) == (param, code), e.value.body


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")


def test_counted_in_metrics_and_needs_the_api_key(llmq_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("secret-key-1\n")
    srv = llmq_factory.start(api_key_file=str(keys))
    with pytest.raises(openai.AuthenticationError):
        sync_client(srv, api_key="wrong").embeddings.create(model=MODEL, input="x")
    good = sync_client(srv, api_key="secret-key-1")
    assert len(good.embeddings.create(model=MODEL, input=["a", "b"]).data) == 2
    m = scrape(srv.base_url)
    assert m.get("llmq_requests_total", route="/v1/embeddings", code="200") == 1
    assert m.get("llmq_requests_total", route="/v1/embeddings", code="401") == 1
    assert httpx.get(srv.base_url + "/healthz").status_code == 200
