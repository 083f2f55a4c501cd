"""The fake refuses ``scheduling`` / ``willContinue`` on a family that takes neither
(3.1), as the capability table says; our client never sends them there."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gemini_live.testing import INVALID_ARGUMENT, FakeLiveServer
from gemini_live.tools import ToolRegistry, run_tools
from gemini_live.types import UNSET

from .test_long_running import M31, M38, TIMEOUT, _live, _responses

JSON = dict[str, Any]


async def _recv(ws: ClientConnection) -> JSON:
    data = await ws.recv()
    obj = json.loads(data)
    assert isinstance(obj, dict)
    return obj


async def _answer_raw(model: str, extra: JSON) -> tuple[int | None, str]:
    """Set up ``model`` over a bare WebSocket, take one tool call and answer it with the
    ``extra`` fields; returns the close (None: the model answered, the connection is
    open)."""
    decl = {"name": "lookup", "description": "Look something up."}
    async with (
        asyncio.timeout(TIMEOUT * 2),
        FakeLiveServer(validate_frames=True) as server,
        connect(server.url, compression=None, open_timeout=5) as ws,
    ):
        await ws.send(
            json.dumps({"setup": {"model": model, "tools": [{"functionDeclarations": [decl]}]}})
        )
        assert "setupComplete" in await _recv(ws)
        await server.send_tool_call([("c1", "lookup", {})])
        assert "toolCall" in await _recv(ws)
        response = {"id": "c1", "name": "lookup", "response": {"ok": True}, **extra}
        await ws.send(json.dumps({"toolResponse": {"functionResponses": [response]}}))
        await ws.send(json.dumps({"realtimeInput": {"text": "still there?"}}))
        try:
            while "turnComplete" not in (await _recv(ws)).get("serverContent", {}):
                pass
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason
        return None, ""


@pytest.mark.parametrize(
    "extra",
    [{"willContinue": False}, {"scheduling": "WHEN_IDLE"}],
    ids=["willContinue", "scheduling"],
)
async def test_a_raw_send_of_scheduling_or_will_continue_is_refused_on_3_1(extra: JSON) -> None:
    assert await _answer_raw(M31, extra) == (1007, INVALID_ARGUMENT)


@pytest.mark.parametrize(
    "extra",
    [{"willContinue": False}, {"scheduling": "WHEN_IDLE"}],
    ids=["willContinue", "scheduling"],
)
async def test_the_same_answer_is_taken_on_3_8(extra: JSON) -> None:
    assert await _answer_raw(M38, extra) == (None, "")


async def test_our_client_strips_them_on_3_1() -> None:
    reg = ToolRegistry()

    @reg.tool(scheduling="INTERRUPT")
    async def lookup() -> dict[str, bool]:
        """Look something up."""
        return {"found": True}

    async with _live(reg, M31) as (server, session):
        async with run_tools(session, reg):
            await server.send_tool_call([("c1", "lookup", {})])
            await server.wait_until(lambda: bool(_responses(server, "c1")), within=TIMEOUT)
        (answer,) = _responses(server, "c1")
        assert answer.scheduling is UNSET and answer.will_continue is UNSET
        assert session.status == "open"
    assert all(c.close_code in (None, 1000) for c in server.connections)
