"""The voice page over WebRTC in headless Chromium (fake microphone), and its fallback.

As in tests/web/test_browser.py: the fake microphone plays a speech-like burst, the
relay's VAD brackets it, the fake model answers with 4 s of audio (holding the turn open
while it would play); a second burst while it plays is the barge-in. Here the audio goes
both ways as Opus on WebRTC tracks and the page's messages on a data channel; barge-in
must empty the server's outbound queue at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gemini_live.audio import write_wav
from gemini_live.testing import FakeLiveServer
from gemini_live.web import LOOPBACK_HOSTS, AccessToken, Relay, create_app, running
from gemini_live.webrtc import WebRTCRelay
from web.cdp import Page, chromium_page, find_chromium
from web.conftest import activity_starts, fake_config, silence, speech

pytestmark = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("CI"),  # in CI a missing browser fails
    reason="chromium is not installed: run .ci/install-browser (apt-get install chromium)",
)

REPLY_CHUNKS = 100  # 100 x 40 ms = 4 s of reply audio
REPLY_MS = REPLY_CHUNKS * 40
TRANSCRIPT = "document.getElementById('transcript').innerText"


def _flags(wav: Path, *extra: str) -> list[str]:
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        *extra,
    ]


@pytest.mark.timeout(150)
async def test_page_over_webrtc_heard_answered_played_barge_in(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    pcm = silence(500) + speech(800) + silence(2200) + speech(800) + silence(6000)
    write_wav(wav, pcm, 16000)
    async with FakeLiveServer(reply_chunks=REPLY_CHUNKS, assumed_playback=True) as server:
        token = AccessToken()
        relay = Relay(fake_config(server), authorize=token.authorize)
        rtc = WebRTCRelay(relay)
        app = create_app(relay, allowed_hosts=LOOPBACK_HOSTS, access_token=token, webrtc=rtc)
        async with running(app) as base:
            url = token.url(base) + "&autostart=1&raw=1"
            async with chromium_page(url, tmp_path / "profile", _flags(wav)) as page:
                await relay.wait_until(lambda: relay.stats.accepted == 1, within=30)
                info = next(iter(relay.connections.values()))
                # The page's cookie was checked by the same authorize hook, over WebRTC.
                assert info.identity == "local-user" and token.value not in repr(info)
                assert info.path == "/live/webrtc/offer"
                await page.wait_for("glState.status === 'open'", within=30)
                assert rtc.stats.answered == 1 and rtc.stats.active == 1
                assert await page.evaluate("glState.transport") == "webrtc"
                assert await page.evaluate("document.getElementById('transport').textContent") == (
                    "WebRTC"
                )
                # 1. Heard: the first burst reached the fake as 16 kHz audio (Opus, 48 kHz,
                # resampled once), bracketed by the relay's VAD; and answered.
                await server.wait_for_conversation(lambda c: len(c.answers) >= 1, within=30)
                heard_ms = len(server.connections[0].audio) / 32
                assert 800 <= heard_ms <= 800 + 300 + 900, heard_ms
                # 2. Played: the server's track sends the reply; the page receives sound.
                await relay.wait_until(
                    lambda: any(p.state == "playing" for p in info.playback), within=20
                )
                await page.wait_for("glState.rtcEnergy > 0", within=20)
                # The playing badge follows the arriving voice (getStats' audio level).
                await page.wait_for("glState.playing === true", within=10)
                # 3. Barge-in: the second burst while the reply plays; the fake interrupts,
                # the server empties its outbound queue at once and tells the page.
                await server.wait_until(lambda: activity_starts(server) == 2, within=30)
                assert not any(p.state == "drained" for p in info.playback), info.playback
                await relay.wait_until(
                    lambda: any(p.state == "stopped" for p in info.playback), within=10
                )
                stopped = next(p for p in info.playback if p.state == "stopped")
                assert 0 < stopped.played_ms < REPLY_MS, stopped
                (link,) = rtc.peers
                assert link.track.cleared_bytes > 0
                assert link.track.queued_bytes == 0 or info.turns >= 1
                await page.wait_for("glState.interruptions === 1", within=10)
                await page.wait_for("glState.playing === false", within=5)
                # The second utterance is answered as well, transcripts on the channel.
                await relay.wait_until(lambda: info.turns >= 2, within=30)
                text = await page.wait_for(
                    f"(() => {{ const t = {TRANSCRIPT};"
                    " return (t.match(/I heard/g) || []).length >= 2 ? t : ''; })()"
                )
                assert "[interrupted" in text, text
                assert await page.evaluate("glState.status") == "open"
                assert await page.evaluate("glState.audioChunks") == 0  # no PCM over a socket
                exceptions = [c for c in page.console if c.startswith("exception")]
                assert not exceptions, exceptions
                await page.evaluate("document.getElementById('stop').click()")
                await page.wait_for("glState.status === 'stopped'", within=10)
            await relay.wait_until(lambda: relay.stats.active == 0, within=20)
            await relay.wait_until(lambda: len(relay.finished) == 1, within=20)
            assert rtc.stats.active == 0 and not rtc.peers


#: Makes every RTCPeerConnection of the page relay-only (no TURN server: no candidates).
_RELAY_ONLY = """(() => {
  const Native = window.RTCPeerConnection;
  function RelayOnly(config) {
    return new Native(Object.assign({}, config || {}, { iceTransportPolicy: "relay" }));
  }
  RelayOnly.prototype = Native.prototype;
  window.RTCPeerConnection = RelayOnly;
})();"""


async def _say(page: Page, text: str) -> None:
    turns = await page.evaluate("glState.turns")
    await page.evaluate(
        f"document.getElementById('text').value = {text!r};"
        " document.getElementById('textform').requestSubmit()"
    )
    await page.wait_for(f"glState.turns > {turns}", within=30)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("blocked", ["server without WebRTC", "peer connection fails"])
async def test_page_falls_back_to_the_websocket(tmp_path: Path, blocked: str) -> None:
    wav = tmp_path / "quiet.wav"
    write_wav(wav, silence(3000), 16000)
    async with FakeLiveServer(reply_chunks=3) as server:
        relay = Relay(fake_config(server), authorize=Relay.ALLOW_ANYONE)
        flags = _flags(wav)
        if blocked == "server without WebRTC":
            app = create_app(relay)
            rtc = None
        else:
            # The browser may only use relayed (TURN) candidates and has no TURN server:
            # ICE never connects; the page gives up on the peer connection after its
            # timeout, the server closes its end after its own.
            rtc = WebRTCRelay(relay, connect_timeout=3.0)
            app = create_app(relay, webrtc=rtc)
        async with running(app) as base:
            url = base + "/?raw=1&rtc_timeout_ms=2000"
            async with chromium_page(url, tmp_path / "profile", flags) as page:
                if rtc is not None:
                    await page.call(
                        "Page.addScriptToEvaluateOnNewDocument", {"source": _RELAY_ONLY}
                    )
                await page.call("Page.navigate", {"url": url + "&autostart=1"})
                await page.wait_for("glState.status === 'open'", within=40)
                assert await page.evaluate("glState.transport") == "websocket"
                assert await page.evaluate("document.getElementById('transport').textContent") == (
                    "WebSocket"
                )
                why = await page.evaluate("glState.rtcError")
                if rtc is None:
                    assert why == "the server offers no WebRTC"
                else:
                    assert "timed out" in why or "failed" in why, why
                await _say(page, "hello over the socket")
                assert "You said: hello over the socket" in await page.evaluate(TRANSCRIPT)
                ws_conns = [c for c in relay.connections.values() if c.path == "/live"]
                assert len(ws_conns) == 1
            await relay.wait_until(lambda: relay.stats.active == 0, within=20)
            if rtc is not None:
                # The abandoned peer connection was closed by the server's timeout.
                assert rtc.stats.answered == 1 and rtc.stats.active == 0 and not rtc.peers
                rtc_closed = [c for c in relay.finished if c.path.endswith("/webrtc/offer")]
                assert rtc_closed and rtc_closed[0].close is not None
