"""Browsers as clients: with --cors-origins a web page from a listed origin may call llmq (its
preflight is answered, its answers carry Access-Control-Allow-Origin, streams included); any other
origin gets no CORS header and a refused preflight. Without the flag nothing changes. Every 405
says which methods the route takes (Allow)."""

from __future__ import annotations

import httpx
import pytest

from llmq_e2e import LlmqServer, model_name

APP = "http://app.example:3000"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type, authorization, x-stainless-os"}


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory, _prerequisites):
    s = LlmqServer(tmp_path_factory.mktemp("llmq-cors"),
                   {"cors_origins": f"{APP},https://other.example", "slots": 1}, name="cors")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_preflight_from_an_allowed_origin_is_answered(cors_server):
    r = httpx.options(cors_server.base_url + "/v1/chat/completions", headers=PREFLIGHT)
    assert r.status_code == 204, r.text
    h = r.headers
    assert h["access-control-allow-origin"] == APP
    assert "POST" in h["access-control-allow-methods"]
    assert h["access-control-allow-headers"] == "content-type, authorization, x-stainless-os"
    assert int(h["access-control-max-age"]) > 0
    assert "Origin" in h.get_list("vary") or any("Origin" in v for v in h.get_list("vary"))
    assert "access-control-allow-credentials" not in h  # not asked for


def test_preflight_from_another_origin_gets_no_cors_headers(cors_server):
    r = httpx.options(cors_server.base_url + "/v1/chat/completions",
                      headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert r.status_code == 403, r.text
    assert not [k for k in r.headers if k.lower().startswith("access-control-")], r.headers
    assert r.json()["error"]["code"] == "cors_not_allowed"
    assert r.headers["allow"] == "POST, OPTIONS"


def test_preflight_for_a_method_the_route_does_not_take_is_refused(cors_server):
    r = httpx.options(cors_server.base_url + "/v1/models",
                      headers={**PREFLIGHT, "Access-Control-Request-Method": "DELETE"})
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers


def test_answers_to_an_allowed_origin_carry_cors_headers(cors_server):
    base = cors_server.base_url
    models = httpx.get(base + "/v1/models", headers={"Origin": APP})
    assert models.status_code == 200
    assert models.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in models.headers["access-control-expose-headers"].lower()
    # A stream's header block carries them too (a browser reads nothing of it otherwise).
    with httpx.stream("POST", base + "/api/v1/req", headers={"Origin": APP},
                      json={"prompt": "Hi", "max_tokens": 2}, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == APP
        r.read()
    # So does a refusal: the page must be able to read why.
    bad = httpx.post(base + "/v1/chat/completions", headers={"Origin": APP},
                     json={"model": model_name(), "messages": []})
    assert bad.status_code == 400
    assert bad.headers["access-control-allow-origin"] == APP


def test_answers_to_another_origin_carry_none(cors_server):
    r = httpx.get(cors_server.base_url + "/v1/models", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    assert "Origin" in r.headers.get("vary", "")


def test_without_the_flag_nothing_is_allowed(server):
    r = httpx.options(server.base_url + "/v1/completions", headers=PREFLIGHT)
    assert r.status_code == 403
    assert not [k for k in r.headers if k.lower().startswith("access-control-")]
    assert "--cors-origins" in r.json()["error"]["message"]
    got = httpx.get(server.base_url + "/v1/models", headers={"Origin": APP})
    assert not [k for k in got.headers if k.lower().startswith("access-control-")]


@pytest.mark.parametrize("path,method,allow", [
    ("/v1/completions", "GET", "POST, OPTIONS"),
    ("/api/v1/req", "PUT", "POST, OPTIONS"),
    ("/v1/models", "POST", "GET, HEAD, OPTIONS"),
    ("/healthz", "DELETE", "GET, HEAD, OPTIONS"),
])
def test_every_405_says_what_the_route_allows(server, path, method, allow):
    r = httpx.request(method, server.base_url + path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow


def test_plain_options_lists_the_methods(server):
    r = httpx.options(server.base_url + "/v1/chat/completions")
    assert r.status_code == 204 and r.headers["allow"] == "POST, OPTIONS"
    assert httpx.options(server.base_url + "/nowhere").status_code == 404
