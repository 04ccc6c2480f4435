"""What clients written for OpenAI meet beyond the basics: model names they hard-code (mapped to a
served model by --model-alias), one error shape on every OpenAI path (unknown routes and wrong
methods included, and OpenAI's context_length_exceeded), and `n` choices decoded side by side
from one prompt."""

from __future__ import annotations

from collections import defaultdict

import httpx
import openai
import pytest

from llmq_e2e import LlmqServer
from openai_clients import MODEL, QUESTION, sync_client

ALIASES = {"gpt-3.5-turbo": MODEL, "davinci-002": MODEL}
STORY = [{"role": "user", "content": "Tell me a short story about a dragon."}]


@pytest.fixture(scope="module")
def srv(tmp_path_factory, _prerequisites):
    """Four slots (so n may be 4) and two aliases, given as the environment gives a list."""
    s = LlmqServer(tmp_path_factory.mktemp("llmq-compat"), {"slots": 4, "ctx_size": 1024},
                   name="compat",
                   env={"LLMQ_MODEL_ALIAS": ",".join(f"{a}={m}" for a, m in ALIASES.items())})
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def client(srv):
    c = sync_client(srv)
    try:
        yield c
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# Model aliases


def test_hard_coded_model_names_reach_the_served_model(client):
    chat = client.chat.completions.create(model="gpt-3.5-turbo", messages=QUESTION, max_tokens=8,
                                          temperature=0)
    assert chat.choices[0].message.content
    assert chat.model == MODEL  # the answer names the model that ran
    legacy = client.completions.create(model="davinci-002", prompt="The sky is", max_tokens=4,
                                       temperature=0)
    assert legacy.choices[0].text and legacy.model == MODEL
    # The alias and the model's own id give the same greedy answer.
    own = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=8, temperature=0)
    assert own.choices[0].message.content == chat.choices[0].message.content


def test_aliases_are_listed_with_their_root(client):
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {MODEL, *ALIASES}
    for alias in ALIASES:
        assert models[alias].to_dict()["root"] == MODEL
    one = client.models.retrieve("gpt-3.5-turbo")
    assert one.id == "gpt-3.5-turbo" and one.to_dict()["root"] == MODEL


def test_unknown_names_are_still_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION, max_tokens=4)
    assert e.value.code == "model_not_found" and e.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


# --------------------------------------------------------------------------------------------
# One error shape


def openai_error(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    return err


@pytest.mark.parametrize("method,path,status,code", [
    ("GET", "/v1/nope", 404, "not_found"),
    ("POST", "/chat/completions", 404, "not_found"),  # a base_url without /v1
    ("GET", "/v1", 404, "not_found"),
    ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
    ("DELETE", "/v1/models", 405, "method_not_allowed"),
])
def test_unknown_routes_and_methods_answer_in_openais_shape(srv, method, path, status, code):
    r = httpx.request(method, srv.base_url + path)
    assert r.status_code == status
    err = openai_error(r)
    assert err["code"] == code and err["type"] == "invalid_request_error" and err["message"]
    if status == 405:
        assert r.headers["allow"]


def test_a_prompt_over_the_context_is_context_length_exceeded(client, srv):
    long = "word " * 1500
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": long}],
                                       max_tokens=4)
    assert e.value.code == "context_length_exceeded" and e.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt=long, max_tokens=4)
    assert e.value.code == "context_length_exceeded" and e.value.param == "prompt"
    # The native route keeps its contract's code.
    native = httpx.post(srv.base_url + "/api/v1/req", json={"prompt": long, "stream": False})
    assert native.status_code == 400 and native.json()["error"]["code"] == "context_exceeded"


def test_a_body_over_the_limit_is_refused_in_openais_shape(tmp_path, _prerequisites):
    s = LlmqServer(tmp_path, {"max_body_bytes": 2048, "slots": 1}, name="small-body")
    try:
        s.start()
        r = httpx.post(s.base_url + "/v1/chat/completions", content=b"{" + b" " * 4096 + b"}",
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert openai_error(r)["code"] == "body_too_large"
        native = httpx.post(s.base_url + "/api/v1/req", content=b"{" + b" " * 4096 + b"}",
                            headers={"Content-Type": "application/json"})
        assert native.status_code == 413 and set(native.json()["error"]) == {"code", "message"}
    finally:
        s.stop()


# --------------------------------------------------------------------------------------------
# n choices


def test_n_choices_whole(client):
    r = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=24, n=3,
                                       temperature=1.0, seed=7)
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert all(texts), texts
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
    assert len(set(texts)) > 1, f"three samples at temperature 1 came out the same: {texts}"
    one = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=24, temperature=1.0,
                                         seed=7)
    # The prompt is counted once; the completions are summed.
    assert r.usage.prompt_tokens == one.usage.prompt_tokens
    assert r.usage.completion_tokens >= 3
    # The same seed gives the same choices again, and choice 0 is what n=1 gives.
    again = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=24, n=3,
                                           temperature=1.0, seed=7)
    assert [c.message.content for c in again.choices] == texts
    assert texts[0] == one.choices[0].message.content


def test_n_choices_greedy_are_the_single_answer(client):
    single = client.completions.create(model=MODEL, prompt="The capital of France is",
                                       max_tokens=12, temperature=0)
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=12,
                                  temperature=0, n=4)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert {c.text for c in r.choices} == {single.choices[0].text}


def test_n_choices_streamed_match_the_whole_answer(client):
    whole = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=20, n=3,
                                           temperature=0.9, seed=11)
    stream = client.chat.completions.create(model=MODEL, messages=STORY, max_tokens=20, n=3,
                                            temperature=0.9, seed=11, stream=True,
                                            stream_options={"include_usage": True})
    texts: dict[int, str] = defaultdict(str)
    roles, finishes, usage = set(), {}, None
    for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
            continue
        assert len(chunk.choices) == 1
        c = chunk.choices[0]
        if c.delta.role:
            roles.add(c.index)
        texts[c.index] += c.delta.content or ""
        if c.finish_reason:
            finishes[c.index] = c.finish_reason
    assert roles == {0, 1, 2} and set(finishes) == {0, 1, 2}
    assert [texts[i] for i in range(3)] == [c.message.content for c in whole.choices]
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_n_choices_of_the_legacy_completions_stream(client):
    stream = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=10, n=2,
                                       temperature=0, stream=True)
    texts: dict[int, str] = defaultdict(str)
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] += c.text
    assert set(texts) == {0, 1} and texts[0] == texts[1] and texts[0]


@pytest.mark.parametrize("n", [0, 5, 9])
def test_n_out_of_range_is_refused(client, n):
    # 5: more than this server's four slots; 9: more than llmq ever allows.
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4, n=n)
    assert e.value.param == "n" and e.value.code == "out_of_range"
