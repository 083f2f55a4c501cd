"""The life of one peer WebSocket in front of a Live session, written once.

The browser relay (:mod:`gemini_live.web`) and the phone bridges
(:mod:`gemini_live.telephony`) both hold one peer socket per Live session. What they
share lives here:

* :class:`PeerSocket`: accept the upgrade, admit (limits, identity), serve a few tasks on
  one :class:`asyncio.TaskGroup` where the first to finish ends the rest, close within a
  bound (then abort the transport when the server lets us), and clean up *always*;
* the timers every peer gets: idle timeout and maximum age;
* the meters: a token bucket, inbound audio at most a multiple of real time (the excess
  dropped and counted, then the peer closed), concurrent holders per key;
* masking for the reprs of what the hooks see (cookies, tokens, signatures);
* :class:`EventPump`: a session's events to the peer in order, on the cheapest path.

Each endpoint keeps only its peer's message format, turn detection, pacing and marks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
import urllib.parse
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Hashable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Self, TypeVar

from gemini_live import events as ev
from gemini_live._asgi import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from gemini_live.config import SessionConfig
    from gemini_live.session import Session

__all__ = [
    "ABORT_EXTENSION",
    "EVENT_BACKLOG",
    "ON_MESSAGE_EXTENSION",
    "SEND_NOWAIT_EXTENSION",
    "AudioMeter",
    "Bucket",
    "EventPump",
    "KeyedCounter",
    "PeerClose",
    "PeerGone",
    "PeerSocket",
    "mask_mapping",
    "maybe_await",
    "parse_scope",
]

logger = logging.getLogger("gemini_live.bridge")

#: Key in ``scope["extensions"]`` of a no-argument callable that aborts the transport.
#: The library's own server (:func:`gemini_live.web.running` / ``serve``) provides it;
#: under another server a close that times out only stops waiting.
ABORT_EXTENSION: Final = "gemini_live.abort"
#: Key in ``scope["extensions"]`` of a callable ``(data: bytes | str) -> bool`` that writes
#: one WebSocket message (binary for bytes, text for str) to the transport at once and
#: returns True, or returns False (nothing written) when the connection cannot take it
#: without waiting (not open, closing, its writes paused): then the ASGI ``send`` does.
#: The library's own server provides it; it saves the ASGI message and the coroutines
#: of ``send`` for every message a relay or bridge sends.
SEND_NOWAIT_EXTENSION: Final = "gemini_live.send_nowait"
#: Key in ``scope["extensions"]`` of a callable ``(handler | None) -> None`` that sets (or
#: removes) a synchronous ``handler(data: bytes | str) -> bool`` for inbound messages.
#: While one is set, a complete data message (bytes for binary, str for text) that
#: arrives while the app waits in ``receive()`` with nothing queued is passed to it
#: inside the server's ``data_received``: True means handled (no ASGI message, no queue,
#: no task wake-up); False means the message is queued for ``receive()`` as usual, and
#: since the app then has a message to take, every later one queues behind it (order is
#: kept) until the app waits on an empty queue again. An exception removes the handler
#: and is raised by the app's next ``receive()`` in place of the message it failed on.
#: The library's own server provides it; elsewhere every message takes the ASGI way.
ON_MESSAGE_EXTENSION: Final = "gemini_live.on_message"

#: Events an :class:`EventPump` holds until its ``limit`` is set from the session's
#: config (``SessionConfig.subscriber_queue``'s default).
EVENT_BACKLOG: Final = 4096

CLOSE_NORMAL: Final = 1000
CLOSE_POLICY: Final = 1008


class PeerGone(Exception):
    """The peer disconnected; nothing more to send or log."""


class PeerClose(Exception):
    """End the peer connection with this close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Finished(Exception):
    """A served task returned: the others end too."""


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def parse_scope(
    scope: Scope,
) -> tuple[dict[str, str], dict[str, str], tuple[str, int] | None]:
    """Headers (lower-case names), query parameters and client address of an ASGI scope."""
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
    }
    query = dict(
        urllib.parse.parse_qsl(
            scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
    )
    client = scope.get("client")
    return headers, query, (str(client[0]), int(client[1])) if client else None


# -- masking ---------------------------------------------------------------------------

_SECRET_NAMES: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-goog-api-key"}
)
_SECRET_PARTS: Final = ("token", "secret", "signature", "password", "auth", "key", "session")


