"""Drain on SIGTERM under any server that runs the ASGI lifespan (plain ``uvicorn``,
``uvicorn --workers N``, a Kubernetes pod stopping).

uvicorn (0.30 to 0.55 at least) installs its SIGTERM handler with :func:`signal.signal`
before it starts the lifespan, and on that signal stops accepting and closes every open
WebSocket with 1012 at once. :class:`SigtermDrain`, installed at lifespan startup, puts
itself in front: the first SIGTERM marks the relay draining (``/readyz`` answers 503 from
that instant), runs :meth:`Relay.drain <gemini_live.web.Relay.drain>` (each
conversation waits for its clean point, is saved, and its browser is closed 4012
"moved"), and only then hands the signal to the handler it replaced, so the server
stops as it always does, with nothing left to close. A second SIGTERM is handed on at
once. ``uvicorn --workers N`` sends SIGTERM to each worker and waits for it: every
worker drains.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemini_live.web._relay import Relay

__all__ = ["SigtermDrain"]

logger = logging.getLogger("gemini_live.web")

_Handler = Callable[[int, FrameType | None], Any] | int | None


class SigtermDrain:
    """The SIGTERM hook of one app (see the module docstring)."""

    def __init__(self, relay: Relay, within: float) -> None:
        self.relay = relay
        self.within = within
        self.installed = False
        self._previous: _Handler = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def install(self) -> bool:
        """Hook SIGTERM (from the lifespan startup, on the main thread); False when it
        cannot be hooked here (not the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            logger.info("SIGTERM drain not installed: the app does not run on the main thread")
            return False
        self._loop = asyncio.get_running_loop()
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._handle)
        self.installed = True
        return True

    def uninstall(self) -> None:
        """Put the replaced handler back (lifespan shutdown)."""
        if self.installed and signal.getsignal(signal.SIGTERM) == self._handle:
            signal.signal(signal.SIGTERM, self._previous)
        self.installed = False

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        loop = self._loop
        if self.relay.draining or loop is None or loop.is_closed():
            self._chain(sig, frame)  # a second SIGTERM (or no loop): stop now
            return
        self.relay.draining = True  # /readyz fails from this instant; drain() starts soon
        loop.call_soon_threadsafe(self._start, sig)

    def _start(self, sig: int) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._drain_then_chain(sig), name="gemini-live-drain"
        )

    async def _drain_then_chain(self, sig: int) -> None:
        try:
            moved = await self.relay.drain(self.within)
            logger.info("drained on SIGTERM: %d conversations moved", moved)
        finally:
            self._chain(sig, None)

    def _chain(self, sig: int, frame: FrameType | None) -> None:
        previous = self._previous
        if callable(previous):
            previous(sig, frame)
        elif previous == signal.SIG_DFL:
            # Nobody else handles it: end the process as SIGTERM does by default.
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)
        # SIG_IGN (or a handler not set from Python): the signal is ignored, as before.
