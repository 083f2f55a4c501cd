"""create_ephemeral_token sends the API key only where it was told: no redirects, no http.

Two local servers: the "token service" answers a redirect to the second, which records
every request it gets. The key must never reach the second.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from gemini_live.auth import create_ephemeral_token
from gemini_live.errors import ConfigError, ConnectError

KEY = "AIzaSyREDIRECT-TEST-KEY-0123456789abcd"


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        data = json.dumps({"name": "auth_tokens/stolen"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Redirector(BaseHTTPRequestHandler):
    target: ClassVar[str] = ""
    status: ClassVar[int] = 302

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.status)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed_with_the_key(status: int) -> None:
    recorder: type[_Recorder] = type("Recorder", (_Recorder,), {"seen": []})
    with serving(recorder) as other:
        # "localhost" is another origin than 127.0.0.1 for the browser's rules; both loopback.
        redirector = type(
            "Redirector",
            (_Redirector,),
            {"target": other.replace("127.0.0.1", "localhost"), "status": status},
        )
        with serving(redirector) as base, pytest.raises(ConnectError) as info:
            async with asyncio.timeout(10):
                await create_ephemeral_token(KEY, base_url=base)
    assert info.value.status == status
    assert not info.value.retryable
    assert "redirect" in str(info.value) and KEY not in str(info.value)
    assert recorder.seen == []  # the other server never heard of us, key or not


@pytest.mark.parametrize(
    "base_url",
    [
        "http://generativelanguage.googleapis.com",
        "http://example.test:8080",
        "http://10.0.0.1",
        "http://127.0.0.1.example.test",
        "ftp://127.0.0.1",
        "https://user:pass@generativelanguage.googleapis.com",
        "https://",
    ],
)
async def test_plain_http_is_refused_except_to_loopback(base_url: str) -> None:
    with pytest.raises(ConfigError):
        await create_ephemeral_token(KEY, base_url=base_url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]"])
async def test_plain_http_to_loopback_is_allowed(host: str) -> None:
    # Nothing listens there: the request is attempted (ConnectError), not refused up front.
    with pytest.raises(ConnectError):
        async with asyncio.timeout(10):
            await create_ephemeral_token(
                KEY, base_url=f"http://{host}:{_closed_port()}", http_timeout=2
            )