def secret_name(name: str) -> bool:
    """True for a header, query or parameter name whose value is a credential."""
    low = name.lower()
    return low in _SECRET_NAMES or any(part in low for part in _SECRET_PARTS)


def mask_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` with the value of every credential-like name replaced by ``***``."""
    return {k: "***" if secret_name(k) else v for k, v in values.items()}


# -- meters ----------------------------------------------------------------------------


class Bucket:
    """A token bucket: ``rate`` per second sustained, ``burst`` at once."""

    __slots__ = ("burst", "level", "rate", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.stamp = time.monotonic()

    def take(self, n: float, now: float) -> bool:
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level < n:
            return False
        self.level -= n
        return True


class AudioMeter:
    """Inbound audio at most ``bytes_per_second`` sustained (``burst_bytes`` at once).

    :meth:`admit` answers whether a chunk may be forwarded; a chunk over the allowance is
    dropped and counted in :attr:`dropped`, and once more than ``close_after_bytes`` were
    dropped the peer is closed (a client faster than real time for a moment loses a
    little audio; one that keeps flooding is ended).
    """

    # The token bucket's state kept here (Bucket.take's arithmetic inlined): one Python
    # call less per inbound audio message.
    __slots__ = ("_burst", "_level", "_rate", "_stamp", "close_after_bytes", "dropped")

    def __init__(
        self, bytes_per_second: float, burst_bytes: float, close_after_bytes: int | None
    ) -> None:
        self._rate = bytes_per_second
        self._burst = burst_bytes
        self._level = burst_bytes
        self._stamp = time.monotonic()
        self.close_after_bytes = close_after_bytes
        self.dropped = 0

    def admit(self, n: int, now: float) -> bool:
        # Bucket.take, the same arithmetic in the same order.
        level = self._level + (now - self._stamp) * self._rate
        burst = self._burst
        if level > burst:
            level = burst
        self._stamp = now
        if level >= n:
            self._level = level - n
            return True
        self._level = level
        self.dropped += n
        limit = self.close_after_bytes
        if limit is not None and self.dropped > limit:
            raise PeerClose(4429, "rate limit: audio faster than real time")
        return False


class KeyedCounter:
    """Concurrent holders per key (an address, an identity); a key leaves at zero, so the
    map never holds more keys than there are open connections."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[Hashable, int] = {}

    def acquire(self, key: Hashable, limit: int | None) -> bool:
        held = self.counts.get(key, 0)
        if limit is not None and held >= limit:
            return False
        self.counts[key] = held + 1
        return True

    def release(self, key: Hashable) -> None:
        held = self.counts.get(key, 0) - 1
        if held > 0:
            self.counts[key] = held
        else:
            self.counts.pop(key, None)


def identity_key(identity: object) -> Hashable:
    """A dict key for an identity ``authorize`` returned (unhashable ones by their repr)."""
    try:
        hash(identity)
    except TypeError:
        return ("repr", repr(identity))
    return identity


# -- the lifecycle ---------------------------------------------------------------------


_Item = TypeVar("_Item")


class LoopBatch(Generic[_Item]):
    """Items of one event loop handled together by one callback at the next loop
    iteration (not one callback per item: at hundreds of connections that was a quarter
    of the loop's callbacks). Subclasses handle them in :meth:`run`; each caller adds an
    item at most once until that run (its own flag). :meth:`of` gives the one batch of a
    subclass per event loop."""

    __slots__ = ("_items", "_loop", "_scheduled")

    #: Each subclass's batches, one per event loop (weakly: a closed loop's goes with it).
    per_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.per_loop = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Self:
        """This subclass's batch for ``loop`` (made on first use)."""
        batch: Self | None = cls.per_loop.get(loop)
        if batch is None:
            batch = cls.per_loop[loop] = cls(loop)
        return batch

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: the class map (per_loop) holds this one, keyed weakly by the loop.
        self._loop = weakref.ref(loop)
        self._items: list[_Item] = []
        self._scheduled = False

    def add(self, item: _Item) -> None:
        """Handle ``item`` at the next run."""
        self._items.append(item)
        if not self._scheduled:
            loop = self._loop()
            if loop is None:  # pragma: no cover - an item outliving its loop
                return
            self._scheduled = True
            loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        items = self._items
        self._items = []
        self.run(items)

    def run(self, items: list[_Item]) -> None:
        """Handle the items added since the last run, in order."""
        raise NotImplementedError


class PeerSocket:
    """One peer WebSocket: accept, admit, serve, close within a bound, clean up.

    Subclasses implement :meth:`admit` (limits and identity: raise :class:`PeerClose` to
    refuse), :meth:`serve` (usually ``await self.serve_tasks(...)``), :meth:`failed`
    (an unexpected exception -> close code and reason), :meth:`cleanup` (release what
    :meth:`admit` took; runs whatever happened, before anything that may wait) and
    :meth:`finished` (hooks, after the close). :meth:`record_close` notes how the
    connection ended.
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        close_timeout: float,
        idle_timeout: float | None = None,
        max_age: float | None = None,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.close_timeout = close_timeout
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self.closed = False
        #: True once a close frame could not be sent in time and the wait was given up.
        self.aborted = False
        self.started = time.monotonic()
        self.last_activity = self.started
        self._send_lock = asyncio.Lock()
        self._group: asyncio.TaskGroup | None = None
        extensions = scope.get("extensions") or {}
        nowait = extensions.get(SEND_NOWAIT_EXTENSION)
        self._send_nowait: Callable[[bytes | str], bool] | None = (
            nowait if callable(nowait) else None
        )
        on_message = extensions.get(ON_MESSAGE_EXTENSION)
        self._on_message: Callable[[Callable[[bytes | str], bool] | None], None] | None = (
            on_message if callable(on_message) else None
        )
        #: The rest of a message :meth:`inline` began and left to :meth:`receive`.
        self._rest: Callable[[], Awaitable[None]] | None = None

    # -- to override -------------------------------------------------------------------

    async def upgrade(self) -> bool:
        """Accept the WebSocket upgrade; False if the peer left before it."""
        msg = await self._receive()
        if msg["type"] != "websocket.connect":
            return False
        await self._send({"type": "websocket.accept"})
        return True

    async def admit(self) -> None:
        """Limits and identity; raise :class:`PeerClose` to refuse."""

    async def serve(self) -> None:
        """Serve the peer until it or the upstream ends."""

    def failed(self, exc: Exception) -> tuple[int, str]:
        """The close code and reason for an unexpected exception (logged here)."""
        logger.exception("peer connection failed")
        return 1011, "internal error"

    def record_close(self, code: int, reason: str) -> None:
        """Note how the connection ended (called once)."""

    def inline(self, data: bytes | str) -> bool:
        """Handle one peer message synchronously, inside the server's read callback
        (after :meth:`receive_inline`); True if it was handled completely.

        Return False *before changing anything* to have the message arrive through
        :meth:`receive` as usual, or after calling :meth:`finish_later` with the
        rest of the work. An exception ends the connection as the same exception
        raised by the task that calls :meth:`receive` would."""
        return False

    def finish_later(self, rest: Callable[[], Awaitable[None]]) -> None:
        """From :meth:`inline` (which then returns False): the message it began is
        finished by awaiting ``rest()`` in the task that calls :meth:`receive`, before
        any later message (which waits behind it)."""
        self._rest = rest

    def audio_inline(self, session: Session, pcm: bytes, sample_rate: int) -> bool:
        """For :meth:`inline`: write ``pcm`` upstream now when the session takes it
        without waiting (True); else finish the message by awaiting ``send_audio``
        (False, what :meth:`inline` then returns)."""
        if session.send_audio_nowait(pcm, sample_rate=sample_rate):
            return True
        self.finish_later(functools.partial(session.send_audio, pcm, sample_rate=sample_rate))
        return False

    #: True when :meth:`inline` itself declines (returns False) while the connection is
    #: closed or a message it began is still being finished: the server then calls it
    #: directly, without :meth:`_inline_entry`'s checks in between.
    inline_checks_itself: ClassVar[bool] = False

    def receive_inline(self) -> bool:
        """Have the server pass messages to :meth:`inline` when it can
        (:data:`ON_MESSAGE_EXTENSION`); False when it cannot (another server)."""
        on_message = self._on_message
        if on_message is None:
            return False
        on_message(self.inline if self.inline_checks_itself else self._inline_entry)
        return True

    def _inline_entry(self, data: bytes | str) -> bool:
        if self.closed or self._rest is not None:
            return False
        return self.inline(data)

    def _stop_inline(self) -> None:
        on_message = self._on_message
        if on_message is not None:
            with contextlib.suppress(Exception):
                on_message(None)

    #: The reasons recorded when the peer closed, or vanished mid-send.
    peer_closed_reason = "closed by the peer"
    peer_gone_reason = "peer disconnected"

    async def cleanup(self) -> None:
        """Release slots and close the upstream; runs however the connection ended."""

    async def finished(self) -> None:
        """After the close: the endpoint's ``on_close``/``on_stop`` hooks."""

    # -- the run -----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            if not await self.upgrade():
                return
        except Exception:
            return
        try:
            await self.admit()
            await self.serve()
        except PeerGone:
            pass
        except PeerClose as exc:
            await self.close(exc.code, exc.reason)
        except Exception as exc:
            code, reason = self.failed(exc)
            await self.close(code, reason)
        finally:
            self._stop_inline()
            try:
                await self.cleanup()
            finally:
                if not self.closed:
                    await self.close(CLOSE_NORMAL, self.normal_reason)
                await self.finished()

    normal_reason = "bye"

    async def serve_tasks(self, *tasks: tuple[str, Coroutine[Any, Any, None]]) -> None:
        """Run ``tasks`` (plus the idle and age timers) on one task group: the first one
        to end, normally or not, ends the others; its exception (if any) is raised."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for name, coro in tasks:
                    group.create_task(self._until_done(coro), name=name)
                if self.idle_timeout is not None:
                    group.create_task(self._idle_timer(self.idle_timeout), name="peer-idle")
                if self.max_age is not None:
                    group.create_task(self._age_timer(self.max_age), name="peer-age")
        except BaseExceptionGroup as group_exc:
            first = _first_error(group_exc)
            if first is not None:
                raise first from None
        finally:
            self._group = None

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Add a task to the running :meth:`serve_tasks` group (same rules)."""
        if self._group is None:
            coro.close()
            raise RuntimeError("spawn() outside serve_tasks()")
        self._group.create_task(self._until_done(coro), name=name)

    @staticmethod
    async def _until_done(coro: Awaitable[None]) -> None:
        await coro
        raise _Finished()

    def touch(self) -> None:
        """The peer did something: the idle timer starts again."""
        self.last_activity = time.monotonic()

    async def _idle_timer(self, idle: float) -> None:
        while True:
            left = self.last_activity + idle - time.monotonic()
            if left <= 0:
                raise PeerClose(CLOSE_POLICY, "idle timeout")
            await asyncio.sleep(left)  # a timer, re-armed from the last activity

    async def _age_timer(self, age: float) -> None:
        left = self.started + age - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)  # a timer
        raise PeerClose(CLOSE_POLICY, "maximum connection age reached")

    # -- sending and closing -------------------------------------------------------------

    async def receive(self) -> Message | None:
        """The next message from the peer (None once it disconnected)."""
        msg = await self._receive()
        rest = self._rest
        while rest is not None:
            # The message :meth:`inline` began (queued first, so this one): finish it.
            self._rest = None
            await rest()
            msg = await self._receive()
            rest = self._rest
        if msg["type"] == "websocket.disconnect":
            if not self.closed:
                self.closed = True
                self.record_close(int(msg.get("code", CLOSE_NORMAL)), self.peer_closed_reason)
            return None
        return msg

    async def send_data(self, data: bytes | str) -> None:
        """Send one message: binary for ``bytes``, text for ``str``. Written at once
        through the server's :data:`SEND_NOWAIT_EXTENSION` when it offers one and no
        other send is in progress (the order stays the order of the calls); through the
        ASGI ``send`` otherwise."""
        if self.closed:
            return
        nowait = self._send_nowait
        if nowait is not None and not self._send_lock.locked() and nowait(data):
            return
        if isinstance(data, str):
            await self.send_message({"type": "websocket.send", "text": data})
        else:
            await self.send_message({"type": "websocket.send", "bytes": data})

    def send_now(self, data: bytes | str) -> bool:
        """:meth:`send_data` when it would not wait: True once done (written, or
        dropped as :meth:`send_data` drops it after the close); False, having changed
        nothing, when only :meth:`send_data` can send it (no server write at hand,
        another send in progress, the socket paused)."""
        if self.closed:
            return True
        nowait = self._send_nowait
        return nowait is not None and not self._send_lock.locked() and nowait(data)

    async def send_message(self, message: Message) -> None:
        if self.closed:
            return
        lock = self._send_lock
        await lock.acquire()  # (not ``async with``: two coroutine frames less per message)
        try:
            await self._send(message)
        except Exception:
            # The peer went away mid-send (each server raises its own error type).
            if not self.closed:
                self.closed = True
                self.record_close(1001, self.peer_gone_reason)
            raise PeerGone() from None
        finally:
            lock.release()

    async def close(self, code: int, reason: str) -> None:
        """Send the close frame, waiting at most ``close_timeout``; then abort."""
        if self.closed:
            return
        self.closed = True
        reason = reason.encode()[:120].decode("utf-8", "ignore")
        self.record_close(code, reason)
        try:
            async with asyncio.timeout(self.close_timeout):
                async with self._send_lock:
                    await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except TimeoutError:
            # The peer stopped reading and the server waits for its buffer to drain:
            # stop waiting, and cut the transport where the server offers a way.
            self.aborted = True
            self.abort()
        except Exception:
            pass  # the peer is gone already

    def abort(self) -> None:
        extensions = self.scope.get("extensions") or {}
        abort = extensions.get(ABORT_EXTENSION)
        if callable(abort):
            with contextlib.suppress(Exception):
                abort()


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException | None:
    """The exception that ended a task group: a close first, then anything but a task
    that simply finished (an exception is kept over a normal end)."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                walk(sub)
        elif not isinstance(exc, _Finished):
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, (PeerClose, PeerGone)):
            return exc
    return leaves[0] if leaves else None


async def bounded(awaitable: Awaitable[Any], within: float, what: str) -> None:
    """Await ``awaitable`` for at most ``within`` seconds; log (do not raise) failures."""
    try:
        async with asyncio.timeout(within):
            await awaitable
    except TimeoutError:
        logger.warning("%s did not finish within %.1f s", what, within)
    except Exception:
        logger.exception("%s failed", what)


# -- session events -> peer ----------------------------------------------------------------


class _Resumed:
    """The rest of a coroutine that already ran up to its first suspension, as an
    awaitable: ``await`` hands the Task what the coroutine yielded, then forwards every
    resumption (value, exception, close) to it, as ``yield from`` would have."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self._coro
        yielded = self._yielded
        while True:
            try:
                value = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    yielded = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = coro.send(value)
                except StopIteration:
                    return


class EventPump:
    """A session's events to the peer, in stream order, on the cheapest path.

    Registered with ``session.on_event`` (:meth:`attach`), it runs the endpoint's
    ``handler(event)`` coroutine for each event right inside the session's frame callback
    and steps it once: a handler that finishes without waiting (a send into a socket
    that is not paused, bookkeeping) costs no task wake-up at all. The first handler that
    has to wait (the peer reads slowly, the send lock is held) is handed to :meth:`run`,
    the endpoint's task; until it and everything queued behind it are done, new events
    wait in a queue of at most ``limit`` (beyond it the oldest is dropped and counted, and
    the handler gets ``Lagged(count)`` before the rest, as a subscriber's consumer would).

    ``fast(event)``, when given, is tried first for an event that would run inline: a
    plain function that handles the event completely without waiting and returns True
    (no coroutine at all), or returns False *having changed nothing* to have
    ``handler(event)`` run as above. Whatever it handles, ``handler`` must handle alike.

    Events that arrive before :meth:`run` starts are held in that queue, so the endpoint
    can announce the session to its peer first. An exception from the handler (a close,
    a vanished peer, a bug) ends the pump: :meth:`run` raises it, and later events are
    ignored. The end of the stream is the handler's to act on (the relay and the bridges
    raise their close on ``Closed``, the session's last event).
    """

    __slots__ = (
        "_busy",
        "_error",
        "_fast",
        "_handler",
        "_held",
        "_lag",
        "_queue",
        "_remove",
        "_stats",
        "_stuck",
        "_wake",
        "deferred",
        "delivered",
        "dropped",
        "ended",
        "limit",
    )

    def __init__(
        self,
        handler: Callable[[ev.Event], Coroutine[Any, Any, None]],
        *,
        limit: int,
        fast: Callable[[ev.Event], bool] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._handler = handler
        self._fast = fast
        self.limit = limit
        self._queue: deque[ev.Event] = deque()
        self._held = True
        self._busy = False
        self._stuck: _Resumed | None = None
        self._error: BaseException | None = None
        self._wake: asyncio.Future[None] | None = None
        self._lag = 0
        self._remove: Callable[[], None] | None = None
        self._stats: Any = None
        #: Events handled (inline or by :meth:`run`), handlers that had to wait, and
        #: events dropped because the queue was full.
        self.delivered = 0
        self.deferred = 0
        self.dropped = 0
        self.ended = False

    def attach(self, session: Session) -> None:
        """Subscribe to ``session``'s events (``session.on_event``)."""
        self._stats = session.stats
        self._remove = session.on_event(self.push)

    async def connect(self, config: SessionConfig) -> Session:
        """``gemini_live.connect(config)`` with the pump subscribed before the first frame
        (a stored conversation's ``Resumed`` arrives while connecting)."""
        from gemini_live.session import Session

        session = await Session._create(config)
        self.attach(session)
        await session._start()
        return session

    def detach(self) -> None:
        """Unsubscribe and forget what is queued (the connection ended)."""
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()
        self.ended = True
        self._queue.clear()

    def push(self, event: ev.Event) -> None:
        """The ``on_event`` callback: handle ``event`` now, or queue it behind the rest."""
        if self.ended:
            return
        if self._held or self._busy or self._queue:
            queue = self._queue
            if len(queue) >= self.limit:
                queue.popleft()
                self._lag += 1
                self.dropped += 1
                if self._stats is not None:
                    self._stats.lagged_events += 1
            queue.append(event)
            return
        fast = self._fast
        if fast is not None:
            try:
                done = fast(event)
            except BaseException as exc:  # as the handler's: the pump ends
                self._end(exc)
                return
            if done:
                self.delivered += 1
                return
        coro = self._handler(event)
        try:
            yielded = coro.send(None)
        except StopIteration:
            self.delivered += 1
            return
        except BaseException as exc:  # a close, a vanished peer, a bug: the pump ends
            self._end(exc)
            return
        self.deferred += 1
        self._busy = True
        self._stuck = _Resumed(coro, yielded)
        self._wakeup()

    def end_with(self, exc: BaseException) -> None:
        """End the pump as if the handler had raised ``exc`` (work the endpoint does for
        its handler outside it): :meth:`run` raises it."""
        if not self.ended:
            self._end(exc)

    def _end(self, exc: BaseException) -> None:
        self.ended = True
        self._error = exc
        self._queue.clear()
        self._wakeup()

    def _wakeup(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def run(self) -> None:
        """Release the held events, then finish what had to wait, until the pump ends;
        raises what ended it."""
        self._held = False
        queue = self._queue
        try:
            while True:
                if self._error is not None:
                    raise self._error
                stuck = self._stuck
                if stuck is not None:
                    await stuck
                    self._stuck = None
                    self.delivered += 1
                elif queue:
                    self._busy = True
                    if self._lag:
                        n, self._lag = self._lag, 0
                        await self._handler(ev.Lagged(n))
                    else:
                        await self._handler(queue.popleft())
                        self.delivered += 1
                else:
                    self._busy = False
                    if self.ended:
                        raise RuntimeError("the event pump was detached")
                    self._wake = asyncio.get_running_loop().create_future()
                    try:
                        await self._wake
                    finally:
                        self._wake = None
        except BaseException as exc:
            self.ended = True
            if self._error is None:
                self._error = exc
            self._stuck = None
            queue.clear()
            raise
