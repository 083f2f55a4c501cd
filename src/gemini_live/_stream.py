"""A consumer's view of a session's event stream, and what a waiting consumer sleeps on.

:class:`_Subscriber` is the bounded queue behind ``async for event in session`` and
``session.events()``; :class:`_Gate` is the one object its consumer's task waits on,
reused for every wait (ADR 31).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from gemini_live import events as ev
from gemini_live.errors import ConcurrencyError, GeminiLiveError
from gemini_live.protocol import SessionStats


class _Gate:
    """What a waiting consumer's task sleeps on: one per subscriber, reused for every wait.

    A fresh ``asyncio.Future`` per wait, with the coroutine and iterator around it, lives
    from one event to the next (20-40 ms in a conversation). With hundreds of sessions in a
    loop those objects outlive the young generation of the garbage collector, reach the old
    one and trigger full collections (30-70 ms pauses at 400+ sessions, ADR 31). The gate
    is the part of the Future protocol a Task uses (``_asyncio_future_blocking``,
    ``get_loop``, ``add_done_callback``, ``result``, ``cancel``) on one long-lived object.
    It is only ever yielded to the Task by :class:`_Next`, never handed to user code (where
    ``asyncio.isfuture`` would take it for a Future).
    """

    __slots__ = ("_asyncio_future_blocking", "_callback", "_cancelled", "_context", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._asyncio_future_blocking = False
        self._callback: Callable[[Any], object] | None = None
        self._context: Any = None
        self._cancelled: BaseException | None = None

    # -- what asyncio.Task calls --------------------------------------------------------------

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def add_done_callback(self, fn: Callable[[Any], object], *, context: Any = None) -> None:
        self._callback = fn
        self._context = context

    def result(self) -> None:
        exc = self._cancelled
        if exc is not None:
            self._cancelled = None
            raise exc

    def cancel(self, msg: Any = None) -> bool:
        if self._callback is None:
            return False  # already woken: the Task cancels itself on its next step
        self._cancelled = asyncio.CancelledError() if msg is None else asyncio.CancelledError(msg)
        self.open()
        return True

    # -- what the subscriber calls ------------------------------------------------------------

    def open(self) -> None:
        """Wake the task waiting on the gate, if one is."""
        fn = self._callback
        if fn is not None:
            self._callback = None
            self._loop.call_soon(fn, self, context=self._context)

    def reset(self) -> None:
        self._callback = None
        self._asyncio_future_blocking = False


class _Next(Coroutine[Any, Any, ev.Event]):
    """What ``__anext__`` returns when nothing is queued: an awaitable (and its own
    iterator, so no coroutine is created per wait) whose steps take the next event, or
    yield the gate to the Task until :meth:`_Subscriber.push` opens it. It has the
    coroutine protocol (``send``, ``throw``, ``close``), so ``asyncio.create_task`` and
    ``asyncio.wait_for`` take it as they take ``anext()`` of any async iterator."""

    __slots__ = ("_gate", "_sub")

    def __init__(self, sub: _Subscriber, gate: _Gate) -> None:
        self._sub = sub
        self._gate = gate

    def __await__(self) -> Generator[Any, None, ev.Event]:
        self._gate._cancelled = None
        return self  # a _Next is its own iterator (no cast(): a call per await)

    def __iter__(self) -> _Next:
        return self

    def __next__(self) -> _Gate:
        sub = self._sub
        gate = self._gate
        buf = sub._buf
        if buf and not sub._lag:  # the usual wake-up: one event queued
            sub._waiting = False
            raise StopIteration(buf.popleft())
        if buf or sub._lag or sub._ended:
            try:
                event = sub._take()
            except BaseException:
                sub._waiting = False
                raise
            if event is not None:
                sub._waiting = False
                raise StopIteration(event)
        if sub._waiting and gate._callback is not None:
            raise _concurrent()  # another task is registered on the gate
        sub._waiting = True
        gate._asyncio_future_blocking = True
        return gate

    def send(self, value: object) -> _Gate:
        return self.__next__()

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> _Gate:
        self._sub._waiting = False
        self._gate.reset()
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        raise val

    def close(self) -> None:
        self._sub._waiting = False
        self._gate.reset()


def _concurrent() -> ConcurrencyError:
    return ConcurrencyError(
        "another task is already iterating this event stream; use "
        "session.events() for an independent stream per consumer"
    )


class _Subscriber:
    """One consumer's view of the event stream: a bounded queue with a lag counter.

    It is its own async iterator, for ONE task at a time (a second task gets
    :class:`~gemini_live.errors.ConcurrencyError`). Cancelling a pending ``__anext__`` is
    safe: no event is lost. On overflow the oldest event is dropped and counted; the
    consumer then receives ``Lagged(count)`` before the events that are left. After the
    session ends it drains what is queued, then stops (raising the session's error if it
    failed).

    It knows the session only by what it needs: the ``stats`` it counts lagged events in
    and ``error``, a function that returns the session's error once it ended.
    """

    __slots__ = (
        "__weakref__",
        "_buf",
        "_ended",
        "_error",
        "_lag",
        "_max",
        "_next",
        "_stats",
        "_waiting",
    )

    def __init__(
        self,
        stats: SessionStats,
        error: Callable[[], GeminiLiveError | None],
        maxlen: int,
    ) -> None:
        self._buf: deque[ev.Event] = deque()
        self._max = maxlen
        self._lag = 0
        self._next: _Next | None = None
        self._waiting = False
        self._ended = False
        self._stats = stats
        self._error = error

    def push(self, event: ev.Event) -> None:
        buf = self._buf
        if len(buf) >= self._max:
            buf.popleft()
            self._lag += 1
            self._stats.lagged_events += 1
        buf.append(event)
        if self._waiting:
            # _Gate.open inlined (once per event a waiting consumer gets).
            gate = self._next._gate  # type: ignore[union-attr]  # set whenever _waiting is
            fn = gate._callback
            if fn is not None:
                gate._callback = None
                gate._loop.call_soon(fn, gate, context=gate._context)

    def end(self) -> None:
        self._ended = True
        if self._waiting:
            self._next._gate.open()  # type: ignore[union-attr]

    def __aiter__(self) -> _Subscriber:
        return self

    def __anext__(self) -> Coroutine[Any, Any, ev.Event]:
        # Something to return: a coroutine that completes at once (the cheapest awaitable
        # that carries a value). Nothing: the reusable _Next (no coroutine per wait).
        if self._lag or self._buf or self._ended:
            return self._now()
        if self._waiting:
            raise _concurrent()
        nxt = self._next
        loop = asyncio.get_running_loop()
        if nxt is None or nxt._gate._loop is not loop:
            nxt = self._next = _Next(self, _Gate(loop))
        return nxt

    async def _now(self) -> ev.Event:
        buf = self._buf
        if buf and not self._lag:
            return buf.popleft()
        event = self._take()
        if event is None:  # another reader took it between __anext__ and the await
            return await self.__anext__()
        return event

    def _take(self) -> ev.Event | None:
        """The next event, or None when the consumer has to wait; raises at the end."""
        if self._lag:
            n, self._lag = self._lag, 0
            return ev.Lagged(n)
        buf = self._buf
        if buf:
            return buf.popleft()
        if self._ended:
            err = self._error()
            if err is not None:
                raise err
            raise StopAsyncIteration
        return None
