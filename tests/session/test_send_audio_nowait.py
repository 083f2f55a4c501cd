"""``Session.send_audio_nowait``: the audio hot path without awaiting, for callers that
cannot await (a server's read callback); False (nothing done) whenever the caller has to
take ``await send_audio``; never a chunk dropped or sent twice."""

from __future__ import annotations

import asyncio
import struct

import pytest

import gemini_live as gl
from gemini_live import errors
from gemini_live.testing import FakeLiveServer

from .conftest import config_for


def _chunk(i: int) -> bytes:
    return struct.pack("<160h", *([i * 101 - 9000] * 160))


async def _heard(server: FakeLiveServer, n: int) -> bytes:
    await server.wait_until(lambda: server.connections[0].audio_bytes >= n)
    return bytes(server.connections[0].audio)


async def test_written_by_the_hot_path_or_declined_with_nothing_done(
    server: FakeLiveServer,
) -> None:
    config = config_for(server, "picows", input_rate=16000)
    session = await gl.Session._create(config)
    assert session.send_audio_nowait(_chunk(0)) is False  # not connected
    await session._start()
    try:
        assert session.send_audio_nowait(_chunk(1)) is True
        assert session.send_audio_nowait(_chunk(2), sample_rate=16000) is True
        assert session.send_audio_nowait(_chunk(3), sample_rate=24000) is False  # another rate
        with pytest.raises(errors.ConfigError):
            session.send_audio_nowait(b"\0")  # bad input raises as send_audio does
        await session.send_audio(_chunk(3), sample_rate=16000)
        async with asyncio.timeout(5):
            heard = await _heard(server, 3 * 320)
        assert heard == _chunk(1) + _chunk(2) + _chunk(3)
    finally:
        await session.close()
    assert session.send_audio_nowait(_chunk(4)) is False  # closed


async def test_a_refused_write_is_queued_written_in_order_and_slows_the_next(
    server: FakeLiveServer,
) -> None:
    """The connection refuses the write (backpressure): the chunk is taken anyway and
    written by the session; until then the next chunk is declined (the caller awaits
    ``send_audio``, which writes it after the first)."""
    async with gl.connect(config_for(server, "picows")) as session:
        transport = session._connector.transport
        assert transport is not None and session._write_audio is not None
        real = session._try_send
        assert real is not None
        session._set_direct(lambda _frame: False)  # the transport is paused
        assert session.send_audio_nowait(_chunk(1)) is True
        assert session.send_audio_nowait(_chunk(2)) is False  # its write is pending
        await session.send_audio(_chunk(2))
        async with asyncio.timeout(5):
            while session._nowait_flush is not None:
                flush = session._nowait_flush
                await flush
        session._set_direct(real)
        assert session.send_audio_nowait(_chunk(3)) is True
        async with asyncio.timeout(5):
            heard = await _heard(server, 3 * 320)
        assert heard == _chunk(1) + _chunk(2) + _chunk(3)


@pytest.mark.parametrize("backend_name", ["memory", "websockets"])
async def test_without_a_hot_path_it_declines(server: FakeLiveServer, backend_name: str) -> None:
    async with gl.connect(config_for(server, backend_name)) as session:
        if session._write_audio is None:
            assert session.send_audio_nowait(_chunk(1)) is False
            await session.send_audio(_chunk(1))
        else:
            assert session.send_audio_nowait(_chunk(1)) is True
        async with asyncio.timeout(5):
            assert await _heard(server, 320) == _chunk(1)
