"""A Starlette (or FastAPI) app that puts a voice agent in the browser through the relay.

    python examples/voice/web_relay_app.py            # one scripted browser turn, then exit
    python examples/voice/web_relay_app.py --serve    # serve http://127.0.0.1:8000/

The API key stays on this server; each browser WebSocket becomes one Session. Uses the
Gemini API when GEMINI_API_KEY is set, otherwise an offline FakeLiveServer. With FastAPI
the two relay lines are the same: ``app = FastAPI()`` then
``app.router.routes.append(WebSocketRoute("/live", relay))``.

Who may talk: the page sets a session cookie signed with a server-side key (HMAC), and
the relay's ``authorize`` hook verifies it in constant time. A client can set any
``Origin`` or query parameter, but it cannot sign a cookie. Here every page load logs in
a guest; your app sets the cookie after its own login instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import secrets
import struct
import sys
import time
import urllib.request
from http.cookies import SimpleCookie

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect
from websockets.typing import Origin

import gemini_live as gl
from gemini_live.web import ConnectionInfo, Relay, page_html, running, serve, static_file

# In a real deployment: one key from your secret store, shared by every replica.
SIGNING_KEY = secrets.token_bytes(32)
COOKIE = "voice_session"


def sign(user: str, ttl: float = 3600.0) -> str:
    """A session value only this server can make: user, expiry and their HMAC."""
    body = f"{user}|{int(time.time() + ttl)}"
    mac = hmac.new(SIGNING_KEY, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}|{mac}"


def authorize(conn: ConnectionInfo) -> str | None:
    """The relay's identity check: a valid, unexpired signed cookie, else refuse."""
    morsel = SimpleCookie(conn.headers.get("cookie", "")).get(COOKIE)
    if morsel is None:
        return None
    user, _, rest = morsel.value.partition("|")
    expires, _, mac = rest.partition("|")
    good = hmac.new(SIGNING_KEY, f"{user}|{expires}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, good) or not expires.isdigit():
        return None
    return user if int(expires) > time.time() else None


def utterance() -> list[bytes]:
    """0.3 s quiet, 0.6 s of a voiced-sounding tone, 0.8 s quiet; 20 ms frames at 16 kHz."""
    pcm = bytearray(9600)
    for i in range(9600):
        t = i / 16000
        v = 0.2 * sum(math.sin(2 * math.pi * 180 * k * t) / k for k in (1, 2, 3))
        pcm += struct.pack("<h", int(v * 32767))
    pcm += bytes(25600)
    return [bytes(pcm[i : i + 640]) for i in range(0, len(pcm), 640)]


def load_page(base: str) -> str:
    """Load the page as a browser does; return the session cookie it set."""
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        return str(r.headers["set-cookie"]).split(";", 1)[0]


async def one_browser_turn(base: str) -> None:
    """What the page does, scripted: stream the mic, print what comes back."""
    cookie = await asyncio.to_thread(load_page, base)
    url = base.replace("http", "ws") + "/live"
    async with connect(url, origin=Origin(base), additional_headers={"Cookie": cookie}) as ws:
        for frame in utterance():
            await ws.send(frame)
        audio = 0
        async with asyncio.timeout(30):
            async for msg in ws:
                if isinstance(msg, bytes):
                    audio += len(msg)
                    continue
                event = json.loads(msg)
                if event["type"] in ("input_transcript", "output_transcript"):
                    print(f"{event['type']}: {event['text']}")
                elif event["type"] == "turn_complete":
                    break
        print(f"reply audio: {audio / 48000:.2f} s at 24 kHz")


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if key := os.environ.get("GEMINI_API_KEY"):
            where: dict[str, str] = {"api_key": key}
        else:
            from gemini_live.testing import FakeLiveServer

            server = await stack.enter_async_context(FakeLiveServer())
            where = {"url": server.url}
            print("(no GEMINI_API_KEY: talking to an offline FakeLiveServer)")

        def session_config(conn: ConnectionInfo) -> gl.SessionConfig:
            # Per connection: pick the voice, instructions and tools for this user.
            return gl.build_config(
                **where,
                system_instruction="You are a friendly concierge. Keep answers short.",
                input_audio_transcription=True,
                output_audio_transcription=True,
            )

        relay = Relay(session_config, authorize=authorize)

        async def index(request: Request) -> HTMLResponse:
            page = HTMLResponse(page_html(relay_path="/live", static_path="/static"))
            if authorize_cookie(request) is None:  # your login decides who this is
                page.set_cookie(COOKIE, sign("guest"), httponly=True, samesite="strict")
            return page

        def authorize_cookie(request: Request) -> str | None:
            headers = {"cookie": request.headers.get("cookie", "")}
            conn = ConnectionInfo(0, "/", headers, {}, None, None)
            return authorize(conn)

        async def static(request: Request) -> HTMLResponse:
            name = request.path_params["name"]
            media = "text/css" if name.endswith(".css") else "text/javascript"
            return HTMLResponse(static_file(name), media_type=media)

        app = Starlette(routes=[Route("/", index), Route("/static/{name}", static)])
        app.router.routes.append(WebSocketRoute("/live", relay))  # <- the relay, one line

        if "--serve" in sys.argv:
            await serve(app, port=8000, ready=lambda url: print(f"open {url}/"))
            return
        async with running(app) as base:
            await one_browser_turn(base)
        print(f"relay: {relay.stats.accepted} connection(s), closes {relay.stats.closes}")


if __name__ == "__main__":
    asyncio.run(main())
