"""Raw-socket HTTP for the end-to-end tests: requests no well-behaved client would send
(no HTTP version, oversized headers, lying Content-Length), and the server's answer or a close."""

from __future__ import annotations

import json
import select
import socket
import time
from typing import Any
from dataclasses import dataclass, field


# --------------------------------------------------------------------------------------------
# Raw HTTP over a socket (for what httpx would refuse to send or would "fix")


@dataclass
class RawResponse:
    status: int | None                      # None: the server closed without answering
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    raw: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: str,
    path: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = "application/json",
    version: str | None = "HTTP/1.1",
) -> bytes:
    """A raw HTTP/1.1 request. Host, Content-Length (when there is a body or the method is POST)
    and Connection: close are added unless `headers` sets them."""
    hs = list(headers or [])
    names = {k.lower() for k, _ in hs}
    if "host" not in names:
        hs.insert(0, ("Host", "127.0.0.1"))
    if content_type is not None and "content-type" not in names:
        hs.append(("Content-Type", content_type))
    if "content-length" not in names and (body or method in ("POST", "PUT")):
        hs.append(("Content-Length", str(len(body))))
    if "connection" not in names:
        hs.append(("Connection", "close"))
    line = f"{method} {path}" + (f" {version}" if version else "")
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
    return head.encode("latin-1") + body


def _parse_response(raw: bytes) -> RawResponse:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"incomplete HTTP response: {raw[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert parts[0].startswith("HTTP/") and len(parts) >= 2, f"bad status line {lines[0]!r}"
    headers = {}
    for h in lines[1:]:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = rest
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, data = b"", rest
        while data:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body, data = body + data[:size], data[size + 2:]
    elif "content-length" in headers:
        body = rest[: int(headers["content-length"])]
    return RawResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body, raw)


def _response_complete(raw: bytes) -> bool:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(rest) >= int(v.strip())
        if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
            return rest.endswith(b"0\r\n\r\n")
    return False  # no length: read until the server closes


def raw_http(port: int, data: bytes, *, head_len: int | None = None, timeout: float = 15.0,
             host: str = "127.0.0.1") -> RawResponse:
    """Sends `data` on a fresh connection and reads one response.

    With head_len (the length of the request head inside `data`), the head goes first and the
    body is sent only if no response arrives within a second: a server may refuse a too-large
    body after the headers without reading it, and the body write then fails, which is fine.
    A server that closes without answering yields RawResponse(status=None). A server that neither
    answers nor closes within `timeout` fails the test.
    """
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            if head_len is None:
                s.sendall(data)
            else:
                s.sendall(data[:head_len])
                ready, _, _ = select.select([s], [], [], 1.0)
                if not ready:
                    s.sendall(data[head_len:])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered/closed early; read what it sent
        raw = b""
        deadline = time.monotonic() + timeout
        while not _response_complete(raw):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise AssertionError(
                    f"no complete response and no close within {timeout:.0f} s; got {raw[:300]!r}"
                ) from None
            except ConnectionResetError:
                break
            if not chunk:
                break
            raw += chunk
    if not raw:
        return RawResponse(None)
    return _parse_response(raw)
