"""Semantic events: ordering inside a frame, defaults, and the corner cases of each field."""

from __future__ import annotations

import base64

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemini_live import events as E
from gemini_live import types as T
from gemini_live.errors import MalformedMessage
from strategies import profile, structs


def _audio(data: str, mime: str | None = "audio/pcm;rate=24000") -> T.Part:
    blob = T.Blob(data=data) if mime is None else T.Blob(data=data, mime_type=mime)
    return T.Part(inline_data=blob)


def _turn(*parts: T.Part) -> T.ServerContent:
    return T.ServerContent(model_turn=T.Content(parts=list(parts)))


def test_documented_order_with_every_field_in_one_frame() -> None:
    usage = T.UsageMetadata(total_token_count=3)
    call = T.FunctionCall(id="c1", name="f", args={})
    msg = T.ServerMessage(
        error={"code": 1},
        go_away=T.GoAway(time_left="5s"),
        session_resumption_update=T.SessionResumptionUpdate(new_handle="h", resumable=True),
        usage_metadata=usage,
        tool_call=T.ToolCall(function_calls=[call]),
        tool_call_cancellation=T.ToolCallCancellation(ids=["c0"]),
        voice_activity_detection_signal=T.VoiceActivityDetectionSignal(vad_signal_type="SOS"),
        voice_activity=T.VoiceActivity(voice_activity_type="ACTIVITY_START", audio_offset=1.5),
        server_content=T.ServerContent(
            turn_complete=True,
            generation_complete=True,
            grounding_metadata={"g": 1},
            url_context_metadata={"u": 2},
            output_transcription=T.Transcription(text="out", finished=True),
            model_turn=T.Content(parts=[T.Part(text="a"), _audio("AAAA")]),
            input_transcription=T.Transcription(text="in"),
            interim_input_transcription=T.Transcription(text="int"),
            interrupted=True,
        ),
        setup_complete=T.SetupComplete(session_id="s"),
    )
    assert E.from_server_message(msg) == [
        E.SetupComplete("s"),
        E.VoiceActivity("ACTIVITY_START", 1.5),
        E.VadSignal("SOS"),
        E.Interrupted(),
        E.ToolCallCancellation(("c0",)),
        E.InputTranscription("int", interim=True),
        E.InputTranscription("in"),
        E.ModelText("a"),
        E.ModelAudio(b"\x00\x00\x00", 24000),
        E.OutputTranscription("out", finished=True),
        E.Grounding({"g": 1}, {"u": 2}),
        E.ToolCall((call,)),
        E.GenerationComplete(),
        E.TurnComplete(),
        E.Usage(usage),
        E.SessionResumptionUpdate("h", True, None),
        E.GoAway(5.0),
        E.ErrorReport({"code": 1}),
    ]


def test_empty_frames_give_no_events() -> None:
    assert E.from_server_message(T.ServerMessage()) == []
    assert E.from_server_message(T.ServerMessage(server_content=T.ServerContent())) == []
    assert E.from_server_message(T.ServerMessage(server_content=_turn())) == []
    content = T.ServerContent(model_turn=T.Content(role="model"))
    assert E.from_server_message(T.ServerMessage(server_content=content)) == []


def test_false_flags_give_no_events() -> None:
    sc = T.ServerContent(interrupted=False, turn_complete=False, generation_complete=False)
    assert E.from_server_message(T.ServerMessage(server_content=sc)) == []


# --------------------------------------------------------------------------- parts


def test_audio_url_safe_and_unpadded_base64() -> None:
    raw = b"\xfb\xff\xfe\x00"
    url = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "-" in url or "_" in url
    (event,) = E.from_server_message(T.ServerMessage(server_content=_turn(_audio(url))))
    assert event == E.ModelAudio(raw, 24000)


@pytest.mark.parametrize(
    ("mime", "rate"),
    [
        ("audio/pcm;rate=24000", 24000),
        ("audio/pcm;rate=16000", 16000),
        ("audio/pcm", 24000),
        ('audio/L16; Rate="8000"', 8000),
        ("audio/pcm;rate=abc", 24000),
    ],
)
def test_audio_sample_rate_from_mime(mime: str, rate: int) -> None:
    (event,) = E.from_server_message(T.ServerMessage(server_content=_turn(_audio("AAAA", mime))))
    assert event == E.ModelAudio(b"\x00\x00\x00", rate)


