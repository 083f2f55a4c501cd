"""The WebSocket transport proxy of ``gemini_live.web.serve``/``running``: the messages
written in one loop iteration leave as one write, in order; reading pauses only once the
app is behind."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import websockets

from gemini_live.web import _app
from gemini_live.web._app import COALESCE_MAX_BYTES, CoalescingTransport, frame_header, running


class _Recorder:
    """The real transport's side: what was written and how reading was switched."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def _proxy() -> tuple[CoalescingTransport, _Recorder]:
    real = _Recorder()
    return CoalescingTransport(real, asyncio.get_running_loop()), real  # type: ignore[arg-type]


async def _next_iteration() -> None:
    # Callbacks run in the order they were scheduled: this one after the proxy's flush.
    fut = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(fut.set_result, None)
    await asyncio.wait_for(fut, 5)


async def test_writes_of_one_iteration_leave_as_one_in_order() -> None:
    proxy, real = _proxy()
    proxy.write(b"audio")
    proxy.write(b"")
    proxy.write(b"transcript")
    assert real.writes == []
    await _next_iteration()
    assert real.writes == [b"audiotranscript"]
    proxy.write(b"next")
    await _next_iteration()
    assert real.writes == [b"audiotranscript", b"next"]


async def test_the_connections_of_one_loop_are_flushed_by_one_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Writes of many connections in one iteration schedule one flush, not one each; every
    connection still gets its own write, its bytes in order."""
    loop = asyncio.get_running_loop()
    proxies = [_proxy() for _ in range(3)]
    scheduled: list[Any] = []
    real_call_soon = loop.call_soon

    def spy(callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(callback)
        return real_call_soon(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon", spy)
    for i, (proxy, _real) in enumerate(proxies):
        proxy.write(b"audio%d" % i)
    for i, (proxy, _real) in enumerate(reversed(proxies)):
        proxy.write(b"text%d" % i)
    assert len(scheduled) == 1
    monkeypatch.undo()
    await _next_iteration()
    assert [real.writes for _p, real in proxies] == [
        [b"audio0text2"],
        [b"audio1text1"],
        [b"audio2text0"],
    ]
    # A connection flushed early (a large write) or aborted meanwhile writes nothing more.
    (a, real_a), (b, real_b), _c = proxies
    a.write(b"x")
    a.write(bytes(COALESCE_MAX_BYTES))
    b.write(b"lost")
    b.abort()
    a.write(b"y")
    await _next_iteration()
    assert real_a.writes[1:] == [b"x" + bytes(COALESCE_MAX_BYTES), b"y"]
    assert real_b.writes == [b"audio1text1"]


async def test_a_flush_that_fails_leaves_the_other_connections_flushed() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        broken, real_broken = _proxy()
        fine, real_fine = _proxy()

        def fail(_data: bytes) -> None:
            raise RuntimeError("write failed")

        real_broken.write = fail  # type: ignore[method-assign,assignment]
        broken.write(b"lost")
        fine.write(b"kept")
        await _next_iteration()
        assert real_fine.writes == [b"kept"]
        assert [type(c["exception"]) for c in errors] == [RuntimeError]
        # Both schedule again afterwards.
        real_broken.write = real_fine.write  # type: ignore[method-assign]
        broken.write(b"again")
        fine.write(b"more")
        await _next_iteration()
        assert real_fine.writes == [b"kept", b"again", b"more"]
    finally:
        loop.set_exception_handler(None)


def test_a_closed_loop_is_not_kept_alive_by_its_flusher() -> None:
    """The flushers are kept per loop, weakly: a loop closed with a flush still scheduled
    goes (and its flusher with it)."""
    import gc
    import weakref

    loop = asyncio.new_event_loop()
    proxy = CoalescingTransport(_Recorder(), loop)  # type: ignore[arg-type]
    proxy.write(b"never flushed")
    assert loop in _app._Flusher.per_loop
    loop.close()
    gone = weakref.ref(loop)
    del loop, proxy
    gc.collect()
    assert gone() is None


async def test_each_kind_of_loop_batch_has_one_batch_per_loop() -> None:
    """LoopBatch.of: the same batch for one loop and one subclass, a batch of its own for
    each subclass (the flusher and the bridge's decimation batch do not share items)."""
    from gemini_live.telephony._twilio import _DownBatch

    loop = asyncio.get_running_loop()
    flusher = _app._Flusher.of(loop)
    assert _app._Flusher.of(loop) is flusher and _app._Flusher.per_loop[loop] is flusher
    down = _DownBatch.of(loop)
    assert _DownBatch.of(loop) is down and type(down) is _DownBatch
    assert _DownBatch.per_loop is not _app._Flusher.per_loop


async def test_a_message_is_written_as_its_frame_header_then_its_payload() -> None:
    """write_message(data) leaves as write(frame_header(...)) then write(payload) would,
    for text and binary of every header size, also across the size that flushes at once;
    nothing once the transport is closing."""
    rng = random.Random(6455)
    messed, real_messed = _proxy()
    plain, real_plain = _proxy()
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 70_000, *rng.sample(range(1, 4000), 20)]
    for n in sizes:
        for data in (rng.randbytes(n), "\u00e9" * (n // 2) + "x" * (n % 2)):
            assert messed.write_message(data) is True
            payload = data.encode() if isinstance(data, str) else data
            plain.write(frame_header(0x1 if isinstance(data, str) else 0x2, len(payload)))
            plain.write(payload)
            assert real_messed.writes == real_plain.writes
    await _next_iteration()
    assert real_messed.writes == real_plain.writes and len(real_messed.writes) > 2
    real_messed.closing = True
    assert messed.write_message(b"late") is False
    await _next_iteration()
    assert real_messed.writes == real_plain.writes


async def test_a_large_pending_write_leaves_at_once() -> None:
    proxy, real = _proxy()
    proxy.write(b"a")
    proxy.write(bytes(COALESCE_MAX_BYTES))
    assert real.writes == [b"a" + bytes(COALESCE_MAX_BYTES)]
    await _next_iteration()
    assert len(real.writes) == 1


async def test_close_writes_what_is_pending_and_abort_drops_it() -> None:
    proxy, real = _proxy()
    proxy.write(b"close frame")
    proxy.close()
    assert real.writes == [b"close frame"] and real.calls == ["close"]
    proxy2, real2 = _proxy()
    proxy2.write(b"lost")
    proxy2.abort()
    await _next_iteration()
    assert real2.writes == [] and real2.calls == ["abort"]


async def test_reading_pauses_only_when_held() -> None:
    proxy, real = _proxy()
    proxy.pause_reading()  # what uvicorn does after every message it queues
    proxy.resume_reading()
    assert real.calls == []
    proxy.hold_reading()
    proxy.hold_reading()
    assert real.calls == ["pause"]
    proxy.resume_reading()
    proxy.resume_reading()
    assert real.calls == ["pause", "resume"]
    assert proxy.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the real one


async def test_served_messages_keep_boundaries_and_order_and_reading_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through uvicorn: a burst of messages from the app in one iteration arrives as
    separate messages in order; an app that does not read stops the socket's reading
    once READ_AHEAD_MESSAGES wait (and resumes when it reads them)."""
    held = asyncio.Event()
    original = CoalescingTransport.hold_reading

    def spy(self: CoalescingTransport) -> None:
        held.set()
        original(self)

    monkeypatch.setattr(CoalescingTransport, "hold_reading", spy)
    release = asyncio.Event()
    got: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        for i in range(50):  # no await that suspends: one loop iteration
            await send({"type": "websocket.send", "text": f"m{i}"})
        await release.wait()
        while len(got) < 40:
            msg = await receive()
            got.append(msg["text"])
        await send({"type": "websocket.send", "text": "done"})

    async with running(app) as base:
        url = base.replace("http://", "ws://") + "/ws"
        async with asyncio.timeout(20):
            async with websockets.connect(url) as ws:
                assert [await ws.recv() for _ in range(50)] == [f"m{i}" for i in range(50)]
                for i in range(40):
                    await ws.send(f"c{i}")
                await held.wait()  # the server stops reading: the app is behind
                release.set()
                assert await ws.recv() == "done"
    assert got == [f"c{i}" for i in range(40)]
    assert _app.READ_AHEAD_MESSAGES <= 40
