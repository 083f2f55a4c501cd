"""A phone agent: Twilio Media Streams bridged to a Live API session.

    python examples/voice/twilio_bridge.py            # one scripted call, then exit
    TWILIO_AUTH_TOKEN=... PUBLIC_URL=wss://your.host/twilio \
        python examples/voice/twilio_bridge.py --serve [--host 0.0.0.0] [--port 8080]

``--serve`` listens on 127.0.0.1 unless --host or BRIDGE_HOST says otherwise (a tunnel or a
reverse proxy in front of it gives Twilio the public wss:// URL); BRIDGE_PORT or --port
changes the port.

Point your Twilio number's TwiML at the bridge::

    <Response><Connect><Stream url="wss://your.host/twilio"/></Connect></Response>

Every stream must carry Twilio's X-Twilio-Signature, computed with your account's auth
token over the <Stream> URL: ``--serve`` refuses to start without TWILIO_AUTH_TOKEN, and
PUBLIC_URL is that URL as Twilio sees it (a proxy or tunnel in front changes the scheme
and host the bridge sees). It listens on 127.0.0.1 unless told otherwise (``--host``).

Uses the Gemini API when GEMINI_API_KEY is set, otherwise an offline FakeLiveServer; the
offline run plays the part of Twilio with a scripted call (a signed upgrade, start, 20 ms
mu-law media, a DTMF key, marks echoed as played, stop).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import secrets
import struct
import sys

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.client import connect

import gemini_live as gl
from gemini_live.audio import pcm16_to_ulaw
from gemini_live.telephony import CallInfo, TwilioBridge, twilio_signature
from gemini_live.web import running, serve


def option(name: str, default: str | None = None) -> str | None:
    """``--name value`` from the command line."""
    if name in sys.argv[:-1]:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def caller_audio() -> bytes:
    """0.3 s quiet, 0.6 s of a voiced-sounding tone, 0.8 s quiet, as 8 kHz mu-law."""
    pcm = bytearray(4800)
    for i in range(4800):
        v = 0.2 * sum(math.sin(2 * math.pi * 180 * k * i / 8000) / k for k in (1, 2, 3))
        pcm += struct.pack("<h", int(v * 32767))
    pcm += bytes(12800)
    return pcm16_to_ulaw(bytes(pcm))


async def scripted_call(url: str, auth_token: str) -> None:
    """What Twilio sends and expects, message for message, on a signed upgrade."""
    sid = "MZ" + "0" * 32
    signed = {"X-Twilio-Signature": twilio_signature(auth_token, url)}
    async with connect(url, additional_headers=signed) as ws:
        seq = 0

        async def send(event: str, **body: object) -> None:
            nonlocal seq
            seq += 1
            await ws.send(
                json.dumps({"event": event, "sequenceNumber": str(seq), "streamSid": sid, **body})
            )

        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await send(
            "start",
            start={
                "streamSid": sid,
                "callSid": "CA" + "0" * 32,
                "accountSid": "AC" + "0" * 32,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"caller": "+15550100"},
            },
        )
        ulaw = caller_audio()
        for i in range(0, len(ulaw), 160):
            payload = base64.b64encode(ulaw[i : i + 160]).decode()
            await send("media", media={"track": "inbound", "payload": payload})
        await send("dtmf", dtmf={"track": "inbound_track", "digit": "1"})
        frames = 0
        async with asyncio.timeout(30):
            async for raw in ws:
                msg = json.loads(raw)
                if msg["event"] == "media":  # whole 20 ms frames, up to media_ms of them
                    frames += len(base64.b64decode(msg["media"]["payload"])) // 160
                elif msg["event"] == "mark":
                    await send("mark", mark=msg["mark"])  # played: echo it back
                    if frames and msg["mark"]["name"].startswith("r1-") and frames >= 6:
                        break
        print(f"caller heard {frames} frames of 20 ms mu-law")
        await send("stop", stop={"callSid": "CA" + "0" * 32})


async def main() -> None:
    serving = "--serve" in sys.argv
    if serving:
        auth_token = os.environ.get("TWILIO_AUTH_TOKEN", "").strip()
        if not auth_token:
            sys.exit("--serve needs TWILIO_AUTH_TOKEN (your Twilio account's auth token)")
    else:
        auth_token = secrets.token_hex(16)  # this run's stand-in for Twilio's
    async with contextlib.AsyncExitStack() as stack:
        if key := os.environ.get("GEMINI_API_KEY"):
            where: dict[str, str] = {"api_key": key}
        else:
            from gemini_live.testing import FakeLiveServer

            server = await stack.enter_async_context(FakeLiveServer())
            where = {"url": server.url}
            print("(no GEMINI_API_KEY: talking to an offline FakeLiveServer)")

        def session_config(call: CallInfo) -> gl.SessionConfig:
            return gl.build_config(
                **where,
                system_instruction="You answer the phone for a bakery. Be brief.",
                output_audio_transcription=True,
            )

        def on_dtmf(call: CallInfo, digit: str, session: gl.Session) -> None:
            print(f"caller pressed {digit}")

        def on_stop(call: CallInfo) -> None:
            heard = ", ".join(f"reply {r}: {ms} ms" for r, ms in sorted(call.heard_ms.items()))
            print(f"call ended: {call.turns} turn(s); heard {heard}; marks {call.marks_played}")

        public_url = os.environ.get("PUBLIC_URL") or option("--public-url")
        if serving and not public_url:
            print("(no PUBLIC_URL: signatures are checked against the URL the bridge sees)")
        bridge = TwilioBridge(
            session_config,
            auth_token=auth_token,  # checks X-Twilio-Signature on every upgrade
            public_url=public_url,
            on_dtmf=on_dtmf,
            on_stop=on_stop,
        )
        app = Starlette(routes=[WebSocketRoute("/twilio", bridge)])
        if serving:
            host = option("--host", os.environ.get("BRIDGE_HOST", "127.0.0.1"))
            port = int(option("--port", os.environ.get("BRIDGE_PORT", "8080")) or 8080)
            await serve(app, host=host or "127.0.0.1", port=port, ready=print)
            return
        async with running(app) as base:
            await scripted_call(base.replace("http", "ws") + "/twilio", auth_token)
            await bridge.wait_until(lambda: len(bridge.finished) == 1)


if __name__ == "__main__":
    asyncio.run(main())
