"""Conformance against the official SDK's pydantic models (google-genai, ``extra="forbid"``).

Every client frame our encoder produces must validate as
``google.genai.types.LiveClientMessage``, and our golden server frames (those holding only
fields the SDK knows) must validate as ``LiveServerMessage``. The oracle forbids unknown
fields, so a misspelt or misplaced key fails here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from gemini_live import codec
from gemini_live import types as T

genai_types = pytest.importorskip("google.genai.types")

FRAMES_DIR = Path(__file__).parent / "frames"

PCM = b"\x01\x00\xff\xff\xfb\xff" * 8  # '+' and '/' appear in its base64
JPEG = b"\xff\xd8\xff\xe0fakejpeg"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "


# --------------------------------------------------------------------------- oracle helpers


def strip_realtime_input_config(frame: bytes) -> dict[str, Any]:
    """Parse a client frame and drop ``setup.realtimeInputConfig``.

    The oracle's ``LiveClientSetup`` has no ``realtimeInputConfig`` field: the SDK takes it
    from ``LiveConnectConfig`` and writes it onto the wire in its converters
    (``_LiveConnectConfig_to_mldev``), so the pydantic model would reject a key that the
    service does accept. This is the ONLY field removed before validation.
    """
    wire: dict[str, Any] = json.loads(frame)
    setup = wire.get("setup")
    if isinstance(setup, dict):
        setup.pop("realtimeInputConfig", None)
    return wire


def assert_sdk_accepts_client_frame(frame: bytes) -> None:
    wire = strip_realtime_input_config(frame)
    genai_types.LiveClientMessage.model_validate_json(json.dumps(wire))


def as_sdk_sees_server_frame(frame: bytes) -> dict[str, Any]:
    """Apply the renames the SDK's converters make before ``model_validate``.

    * ``voiceActivity.type`` -> ``voiceActivityType`` (both backends);
    * Vertex ``candidatesTokenCount`` / ``candidatesTokensDetails`` -> ``response*``
      (``_UsageMetadata_from_vertex``).
    """
    wire: dict[str, Any] = json.loads(frame)
    va = wire.get("voiceActivity")
    if isinstance(va, dict) and "type" in va:
        va["voiceActivityType"] = va.pop("type")
    usage = wire.get("usageMetadata")
    if isinstance(usage, dict):
        for ours, theirs in (
            ("candidatesTokenCount", "responseTokenCount"),
            ("candidatesTokensDetails", "responseTokensDetails"),
        ):
            if ours in usage:
                usage[theirs] = usage.pop(ours)
    return wire


# --------------------------------------------------------------------------- rich setup


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def rich_setup() -> T.Setup:
    """A setup that sets every field of Setup and of every config nested in it."""
    replicated = T.ReplicatedVoiceConfig(
        mime_type="audio/wav",
        voice_sample_audio=_b64(WAV),
        consent_audio=_b64(WAV),
        voice_consent_signature=T.VoiceConsentSignature(signature="sig-1"),
    )
    speech = T.SpeechConfig(
        voice_config=T.VoiceConfig(
            prebuilt_voice_config=T.PrebuiltVoiceConfig(voice_name="Kore"),
            replicated_voice_config=replicated,
        ),
        language_code="en-US",
        multi_speaker_voice_config=T.MultiSpeakerVoiceConfig(
            speaker_voice_configs=[
                T.SpeakerVoiceConfig(
                    speaker="Alice",
                    voice_config=T.VoiceConfig(
                        prebuilt_voice_config=T.PrebuiltVoiceConfig(voice_name="Puck")
                    ),
                ),
                T.SpeakerVoiceConfig(
                    speaker="Bob",
                    voice_config=T.VoiceConfig(replicated_voice_config=replicated),
                ),
                T.SpeakerVoiceConfig(
                    speaker="Carol",
                    voice_config=T.VoiceConfig(voice="voices/custom-carol"),
                ),
            ]
        ),
    )
    generation = T.GenerationConfig(
        response_modalities=[T.Modality.AUDIO],
        temperature=0.7,
        top_p=0.95,
        top_k=40.0,
        max_output_tokens=1024,
        candidate_count=1,
        seed=42,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        speech_config=speech,
        thinking_config=T.ThinkingConfig(
            include_thoughts=True, thinking_budget=512, thinking_level=T.ThinkingLevel.LOW
        ),
        media_resolution=T.MediaResolution.LOW,
        enable_affective_dialog=True,
        translation_config=T.TranslationConfig(
            target_language_code="de-DE", echo_target_language=True
        ),
    )
    weather = T.FunctionDeclaration(
        name="get_weather",
        description="Current weather for a city.",
        parameters_json_schema={
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        response_json_schema={"type": "object", "properties": {"tempC": {"type": "number"}}},
        behavior=T.Behavior.NON_BLOCKING,
    )
    lights = T.FunctionDeclaration(
        name="turn_on_lights",
        description="OpenAPI-style schema variant.",
        parameters={"type": "OBJECT", "properties": {"room": {"type": "STRING"}}},
        response={"type": "OBJECT", "properties": {"ok": {"type": "BOOLEAN"}}},
        behavior=T.Behavior.BLOCKING,
    )
    transcription = T.AudioTranscriptionConfig(
        language_codes=["en-US", "de-DE"],
        custom_vocabulary=["Gemini", "msgspec"],
        word_timestamp=True,
        diarization=True,
        mode="SMART",
        language_auto={},
        language_hints=T.LanguageHints(language_codes=["en"]),
        adaptation_phrases=["Gemini Live"],
        source_text="reference",
    )
    return T.Setup(
        model="models/gemini-3.8-live",
        generation_config=generation,
        system_instruction=T.Content(
            role="user", parts=[T.Part(text="You are terse."), T.Part(text="Answer in German.")]
        ),
        tools=[
            T.Tool.functions(weather, lights),
            T.Tool(google_search=T.GoogleSearch(exclude_domains=["example.com"])),
            T.Tool.code_execution_tool(),
            T.Tool.url_context_tool(),
            T.Tool(google_maps={}),
        ],
        realtime_input_config=T.RealtimeInputConfig(
            automatic_activity_detection=T.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=T.StartSensitivity.LOW,
                end_of_speech_sensitivity=T.EndSensitivity.HIGH,
                prefix_padding_ms=20,
                silence_duration_ms=500,
            ),
            activity_handling=T.ActivityHandling.NO_INTERRUPTION,
            turn_coverage=T.TurnCoverage.ALL_INPUT,
            interim_transcript_timestamp_enabled=True,
        ),
        session_resumption=T.SessionResumptionConfig(handle="h-1", transparent=True),
        context_window_compression=T.ContextWindowCompression(
            trigger_tokens=32000, sliding_window=T.SlidingWindow(target_tokens=16000)
        ),
        input_audio_transcription=transcription,
        output_audio_transcription=transcription,
        proactivity=T.ProactivityConfig(proactive_audio=True, proactive_video=False),
        explicit_vad_signal=True,
        history_config=T.HistoryConfig(initial_history_in_client_content=True),
        avatar_config=T.AvatarConfig(
            avatar_name="Ava",
            customized_avatar=T.CustomizedAvatar(
                image_mime_type="image/jpeg", image_data=_b64(JPEG)
            ),
            audio_bitrate_bps=64000,
            video_bitrate_bps=1_000_000,
        ),
        safety_settings=[
            T.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_ONLY_HIGH"),
            T.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_NONE"),
        ],
        labels={"team": "voice"},
    )


def rich_history() -> list[T.Content]:
    """History turns that use every Part kind (and every field of each)."""
    return [
        T.Content(
            role="user",
            parts=[
                T.Part(text="What is in this picture?"),
                T.Part(
                    inline_data=T.Blob(
                        data=_b64(JPEG), mime_type="image/jpeg", display_name="cat.jpg"
                    )
                ),
                T.Part(
                    file_data=T.FileData(
                        file_uri="gs://bucket/clip.mp4", mime_type="video/mp4", display_name="clip"
                    ),
                    video_metadata={"startOffset": "1s", "endOffset": "2.500s", "fps": 1.0},
                ),
            ],
        ),
        T.Content(
            role="model",
            parts=[
                T.Part(text="thinking...", thought=True, thought_signature=_b64(b"sig")),
                T.Part(
                    function_call=T.FunctionCall(
                        id="call-1",
                        name="get_weather",
                        args={"city": "Paris"},
                        partial_args=[{"jsonPath": "$.city", "stringValue": "Par"}],
                        will_continue=False,
                    )
                ),
                T.Part(executable_code=T.ExecutableCode(code="print(1)", language="PYTHON")),
                T.Part(
                    code_execution_result=T.CodeExecutionResult(outcome="OUTCOME_OK", output="1")
                ),
            ],
        ),
        T.Content(
            role="user",
            parts=[
                T.Part(
                    function_response=T.FunctionResponse(
                        id="call-1",
                        name="get_weather",
                        response={"output": {"tempC": 18}},
                        scheduling=T.FunctionResponseScheduling.SILENT,
                        will_continue=False,
                        parts=[{"inlineData": {"mimeType": "image/png", "data": _b64(b"png")}}],
                    )
                )
            ],
        ),
    ]


def client_frames() -> dict[str, bytes]:
    """Every client frame kind, produced by our encoders."""
    enc = codec.encode_client
    msg = T.ClientMessage
    ri = T.RealtimeInput
    frames = {
        "setup_rich": enc(msg(setup=rich_setup())),
        "setup_minimal": enc(msg(setup=T.Setup(model="models/gemini-3.8-live"))),
        "realtime_audio": enc(msg(realtime_input=ri(audio=T.Blob.of(PCM, "audio/pcm;rate=16000")))),
        "realtime_audio_fast_path": codec.AudioFrameEncoder(16000).encode(PCM),
        "realtime_video": enc(msg(realtime_input=ri(video=T.Blob.of(JPEG, "image/jpeg")))),
        "realtime_text": enc(msg(realtime_input=ri(text="hello there"))),
        "realtime_audio_stream_end": enc(msg(realtime_input=ri(audio_stream_end=True))),
        "realtime_activity_start": enc(msg(realtime_input=ri(activity_start=T.ActivityStart()))),
        "realtime_activity_end": enc(msg(realtime_input=ri(activity_end=T.ActivityEnd()))),
        "client_content": enc(
            msg(client_content=T.ClientContent(turns=rich_history(), turn_complete=True))
        ),
        "client_content_text": enc(
            msg(client_content=T.ClientContent(turns=[T.Content.text("Hi")], turn_complete=False))
        ),
        "tool_response": enc(
            msg(
                tool_response=T.ToolResponse(
                    function_responses=[
                        T.FunctionResponse(
                            id="call-1",
                            name="get_weather",
                            response={"output": {"tempC": 18}},
                            scheduling=T.FunctionResponseScheduling.WHEN_IDLE,
                            will_continue=True,
                        ),
                        T.FunctionResponse(
                            id="call-2",
                            name="get_time",
                            response={},
                            scheduling=T.FunctionResponseScheduling.INTERRUPT,
                            will_continue=False,
                        ),
                    ]
                )
            )
        ),
        "context_update": enc(
            msg(
                context_update=T.ContextUpdate(
                    system_instruction=T.Content.text("New rules."),
                    tools=T.ToolsUpdate(
                        tools=[
                            T.Tool.functions(T.FunctionDeclaration(name="f")),
                            T.Tool.google_search_tool(),
                        ]
                    ),
                )
            )
        ),
        "context_update_clear_tools": enc(
            msg(context_update=T.ContextUpdate(tools=T.ToolsUpdate(tools=[])))
        ),
        "context_update_system_instruction_only": enc(
            msg(context_update=T.ContextUpdate(system_instruction=T.Content.text("Be brief.")))
        ),
    }
    return frames


CLIENT_FRAMES = client_frames()


@pytest.mark.parametrize("name", sorted(CLIENT_FRAMES))
def test_sdk_accepts_client_frame(name: str) -> None:
    assert_sdk_accepts_client_frame(CLIENT_FRAMES[name])


def test_clear_tools_is_an_empty_list_on_the_wire() -> None:
    assert json.loads(CLIENT_FRAMES["context_update_clear_tools"]) == {
        "contextUpdate": {"tools": {"tools": []}}
    }
    parsed = genai_types.LiveClientMessage.model_validate_json(
        CLIENT_FRAMES["context_update_clear_tools"]
    )
    assert parsed.context_update.tools.tools == []


def test_sdk_sees_the_same_values() -> None:
    """Spot-check that the oracle reads our values where we meant them to go."""
    parsed = genai_types.LiveClientMessage.model_validate_json(
        json.dumps(strip_realtime_input_config(CLIENT_FRAMES["setup_rich"]))
    )
    setup = parsed.setup
    gen = setup.generation_config
    assert gen.speech_config.voice_config.prebuilt_voice_config.voice_name == "Kore"
    assert gen.speech_config.voice_config.replicated_voice_config.voice_sample_audio == WAV
    assert gen.enable_affective_dialog is True
    assert gen.translation_config.target_language_code == "de-DE"
    assert gen.thinking_config.thinking_budget == 512
    assert setup.session_resumption.handle == "h-1"
    assert setup.context_window_compression.sliding_window.target_tokens == 16000
    assert setup.tools[0].function_declarations[0].behavior == "NON_BLOCKING"
    assert setup.avatar_config.customized_avatar.image_data == JPEG

    audio = genai_types.LiveClientMessage.model_validate_json(CLIENT_FRAMES["realtime_audio"])
    assert audio.realtime_input.audio.data == PCM
    fast = genai_types.LiveClientMessage.model_validate_json(
        CLIENT_FRAMES["realtime_audio_fast_path"]
    )
    assert fast.realtime_input.audio == audio.realtime_input.audio

    tool = genai_types.LiveClientMessage.model_validate_json(CLIENT_FRAMES["tool_response"])
    first = tool.tool_response.function_responses[0]
    assert (first.scheduling, first.will_continue) == ("WHEN_IDLE", True)


def test_realtime_input_config_is_the_only_field_stripped() -> None:
    wire = json.loads(CLIENT_FRAMES["setup_rich"])
    stripped = strip_realtime_input_config(CLIENT_FRAMES["setup_rich"])
    assert set(wire["setup"]) - set(stripped["setup"]) == {"realtimeInputConfig"}
    # Without stripping, the oracle rejects exactly that key.
    with pytest.raises(Exception, match="realtimeInputConfig"):
        genai_types.LiveClientMessage.model_validate_json(CLIENT_FRAMES["setup_rich"])


# --------------------------------------------------------------------------- field coverage

#: Fields no conformance frame sets: the deprecated ``mediaChunks`` (``encode_client``
#: refuses it). ``realtimeInputConfig`` *is* set in ``rich_setup`` but not validated (see
#: :func:`strip_realtime_input_config`).
NOT_IN_CONFORMANCE_FRAMES = {(T.RealtimeInput, "media_chunks")}


def _set_fields(obj: Any, info: mi.Type) -> Iterator[tuple[type[msgspec.Struct], str]]:
    if isinstance(info, mi.StructType):
        for field in info.fields:
            value = getattr(obj, field.name)
            if value is not T.UNSET:
                yield info.cls, field.name
                yield from _set_fields(value, field.type)
    elif isinstance(info, mi.ListType):
        for item in obj:
            yield from _set_fields(item, info.item_type)
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            if isinstance(member, mi.StructType) and isinstance(obj, member.cls):
                yield from _set_fields(obj, member)


def _all_fields(
    info: mi.Type, seen: set[type[msgspec.Struct]]
) -> Iterator[tuple[type[msgspec.Struct], str]]:
    if isinstance(info, mi.StructType):
        if info.cls in seen:
            return
        seen.add(info.cls)
        for field in info.fields:
            yield info.cls, field.name
            yield from _all_fields(field.type, seen)
    elif isinstance(info, mi.ListType):
        yield from _all_fields(info.item_type, seen)
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            yield from _all_fields(member, seen)


def test_conformance_frames_use_every_client_field() -> None:
    """A field added to any client type fails here until a frame above exercises it."""
    info = mi.type_info(T.ClientMessage)
    used: set[tuple[type[msgspec.Struct], str]] = set()
    for frame in CLIENT_FRAMES.values():
        used |= set(_set_fields(codec.decode_client(frame), info))
    missing = set(_all_fields(info, set())) - used - NOT_IN_CONFORMANCE_FRAMES
    assert not missing, sorted(f"{cls.__name__}.{name}" for cls, name in missing)


# --------------------------------------------------------------------------- server frames

#: Golden frames the oracle cannot take, and why.
SDK_UNKNOWN_SERVER_FRAMES = {
    "unknown_top_level_field": "has a key no SDK knows (by design)",
    "unknown_nested_field": "has nested keys no SDK knows (by design)",
    "unknown_enum_value": "enum values unknown to the SDK warn (filterwarnings=error)",
    "error_body": "the SDK has no `error` field (its converter raises APIError instead)",
}
SERVER_FRAMES = sorted(p.stem for p in FRAMES_DIR.glob("*.json"))


@pytest.mark.parametrize("name", [n for n in SERVER_FRAMES if n not in SDK_UNKNOWN_SERVER_FRAMES])
def test_sdk_accepts_golden_server_frame(name: str) -> None:
    wire = as_sdk_sees_server_frame((FRAMES_DIR / f"{name}.json").read_bytes())
    genai_types.LiveServerMessage.model_validate_json(json.dumps(wire))


@pytest.mark.parametrize("name", ["unknown_top_level_field", "unknown_nested_field", "error_body"])
def test_sdk_rejects_frames_with_unknown_keys(name: str) -> None:
    """Proves the oracle is strict (so the passing frames above mean something)."""
    wire = as_sdk_sees_server_frame((FRAMES_DIR / f"{name}.json").read_bytes())
    with pytest.raises(Exception, match="Extra inputs are not permitted"):
        genai_types.LiveServerMessage.model_validate_json(json.dumps(wire))


def test_sdk_reads_golden_values_like_we_do() -> None:
    def load(name: str) -> Any:
        wire = as_sdk_sees_server_frame((FRAMES_DIR / f"{name}.json").read_bytes())
        return genai_types.LiveServerMessage.model_validate_json(json.dumps(wire))

    assert (
        load(
            "session_resumption_update_index_string"
        ).session_resumption_update.last_consumed_client_message_index
        == 17
    )
    assert load("usage_int64_strings").usage_metadata.prompt_token_count == 9007199254740993
    assert load("voice_activity").voice_activity.voice_activity_type == "ACTIVITY_START"
    audio = load("server_content_audio").server_content.model_turn.parts[0].inline_data.data
    assert audio == bytes(range(64))
