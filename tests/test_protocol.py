"""Pure tests of the sans-I/O core: bytes in, events and bytes out, no event loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gemini_live import errors
from gemini_live import events as ev
from gemini_live.codec import encode_client, encode_server
from gemini_live.protocol import ClientProtocol, State, validate_setup
from gemini_live.types import (
    ClientMessage,
    ContextWindowCompression,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    GenerationConfig,
    GoAway,
    RealtimeInput,
    ServerMessage,
    SessionResumptionConfig,
    SessionResumptionUpdate,
    Setup,
    SetupComplete,
    SlidingWindow,
    Tool,
    ToolCall,
    ToolCallCancellation,
    ToolResponse,
)

MODEL = "models/gemini-3.8-live"


def frame(**fields: Any) -> bytes:
    return encode_server(ServerMessage(**fields))


SETUP_COMPLETE = frame(setup_complete=SetupComplete(session_id="sess-1"))


def handle_update(handle: str, resumable: bool = True, index: int | None = None) -> bytes:
    if index is None:
        return frame(
            session_resumption_update=SessionResumptionUpdate(
                new_handle=handle, resumable=resumable
            )
        )
    return frame(
        session_resumption_update=SessionResumptionUpdate(
            new_handle=handle, resumable=resumable, last_consumed_client_message_index=index
        )
    )


def open_protocol(p: ClientProtocol) -> bytes:
    p.connection_made()
    setup = p.setup_frame()
    p.receive(SETUP_COMPLETE)
    return setup


def state_of(p: ClientProtocol) -> State:
    """Read the state through a call so mypy does not narrow it across mutations."""
    return p.state


def wait_before_rotating(p: ClientProtocol) -> bool:
    return p.should_wait_before_rotating


def phase_of(p: ClientProtocol) -> str:
    return p.phase


def pending_blocking(p: ClientProtocol) -> bool:
    return p.has_pending_blocking_call


def text_frame(text: str) -> bytes:
    return encode_client(ClientMessage(realtime_input=RealtimeInput(text=text)))


def setup_json(data: bytes) -> dict[str, Any]:
    obj = json.loads(data)
    assert list(obj) == ["setup"]
    setup: dict[str, Any] = obj["setup"]
    return setup


def test_setup_asks_for_resumption_and_injects_latest_resumable_handle() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    first = setup_json(open_protocol(p))
    assert first == {"model": MODEL, "sessionResumption": {}}
    p.receive(handle_update("h1"))
    p.receive(handle_update("", resumable=False))  # mid-generation: not usable
    assert p.resume_handle == "h1"
    p.connection_lost(1011, "Internal error encountered.")
    p.connection_made()
    second = setup_json(p.setup_frame())
    assert second["sessionResumption"] == {"handle": "h1"}
    assert "null" not in json.dumps(second)


def test_resumption_can_be_left_off() -> None:
    p = ClientProtocol(Setup(model=MODEL), request_resumption=False)
    assert setup_json(open_protocol(p)) == {"model": MODEL}


def test_state_machine_refuses_early_sends_and_frames() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    assert state_of(p) is State.IDLE
    with pytest.raises(errors.ProtocolStateError):
        p.receive(SETUP_COMPLETE)
    p.connection_made()
    assert state_of(p) is State.CONNECTING
    assert phase_of(p) == "connect"
    with pytest.raises(errors.ProtocolStateError):
        p.check_send()
    p.setup_frame()
    assert state_of(p) is State.SETUP_SENT
    assert phase_of(p) == "setup"
    with pytest.raises(errors.ProtocolStateError, match="setupComplete"):
        p.check_send()
    with pytest.raises(errors.ProtocolStateError):
        p.frame_sent(text_frame("hi"))
    events = p.receive(SETUP_COMPLETE)
    assert events == [ev.SetupComplete("sess-1")]
    assert state_of(p) is State.OPEN
    assert p.session_id == "sess-1"
    p.check_send()
    with pytest.raises(errors.ProtocolStateError):
        p.connection_made()  # the open connection must be closed first


def test_connection_lost_is_classified_with_phase_and_session_id() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    p.connection_made()
    p.setup_frame()
    err = p.connection_lost(1007, "Request contains an invalid argument.")
    assert isinstance(err, errors.InvalidConfig)
    assert err.phase == "setup"
    assert not err.retryable
    assert state_of(p) is State.CLOSED
    p.connection_made()
    p.setup_frame()
    p.receive(SETUP_COMPLETE)
    err = p.connection_lost(1011, "Internal error encountered.")
    assert isinstance(err, errors.ServerError)
    assert err.retryable
    assert err.phase == "stream"
    assert err.session_id == "sess-1"
    assert "sess-1" in str(err)


def test_go_away_records_deadline_in_callers_clock() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    assert p.go_away_deadline is None
    events = p.receive(frame(go_away=GoAway(time_left="9.5s")), now=100.0)
    assert events == [ev.GoAway(9.5)]
    assert p.go_away_deadline == pytest.approx(109.5)


def test_tool_calls_are_tracked_until_answered_or_cancelled() -> None:
    setup = Setup(
        model=MODEL,
        tools=[
            Tool.functions(
                FunctionDeclaration(name="slow", behavior="BLOCKING"),
                FunctionDeclaration(name="bg", behavior="NON_BLOCKING"),
            )
        ],
    )
    p = ClientProtocol(setup)
    open_protocol(p)
    p.receive(
        frame(
            tool_call=ToolCall(
                function_calls=[
                    FunctionCall(id="a", name="slow", args={}),
                    FunctionCall(id="b", name="bg", args={}),
                    FunctionCall(id="c", name="slow", args={}),
                ]
            )
        )
    )
    assert p.pending_tool_calls == {"a": "slow", "b": "bg", "c": "slow"}
    assert pending_blocking(p)
    p.receive(frame(tool_call_cancellation=ToolCallCancellation(ids=["c"])))
    msg = ToolResponse(function_responses=[FunctionResponse(id="a", name="slow", response={})])
    assert p.filter_tool_response(msg) is msg
    assert p.pending_tool_calls == {"b": "bg"}
    assert not pending_blocking(p)
    # A partial (willContinue) answer keeps the call pending.
    partial = ToolResponse(
        function_responses=[
            FunctionResponse(id="b", name="bg", response={"output": 1}, will_continue=True)
        ]
    )
    assert p.filter_tool_response(partial) is partial
    assert p.pending_tool_calls == {"b": "bg"}


def test_unknown_behaviour_counts_as_blocking() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    p.receive(frame(tool_call=ToolCall(function_calls=[FunctionCall(id="x", name="f")])))
    assert pending_blocking(p)


def test_answers_for_calls_of_a_lost_session_are_dropped() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    p.receive(frame(tool_call=ToolCall(function_calls=[FunctionCall(id="old", name="f")])))
    p.connection_lost(1006, "")
    # No handle was ever received: the next connection is a fresh session.
    p.connection_made()
    p.setup_frame()
    p.receive(SETUP_COMPLETE)
    assert not p.state_restored
    assert p.pending_tool_calls == {}
    stale = ToolResponse(
        function_responses=[
            FunctionResponse(id="old", name="f", response={"output": 1}),
            FunctionResponse(id="new", name="g", response={"output": 2}),
        ]
    )
    kept = p.filter_tool_response(stale)
    assert kept is not None
    assert [r.id for r in kept.function_responses] == ["new"]
    assert p.stats.stale_tool_responses_dropped == 1
    only_stale = ToolResponse(
        function_responses=[FunctionResponse(id="old", name="f", response={})]
    )
    # The id was forgotten after its final answer was dropped; it now passes through.
    assert p.filter_tool_response(only_stale) is only_stale


def test_resumed_session_keeps_pending_calls() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    p.receive(frame(tool_call=ToolCall(function_calls=[FunctionCall(id="k", name="f")])))
    p.receive(handle_update("h"))
    p.connection_lost(1000, "The operation was cancelled.")
    p.connection_made()
    p.setup_frame()
    p.receive(SETUP_COMPLETE)
    assert p.state_restored
    assert p.pending_tool_calls == {"k": "f"}
    assert p.stats.resumed == 1


def test_rejected_resume_starts_fresh() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    p.receive(handle_update("stale"))
    p.connection_lost(1006, "")
    p.connection_made()
    assert "handle" in setup_json(p.setup_frame())["sessionResumption"]
    err = p.connection_lost(1008, "BidiGenerateContent session not found")
    assert isinstance(err, errors.SessionNotFound)
    p.resume_rejected()
    p.connection_made()
    assert setup_json(p.setup_frame())["sessionResumption"] == {}


def vertex_protocol() -> ClientProtocol:
    setup = Setup(
        model="projects/p/locations/l/publishers/google/models/m",
        session_resumption=SessionResumptionConfig(transparent=True),
    )
    return ClientProtocol(setup, api="vertex")


def test_transparent_mode_numbers_acknowledges_and_replays() -> None:
    p = vertex_protocol()
    assert p.transparent
    setup = setup_json(open_protocol(p))
    assert setup["sessionResumption"] == {"transparent": True}
    frames = [text_frame(f"m{i}") for i in range(1, 6)]
    for f in frames:
        p.frame_sent(f)  # indices 1..5
    p.receive(handle_update("h1", index=2))
    assert p.unacknowledged == 3
    p.connection_lost(1006, "")
    p.connection_made()
    assert setup_json(p.setup_frame())["sessionResumption"] == {
        "handle": "h1",
        "transparent": True,
    }
    p.receive(SETUP_COMPLETE)
    assert p.replay_frames() == frames[2:]
    assert p.stats.replayed_frames == 3
    # Renumbered from 1 on the new connection: acknowledging 2 leaves the last one.
    p.receive(handle_update("h2", index=2))
    assert p.unacknowledged == 1
    # An index without a usable handle is not a checkpoint a resume could restore.
    p.receive(
        frame(
            session_resumption_update=SessionResumptionUpdate(last_consumed_client_message_index=3)
        )
    )
    assert p.unacknowledged == 1
    p.receive(handle_update("", resumable=False, index=3))
    assert p.unacknowledged == 1
    p.receive(handle_update("h3", index=3))
    assert p.unacknowledged == 0


def test_transparent_index_accepted_as_string() -> None:
    p = vertex_protocol()
    open_protocol(p)
    for i in range(3):
        p.frame_sent(text_frame(str(i)))
    p.receive(
        b'{"sessionResumptionUpdate":{"newHandle":"h","resumable":true,'
        b'"lastConsumedClientMessageIndex":"2"}}'
    )
    assert p.unacknowledged == 1


def test_no_replay_without_transparent_mode() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    p.frame_sent(text_frame("a"))
    assert p.unacknowledged == 0
    p.receive(handle_update("h"))
    p.connection_lost(1006, "")
    p.connection_made()
    p.setup_frame()
    p.receive(SETUP_COMPLETE)
    assert p.replay_frames() == []


@pytest.mark.parametrize(
    ("setup", "api", "match"),
    [
        (
            Setup(model=MODEL, session_resumption=SessionResumptionConfig(transparent=True)),
            "gemini",
            "transparent",
        ),
        (Setup(model=MODEL, explicit_vad_signal=True), "gemini", "explicitVadSignal"),
        (Setup(model="gemini-3.8-live"), "gemini", "models/"),
        (Setup(model=""), "custom", "required"),
        (
            Setup(
                model=MODEL,
                context_window_compression=ContextWindowCompression(trigger_tokens=1000),
            ),
            "gemini",
            "slidingWindow",
        ),
        (
            Setup(
                model=MODEL,
                context_window_compression=ContextWindowCompression(
                    trigger_tokens=1000, sliding_window=SlidingWindow(target_tokens=1000)
                ),
            ),
            "gemini",
            "below",
        ),
        (
            Setup(
                model=MODEL,
                generation_config=GenerationConfig(response_modalities=["AUDIO", "TEXT"]),
            ),
            "gemini",
            "one modality",
        ),
    ],
)
def test_invalid_setups_are_refused_before_sending(setup: Setup, api: Any, match: str) -> None:
    with pytest.raises(errors.ConfigError, match=match):
        validate_setup(setup, api)
    with pytest.raises(errors.ConfigError):
        ClientProtocol(setup, api=api)


def test_vertex_accepts_its_own_fields() -> None:
    validate_setup(
        Setup(
            model="projects/p/locations/l/publishers/google/models/m",
            explicit_vad_signal=True,
            session_resumption=SessionResumptionConfig(transparent=True),
        ),
        "vertex",
    )


def test_update_setup_keeps_model() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    with pytest.raises(errors.ConfigError, match="model"):
        p.update_setup(Setup(model="models/other"))
    p.update_setup(Setup(model=MODEL, tools=[Tool.functions(FunctionDeclaration(name="f"))]))
    open_protocol(p)
    tools = setup_json(encode_client(ClientMessage(setup=p.setup)))["tools"]
    assert tools == [{"functionDeclarations": [{"name": "f"}]}]


def test_setup_complete_twice_is_ignored() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    p.receive(frame(setup_complete=SetupComplete(session_id="other")))
    assert p.session_id == "sess-1"
    assert p.stats.connections == 1


def test_malformed_frame_raises_typed_error() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    with pytest.raises(errors.MalformedMessage):
        p.receive(b"{not json")
    with pytest.raises(errors.MalformedMessage):
        p.receive(b'{"goAway":{"timeLeft":"soon"}}')


def test_rotation_waits_until_tool_state_is_covered_by_a_handle() -> None:
    p = ClientProtocol(Setup(model=MODEL))
    open_protocol(p)
    assert not wait_before_rotating(p)
    p.receive(frame(tool_call=ToolCall(function_calls=[FunctionCall(id="t", name="f")])))
    assert wait_before_rotating(p)  # unanswered (behaviour unknown: blocking)
    answer = ToolResponse(function_responses=[FunctionResponse(id="t", name="f", response={})])
    p.filter_tool_response(answer)
    assert not p.has_pending_blocking_call
    assert wait_before_rotating(p)  # answered, but no handle covers it yet
    p.receive(handle_update("", resumable=False))
    assert wait_before_rotating(p)
    p.receive(handle_update("after-answer"))
    assert not wait_before_rotating(p)


def test_rotation_does_not_wait_for_handles_without_resumption() -> None:
    p = ClientProtocol(Setup(model=MODEL), request_resumption=False)
    open_protocol(p)
    p.receive(frame(tool_call=ToolCall(function_calls=[FunctionCall(id="t", name="f")])))
    p.filter_tool_response(
        ToolResponse(function_responses=[FunctionResponse(id="t", name="f", response={})])
    )
    assert not wait_before_rotating(p)
