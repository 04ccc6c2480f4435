"""How OpenAI clients see llmq's refusals: what llmq cannot do is refused with a 400 naming the
parameter instead of being silently ignored, and every error arrives as the SDK's exception class
with OpenAI's error shape (400, 401, 404, 429 with Retry-After, 503 while draining) and an
X-Request-Id."""

from __future__ import annotations

import signal
import time

import httpx
import openai
import pytest

from openai_clients import LONG_NATIVE, MODEL, QUESTION, chat, client, sync_client  # noqa: F401 (client: a fixture)
from sse_client import OpenStream


CHAT_400 = [
    # (what the request adds, the param the error must name, the codes it may have)
    ({"n": 9}, "n", ("out_of_range",)),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", ("out_of_range",)),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools",
     ("unsupported",)),
    ({"response_format": {"type": "yaml"}}, "response_format.type", ("out_of_range",)),
    ({"logit_bias": {"42": 5}}, "logit_bias", ("unsupported",)),
    ({"presence_penalty": 2.5}, "presence_penalty", ("out_of_range",)),
    ({"frequency_penalty": -3}, "frequency_penalty", ("out_of_range",)),
    ({"temperature": 3}, "temperature", ("out_of_range",)),
    ({"max_tokens": 0}, "max_tokens", ("out_of_range",)),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", ("out_of_range",)),
    ({"temperature": "hot"}, "temperature", ("invalid_type",)),
]


@pytest.mark.parametrize("extra,param,codes", CHAT_400, ids=[c[1] for c in CHAT_400])
def test_chat_bad_request_names_the_param(client, extra, param, codes):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4,
                                       extra_body=extra)
    err = e.value
    assert err.status_code == 400 and err.type == "invalid_request_error", err.body
    assert err.param == param, err.body
    assert err.code in codes, err.body
    assert err.message and err.response.headers.get("x-request-id"), err.response.headers


@pytest.mark.parametrize("messages", [
    [],
    [{"role": "user", "content": [{"type": "image_url",
                                   "image_url": {"url": "https://example.com/a.png"}}]}],
    [{"role": "tool", "content": "42", "tool_call_id": "call_1"}],
], ids=["empty", "image-part", "tool-role"])
def test_chat_bad_messages(client, messages):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4)
    assert e.value.type == "invalid_request_error", e.value.body
    # When a param is named, it is the messages.
    assert e.value.param is None or e.value.param.startswith("messages"), e.value.body


def test_completions_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt=["one", "two"], max_tokens=4)
    assert e.value.param == "prompt", e.value.body
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="Hi", max_tokens=4, n=3)
    assert e.value.param == "n", e.value.body


def test_malformed_json_in_openai_shape(server):
    r = httpx.post(server.base_url + "/v1/chat/completions", content=b'{"messages": [',
                   headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert {"message", "type", "param", "code"} <= err.keys(), err
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_json", err
    assert r.headers.get("x-request-id"), r.headers


def test_unknown_model_is_404(client):
    for call in (
        lambda: client.chat.completions.create(model="gpt-4o", messages=QUESTION, max_tokens=4),
        lambda: client.completions.create(model="gpt-4o", prompt="Hi", max_tokens=4),
    ):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        assert e.value.type == "invalid_request_error", e.value.body
        assert e.value.code == "model_not_found", e.value.body


def test_api_key_required(llmq_factory):
    srv = llmq_factory.start(api_key="sk-oai-test-key-0001")
    for key in ("unused", "sk-oai-test-key-0002"):
        with sync_client(srv, api_key=key) as c:
            for call in (
                lambda: c.models.list(),
                lambda: c.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=2),
                lambda: c.completions.create(model=MODEL, prompt="Hi", max_tokens=2, stream=True),
            ):
                with pytest.raises(openai.AuthenticationError) as e:
                    call()
                assert e.value.type == "authentication_error", e.value.body
    r = httpx.get(srv.base_url + "/v1/models", timeout=10)  # no Authorization at all
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error", r.text
    with sync_client(srv, api_key="sk-oai-test-key-0001") as c:
        assert [m.id for m in c.models.list().data] == [MODEL]
        chat(c, max_tokens=2)


def test_queue_full_is_a_rate_limit_error_with_retry_after(llmq_factory):
    srv = llmq_factory.start(slots=1, queue_max=1, ctx_size=1024)
    a = OpenStream(srv.base_url, LONG_NATIVE)
    b = None
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        b = OpenStream(srv.base_url, LONG_NATIVE)
        b.read_until(lambda e: e.event == "queued", "B queued")
        with sync_client(srv) as c:
            for stream in (False, True):
                t0 = time.monotonic()
                with pytest.raises(openai.RateLimitError) as e:
                    c.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4,
                                              stream=stream)
                assert time.monotonic() - t0 < 2, "the refusal must be immediate"
                err = e.value
                assert err.status_code == 429 and err.type == "rate_limit_error", err.body
                assert int(err.response.headers["retry-after"]) >= 1, err.response.headers
                assert err.response.headers.get("x-request-id"), err.response.headers
    finally:
        a.close()
        if b:
            b.close()


def test_shutting_down_is_a_server_error(llmq_factory):
    srv = llmq_factory.start(slots=1, ctx_size=1024)
    a = OpenStream(srv.base_url, LONG_NATIVE)
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while httpx.get(srv.base_url + "/readyz", timeout=5).status_code != 503:
            assert time.monotonic() < deadline, "/readyz still 200 while draining"
            time.sleep(0.05)
        with sync_client(srv) as c, pytest.raises(openai.InternalServerError) as e:
            c.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4)
        assert e.value.status_code == 503 and e.value.type == "server_error", e.value.body
    finally:
        a.close()
