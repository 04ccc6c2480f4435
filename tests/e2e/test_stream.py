"""The streaming response of POST /api/v1/req, and its non-streaming twin, on an idle server."""

from __future__ import annotations

import httpx

from llmq_e2e import model_name, pick_stop_word
from sse_client import json_request, stream_request

STORY = "Once upon a time, in a small village by the sea, there lived"


def test_event_order_ids_and_payloads(server):
    """queued (position 0 on an idle server), started, tokens, done; ids 0,1,2,..."""
    s = stream_request(server.base_url, {"prompt": STORY, "max_tokens": 16, "temperature": 0})
    # check_stream already enforced the grammar, the ids and the payload shapes.
    assert s.queued.data["position"] == 0, f"idle server, yet queued at {s.queued.data}"
    assert s.started is not None and s.started.data["attempt"] == 1
    assert s.waiting_pings == [], "pings while a slot was free"
    assert len(s.tokens) >= 1
    done = s.done
    # This prompt does not end within 16 tokens: max_tokens is what stopped it.
    assert done["finish_reason"] == "length", done
    assert done["usage"]["completion_tokens"] == 16, done
    t = done["timings"]
    assert t["decode_tokens_per_s"] > 0, t
    # total runs from arrival to done, so it covers the queue wait and the first token
    # (1 ms of slack per term for rounding).
    assert t["total_ms"] + 2 >= t["queue_ms"] + t["ttft_ms"], t
    assert s.started.data["queue_ms"] <= t["total_ms"] + 1


def test_request_ids_are_unique(server):
    a = stream_request(server.base_url, {"prompt": "Hi", "max_tokens": 2, "temperature": 0})
    b = stream_request(server.base_url, {"prompt": "Hi", "max_tokens": 2, "temperature": 0})
    c = json_request(server.base_url, {"prompt": "Hi", "max_tokens": 2, "temperature": 0})
    ids = {a.queued.data["id"], b.queued.data["id"], c["id"]}
    assert len(ids) == 3, ids


def test_non_streaming_equals_streamed_text(server):
    body = {"prompt": STORY, "max_tokens": 24, "temperature": 0, "seed": 42}
    streamed = stream_request(server.base_url, body)
    j = json_request(server.base_url, body)
    assert j["text"] == streamed.text
    assert j["finish_reason"] == streamed.finish_reason
    assert j["usage"] == streamed.done["usage"]


def test_stream_is_default(server):
    """`stream` defaults to true."""
    with httpx.stream("POST", server.req_url, json={"prompt": "Hi", "max_tokens": 2},
                      timeout=60) as r:
        r.read()
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")


def test_chat_messages(server):
    question = "What is the capital of France? Answer in one word."
    chat = stream_request(server.base_url, {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": question},
        ],
        "max_tokens": 16, "temperature": 0,
    })
    assert chat.text.strip(), "empty answer to a chat request"
    # The template's special tokens frame the prompt; they must not leak into the answer.
    assert "<|im_start|>" not in chat.text and "<|im_end|>" not in chat.text, chat.text
    # The chat template wraps the messages, so the prompt is longer than the bare question.
    bare = stream_request(server.base_url, {"prompt": question, "max_tokens": 1, "temperature": 0})
    assert chat.done["usage"]["prompt_tokens"] > bare.done["usage"]["prompt_tokens"] + 5
    # A model this small still knows this one.
    assert "paris" in chat.text.lower(), chat.text


def test_chat_multi_turn_with_assistant(server):
    s = stream_request(server.base_url, {
        "messages": [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Nice to meet you, Ada!"},
            {"role": "user", "content": "What is my name?"},
        ],
        "max_tokens": 12, "temperature": 0,
    })
    assert s.done["finish_reason"] in ("stop", "length")
    assert s.text.strip()


def test_model_field_accepts_own_name(server):
    j = json_request(server.base_url, {"prompt": "Hi", "max_tokens": 2, "model": model_name()})
    assert j["usage"]["completion_tokens"] >= 1


def test_stop_string_cuts_the_text(server):
    body = {"prompt": STORY, "max_tokens": 32, "temperature": 0}
    full = stream_request(server.base_url, body).text
    word = pick_stop_word(full)
    expected = full[: full.find(word)]  # greedy: the same text up to the first occurrence

    s = stream_request(server.base_url, {**body, "stop": word})
    assert s.done["finish_reason"] == "stop", s.done
    assert word not in s.text
    assert s.text == expected

    # The array form, with a stop string that never occurs besides.
    s2 = stream_request(server.base_url, {**body, "stop": ["#never#", word]})
    assert s2.done["finish_reason"] == "stop"
    assert s2.text == expected

    j = json_request(server.base_url, {**body, "stop": [word]})
    assert j["finish_reason"] == "stop" and j["text"] == expected


UTF8_PROMPTS = [
    # French with accents: the pieces of é, è, à, ç are two bytes each and often split.
    [{"role": "user", "content": "Écris une phrase en français avec des accents: é è à ç ù. "
                                 "Par exemple: « Le garçon a mangé à la crèche. »"}],
    # Emoji are four bytes, usually several tokens each.
    [{"role": "user", "content": "Repeat exactly: 😀🎉👍 café naïve 日本語"}],
]


def test_utf8_pieces(server):
    """Every token event is valid UTF-8 on its own, even where a character spans tokens."""
    non_ascii_seen = False
    for messages in UTF8_PROMPTS:
        body = {"messages": messages, "max_tokens": 32, "temperature": 0}
        # stream_request decodes each SSE line as strict UTF-8 and rejects lone surrogates.
        s = stream_request(server.base_url, body)
        text = s.text
        text.encode("utf-8")
        non_ascii_seen |= any(ord(c) > 127 for c in text)
        # Splitting into pieces loses nothing: the non-streaming text is the same.
        assert json_request(server.base_url, body)["text"] == text
    # Otherwise the test did not exercise multi-byte characters at all.
    assert non_ascii_seen, "the model wrote no non-ASCII character; pick other prompts"
