"""Structured output and log-probabilities, as OpenAI-SDK users and `curl` reach for them.

What users rely on: with `response_format` json_schema the answer is JSON that validates against
the schema, whatever the prompt and at temperature 1 (the grammar decides, not luck); a cut
answer says `length`; a schema or grammar llmq cannot enforce is a 400 naming the field before
anything is queued; `logprobs` are log-probabilities of the tokens that were sent, with the
likeliest alternatives, greedy runs sample the likeliest token, and streaming gives the same
entries as the whole answer.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import jsonschema
import openai
import pytest

from openai_clients import MODEL, async_client, client  # noqa: F401 (client: a fixture)
from sse_client import check_logprob_entries, json_request, stream_request

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": "string", "maxLength": 24},
        "hobbies": {"type": "array", "items": {"enum": ["chess", "music", "hiking", "cooking"]},
                    "maxItems": 3},
        "retired": {"type": "boolean"},
    },
    "required": ["name", "age", "city", "hobbies", "retired"],
    "additionalProperties": False,
}
PERSON_FORMAT = {"type": "json_schema",
                 "json_schema": {"name": "person", "strict": True, "schema": PERSON}}

SUBJECTS = ["a baker", "a pilot", "a nurse", "a painter", "a farmer", "a poet", "a sailor",
            "a judge", "a miner", "a chef", "a dancer", "a teacher", "a doctor", "a monk",
            "a clown", "a spy", "a king", "a student", "an engineer", "an astronaut"]


def person_prompt(subject: str) -> list[dict]:
    return [{"role": "user", "content": f"Describe {subject} from Paris as a JSON object."}]


def test_json_schema_holds_for_20_prompts_at_temperature_1(server):
    """Every answer validates, streamed or not; the grammar ends it, so none is cut."""
    async def run():
        room = asyncio.Semaphore(8)  # within the suite server's queue

        async with async_client(server) as c:
            async def whole(subject):
                async with room:
                    r = await c.chat.completions.create(
                        model=MODEL, messages=person_prompt(subject), temperature=1.0,
                        max_tokens=400, response_format=PERSON_FORMAT)
                return r.choices[0].message.content, r.choices[0].finish_reason

            async def streamed(subject):
                text, finish = "", None
                async with room:
                    async for chunk in await c.chat.completions.create(
                            model=MODEL, messages=person_prompt(subject), temperature=1.0,
                            max_tokens=400, response_format=PERSON_FORMAT, stream=True):
                        for choice in chunk.choices:
                            text += choice.delta.content or ""
                            finish = choice.finish_reason or finish
                return text, finish

            return await asyncio.gather(*[whole(s) for s in SUBJECTS],
                                        *[streamed(s) for s in SUBJECTS])

    answers = asyncio.run(run())
    assert len(answers) == 2 * len(SUBJECTS)
    for text, finish in answers:
        assert finish == "stop", (finish, text)
        jsonschema.validate(json.loads(text), PERSON)
    # Temperature 1 samples: the answers are not one answer repeated.
    assert len({text for text, _ in answers}) > 5


def test_json_object_is_a_json_object(client):
    for prompt in ("List three colours.", "What is 2+2?"):
        r = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=200,
            temperature=0, response_format={"type": "json_object"})
        if r.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(r.choices[0].message.content), dict)
        else:  # a greedy model may fill an open object until max_tokens: then it says so
            assert r.choices[0].finish_reason == "length"
            assert r.choices[0].message.content.startswith("{")


def test_json_schema_on_completions(client):
    r = client.completions.create(
        model=MODEL, prompt="The number of legs of a spider, as JSON:", max_tokens=40,
        temperature=1.0, extra_body={"response_format": {
            "type": "json_schema", "json_schema": {"name": "n", "schema": {
                "type": "object", "properties": {"legs": {"type": "integer", "minimum": 0,
                                                          "maximum": 99}},
                "required": ["legs"], "additionalProperties": False}}}})
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].text)["legs"], int)


def test_an_unanchored_pattern_matches_anywhere(server):
    """JSON Schema's `pattern` is a search, not a full match: llmq enforces it as written."""
    import re
    for seed in range(3):
        r = json_request(server.base_url, {
            "prompt": "A product code:", "max_tokens": 100, "temperature": 1.0, "seed": seed,
            "stream": False,
            "json_schema": {"type": "string", "pattern": "[0-9]{3}-[A-Z]{2}", "maxLength": 20}})
        assert r["finish_reason"] == "stop", r
        value = json.loads(r["text"])
        # Each free end is at most maxLength long (with a pattern, llama.cpp's converter
        # enforces no length itself): the string ends, and it holds the pattern.
        assert re.search("[0-9]{3}-[A-Z]{2}", value) and len(value) <= 2 * 20 + 6, value


