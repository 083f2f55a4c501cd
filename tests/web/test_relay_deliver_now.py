"""The relay's plain-function event path (``_deliver_now``): what it sends is what the
coroutine path (``_deliver``) sends for the same events, byte for byte and in order; what
it does not take it leaves untouched."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import gemini_live as gl
from gemini_live import events as ev
from gemini_live._bridge import SEND_NOWAIT_EXTENSION
from gemini_live.web import Relay
from gemini_live.web._relay import _Connection

from .conftest import ANYONE


def _config(_conn: Any) -> gl.SessionConfig:
    return gl.build_config(url="ws://127.0.0.1:9/unused")


class _Socket:
    """The server's write-at-once extension: records what it writes; ``paused`` refuses."""

    def __init__(self) -> None:
        self.sent: list[bytes | str] = []
        self.paused = False

    def __call__(self, data: bytes | str) -> bool:
        if self.paused:
            return False
        self.sent.append(data)
        return True


async def _never(*_args: Any) -> Any:
    raise AssertionError("the ASGI path is not used here")


def _connection(socket: _Socket) -> _Connection:
    relay = Relay(_config, authorize=ANYONE)
    scope: dict[str, Any] = {
        "type": "websocket",
        "path": "/live",
        "headers": [],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
        "extensions": {SEND_NOWAIT_EXTENSION: socket},
    }
    return _Connection(relay, scope, _never, _never)


_WORDS = ["hi", "", " ", 'a "quote"', "back\\slash", "\u00e9t\u00e9", "\U0001f600", "\n\t", "<b>"]


def _random_event(rng: random.Random) -> ev.Event:
    text = "".join(rng.choice(_WORDS) for _ in range(rng.randrange(4)))
    flag = rng.random() < 0.5
    kind = rng.randrange(9)
    if kind == 0:
        return ev.ModelAudio(rng.randbytes(rng.choice([0, 2, 960, 1920])))
    if kind == 1:
        return ev.ModelAudio(rng.randbytes(320), sample_rate=16000)  # resampled: not fast
    if kind == 2:
        return ev.OutputTranscription(text, finished=flag)
    if kind == 3:
        return ev.InputTranscription(text, finished=flag, interim=rng.random() < 0.5)
    if kind == 4:
        return ev.ModelText(text, thought=flag)
    if kind == 5:
        return ev.GenerationComplete()
    if kind == 6:
        return ev.Interrupted()
    if kind == 7:
        return ev.VoiceActivity("ACTIVITY_START")
    return ev.ModelText(text)


async def test_the_plain_path_sends_what_the_coroutine_path_sends() -> None:
    rng = random.Random(24)
    events = [_random_event(rng) for _ in range(2000)]
    fast_socket, slow_socket = _Socket(), _Socket()
    fast, slow = _connection(fast_socket), _connection(slow_socket)
    taken = 0
    for event in events:
        if fast._deliver_now(event):
            taken += 1
        else:
            await asyncio.wait_for(fast._deliver(event), 5)
        await asyncio.wait_for(slow._deliver(event), 5)
    assert fast_socket.sent == slow_socket.sent
    assert fast.info.audio_out_bytes == slow.info.audio_out_bytes > 0
    assert fast.info.interruptions == slow.info.interruptions > 0
    # It took the reply's events, and only those.
    kinds = (ev.ModelAudio, ev.OutputTranscription, ev.InputTranscription, ev.ModelText)
    assert 0 < taken < sum(isinstance(e, (*kinds, ev.GenerationComplete)) for e in events)


async def test_the_plain_path_changes_nothing_when_the_socket_would_wait() -> None:
    socket = _Socket()
    conn = _connection(socket)
    socket.paused = True
    for event in (
        ev.ModelAudio(b"\x01\x02" * 480),
        ev.OutputTranscription("hi", finished=True),
        ev.InputTranscription("yo", interim=True),
        ev.ModelText("text"),
        ev.GenerationComplete(),
    ):
        assert conn._deliver_now(event) is False
    assert socket.sent == [] and conn.info.audio_out_bytes == 0
    # Once closed, a send is dropped as send_data drops it: taken, nothing written.
    socket.paused = False
    conn.closed = True
    assert conn._deliver_now(ev.ModelAudio(b"\x00\x00")) is True
    assert socket.sent == []
