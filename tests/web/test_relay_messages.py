"""The relay's per-event messages to the page, written around pre-encoded parts, are the
exact text encoding their dict gives (a guard for the pre-encoding: it passes on the
dict-building code too)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from gemini_live import events as ev
from gemini_live.web._relay import ConnectionInfo, _Connection

TEXTS = ["", "hello", 'quote " and \\ backslash', "tab\tnew\nline", "héllo ✓ 😀", "\x00\x1f"]


def _delivered(event: ev.Event) -> list[str]:
    sent: list[str] = []
    conn: Any = object.__new__(_Connection)
    conn.info = ConnectionInfo(id=1, path="/", headers={}, query={}, client=None, origin=None)

    async def send_data(data: bytes | str) -> None:
        assert isinstance(data, str)
        sent.append(data)

    class _Relay:
        def _notify(self) -> None:
            pass

    conn.send_data = send_data
    conn.relay = _Relay()

    async def go() -> None:
        async with asyncio.timeout(5):
            await conn._deliver(event)

    asyncio.run(go())
    return sent


def _dict(obj: dict[str, Any]) -> str:
    return msgspec.json.encode(obj).decode()


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("finished", [False, True])
def test_transcripts_and_texts(text: str, finished: bool) -> None:
    assert _delivered(ev.OutputTranscription(text=text, finished=finished)) == [
        _dict({"type": "output_transcript", "text": text, "finished": finished})
    ]
    for interim in (False, True):
        event = ev.InputTranscription(text=text, finished=finished, interim=interim)
        assert _delivered(event) == [
            _dict(
                {"type": "input_transcript", "text": text, "finished": finished, "interim": interim}
            )
        ]
    assert _delivered(ev.ModelText(text=text)) == [_dict({"type": "text", "text": text})]


def test_constant_messages() -> None:
    assert _delivered(ev.Interrupted()) == [_dict({"type": "interrupted"})]
    assert _delivered(ev.GenerationComplete()) == [_dict({"type": "generation_complete"})]
