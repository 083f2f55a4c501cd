"""Event-loop stall monitor: measure loop lag and show what blocked it.

A Live session lives on one asyncio event loop. When something blocks that loop (a
synchronous HTTP call, heavy audio processing, ``time.sleep``), frames are neither read
nor sent: the service's audio stalls, and a client keepalive (if enabled) times out with
a 1011 the *client* produced. :class:`LoopMonitor` makes such stalls visible::

    from gemini_live.loopmon import LoopMonitor

    async with LoopMonitor(threshold=0.2, on_stall=print):
        ...  # run your sessions

How it works: a heartbeat callback is scheduled on the loop every ``interval`` seconds and
measures how late it runs (the *lag*). A watchdog thread notices a heartbeat that is
overdue by more than ``threshold`` while the loop is still blocked and records the loop
thread's stack at that moment, so the report shows the code that was blocking, not the
code that happened to run afterwards. When the loop comes back, a lag of ``threshold`` or
more is reported three ways: a ``WARNING`` log on the ``gemini_live.loopmon`` logger, the
counters on the monitor (:attr:`LoopMonitor.stalls`, :attr:`~LoopMonitor.max_lag`, ...;
:mod:`gemini_live.otel` exports them), and a :class:`LoopStall` passed to every
``on_stall`` callback.

Cost: one timer callback per ``interval`` on the loop and one mostly sleeping thread.
Nothing runs unless a monitor is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

__all__ = ["LoopMonitor", "LoopStall"]

logger = logging.getLogger("gemini_live.loopmon")


@dataclass(frozen=True, slots=True)
class LoopStall:
    """One stall: the loop ran a heartbeat ``lag`` seconds late."""

    lag: float
    """How late the heartbeat ran, in seconds (about how long the loop was blocked)."""
    at: float
    """``time.monotonic()`` when the loop came back."""
    stack: str
    """The loop thread's stack while it was blocked ("" if the stall was too short to
    catch, or stack capture is off)."""

    def __repr__(self) -> str:
        where = self.stack.strip().splitlines()[-2].strip() if self.stack.strip() else "?"
        return f"LoopStall(lag={self.lag * 1000:.0f} ms, at {where})"


class LoopMonitor:
    """Heartbeat on the running event loop; reports stalls of ``threshold`` seconds or more.

    Args:
        interval: Seconds between heartbeats (the resolution of the measurement).
        threshold: A lag of this many seconds or more is a stall.
        on_stall: Called (on the loop, after it is unblocked) with each :class:`LoopStall`.
            More callbacks can be added with :meth:`add_listener`.
        capture_stack: Record the blocked loop thread's stack from the watchdog thread.
        log: Log each stall as a warning (with the stack).

    Start it from a running loop with ``async with`` or :meth:`start`; stop with
    :meth:`stop`. Counters stay readable after stopping.
    """

    def __init__(
        self,
        *,
        interval: float = 0.1,
        threshold: float = 0.25,
        on_stall: Callable[[LoopStall], object] | None = None,
        capture_stack: bool = True,
        log: bool = True,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        self.interval = interval
        self.threshold = threshold
        self.capture_stack = capture_stack
        self.log = log
        self._listeners: list[Callable[[LoopStall], object]] = []
        if on_stall is not None:
            self._listeners.append(on_stall)
        #: Heartbeats measured.
        self.beats = 0
        #: Stalls seen (lag >= threshold).
        self.stalls = 0
        #: Largest lag seen, in seconds.
        self.max_lag = 0.0
        #: Lag of the latest heartbeat, in seconds.
        self.last_lag = 0.0
        #: Sum of the lags of all stalls, in seconds.
        self.stalled_seconds = 0.0
        #: The latest stall.
        self.last_stall: LoopStall | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._beat_at = 0.0  # time.monotonic() of the latest heartbeat (read by the thread)
        self._loop_thread = 0
        self._stack = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<LoopMonitor {state} stalls={self.stalls} max_lag={self.max_lag * 1000:.0f} ms"
            f" threshold={self.threshold * 1000:.0f} ms>"
        )

    @property
    def running(self) -> bool:
        return self._handle is not None

    def add_listener(self, callback: Callable[[LoopStall], object]) -> Callable[[], None]:
        """Call ``callback(stall)`` for each stall; returns a function that removes it."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LoopMonitor:
        """Start on the running loop (idempotent)."""
        if self._handle is not None:
            return self
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._beat_at = time.monotonic()
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._beat)
        if self.capture_stack:
            self._thread = threading.Thread(
                target=self._watch, name="gemini-live-loopmon", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the heartbeat and the watchdog thread (idempotent)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    async def __aenter__(self) -> LoopMonitor:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the heartbeat (on the loop) ------------------------------------------------------

    def _beat(self) -> None:
        loop = self._loop
        if loop is None or self._handle is None:
            return
        now = loop.time()
        lag = max(0.0, now - self._due)
        self._beat_at = time.monotonic()
        self.beats += 1
        self.last_lag = lag
        self.max_lag = max(self.max_lag, lag)
        with self._lock:
            stack, self._stack = self._stack, ""
        if lag >= self.threshold:
            self._report(LoopStall(lag, self._beat_at, stack))
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._beat)

    def _report(self, stall: LoopStall) -> None:
        self.stalls += 1
        self.stalled_seconds += stall.lag
        self.last_stall = stall
        if self.log:
            where = f"; the loop was blocked in:\n{stall.stack}" if stall.stack else ""
            logger.warning(
                "event loop stalled for %.0f ms (threshold %.0f ms)%s",
                stall.lag * 1000,
                self.threshold * 1000,
                where,
            )
        for callback in list(self._listeners):
            try:
                callback(stall)
            except Exception:
                logger.exception("an on_stall callback raised")

    # -- the watchdog (its own thread) ----------------------------------------------------

    def _watch(self) -> None:
        period = min(self.interval, self.threshold) / 2
        caught_for = -1.0
        while not self._stop.wait(period):
            beat_at = self._beat_at
            overdue = time.monotonic() - beat_at - self.interval
            if overdue < self.threshold or caught_for == beat_at:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            stack = "".join(traceback.format_stack(frame, limit=30))
            del frame
            with self._lock:
                if self._beat_at == beat_at:  # still the same stall
                    self._stack = stack
                    caught_for = beat_at
