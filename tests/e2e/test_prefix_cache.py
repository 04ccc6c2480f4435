"""The prefix (KV) cache, against the real model: a request that shares a prefix with an earlier
one, even one still generating in another slot, prefills only the rest.

What users rely on: cached_tokens is an honest count; a cached prefix gives the answer a cold
prompt gives (the same opening words: llama.cpp's kernels round differently for a few tokens
than for a long batch, so a greedy answer may drift late in the text, as with llama-server's
cache_prompt); and a request repeated against the same cache gets the same text every time.
"""

from __future__ import annotations

import openai
import pytest

from llmq_e2e import model_name
from sse_client import OpenStream

MODEL = model_name()
TOPICS = ["rivers", "bridges", "clocks", "birds", "ships", "gardens", "trains", "stars",
          "bread", "music", "engines", "forests", "glaciers", "maps"]
# A system message of ~300 tokens shared by every request below.
HANDBOOK = "You are the help desk of the Harbour Lane library. " + " ".join(
    f"Rule {i}: shelf {i} holds the books about {t}, which may be borrowed for {i % 4 + 1} weeks."
    for i, t in enumerate(TOPICS, start=1))
QUESTION = "Where are the books about clocks?"


def messages(question: str) -> list[dict]:
    return [{"role": "system", "content": HANDBOOK}, {"role": "user", "content": question}]


def ask(client: openai.OpenAI, question: str):
    r = client.chat.completions.create(model=MODEL, messages=messages(question), max_tokens=24,
                                       temperature=0)
    return r.choices[0].message.content, r.usage


def client_for(srv) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


def opening(text: str) -> list[str]:
    """The first words: what a corrupt cache (wrong cells, wrong positions) would change."""
    return text.split()[:3]


def test_a_slots_own_cache_is_reused_and_its_answers_are_stable(llmq_factory):
    srv = llmq_factory.start(slots=1)
    with client_for(srv) as c:
        cold, cold_usage = ask(c, QUESTION)  # the first request: nothing cached
        assert cold_usage.prompt_tokens_details.cached_tokens == 0, cold_usage
        ask(c, "How long may I keep a book about maps?")
        text, usage = ask(c, QUESTION)
        again, again_usage = ask(c, QUESTION)
    assert usage.prompt_tokens == cold_usage.prompt_tokens
    # Everything before the question came from the cache.
    assert usage.prompt_tokens_details.cached_tokens >= usage.prompt_tokens - 20, usage
    assert opening(text) == opening(cold), (text, cold)
    # The whole prompt but its last token, this time: the same text as the time before.
    assert again_usage.prompt_tokens_details.cached_tokens == again_usage.prompt_tokens - 1
    assert again == text, (again, text)


def test_a_prefix_held_by_a_generating_slot_is_copied(llmq_factory):
    srv = llmq_factory.start(slots=2)
    with client_for(srv) as c:
        cold, _ = ask(c, QUESTION)
        # A long answer takes the slot holding the handbook and keeps it busy while the question
        # comes again: the free slot gets the handbook's cells copied from the busy one.
        runner = OpenStream(srv.base_url, {"messages": messages("List every rule, one per line."),
                                           "max_tokens": 2000, "temperature": 0})
        try:
            runner.read_until(lambda e: e.event == "token", "the runner's first token")
            text, usage = ask(c, QUESTION)
            runner.read_until(lambda e: e.event in ("token", "ping", "done"), "the runner going on")
        finally:
            runner.close()
    assert opening(text) == opening(cold), (text, cold)
    assert usage.prompt_tokens_details.cached_tokens >= usage.prompt_tokens - 20, usage


def test_a_different_prompt_gets_no_cached_tokens_it_does_not_share(llmq_factory):
    srv = llmq_factory.start(slots=1)
    with client_for(srv) as c:
        ask(c, QUESTION)
        r = c.completions.create(model=MODEL, prompt="Roses are red, violets are", max_tokens=4,
                                 temperature=0)
    # A raw prompt shares at most the BOS token (if any) with a chat-templated one.
    assert r.usage.prompt_tokens_details.cached_tokens <= 1, r.usage
