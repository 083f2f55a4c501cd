"""Wire types: generic round-trip of every Struct, naming rules, and the small helpers."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemini_live import types as T
from gemini_live.types import UNSET
from strategies import b64_text, profile, structs, wire_struct_types

WIRE_TYPES = wire_struct_types()
_CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")
#: The only wire keys that are not the lowerCamelCase form of the Python field name.
_RENAMED: dict[tuple[type[msgspec.Struct], str], str] = {
    (T.VoiceActivity, "voice_activity_type"): "type"
}

_decoders: dict[type[msgspec.Struct], msgspec.json.Decoder[Any]] = {}


def _lax_decoder(cls: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls, strict=False)
    return dec


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _check_wire_json(obj: Any, value: Any, info: mi.Type, path: str = "$") -> None:
    """Walk ``value`` (parsed JSON) alongside ``obj`` and its type.

    For every Struct: UNSET fields are absent (never ``null``), set fields are present
    under their camelCase key, and no other key appears. Free-form JSON is not checked.
    """
    if isinstance(info, mi.StructType):
        assert isinstance(value, dict), path
        fields = msgspec.structs.fields(info.cls)
        by_name = {f.name: f for f in info.fields}
        assert set(value) <= {f.encode_name for f in fields}, path
        for field in fields:
            attr = getattr(obj, field.name)
            key = field.encode_name
            if attr is UNSET:
                assert key not in value, f"{path}.{key}: UNSET field was encoded"
                continue
            if field.default is not msgspec.NODEFAULT and attr == field.default:
                continue  # omit_defaults may drop it
            assert key in value, f"{path}.{key} missing"
            assert value[key] is not None, f"{path}.{key} is null"
            _check_wire_json(attr, value[key], by_name[field.name].type, f"{path}.{key}")
    elif isinstance(info, mi.ListType):
        assert isinstance(value, list), path
        assert len(value) == len(obj), path
        for i, (o, v) in enumerate(zip(obj, value, strict=True)):
            _check_wire_json(o, v, info.item_type, f"{path}[{i}]")
    elif isinstance(info, mi.DictType):
        assert isinstance(value, dict), path
        for k, v in obj.items():
            _check_wire_json(v, value[k], info.value_type, f"{path}.{k}")
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            if isinstance(member, mi.StructType) and isinstance(obj, member.cls):
                _check_wire_json(obj, value, member, path)


# --------------------------------------------------------------------------- inventory


def test_every_wire_struct_is_exported() -> None:
    for cls in WIRE_TYPES:
        assert cls.__name__ in T.__all__, cls
        assert getattr(T, cls.__name__) is cls


def test_inventory_covers_both_sides() -> None:
    names = {c.__name__ for c in WIRE_TYPES}
    assert {"ClientMessage", "Setup", "RealtimeInput", "ContextUpdate", "ToolResponse"} <= names
    assert {"ServerMessage", "ServerContent", "UsageMetadata", "VoiceActivity", "GoAway"} <= names
    assert len(WIRE_TYPES) >= 50


def _reachable(info: mi.Type, out: set[type[msgspec.Struct]]) -> None:
    if isinstance(info, mi.StructType):
        if info.cls in out:
            return
        out.add(info.cls)
        for f in info.fields:
            _reachable(f.type, out)
    elif isinstance(info, mi.ListType):
        _reachable(info.item_type, out)
    elif isinstance(info, mi.DictType):
        _reachable(info.value_type, out)
    elif isinstance(info, mi.UnionType):
        for t in info.types:
            _reachable(t, out)


def test_every_struct_reachable_from_an_envelope_is_a_wire_struct() -> None:
    seen: set[type[msgspec.Struct]] = set()
    _reachable(mi.type_info(T.ClientMessage), seen)
    _reachable(mi.type_info(T.ServerMessage), seen)
    assert seen <= set(WIRE_TYPES)
    # Everything in the inventory is used by one of the two envelopes.
    assert set(WIRE_TYPES) - seen == set()


@pytest.mark.parametrize("cls", WIRE_TYPES, ids=lambda c: c.__name__)
def test_field_names_are_camel_case_and_optional_fields_default_to_unset(
    cls: type[msgspec.Struct],
) -> None:
    for field in msgspec.structs.fields(cls):
        expected = _RENAMED.get((cls, field.name), _camel(field.name))
        assert field.encode_name == expected, (cls, field.name)
        if (cls, field.name) not in _RENAMED:
            assert _CAMEL.match(field.encode_name), (cls, field.encode_name)
        if not field.required and (cls, field.name) not in _PROTO3_ZERO:
            assert field.default is UNSET, (cls, field.name)


#: Fields whose absence on the wire means 0 (proto3 default), not "unset".
_PROTO3_ZERO = {(T.ModalityTokenCount, "token_count")}


def test_token_count_absent_is_zero() -> None:
    # A real Vertex frame leaves `tokenCount` out for a zero count; sums must still work.
    usage = msgspec.json.decode(
        b'{"promptTokensDetails": [{"modality": "AUDIO"}, {"modality": "TEXT", "tokenCount": 4}]}',
        type=T.UsageMetadata,
    )
    assert isinstance(usage.prompt_tokens_details, list)
    assert sum(d.token_count for d in usage.prompt_tokens_details) == 4


def test_voice_config_voice_id_on_the_wire() -> None:
    vc = T.VoiceConfig(voice="voices/my-custom-voice")
    assert msgspec.json.encode(vc) == b'{"voice":"voices/my-custom-voice"}'
    assert msgspec.json.decode(b'{"voice":"Kore"}', type=T.VoiceConfig).voice == "Kore"


def test_voice_activity_wire_key_is_type() -> None:
    raw = msgspec.json.encode(T.VoiceActivity(voice_activity_type="ACTIVITY_END"))
    assert raw == b'{"type":"ACTIVITY_END"}'
    assert msgspec.json.decode(raw, type=T.VoiceActivity).voice_activity_type == "ACTIVITY_END"


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("cls", WIRE_TYPES, ids=lambda c: c.__name__)
@profile(max_examples=30)
@given(data=st.data())
def test_round_trip(cls: type[msgspec.Struct], data: st.DataObject) -> None:
    obj = data.draw(structs(cls))
    raw = msgspec.json.encode(obj)
    assert _lax_decoder(cls).decode(raw) == obj
    _check_wire_json(obj, json.loads(raw), mi.type_info(cls))


def _minimal(info: mi.Type) -> Any:
    """The smallest value of a type: required fields only, empty containers."""
    if isinstance(info, mi.StructType):
        return info.cls(**{f.name: _minimal(f.type) for f in info.fields if f.required})
    if isinstance(info, mi.UnionType):
        return _minimal(info.types[0])
    simple: dict[type[mi.Type], Any] = {
        mi.StrType: "",
        mi.IntType: 0,
        mi.FloatType: 0.0,
        mi.BoolType: False,
        mi.ListType: [],
        mi.DictType: {},
    }
    return simple[type(info)]


@pytest.mark.parametrize("cls", WIRE_TYPES, ids=lambda c: c.__name__)
def test_minimal_instance_encodes_only_required_fields(cls: type[msgspec.Struct]) -> None:
    obj = _minimal(mi.type_info(cls))
    raw = msgspec.json.encode(obj)
    assert set(json.loads(raw)) == {
        f.encode_name for f in msgspec.structs.fields(cls) if f.required
    }
    assert b"null" not in raw


@pytest.mark.parametrize("cls", WIRE_TYPES, ids=lambda c: c.__name__)
@profile(max_examples=10)
@given(data=st.data())
def test_unknown_fields_are_ignored(cls: type[msgspec.Struct], data: st.DataObject) -> None:
    obj = data.draw(structs(cls))
    wire = json.loads(msgspec.json.encode(obj))
    wire["zzFutureField"] = {"nested": [1, "x", None]}
    assert _lax_decoder(cls).decode(json.dumps(wire)) == obj


def test_int64_accepted_as_numeric_string() -> None:
    dec = _lax_decoder(T.ContextWindowCompression)
    got = dec.decode(b'{"triggerTokens":"32000","slidingWindow":{"targetTokens":"16000"}}')
    assert got == T.ContextWindowCompression(
        trigger_tokens=32000, sliding_window=T.SlidingWindow(target_tokens=16000)
    )


def test_presence_activated_empty_configs_encode_as_empty_objects() -> None:
    setup = T.Setup(
        model="models/x",
        session_resumption=T.SessionResumptionConfig(),
        input_audio_transcription=T.AudioTranscriptionConfig(),
        context_window_compression=T.ContextWindowCompression(sliding_window=T.SlidingWindow()),
    )
    assert json.loads(msgspec.json.encode(setup)) == {
        "model": "models/x",
        "sessionResumption": {},
        "inputAudioTranscription": {},
        "contextWindowCompression": {"slidingWindow": {}},
    }


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("50s", 50.0),
        ("9.500s", 9.5),
        ("0s", 0.0),
        ("3.2s", 3.2),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("-1.25s", -1.25),
        (" 7 s ", 7.0),
        ("12", 12.0),
        (3, 3.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    got = T.parse_duration(text)
    assert isinstance(got, float)
    assert got == seconds


@pytest.mark.parametrize("bad", ["", "s", "5ms", "1e3s", "abc", "5m", ".", "--1s", True, None, []])
def test_parse_duration_rejects(bad: Any) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        T.parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(50, "50s"), (9.5, "9.5s"), (0, "0s"), (0.0, "0s"), (1e-9, "0.000000001s"), (-2.5, "-2.5s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert T.format_duration(seconds) == text


@profile(max_examples=200)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_duration_round_trip(seconds: float) -> None:
    text = T.format_duration(seconds)
    assert text.endswith("s")
    assert math.isclose(T.parse_duration(text), seconds, abs_tol=1e-9)


# --------------------------------------------------------------------------- blobs


def test_blob_of_uses_standard_alphabet() -> None:
    raw = b"\xff\xfe\xfd\xfb"
    blob = T.Blob.of(raw, "audio/pcm;rate=16000")
    assert blob == T.Blob(data="//79+w==", mime_type="audio/pcm;rate=16000")
    assert blob.decoded() == raw
    assert T.Blob.of(bytearray(raw), "x").data == blob.data
    assert T.Blob.of(memoryview(raw), "x").data == blob.data


@pytest.mark.parametrize(
    "text",
    ["//79+w==", "__79-w==", "__79-w", "//79+w"],
    ids=["std", "url", "url-nopad", "std-nopad"],
)
def test_blob_decoded_accepts_both_alphabets(text: str) -> None:
    assert T.Blob(data=text).decoded() == b"\xff\xfe\xfd\xfb"


@profile(max_examples=200)
@given(st.binary(max_size=64), st.booleans(), st.booleans())
def test_b64decode_any_round_trip(raw: bytes, urlsafe: bool, strip_padding: bool) -> None:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    if strip_padding:
        text = text.rstrip("=")
    assert T.b64decode_any(text) == raw
    assert T.b64decode_any(text.encode()) == raw
    assert T.Blob(data=text).decoded() == raw


@profile(max_examples=50)
@given(b64_text())
def test_b64_text_strategy_is_decodable(text: str) -> None:
    T.b64decode_any(text)


@pytest.mark.parametrize("bad", ["a", "!!!!", "ab$d", "é", "A===="])
def test_b64decode_any_rejects_non_base64(bad: str) -> None:
    with pytest.raises(ValueError):
        T.b64decode_any(bad)


# --------------------------------------------------------------------------- usage


def test_usage_response_tokens_gemini_api() -> None:
    usage = T.UsageMetadata(
        response_token_count=5,
        response_tokens_details=[T.ModalityTokenCount(modality="AUDIO", token_count=5)],
    )
    assert usage.response_tokens() == 5
    assert usage.response_details() == [T.ModalityTokenCount(modality="AUDIO", token_count=5)]


def test_usage_response_tokens_vertex() -> None:
    usage = T.UsageMetadata(
        candidates_token_count=7,
        candidates_tokens_details=[T.ModalityTokenCount(modality="TEXT", token_count=7)],
    )
    assert usage.response_tokens() == 7
    assert usage.response_details() == [T.ModalityTokenCount(modality="TEXT", token_count=7)]


def test_usage_response_tokens_absent_and_zero() -> None:
    assert T.UsageMetadata().response_tokens() is None
    assert T.UsageMetadata().response_details() == []
    assert T.UsageMetadata(response_token_count=0, candidates_token_count=3).response_tokens() == 0


# --------------------------------------------------------------------------- builders


def test_speech_config_voice() -> None:
    cfg = T.SpeechConfig.voice("Kore")
    assert json.loads(msgspec.json.encode(cfg)) == {
        "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}
    }
    cfg = T.SpeechConfig.voice("Puck", language_code="de-DE")
    assert cfg.language_code == "de-DE"
    assert json.loads(msgspec.json.encode(cfg))["languageCode"] == "de-DE"


def test_tool_constructors() -> None:
    decl = T.FunctionDeclaration(name="f", behavior=T.Behavior.NON_BLOCKING)
    enc = msgspec.json.encode
    assert enc(T.Tool.functions(decl)) == (
        b'{"functionDeclarations":[{"name":"f","behavior":"NON_BLOCKING"}]}'
    )
    assert enc(T.Tool.functions()) == b'{"functionDeclarations":[]}'
    assert enc(T.Tool.google_search_tool()) == b'{"googleSearch":{}}'
    assert enc(T.Tool.code_execution_tool()) == b'{"codeExecution":{}}'
    assert enc(T.Tool.url_context_tool()) == b'{"urlContext":{}}'


def test_content_text() -> None:
    assert T.Content.text("hi") == T.Content(parts=[T.Part(text="hi")], role="user")
    assert T.Content.text("yo", role="model").role == "model"


def test_enums_are_strings_on_the_wire() -> None:
    cfg = T.GenerationConfig(
        response_modalities=[T.Modality.AUDIO], media_resolution=T.MediaResolution.LOW
    )
    assert msgspec.json.encode(cfg) == (
        b'{"responseModalities":["AUDIO"],"mediaResolution":"MEDIA_RESOLUTION_LOW"}'
    )
    assert T.InteractionStatus("IDLE") == "IDLE"
    assert T.VoiceActivityType.START.value == "ACTIVITY_START"