def test_a_cut_document_says_length(client):
    r = client.chat.completions.create(
        model=MODEL, messages=person_prompt("a baker"), max_tokens=5, temperature=1.0,
        response_format=PERSON_FORMAT)
    assert r.choices[0].finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.choices[0].message.content)


def test_native_grammar_and_schema(server):
    s = stream_request(server.base_url, {
        "prompt": "Is the sky green? Answer:", "max_tokens": 10, "temperature": 1.0,
        "grammar": 'root ::= " " ("yes" | "no")'})
    assert s.finish_reason == "stop" and s.text in (" yes", " no"), s.text
    r = json_request(server.base_url, {
        "prompt": "A colour:", "max_tokens": 30, "temperature": 1.0, "stream": False,
        "json_schema": {"enum": ["red", "green", "blue"]}})
    assert r["finish_reason"] == "stop" and json.loads(r["text"]) in ("red", "green", "blue"), r


REFUSED = [
    # (body fields, the field named, the code)
    ({"grammar": 'root ::= root "a" | "a"'}, "grammar", "invalid_grammar"),
    ({"grammar": "root ::= missing"}, "grammar", "invalid_grammar"),
    ({"grammar": 'root ::= "unclosed'}, "grammar", "invalid_grammar"),
    ({"grammar": 'root ::= "a"{5000}'}, "grammar", "out_of_range"),
    ({"json_schema": {"$ref": "https://example.com/schema.json"}}, "json_schema", "invalid_schema"),
    ({"json_schema": {"type": "integer-ish"}}, "json_schema", "invalid_schema"),
    ({"json_schema": {"type": "string", "pattern": "^(?!x).*$"}}, "json_schema", "invalid_schema"),
    ({"json_schema": {"type": "string", "maxLength": 100000}}, "json_schema", "out_of_range"),
    ({"json_schema": "{}"}, "json_schema", "invalid_type"),
]


@pytest.mark.parametrize("fields,field,code", REFUSED, ids=[f"{r[1]}-{i}" for i, r in enumerate(REFUSED)])
def test_what_cannot_be_enforced_is_refused_before_queueing(server, fields, field, code):
    import httpx
    r = httpx.post(server.req_url, json={"prompt": "x", "max_tokens": 4, **fields}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["field"], err["code"]) == (field, code), err
    assert field in err["message"], err


def test_openai_refusal_names_the_schema(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL, messages=person_prompt("a spy"), max_tokens=4,
            response_format={"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"$ref": "https://example.com/schema.json"}}})
    assert e.value.param == "response_format.json_schema.schema", e.value.body
    assert e.value.code == "invalid_schema", e.value.body


# --------------------------------------------------------------------------------------------
# Log-probabilities


def entry_bytes(entries) -> bytes:
    return bytes(b for e in entries for b in e["bytes"])


def test_chat_logprobs_greedy_and_streamed_agree(client):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Name a fruit."}], max_tokens=12,
              temperature=0, logprobs=True, top_logprobs=5)
    r = client.chat.completions.create(**kw)
    content = [e.model_dump() for e in r.choices[0].logprobs.content]
    check_logprob_entries(content)
    assert len(content) == r.usage.completion_tokens - (r.choices[0].finish_reason == "stop")
    assert entry_bytes(content) == r.choices[0].message.content.encode()
    for e in content:
        assert len(e["top_logprobs"]) == 5
        # Greedy: the sampled token is the likeliest, with the likeliest's log-probability.
        assert e["top_logprobs"][0]["bytes"] == e["bytes"], e
        assert e["logprob"] == pytest.approx(e["top_logprobs"][0]["logprob"], abs=1e-6)
    streamed = []
    for chunk in client.chat.completions.create(**kw, stream=True):
        for choice in chunk.choices:
            if choice.logprobs and choice.logprobs.content:
                streamed += [e.model_dump() for e in choice.logprobs.content]
    assert [(e["bytes"], round(e["logprob"], 4)) for e in streamed] == \
        [(e["bytes"], round(e["logprob"], 4)) for e in content]


def test_sampled_logprobs_are_the_sampled_tokens(client):
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Tell me a joke."}], max_tokens=24,
        temperature=1.0, seed=7, logprobs=True, top_logprobs=0)
    content = [e.model_dump() for e in r.choices[0].logprobs.content]
    check_logprob_entries(content)
    assert entry_bytes(content) == r.choices[0].message.content.encode()
    assert all(e["top_logprobs"] == [] for e in content)
    assert sum(e["logprob"] for e in content) < 0