@pytest.mark.parametrize("data", ["A", "!!!!", "AAAA=A", "é"])
def test_invalid_audio_base64_is_malformed(data: str) -> None:
    with pytest.raises(MalformedMessage, match="not valid base64"):
        E.from_server_message(T.ServerMessage(server_content=_turn(_audio(data))))


@pytest.mark.parametrize("mime", [None, "image/png", "video/mp4", "AUDIO/pcm", ""])
def test_non_audio_inline_data_is_a_model_part(mime: str | None) -> None:
    part = _audio("not base64 at all!", mime)  # never decoded: passed through as is
    assert E.from_server_message(T.ServerMessage(server_content=_turn(part))) == [E.ModelPart(part)]


@pytest.mark.parametrize(
    "part",
    [
        T.Part(file_data=T.FileData(file_uri="gs://b/o", mime_type="image/png")),
        T.Part(executable_code=T.ExecutableCode(code="print(1)", language="PYTHON")),
        T.Part(code_execution_result=T.CodeExecutionResult(outcome="OUTCOME_OK", output="1")),
        T.Part(function_call=T.FunctionCall(name="f")),
        T.Part(thought=True),
        T.Part(),
    ],
)
def test_other_parts_are_model_parts(part: T.Part) -> None:
    assert E.from_server_message(T.ServerMessage(server_content=_turn(part))) == [E.ModelPart(part)]


def test_text_parts_and_thoughts() -> None:
    parts = [T.Part(text="x", thought=True), T.Part(text="y", thought=False), T.Part(text="")]
    assert E.from_server_message(T.ServerMessage(server_content=_turn(*parts))) == [
        E.ModelText("x", thought=True),
        E.ModelText("y"),
        E.ModelText(""),
    ]


def test_inline_data_wins_over_text_in_the_same_part() -> None:
    part = T.Part(text="t", inline_data=T.Blob(data="AAAA", mime_type="audio/pcm;rate=24000"))
    assert E.from_server_message(T.ServerMessage(server_content=_turn(part))) == [
        E.ModelAudio(b"\x00\x00\x00")
    ]


# --------------------------------------------------------------------------- other fields


def test_transcriptions_without_text() -> None:
    sc = T.ServerContent(
        interim_input_transcription=T.Transcription(),
        input_transcription=T.Transcription(finished=True),
        output_transcription=T.Transcription(finished=True),
    )
    # `{}` carries nothing (no event); a bare `finished` is the terminal marker (an event).
    assert E.from_server_message(T.ServerMessage(server_content=sc)) == [
        E.InputTranscription("", finished=True),
        E.OutputTranscription("", finished=True),
    ]


def test_grounding_with_url_context_only() -> None:
    sc = T.ServerContent(url_context_metadata={"urlMetadata": []})
    assert E.from_server_message(T.ServerMessage(server_content=sc)) == [
        E.Grounding(None, {"urlMetadata": []})
    ]


def test_empty_tool_call_and_cancellation() -> None:
    msg = T.ServerMessage(tool_call=T.ToolCall(), tool_call_cancellation=T.ToolCallCancellation())
    assert E.from_server_message(msg) == [E.ToolCallCancellation(()), E.ToolCall(())]


@pytest.mark.parametrize(
    ("update", "event"),
    [
        (T.SessionResumptionUpdate(), E.SessionResumptionUpdate(None, False, None)),
        (
            T.SessionResumptionUpdate(new_handle="", resumable=False),
            E.SessionResumptionUpdate(None, False),
        ),
        (
            T.SessionResumptionUpdate(new_handle="h", last_consumed_client_message_index=0),
            E.SessionResumptionUpdate("h", False, 0),
        ),
    ],
)
def test_session_resumption_update_defaults(
    update: T.SessionResumptionUpdate, event: E.SessionResumptionUpdate
) -> None:
    assert E.from_server_message(T.ServerMessage(session_resumption_update=update)) == [event]


