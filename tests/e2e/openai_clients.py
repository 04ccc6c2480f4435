"""The official `openai` SDK pointed at an llmq server, for test_openai.py and
test_openai_refusals.py: clients without retries, a `client` fixture on the suite's shared server,
and a one-call chat."""

from __future__ import annotations

import openai
import pytest

from llmq_e2e import LONG_PROMPT, model_name
from openai_shapes import check_chat_completion

MODEL = model_name()
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
# A native request that keeps the only slot of a --slots 1 server busy for seconds.
LONG_NATIVE = {"prompt": LONG_PROMPT, "max_tokens": 400, "temperature": 0}


def sync_client(srv, api_key: str = "unused") -> openai.OpenAI:
    """No retries: a test must see the server's first answer, not the SDK's third attempt."""
    return openai.OpenAI(base_url=srv.base_url + "/v1", api_key=api_key, max_retries=0,
                         timeout=120)


def async_client(srv) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=srv.base_url + "/v1", api_key="unused", max_retries=0,
                              timeout=120)


@pytest.fixture
def client(server):
    c = sync_client(server)
    try:
        yield c
    finally:
        c.close()


def chat(client, messages=QUESTION, **kw) -> str:
    return check_chat_completion(client.chat.completions.create(
        model=MODEL, messages=messages, **{"max_tokens": 16, "temperature": 0, **kw}))
