"""A resumed session does not re-send a tool answer the handle covers, and loses none.

The service closes 1008 "Requested entity was not found." on an answer to a call it no
longer has pending (docs/protocol.md), so an answer is re-sent after a resume only when
the handle resumed from does not hold it. The model's reply to an answer shows that the
service read it: a handle issued after that reply covers it. Before the fix the reply to
a tool answer did not cover it when a frame that gets no reply came first (a
``willContinue`` progress answer, the first answer of a two-call batch): that frame took
the reply for itself, the instant handle landed inside the guard, and the resumed session
re-sent the final answer and was closed 1008.

An answer the model did not reply to (``SILENT``) and that no handle covers is re-sent:
the fake forgets what it consumed after the handle it resumes from.
"""

from __future__ import annotations

import asyncio

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer
from gemini_live.types import ClientMessage, FunctionResponse

from .conftest import config_for

TIMEOUT = 5.0


def _answers(messages: list[ClientMessage] | tuple[ClientMessage, ...]) -> list[str]:
    """The call ids answered by the tool responses in ``messages``, in order."""
    ids: list[str] = []
    for m in messages:
        if m.tool_response is not gl.types.UNSET:
            ids.extend(str(r.id) for r in m.tool_response.function_responses)
    return ids


async def _until(session: gl.Session, event_type: type[ev.Event]) -> ev.Event:
    async with asyncio.timeout(TIMEOUT):
        async for event in session:
            if isinstance(event, event_type):
                if isinstance(event, ev.SessionResumptionUpdate) and not event.resumable:
                    continue
                return event
    raise AssertionError(f"the session ended before a {event_type.__name__}")


async def _resume(server: FakeLiveServer, session: gl.Session) -> None:
    await server.drop()
    resumed = await _until(session, ev.Resumed)
    assert isinstance(resumed, ev.Resumed) and resumed.state_restored


def _no_1008(server: FakeLiveServer) -> bool:
    return all(c.close_code != 1008 for c in server.connections)


#: Per scenario: the fake's call mode, the calls, and the answers sent one message each.
SCENARIOS = {
    "blocking": (False, ["c1"], [[FunctionResponse(id="c1", name="f", response={"ok": 1})]]),
    "blocking-batch-in-two": (
        False,
        ["c1", "c2"],
        [
            [FunctionResponse(id="c1", name="f", response={"ok": 1})],
            [FunctionResponse(id="c2", name="f", response={"ok": 2})],
        ],
    ),
    "long-running": (
        True,
        ["c1"],
        [
            [
                FunctionResponse(
                    id="c1", name="f", response={"status": "started"}, will_continue=True
                )
            ],
            [FunctionResponse(id="c1", name="f", response={"booked": "1"}, scheduling="WHEN_IDLE")],
        ],
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_an_answer_the_model_replied_to_is_not_sent_again(
    backend_name: str, scenario: str
) -> None:
    non_blocking, ids, answers = SCENARIOS[scenario]
    async with FakeLiveServer(validate_frames=True) as server:
        async with await gl.connect(config_for(server, backend_name)) as session:
            await server.send_tool_call([(i, "f", {}) for i in ids], non_blocking=non_blocking)
            await _until(session, ev.ToolCall)
            for answer in answers:
                await session.send_tool_response(answer)
            await _until(session, ev.TurnComplete)  # the model's reply to the answers
            await _until(session, ev.SessionResumptionUpdate)  # a handle after the reply
            await _resume(server, session)
            await session.send_text("still there")
            await _until(session, ev.TurnComplete)
        server.check()
    assert _no_1008(server), [(c.close_code, c.close_reason) for c in server.connections]
    assert _answers(server.received[-1]) == []  # nothing re-sent
    assert sorted(set(_answers(server.conversation().messages))) == ids
    assert server.conversation().user_texts[-1] == "still there"


async def test_an_answer_nothing_covers_is_sent_again(backend_name: str) -> None:
    """A SILENT answer gets no reply: with no handle after it, the resume re-sends it."""
    async with FakeLiveServer(validate_frames=True) as server:
        async with await gl.connect(config_for(server, backend_name)) as session:
            await server.send_tool_call([("c1", "f", {})], non_blocking=True)
            await _until(session, ev.ToolCall)
            # A handle after the call (a non-blocking call does not hold handles back).
            await session.send_text("hello")
            await _until(session, ev.TurnComplete)
            await _until(session, ev.SessionResumptionUpdate)
            await session.send_tool_response(
                FunctionResponse(id="c1", name="f", response={"ok": 1}, scheduling="SILENT")
            )
            await server.wait_until(lambda: _answers(server.received[-1]) == ["c1"])
            await _resume(server, session)
            # The fake forgot the answer it consumed after the handle: the client re-sends it.
            await server.wait_until(lambda: _answers(server.received[-1]) == ["c1"])
            await session.send_text("still there")
            await _until(session, ev.TurnComplete)
        server.check()
    assert _no_1008(server)
    assert _answers(server.conversation().messages) == ["c1"]  # once: forgotten, re-sent


async def test_an_answer_replied_to_after_a_cancellation_is_not_sent_again(
    backend_name: str,
) -> None:
    """The server cancels the other call of the batch: the model replies to the answer
    given, and a handle after that reply covers it."""
    async with FakeLiveServer(validate_frames=True) as server:
        async with await gl.connect(config_for(server, backend_name)) as session:
            await server.send_tool_call([("c1", "f", {}), ("c2", "f", {})])
            await _until(session, ev.ToolCall)
            await session.send_tool_response(FunctionResponse(id="c1", name="f", response={}))
            await server.wait_until(lambda: _answers(server.received[-1]) == ["c1"])
            await server.send_tool_call_cancellation(["c2"])
            await _until(session, ev.TurnComplete)  # the reply to c1's result
            await _until(session, ev.SessionResumptionUpdate)
            await _resume(server, session)
            await session.send_text("still there")
            await _until(session, ev.TurnComplete)
        server.check()
    assert _no_1008(server), [(c.close_code, c.close_reason) for c in server.connections]
    assert _answers(server.received[-1]) == []
    assert _answers(server.conversation().messages) == ["c1"]
