"""What OpenAI's answers look like, checked on the `openai` SDK's objects: the non-streamed
chat.completion / text_completion and the sequence of streamed chunks, as OpenAI's API reference
shapes them. Used by test_openai.py and openai_clients.py."""

from __future__ import annotations

import time

from llmq_e2e import model_name

MODEL = model_name()
FINISH = ("stop", "length")

def check_usage(u) -> None:
    assert u.prompt_tokens > 0 and u.completion_tokens >= 0, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
    cached = u.prompt_tokens_details.cached_tokens
    assert isinstance(cached, int) and 0 <= cached <= u.prompt_tokens - 1, u


def check_created(created: int) -> None:
    assert isinstance(created, int) and abs(created - time.time()) < 120, created


def check_chat_completion(r) -> str:
    """A non-streamed chat.completion as OpenAI shapes it; returns the text."""
    d = r.to_dict()  # what the server sent (fields it did not send are left out)
    assert r.id.startswith("chatcmpl-"), r.id
    assert r.object == "chat.completion" and r.model == MODEL, d
    check_created(r.created)
    assert len(r.choices) == 1, d
    c = r.choices[0]
    assert c.index == 0 and c.finish_reason in FINISH, d
    assert "logprobs" in d["choices"][0] and c.logprobs is None, d
    assert c.message.role == "assistant" and isinstance(c.message.content, str), d
    # The template's special tokens frame the prompt; they must not leak into the answer.
    assert "<|im_start|>" not in c.message.content and "<|im_end|>" not in c.message.content
    check_usage(r.usage)
    return c.message.content


def check_text_completion(r) -> str:
    d = r.to_dict()
    assert isinstance(r.id, str) and r.id, d
    assert r.object == "text_completion" and r.model == MODEL, d
    check_created(r.created)
    assert len(r.choices) == 1, d
    c = r.choices[0]
    assert c.index == 0 and c.finish_reason in FINISH and isinstance(c.text, str), d
    assert "logprobs" in d["choices"][0] and c.logprobs is None, d
    check_usage(r.usage)
    return c.text


def pop_usage_chunk(chunks: list):
    """Takes the last chunk off `chunks`: with include_usage it has no choices and the usage."""
    last = chunks.pop()
    assert last.choices == [] and last.usage is not None, f"no usage chunk last: {last}"
    check_usage(last.usage)
    return last.usage


def check_chat_chunks(chunks: list, *, include_usage: bool = False):
    """OpenAI's chunk sequence: a role chunk with empty content, content deltas, a chunk with an
    empty delta and the finish_reason, then (include_usage) one chunk with no choices and the
    usage. Returns (text, finish_reason, usage or None)."""
    chunks = list(chunks)
    where = lambda i: f"chunk #{i} of {len(chunks)}: {chunks[i].to_dict()}"  # noqa: E731
    assert len(chunks) >= 2, f"too few chunks: {[c.to_dict() for c in chunks]}"
    first = chunks[0]
    assert first.id.startswith("chatcmpl-"), first.id
    check_created(first.created)
    for i, c in enumerate(chunks):
        assert c.object == "chat.completion.chunk", where(i)
        assert (c.id, c.created, c.model) == (first.id, first.created, MODEL), where(i)
        if include_usage:
            assert "usage" in c.to_dict(), f"include_usage, yet no usage key: {where(i)}"
    usage = pop_usage_chunk(chunks) if include_usage else None
    if include_usage:
        assert all(c.usage is None for c in chunks), "usage before the last chunk"
    *body, end = chunks
    for i, c in enumerate(chunks):
        assert len(c.choices) == 1 and c.choices[0].index == 0, where(i)
    assert first.choices[0].delta.to_dict() == {"role": "assistant", "content": ""}, where(0)
    for i, c in enumerate(body):
        assert c.choices[0].finish_reason is None, f"finish_reason before the end: {where(i)}"
        if i > 0:
            delta = c.choices[0].delta
            assert delta.role is None, f"role repeated: {where(i)}"
            assert isinstance(delta.content, str) and delta.content, f"empty delta: {where(i)}"
    assert end.choices[0].delta.to_dict() == {}, f"last choice chunk has a delta: {end}"
    assert end.choices[0].finish_reason in FINISH, end
    text = "".join(c.choices[0].delta.content for c in body)
    return text, end.choices[0].finish_reason, usage


def check_completion_chunks(chunks: list, *, include_usage: bool = False):
    """Streamed text_completion chunks; returns (text, finish_reason, usage or None)."""
    chunks = list(chunks)
    assert chunks, "no chunk at all"
    first = chunks[0]
    usage = pop_usage_chunk(chunks) if include_usage else None
    for i, c in enumerate(chunks):
        assert c.object == "text_completion", c
        if include_usage:
            assert "usage" in c.to_dict(), f"include_usage, yet no usage key: {c}"
        assert (c.id, c.created, c.model) == (first.id, first.created, MODEL), c
        assert len(c.choices) == 1 and c.choices[0].index == 0, c
        assert isinstance(c.choices[0].text, str), c
        if i < len(chunks) - 1:
            assert c.choices[0].finish_reason is None, f"finish_reason before the end: {c}"
    assert chunks[-1].choices[0].finish_reason in FINISH, chunks[-1]
    return "".join(c.choices[0].text for c in chunks), chunks[-1].choices[0].finish_reason, usage
