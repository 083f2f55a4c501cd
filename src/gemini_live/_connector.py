"""The connection loop of a session: open, wait for the setup, serve, rotate, back off.

One :class:`Connector` per session runs one task (the *runner*) with one loop:

1. open a socket, write the setup (with the latest handle), wait for ``setupComplete``;
2. flush what the protocol queued, then let sends go straight to the socket;
3. serve the connection until it ends, the idle timeout fires, or a planned rotation is
   due (the protocol's :meth:`~gemini_live.protocol.ClientProtocol.rotation_due`, acted on
   with :meth:`~gemini_live.protocol.ClientProtocol.begin_rotation`);
4. ask :class:`~gemini_live.protocol._reconnect.ReconnectState` what now — rotate, retry
   after a delay, start fresh, or give up — and do it.

The connector talks to the session through :class:`Host`, a small protocol it defines
(emit an event, flush, allow direct writes, finish, the timer of the interaction
watchdog); it imports no session. The session reads the connector's ``transport``,
``open`` and ``lock`` in its flush, the one place that handles a failed write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal, Protocol

from gemini_live import events as ev
from gemini_live.config import SessionConfig
from gemini_live.errors import GeminiLiveError, SessionClosedError, SetupTimeout
from gemini_live.protocol import ClientProtocol
from gemini_live.protocol._reconnect import FreshStart, GiveUp, ReconnectState, Retry, Rotate
from gemini_live.transport.base import (
    Backend,
    CloseInfo,
    ConnectOptions,
    DirectWriter,
    SyncSender,
    Transport,
    UnsentBytes,
)

__all__ = ["Connector", "Host"]

logger = logging.getLogger("gemini_live.session")


class Host(Protocol):
    """What the connection loop needs from the object it serves (the session).

    The names are private on purpose: the session implements them without adding to its
    public API.
    """

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    def _is_closing(self) -> bool:
        """The session is closing: stop."""

    def _receiver(self, handler: _ConnHandler) -> Callable[[bytes], None]:
        """The frame callback of a connection: it sets ``handler.last_rx`` to each frame's
        arrival time and, while ``handler.info`` is None, handles the frame."""

    def _emit(self, event: ev.Event) -> None:
        """Hand an event to every consumer."""

    async def _flush(self) -> None:
        """Write what the protocol hands out (the one place for write errors)."""

    def _set_direct(
        self, try_send: Callable[[bytes], bool] | None, direct: DirectWriter | None = None
    ) -> None:
        """Let sends write synchronously with ``try_send`` (None: they queue and flush);
        audio through ``direct``'s writer while it has one."""

    def _ready(self) -> None:
        """The first connection is open."""

    def _prepare_seed(self) -> None:
        """The next connection is a fresh session: seed it with the conversation."""

    def _timer_deadline(self) -> float | None:
        """When :meth:`_timer_fired` must be called at the latest (None: no timer)."""

    def _timer_fired(self, now: float) -> None:
        """Give the host's timers a look at ``now``."""

    def _finish(self, error: GeminiLiveError | None = None) -> None:
        """The runner ended (with ``error``, or None after a close)."""


class _ConnHandler:
    """FrameHandler for one connection: forwards frames while it is the current one."""

    __slots__ = ("closed", "connector", "info", "last_rx", "on_frame")

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        #: Done at the close; the runner waits on it during the setup only, and drops it
        #: then (None: a served connection's close pokes the runner instead).
        self.closed: asyncio.Future[CloseInfo] | None = asyncio.get_running_loop().create_future()
        self.info: CloseInfo | None = None
        self.last_rx = time.monotonic()
        #: The session's frame callback for this connection: it stamps ``last_rx`` and
        #: forwards frames while ``info`` is None, in the same Python call as their
        #: bookkeeping (:meth:`Host._receiver`).
        self.on_frame: Callable[[bytes], None] = connector.host._receiver(self)

    def on_close(self, info: CloseInfo) -> None:
        if self.info is None:
            self.info = info
            if self.connector.handler is self:
                self.connector.lost()
            closed = self.closed
            if closed is not None and not closed.done():
                closed.set_result(info)


