"""The token endpoint: one ephemeral token per browser session, minted against a local fake."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from gemini_live.types import Setup
from gemini_live.web import Relay, RelayRejected, TokenEndpoint, TokenRequest, create_app, running

KEY = "AIzaSyTOKEN-ENDPOINT-TEST-KEY-0123456"


class _TokenService(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, dict[str, str], dict[str, Any]]]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.status != 200:
            out = b'{"error": {"code": 500, "message": "backend unavailable"}}'
        else:
            n = len(self.requests)
            out = json.dumps(
                {"name": f"auth_tokens/minted-{n}", "expireTime": "2026-11-29T08:00:00Z"}
            ).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def token_service() -> Iterator[str]:
    _TokenService.requests = []
    _TokenService.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, origin: str | None, method: str = "POST") -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method)
    if origin:
        req.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["cache-control"] == "no-store"
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _unused_relay() -> Relay:
    def config(_conn: object) -> Any:
        raise AssertionError("no browser connects to the relay in these tests")

    return Relay(config, authorize=Relay.ALLOW_ANYONE)


async def test_token_endpoint_mints_per_session_and_guards_itself() -> None:
    def authorize(req: TokenRequest) -> object:
        cookie = req.headers.get("cookie", "")
        if "banned" in cookie:
            raise RelayRejected("banned")
        return "user-1" if req.origin else None

    setup = Setup(model="models/gemini-3.8-live")
    with token_service() as base_url:
        endpoint = TokenEndpoint(
            KEY,
            authorize=authorize,
            setup=setup,
            base_url=base_url,
            allowed_origins=["https://app.example"],
            max_per_minute=3,
        )
        app = create_app(_unused_relay(), page=False, token_endpoint=endpoint)
        async with running(app) as base:
            url = base + "/token"
            status, body = await asyncio.to_thread(post, url, "https://app.example")
            assert status == 200, body
            assert body["token"] == "auth_tokens/minted-1"
            assert body["url"].endswith("BidiGenerateContentConstrained")
            assert KEY not in json.dumps(body)
            path, headers, sent = _TokenService.requests[0]
            assert path == "/v1beta/auth_tokens" and headers["x-goog-api-key"] == KEY
            assert sent["uses"] == 1 and sent["bidiGenerateContentSetup"]["model"]
            assert "sessionResumption" not in sent.get("fieldMask", "")
            # A second browser session gets its own token.
            status, body = await asyncio.to_thread(post, url, "https://app.example")
            assert (status, body["token"]) == (200, "auth_tokens/minted-2")
            assert (await asyncio.to_thread(post, url, "https://evil.example"))[0] == 403
            assert (await asyncio.to_thread(post, url, None))[0] == 403
            assert (await asyncio.to_thread(post, url, "https://app.example", "GET"))[0] == 405
            # The per-client limit (3 a minute) holds.
            assert (await asyncio.to_thread(post, url, "https://app.example"))[0] == 200
            status, body = await asyncio.to_thread(post, url, "https://app.example")
            assert (status, body) == (429, {"error": "too many token requests"})
            assert endpoint.minted == 3 and len(_TokenService.requests) == 3


async def test_token_endpoint_upstream_failure_and_authorize() -> None:
    with token_service() as base_url:
        endpoint = TokenEndpoint(
            KEY,
            authorize=lambda r: None if "bad" in r.headers.get("x-user", "") else "ok",
            setup=Setup(model="models/gemini-3.8-live"),
            base_url=base_url,
            allowed_origins="*",
        )
        app = create_app(_unused_relay(), page=False, token_endpoint=endpoint)
        async with running(app) as base:
            _TokenService.status = 500
            status, body = await asyncio.to_thread(post, base + "/token", "https://x.example")
            assert status == 502 and body == {"error": "the token service failed", "status": 500}
            assert KEY not in json.dumps(body)
