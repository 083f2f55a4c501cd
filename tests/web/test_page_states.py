"""The voice page speaks sentences (headless Chromium): a refused connection, a model
service that cannot be reached and a normal Stop each say what happened and what to do;
a Stop is grey, not red, and leaves no stale "speaking" badge; the page has a favicon."""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.request
from pathlib import Path

import pytest

import gemini_live as gl
from gemini_live.audio import write_wav
from gemini_live.testing import FakeLiveServer
from gemini_live.web import ConnectionInfo, Relay, create_app, running

from .cdp import Page, chromium_page, find_chromium
from .conftest import silence, speech

pytestmark = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("CI"),  # in CI a missing browser fails
    reason="chromium is not installed: run .ci/install-browser (apt-get install chromium)",
)

PILL = "document.getElementById('state').className"
DETAIL = "document.getElementById('detail').textContent"
SPEAKING = "document.getElementById('speaking').textContent"


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws"


async def _closed_with(page: Page, code: int) -> str:
    await page.wait_for(f"glState.closeCode === {code}", within=30)
    detail: str = await page.wait_for(DETAIL, within=5)
    return detail


async def _shot(page: Page, path: Path) -> None:
    png = await page.screenshot()
    assert png.startswith(b"\x89PNG")
    await asyncio.to_thread(path.write_bytes, png)


@pytest.mark.timeout(120)
async def test_page_states_in_headless_chromium(tmp_path: Path) -> None:
    wav = tmp_path / "talking.wav"
    write_wav(wav, silence(300) + speech(6000), 16000)  # loops: the user keeps talking
    shots = Path(os.environ.get("GEMINI_LIVE_SCREENSHOT_DIR") or tmp_path)
    allowed = {"yes": False}
    target = {"url": _dead_url()}

    def authorize(conn: ConnectionInfo) -> object:
        return "tester" if allowed["yes"] else None

    def config(conn: ConnectionInfo) -> gl.SessionConfig:
        return gl.build_config(url=target["url"], open_timeout=5.0)

    async with FakeLiveServer(reply_chunks=5) as server:
        relay = Relay(config, authorize=authorize)
        async with running(create_app(relay)) as base:
            icon = await asyncio.to_thread(
                lambda: urllib.request.urlopen(base + "/static/favicon.svg", timeout=10)
            )
            with icon:
                assert icon.status == 200
                assert icon.headers["content-type"].startswith("image/svg+xml")
                assert icon.read().startswith(b"<svg")
            flags = [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
                "--autoplay-policy=no-user-gesture-required",
            ]
            async with chromium_page(
                base + "/?autostart=1&raw=1", tmp_path / "profile", flags
            ) as page:
                link = await page.wait_for(
                    "document.querySelector('link[rel=icon]')?.getAttribute('href')"
                )
                assert link == "/static/favicon.svg"
                # 1. Refused by authorize: a sentence, red.
                detail = await _closed_with(page, 4401)
                assert detail.startswith("Not signed in:"), detail
                assert "(4401: unauthorized)" in detail
                assert await page.evaluate(PILL) == "pill closed"
                await _shot(page, shots / "page-refused.png")
                # 2. The model service cannot be reached.
                allowed["yes"] = True
                await page.evaluate("document.getElementById('start').click()")
                detail = await _closed_with(page, 4502)
                assert detail.startswith("The model service could not be reached: try again."), (
                    detail
                )
                assert await page.evaluate(PILL) == "pill closed"
                # 3. A conversation, stopped while the user speaks: grey, badges reset.
                target["url"] = server.url
                await page.evaluate("document.getElementById('start').click()")
                await page.wait_for("glState.status === 'open'", within=30)
                await page.wait_for(f"{SPEAKING} === 'speaking'", within=30)
                await page.evaluate("document.getElementById('stop').click()")
                detail = await _closed_with(page, 1000)
                assert detail == "Stopped. Press Start to talk again."
                assert await page.evaluate("glState.status") == "stopped"
                assert await page.evaluate(PILL) == "pill stopped"
                assert await page.evaluate(SPEAKING) == "silent"
                assert (
                    await page.evaluate(
                        "document.getElementById('speaking').classList.contains('on')"
                    )
                    is False
                )
                await _shot(page, shots / "page-stopped.png")
                notes = await page.evaluate(
                    "glState.transcript.filter(l => l.who === 'note').map(l => l.text)"
                )
                assert not any("microphone unavailable" in n for n in notes), notes
                exceptions = [c for c in page.console if c.startswith("exception")]
                assert not exceptions, exceptions