def test_no_logprobs_unless_asked(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=4)
    assert r.choices[0].logprobs is None


def test_completions_legacy_logprobs(client):
    r = client.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=6,
                                  temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert "".join(lp.tokens) == r.choices[0].text
    assert all(v <= 0 for v in lp.token_logprobs)
    for tok, top, v in zip(lp.tokens, lp.top_logprobs, lp.token_logprobs):
        assert 1 <= len(top) <= 3 and max(top.values()) == pytest.approx(v, abs=1e-6)
        assert max(top, key=top.get) == tok
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0


def test_native_logprobs_in_token_events(server):
    body = {"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0,
            "logprobs": True, "top_logprobs": 2}
    s = stream_request(server.base_url, body)
    entries = [e for t in s.tokens for e in t.data.get("logprobs", [])]
    assert entry_bytes(entries) == s.text.encode()
    whole = json_request(server.base_url, {**body, "stream": False})
    assert entry_bytes(whole["logprobs"]) == whole["text"].encode()
    assert [e["logprob"] for e in whole["logprobs"]] == pytest.approx([e["logprob"] for e in entries], abs=1e-4)


def test_curl_sends_every_new_field(server):
    """curl, streaming: a schema and logprobs together, in OpenAI's chunk shape."""
    body = {"model": MODEL, "messages": person_prompt("a pilot"), "max_tokens": 300,
            "temperature": 1.0, "stream": True, "logprobs": True, "top_logprobs": 2,
            "response_format": PERSON_FORMAT}
    out = subprocess.run(
        ["curl", "-sS", "-N", "--max-time", "120", "-H", "Content-Type: application/json",
         "-d", json.dumps(body), server.base_url + "/v1/chat/completions"],
        capture_output=True, text=True, timeout=150, check=True).stdout
    chunks = [json.loads(line[6:]) for line in out.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    entries = [e for c in chunks if c["choices"] and c["choices"][0]["logprobs"]
               for e in c["choices"][0]["logprobs"]["content"]]
    jsonschema.validate(json.loads(text), PERSON)
    check_logprob_entries(entries)
    assert entry_bytes(entries) == text.encode()


def hostile_schema(rng, depth=0):
    """A schema of real keywords with values of every kind, valid or not."""
    keywords = ["type", "properties", "items", "prefixItems", "required", "enum", "const", "anyOf",
                "oneOf", "allOf", "$ref", "$defs", "pattern", "format", "minimum", "maximum",
                "exclusiveMinimum", "minItems", "maxItems", "minLength", "maxLength",
                "additionalProperties", "patternProperties", "not", "if", "then"]
    values = [None, True, False, 0, -1, 7, 2**63, 1.5, -1e308, "", "object", "string", "integer",
              "array", "number", "#/$defs/x", "#/nope", "#", "^[a-z]{2,5}$", "(", "[", "\\", "a{3",
              "date-time", "uuid", [], [1, "a"], {}]
    schema = {}
    for _ in range(rng.randint(1, 5)):
        key = rng.choice(keywords)
        if depth < 4 and rng.random() < 0.4:
            child = hostile_schema(rng, depth + 1)
            schema[key] = rng.choice([child, [child, hostile_schema(rng, depth + 1)],
                                      {"a": child, "b": {"type": "string"}}])
        else:
            schema[key] = rng.choice(values)
    return schema


def test_hostile_schemas_get_an_answer_and_the_server_goes_on(server):
    """Every schema is compiled (or refused) with a 4xx naming the field, never a crash."""
    import random

    import httpx
    rng = random.Random(1234)
    seen = {}
    with httpx.Client(timeout=60) as http:
        for _ in range(300):
            r = http.post(server.req_url, json={"prompt": "x", "max_tokens": 1, "stream": False,
                                                "json_schema": hostile_schema(rng)})
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code in (200, 400), r.text
            if r.status_code == 400:
                assert r.json()["error"]["field"] == "json_schema", r.text
        assert http.get(server.base_url + "/healthz").status_code == 200
    assert seen.get(200) and seen.get(400), seen  # both kinds came up
