"""The bad-input catalogue: one table of malformed, out-of-contract and borderline requests,
each sent over a raw socket, each answered with the contract's status and JSON error, and
after each the server must still serve a normal request.

Servers: "default" is the session server (body limit 1 MiB, header limit 16 KiB, ctx-size 2048);
"small" has --max-body-bytes 1024 --max-header-bytes 2048.

Error codes and fields as in docs/api.md ("Refusals").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from llmq_e2e import LlmqServer, model_name
from raw_http import build_request, raw_http

CTX = 2048  # the ctx-size of both servers here
REQ = "/api/v1/req"
OK_BODY = {"prompt": "Hi", "max_tokens": 1, "temperature": 0, "stream": False}


@dataclass
class Case:
    name: str
    request: bytes                      # the raw bytes sent
    status: int | tuple[int, ...]       # the accepted status(es)
    code: str | None = None             # the error.code due, when the contract fixes it
    field: str | None = None            # the error.field due ("messages*": starts with messages)
    server: str = "default"             # "default" or "small"
    json_error: bool = True             # a refusal must carry the JSON error body
    may_close: bool = False             # not HTTP: a 400 (bad_http if JSON) or a clean close


def post(body: bytes | str, *, content_type: str | None = "application/json",
         headers: list[tuple[str, str]] | None = None, path: str = REQ) -> bytes:
    if isinstance(body, str):
        body = body.encode("utf-8")
    return build_request("POST", path, headers=headers, body=body, content_type=content_type)


def post_json(**fields) -> bytes:
    """A POST whose body is OK_BODY changed by `fields` (a None value removes the field)."""
    body = {**OK_BODY, **fields}
    return post(json.dumps({k: v for k, v in body.items() if v is not None}))


def bad(name, field, value, code, status=400) -> Case:
    """A request that is fine but for one field."""
    return Case(name, post_json(**{field: value}), status, code, field)


def msgs(messages) -> bytes:
    return post(json.dumps({"messages": messages, "max_tokens": 1, "stream": False}))


def padded_json(size: int) -> bytes:
    """OK_BODY padded with spaces to exactly `size` bytes."""
    b = json.dumps(OK_BODY).encode()
    return b[:-1] + b" " * (size - len(b)) + b"}"


OK = json.dumps(OK_BODY)
LONG_TEXT = "hello world " * 1500  # ~3000 tokens: longer than the context

CASES = [
    # --- HTTP framing -------------------------------------------------------------------------
    Case("request_line_without_version", b"GET /healthz\r\n\r\n", 400, "bad_http",
         json_error=False, may_close=True),
    Case("post_line_without_version", b"POST /api/v1/req\r\nContent-Length: 2\r\n\r\n{}", 400,
         "bad_http", json_error=False, may_close=True),
    # The start of a TLS ClientHello (an https:// client on the plain port), then an empty line.
    Case("garbage_request_line",
         bytes.fromhex("160301020001000001fc0303") + b"\x00" * 32 + b"\r\n\r\n", 400,
         "bad_http", json_error=False, may_close=True),
    Case("content_length_not_a_number",
         post(OK, headers=[("Content-Length", "abc")]), 400, "bad_http", json_error=False,
         may_close=True),
    # --- routes and methods --------------------------------------------------------------------
    Case("unknown_route_post", post(OK, path="/api/v1/nope"), 404, "not_found"),
    Case("unknown_route_get", build_request("GET", "/nope", content_type=None), 404, "not_found"),
    Case("get_on_req", build_request("GET", REQ, content_type=None), 405, "method_not_allowed"),
    Case("put_on_req", build_request("PUT", REQ, body=OK.encode()), 405, "method_not_allowed"),
    Case("delete_on_req", build_request("DELETE", REQ, content_type=None), 405,
         "method_not_allowed"),
    Case("post_on_healthz", post(OK, path="/healthz"), 405, "method_not_allowed"),
    # --- content type --------------------------------------------------------------------------
    Case("content_type_missing", post(OK, content_type=None), 415, "unsupported_media_type"),
    Case("content_type_text_plain", post(OK, content_type="text/plain"), 415,
         "unsupported_media_type"),
    Case("content_type_form", post(OK, content_type="application/x-www-form-urlencoded"), 415,
         "unsupported_media_type"),
    Case("content_type_json_with_charset", post(OK, content_type="application/json; charset=utf-8"),
         200),
    # --- size limits ---------------------------------------------------------------------------
    Case("body_over_default_limit", post(padded_json((1 << 20) + 1)), 413, "body_too_large"),
    Case("body_at_default_limit", post(padded_json(1 << 20)), 200),
    Case("body_over_flag_limit", post(padded_json(1025)), 413, "body_too_large", server="small"),
    Case("body_at_flag_limit", post(padded_json(1024)), 200, server="small"),
    Case("headers_over_default_limit", post(OK, headers=[("X-Pad", "a" * (17 << 10))]), 431,
         "headers_too_large"),
    Case("headers_under_default_limit", post(OK, headers=[("X-Pad", "a" * (12 << 10))]), 200),
    Case("headers_over_flag_limit", post(OK, headers=[("X-Pad", "a" * 3072)]), 431,
         "headers_too_large", server="small"),
    Case("headers_under_flag_limit", post(OK, headers=[("X-Pad", "a" * 1024)]), 200,
         server="small"),
    # --- not JSON, or not the JSON we take -----------------------------------------------------
    Case("empty_body", post(b""), 400, "invalid_json"),
    Case("malformed_json", post('{"prompt": "Hi",'), 400, "invalid_json"),
    Case("trailing_garbage", post(OK + " x"), 400, "invalid_json"),
    Case("nan_literal", post('{"prompt": "Hi", "temperature": NaN}'), 400, "invalid_json"),
    Case("body_is_array", post('["Hi"]'), 400, "invalid_json"),
    Case("body_is_string", post('"Hi"'), 400, "invalid_json"),
    Case("duplicate_keys", post('{"prompt": "a", "prompt": "b", "max_tokens": 1}'), 400,
         "invalid_json"),
    Case("duplicate_keys_nested",
         post('{"messages": [{"role": "user", "content": "a", "content": "b"}]}'), 400,
         "invalid_json"),
    Case("invalid_utf8_byte", post(b'{"prompt": "Hi \xff", "max_tokens": 1}'), 400,
         "invalid_json"),
    Case("invalid_utf8_overlong", post(b'{"prompt": "\xc0\xaf", "max_tokens": 1}'), 400,
         "invalid_json"),
    Case("invalid_utf8_surrogate", post(b'{"prompt": "\xed\xa0\x80", "max_tokens": 1}'), 400,
         "invalid_json"),
    Case("invalid_utf8_truncated", post(b'{"prompt": "\xe2\x82", "max_tokens": 1}'), 400,
         "invalid_json"),
    Case("invalid_utf8_in_unknown_key", post(b'{"prompt": "Hi", "\xfe": 1, "max_tokens": 1}'),
         400, "invalid_json"),
    Case("lone_surrogate_escape", post('{"prompt": "\\ud800", "max_tokens": 1}'), 400),
    # Nesting deeper than 64 levels is malformed JSON; a recursive parser must not crash on it.
    Case("deeply_nested_unknown_field",
         post('{"prompt": "Hi", "max_tokens": 1, "stream": false, "x": '
              + "[" * 100_000 + "]" * 100_000 + "}"), 400, "invalid_json"),
    Case("nested_65_levels", post('{"prompt": "Hi", "x": ' + "[" * 65 + "]" * 65 + "}"), 400,
         "invalid_json"),
    # --- wrong types ---------------------------------------------------------------------------
    bad("prompt_not_string", "prompt", 123, "invalid_type"),
    Case("messages_not_array", post_json(prompt=None, messages="Hi"), 400, "invalid_type",
         "messages"),
    bad("max_tokens_string", "max_tokens", "8", "invalid_type"),
    bad("max_tokens_fraction", "max_tokens", 8.5, "invalid_type"),
    bad("temperature_string", "temperature", "hot", "invalid_type"),
    bad("top_p_string", "top_p", "0.9", "invalid_type"),
    bad("top_k_fraction", "top_k", 1.5, "invalid_type"),
    bad("seed_string", "seed", "1", "invalid_type"),
    bad("stop_number", "stop", 5, "invalid_type"),
    bad("stop_array_of_numbers", "stop", [1, 2], "invalid_type"),
    bad("stream_string", "stream", "yes", "invalid_type"),
    bad("timeout_ms_string", "timeout_ms", "1000", "invalid_type"),
    bad("model_number", "model", 5, "invalid_type"),
    # --- out of range --------------------------------------------------------------------------
    bad("max_tokens_zero", "max_tokens", 0, "out_of_range"),
    bad("max_tokens_negative", "max_tokens", -1, "out_of_range"),
    bad("max_tokens_beyond_context", "max_tokens", CTX + 1, "out_of_range"),
    Case("max_tokens_huge", post('{"prompt": "Hi", "max_tokens": 99999999999999999999999}'), 400,
         field="max_tokens"),
    bad("temperature_negative", "temperature", -0.1, "out_of_range"),
    bad("temperature_above_2", "temperature", 2.01, "out_of_range"),
    bad("top_p_zero", "top_p", 0, "out_of_range"),
    bad("top_p_above_1", "top_p", 1.01, "out_of_range"),
    bad("top_k_negative", "top_k", -1, "out_of_range"),
    bad("seed_negative", "seed", -1, "out_of_range"),
    bad("seed_above_uint32", "seed", 1 << 32, "out_of_range"),
    bad("timeout_ms_zero", "timeout_ms", 0, "out_of_range"),
    bad("timeout_ms_negative", "timeout_ms", -5, "out_of_range"),
    Case("stop_five_entries", post_json(stop=["a", "b", "c", "d", "e"]), 400, "out_of_range",
         "stop"),
    Case("stop_empty_string", post_json(stop=[""]), 400, "out_of_range", "stop"),
    # Each stop string is held against every token's text on the decode thread: bounded.
    bad("stop_string_over_256_bytes", "stop", "x" * 257, "out_of_range"),
    bad("stop_entry_over_256_bytes", "stop", ["a", "é" * 129], "out_of_range"),
    bad("stop_64_kib", "stop", "y" * 65536, "out_of_range"),
    Case("stop_four_of_256_bytes", post_json(stop=["a" * 256, "b" * 256, "c" * 256, "d" * 256]), 200),
    # --- prompt / messages ---------------------------------------------------------------------
    Case("prompt_empty", post_json(prompt=""), 400, "out_of_range", "prompt"),
    Case("prompt_longer_than_context", post_json(prompt=LONG_TEXT), 400, "context_exceeded",
         "prompt"),
    Case("prompt_and_messages", post_json(messages=[{"role": "user", "content": "Hi"}]), 400,
         "invalid_request"),
    Case("neither_prompt_nor_messages", post_json(prompt=None), 400, "invalid_request"),
    Case("messages_empty", msgs([]), 400, "out_of_range", "messages*"),
    Case("messages_unknown_role", msgs([{"role": "wizard", "content": "Hi"}]), 400,
         "out_of_range", "messages*"),
    Case("messages_content_number", msgs([{"role": "user", "content": 5}]), 400,
         "invalid_type", "messages*"),
    Case("messages_content_missing", msgs([{"role": "user"}]), 400, field="messages*"),
    Case("messages_entry_not_object", msgs(["Hi"]), 400, "invalid_type", "messages*"),
    Case("messages_longer_than_context", msgs([{"role": "user", "content": LONG_TEXT}]), 400,
         "context_exceeded", "messages*"),
    # --- model ---------------------------------------------------------------------------------
    Case("unknown_model", post_json(model="no-such-model"), 404, "model_not_found", "model"),
    # --- accepted: the table's controls --------------------------------------------------------
    Case("unknown_fields_ignored", post_json(n_predict=5, foo={"bar": [1, 2]}), 200),
    # null counts as absent.
    Case("null_means_absent",
         post('{"prompt": "Hi", "max_tokens": 1, "stream": false, "temperature": null, '
              '"seed": null, "stop": null, "top_k": null, "messages": null}'), 200),
    # An integer field takes a number with a zero fraction.
    Case("max_tokens_zero_fraction", post_json(max_tokens=1.0), 200),
    Case("own_model_name", post_json(model=model_name()), 200),
    Case("minimal_valid", post(OK), 200),
]


@pytest.fixture(scope="module")
def small_server(tmp_path_factory, _prerequisites):
    s = LlmqServer(tmp_path_factory.mktemp("llmq-small"),
                   {"max_body_bytes": 1024, "max_header_bytes": 2048, "slots": 1}, name="small")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_catalogue_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, server: LlmqServer, small_server: LlmqServer):
    srv = server if case.server == "default" else small_server
    head_len = case.request.find(b"\r\n\r\n") + 4
    # Large bodies go after the head, and only if the server has not answered yet.
    r = raw_http(srv.port, case.request, head_len=head_len if len(case.request) > 65536 else None)

    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    if r.status is None:
        assert case.may_close, f"the server closed the connection without answering (want {expected})"
    else:
        assert r.status in expected, f"status {r.status}, want {expected}: {r.body[:500]!r}"
        ctype = r.headers.get("content-type", "")
        # Rows with json_error=False (not HTTP at all) still get their code checked when the
        # server did answer in JSON.
        if r.status >= 400 and (case.json_error or ctype.startswith("application/json")):
            assert ctype.startswith("application/json"), f"error content-type {ctype!r}"
            try:
                err = r.json()["error"]
            except (ValueError, KeyError, TypeError):
                raise AssertionError(f"no JSON error object: {r.body[:500]!r}") from None
            assert isinstance(err.get("code"), str) and err["code"], err
            assert isinstance(err.get("message"), str) and err["message"], err
            if case.code:
                assert err["code"] == case.code, err
            if case.field:
                got = err.get("field") or ""
                if case.field.endswith("*"):
                    assert got.startswith(case.field[:-1]), err
                else:
                    assert got == case.field, err
        if r.status == 200:
            j = r.json()
            assert isinstance(j.get("text"), str) and "usage" in j, j

    srv.assert_serving()
