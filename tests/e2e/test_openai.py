"""The OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models), driven the way
users drive it: with the official `openai` SDK (sync and async, streaming and not) and `curl`.

What users rely on: code written for OpenAI works against llmq by changing `base_url`; the
streamed chunks follow OpenAI's sequence and concatenate to the non-streamed answer; the knobs
they send (max_tokens, stop, seed, user, ...) do what they do at OpenAI, and what llmq cannot do
is refused (test_openai_refusals.py); a waiting stream is kept alive with `: ping` comments; an
error after the stream began arrives in the stream; a shared prompt prefix is not computed twice
(cached_tokens).
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
import openai
import pytest

from llmq_e2e import LONG_PROMPT, pick_stop_word
from openai_clients import (LONG_NATIVE, MODEL, QUESTION, async_client, chat, client,  # noqa: F401
                            sync_client)
from openai_shapes import (check_chat_chunks, check_chat_completion, check_completion_chunks,
                           check_text_completion)
from metrics_util import scrape
from sse_client import OpenStream, json_request, stream_request

STORY = "Once upon a time, in a small village by the sea, there lived"
STORY_CHAT = [{"role": "user", "content": "Tell me a short story about a dragon."}]


# --------------------------------------------------------------------------------------------
# Chat and completions, sync


def test_chat_completion(client):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=QUESTION, max_tokens=16, temperature=0)
    assert raw.status_code == 200 and raw.headers.get("x-request-id"), raw.headers
    text = check_chat_completion(raw.parse())
    # A model this small still knows this one.
    assert "paris" in text.lower(), text


def test_chat_stream_chunk_sequence_and_same_text_as_non_streamed(client):
    """At temperature 0, the streamed deltas concatenate to the non-streamed answer."""
    r = client.chat.completions.create(model=MODEL, messages=STORY_CHAT, max_tokens=24,
                                       temperature=0)
    full = check_chat_completion(r)
    with client.chat.completions.create(model=MODEL, messages=STORY_CHAT, max_tokens=24,
                                        temperature=0, stream=True) as stream:
        chunks = list(stream)
    text, finish, _ = check_chat_chunks(chunks)
    assert text == full
    assert finish == r.choices[0].finish_reason
    assert len(chunks) - 2 <= r.usage.completion_tokens  # a delta holds at least one token
    # OpenAI: `usage` "will only be present when you set stream_options.include_usage".
    with_usage = [i for i, c in enumerate(chunks) if "usage" in c.to_dict()]
    assert with_usage == [], (f"without include_usage, chunks {with_usage} of {len(chunks)} carry "
                              f"a usage key: {[chunks[i].to_dict() for i in with_usage[:2]]}")


def test_include_usage_on_chat_and_completions(client):
    """stream_options.include_usage: `usage: null` in every chunk, then one chunk without
    choices carrying the same usage the non-streamed answer reports."""
    body = dict(model=MODEL, messages=STORY_CHAT, max_tokens=12, temperature=0)
    want = client.chat.completions.create(**body).usage
    chunks = list(client.chat.completions.create(
        **body, stream=True, stream_options={"include_usage": True}))
    _, _, usage = check_chat_chunks(chunks, include_usage=True)
    assert (usage.prompt_tokens, usage.completion_tokens) == (want.prompt_tokens,
                                                              want.completion_tokens)

    body = dict(model=MODEL, prompt=STORY, max_tokens=12, temperature=0)
    want = client.completions.create(**body).usage
    chunks = list(client.completions.create(
        **body, stream=True, stream_options={"include_usage": True}))
    _, _, usage = check_completion_chunks(chunks, include_usage=True)
    assert (usage.prompt_tokens, usage.completion_tokens) == (want.prompt_tokens,
                                                              want.completion_tokens)
    assert usage.completion_tokens == 12


def test_completions_continue_the_raw_prompt(client, server):
    """/v1/completions continues the prompt itself (no chat template): the same greedy text and
    prompt token count as the native route; streamed text equals non-streamed; a one-string
    array is the same prompt."""
    r = client.completions.create(model=MODEL, prompt=STORY, max_tokens=16, temperature=0)
    text = check_text_completion(r)
    native = json_request(server.base_url, {"prompt": STORY, "max_tokens": 16, "temperature": 0})
    assert text == native["text"]
    assert r.usage.prompt_tokens == native["usage"]["prompt_tokens"]

    chunks = list(client.completions.create(model=MODEL, prompt=STORY, max_tokens=16,
                                            temperature=0, stream=True))
    streamed, finish, _ = check_completion_chunks(chunks)
    assert streamed == text and finish == r.choices[0].finish_reason
    assert not any("usage" in c.to_dict() for c in chunks), "usage without include_usage"

    r2 = client.completions.create(model=MODEL, prompt=[STORY], max_tokens=16, temperature=0)
    assert check_text_completion(r2) == text


def test_max_tokens_ends_with_length(client):
    r = client.chat.completions.create(model=MODEL, messages=STORY_CHAT, max_tokens=8,
                                       temperature=0)
    check_chat_completion(r)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8, r
    # The newer name of the same limit.
    r = client.chat.completions.create(model=MODEL, messages=STORY_CHAT,
                                       max_completion_tokens=8, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8, r
    r = client.completions.create(model=MODEL, prompt=LONG_PROMPT, max_tokens=8, temperature=0)
    check_text_completion(r)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8, r


def test_stop_sequence(client):
    full = chat(client, STORY_CHAT, max_tokens=32)
    word = pick_stop_word(full)
    expected = full[: full.find(word)]  # greedy: the same text up to the first occurrence
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=STORY_CHAT, max_tokens=32, temperature=0, stream=True,
        stop=["#never#", word]))
    text, finish, _ = check_chat_chunks(chunks)
    assert finish == "stop" and text == expected, (word, text)

    full = check_text_completion(client.completions.create(
        model=MODEL, prompt=STORY, max_tokens=32, temperature=0))
    word = pick_stop_word(full)
    r = client.completions.create(model=MODEL, prompt=STORY, max_tokens=32, temperature=0,
                                  stop=word)
    assert r.choices[0].finish_reason == "stop", r
    assert r.choices[0].text == full[: full.find(word)], (word, r.choices[0].text)


def test_content_parts_roles_and_optional_fields(client, server):
    """Content as a text part is the same prompt as the string; several parts, the developer
    role, `user`, sampling knobs, the harmless values of unsupported features and llmq's
    timeout_ms are accepted; `model` may be left out."""
    as_string = chat(client)
    part = [{"role": "user", "content": [{"type": "text", "text": QUESTION[0]["content"]}]}]
    assert chat(client, part) == as_string
    parts = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of"},
                                          {"type": "text", "text": " Italy?"}]}]
    assert chat(client, parts, max_tokens=4).strip(), "empty answer"

    # Including the values that ask for nothing llmq lacks, as SDK wrappers send them.
    text = chat(client, [{"role": "developer", "content": "Answer briefly."}, *QUESTION],
                user="user-1234", top_p=0.9, presence_penalty=0.5, frequency_penalty=-0.5,
                n=1, logprobs=False, tools=[], logit_bias={}, response_format={"type": "text"},
                stream=False, extra_body={"timeout_ms": 60000})
    assert text.strip(), "empty answer"

    r = httpx.post(server.base_url + "/v1/chat/completions", timeout=60,
                   json={"messages": QUESTION, "max_tokens": 4, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == MODEL and r.headers.get("x-request-id"), r.text


def test_seed_reproduces_sampling(client):
    """At the default temperature (1.0), the same seed gives the same text."""
    body = dict(model=MODEL, messages=STORY_CHAT, max_tokens=16, seed=1234)
    a = check_chat_completion(client.chat.completions.create(**body))
    b = check_chat_completion(client.chat.completions.create(**body))
    assert a == b


# --------------------------------------------------------------------------------------------
# Async client


def test_async_client_concurrent_requests(client, server):
    """Four requests at once through AsyncOpenAI (two streamed): each gets its own answer, the
    same as it got alone."""
    questions = ["Name a colour.", "What is 2 + 2?", "Say hello in French.", "Name a fruit."]
    msgs = [[{"role": "user", "content": q}] for q in questions]
    alone = [chat(client, m) for m in msgs]

    async def run():
        async with async_client(server) as ac:
            async def plain(m):
                return check_chat_completion(await ac.chat.completions.create(
                    model=MODEL, messages=m, max_tokens=16, temperature=0))

            async def streamed(m):
                stream = await ac.chat.completions.create(
                    model=MODEL, messages=m, max_tokens=16, temperature=0, stream=True)
                return check_chat_chunks([c async for c in stream])[0]

            return await asyncio.gather(plain(msgs[0]), streamed(msgs[1]), plain(msgs[2]),
                                        streamed(msgs[3]))

    assert asyncio.run(run()) == alone


# --------------------------------------------------------------------------------------------
# Models


def test_models_list_and_retrieve(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    m = models.data[0]
    assert m.object == "model" and m.owned_by == "llmq", m
    assert isinstance(m.created, int) and m.created > 0, m
    assert client.models.retrieve(MODEL).to_dict() == m.to_dict()
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model")
    assert e.value.type == "invalid_request_error" and e.value.code == "model_not_found", e.value.body


# --------------------------------------------------------------------------------------------
# curl, pings, and an error after the stream began


def curl_stream(url: str, body: dict, header_file, on_line=lambda line: None):
    """POSTs with `curl -sN` and returns (stdout lines, response headers as a lowercase dict,
    raw stdout); `on_line` sees each line as it arrives."""
    p = subprocess.Popen(
        ["curl", "-sN", "--max-time", "60", "-D", str(header_file),
         "-H", "Content-Type: application/json", "-H", "Authorization: Bearer unused",
         "-d", json.dumps(body), url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines, raw = [], b""
    try:
        for b in iter(p.stdout.readline, b""):
            raw += b
            line = b.decode("utf-8").rstrip("\r\n")
            lines.append(line)
            on_line(line)
    finally:
        p.stdout.close()
        rc = p.wait(60)
    assert rc == 0, f"curl exited {rc}: {p.stderr.read().decode(errors='replace')}"
    p.stderr.close()
    head = header_file.read_text().splitlines()
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:]) if v}
    assert " 200" in head[0], head
    return lines, headers, raw


def sse_data(lines: list[str]) -> list[str]:
    """The payloads of the `data:` lines; every other non-empty line must be a comment."""
    out = []
    for line in lines:
        if line.startswith("data: "):
            out.append(line[len("data: "):])
        else:
            assert line == "" or line.startswith(":"), f"not an SSE line: {line!r}"
    return out


def test_curl_stream(server, tmp_path):
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 8, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    lines, headers, raw = curl_stream(server.base_url + "/v1/chat/completions", body,
                                      tmp_path / "h")
    assert headers["content-type"].startswith("text/event-stream"), headers
    assert headers.get("x-request-id"), headers
    data = sse_data(lines)
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1, data
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}, chunks
    assert all(c["object"] == "chat.completion.chunk" and "usage" in c for c in chunks), chunks
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1, chunks
    # Each event ends with a blank line, [DONE] too (an EventSource dispatches nothing before).
    assert raw.replace(b"\r\n", b"\n").endswith(b"data: [DONE]\n\n"), raw[-60:]


def test_curl_stream_pings_while_waiting(llmq_factory, tmp_path):
    """With the only slot busy, a streamed request gets `: ping` comments before any data; when
    the slot frees it streams its chunks and [DONE]."""
    srv = llmq_factory.start(slots=1, ctx_size=1024, ping_interval_ms=200)
    a = OpenStream(srv.base_url, LONG_NATIVE)
    try:
        a.read_until(lambda e: e.event == "started", "A started")

        def free_the_slot_after_a_ping(line):
            if line.startswith(":"):
                a.close()  # A's client leaves: its job is cancelled and B starts

        body = {"model": MODEL, "prompt": STORY, "max_tokens": 8, "temperature": 0,
                "stream": True}
        lines, _, _ = curl_stream(srv.base_url + "/v1/completions", body, tmp_path / "h",
                                  free_the_slot_after_a_ping)
    finally:
        a.close()
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data: "))
    pings = [line for line in lines[:first_data] if line]
    assert pings and all(line == ": ping" for line in pings), lines[:first_data]
    data = sse_data(lines)
    assert data[-1] == "[DONE]", data
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks), chunks
    assert "".join(c["choices"][0]["text"] for c in chunks).strip(), chunks


def test_error_after_the_stream_began(llmq_factory):
    """A deadline (timeout_ms) that passes while the request waits: the stream, already begun,
    ends with `data: {"error": ...}` and no [DONE]; the SDK raises APIError while iterating."""
    srv = llmq_factory.start(slots=1, ctx_size=1024)
    a = OpenStream(srv.base_url, LONG_NATIVE)
    try:
        a.read_until(lambda e: e.event == "started", "A started")
        body = {"model": MODEL, "messages": QUESTION, "max_tokens": 4, "stream": True,
                "timeout_ms": 600}
        with httpx.stream("POST", srv.base_url + "/v1/chat/completions", json=body,
                          timeout=30) as r:
            assert r.status_code == 200, r.read()
            lines = list(r.iter_lines())
        data = sse_data(lines)
        assert "[DONE]" not in data, data
        assert len(data) == 1, f"chunks before the job ran: {data}"
        err = json.loads(data[0])["error"]
        assert {"message", "type", "param", "code"} <= err.keys() and err["message"], err

        with sync_client(srv) as c:
            stream = c.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4,
                                               stream=True, extra_body={"timeout_ms": 600})
            got = []
            with pytest.raises(openai.APIError) as e:
                got.extend(stream)
            assert not isinstance(e.value, openai.APIStatusError), e.value
            assert got == [] and e.value.message, (got, e.value.body)
    finally:
        a.close()


# --------------------------------------------------------------------------------------------
# Prefix cache and metrics


TOPICS = ["boats", "birds", "bread", "bridges", "clocks", "comets", "deserts", "dragons",
          "engines", "forests", "glaciers", "maps"]
# A system message of ~300 tokens, shared by the requests below; only the question differs.
HANDBOOK = "You are the help desk of the Harbour Lane library. " + " ".join(
    f"Rule {i}: shelf {i} holds the books about {t}, which may be borrowed for {i % 4 + 1} weeks."
    for i, t in enumerate(TOPICS, start=1))


def test_shared_prefix_is_cached(client, server):
    def ask(question):
        return [{"role": "system", "content": HANDBOOK}, {"role": "user", "content": question}]

    client.chat.completions.create(model=MODEL, messages=ask("Where are the books about maps?"),
                                   max_tokens=8, temperature=0)
    before = scrape(server.base_url).total("llmq_prompt_cache_hit_tokens_total")
    r = client.chat.completions.create(model=MODEL, messages=ask("How long may I keep a book?"),
                                       max_tokens=8, temperature=0)
    check_chat_completion(r)
    cached = r.usage.prompt_tokens_details.cached_tokens
    # The system message is most of the prompt: at least that half was not computed again.
    assert r.usage.prompt_tokens // 2 <= cached <= r.usage.prompt_tokens - 1, r.usage
    # The native route reports it too, streamed or not.
    native_body = {"messages": ask("Which shelf holds the clocks?"), "max_tokens": 8,
                   "temperature": 0}
    j = json_request(server.base_url, native_body)
    s = stream_request(server.base_url, {**native_body, "messages": ask("Is it open today?")})
    native = [j["usage"]["cached_tokens"], s.done["usage"]["cached_tokens"]]
    assert all(n >= j["usage"]["prompt_tokens"] // 2 for n in native), (native, j["usage"])
    after = scrape(server.base_url).total("llmq_prompt_cache_hit_tokens_total")
    assert after - before == cached + sum(native)


def test_requests_counted_by_route(client, server):
    def count(m, route, code):
        return m.get("llmq_requests_total", route=route, code=code)

    before = scrape(server.base_url)
    chat(client, max_tokens=2)
    client.completions.create(model=MODEL, prompt="Hi", max_tokens=2)
    client.models.list()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=QUESTION, n=9)
    after = scrape(server.base_url)
    for route, code, n in (("/v1/chat/completions", "200", 1), ("/v1/chat/completions", "400", 1),
                           ("/v1/completions", "200", 1), ("/v1/models", "200", 1)):
        assert count(after, route, code) - count(before, route, code) == n, (route, code)
