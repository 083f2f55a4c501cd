"""Tests of the sans-I/O core through its facade: bytes in, events and frames out, no loop.

Both directions: the send side (validation, the offline buffer, the order of what is
written after a reconnect, the re-send window and what a handle covers, tool-call ids) and
the receive side (state, handles, goAway, the rotation decision).
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from gemini_live import errors
from gemini_live import events as ev
from gemini_live.codec import encode_server
from gemini_live.config import ResendWindow
from gemini_live.protocol import ClientProtocol, State, validate_setup
from gemini_live.types import (
    ClientMessage,
    Content,
    ContextWindowCompression,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    GenerationConfig,
    GoAway,
    Part,
    RealtimeInput,
    ServerContent,
    ServerMessage,
    SessionResumptionConfig,
    SessionResumptionUpdate,
    Setup,
    SetupComplete,
    SlidingWindow,
    Tool,
    ToolCall,
    ToolCallCancellation,
)

MODEL = "models/gemini-3.8-live"
CHUNK = bytes(640)  # 20 ms at 16 kHz


def frame(**fields: Any) -> bytes:
    return encode_server(ServerMessage(**fields))


SETUP_COMPLETE = frame(setup_complete=SetupComplete(session_id="sess-1"))
TURN_COMPLETE = frame(server_content=ServerContent(turn_complete=True))
MODEL_TEXT = frame(server_content=ServerContent(model_turn=Content(parts=[Part(text="ok")])))


def handle_update(handle: str, resumable: bool = True, index: int | None = None) -> bytes:
    upd = SessionResumptionUpdate(new_handle=handle, resumable=resumable)
    if index is not None:
        upd = SessionResumptionUpdate(
            new_handle=handle, resumable=resumable, last_consumed_client_message_index=index
        )
    return frame(session_resumption_update=upd)


def tool_call(*ids: str, name: str = "f") -> bytes:
    return frame(tool_call=ToolCall(function_calls=[FunctionCall(id=i, name=name) for i in ids]))


def make(**kwargs: Any) -> ClientProtocol:
    kwargs.setdefault("resend", ResendWindow(handle_guard=0.5))
    p = ClientProtocol(Setup(model=MODEL), **kwargs)
    p.direct_writes = True
    return p


def connect(p: ClientProtocol, now: float = 0.0) -> bytes:
    """connection_made + setup + setupComplete; returns the setup frame.

    Frames are then handed out directly (as with a backend that writes synchronously).
    """
    p.direct_writes = True
    p.connection_made()
    (setup,) = p.data_to_send(now)
    p.receive(SETUP_COMPLETE, now)
    return setup


def drop(p: ClientProtocol, code: int = 1006) -> errors.ServiceError:
    return p.connection_lost(code, "", local=False)


def texts(frames: list[bytes]) -> list[str]:
    out = []
    for f in frames:
        obj = json.loads(f)
        ri = obj.get("realtimeInput", {})
        if "text" in ri:
            out.append(ri["text"])
        elif "audio" in ri:
            out.append("<audio>")
        elif "toolResponse" in obj:
            out.append(
                "<tool:" + ",".join(r["id"] for r in obj["toolResponse"]["functionResponses"]) + ">"
            )
        else:
            out.append("<" + next(iter(obj)) + ">")
    return out


def send_text(p: ClientProtocol, text: str, now: float) -> None:
    """Send and confirm the write (what the session does)."""
    if p.send_text(text, now) is not None:
        p.written(1)


def flush(p: ClientProtocol, now: float) -> list[str]:
    frames = p.data_to_send(now)
    p.written(len(frames))
    return texts(frames)


def state_of(p: ClientProtocol) -> State:
    return p.state


# -- setup and states --------------------------------------------------------------------


def test_setup_asks_for_resumption_and_injects_the_latest_resumable_handle() -> None:
    p = make()
    setup = json.loads(connect(p))
    assert setup["setup"]["sessionResumption"] == {}
    p.receive(handle_update("h1"), 1.0)
    p.receive(handle_update("h-not", resumable=False), 1.1)
    drop(p)
    p.connection_made()
    (setup2,) = p.data_to_send(2.0)
    assert json.loads(setup2)["setup"]["sessionResumption"] == {"handle": "h1"}
    assert state_of(p) is State.SETUP_SENT


def test_resumption_can_be_left_off() -> None:
    p = ClientProtocol(Setup(model=MODEL), request_resumption=False)
    assert "sessionResumption" not in json.loads(connect(p))["setup"]


def test_frames_before_connect_are_refused_and_sends_are_queued() -> None:
    p = make()
    with pytest.raises(errors.ProtocolStateError):
        p.receive(SETUP_COMPLETE, 0.0)
    assert p.send_text("early", 0.0) is None  # offline buffer
    p.connection_made()
    with pytest.raises(errors.ProtocolStateError):
        p.receive(SETUP_COMPLETE, 0.0)  # setup not written yet
    assert texts(p.data_to_send(0.0)) == ["<setup>"]
    assert p.data_to_send(0.0) == []  # nothing before setupComplete
    p.receive(SETUP_COMPLETE, 0.1)
    assert flush(p, 0.1) == ["early"]
    assert p.stats.frames_queued_offline == 1


def test_receive_needs_the_callers_clock() -> None:
    p = make()
    p.connection_made()
    p.data_to_send(0.0)
    with pytest.raises(TypeError):
        p.receive(SETUP_COMPLETE)  # type: ignore[call-arg]


def test_connection_lost_is_classified_with_phase_and_session_id() -> None:
    p = make()
    p.connection_made()
    err = p.connection_lost(1006, "", local=True)
    assert err.phase == "connect"
    p.connection_made()
    p.data_to_send(0.0)
    err = p.connection_lost(1008, "Requested entity was not found.")
    assert isinstance(err, errors.SessionNotFound) and err.phase == "setup"
    connect(p)
    err = p.connection_lost(1011, "Internal error encountered.")
    assert isinstance(err, errors.ServerError) and err.retryable
    assert err.session_id == "sess-1"


def test_resumed_is_emitted_by_the_protocol_after_a_reconnect() -> None:
    p = make()
    connect(p)
    p.receive(handle_update("h1"), 1.0)
    drop(p)
    p.connection_made()
    p.data_to_send(2.0)
    events = p.receive(SETUP_COMPLETE, 2.1)
    assert events == [ev.SetupComplete("sess-1"), ev.Resumed(True)]
    assert p.stats.resumed == 1
    p.resume_rejected()
    drop(p)
    p.connection_made()
    p.data_to_send(3.0)
    assert p.receive(SETUP_COMPLETE, 3.1)[-1] == ev.Resumed(False)
    assert p.stats.fresh_sessions_after_loss == 1


# -- offline buffer and order after a reconnect ---------------------------------------------


def test_order_after_reconnect_is_setup_resend_window_offline_buffer_new_sends() -> None:
    p = make()
    connect(p, 0.0)
    send_text(p, "covered", 0.0)
    p.receive(MODEL_TEXT, 0.5)  # the model answers: the service read "covered"
    p.receive(TURN_COMPLETE, 0.6)
    p.receive(handle_update("h1"), 0.7)
    send_text(p, "after-handle", 1.0)
    drop(p)
    assert p.send_text("offline", 1.5) is None
    p.connection_made()
    assert texts(p.data_to_send(2.0)) == ["<setup>"]
    p.receive(SETUP_COMPLETE, 2.1)
    assert p.send_text("new", 2.2) is None  # queued behind the re-send
    assert flush(p, 2.3) == ["after-handle", "offline", "new"]
    assert p.stats.replayed_frames == 1


def test_offline_buffer_is_bounded_and_refuses_with_a_typed_error() -> None:
    p = make(offline_buffer_bytes=3000)
    sent = 0
    with pytest.raises(errors.QueueFullError):
        for _ in range(100):
            p.send_audio(CHUNK, 0.0)
            sent += 1
    assert 0 < sent < 100
    assert p.queued == sent


def test_unwritten_frames_go_back_to_the_head_in_order() -> None:
    p = make()
    connect(p)
    p.send_text("a", 0.0)  # handed out directly
    p.direct_failed()  # ... but the write failed
    p.send_text("b", 0.1)
    frames = p.data_to_send(0.2)
    assert texts(frames) == ["a", "b"]
    p.written(1)  # "a" written, then the socket died
    drop(p)
    p.connection_made()
    p.data_to_send(1.0)
    p.receive(SETUP_COMPLETE, 1.1)
    # "a" was written (in the window), "b" never: both go out again, in order, once.
    assert flush(p, 1.2) == ["a", "b"]


def test_a_write_failure_during_the_flush_after_a_resume_loses_nothing() -> None:
    p = make()
    connect(p)
    drop(p)
    p.send_text("queued", 0.5)
    p.connection_made()
    p.data_to_send(1.0)
    p.receive(SETUP_COMPLETE, 1.1)
    assert texts(p.data_to_send(1.2)) == ["queued"]
    drop(p, 1011)  # the connection died before the write was confirmed
    p.connection_made()
    p.data_to_send(2.0)
    p.receive(SETUP_COMPLETE, 2.1)
    assert flush(p, 2.2) == ["queued"]


# -- the re-send window --------------------------------------------------------------------


def test_handle_covers_what_the_model_answered_and_what_is_older_than_the_guard() -> None:
    p = make(resend=ResendWindow(handle_guard=0.5))
    connect(p)
    send_text(p, "one", 0.0)
    p.receive(MODEL_TEXT, 0.1)  # reply to "one"
    p.receive(TURN_COMPLETE, 0.2)
    send_text(p, "two", 0.25)  # written just before the handle arrives: not covered
    p.receive(handle_update("h1"), 0.3)
    assert texts([o[0] for o in p._outbox.window]) == ["two"]
    assert p.unacknowledged == 1
    p.receive(handle_update("h2"), 0.9)  # two is now older than the guard
    assert p.unacknowledged == 0


def test_plain_handle_without_answer_keeps_fresh_audio_for_resending() -> None:
    p = make(resend=ResendWindow(handle_guard=0.1))
    connect(p)
    for i in range(10):
        assert p.send_audio(CHUNK, i * 0.02) is not None
        p.written(1)
    p.receive(handle_update("h1"), 0.21)  # covers the 6 chunks written up to 0.11 s
    assert p.unacknowledged == 4
    drop(p)
    p.connection_made()
    p.data_to_send(1.0)
    p.receive(SETUP_COMPLETE, 1.1)
    assert flush(p, 1.2) == ["<audio>"] * 4


def test_audio_beyond_the_window_is_dropped_oldest_first_and_counted() -> None:
    p = make(resend=ResendWindow(audio_seconds=0.1, handle_guard=0.1))
    connect(p)
    for i in range(8):  # 160 ms, no handle
        p.send_audio(CHUNK, i * 0.02)
        p.written(1)
    assert p.unacknowledged == 5  # 100 ms kept
    assert p.stats.frames_at_risk == 3
    send_text(p, "text is always kept", 0.2)
    assert p.unacknowledged == 6


def test_frames_at_risk_is_not_reset_by_frames_that_acknowledge_nothing() -> None:
    p = make(resend=ResendWindow(audio_seconds=0.1, handle_guard=0.1))
    connect(p)
    for i in range(10):
        p.send_audio(CHUNK, i * 0.02)
        p.written(1)
    at_risk = p.stats.frames_at_risk
    p.receive(frame(server_content=ServerContent(generation_complete=True)), 0.3)
    p.receive(MODEL_TEXT, 0.3)
    assert p.stats.frames_at_risk == at_risk == 5
    assert p.unacknowledged == 5


def test_transparent_mode_prunes_by_index_and_renumbers_on_replay() -> None:
    p = ClientProtocol(
        Setup(
            model="projects/p/locations/l/publishers/google/models/m",
            session_resumption=SessionResumptionConfig(transparent=True),
        ),
        api="vertex",
    )
    connect(p)
    for t in ("a", "b", "c"):
        send_text(p, t, 0.0)
    p.receive(handle_update("h1", index=2), 0.1)  # a (1) and b (2) consumed
    assert texts([o[0] for o in p._outbox.window]) == ["c"]
    drop(p)
    p.connection_made()
    p.data_to_send(1.0)
    p.receive(SETUP_COMPLETE, 1.1)
    assert flush(p, 1.2) == ["c"]
    p.receive(handle_update("h2", index=1), 1.3)  # "c" is index 1 on this connection
    assert p.unacknowledged == 0


def test_transparent_index_accepted_as_string() -> None:
    p = ClientProtocol(
        Setup(
            model="projects/p/locations/l/publishers/google/models/m",
            session_resumption=SessionResumptionConfig(transparent=True),
        ),
        api="vertex",
    )
    connect(p)
    send_text(p, "a", 0.0)
    p.receive(
        b'{"sessionResumptionUpdate":{"newHandle":"h","resumable":true,'
        b'"lastConsumedClientMessageIndex":"1"}}',
        0.1,
    )
    assert p.unacknowledged == 0


def test_without_resumption_a_completed_turn_is_the_acknowledgement() -> None:
    p = ClientProtocol(
        Setup(model=MODEL), request_resumption=False, resend=ResendWindow(handle_guard=0.1)
    )
    connect(p)
    send_text(p, "q", 0.0)
    p.receive(MODEL_TEXT, 0.05)
    p.receive(TURN_COMPLETE, 0.06)
    assert p.unacknowledged == 0


# -- the rotation decision -----------------------------------------------------------------


def go_away(p: ClientProtocol, now: float, left: float = 10.0) -> None:
    p.receive(frame(go_away=GoAway(time_left=f"{left}s")), now)


def test_rotation_waits_for_the_turn_in_progress_then_a_covering_handle() -> None:
    p = make(go_away_margin=0.25, resend=ResendWindow(handle_guard=0.1))
    connect(p)
    send_text(p, "question", 0.0)
    p.receive(MODEL_TEXT, 0.1)
    go_away(p, 0.2)
    assert p.draining and p.generating
    assert not p.rotation_due(0.3)
    assert "the model's turn in progress" in p.rotation_blockers()
    p.receive(TURN_COMPLETE, 0.4)
    assert not p.rotation_due(0.5)  # "question" not yet covered by a handle
    p.receive(handle_update("h1"), 0.5)
    assert p.rotation_due(0.5)


def test_rotation_waits_for_a_blocking_call_and_a_handle_newer_than_its_answer() -> None:
    setup = Setup(
        model=MODEL,
        tools=[Tool(function_declarations=[FunctionDeclaration(name="f", behavior="BLOCKING")])],
    )
    p = ClientProtocol(setup, resend=ResendWindow(handle_guard=0.1))
    p.direct_writes = True
    connect(p)
    p.receive(handle_update("h0"), 0.0)
    p.receive(tool_call("c1"), 0.1)
    go_away(p, 0.2)
    assert p.rotation_blockers()[0] == "a pending blocking tool call"
    assert not p.rotation_due(0.3)
    frame_ = p.send_tool_response(FunctionResponse(id="c1", name="f", response={}), 0.4)
    assert frame_ is not None
    p.written(1)
    assert not p.rotation_due(0.5)  # the answer is not covered yet
    p.receive(MODEL_TEXT, 0.6)
    p.receive(TURN_COMPLETE, 0.7)
    p.receive(handle_update("h1"), 0.8)
    assert p.rotation_due(0.8)


def test_rotation_happens_at_the_deadline_minus_the_margin_whatever_is_pending() -> None:
    p = make(go_away_margin=0.25)
    connect(p)
    p.receive(MODEL_TEXT, 0.0)  # generating
    go_away(p, 1.0, left=2.0)
    assert p.rotation_deadline() == pytest.approx(2.75)
    assert not p.rotation_due(2.7)
    assert p.rotation_due(2.75)


def test_rotation_due_is_a_question_and_begin_rotation_holds_input() -> None:
    p = make()
    connect(p)
    go_away(p, 1.0)
    assert p.rotation_due(1.0)
    assert p.send_text("still direct", 1.1) is not None  # asking decided nothing
    p.written(1)
    p.begin_rotation()
    assert p.send_text("waits", 1.2) is None
    assert p.data_to_send(1.2) == []
    assert p.rotation_due(1.2)  # decided: stays due although input is uncovered now


def test_an_idle_connection_rotates_at_once_after_go_away() -> None:
    p = make()
    connect(p)
    go_away(p, 1.0)
    assert p.rotation_due(1.0)


def test_connection_health_needs_time_or_a_completed_turn() -> None:
    p = make()
    connect(p, 0.0)
    assert not p.connection_healthy(1.0, healthy_after=10.0)
    assert p.connection_healthy(10.0, healthy_after=10.0)
    p.receive(TURN_COMPLETE, 1.0)
    assert p.connection_healthy(1.0, healthy_after=10.0)


# -- tool calls ----------------------------------------------------------------------------


def test_tool_responses_must_answer_a_pending_call_once() -> None:
    p = make()
    connect(p)
    p.receive(tool_call("c1", "c2"), 0.0)
    assert p.pending_tool_calls == {"c1": "f", "c2": "f"}
    with pytest.raises(errors.UnknownToolCallError, match="nope"):
        p.send_tool_response(FunctionResponse(id="nope", name="f", response={}), 0.1)
    with pytest.raises(errors.UnknownToolCallError, match="twice"):
        p.send_tool_response(
            [
                FunctionResponse(id="c1", name="f", response={}),
                FunctionResponse(id="c1", name="f", response={}),
            ],
            0.1,
        )
    assert p.stats.frames_sent == 0  # nothing went out
    partial = FunctionResponse(id="c1", name="f", response={}, will_continue=True)
    assert p.send_tool_response(partial, 0.2) is not None
    p.written(1)
    assert "c1" in p.pending_tool_calls  # willContinue: still pending
    p.send_tool_response(FunctionResponse(id="c1", name="f", response={}), 0.3)
    p.written(1)
    with pytest.raises(errors.UnknownToolCallError, match="already answered"):
        p.send_tool_response(FunctionResponse(id="c1", name="f", response={}), 0.4)
    p.receive(frame(tool_call_cancellation=ToolCallCancellation(ids=["c2"])), 0.5)
    # an answer racing the cancellation is dropped (counted), not an error
    assert p.send_tool_response(FunctionResponse(id="c2", name="f", response={}), 0.6) is None
    assert p.stats.stale_tool_responses_dropped == 1


def test_gemini_needs_ids_vertex_drops_will_continue() -> None:
    p = make()
    connect(p)
    with pytest.raises(errors.ConfigError, match="no id"):
        p.send_tool_response(FunctionResponse(name="f", response={}), 0.0)
    v = ClientProtocol(
        Setup(model="projects/p/locations/l/publishers/google/models/gemini-3.8-live"),
        api="vertex",
    )
    connect(v)
    v.receive(tool_call("c1"), 0.0)
    out = v.send_tool_response(
        FunctionResponse(id="c1", name="f", response={}, will_continue=False), 0.1
    )
    assert out is not None and b"willContinue" not in out


def test_calls_after_the_resumed_handle_are_forgotten_with_their_answers() -> None:
    p = make(resend=ResendWindow(handle_guard=0.1))
    connect(p)
    p.receive(handle_update("h1"), 0.0)
    p.receive(tool_call("late"), 0.1)  # after h1: not in h1's state
    p.send_tool_response(FunctionResponse(id="late", name="f", response={}), 0.2)
    p.written(1)
    drop(p)
    p.connection_made()
    p.data_to_send(1.0)
    p.receive(SETUP_COMPLETE, 1.1)
    assert p.pending_tool_calls == {}
    assert flush(p, 1.2) == []  # the answer would name a call the service never made
    assert p.stats.stale_tool_responses_dropped == 1
    assert p.send_tool_response(FunctionResponse(id="late", name="f", response={}), 1.3) is None


def test_fresh_session_forgets_every_pending_call() -> None:
    p = make()
    connect(p)
    p.receive(tool_call("c1"), 0.0)
    drop(p)  # no handle ever: the next session is fresh
    p.connection_made()
    p.data_to_send(1.0)
    p.receive(SETUP_COMPLETE, 1.1)
    assert p.pending_tool_calls == {}
    assert p.send_tool_response(FunctionResponse(id="c1", name="f", response={}), 1.2) is None


def test_unknown_behaviour_counts_as_blocking() -> None:
    p = make()
    connect(p)
    p.receive(tool_call("c1"), 0.0)
    assert p.has_pending_blocking_call


# -- bad input: typed errors, nothing written ----------------------------------------------


@pytest.mark.parametrize(
    ("send", "error"),
    [
        (lambda p: p.send_text(123, 0.0), errors.InvalidMessageError),
        (lambda p: p.send_text(b"hi", 0.0), errors.InvalidMessageError),
        (lambda p: p.send_text("", 0.0), errors.ConfigError),
        (lambda p: p.send_video("not bytes", 0.0), errors.InvalidMessageError),
        (lambda p: p.send_video(b"x", 0.0, "image/gif"), errors.ConfigError),
        (lambda p: p.send_audio(b"\x00", 0.0), errors.AudioFormatError),
        (lambda p: p.send_audio(b"", 0.0), errors.ConfigError),
        (lambda p: p.send_audio(CHUNK, 0.0, 96000), errors.AudioFormatError),
        (
            lambda p: p.send_client_content(Content(parts=[Part(text=5)]), 0.0),  # type: ignore[arg-type]
            errors.InvalidMessageError,
        ),
        (lambda p: p.send_client_content(42, 0.0), errors.InvalidMessageError),
        (
            lambda p: p.send_context_update(0.0, system_instruction=123),
            errors.InvalidMessageError,
        ),
        (lambda p: p.send_context_update(0.0, tools=[123]), errors.InvalidMessageError),
        (
            lambda p: p.send_tool_response(FunctionResponse(id="c1", name=123, response={}), 0.0),  # type: ignore[arg-type]
            errors.InvalidMessageError,
        ),
        (
            lambda p: p.send_tool_response(
                FunctionResponse(id="c1", name="f", response={"x": math.nan}), 0.0
            ),
            errors.InvalidMessageError,
        ),
        (lambda p: p.send_tool_response([123], 0.0), errors.InvalidMessageError),
        (lambda p: p.send_message({"realtimeInput": {}}, 0.0), errors.InvalidMessageError),
        (
            lambda p: p.send_message(ClientMessage(setup=Setup(model=MODEL)), 0.0),
            errors.ConfigError,
        ),
        (
            lambda p: p.send_message(
                ClientMessage(realtime_input=RealtimeInput(text="a", audio_stream_end=True)), 0.0
            ),
            errors.ConfigError,
        ),
        (lambda p: p.send_text("x" * 5000, 0.0), errors.MessageTooLargeError),
    ],
)
def test_bad_input_is_refused_before_anything_is_queued(send: Any, error: type[Exception]) -> None:
    p = make(max_frame_bytes=4096)
    connect(p)
    p.receive(tool_call("c1"), 0.0)
    with pytest.raises(error):
        send(p)
    assert isinstance(error(), errors.GeminiLiveError) or issubclass(error, errors.GeminiLiveError)
    assert p.stats.frames_sent == 0 and p.queued == 0 and p.unacknowledged == 0
    # the protocol still works
    assert p.send_text("still fine", 1.0) is not None


def test_invalid_messages_are_type_errors_too() -> None:
    assert issubclass(errors.InvalidMessageError, TypeError)
    assert issubclass(errors.InvalidMessageError, errors.GeminiLiveError)


@pytest.mark.parametrize(
    "setup",
    [
        Setup(model=MODEL, tools=[123]),  # type: ignore[list-item]
        Setup(model=MODEL, system_instruction="not a Content"),  # type: ignore[arg-type]
        Setup(model=123),  # type: ignore[arg-type]
    ],
)
def test_setups_with_wrong_types_are_refused(setup: Setup) -> None:
    with pytest.raises(errors.ConfigError):
        ClientProtocol(setup, api="custom")


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


def test_update_setup_keeps_model_and_normalises_it() -> None:
    p = ClientProtocol(Setup(model=MODEL), normalize_model=lambda m: f"models/{m.split('/')[-1]}")
    p.update_setup(Setup(model="gemini-3.8-live", system_instruction=Content.text("x")))
    with pytest.raises(errors.ConfigError, match="model"):
        p.update_setup(Setup(model="models/other"))


def test_setup_complete_twice_is_ignored() -> None:
    p = make()
    connect(p)
    assert p.receive(SETUP_COMPLETE, 1.0) == []
    assert state_of(p) is State.OPEN


def test_malformed_frame_raises_typed_error() -> None:
    p = make()
    connect(p)
    with pytest.raises(errors.MalformedMessage):
        p.receive(b"{not json", 0.0)


def test_context_update_is_refused_for_a_family_that_does_not_take_it() -> None:
    p = ClientProtocol(Setup(model="models/gemini-2.5-flash-native-audio-preview-12-2025"))
    connect(p)
    with pytest.raises(errors.ConfigError, match="contextUpdate"):
        p.send_context_update(0.0, system_instruction="be brief")
    assert p.stats.frames_sent == 0
    q = make()  # 3.8 live takes it
    connect(q)
    assert q.send_context_update(0.0, system_instruction="be brief") is not None


def test_a_first_connection_that_resumes_says_so() -> None:
    """A handle given before the first connection: its setupComplete emits Resumed too
    (restored, or fresh after the handle was rejected), so the app can tell them apart."""
    p = make(resume_handle="h-0")
    p.connection_made()
    p.data_to_send(0.0)
    events = p.receive(SETUP_COMPLETE, 0.0)
    assert [e for e in events if isinstance(e, ev.Resumed)] == [ev.Resumed(True)]
    rejected = make(resume_handle="h-0")
    rejected.connection_made()
    rejected.data_to_send(0.0)
    drop(rejected, 1008)
    rejected.resume_rejected()
    rejected.connection_made()
    rejected.data_to_send(0.0)
    events = rejected.receive(SETUP_COMPLETE, 0.0)
    assert [e for e in events if isinstance(e, ev.Resumed)] == [ev.Resumed(False)]
    plain = make()
    plain.connection_made()
    plain.data_to_send(0.0)
    assert not any(isinstance(e, ev.Resumed) for e in plain.receive(SETUP_COMPLETE, 0.0))


# -- the fused audio path (audio_writer) --------------------------------------------------


def _writer_pair() -> tuple[ClientProtocol, ClientProtocol, list[bytes]]:
    """Two equal cores: one sends with send_audio + a write, one with audio_writer."""
    a, b = make(), make()
    connect(a)
    connect(b)
    return a, b, []


def test_the_audio_writer_does_what_send_audio_and_a_write_do() -> None:
    general, fused, wrote = _writer_pair()

    def write(frame: bytes) -> bool:
        wrote.append(frame)
        return True

    writer = fused.audio_writer(write)
    chunks = [bytes([i % 256]) * 640 for i in range(300)] + [bytes(642), bytes(638)]
    for i, pcm in enumerate(chunks):
        frame = general.send_audio(pcm, float(i))
        assert frame is not None
        assert writer(pcm, float(i)) is True
        assert wrote[-1] == frame
    assert general.stats == fused.stats
    assert general._outbox.window == fused._outbox.window
    assert general._outbox.window_audio_s == fused._outbox.window_audio_s
    assert general._outbox.window_bytes == fused._outbox.window_bytes
    assert general._conn == fused._conn


def test_an_audio_writer_with_a_kind_writes_what_one_without_writes() -> None:
    # writer(write, kind) calls write(kind, frame) (a transport's direct_send): the same
    # frames, numbers, stats and window as the one-argument writer, on random chunks.
    rng = random.Random(24)
    one, two, wrote = _writer_pair()
    kinds: list[object] = []
    got: list[bytes] = []
    marker = object()

    def send(kind: object, frame: bytes) -> None:
        kinds.append(kind)
        got.append(frame)

    plain = one.audio_writer(lambda frame: wrote.append(frame))
    with_kind = two.audio_writer(send, marker)
    for i in range(400):
        pcm = rng.randbytes(2 * rng.randint(1, 960))
        assert plain(pcm, i * 0.02) is True
        assert with_kind(pcm, i * 0.02) is True
    assert got == wrote and len(got) == 400
    assert all(kind is marker for kind in kinds)
    assert one.stats == two.stats
    assert one._outbox.window == two._outbox.window
    assert one._outbox.window_audio_s == two._outbox.window_audio_s
    assert one._conn == two._conn


def test_a_refused_write_queues_the_chunk_first_and_nothing_is_lost() -> None:
    general, fused, _ = _writer_pair()
    ok = [True, False]
    writer = fused.audio_writer(lambda f: ok.pop(0))
    assert general.send_audio(b"\x01\x00" * 320, 1.0) is not None
    assert general.send_audio(b"\x02\x00" * 320, 2.0) is not None
    general.direct_failed()
    assert writer(b"\x01\x00" * 320, 1.0) is True
    assert writer(b"\x02\x00" * 320, 2.0) is False
    # A refused chunk waits in the queue; later chunks go behind it, never past it.
    assert writer(b"\x03\x00" * 320, 3.0) is False
    assert general.send_audio(b"\x03\x00" * 320, 3.0) is None
    assert general.data_to_send(4.0) == fused.data_to_send(4.0)
    assert general.stats == fused.stats
    assert general._outbox.window == fused._outbox.window


def test_the_audio_writer_queues_while_a_rotation_holds_input_or_the_connection_is_down() -> None:
    p = make()
    connect(p)
    writer = p.audio_writer(lambda f: pytest.fail("nothing may be written"))
    p.begin_rotation()
    assert writer(bytes(640), 1.0) is False
    assert p.queued == 1
    drop(p)
    assert writer(bytes(640), 2.0) is False
    assert p.queued == 2 and p.stats.frames_sent == 0


def _with_open_run() -> tuple[ClientProtocol, Any, list[bytes]]:
    """A connected core whose audio writer wrote three chunks: its run is open."""
    p = make()
    connect(p)
    wrote: list[bytes] = []
    writer = p.audio_writer(lambda f: wrote.append(f))
    for i in range(3):
        assert writer(bytes([i]) * 640, 1.0 + i) is True
    return p, writer, wrote


@pytest.mark.parametrize("stop", ["rotation", "closing", "lost", "queued", "unwritten"])
def test_an_open_run_ends_when_its_next_chunk_could_not_be_written_at_once(stop: str) -> None:
    # A chunk as long as the open run's is checked by that comparison alone: everything
    # that makes a chunk wait must end the run first (else the chunk is written anyway).
    p, writer, wrote = _with_open_run()
    assert p._outbox._win.rn == 640  # the run is open
    if stop == "rotation":
        p.begin_rotation()
    elif stop == "closing":
        p.start_closing()
    elif stop == "lost":
        p.connection_lost(1006, "gone", local=True)
    elif stop == "queued":
        p._outbox._unwritten_audio(b"x", 0.0)  # a refused chunk waits at the head
    else:
        assert p.send_text("hi", 4.0) is not None  # handed out, its write not confirmed
        p._outbox._unconfirmed(p._outbox.last_direct)  # type: ignore[arg-type]
    before = len(wrote)
    assert writer(bytes([9]) * 640, 5.0) is False
    assert len(wrote) == before
    assert p.queued >= 1


@pytest.mark.parametrize("pcm", [b"", b"\x00" * 3])
def test_bad_chunks_raise_with_a_run_open_or_closed(pcm: bytes) -> None:
    # A closed run's length is no chunk's length: an empty chunk after a run is not
    # taken for the run's next one.
    p, writer, wrote = _with_open_run()
    for close in (False, True):
        if close:
            assert p.send_text("hi", 4.0) is not None  # numbered: the run is closed
        before = len(wrote)
        with pytest.raises((errors.ConfigError, errors.AudioFormatError)):
            writer(pcm, 5.0)
        assert len(wrote) == before and p.stats.frames_sent == 3 + close
    assert writer(bytes(640), 6.0) is True


def test_a_writer_of_an_older_connection_never_writes_into_the_new_connections_run() -> None:
    p = make()
    connect(p)
    old: list[bytes] = []
    stale = p.audio_writer(lambda f: old.append(f))
    assert stale(bytes(640), 1.0) is True
    drop(p)
    connect(p, 2.0)
    p.written(len(p.data_to_send(2.0)))
    new: list[bytes] = []
    writer = p.audio_writer(lambda f: new.append(f))
    assert writer(bytes(640), 3.0) is True and writer(bytes(640), 3.02) is True
    assert stale(bytes(640), 3.04) is False  # its connection is closed: queued, not written
    assert len(old) == 1 and p.queued == 1


def test_the_audio_writer_follows_the_plans_hold_through_go_away_reset_and_restore() -> None:
    # The writer reads the hold from the outbox (RotationPlan.mirror_to): it must queue
    # exactly while the plan holds, also in a core restored from a snapshot taken then.
    p = make(hold_while_draining=True)
    connect(p)
    writer = p.audio_writer(lambda f: True)
    assert p._plan not in writer.__defaults__  # type: ignore[operator]
    assert writer(bytes(640), 1.0) is True and writer(bytes(640), 1.02) is True
    go_away(p, 1.5)  # drain_input="hold": input waits for the next connection
    assert p._plan.holding and p._outbox.holding
    assert writer(bytes(640), 2.0) is False and p.queued == 1
    restored = ClientProtocol.restore(p.snapshot())
    assert restored._outbox.holding and restored._plan.holding
    assert restored.audio_writer(lambda f: True)(bytes(640), 2.5) is False
    drop(p)
    restored.connection_lost(1006, "gone", local=True)
    for core, now in ((p, 3.0), (restored, 5.0)):
        connect(core, now)  # a new connection: the plan is reset, the hold ends
        assert not core._plan.holding and not core._outbox.holding
        resent = core.data_to_send(now)  # the window and the held chunk go out first
        core.written(len(resent))
        assert not core.queued
        assert core.audio_writer(lambda f: True)(bytes(640), now + 1) is True


@pytest.mark.parametrize(
    ("pcm", "error"),
    [
        (b"", errors.ConfigError),
        (b"\x00" * 3, errors.AudioFormatError),
        ("ab", errors.AudioFormatError),
    ],
)
def test_the_audio_writer_refuses_bad_audio_before_anything_changes(
    pcm: object, error: type[Exception]
) -> None:
    p = make()
    connect(p)
    writer = p.audio_writer(lambda f: pytest.fail("nothing may be written"))
    before = p.snapshot()
    with pytest.raises(error):
        writer(pcm, 1.0)
    assert p.snapshot() == before


def test_an_audio_writer_needs_a_connection() -> None:
    with pytest.raises(errors.ProtocolStateError):
        make().audio_writer(lambda f: True)


# -- the fused receive path (receive_stream) ----------------------------------------------

_PCM = bytes(range(256)) * 4


def _audio_frame(text: str | None = None, *, indent: bool = False) -> bytes:
    import base64

    content: dict[str, Any] = {
        "modelTurn": {
            "parts": [
                {
                    "inlineData": {
                        "mimeType": "audio/pcm;rate=24000",
                        "data": base64.b64encode(_PCM).decode(),
                    }
                }
            ]
        }
    }
    if text is not None:
        content["outputTranscription"] = {"text": text}
    obj = {"serverContent": content}
    text_ = json.dumps(obj, indent=2) + "\n" if indent else json.dumps(obj, separators=(",", ":"))
    return text_.encode()


@pytest.mark.parametrize("indent", [False, True])
@pytest.mark.parametrize("text", [None, "", "hello"])
def test_receive_stream_applies_what_receive_applies(text: str | None, indent: bool) -> None:
    general, fused = make(), make()
    connect(general)
    connect(fused)
    data = _audio_frame(text, indent=indent)
    events = general.receive(data, 1.0)
    parts = fused.receive_stream(data, 1.0)
    assert parts is not None
    pcm, words = parts
    assert events[0] == ev.ModelAudio(pcm)
    assert list(events[1:]) == ([ev.OutputTranscription(words)] if words else [])
    assert general.snapshot() == fused.snapshot()
    assert general.generating and fused.generating


def _text_first_frame(text: str, *, ensure_ascii: bool = True) -> bytes:
    """The service's frame with the transcript first (as W2's replies), indented."""
    import base64

    audio = {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(_PCM).decode()}
    obj = {
        "serverContent": {
            "outputTranscription": {"text": text},
            "modelTurn": {"parts": [{"inlineData": audio}]},
        }
    }
    return (json.dumps(obj, indent=2, ensure_ascii=ensure_ascii) + "\n").encode()


@pytest.mark.parametrize(
    ("text", "ensure_ascii", "fast"),
    [
        ("t=0000001234.567800", True, True),
        ("", True, True),
        ("caf\u00e9 \u00a0 \u2028 \x7f", False, True),  # unprintable yet unescaped: taken
        ('say "hi"', True, False),  # escapes: the general decoder
        ("a\nb", True, False),
        ("caf\u00e9", True, False),
    ],
)
def test_receive_stream_takes_a_transcript_first_frame_as_receive_decodes_it(
    text: str, ensure_ascii: bool, fast: bool
) -> None:
    general, fused = make(), make()
    connect(general)
    connect(fused)
    data = _text_first_frame(text, ensure_ascii=ensure_ascii)
    events = general.receive(data, 1.0)
    assert events[0] == ev.ModelAudio(_PCM)
    assert list(events[1:]) == ([ev.OutputTranscription(text)] if text else [])
    parts = fused.receive_stream(data, 1.0)
    if not fast:
        assert parts is None
        return
    assert parts == (_PCM, text)
    assert general.snapshot() == fused.snapshot()
    # Not the template: a quote in the payload, a tail cut short, a member after it.
    for bad in (
        data.replace(b'"data": "AAEC', b'"data": "A"EC'),
        data[:-3],
        data.replace(b"}\n  }\n}\n", b'}\n  },\n  "x": 1\n}\n'),
    ):
        assert bad != data
        assert fused.receive_stream(bad, 1.0) is None


def test_receive_stream_declines_other_frames_and_states() -> None:
    p = make()
    data = _audio_frame()
    assert p.receive_stream(data, 0.0) is None  # no connection
    p.connection_made()
    p.data_to_send(0.0)
    assert p.receive_stream(data, 0.0) is None  # setup not complete
    p.receive(SETUP_COMPLETE, 0.0)
    before = p.snapshot()
    for other in (TURN_COMPLETE, MODEL_TEXT, data.replace(b"AAEC", b"AA\\u0045C"), b"{}"):
        assert p.receive_stream(other, 0.0) is None
    assert p.snapshot() == before
    assert p.receive_stream(data, 0.0) is not None
    assert p.stats.frames_received == before.stats.frames_received + 1


def test_a_writer_that_raises_leaves_the_chunk_queued() -> None:
    p = make()
    connect(p)

    def broken(frame: bytes) -> bool:
        raise OSError("socket gone")

    writer = p.audio_writer(broken)
    with pytest.raises(OSError):
        writer(bytes(640), 1.0)
    assert p.queued == 1 and p.stats.frames_sent == 0
    (frame,) = p.data_to_send(2.0)
    assert json.loads(frame)["realtimeInput"]["audio"]["data"]
