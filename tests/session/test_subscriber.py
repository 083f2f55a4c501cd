"""The event stream's waiting: one reusable gate per consumer, with asyncio's Task semantics.

A waiting ``async for`` consumer sleeps on its subscriber's gate instead of a fresh Future
(ADR 31). These tests pin what a Future gave for free: wake-up, cancellation at every
moment (nothing queued is lost), timeouts, the stream's end and error, one consumer at a
time, the pure-Python Task, uvloop, and that waiting allocates no Future.
"""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from gemini_live import events as ev
from gemini_live._stream import _Subscriber
from gemini_live.errors import ConcurrencyError, TransportError
from gemini_live.protocol import SessionStats


def make_sub(maxlen: int = 100) -> tuple[_Subscriber, SimpleNamespace]:
    fake = SimpleNamespace(stats=SimpleNamespace(lagged_events=0), error=None)
    return _Subscriber(cast(SessionStats, fake.stats), lambda: fake.error, maxlen), fake


async def until(cond: Callable[[], bool], steps: int = 1000) -> None:
    """Let the loop run until ``cond`` holds (bounded by loop turns, not time)."""
    for _ in range(steps):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def gate_of(sub: _Subscriber) -> object:
    """The gate the subscriber's consumer sleeps on (None before its first wait)."""
    return None if sub._next is None else sub._next._gate


def waiting(sub: _Subscriber) -> bool:
    return sub._waiting  # a call: mypy does not narrow it across statements


def audio(i: int) -> ev.ModelAudio:
    return ev.ModelAudio(bytes([i % 256]) * 2)


async def test_waiting_consumer_is_woken_and_reuses_one_gate() -> None:
    sub, _ = make_sub()
    got: list[ev.Event] = []

    async def consume() -> None:
        async for e in sub:
            got.append(e)
            if len(got) == 5:
                return

    task = asyncio.get_running_loop().create_task(consume())
    gates = set()
    for i in range(5):
        await until(lambda: sub._waiting)
        gates.add(id(gate_of(sub)))
        sub.push(audio(i))
    async with asyncio.timeout(5):
        await task
    assert got == [audio(i) for i in range(5)]
    assert len(gates) == 1  # the same gate for every wait


async def test_queued_events_are_returned_without_waiting() -> None:
    sub, _ = make_sub()
    for i in range(3):
        sub.push(audio(i))
    async with asyncio.timeout(5):
        assert [await anext(sub) for _ in range(3)] == [audio(i) for i in range(3)]
    assert gate_of(sub) is None  # never had to wait


async def test_cancel_while_waiting_loses_nothing() -> None:
    sub, _ = make_sub()
    task = asyncio.get_running_loop().create_task(anext(sub))
    await until(lambda: sub._waiting)
    task.cancel("stop waiting")
    with pytest.raises(asyncio.CancelledError) as info:
        async with asyncio.timeout(5):
            await task
    assert info.value.args == ("stop waiting",)
    assert not sub._waiting
    sub.push(audio(1))
    async with asyncio.timeout(5):
        assert await anext(sub) == audio(1)


async def test_cancel_after_the_wake_up_was_scheduled_keeps_the_event() -> None:
    sub, _ = make_sub()
    task = asyncio.get_running_loop().create_task(anext(sub))
    await until(lambda: sub._waiting)
    sub.push(audio(7))  # wake-up scheduled, the task has not run yet
    assert task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    async with asyncio.timeout(5):
        assert await anext(sub) == audio(7)  # still queued


async def test_timeouts_then_later_events_arrive() -> None:
    sub, _ = make_sub()
    for _ in range(3):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(sub), 0.001)
        assert not sub._waiting
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.001):
            await anext(sub)
    sub.push(audio(2))
    async with asyncio.timeout(5):
        assert await anext(sub) == audio(2)


async def test_end_wakes_the_consumer_after_the_queue_is_drained() -> None:
    sub, _ = make_sub()
    got: list[ev.Event] = []

    async def consume() -> None:
        got.extend([e async for e in sub])

    task = asyncio.get_running_loop().create_task(consume())
    await until(lambda: sub._waiting)
    sub.push(audio(1))
    sub.end()
    async with asyncio.timeout(5):
        await task
    assert got == [audio(1)]


async def test_end_with_an_error_raises_it_in_the_waiting_consumer() -> None:
    sub, fake = make_sub()
    task = asyncio.get_running_loop().create_task(anext(sub))
    await until(lambda: sub._waiting)
    fake.error = TransportError("gone")
    sub.end()
    with pytest.raises(TransportError, match="gone"):
        async with asyncio.timeout(5):
            await task