@pytest.mark.parametrize(
    ("time_left", "seconds"),
    [("50s", 50.0), ("9.500s", 9.5), (12, 12.0), (0.25, 0.25), ("0s", 0.0)],
)
def test_go_away_time_left(time_left: str | float, seconds: float) -> None:
    msg = T.ServerMessage(go_away=T.GoAway(time_left=time_left))
    assert E.from_server_message(msg) == [E.GoAway(seconds)]


def test_go_away_without_time_left_is_zero() -> None:
    assert E.from_server_message(T.ServerMessage(go_away=T.GoAway())) == [E.GoAway(0.0)]


@pytest.mark.parametrize("bad", ["soon", "5m", "", "1e3s"])
def test_go_away_bad_time_left_is_malformed(bad: str) -> None:
    with pytest.raises(MalformedMessage, match=r"goAway\.timeLeft"):
        E.from_server_message(T.ServerMessage(go_away=T.GoAway(time_left=bad)))


def test_voice_activity_variants() -> None:
    msg = T.ServerMessage(voice_activity=T.VoiceActivity())
    assert E.from_server_message(msg) == [E.VoiceActivity("", None)]
    msg = T.ServerMessage(voice_activity=T.VoiceActivity(audio_offset="0.5s"))
    assert E.from_server_message(msg) == [E.VoiceActivity("", 0.5)]
    msg = T.ServerMessage(voice_activity=T.VoiceActivity(audio_offset="later"))
    with pytest.raises(MalformedMessage, match="audioOffset"):
        E.from_server_message(msg)


def test_vad_signal_without_type() -> None:
    msg = T.ServerMessage(voice_activity_detection_signal=T.VoiceActivityDetectionSignal())
    assert E.from_server_message(msg) == [E.VadSignal("")]


def test_setup_complete_with_voice_consent_signature() -> None:
    sc = T.SetupComplete(voice_consent_signature=T.VoiceConsentSignature(signature="sig"))
    assert E.from_server_message(T.ServerMessage(setup_complete=sc)) == [
        E.SetupComplete(None, voice_consent_signature="sig")
    ]


# --------------------------------------------------------------------------- event objects


def test_events_are_frozen_and_matchable() -> None:
    audio = E.ModelAudio(b"\x00\x00", 16000)
    with pytest.raises(AttributeError):
        audio.data = b""  # type: ignore[misc]
    event: E.Event = audio
    match event:
        case E.ModelAudio(data, rate):
            assert (data, rate) == (b"\x00\x00", 16000)
        case _:  # pragma: no cover - the match above must succeed
            pytest.fail("ModelAudio did not match positionally")
    assert hash(E.GoAway(1.0)) == hash(E.GoAway(1.0))


def test_event_defaults() -> None:
    assert E.SetupComplete() == E.SetupComplete(None)
    assert E.ModelText("x") == E.ModelText("x", thought=False)
    assert E.ModelAudio(b"").sample_rate == 24000
    assert E.TurnComplete() == E.TurnComplete(None, None, waiting_for_input=False)
    assert E.InputTranscription("x") == E.InputTranscription("x", finished=False, interim=False)
    assert E.OutputTranscription("x").finished is False
    assert E.Grounding() == E.Grounding(None, None)
    assert E.VoiceActivity("k").audio_offset is None
    assert E.Closed() == E.Closed(None, "")


def test_lifecycle_events() -> None:
    assert E.Reconnecting(2, 0.5, "goAway") == E.Reconnecting(attempt=2, delay=0.5, cause="goAway")
    assert E.Resumed(state_restored=True).state_restored is True
    assert E.Lagged(3).count == 3
    assert E.Closed(1000, "bye").reason == "bye"


def test_event_union_lists_every_event_class() -> None:
    exported = {
        getattr(E, name)
        for name in E.__all__
        if isinstance(getattr(E, name), type) and issubclass(getattr(E, name), msgspec.Struct)
    }
    # TranscriptWord is a value inside transcription events, not an event itself.
    assert exported - {E.TranscriptWord} == set(E.Event.__args__)


