"""``gemini-live web --fake --webrtc``: the page is told about WebRTC and the offer
endpoint answers a browser that brought the launch token, and no one else."""

from __future__ import annotations

import asyncio
import json
import re
import signal

from web.test_cli_web import _get, _stop, _web_command

from .conftest import make_offer, post


async def test_web_command_offers_webrtc() -> None:
    proc, line = await _web_command("--webrtc")
    try:
        m = re.search(r"open (http://\S+)/\?token=(\S+) ", line)
        assert m, line
        base, token = m.group(1), m.group(2)
        status, headers, _ = await asyncio.to_thread(_get, f"{base}/?token={token}")
        assert status == 303
        jar = headers["set-cookie"].split(";", 1)[0]
        status, _, body = await asyncio.to_thread(_get, base + "/", {"Cookie": jar})
        assert status == 200
        assert b'<meta name="gl-webrtc" content="/live/webrtc/offer">' in body
        pc, _ = await make_offer()
        try:
            offer = json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}).encode()
            url = base + "/live/webrtc/offer"
            status, answer = await post(url, offer)
            assert (status, answer) == (401, {"error": "unauthorized", "code": 4401})
            status, answer = await post(url, offer, headers={"Cookie": jar})
            assert status == 200 and answer["type"] == "answer", answer
            assert answer["sdp"].startswith("v=0")
        finally:
            await pc.close()
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _out, err = await proc.communicate()
        assert proc.returncode == 130, err.decode()
        assert b"Traceback" not in err, err.decode()
        assert token.encode() not in err
    finally:
        await _stop(proc)


async def test_without_the_flag_the_page_has_no_webrtc() -> None:
    proc, line = await _web_command()
    try:
        m = re.search(r"open (http://\S+)/\?token=(\S+) ", line)
        assert m, line
        base, token = m.group(1), m.group(2)
        status, headers, _ = await asyncio.to_thread(_get, f"{base}/?token={token}")
        jar = headers["set-cookie"].split(";", 1)[0]
        status, _, body = await asyncio.to_thread(_get, base + "/", {"Cookie": jar})
        assert b'<meta name="gl-webrtc" content="">' in body
        status, _answer = await post(base + "/live/webrtc/offer", b"{}", headers={"Cookie": jar})
        assert status == 404
    finally:
        await _stop(proc)
