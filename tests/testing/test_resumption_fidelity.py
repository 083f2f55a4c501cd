"""FakeLiveServer models goAway and resumption the way the service does (issue 9, item 5)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import typing

import pytest
from websockets.asyncio.client import ClientConnection, connect

from gemini_live.testing import (
    CANCELLED,
    DEADLINE_EXPIRED,
    Conversation,
    FakeLiveServer,
    ServerOptions,
)
from gemini_live.testing._records import ServerOptionsKw

from .conftest import (
    JSON,
    do_setup,
    expect_close,
    is_handle,
    is_turn_complete,
    is_update,
    recv_json,
    recv_until,
    send_json,
)

PCM_100MS = bytes(3200)  # 100 ms of 16 kHz silence (no barge-in)


def fake(**options: typing.Any) -> FakeLiveServer:
    return FakeLiveServer(validate_frames=True, **options)


def ws(url: str) -> connect:
    return connect(url, compression=None, open_timeout=5)


async def say(c: ClientConnection, text: str) -> list[JSON]:
    """Send one text turn; return the frames up to the resumable handle after it."""
    await send_json(c, {"realtimeInput": {"text": text}})
    return await recv_until(c, is_handle)


def handle_of(frames: list[JSON]) -> str:
    handle = frames[-1]["sessionResumptionUpdate"]["newHandle"]
    assert isinstance(handle, str)
    return handle


async def send_audio(c: ClientConnection, pcm: bytes) -> None:
    data = base64.b64encode(pcm).decode()
    await send_json(c, {"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm"}}})


# --------------------------------------------------------------------------- goAway


@pytest.mark.parametrize(
    ("close", "expected"),
    [(None, (1000, CANCELLED)), ((1011, DEADLINE_EXPIRED), (1011, DEADLINE_EXPIRED))],
)
async def test_served_after_go_away_until_the_deadline(
    close: tuple[int, str] | None, expected: tuple[int, str]
) -> None:
    options: ServerOptionsKw = {"reply_chunks": 1}
    if close is not None:
        options["go_away_close"] = close
    async with asyncio.timeout(10), fake(**options) as server, ws(server.url) as c:
        await do_setup(c, sessionResumption={})
        await say(c, "one")
        await server.send_go_away(time_left=0.3)
        assert await recv_json(c) == {"goAway": {"timeLeft": "0.3s"}}
        # Still served: a reply and a new handle after the goAway.
        frames = await say(c, "two")
        assert any(f.get("serverContent", {}).get("turnComplete") for f in frames)
        assert handle_of(frames) in server.handles
        code, reason, rest = await expect_close(c)
    assert (code, reason, rest) == (*expected, [])
    assert server.conversation().user_texts == ("one", "two")
    assert server.conversation().answers == ("You said: one", "You said: two")


async def test_a_turn_in_progress_at_go_away_is_delivered_whole() -> None:
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=5, chunk_interval=0.02, go_away_close=(1011, DEADLINE_EXPIRED)) as server,
        ws(server.url) as c,
    ):
        await do_setup(c, sessionResumption={})
        await send_json(c, {"realtimeInput": {"text": "long answer please"}})
        first = await recv_json(c)
        assert first == {"sessionResumptionUpdate": {"resumable": False}}
        await server.send_go_away(time_left=1.0)
        frames = await recv_until(c, is_handle)
    audio = [f for f in frames if "modelTurn" in f.get("serverContent", {})]
    assert len(audio) == 5
    assert any("goAway" in f for f in frames)
    assert any(is_turn_complete(f) for f in frames)


# --------------------------------------------------------------------------- handles


async def test_handles_not_resumable_while_generating() -> None:
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=4, chunk_interval=0.01) as server,
        ws(server.url) as c,
    ):
        await do_setup(c, sessionResumption={})
        await send_json(c, {"realtimeInput": {"text": "hi"}})
        frames = await recv_until(c, is_handle)
    updates = [f["sessionResumptionUpdate"] for f in frames if is_update(f)]
    assert updates[0] == {"resumable": False}
    assert updates[-1]["resumable"] is True
    assert all(u == {"resumable": False} for u in updates[:-1])
    # The only resumable handle comes after turnComplete.
    tc = next(i for i, f in enumerate(frames) if is_turn_complete(f))
    assert tc < len(frames) - 1


async def test_transparent_acks_while_generating_are_not_resumable() -> None:
    async with (
        asyncio.timeout(10),
        fake(transparent=True, reply_chunks=20, chunk_interval=0.01) as server,
        ws(server.url_for("vertex")) as c,
    ):
        await do_setup(c, sessionResumption={"transparent": True})
        assert is_handle(await recv_json(c))
        await send_json(c, {"realtimeInput": {"text": "hi"}})
        await send_audio(c, PCM_100MS)  # consumed while the reply is generated
        frames = await recv_until(
            c,
            lambda f: (
                f.get("sessionResumptionUpdate", {}).get("lastConsumedClientMessageIndex") == "2"
            ),
        )
        ack = frames[-1]["sessionResumptionUpdate"]
        assert ack["resumable"] is False and "newHandle" not in ack
        rest = await recv_until(c, is_handle)
    assert any(is_turn_complete(f) for f in rest)


async def test_resuming_restores_exactly_the_state_of_the_handle() -> None:
    async with asyncio.timeout(10), fake(reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={})
            h1 = handle_of(await say(c, "one"))
            await send_audio(c, PCM_100MS)
            await send_audio(c, PCM_100MS)
            h2 = handle_of(await say(c, "two"))
            await say(c, "three")
            await send_audio(c, PCM_100MS)
            await server.wait_for_messages(7)  # setup + 6
        before = server.conversation()
        assert before.user_texts == ("one", "two", "three")
        assert before.audio_ms == pytest.approx(300.0)
        # Resume from h2: "three" and the last 100 ms are forgotten.
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={"handle": h2})
            after = server.conversation()
            assert after.session_id == before.session_id
            assert after.user_texts == ("one", "two")
            assert after.audio_ms == pytest.approx(200.0)
            assert after.answers == ("You said: one", "You said: two")
            # A client that re-sends what it wrote after h2 gets the state back.
            await say(c, "three")
        assert server.conversation().user_texts == ("one", "two", "three")
        # Resume from the older h1: everything after it is gone, and the record shows it.
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={"handle": h1})
        lost = server.conversation()
        assert lost.user_texts == ("one",)
        assert lost.audio_ms == 0
        assert lost.answers == ("You said: one",)
        assert [m.realtime_input.text for m in lost.messages] == ["one"]  # type: ignore[union-attr]
        assert lost.turns == 1
        assert server.connections[0].rolled_back == {2, 3, 4, 5, 6}


async def test_the_issue_9_scenario_shows_the_loss() -> None:
    """goAway after 2 messages; a client resuming from a handle before "three" without
    re-sending it: the conversation state does not hold "three"."""
    async with asyncio.timeout(10), fake(go_away_after_messages=2, reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={})
            await say(c, "one")
            handle = handle_of(await say(c, "two"))
            assert "goAway" in await recv_json(c)
            await say(c, "three")  # still answered on the draining connection
        assert server.conversation().user_texts == ("one", "two", "three")
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={"handle": handle})
        assert server.conversation().user_texts == ("one", "two")


async def test_resume_while_the_old_connection_is_open_can_be_refused() -> None:
    async with asyncio.timeout(10), fake(reject_resume_while_open=True) as server:
        async with ws(server.url) as old:
            await do_setup(old, sessionResumption={})
            handle = handle_of(await say(old, "one"))
            async with ws(server.url) as new:
                await send_json(
                    new, {"setup": {"model": "models/m", "sessionResumption": {"handle": handle}}}
                )
                code, reason, _ = await expect_close(new)
            assert (code, reason) == (1011, "Internal error encountered.")
        # Once the old socket is closed, the same handle resumes.
        await server.wait_for_close(connection=0)
        async with ws(server.url) as new:
            await do_setup(new, sessionResumption={"handle": handle})
        assert server.connections[2].resumed_from == handle


async def test_wait_for_a_connection_that_does_not_exist_yet() -> None:
    async with asyncio.timeout(10), fake() as server:
        waiter = asyncio.ensure_future(server.wait_for_messages(2, connection=1))
        waiter_setup = asyncio.ensure_future(server.wait_for_setup(connection=1))
        conv = asyncio.ensure_future(
            server.wait_for_conversation(lambda cv: cv.user_texts == ("x",))
        )
        async with ws(server.url) as c:
            await do_setup(c)
        assert not waiter.done()
        async with ws(server.url) as c:
            await do_setup(c)
            await send_json(c, {"realtimeInput": {"text": "x"}})
            received = await waiter
            assert (await waiter_setup).index == 1
        assert received[1].realtime_input.text == "x"  # type: ignore[union-attr]
        got = await conv
        assert isinstance(got, Conversation) and got.answers == ("You said: x",)
        await server.wait_for_close(connection=1)


async def test_conversation_before_any_session_is_a_lookup_error() -> None:
    server = FakeLiveServer()
    with pytest.raises(LookupError):
        server.conversation()


def test_options_object_and_keywords_agree() -> None:
    fields = {f.name for f in dataclasses.fields(ServerOptions)}
    assert fields == set(ServerOptionsKw.__annotations__)
    base = ServerOptions(reply_chunks=7)
    server = FakeLiveServer(base, latency=0.5)
    assert server.options.reply_chunks == 7 and server.options.latency == 0.5
    assert FakeLiveServer().options == ServerOptions()