class Connector:
    """The runner of one session (see the module docstring)."""

    def __init__(
        self, host: Host, protocol: ClientProtocol, config: SessionConfig, backend: Backend
    ) -> None:
        self.host = host
        self.protocol = protocol
        self.config = config
        self.backend = backend
        # The counters live in the core, so a snapshot carries them (a restored core
        # goes on backing off where its old process was).
        self.reconnect = ReconnectState(config.reconnect, protocol.reconnect)
        #: The current socket (None between connections).
        self.transport: Transport | None = None
        self.handler: _ConnHandler | None = None
        #: The connection is open and was flushed once: writes may go out.
        self.open = False
        #: Serializes writes (the session's flush holds it).
        self.lock: asyncio.Lock | None = None
        self.task: asyncio.Task[None] | None = None
        self.close_info: tuple[int | None, str] = (None, "")
        #: The runner's current wait for :meth:`poke` (None while it does not wait): a
        #: future made for each wait, so an idle session holds no Event and no task.
        self._wake: asyncio.Future[None] | None = None
        self._setup_waiter: asyncio.Future[ev.SetupComplete] | None = None
        #: The runner's last wait ended by its timer, not by a poke.
        self._timed_out = False
        #: DEBUG logging of frame kinds and sizes (never payloads), read once per connect.
        self.debug = False

    def start(self) -> None:
        """Create the loop's primitives and start the runner task."""
        self.lock = asyncio.Lock()
        self.task = asyncio.get_running_loop().create_task(self._run(), name="gemini-live-session")

    def poke(self) -> None:
        """Wake the runner (something it waits on may have changed)."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _arm(self) -> asyncio.Future[None]:
        """A new wait for :meth:`poke`; pokes before it are not seen (as a cleared Event)."""
        wake = self._wake = asyncio.get_running_loop().create_future()
        return wake

    def _time_up(self, wake: asyncio.Future[None]) -> None:
        """The runner's wait timed out (its timer fired before a poke)."""
        if not wake.done():
            self._timed_out = True
            wake.set_result(None)

    def lost(self) -> None:
        """The current connection cannot be written any more (closed, or a write failed)."""
        self.open = False
        self.host._set_direct(None)
        self.poke()

    def setup_completed(self, event: ev.SetupComplete) -> None:
        """``setupComplete`` arrived on the current connection."""
        w = self._setup_waiter
        if w is not None and not w.done():
            w.set_result(event)

    # -- the runner ---------------------------------------------------------------------

    async def _run(self) -> None:
        """The one reconnect loop: it asks the reconnect rules what to do after each end.

        The loop and the runner's ending in one coroutine: each coroutine a session is
        suspended in is one more object for the garbage collector to walk.
        """
        error: GeminiLiveError | None = None
        try:
            host, protocol, stats = self.host, self.protocol, self.protocol.stats
            policy = self.config.reconnect
            rules = self.reconnect
            while not host._is_closing():
                healthy = False
                try:
                    await self._open_connection()
                    if rules.first:
                        rules.opened()
                        host._ready()
                    outcome = await self._serve_connection()
                    healthy = protocol.connection_healthy(time.monotonic(), policy.healthy_after)
                except GeminiLiveError as exc:
                    outcome = exc
                if host._is_closing():
                    return
                decision = rules.after(
                    outcome, healthy=healthy, resuming=bool(protocol.resume_handle)
                )
                if isinstance(decision, Rotate):
                    stats.go_away_rotations += 1
                    host.log.info("rotating the connection (goAway or setup change)")
                    host._emit(ev.Reconnecting(1, 0.0, "goAway: rotating connection"))
                    continue
                stats.last_error = str(decision.error)
                if isinstance(decision, GiveUp):
                    raise decision.error
                if isinstance(decision, FreshStart):
                    protocol.resume_rejected()
                    host.log.info("resume rejected (%s); starting a fresh session", decision.error)
                    continue
                assert isinstance(decision, Retry)
                host.log.info(
                    "reconnecting in %.2f s (attempt %d): %s",
                    decision.delay,
                    decision.attempt,
                    decision.error,
                )
                host._emit(ev.Reconnecting(decision.attempt, decision.delay, str(decision.error)))
                await self._sleep(decision.delay)
        except GeminiLiveError as exc:
            error = exc
            self.host.log.error("session ended: %s", exc)
        except asyncio.CancelledError:
            error = None
            raise
        except Exception as exc:  # pragma: no cover - a bug; keep the app informed
            self.host.log.exception("session runner crashed")
            error = GeminiLiveError(f"session runner crashed: {exc!r}")
        finally:
            await self.drop_transport(graceful=True)
            self.host._finish(error)

    async def _sleep(self, delay: float) -> None:
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                while not self.host._is_closing():
                    try:
                        await self._arm()
                    finally:
                        self._wake = None

    async def _open_connection(self) -> None:
        """Connect, write the setup, wait for setupComplete, flush the queue."""
        host, protocol, stats = self.host, self.protocol, self.protocol.stats
        tc = self.config.transport
        url, headers = await tc.auth.apply(tc.endpoint.url)
        options = ConnectOptions(
            headers=(*headers, *tc.headers),
            ssl_context=tc.ssl_context,
            proxy=tc.proxy,
            open_timeout=tc.open_timeout,
            ping_interval=tc.ping_interval,
            ping_timeout=tc.ping_timeout,
            max_message_size=tc.max_message_size,
            user_agent=f"gemini-live/{_version()}",
            close_timeout=tc.close_timeout,
        )
        loop = asyncio.get_running_loop()
        # Before the handler: its frame callback reads the flag once (SessionRecord.receiver).
        self.debug = logger.isEnabledFor(logging.DEBUG)
        handler = _ConnHandler(self)
        self._setup_waiter = loop.create_future()
        protocol.connection_made()
        host.log.info(
            "connecting to the %s endpoint (%s)",
            protocol.api,
            "resuming" if protocol.resume_handle else "new session",
        )
        try:
            transport = await self.backend.connect(url, handler, options)
        except GeminiLiveError:
            protocol.connection_lost(1006, "connect failed", local=True)
            raise
        stats.connects += 1
        if stats.connects > 1:
            stats.reconnects += 1
        if not protocol.will_resume():
            host._prepare_seed()
        self.transport = transport
        self.handler = handler
        protocol.unsent_bytes = _unsent_probe(transport)
        try:
            for frame in protocol.data_to_send(time.monotonic()):
                await transport.send(frame)
            waiter = self._setup_waiter
            closed = handler.closed
            assert waiter is not None and closed is not None
            try:
                async with asyncio.timeout(self.config.setup_timeout):
                    done, _ = await asyncio.wait(
                        (waiter, closed), return_when=asyncio.FIRST_COMPLETED
                    )
            except TimeoutError:
                protocol.connection_lost(1006, "setup timeout", local=True)
                raise SetupTimeout(
                    f"no setupComplete within {self.config.setup_timeout:g} s"
                ) from None
            finally:
                # Answered or given up: neither future is held while the connection is
                # served (fewer objects per session for the garbage collector).
                self._setup_waiter = None
                handler.closed = None
            if waiter not in done:
                info = handler.info or CloseInfo(1006)
                self.close_info = (info.code, info.reason)
                raise protocol.connection_lost(info.code, info.reason, local=info.local)
        except BaseException:
            await self.drop_transport(graceful=False)
            if protocol.state.value not in ("closed", "idle"):
                protocol.connection_lost(1006, "setup interrupted", local=True)
            raise
        host.log.info("setup complete (session id %s)", protocol.session_id)
        self.open = True
        await host._flush()
        if self.transport is transport and self.open and handler.info is None:
            if isinstance(transport, SyncSender):
                direct = transport if isinstance(transport, DirectWriter) else None
                host._set_direct(transport.try_send, direct)
            else:
                host._set_direct(None)

    async def _serve_connection(self) -> GeminiLiveError | Literal["rotate"]:
        """Serve this connection until it ends or a planned rotation is due."""
        host, protocol = self.host, self.protocol
        handler = self.handler
        transport = self.transport
        assert handler is not None and transport is not None
        idle = self.config.transport.idle_timeout
        told_drain = False
        loop = asyncio.get_running_loop()
        while True:
            if host._is_closing():
                return SessionClosedError("closing")
            if handler.info is not None:
                break
            now = time.monotonic()
            if protocol.rotation_due(now):
                protocol.begin_rotation()
                self.open = False
                host._set_direct(None)
                async with self._flush_guard():
                    protocol.start_closing()
                await self.drop_transport(graceful=True)
                protocol.connection_lost(1000, "rotating after goAway", local=True)
                return "rotate"
            if not told_drain and protocol.draining:
                told_drain = True
                blockers = protocol.rotation_blockers()
                host.log.info(
                    "goAway with %s: serving this connection until a clean point, at most %.2f s",
                    ", ".join(blockers) or "nothing pending",
                    max(0.0, (protocol.rotation_deadline() or now) - now),
                )
            timeout: float | None = None
            if idle is not None:
                timeout = max(0.0, handler.last_rx + idle - now)
            for at in (protocol.rotation_deadline(), host._timer_deadline()):
                if at is not None:
                    left = max(0.0, at - now)
                    timeout = left if timeout is None else min(timeout, left)
            # One future to wait on: the socket's close pokes it too (_ConnHandler.on_close
            # -> lost -> poke, this handler being the current one), and the timeout is a
            # timer on it. No asyncio.wait: its set, waiter, callbacks and closure would be
            # objects the garbage collector walks for as long as the session idles.
            wake = self._arm()
            self._timed_out = False
            timer = None if timeout is None else loop.call_later(timeout, self._time_up, wake)
            try:
                await wake
            finally:
                self._wake = None
                wake.cancel()
                if timer is not None:
                    timer.cancel()
            host._timer_fired(time.monotonic())
            if (
                self._timed_out
                and idle is not None
                and handler.info is None
                and time.monotonic() - handler.last_rx >= idle
            ):
                host.log.warning("no frame for %.1f s; reconnecting", idle)
                self.open = False
                handler.on_close(CloseInfo(1006, "idle timeout", local=True))
                transport.abort()
                break
        info = handler.info or CloseInfo(1006)
        self.open = False
        host._set_direct(None)
        if info.code == 1006:
            protocol.stats.abrupt_drops += 1
        err = protocol.connection_lost(info.code, info.reason, local=info.local)
        self.close_info = (info.code, info.reason)
        host.log.info("connection closed: %s", err)
        await self.drop_transport(graceful=False)
        return err

    @contextlib.asynccontextmanager
    async def _flush_guard(self) -> AsyncIterator[None]:
        """Hold the flush lock (bounded): no write is half-done while we switch sockets."""
        lock = self.lock
        if lock is None:
            yield
            return
        try:
            async with asyncio.timeout(2.0):
                await lock.acquire()
        except TimeoutError:
            yield
            return
        try:
            yield
        finally:
            lock.release()

    async def drop_transport(self, *, graceful: bool) -> None:
        """Close (or abort) the current socket; nothing more is written to it."""
        transport, self.transport = self.transport, None
        self.open = False
        self.host._set_direct(None)
        if transport is None:
            return
        if graceful and not transport.closed:
            try:
                async with asyncio.timeout(2.0):
                    await transport.close(1000, "")
            except (TimeoutError, GeminiLiveError, OSError):
                transport.abort()
        elif not transport.closed:
            transport.abort()


def _version() -> str:
    from gemini_live._version import __version__

    return __version__


def resolve_backend(backend: str | Backend) -> Backend:
    """A backend object from its name (or the object itself)."""
    if not isinstance(backend, str):
        return backend
    from gemini_live.transport import get_backend

    resolved: Backend = get_backend(backend)
    return resolved


def _cannot_tell() -> None:
    return None


def _unsent_probe(transport: Transport) -> Callable[[], int | None]:
    """What the core asks when a handle arrives: the transport's unsent bytes (None, and
    so coverage by the clock alone, counted at risk, for a transport that cannot tell)."""
    if isinstance(transport, UnsentBytes):
        return transport.unsent_bytes
    return _cannot_tell
