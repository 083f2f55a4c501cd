"""Codec: golden server frames, the client encoder's checks, the audio fast path, fuzzing."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import random
import traceback
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemini_live import codec
from gemini_live import events as E
from gemini_live import types as T
from gemini_live.errors import AudioFormatError, ConfigError, MalformedMessage
from strategies import b64_text, client_messages, json_values, profile, structs

FRAMES_DIR = Path(__file__).parent / "frames"
FRAME_NAMES = sorted(p.stem for p in FRAMES_DIR.glob("*.json"))

PCM = bytes(range(64))  # the audio in the golden audio frames
B64 = base64.b64encode(PCM).decode()
AUDIO_24K = T.Part(inline_data=T.Blob(data=B64, mime_type="audio/pcm;rate=24000"))


def _sc(**kw: Any) -> T.ServerMessage:
    return T.ServerMessage(server_content=T.ServerContent(**kw))


# --------------------------------------------------------------------------- golden frames

#: frame name -> (exactly decoded ServerMessage, exact ordered events)
GOLDEN: dict[str, tuple[T.ServerMessage, list[E.Event]]] = {
    "setup_complete_session_id": (
        T.ServerMessage(setup_complete=T.SetupComplete(session_id="sess-7f3a")),
        [E.SetupComplete("sess-7f3a")],
    ),
    "setup_complete_empty": (
        T.ServerMessage(setup_complete=T.SetupComplete()),
        [E.SetupComplete(None)],
    ),
    "server_content_audio": (
        _sc(model_turn=T.Content(parts=[AUDIO_24K])),
        [E.ModelAudio(PCM, 24000)],
    ),
    "server_content_text_thought": (
        _sc(
            model_turn=T.Content(
                role="model",
                parts=[
                    T.Part(text="Let me think.", thought=True, thought_signature="c2ln"),
                    T.Part(text="Hello!"),
                ],
            )
        ),
        [E.ModelText("Let me think.", thought=True), E.ModelText("Hello!", thought=False)],
    ),
    "server_content_multi_part": (
        _sc(
            model_turn=T.Content(
                parts=[
                    AUDIO_24K,
                    T.Part(text="Hi there"),
                    T.Part(inline_data=T.Blob(data="AAEC_w", mime_type="audio/pcm;rate=16000")),
                ]
            )
        ),
        [
            E.ModelAudio(PCM, 24000),
            E.ModelText("Hi there"),
            E.ModelAudio(b"\x00\x01\x02\xff", 16000),
        ],
    ),
    "server_content_interrupted_audio": (
        _sc(
            model_turn=T.Content(
                parts=[
                    T.Part(inline_data=T.Blob(data="AAAAAA==", mime_type="audio/pcm;rate=24000"))
                ]
            ),
            interrupted=True,
        ),
        # Interrupted first: playback is flushed before this frame's audio is queued.
        [E.Interrupted(), E.ModelAudio(b"\x00\x00\x00\x00", 24000)],
    ),
    "server_content_input_transcription": (
        _sc(
            input_transcription=T.Transcription(
                text="what is the weather", finished=True, language_code="en-US"
            )
        ),
        [E.InputTranscription("what is the weather", finished=True, language_code="en-US")],
    ),
    "server_content_output_transcription": (
        _sc(output_transcription=T.Transcription(text="It is sunny")),
        [E.OutputTranscription("It is sunny", finished=False)],
    ),
    "server_content_interim_input_transcription": (
        _sc(
            interim_input_transcription=T.Transcription(text="what is the"),
            input_transcription=T.Transcription(text="what"),
        ),
        [E.InputTranscription("what is the", interim=True), E.InputTranscription("what")],
    ),
    "turn_complete_usage": (
        T.ServerMessage(
            server_content=T.ServerContent(turn_complete=True),
            usage_metadata=T.UsageMetadata(
                prompt_token_count=120,
                response_token_count=45,
                total_token_count=165,
                prompt_tokens_details=[
                    T.ModalityTokenCount(modality="AUDIO", token_count=100),
                    T.ModalityTokenCount(modality="TEXT", token_count=20),
                ],
                response_tokens_details=[T.ModalityTokenCount(modality="AUDIO", token_count=45)],
            ),
        ),
        [
            E.TurnComplete(),
            E.Usage(
                T.UsageMetadata(
                    prompt_token_count=120,
                    response_token_count=45,
                    total_token_count=165,
                    prompt_tokens_details=[
                        T.ModalityTokenCount(modality="AUDIO", token_count=100),
                        T.ModalityTokenCount(modality="TEXT", token_count=20),
                    ],
                    response_tokens_details=[
                        T.ModalityTokenCount(modality="AUDIO", token_count=45)
                    ],
                )
            ),
        ],
    ),
    "turn_complete_reason": (
        _sc(
            turn_complete=True,
            turn_complete_reason="NEED_MORE_INPUT",
            waiting_for_input=True,
            interaction_status="IN_PROGRESS",
        ),
        [E.TurnComplete("NEED_MORE_INPUT", "IN_PROGRESS", waiting_for_input=True)],
    ),
    "generation_complete": (_sc(generation_complete=True), [E.GenerationComplete()]),
    "grounding_metadata": (
        _sc(
            grounding_metadata={
                "webSearchQueries": ["weather paris"],
                "groundingChunks": [{"web": {"uri": "https://example.com/w", "title": "Weather"}}],
                "searchEntryPoint": {"renderedContent": "<div></div>"},
            }
        ),
        [
            E.Grounding(
                {
                    "webSearchQueries": ["weather paris"],
                    "groundingChunks": [
                        {"web": {"uri": "https://example.com/w", "title": "Weather"}}
                    ],
                    "searchEntryPoint": {"renderedContent": "<div></div>"},
                },
                None,
            )
        ],
    ),
    "tool_call_parallel": (
        T.ServerMessage(
            tool_call=T.ToolCall(
                function_calls=[
                    T.FunctionCall(id="call-1", name="get_weather", args={"city": "Paris"}),
                    T.FunctionCall(
                        id="call-2", name="get_time", args={"tz": "Europe/Paris", "precise": True}
                    ),
                ]
            )
        ),
        [
            E.ToolCall(
                (
                    T.FunctionCall(id="call-1", name="get_weather", args={"city": "Paris"}),
                    T.FunctionCall(
                        id="call-2", name="get_time", args={"tz": "Europe/Paris", "precise": True}
                    ),
                )
            )
        ],
    ),
    "tool_call_cancellation": (
        T.ServerMessage(tool_call_cancellation=T.ToolCallCancellation(ids=["call-1", "call-2"])),
        [E.ToolCallCancellation(("call-1", "call-2"))],
    ),
    "go_away_50s": (T.ServerMessage(go_away=T.GoAway(time_left="50s")), [E.GoAway(50.0)]),
    "go_away_fractional": (T.ServerMessage(go_away=T.GoAway(time_left="9.500s")), [E.GoAway(9.5)]),
    "session_resumption_update_index_string": (
        T.ServerMessage(
            session_resumption_update=T.SessionResumptionUpdate(
                new_handle="h-42", resumable=True, last_consumed_client_message_index=17
            )
        ),
        [E.SessionResumptionUpdate("h-42", True, 17)],
    ),
    "session_resumption_update_index_number": (
        T.ServerMessage(
            session_resumption_update=T.SessionResumptionUpdate(
                new_handle="h-43", resumable=True, last_consumed_client_message_index=18
            )
        ),
        [E.SessionResumptionUpdate("h-43", True, 18)],
    ),
    "usage_vertex_candidates": (
        T.ServerMessage(
            usage_metadata=T.UsageMetadata(
                prompt_token_count=10,
                candidates_token_count=7,
                total_token_count=17,
                candidates_tokens_details=[T.ModalityTokenCount(modality="AUDIO", token_count=7)],
                traffic_type="ON_DEMAND",
            )
        ),
        [
            E.Usage(
                T.UsageMetadata(
                    prompt_token_count=10,
                    candidates_token_count=7,
                    total_token_count=17,
                    candidates_tokens_details=[
                        T.ModalityTokenCount(modality="AUDIO", token_count=7)
                    ],
                    traffic_type="ON_DEMAND",
                )
            )
        ],
    ),
    "usage_int64_strings": (
        T.ServerMessage(
            usage_metadata=T.UsageMetadata(
                prompt_token_count=9007199254740993,  # > 2**53: must not go through float
                response_token_count=12,
                total_token_count=9007199254741005,
                prompt_tokens_details=[T.ModalityTokenCount(modality="TEXT", token_count=3)],
            )
        ),
        [
            E.Usage(
                T.UsageMetadata(
                    prompt_token_count=9007199254740993,
                    response_token_count=12,
                    total_token_count=9007199254741005,
                    prompt_tokens_details=[T.ModalityTokenCount(modality="TEXT", token_count=3)],
                )
            )
        ],
    ),
    "voice_activity": (
        T.ServerMessage(
            voice_activity=T.VoiceActivity(
                voice_activity_type="ACTIVITY_START", audio_offset="3.2s"
            )
        ),
        [E.VoiceActivity("ACTIVITY_START", 3.2)],
    ),
    "voice_activity_detection_signal": (
        T.ServerMessage(
            voice_activity_detection_signal=T.VoiceActivityDetectionSignal(
                vad_signal_type="VAD_SIGNAL_TYPE_EOS"
            )
        ),
        [E.VadSignal("VAD_SIGNAL_TYPE_EOS")],
    ),
    "unknown_top_level_field": (
        T.ServerMessage(go_away=T.GoAway(time_left="1s")),
        [E.GoAway(1.0)],
    ),
    "unknown_nested_field": (
        _sc(model_turn=T.Content(parts=[T.Part(text="hi")]), turn_complete=True),
        [E.ModelText("hi"), E.TurnComplete()],
    ),
    "unknown_enum_value": (
        T.ServerMessage(
            server_content=T.ServerContent(
                turn_complete=True,
                turn_complete_reason="SOME_FUTURE_REASON",
                interaction_status="SOME_FUTURE_STATUS",
            ),
            voice_activity=T.VoiceActivity(voice_activity_type="ACTIVITY_FUTURE"),
        ),
        [
            E.VoiceActivity("ACTIVITY_FUTURE", None),
            E.TurnComplete("SOME_FUTURE_REASON", "SOME_FUTURE_STATUS", waiting_for_input=False),
        ],
    ),
    "error_body": (
        T.ServerMessage(
            error={
                "code": 400,
                "message": "Request contains an invalid argument.",
                "status": "INVALID_ARGUMENT",
            }
        ),
        [
            E.ErrorReport(
                {
                    "code": 400,
                    "message": "Request contains an invalid argument.",
                    "status": "INVALID_ARGUMENT",
                }
            )
        ],
    ),
    "multi_field": (
        T.ServerMessage(
            server_content=T.ServerContent(
                model_turn=T.Content(parts=[T.Part(text="Done.")]), turn_complete=True
            ),
            usage_metadata=T.UsageMetadata(total_token_count=30),
            session_resumption_update=T.SessionResumptionUpdate(new_handle="h-9", resumable=True),
        ),
        [
            E.ModelText("Done."),
            E.TurnComplete(),
            E.Usage(T.UsageMetadata(total_token_count=30)),
            E.SessionResumptionUpdate("h-9", True, None),
        ],
    ),
}


def test_every_golden_frame_has_expectations() -> None:
    assert sorted(GOLDEN) == FRAME_NAMES


@pytest.mark.parametrize("name", FRAME_NAMES)
def test_golden_frame(name: str, load_frame: Callable[[str], bytes]) -> None:
    raw = load_frame(name)
    message, events = GOLDEN[name]
    assert codec.decode_server(raw) == message
    got = codec.decode_events(raw)
    assert got == events
    assert [type(e) for e in got] == [type(e) for e in events]
    # Every input type gives the same result; str frames (text WebSocket frames) too.
    for variant in (raw.decode(), bytearray(raw), memoryview(raw)):
        assert codec.decode_events(variant) == events


@pytest.mark.parametrize("name", FRAME_NAMES)
def test_golden_frame_reencodes_to_equal_message(
    name: str, load_frame: Callable[[str], bytes]
) -> None:
    message = codec.decode_server(load_frame(name))
    assert codec.decode_server(codec.encode_server(message)) == message


def test_golden_details(load_frame: Callable[[str], bytes]) -> None:
    vertex = codec.decode_server(load_frame("usage_vertex_candidates")).usage_metadata
    gemini = codec.decode_server(load_frame("turn_complete_usage")).usage_metadata
    assert isinstance(vertex, T.UsageMetadata)
    assert isinstance(gemini, T.UsageMetadata)
    assert vertex.response_tokens() == 7
    assert gemini.response_tokens() == 45
    go_away = codec.decode_server(load_frame("go_away_fractional")).go_away
    assert isinstance(go_away, T.GoAway)
    assert go_away.time_left == "9.500s"  # kept as sent; events parse it
    audio = codec.decode_events(load_frame("server_content_audio"))[0]
    assert isinstance(audio, E.ModelAudio)
    assert type(audio.data) is bytes


# --------------------------------------------------------------------------- encoder checks

_CLIENT_SAMPLES: dict[str, Any] = {
    "setup": T.Setup(model="models/x"),
    "client_content": T.ClientContent(turn_complete=True),
    "realtime_input": T.RealtimeInput(text="hi"),
    "tool_response": T.ToolResponse(function_responses=[]),
    "context_update": T.ContextUpdate(),
}
_REALTIME_SAMPLES: dict[str, Any] = {
    "audio": T.Blob(data="AAAA", mime_type="audio/pcm;rate=16000"),
    "video": T.Blob(data="AAAA", mime_type="image/jpeg"),
    "text": "hello",
    "audio_stream_end": True,
    "activity_start": T.ActivityStart(),
    "activity_end": T.ActivityEnd(),
    "media_chunks": [T.Blob(data="AAAA", mime_type="audio/pcm;rate=16000")],
}


def test_samples_cover_every_field() -> None:
    assert set(_CLIENT_SAMPLES) == set(T.ClientMessage.__struct_fields__)
    assert set(_REALTIME_SAMPLES) == set(T.RealtimeInput.__struct_fields__)


def test_encode_client_refuses_empty_message() -> None:
    with pytest.raises(ConfigError, match=r"exactly one field, got 0 \(none\)"):
        codec.encode_client(T.ClientMessage())


@pytest.mark.parametrize("pair", list(itertools.combinations(_CLIENT_SAMPLES, 2)))
def test_encode_client_refuses_two_fields(pair: tuple[str, str]) -> None:
    msg = T.ClientMessage(**{name: _CLIENT_SAMPLES[name] for name in pair})
    with pytest.raises(ConfigError, match="exactly one field, got 2"):
        codec.encode_client(msg)


def test_encode_client_refuses_all_fields() -> None:
    with pytest.raises(ConfigError, match="got 5"):
        codec.encode_client(T.ClientMessage(**_CLIENT_SAMPLES))


def test_encode_client_refuses_empty_realtime_input() -> None:
    with pytest.raises(ConfigError, match=r"exactly one payload per frame, got 0 \(none\)"):
        codec.encode_client(T.ClientMessage(realtime_input=T.RealtimeInput()))


@pytest.mark.parametrize("pair", list(itertools.combinations(_REALTIME_SAMPLES, 2)))
def test_encode_client_refuses_two_realtime_payloads(pair: tuple[str, str]) -> None:
    msg = T.ClientMessage(
        realtime_input=T.RealtimeInput(**{name: _REALTIME_SAMPLES[name] for name in pair})
    )
    with pytest.raises(ConfigError, match="got 2"):
        codec.encode_client(msg)


def test_encode_client_refuses_media_chunks() -> None:
    msg = T.ClientMessage(
        realtime_input=T.RealtimeInput(media_chunks=_REALTIME_SAMPLES["media_chunks"])
    )
    with pytest.raises(ConfigError, match="mediaChunks is deprecated"):
        codec.encode_client(msg)
    # Decoding it (fake server / old peers) still works.
    frame = msgspec.json.encode(msg)
    assert codec.decode_client(frame) == msg


@pytest.mark.parametrize("kind", sorted(_CLIENT_SAMPLES))
def test_check_client_message_returns_kind(kind: str) -> None:
    msg = T.ClientMessage(**{kind: _CLIENT_SAMPLES[kind]})
    assert codec.check_client_message(msg) == kind
    wire = json.loads(codec.encode_client(msg))
    encode_names = {f.name: f.encode_name for f in msgspec.structs.fields(T.ClientMessage)}
    assert list(wire) == [encode_names[kind]]


@pytest.mark.parametrize("payload", sorted(set(_REALTIME_SAMPLES) - {"media_chunks"}))
def test_every_realtime_payload_encodes(payload: str) -> None:
    msg = T.ClientMessage(realtime_input=T.RealtimeInput(**{payload: _REALTIME_SAMPLES[payload]}))
    frame = codec.encode_client(msg)
    wire = json.loads(frame)
    assert list(wire) == ["realtimeInput"]
    assert len(wire["realtimeInput"]) == 1
    assert codec.decode_client(frame) == msg


@profile(max_examples=150)
@given(client_messages())
def test_encode_client_round_trip(msg: T.ClientMessage) -> None:
    frame = codec.encode_client(msg)
    assert codec.decode_client(frame) == msg
    assert len(json.loads(frame)) == 1


@profile(max_examples=150)
@given(structs(T.ServerMessage))
def test_encode_server_round_trip(msg: T.ServerMessage) -> None:
    assert codec.decode_server(codec.encode_server(msg)) == msg


# --------------------------------------------------------------------------- audio fast path


def _reference_frame(pcm: bytes, rate: int) -> Any:
    blob = T.Blob.of(pcm, f"audio/pcm;rate={rate}")
    return json.loads(
        msgspec.json.encode(T.ClientMessage(realtime_input=T.RealtimeInput(audio=blob)))
    )


@profile(max_examples=200)
@given(
    st.binary(max_size=2048).map(lambda b: b[: len(b) & ~1]),
    st.sampled_from([8000, 16000, 24000, 44100, 48000]),
)
def test_audio_frame_encoder_matches_generic_encoder(pcm: bytes, rate: int) -> None:
    frame = codec.AudioFrameEncoder(rate).encode(pcm)
    assert json.loads(frame) == _reference_frame(pcm, rate)
    decoded = codec.decode_client(frame)
    assert codec.check_client_message(decoded) == "realtime_input"


def test_audio_frame_encoder_default_rate_matches_brief() -> None:
    pcm = b"\x01\x00\xff\x7f" * 80
    enc = codec.AudioFrameEncoder()
    assert enc.rate == 16000
    assert enc.mime_type == "audio/pcm;rate=16000"
    expected = msgspec.json.encode(
        T.ClientMessage(
            realtime_input=T.RealtimeInput(audio=T.Blob.of(pcm, "audio/pcm;rate=16000"))
        )
    )
    assert json.loads(enc.encode(pcm)) == json.loads(expected)


def test_audio_frame_encoder_accepts_buffer_types() -> None:
    samples = array("h", [0, 1, -1, 32767, -32768])
    raw = samples.tobytes()
    enc = codec.AudioFrameEncoder(16000)
    expected = enc.encode(raw)
    assert enc.encode(bytearray(raw)) == expected
    assert enc.encode(memoryview(raw)) == expected
    assert enc.encode(samples) == expected


@pytest.mark.parametrize("bad", [b"\x00", b"\x00\x01\x02", "AAAA", 5])
def test_audio_frame_encoder_rejects_non_pcm16(bad: object) -> None:
    with pytest.raises(AudioFormatError):
        codec.AudioFrameEncoder().encode(bad)


@pytest.mark.parametrize("rate", [0, 7999, 48001, -16000])
def test_audio_frame_encoder_rejects_bad_rate(rate: int) -> None:
    with pytest.raises(ConfigError):
        codec.AudioFrameEncoder(rate)


# --------------------------------------------------------------------------- decode errors


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not json",
        b"[]",
        b"null",
        b'"setupComplete"',
        b'{"setupComplete": []}',
        b'{"goAway": {"timeLeft": [1]}}',
        b'{"usageMetadata": {"totalTokenCount": "twelve"}}',
        b'{"usageMetadata": {"totalTokenCount": 1.5}}',
        b'{"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": "1.5"}}',
        b'{"serverContent": {"modelTurn": {"parts": {}}}}',
        b'{"serverContent": {"modelTurn": {"parts": [{"inlineData": {}}]}}}',
        b'{"toolCall": {"functionCalls": [{"args": []}]}}',
        b'{"error": "boom"}',
        b'{"setupComplete": {}',
        b"\xff\xfe{}",
    ],
)
def test_decode_server_malformed(frame: bytes) -> None:
    with pytest.raises(MalformedMessage, match="malformed server frame") as info:
        codec.decode_server(frame)
    assert info.value.frame == frame
    with pytest.raises(MalformedMessage):
        codec.decode_events(frame)


def test_malformed_frame_is_truncated_and_str_frames_are_bytes() -> None:
    frame = b'{"x": "' + b"a" * 1000
    with pytest.raises(MalformedMessage) as info:
        codec.decode_server(frame)
    assert info.value.frame == frame[:200]
    with pytest.raises(MalformedMessage) as info:
        codec.decode_server(frame.decode())
    assert info.value.frame == frame[:200]
    with pytest.raises(MalformedMessage) as info:
        codec.decode_server(memoryview(b"nope"))
    assert info.value.frame == b"nope"


@pytest.mark.parametrize("frame", [b"", b"[]", b'{"setup": 1}', b'{"realtimeInput": {"text": 1}}'])
def test_decode_client_malformed(frame: bytes) -> None:
    with pytest.raises(MalformedMessage, match="malformed client frame") as info:
        codec.decode_client(frame)
    assert info.value.frame == frame
    with pytest.raises(MalformedMessage) as info:
        codec.decode_client(frame.decode())
    assert info.value.frame == frame


def test_decode_client_accepts_snake_case_free_camel_frames() -> None:
    frame = b'{"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AAAA"}}}'
    msg = codec.decode_client(frame)
    assert msg == T.ClientMessage(
        realtime_input=T.RealtimeInput(audio=T.Blob(data="AAAA", mime_type="audio/pcm;rate=16000"))
    )


def test_decode_events_semantic_error_carries_frame() -> None:
    frame = b'{"goAway": {"timeLeft": "soon"}}'
    with pytest.raises(MalformedMessage) as info:
        codec.decode_events(frame)
    assert info.value.frame == frame


def test_frame_with_only_unknown_keys_gives_no_events() -> None:
    assert codec.decode_events(b'{"someFutureMessage": {"x": 1}}') == []


def test_top_level_error_body_is_reported() -> None:
    frame = b'{"code": 400, "message": "Request contains an invalid argument.", "status": "X"}'
    events = codec.decode_events(frame)
    assert [type(e) for e in events] == [E.ErrorReport]


# --------------------------------------------------------------------------- fuzzing

_INTERESTING_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 1.5, -0.0,
    1e308, -1e308, 1e-320, "", " ", "x", "0", "17", "-1", "1.5", "1e3", "50s", "9.500s",
    "-1s", "s", "inf", "NaN", "abc", "AAAA", "AAA", "A", "AA==", "!!!!", "__-_", "AAEC_w",
    "\u00e9\u2028\u0000", "audio/pcm", "audio/pcm;rate=16000", "audio/pcm;rate=abc",
    "audio/pcm;rate=0", "audio/pcm;rate=", "audio/pcm; RATE=\"8000\"", "audio/", "image/png",
    "audio/pcm;rate=99999999999999999999", "audio/pcm;rate=" + "9" * 5000, "x" * 300,
    [], {}, [1, "a", None], {"a": 1},
    {"parts": []}, {"parts": [{}]}, [{"text": 1}],
]  # fmt: skip

_FIELD_NAMES: list[str] = sorted(
    {f.encode_name for cls in (T.ServerMessage,) for f in msgspec.structs.fields(cls)}
    | {
        "modelTurn", "parts", "inlineData", "mimeType", "data", "text", "thought",
        "turnComplete", "interrupted", "generationComplete", "inputTranscription",
        "outputTranscription", "interimInputTranscription", "finished", "groundingMetadata",
        "urlContextMetadata", "turnCompleteReason", "waitingForInput", "interactionStatus",
        "functionCalls", "id", "name", "args", "ids", "timeLeft", "newHandle", "resumable",
        "lastConsumedClientMessageIndex", "type", "audioOffset", "vadSignalType", "sessionId",
        "promptTokenCount", "totalTokenCount", "candidatesTokenCount", "tokenCount",
        "modality", "fileData", "fileUri", "executableCode", "code", "role", "words",
    }
)  # fmt: skip

_TOKENS: list[bytes] = [
    b"{", b"}", b"[", b"]", b'"', b":", b",", b"\\", b"\\u", b"\\ud800", b"null", b"true",
    b"-", b"0", b"1e999", b".", b" ", b"\x00", b"\xff", b"\xc3", b"\xe2\x80", b'"s"',
]  # fmt: skip


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 6 or roll < 0.35:
        return rng.choice(_INTERESTING_VALUES)
    if roll < 0.5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = _FIELD_NAMES if rng.random() < 0.85 else ["zz", "", "é", "setup_complete"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _mutate_tree(rng: random.Random, doc: Any) -> Any:
    """Replace, delete, rename or add at one random node of a parsed frame."""
    doc = json.loads(json.dumps(doc))
    path = rng.choice(list(_paths(doc)))
    if not path:
        return _random_json(rng)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    action = rng.randrange(5)
    if action == 0:
        parent[last] = rng.choice(_INTERESTING_VALUES)
    elif action == 1:
        parent[last] = _random_json(rng, depth=3)
    elif action == 2 and isinstance(parent, dict):
        del parent[last]
    elif action == 3 and isinstance(parent, dict):
        parent[rng.choice(_FIELD_NAMES)] = parent.pop(last)
    elif isinstance(parent, list):
        parent.insert(rng.randrange(len(parent) + 1), _random_json(rng, depth=3))
    else:
        parent[rng.choice(_FIELD_NAMES)] = _random_json(rng, depth=3)
    return doc


def _mutate_bytes(rng: random.Random, raw: bytes, other: bytes) -> bytes:
    buf = bytearray(raw)
    action = rng.randrange(7)
    if action == 0 and buf:  # flip 1-4 bits
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif action == 1:  # truncate
        del buf[rng.randrange(len(buf) + 1) :]
    elif action == 2 and buf:  # delete a slice
        i = rng.randrange(len(buf))
        del buf[i : i + rng.randint(1, 16)]
    elif action == 3:  # insert a token
        i = rng.randrange(len(buf) + 1)
        buf[i:i] = rng.choice(_TOKENS)
    elif action == 4 and buf:  # duplicate a slice
        i = rng.randrange(len(buf))
        j = min(len(buf), i + rng.randint(1, 32))
        buf[j:j] = buf[i:j]
    elif action == 5:  # splice two frames
        buf = bytearray(raw[: rng.randrange(len(raw) + 1)] + other[rng.randrange(len(other) + 1) :])
    elif buf:  # overwrite with random bytes
        i = rng.randrange(len(buf))
        buf[i : i + 4] = rng.randbytes(rng.randint(1, 4))
    return bytes(buf)


def _fuzz_inputs(count: int, seed: int) -> Iterator[bytes | str | bytearray | memoryview]:
    rng = random.Random(seed)
    golden = [(FRAMES_DIR / f"{n}.json").read_bytes() for n in FRAME_NAMES]
    docs = [json.loads(g) for g in golden]
    for i in range(count):
        kind = i % 10
        if kind < 4:
            raw = _mutate_bytes(rng, rng.choice(golden), rng.choice(golden))
            if rng.random() < 0.5:
                raw = _mutate_bytes(rng, raw, rng.choice(golden))
        elif kind < 8:
            doc = rng.choice(docs)
            for _ in range(rng.randint(1, 3)):
                doc = _mutate_tree(rng, doc)
            raw = json.dumps(doc).encode()
        elif kind == 8:
            raw = json.dumps(_random_json(rng)).encode()
        else:
            raw = rng.randbytes(rng.randrange(64))
        variant = rng.randrange(4)
        if variant == 0:
            try:
                # Text frames: only valid UTF-8 can arrive as str (see the surrogate test).
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                yield raw
        elif variant == 1:
            yield bytearray(raw)
        elif variant == 2:
            yield memoryview(raw)
        else:
            yield raw


FUZZ_COUNT = 30_000

#: Leaks found by this fuzzer that are not fixed yet, as (exception type, innermost Python
#: function), each with a strict-xfail repro test. Empty: every leak found so far is fixed
#: and has a regression test at the end of this module.
KNOWN_LEAKS: dict[tuple[str, str], str] = {}


def _leak_signature(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, traceback.extract_tb(exc.__traceback__)[-1].name


def test_fuzz_decode_events_raises_only_malformed_message() -> None:
    leaks: list[str] = []
    known: dict[tuple[str, str], int] = {}
    decoded = 0
    for frame in _fuzz_inputs(FUZZ_COUNT, seed=20261124):
        try:
            codec.decode_events(frame)
            decoded += 1
        except MalformedMessage:
            pass
        except Exception as exc:
            sig = _leak_signature(exc)
            if sig in KNOWN_LEAKS:
                known[sig] = known.get(sig, 0) + 1
                continue
            raw = bytes(frame, "utf-8") if isinstance(frame, str) else bytes(frame)
            leaks.append(f"input={raw!r}\n{traceback.format_exc()}")
    assert not leaks, f"{len(leaks)} leaked exceptions; first:\n" + "\n".join(leaks[:3])
    # The mutators must not be so destructive that nothing decodes.
    assert decoded > FUZZ_COUNT // 10


_AUDIO_MIMES = st.one_of(
    st.sampled_from(
        [
            "audio/pcm;rate=24000",
            "audio/pcm;rate=16000",
            "audio/pcm",
            "audio/pcm;rate=abc",
            "audio/pcm;rate=0",
            'audio/L16; Rate="8000"',
            "audio/wav",
            "image/png",
        ]
    ),
    st.text(max_size=30).map(lambda s: "audio/" + s),
)
_PARTS = st.builds(
    lambda data, mime, text: (
        T.Part(inline_data=T.Blob(data=data, mime_type=mime)) if text is None else T.Part(text=text)
    ),
    st.one_of(b64_text(), st.text(max_size=12)),
    _AUDIO_MIMES,
    st.none() | st.text(max_size=5),
)


@profile(max_examples=200)
@given(
    st.builds(
        lambda parts, rest: msgspec.structs.replace(
            rest,
            server_content=T.ServerContent(model_turn=T.Content(parts=parts)),
        ),
        st.lists(_PARTS, max_size=4),
        structs(T.ServerMessage),
    )
)
def test_fuzz_typed_messages_raise_only_malformed_message(msg: T.ServerMessage) -> None:
    try:
        codec.decode_events(codec.encode_server(msg))
    except MalformedMessage:
        pass


@profile(max_examples=300)
@given(json_values)
def test_fuzz_random_json_raises_only_malformed_message(value: Any) -> None:
    try:
        codec.decode_events(json.dumps(value).encode())
    except MalformedMessage:
        pass


def test_huge_rate_digits_fall_back_to_the_default_rate() -> None:
    """Regression: a >4300-digit rate used to leak ValueError from int() (fixed in audio)."""
    part = {"inlineData": {"mimeType": "audio/pcm;rate=" + "1" * 5000, "data": "AAAA"}}
    frame = json.dumps({"serverContent": {"modelTurn": {"parts": [part]}}})
    assert codec.decode_events(frame) == [E.ModelAudio(b"\x00\x00\x00", 24000)]


# --------------------------------------------------------------------------- known leaks
# Each case below once let an exception other than MalformedMessage escape decode_events.
# They were found by the fuzzer and are fixed; these tests keep them fixed.


def test_leak_invalid_utf8_inside_json_string() -> None:
    frame = b'{"setupComplete":{"sessionId":"\xff"}}'
    with pytest.raises(MalformedMessage):
        codec.decode_events(frame)


def test_invalid_utf8_outside_strings_or_in_unknown_fields_is_handled() -> None:
    with pytest.raises(MalformedMessage):
        codec.decode_events(b'{"setupComplete":\xff}')
    assert codec.decode_events(b'{"zz":"\xff"}') == []


def test_leak_deep_nesting_raises_recursion_error() -> None:
    depth = 5000
    frame = (
        b'{"serverContent":{"groundingMetadata":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}}"
    )
    with pytest.raises(MalformedMessage):
        codec.decode_events(frame)


def test_leak_str_frame_with_lone_surrogate() -> None:
    with pytest.raises(MalformedMessage):
        codec.decode_events('{"serverContent": {"outputTranscription": {"text": "\ud800"}}}')


# --------------------------------------------------------------------------- audio fast path


@profile(max_examples=200)
@given(pcm=st.binary(min_size=0, max_size=4000), mime_first=st.booleans())
def test_fast_audio_agrees_with_the_general_decoder(pcm: bytes, mime_first: bool) -> None:
    b64 = base64.b64encode(pcm)
    blob = (
        b'{"mimeType":"audio/pcm;rate=24000","data":"' + b64 + b'"}'
        if mime_first
        else b'{"data":"' + b64 + b'","mimeType":"audio/pcm;rate=24000"}'
    )
    frame = b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":' + blob + b"}]}}}"
    assert codec.fast_audio(frame) == pcm
    assert codec.decode_events(frame) == [E.ModelAudio(pcm, 24000)]


@pytest.mark.parametrize(
    "frame",
    [
        # two parts that start and end like one audio part
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"data":"YWJj"}},'
        b'{"inlineData":{"data":"ZA==","mimeType":"audio/pcm;rate=24000"}}]}}}',
        # an escape inside the payload
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"data":"YW\\u004aj",'
        b'"mimeType":"audio/pcm;rate=24000"}}]}}}',
        # another rate, spaces, other fields
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"data":"AAAA",'
        b'"mimeType":"audio/pcm;rate=16000"}}]}}}',
        b'{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "AAAA", '
        b'"mimeType": "audio/pcm;rate=24000"}}]}}}',
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"data":"AAAA",'
        b'"mimeType":"audio/pcm;rate=24000"}}]},"turnComplete":true}}',
    ],
)
def test_fast_audio_declines_anything_else(frame: bytes) -> None:
    assert codec.fast_audio(frame) is None
    codec.decode_events(frame)  # the general path still decodes it


def test_fast_audio_only_takes_bytes() -> None:
    frame = (
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"data":"AAAA",'
        b'"mimeType":"audio/pcm;rate=24000"}}]}}}'
    )
    assert codec.fast_audio(frame) == b"\x00\x00\x00"
    assert codec.fast_audio(bytearray(frame)) is None
    assert codec.fast_audio(frame.decode()) is None


# ------------------------------------------------- fast path vs general path (any layout)

_AUDIO_MIME = "audio/pcm;rate=24000"


def _fast_frame(
    pcm: bytes, text: str | None, text_first: bool, mime_first: bool, layout: str
) -> bytes:
    """A frame the fast path is meant for, in one of several JSON layouts."""
    b64 = base64.b64encode(pcm).decode()
    items = [("mimeType", _AUDIO_MIME), ("data", b64)]
    turn: dict[str, Any] = {
        "modelTurn": {"parts": [{"inlineData": dict(items[:: 1 if mime_first else -1])}]}
    }
    content: dict[str, Any] = dict(turn)
    if text is not None:
        tr = {"outputTranscription": {"text": text}}
        content = {**tr, **turn} if text_first else {**turn, **tr}
    msg = {"serverContent": content}
    if layout == "compact":
        return json.dumps(msg, separators=(",", ":")).encode()
    if layout == "service":  # what the Live API sends: 2-space indent, trailing newline
        return (json.dumps(msg, indent=2) + "\n").encode()
    if layout == "indented-no-newline":
        return json.dumps(msg, indent=2).encode()
    if layout == "utf8":
        return json.dumps(msg, indent=2, ensure_ascii=False).encode()
    if layout == "spaces":
        return json.dumps(msg).encode()
    if layout == "tabs":
        return json.dumps(msg, indent="\t").encode()
    return (" \r\n" + json.dumps(msg, indent=4, separators=(" ,", " : ")) + "\t\n").encode()


_LAYOUTS = ("compact", "service", "indented-no-newline", "utf8", "spaces", "tabs", "odd")


def _expected(pcm: bytes, text: str | None) -> list[E.Event]:
    audio = E.ModelAudio(pcm, 24000)
    return [audio] if not text else [audio, E.OutputTranscription(text)]


@profile(max_examples=300)
@given(
    pcm=st.binary(max_size=600),
    text=st.none() | st.text(max_size=40),
    text_first=st.booleans(),
    mime_first=st.booleans(),
    layout=st.sampled_from(_LAYOUTS),
)
def test_fast_events_agree_with_the_general_decoder(
    pcm: bytes, text: str | None, text_first: bool, mime_first: bool, layout: str
) -> None:
    frame = _fast_frame(pcm, text, text_first, mime_first, layout)
    general = codec.decode_events(frame)
    assert general == _expected(pcm, text)
    fast = codec.fast_events(frame)
    assert fast is None or fast == general
    audio = codec.fast_audio(frame)
    assert audio is None or (text is None and audio == pcm)
    # The layouts the fast path exists for always take it (unless JSON needs an escape).
    plain = text is None or json.dumps(text, ensure_ascii=layout != "utf8")[1:-1] == text
    if layout in ("compact", "service", "indented-no-newline", "utf8") and plain:
        assert fast == general
        assert (audio is not None) == (text is None)


@profile(max_examples=400)
@given(
    pcm=st.binary(max_size=60),
    text=st.none() | st.text(alphabet='ab é"\\\n', max_size=6),
    text_first=st.booleans(),
    mime_first=st.booleans(),
    layout=st.sampled_from(("compact", "service", "utf8")),
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.sampled_from(("drop", "insert", "replace")),
            st.binary(min_size=1, max_size=2),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_fast_events_never_disagree_on_mangled_frames(
    pcm: bytes,
    text: str | None,
    text_first: bool,
    mime_first: bool,
    layout: str,
    edits: list[tuple[int, str, bytes]],
) -> None:
    frame = bytearray(_fast_frame(pcm, text, text_first, mime_first, layout))
    for pos, op, chunk in edits:
        i = pos % (len(frame) + 1)
        if op == "drop":
            del frame[i : i + len(chunk)]
        elif op == "insert":
            frame[i:i] = chunk
        else:
            frame[i : i + len(chunk)] = chunk
    data = bytes(frame)
    fast = codec.fast_events(data)
    try:
        general = codec.decode_events(data)
    except MalformedMessage:
        assert fast is None, data
        return
    assert fast is None or fast == general, data


@pytest.mark.parametrize(
    "frame",
    [
        # escapes in the transcript: the JSON parser's job
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000",'
        b'"data":"AAAA"}}]},"outputTranscription":{"text":"a\\"b"}}}',
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000",'
        b'"data":"AAAA"}}]},"outputTranscription":{"text":"caf\\u00e9"}}}',
        # a raw control character (invalid JSON) and invalid UTF-8 in the transcript
        b'{"serverContent":{"outputTranscription":{"text":"a\tb"},"modelTurn":{"parts":[{"inlineData":'
        b'{"mimeType":"audio/pcm;rate=24000","data":"AAAA"}}]}}}',
        b'{"serverContent":{"outputTranscription":{"text":"a\xffb"},"modelTurn":{"parts":[{"inlineData":'
        b'{"mimeType":"audio/pcm;rate=24000","data":"AAAA"}}]}}}',
        # transcript with more fields
        b'{"serverContent":{"outputTranscription":{"text":"ab","finished":true},"modelTurn":{"parts":'
        b'[{"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"AAAA"}}]}}}',
        b'{"serverContent":{"outputTranscription":{"text":"a","x":"b"},"modelTurn":{"parts":'
        b'[{"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"AAAA"}}]}}}',
        # two newlines after the frame, a second frame glued on
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000",'
        b'"data":"AAAA"}}]}}}\n\n',
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000",'
        b'"data":"AAAA"}}]}}}{}',
        # URL-safe base64 (the general path accepts it)
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000",'
        b'"data":"-_-_"}}]}}}',
    ],
)
def test_fast_events_leave_odd_frames_to_the_general_decoder(frame: bytes) -> None:
    assert codec.fast_events(frame) is None
    assert codec.fast_audio(frame) is None
    with contextlib.suppress(MalformedMessage):
        codec.decode_events(frame)


def test_fast_path_templates_are_frames_the_general_decoder_reads() -> None:
    for layout in codec._LAYOUTS:
        audio_first, head_t, text_first = layout
        for head, start, tail_nl, tail, middle, tail2, tail2_nl in audio_first:
            assert start == len(head)
            for end in (tail, tail_nl):
                assert codec.decode_events(head + b"AAAA" + end) == [E.ModelAudio(b"\0\0\0")]
            for end in (tail2, tail2_nl):
                frame = head + b"AAAA" + middle + b"hi" + end
                assert codec.decode_events(frame) == _expected(b"\0\0\0", "hi")
        for middle, tail, tail_nl in text_first:
            for end in (tail, tail_nl):
                frame = head_t + b"hi" + middle + b"AAAA" + end
                assert codec.decode_events(frame) == _expected(b"\0\0\0", "hi")
                assert codec.fast_events(frame) == _expected(b"\0\0\0", "hi")


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("newline", [False, True])
def test_a_frame_that_only_starts_and_ends_like_the_audio_template_is_decoded_in_full(
    indent: int | None, newline: bool
) -> None:
    # Two audio parts: the frame starts with the one-part template's head and ends with
    # its tail; the fast path must not take the middle for one payload.
    blob = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAAA"}}
    obj = {"serverContent": {"modelTurn": {"parts": [blob, blob]}}}
    sep = (",", ":") if indent is None else None
    frame = (json.dumps(obj, indent=indent, separators=sep) + ("\n" if newline else "")).encode()
    assert codec.fast_audio(frame) is None
    assert codec.fast_events(frame) is None
    audio = [e for e in codec.decode_events(frame) if isinstance(e, E.ModelAudio)]
    assert b"".join(e.data for e in audio) == b"\0\0\0" * 2


def test_fast_path_reads_the_recorded_service_audio_frame(
    load_frame: Callable[[str], bytes],
) -> None:
    frame = load_frame("server_content_audio")
    assert frame.startswith(b"{\n  ")
    assert codec.fast_events(frame) == codec.decode_events(frame) == [E.ModelAudio(PCM, 24000)]
