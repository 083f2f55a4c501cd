"""EventPump: a session's events to a peer in order, inline when the send does not wait.

The relay and the phone bridges take their session's events with it; these tests pin
what a lost or reordered event would break: order across sends that have to wait, the
bound and its ``Lagged`` report, holding until the endpoint's task runs, and the end.
"""

from __future__ import annotations

import asyncio

import pytest

from gemini_live import events as ev
from gemini_live._bridge import EventPump, PeerClose


def _text(i: int) -> ev.ModelText:
    return ev.ModelText(str(i))


class _Peer:
    """A peer socket whose sends wait while ``paused`` (a peer that reads slowly)."""

    def __init__(self) -> None:
        self.got: list[ev.Event] = []
        self.open = asyncio.Event()
        self.open.set()
        self.changed = asyncio.Event()
        self.cancelled = 0

    async def handler(self, event: ev.Event) -> None:
        if isinstance(event, ev.ModelText) and event.text == "boom":
            raise PeerClose(4000, "boom")
        try:
            await self.open.wait()  # completes at once unless paused
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.got.append(event)
        self.changed.set()

    async def until(self, n: int) -> None:
        async with asyncio.timeout(5):
            while len(self.got) < n:
                self.changed.clear()
                await self.changed.wait()

    def texts(self) -> list[str]:
        return [e.text if isinstance(e, ev.ModelText) else repr(e) for e in self.got]


async def _started(pump: EventPump) -> asyncio.Task[None]:
    task = asyncio.create_task(pump.run())
    await asyncio.sleep(0)  # one step: run() releases the held events and waits
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_send_that_does_not_wait_is_done_inside_the_callback() -> None:
    peer = _Peer()
    pump = EventPump(peer.handler, limit=100)
    task = await _started(pump)
    for i in range(50):
        pump.push(_text(i))
    # No await since the pushes: each was delivered inside its callback.
    assert peer.texts() == [str(i) for i in range(50)]
    assert (pump.delivered, pump.deferred, pump.dropped) == (50, 0, 0)
    await _stop(task)


async def test_order_and_every_event_survive_sends_that_wait() -> None:
    peer = _Peer()
    pump = EventPump(peer.handler, limit=10_000)
    task = await _started(pump)
    n = 2000
    for i in range(n):
        if i % 97 == 5:
            peer.open.clear()  # the peer stops reading: this send waits, the rest queue
        if i % 97 == 60:
            peer.open.set()
            await asyncio.sleep(0)  # let the pump's task run now and then
        pump.push(_text(i))
    peer.open.set()
    await peer.until(n)
    assert peer.texts() == [str(i) for i in range(n)]
    assert pump.deferred > 0 and pump.dropped == 0
    # Back to the inline path once the queue is empty.
    deferred = pump.deferred
    pump.push(_text(n))
    assert peer.texts()[-1] == str(n) and pump.deferred == deferred
    await _stop(task)


async def test_the_queue_is_bounded_and_the_handler_hears_of_the_drop() -> None:
    peer = _Peer()
    pump = EventPump(peer.handler, limit=10)
    task = await _started(pump)
    peer.open.clear()
    for i in range(51):
        pump.push(_text(i))  # 0 waits in the send; 1..50 queue, 10 at most
    peer.open.set()
    await peer.until(12)
    assert peer.texts() == ["0", "Lagged(count=40)"] + [str(i) for i in range(41, 51)]
    assert pump.dropped == 40
    await _stop(task)


async def test_events_before_run_are_held_then_delivered_in_order() -> None:
    peer = _Peer()
    pump = EventPump(peer.handler, limit=100)
    for i in range(5):
        pump.push(_text(i))
    assert peer.got == []
    task = asyncio.create_task(pump.run())
    await peer.until(5)
    pump.push(_text(5))
    assert peer.texts() == [str(i) for i in range(6)]
    await _stop(task)


async def test_an_exception_in_the_handler_ends_the_pump_after_what_came_before() -> None:
    peer = _Peer()
    pump = EventPump(peer.handler, limit=100)
    task = await _started(pump)
    peer.open.clear()
    pump.push(_text(0))  # waits
    pump.push(_text(1))
    pump.push(ev.ModelText("boom"))
    pump.push(_text(2))
    peer.open.set()
    async with asyncio.timeout(5):
        with pytest.raises(PeerClose):
            await task
    assert peer.texts() == ["0", "1"]
    pump.push(_text(3))  # after the end: ignored, not queued
    assert peer.texts() == ["0", "1"] and pump.ended


async def test_cancelling_the_task_cancels_a_waiting_send() -> None:
    peer = _Peer()
    pump = EventPump(peer.handler, limit=100)
    task = await _started(pump)
    peer.open.clear()
    pump.push(_text(0))
    await asyncio.sleep(0)  # the task takes the waiting send over
    await _stop(task)
    assert peer.cancelled == 1 and pump.ended
    pump.detach()
    pump.push(_text(1))
    assert peer.got == []


def test_limit_must_be_positive() -> None:
    async def handler(event: ev.Event) -> None:
        pass

    with pytest.raises(ValueError, match="limit"):
        EventPump(handler, limit=0)


class _FastPeer(_Peer):
    """A peer whose plain-function path takes the events with an even number while the
    socket is open (``fast``), leaving the rest (and everything while paused) to the
    coroutine handler; ``seen`` records every event ``fast`` was offered."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.handled_fast: list[str] = []

    def fast(self, event: ev.Event) -> bool:
        assert isinstance(event, ev.ModelText)
        self.seen.append(event.text)
        if event.text == "fast-boom":
            raise PeerClose(4000, "fast boom")
        if not self.open.is_set() or int(event.text) % 2:
            return False  # nothing changed: the handler takes it
        self.handled_fast.append(event.text)
        self.got.append(event)
        return True


async def test_a_fast_path_handles_events_without_a_coroutine_in_order() -> None:
    peer = _FastPeer()
    handled: list[str] = []
    real = peer.handler

    async def handler(event: ev.Event) -> None:
        assert isinstance(event, ev.ModelText)
        handled.append(event.text)
        await real(event)

    pump = EventPump(handler, limit=10_000, fast=peer.fast)
    task = await _started(pump)
    for i in range(10):
        pump.push(_text(i))
    # Inline, no await: evens by the plain function, odds by the handler's coroutine.
    assert peer.texts() == [str(i) for i in range(10)]
    assert peer.handled_fast == [str(i) for i in range(0, 10, 2)]
    assert handled == [str(i) for i in range(1, 10, 2)]
    # A send that waits: what queues behind it goes to the handler, in order, and the
    # plain function is not offered the queued events.
    peer.open.clear()
    for i in range(10, 20):
        pump.push(_text(i))
    assert peer.seen[-1] == "10" and len(peer.seen) == 11
    peer.open.set()
    await peer.until(20)
    assert peer.texts() == [str(i) for i in range(20)]
    assert (pump.delivered, pump.deferred, pump.dropped) == (20, 1, 0)
    # Afterwards the plain function is offered events again.
    pump.push(_text(20))
    assert peer.handled_fast[-1] == "20" and len(peer.got) == 21
    await _stop(task)


async def test_an_exception_in_the_fast_path_ends_the_pump() -> None:
    peer = _FastPeer()
    pump = EventPump(peer.handler, limit=100, fast=peer.fast)
    task = await _started(pump)
    pump.push(_text(0))
    pump.push(ev.ModelText("fast-boom"))
    pump.push(_text(2))  # ignored: the pump ended
    async with asyncio.timeout(5):
        with pytest.raises(PeerClose):
            await task
    assert peer.texts() == ["0"] and pump.ended
