"""The voice page in a real browser: Debian's headless Chromium with a fake microphone.

Chromium's fake capture device plays a WAV made here (speech-like bursts; the fake
server does no speech recognition). The relay's VAD brackets each burst with
activityStart/activityEnd; the fake answers with 4 s of audio; the second burst, while
that plays, is the barge-in: the fake holds the turn open while the reply would play
(``assumed_playback``, as the real service does), so its activityStart makes the fake send
``interrupted`` (START_OF_ACTIVITY_INTERRUPTS), and the page must stop playback at once
and report how much was heard.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gemini_live.audio import write_wav
from gemini_live.testing import FakeLiveServer
from gemini_live.web import LOOPBACK_HOSTS, AccessToken, Relay, create_app, running

from .cdp import chromium_page, find_chromium
from .conftest import activity_starts, fake_config, silence, speech

pytestmark = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("CI"),  # in CI a missing browser fails
    reason="chromium is not installed: run .ci/install-browser (apt-get install chromium)",
)

REPLY_CHUNKS = 100  # 100 x 40 ms = 4 s of reply audio
REPLY_MS = REPLY_CHUNKS * 40


@pytest.mark.timeout(120)
async def test_page_in_headless_chromium(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    # 0.5 s quiet, 0.8 s speech, 2.2 s quiet (the reply starts playing), 0.8 s speech
    # (barge-in), then quiet.
    pcm = silence(500) + speech(800) + silence(2200) + speech(800) + silence(6000)
    write_wav(wav, pcm, 16000)
    async with FakeLiveServer(reply_chunks=REPLY_CHUNKS, assumed_playback=True) as server:
        # As `gemini-live web` serves it: loopback names only, a per-launch token that the
        # page trades for a cookie (its WebSocket then carries the cookie).
        token = AccessToken()
        relay = Relay(fake_config(server), authorize=token.authorize)
        app = create_app(relay, allowed_hosts=LOOPBACK_HOSTS, access_token=token)
        async with running(app) as base:
            flags = [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}%noloop",
                "--autoplay-policy=no-user-gesture-required",
            ]
            url = token.url(base) + "&autostart=1&raw=1"
            async with chromium_page(url, tmp_path / "profile", flags) as page:
                await relay.wait_until(lambda: relay.stats.accepted == 1, within=30)
                info = next(iter(relay.connections.values()))
                assert info.identity == "local-user" and token.value not in repr(info)
                # 1. The fake heard the first utterance and answered it (its turnComplete
                # waits for the 4 s of playback, so wait for the answer, not the turn).
                await server.wait_for_conversation(lambda c: len(c.answers) >= 1, within=30)
                heard_ms = len(server.connections[0].audio) / 32
                assert 800 <= heard_ms <= 800 + 300 + 700, heard_ms
                # 2. The page plays the reply.
                await relay.wait_until(
                    lambda: any(p.state == "playing" for p in info.playback), within=20
                )
                assert await page.evaluate("glState.playing") is True
                # 3. Barge-in: the second burst opens an activity while the reply plays.
                await server.wait_until(lambda: activity_starts(server) == 2, within=30)
                assert any(p.state == "playing" for p in info.playback)
                assert not any(p.state == "drained" for p in info.playback), info.playback
                await relay.wait_until(
                    lambda: any(p.state == "stopped" for p in info.playback), within=10
                )
                stopped = next(p for p in info.playback if p.state == "stopped")
                assert 0 < stopped.played_ms < REPLY_MS, stopped
                assert await page.evaluate("glState.playing") is False
                assert await page.evaluate("glState.interruptions") == 1
                # The second utterance is answered as well.
                await relay.wait_until(lambda: info.turns >= 2, within=30)
                text = await page.wait_for(
                    "(() => { const t = document.getElementById('transcript').innerText;"
                    " return (t.match(/I heard/g) || []).length >= 2 ? t : ''; })()"
                )
                assert text.count("ms of audio") == 4, text
                assert f"[interrupted after {stopped.played_ms / 1000:.1f} s]" in text, text
                assert await page.evaluate("glState.status") == "open"
                assert await page.evaluate("glState.audioChunks") >= REPLY_CHUNKS
                png = await page.screenshot()
                assert png.startswith(b"\x89PNG") and len(png) > 5000
                # Set GEMINI_LIVE_SCREENSHOT=/path.png to look at it.
                keep = Path(os.environ.get("GEMINI_LIVE_SCREENSHOT") or tmp_path / "page.png")
                await asyncio.to_thread(keep.write_bytes, png)
                exceptions = [c for c in page.console if c.startswith("exception")]
                assert not exceptions, exceptions
