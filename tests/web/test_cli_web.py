"""``gemini-live web --fake``: the page and the relay served offline by the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin


async def _web_command(*extra: str) -> tuple[asyncio.subprocess.Process, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gemini_live",
        "web",
        "--fake",
        "--port",
        "0",
        *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        line = (await proc.stdout.readline()).decode()
    return proc, line


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


async def _turn(ws: ClientConnection, text: str) -> str:
    types: list[str] = []
    texts: list[str] = []
    async with asyncio.timeout(20):
        while "ready" not in types:
            msg = await ws.recv()
            if isinstance(msg, str):
                types.append(json.loads(msg)["type"])
        await ws.send(json.dumps({"type": "text", "text": text}))
        while "turn_complete" not in types:
            msg = await ws.recv()
            if isinstance(msg, str):
                obj = json.loads(msg)
                types.append(obj["type"])
                if obj["type"] == "output_transcript":
                    texts.append(obj["text"])
    return "".join(texts)


async def _close_code(ws: ClientConnection) -> int | None:
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code


async def test_web_command_serves_page_and_relay_offline() -> None:
    proc, line = await _web_command()
    try:
        m = re.search(
            r"open (http://\S+)/\?token=(\S+) \(relay at /live, talking to the offline fake",
            line,
        )
        assert m, line
        base, token = m.group(1), m.group(2)
        assert len(token) >= 32
        # The printed URL trades the token for a cookie and takes it out of the address bar.
        status, headers, _ = await asyncio.to_thread(_get, f"{base}/?token={token}&raw=1")
        assert status == 303 and headers["location"] == "/?raw=1", (status, headers)
        cookie = headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower(), cookie
        jar = cookie.split(";", 1)[0]
        status, _, body = await asyncio.to_thread(_get, base + "/", {"Cookie": jar})
        assert status == 200 and b'<meta name="gl-relay" content="/live">' in body
        ws_url = base.replace("http", "ws") + "/live"
        async with connect(ws_url, origin=Origin(base), additional_headers={"Cookie": jar}) as ws:
            assert await _turn(ws, "hello web") == "You said: hello web"
        async with connect(f"{ws_url}?token={token}", origin=Origin(base)) as ws:
            assert await _turn(ws, "by token") == "You said: by token"
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            _out, err = await proc.communicate()
        assert proc.returncode == 130, err.decode()  # Ctrl-C, as for every command
        assert b"Traceback" not in err, err.decode()
        assert token.encode() not in err  # never logged
    finally:
        await _stop(proc)


async def test_web_command_is_closed_to_strangers_and_rebinding() -> None:
    proc, line = await _web_command()
    try:
        m = re.search(r"open (http://\S+)/\?token=(\S+) ", line)
        assert m, line
        base, token = m.group(1), m.group(2)
        ws_url = base.replace("http", "ws") + "/live"
        # Without the token: no page, no relay (a script that forges Origin included).
        assert (await asyncio.to_thread(_get, base + "/"))[0] == 401
        wrong = base + "/?token=wrong-token-of-some-length"
        assert (await asyncio.to_thread(_get, wrong))[0] == 401
        async with connect(ws_url, origin=Origin(base)) as ws:
            assert await _close_code(ws) == 4401
        async with connect(ws_url + "?token=" + "x" * len(token), origin=Origin(base)) as ws:
            assert await _close_code(ws) == 4401
        # DNS rebinding: the attacker's name resolved to 127.0.0.1, token or not.
        rebind = {"Host": "rebind.attacker.test"}
        status, _, body = await asyncio.to_thread(_get, f"{base}/?token={token}", rebind)
        assert status == 400 and b"host not allowed" in body
        assert (await asyncio.to_thread(_get, base + "/healthz", rebind))[0] == 400
        port = int(base.rsplit(":", 1)[1])
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"ws://rebind.attacker.test:{port}/live?token={token}",
                origin=Origin(f"http://rebind.attacker.test:{port}"),
                host="127.0.0.1",
                port=port,
                proxy=None,
            ):
                pass
        assert refused.value.response.status_code == 403
    finally:
        await _stop(proc)


async def test_web_command_allowed_host_and_authorize_hook(tmp_path: Path) -> None:
    (tmp_path / "my_auth.py").write_text(
        "import hmac\n"
        "def check(conn):\n"
        "    got = conn.headers.get('authorization', '')\n"
        "    return 'ada' if hmac.compare_digest(got, 'Bearer issued-by-my-app') else None\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gemini_live",
        "web",
        "--fake",
        "--port",
        "0",
        "--allowed-host",
        "voice.test",
        "--authorize",
        "my_auth:check",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        m = re.search(r"open (http://\S+)/ \(relay at /live", line)
        assert m and "token=" not in line, line
        base = m.group(1)
        port = base.rsplit(":", 1)[1]
        host = {"Host": f"voice.test:{port}"}
        status, _, _ = await asyncio.to_thread(_get, base + "/", host)
        assert status == 200  # the hook guards the relay; the page is public
        ws_url = f"ws://voice.test:{port}/live"
        origin = Origin(f"http://voice.test:{port}")
        where: dict[str, Any] = {"host": "127.0.0.1", "port": int(port), "proxy": None}
        async with connect(ws_url, origin=origin, **where) as ws:
            assert await _close_code(ws) == 4401
        bearer = {"Authorization": "Bearer issued-by-my-app"}
        async with connect(ws_url, origin=origin, additional_headers=bearer, **where) as ws:
            assert await _turn(ws, "hi") == "You said: hi"
    finally:
        await _stop(proc)


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