@profile(max_examples=150)
@given(structs(T.ServerMessage))
def test_from_server_message_is_total_or_malformed(msg: T.ServerMessage) -> None:
    """Any typed message gives events or MalformedMessage, and the order rule holds."""
    try:
        events = E.from_server_message(msg)
    except MalformedMessage:
        return
    kinds = [type(e) for e in events]
    if E.Interrupted in kinds:
        first_audio = next((i for i, k in enumerate(kinds) if k is E.ModelAudio), len(kinds))
        assert kinds.index(E.Interrupted) < first_audio
    if E.TurnComplete in kinds and E.Usage in kinds:
        assert kinds.index(E.TurnComplete) < kinds.index(E.Usage)
    if E.SetupComplete in kinds:
        assert kinds[0] is E.SetupComplete


@profile(max_examples=100)
@given(st.binary(max_size=256))
def test_audio_bytes_round_trip(raw: bytes) -> None:
    part = T.Part(inline_data=T.Blob.of(raw, "audio/pcm;rate=24000"))
    assert E.from_server_message(T.ServerMessage(server_content=_turn(part))) == [
        E.ModelAudio(raw, 24000)
    ]


# --------------------------------------------------------------------------- issue 10 fields


def test_transcription_metadata_reaches_the_events() -> None:
    raw = (
        b'{"serverContent": {"inputTranscription": {"text": "hello there", "finished": true,'
        b' "languageCode": "en-US", "speakerLabel": "spk-1", "startOffset": "1.5s",'
        b' "endOffset": "2.25s", "words": [{"word": "hello", "startOffset": "1.5s",'
        b' "endOffset": "1.9s"}, {"word": "there"}]},'
        b' "outputTranscription": {"text": "hi", "languageCode": "fr-FR"}}}'
    )
    msg = msgspec.json.decode(raw, type=T.ServerMessage)
    assert E.from_server_message(msg) == [
        E.InputTranscription(
            "hello there",
            finished=True,
            language_code="en-US",
            speaker_label="spk-1",
            words=(E.TranscriptWord("hello", 1.5, 1.9), E.TranscriptWord("there")),
            start_offset=1.5,
            end_offset=2.25,
        ),
        E.OutputTranscription("hi", language_code="fr-FR"),
    ]


def test_bad_word_offset_is_malformed() -> None:
    t = T.Transcription(text="x", words=[T.TranscriptionWord(word="x", start_offset="soon")])
    with pytest.raises(MalformedMessage):
        E.from_server_message(
            T.ServerMessage(server_content=T.ServerContent(input_transcription=t))
        )


@pytest.mark.parametrize(
    "server_content",
    [
        b'{"groundingMetadata": {}}',
        b'{"urlContextMetadata": {}}',
        b'{"outputTranscription": {}}',
        b'{"inputTranscription": {}}',
        b'{"interimInputTranscription": {"text": ""}}',
        b'{"groundingMetadata": {}, "outputTranscription": {}}',
    ],
)
def test_empty_objects_produce_no_event(server_content: bytes) -> None:
    msg = msgspec.json.decode(b'{"serverContent": ' + server_content + b"}", type=T.ServerMessage)
    assert E.from_server_message(msg) == []


def test_grounding_with_content_is_an_event() -> None:
    sc = T.ServerContent(grounding_metadata={"webSearchQueries": ["q"]}, url_context_metadata={})
    assert E.from_server_message(T.ServerMessage(server_content=sc)) == [
        E.Grounding({"webSearchQueries": ["q"]}, None)
    ]


@pytest.mark.parametrize(
    ("status", "done"),
    [(None, True), ("IDLE", True), ("REQUIRES_ACTION", True), ("IN_PROGRESS", False)],
)
def test_turn_complete_interaction_done(status: str | None, done: bool) -> None:
    sc = T.ServerContent(turn_complete=True)
    if status is not None:
        sc.interaction_status = status
    (event,) = E.from_server_message(T.ServerMessage(server_content=sc))
    assert isinstance(event, E.TurnComplete)
    assert event.interaction_status == status
    assert event.interaction_done is done


def test_resumed_and_interaction_timeout_fields() -> None:
    assert E.Resumed(False) == E.Resumed(False, reseeded=False, turns=0)
    assert E.Resumed(False, True, 4).turns == 4
    assert E.InteractionTimeout(30.0).seconds == 30.0