async def test_second_consumer_gets_concurrency_error_first_keeps_working() -> None:
    sub, _ = make_sub()
    first = asyncio.get_running_loop().create_task(anext(sub))
    await until(lambda: sub._waiting)
    with pytest.raises(ConcurrencyError):
        async with asyncio.timeout(5):
            await anext(sub)
    sub.push(audio(3))
    async with asyncio.timeout(5):
        assert await first == audio(3)


async def test_closing_a_waiting_consumer_coroutine_resets_the_stream() -> None:
    sub, _ = make_sub()
    steps = sub.__anext__().__await__()
    yielded = steps.send(None)  # runs to the wait without a Task
    assert yielded is gate_of(sub) and waiting(sub)
    steps.close()
    assert not waiting(sub)
    sub.push(audio(4))
    async with asyncio.timeout(5):
        assert await anext(sub) == audio(4)


async def test_overflow_while_waiting_reports_lagged_first() -> None:
    sub, fake = make_sub(maxlen=2)
    task = asyncio.get_running_loop().create_task(anext(sub))
    await until(lambda: sub._waiting)
    for i in range(5):
        sub.push(audio(i))
    async with asyncio.timeout(5):
        assert await task == ev.Lagged(3)
        assert [await anext(sub) for _ in range(2)] == [audio(3), audio(4)]
    assert fake.stats.lagged_events == 3


async def test_waiting_allocates_no_future_and_no_coroutine() -> None:
    # 200 consumers waiting at once: with a Future per wait there would be 200 more.
    subs = [make_sub()[0] for _ in range(200)]

    def count(kind: type) -> int:
        return sum(1 for o in gc.get_objects() if type(o) is kind)

    futures, coroutines = count(asyncio.Future), count(types.CoroutineType)
    tasks = [asyncio.get_running_loop().create_task(anext(s)) for s in subs]
    await until(lambda: all(s._waiting for s in subs))
    assert count(asyncio.Future) - futures < 20
    assert count(types.CoroutineType) - coroutines < 20  # no coroutine per wait either
    for i, s in enumerate(subs):
        s.push(audio(i))
    async with asyncio.timeout(5):
        assert await asyncio.gather(*tasks) == [audio(i) for i in range(200)]


def test_pure_python_task_waits_and_cancels() -> None:
    py_task = cast(Any, asyncio.tasks)._PyTask

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sub, _ = make_sub()
        t1 = py_task(anext(sub), loop=loop)
        await until(lambda: sub._waiting)
        sub.push(audio(5))
        async with asyncio.timeout(5):
            assert await t1 == audio(5)
        t2 = py_task(anext(sub), loop=loop)
        await until(lambda: sub._waiting)
        t2.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(5):
                await t2
        assert not sub._waiting

    asyncio.run(main())


def test_uvloop_waits_and_cancels() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        sub, _ = make_sub()
        t1 = asyncio.get_running_loop().create_task(anext(sub))
        await until(lambda: sub._waiting)
        sub.push(audio(6))
        async with asyncio.timeout(5):
            assert await t1 == audio(6)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(sub), 0.001)
        sub.push(audio(8))
        async with asyncio.timeout(5):
            assert await anext(sub) == audio(8)

    uvloop.run(main())


async def test_anext_works_with_asyncio_helpers_and_is_not_a_future() -> None:
    sub, _ = make_sub()
    waiting_next = anext(sub)
    assert not asyncio.isfuture(waiting_next)  # the gate is never handed out
    task = asyncio.ensure_future(waiting_next)
    gathered = asyncio.gather(asyncio.shield(task))
    await until(lambda: waiting(sub))
    sub.push(audio(9))
    async with asyncio.timeout(5):
        assert list(await gathered) == [audio(9)]
    sub.push(audio(10))
    async with asyncio.timeout(5):
        assert await asyncio.create_task(anext(sub)) == audio(10)  # queued: a coroutine


async def test_an_anext_whose_event_was_taken_before_it_was_awaited_waits() -> None:
    sub, _ = make_sub()
    sub.push(audio(1))
    first = sub.__anext__()  # something is queued: a coroutine that returns at once
    async with asyncio.timeout(5):
        assert await anext(sub) == audio(1)  # ...but another read takes the event first
    task = asyncio.ensure_future(first)
    await until(lambda: waiting(sub))
    sub.push(audio(2))
    async with asyncio.timeout(5):
        assert await task == audio(2)
