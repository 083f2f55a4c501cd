"""``gemini-live web --fake``: the page and the relay served offline by the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin


async def test_web_command_serves_page_and_relay_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gemini_live",
        "web",
        "--fake",
        "--port",
        "0",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        m = re.search(r"open (http://\S+)/ \(relay at /live, talking to the offline fake", line)
        assert m, line
        base = m.group(1)

        def get(path: str) -> bytes:
            with urllib.request.urlopen(base + path, timeout=5) as r:
                body: bytes = r.read()
                return body

        assert b'<meta name="gl-relay" content="/live">' in await asyncio.to_thread(get, "/")
        async with connect(base.replace("http", "ws") + "/live", origin=Origin(base)) as ws:
            types: list[str] = []
            texts: list[str] = []
            async with asyncio.timeout(20):
                while "ready" not in types:
                    msg = await ws.recv()
                    if isinstance(msg, str):
                        types.append(json.loads(msg)["type"])
                await ws.send(json.dumps({"type": "text", "text": "hello web"}))
                while "turn_complete" not in types:
                    msg = await ws.recv()
                    if isinstance(msg, str):
                        obj = json.loads(msg)
                        types.append(obj["type"])
                        if obj["type"] == "output_transcript":
                            texts.append(obj["text"])
            assert "".join(texts) == "You said: hello web"
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            _out, err = await proc.communicate()
        assert proc.returncode == 130, err.decode()  # Ctrl-C, as for every command
        assert b"Traceback" not in err, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_ends_with_keyboard_interrupt_when_uvicorn_caught_ctrl_c(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # uvicorn re-raises the signal it caught once it has shut down; if that does not reach
    # the caller, serve() still ends as Ctrl-C does (the CLI then exits with 130).
    import socket
    from types import SimpleNamespace

    from gemini_live.web import _app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    class StoppedByCtrlC:
        started = True
        servers = (SimpleNamespace(sockets=[sock]),)
        _captured_signals = (signal.SIGINT,)

        async def serve(self) -> None:
            return None

    monkeypatch.setattr(_app, "_uvicorn_server", lambda *a: StoppedByCtrlC())
    try:
        with pytest.raises(KeyboardInterrupt):
            async with asyncio.timeout(5):
                await _app.serve(object())
    finally:
        sock.close()
