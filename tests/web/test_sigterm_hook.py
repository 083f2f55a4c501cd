"""The app's SIGTERM hook (plain uvicorn): drain first, then the replaced handler."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import gemini_live as gl
from gemini_live.web import Relay, create_app
from gemini_live.web._drain import SigtermDrain

CONFIG = gl.SessionConfig(setup=gl.types.Setup(model="models/gemini-3.8-live"))


async def test_sigterm_drains_then_hands_the_signal_on() -> None:
    relay = Relay(lambda _c: CONFIG, authorize=Relay.ALLOW_ANYONE)
    seen: list[tuple[int, bool]] = []
    handed_on = asyncio.Event()

    def server_handler(sig: int, _frame: FrameType | None) -> None:
        seen.append((sig, relay.draining))
        handed_on.set()

    previous = signal.signal(signal.SIGTERM, server_handler)
    try:
        hook = SigtermDrain(relay, within=1.0)
        assert hook.install()
        signal.raise_signal(signal.SIGTERM)
        assert relay.draining  # readiness fails from the signal on
        assert not seen  # the server's own handler waits for the drain
        async with asyncio.timeout(5):
            await handed_on.wait()
        assert seen == [(signal.SIGTERM, True)]
        # A second SIGTERM goes straight on.
        signal.raise_signal(signal.SIGTERM)
        assert len(seen) == 2
        hook.uninstall()
        assert signal.getsignal(signal.SIGTERM) == server_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_create_app_checks_the_drain_timeout() -> None:
    relay = Relay(lambda _c: CONFIG, authorize=Relay.ALLOW_ANYONE)
    create_app(relay, drain_timeout=None)
    try:
        create_app(relay, drain_timeout=0)
    except gl.ConfigError as exc:
        assert "drain_timeout" in str(exc)
    else:
        raise AssertionError("drain_timeout=0 was accepted")
