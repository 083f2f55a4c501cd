"""The core's state as plain data: snapshot, save, restore, continue == never snapshotted.

A random sequence of what the I/O layer does (connect, hand out, confirm, give back, drop)
and of what the server and the app send runs twice on two cores: straight through, and
with a snapshot taken after step ``k``, encoded (JSON or msgpack), decoded and restored
into a new core that runs the rest. Everything either core returns (frames to write,
events, errors) and the final counters must be the same.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemini_live import errors
from gemini_live.config import ReconnectPolicy, ResendWindow
from gemini_live.protocol import SNAPSHOT_VERSION, ClientProtocol, ProtocolSnapshot
from gemini_live.protocol._reconnect import ReconnectCounters, ReconnectState
from gemini_live.types import FunctionDeclaration, FunctionResponse, Setup, Tool
from strategies import profile

MODEL = "models/gemini-3.8-live"
SETUP = Setup(
    model=MODEL,
    tools=[
        Tool(
            function_declarations=[
                FunctionDeclaration(name="f", behavior="BLOCKING"),
                FunctionDeclaration(name="bg"),
            ]
        )
    ],
)
AUDIO_OUT = base64.b64encode(bytes(960)).decode()

#: Server frames by name.
SERVER: dict[str, bytes] = {
    "setup_complete": b'{"setupComplete":{"sessionId":"s-1"}}',
    "model_text": b'{"serverContent":{"modelTurn":{"parts":[{"text":"ok"}]}}}',
    "audio": json.dumps(
        {
            "serverContent": {
                "modelTurn": {
                    "parts": [
                        {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": AUDIO_OUT}}
                    ]
                }
            }
        },
        separators=(",", ":"),
    ).encode(),
    "turn_complete": b'{"serverContent":{"turnComplete":true}}',
    "interrupted": b'{"serverContent":{"interrupted":true}}',
    "handle": b'{"sessionResumptionUpdate":{"newHandle":"h","resumable":true}}',
    "not_resumable": b'{"sessionResumptionUpdate":{"resumable":false}}',
    "go_away": b'{"goAway":{"timeLeft":"2s"}}',
    "tool_call": b'{"toolCall":{"functionCalls":[{"id":"c%d","name":"f"}]}}',
    "tool_call_bg": b'{"toolCall":{"functionCalls":[{"id":"b%d","name":"bg"}]}}',
    "cancel": b'{"toolCallCancellation":{"ids":["c%d"]}}',
    "garbage": b'{"serverContent":',
}

_COMMON = [
    st.tuples(st.just("recv"), st.sampled_from(sorted(SERVER)), st.integers(0, 3)),
    st.tuples(st.just("text"), st.sampled_from(["hi", "again", "x" * 50])),
    st.tuples(st.just("audio"), st.integers(1, 4)),
    st.tuples(st.just("to_send")),
    st.tuples(st.just("written"), st.integers(0, 3)),
]
OPS = st.one_of(
    *_COMMON,
    *_COMMON,
    st.tuples(st.just("open")),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("connect")),
    st.tuples(st.just("to_send")),
    st.tuples(st.just("written"), st.integers(0, 3)),
    st.tuples(st.just("unwritten")),
    st.tuples(st.just("direct_failed")),
    st.tuples(st.just("direct"), st.booleans()),
    st.tuples(st.just("lost"), st.sampled_from([1000, 1006, 1011])),
    st.tuples(st.just("recv"), st.sampled_from(sorted(SERVER)), st.integers(0, 3)),
    st.tuples(st.just("text"), st.sampled_from(["hi", "again", "x" * 50])),
    st.tuples(st.just("audio"), st.integers(1, 4)),
    st.tuples(st.just("answer"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("activity_end")),
    st.tuples(st.just("rotate")),
    st.tuples(st.just("request_rotation")),
    st.tuples(st.just("seed")),
    st.tuples(st.just("discard")),
    st.tuples(st.just("outage"), st.sampled_from(["drop", "rejected", "rotate"]), st.booleans()),
)

#: The reconnect rules the connection loop applies (no jitter: the same delays twice).
POLICY = ReconnectPolicy(jitter=0.0, retry_initial=True, max_attempts=4, max_fresh_restarts=2)


def make() -> ClientProtocol:
    return ClientProtocol(
        SETUP,
        offline_buffer_bytes=6000,
        resend=ResendWindow(audio_seconds=0.1, video_frames=1, handle_guard=0.3),
    )


def step(p: ClientProtocol, op: tuple[Any, ...], now: float) -> object:
    """Do one thing; return what came out (or the error's type)."""
    try:
        match op:
            case ("open",):  # a whole connect: the common way into the open state
                p.connection_made()
                out = p.data_to_send(now)
                events = [repr(e) for e in p.receive(SERVER["setup_complete"], now)]
                p.direct_writes = True  # as a session with a synchronous writer does
                return [out, events, p.data_to_send(now)]
            case ("reopen",):  # the socket dropped; the next connection resumes or starts fresh
                lost = repr(p.connection_lost(1006, "", local=False))
                return [lost, step(p, ("open",), now)]
            case ("connect",):
                p.connection_made()
                return None
            case ("to_send",):
                return p.data_to_send(now)
            case ("written", n):
                p.written(n)
                return None
            case ("unwritten",):
                p.unwritten()
                return None
            case ("direct_failed",):
                p.direct_failed()
                return None
            case ("direct", on):
                p.direct_writes = on
                return None
            case ("lost", code):
                return repr(p.connection_lost(code, "", local=False))
            case ("recv", name, i):
                data = SERVER[name]
                if b"%d" in data:
                    data = data.replace(b"%d", str(i).encode())
                return [repr(e) for e in p.receive(data, now)]
            case ("text", text):
                return p.send_text(text, now)
            case ("audio", chunks):
                return p.send_audio(bytes(640 * chunks), now)
            case ("answer", i, more):
                answer = FunctionResponse(id=f"c{i}", name="f", response={"i": i})
                if more:
                    answer = FunctionResponse(
                        id=f"c{i}", name="f", response={"i": i}, will_continue=True
                    )
                return p.send_tool_response(answer, now)
            case ("activity_end",):
                return p.send_activity_end(now)
            case ("rotate",):
                due = p.rotation_due(now)
                if due:
                    p.begin_rotation()
                return (due, p.rotation_blockers(), p.rotation_deadline())
            case ("request_rotation",):
                p.request_rotation(now)
                return None
            case ("seed",):
                from gemini_live.types import ClientMessage, Content

                msg = ClientMessage(client_content=_seed_content(Content))
                p.set_seed(None, [msg], 1)
                return None
            case ("discard",):
                return p.discard_queue()
            case ("outage", kind, healthy):  # what the connection loop decides
                rules = ReconnectState(POLICY, p.reconnect)
                outcome: errors.GeminiLiveError | Literal["rotate"] = (
                    "rotate"
                    if kind == "rotate"
                    else errors.SessionNotFound(1008, "session not found", phase="setup")
                    if kind == "rejected"
                    else errors.ConnectionDropped(1006, "", phase="stream")
                )
                return repr(rules.after(outcome, healthy=healthy, resuming=kind == "rejected"))
    except errors.GeminiLiveError as exc:
        return type(exc).__name__
    raise AssertionError(op)


def _seed_content(content: Any) -> Any:
    from gemini_live.types import ClientContent

    return ClientContent(turns=[content.text("earlier")], turn_complete=False)


def observe(p: ClientProtocol) -> tuple[object, ...]:
    return (
        p.state,
        p.queued,
        p.unacknowledged,
        dict(p.pending_tool_calls),
        p.has_pending_blocking_call,
        p.resume_handle,
        p.session_id,
        p.draining,
        p.generating,
        p.stats,
        p.reconnect,
    )


@profile(300)
@given(
    ops=st.lists(OPS, min_size=5, max_size=60).map(lambda ops: [("open",), *ops]),
    cut=st.integers(0, 60),
    codec=st.sampled_from(["json", "msgpack", "none"]),
)
def test_snapshot_restore_continue_is_the_same_as_never_snapshotted(
    ops: list[tuple[Any, ...]], cut: int, codec: str
) -> None:
    cut = min(cut, len(ops))
    straight, split = make(), make()
    outputs_a = [step(straight, op, i * 0.05) for i, op in enumerate(ops)]
    outputs_b = [step(split, op, i * 0.05) for i, op in enumerate(ops[:cut])]
    snap = split.snapshot()
    if codec == "json":
        snap = msgspec.json.decode(msgspec.json.encode(snap), type=ProtocolSnapshot)
    elif codec == "msgpack":
        snap = msgspec.msgpack.decode(msgspec.msgpack.encode(snap), type=ProtocolSnapshot)
    restored = ClientProtocol.restore(snap)
    assert restored.snapshot() == split.snapshot()
    outputs_b += [step(restored, op, (cut + i) * 0.05) for i, op in enumerate(ops[cut:])]
    assert outputs_b == outputs_a
    assert observe(restored) == observe(straight)
    assert restored.snapshot() == straight.snapshot()


def test_a_snapshot_is_a_copy() -> None:
    p = make()
    p.connection_made()
    p.data_to_send(0.0)
    p.receive(SERVER["setup_complete"], 0.0)
    snap = p.snapshot()
    p.send_text("later", 0.1)
    p.receive(SERVER["tool_call"].replace(b"%d", b"1"), 0.2)
    assert snap.outbox.pending == [] and snap.ledger.pending == {}
    assert snap.stats.frames_received == 1
    again = ClientProtocol.restore(snap)
    again.send_text("x", 0.3)
    assert snap.outbox.pending == []  # the restored core shares nothing with the snapshot


def test_a_snapshot_says_its_version_and_a_wrong_one_is_refused() -> None:
    snap = make().snapshot()
    assert snap.version == SNAPSHOT_VERSION
    data = msgspec.json.encode(snap)
    assert b'"version":3' in data
    with pytest.raises(errors.ConfigError, match="version 1 "):
        ClientProtocol.restore(msgspec.structs.replace(snap, version=1))
    with pytest.raises(errors.ConfigError, match="version 99"):
        ClientProtocol.restore(msgspec.structs.replace(snap, version=99))
    with pytest.raises(errors.ConfigError, match="ProtocolSnapshot"):
        ClientProtocol.restore(msgspec.json.decode(data))
    with pytest.raises(errors.ConfigError, match="unknown api"):
        ClientProtocol.restore(msgspec.structs.replace(snap, api="other"))


def test_the_reconnect_counters_travel_in_the_snapshot() -> None:
    p = make()
    rules = ReconnectState(POLICY, p.reconnect)
    rules.opened()
    for _ in range(3):
        rules.after(
            errors.ConnectionDropped(1006, "", phase="stream"), healthy=False, resuming=True
        )
    rules.after(
        errors.SessionNotFound(1008, "session not found", phase="setup"),
        healthy=False,
        resuming=True,
    )
    data = msgspec.msgpack.encode(p.snapshot())
    restored = ClientProtocol.restore(msgspec.msgpack.decode(data, type=ProtocolSnapshot))
    assert restored.reconnect == ReconnectCounters(attempt=3, fresh_in_a_row=1, first=False)
    # The restored core backs off from where the old process was, not from zero.
    after = ReconnectState(POLICY, restored.reconnect)
    decision = after.after(
        errors.ConnectionDropped(1006, "", phase="stream"), healthy=False, resuming=True
    )
    assert repr(decision).startswith("Retry(attempt=4, delay=4.0")


def test_a_version_2_snapshot_is_read_with_counters_at_zero() -> None:
    p = make()
    p.reconnect.attempt = 2
    old = msgspec.to_builtins(p.snapshot())
    del old["reconnect"]
    old["version"] = 2
    restored = ClientProtocol.restore(msgspec.convert(old, ProtocolSnapshot))
    assert restored.reconnect == ReconnectCounters()
    assert restored.snapshot().version == SNAPSHOT_VERSION
