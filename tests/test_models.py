"""The capability table and adapt_setup, table-driven over every model family.

Every adapted setup is encoded as the frame that goes out and validated with the
official SDK's ``LiveClientMessage`` (the test-only oracle).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from google.genai import types as genai_types

from gemini_live import models
from gemini_live import types as T
from gemini_live.errors import ConfigError

FAMILY_IDS = {fam.name: fam.examples[0] for fam in models.FAMILIES}


def _decl(name: str, behavior: str | None = None) -> T.FunctionDeclaration:
    d = T.FunctionDeclaration(
        name=name,
        description=f"{name} tool",
        parameters_json_schema={"type": "object", "properties": {}},
    )
    if behavior is not None:
        d.behavior = behavior
    return d


def _setup(model: str, **kwargs: Any) -> T.Setup:
    return T.Setup(model=f"models/{model}", **kwargs)


def _oracle(setup: T.Setup) -> dict[str, Any]:
    """The setup frame as sent; the SDK model must accept it."""
    frame = msgspec.json.encode(T.ClientMessage(setup=setup))
    wire: dict[str, Any] = json.loads(frame)
    genai_types.LiveClientMessage.model_validate_json(frame)
    setup_json: dict[str, Any] = wire["setup"]
    return setup_json


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gemini_live" and r.levelno == logging.WARNING
    ]


# --------------------------------------------------------------------------- the table


def test_family_detection_covers_every_spelling() -> None:
    for fam in models.FAMILIES:
        for example in fam.examples:
            for spelled in (
                example,
                f"models/{example}",
                f"publishers/google/models/{example}",
                f"projects/p/locations/us-central1/publishers/google/models/{example}",
            ):
                assert models.family_of(spelled) is fam, spelled
    assert models.family_of("models/gemini-9-unknown") is None
    # 3.8 Live is not 3.8 Extended Thinking and vice versa.
    assert models.family_of("gemini-3.8-live") is models.LIVE_38
    assert models.family_of("gemini-3.8-live-extended-thinking") is models.EXTENDED_THINKING_38


@pytest.mark.parametrize("fam", models.FAMILIES, ids=lambda f: f.name)
def test_every_row_is_complete_and_cited(fam: models.ModelFamily) -> None:
    assert fam.examples and fam.modalities
    assert fam.thinking in ("budget", "level", "none")
    if fam.thinking_required:
        assert fam.thinking_default in fam.thinking_levels
    if fam.default_behavior is not None:
        assert fam.default_behavior in fam.tool_behaviors
    for key in ("thinking", "tool_behaviors", "modalities"):
        assert key in fam.sources, key
    for fact in fam.unverified:
        assert fact.split(".")[0] in models.ModelFamily.__dataclass_fields__, fact


def test_backend_dependent_facts() -> None:
    et = models.EXTENDED_THINKING_38
    assert et.scheduling_applies(vertex=False) and not et.scheduling_applies(vertex=True)
    assert et.will_continue_applies(vertex=False) and not et.will_continue_applies(vertex=True)
    assert not models.FLASH_LIVE_31.scheduling_applies(vertex=False)
    assert models.NATIVE_AUDIO_25.text_route_for(vertex=True) == "client_content"
    assert models.FLASH_LIVE_31.text_route_for(vertex=False) == "realtime_input"
    assert models.LIVE_38.context_update and not models.FLASH_LIVE_31.context_update
    assert not models.NATIVE_AUDIO_25.uses_history_config(vertex=False)
    assert models.FLASH_LIVE_31.uses_history_config(vertex=True)
    assert not models.TRANSCRIBE_LIVE.uses_history_config(vertex=False)


# --------------------------------------------------------------------------- adapting


@dataclass
class Case:
    family: str
    #: What the library's default setup (tools declared BLOCKING and unset) becomes.
    behaviors: list[str]
    thinking: dict[str, Any] | None
    n_warnings: int
    extra: dict[str, Any] = field(default_factory=dict)


# A typical app setup: AUDIO, one BLOCKING tool (tools.py's default), one tool with no
# behaviour, no thinking config.
CASES = [
    Case("2.5-native-audio", ["BLOCKING", "BLOCKING"], None, 0),
    Case("3.1-flash-live", ["BLOCKING", "BLOCKING"], None, 0),
    Case("3.8-live", ["BLOCKING", "NON_BLOCKING"], None, 0),
    # BLOCKING is replaced (warning) and the required thinkingLevel is set (warning).
    Case("3.8-extended-thinking", ["NON_BLOCKING", "NON_BLOCKING"], {"thinkingLevel": "LOW"}, 2),
]


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini", "vertex"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.family)
def test_default_app_setup_per_family(
    case: Case, vertex: bool, caplog: pytest.LogCaptureFixture
) -> None:
    model = FAMILY_IDS[case.family]
    setup = _setup(
        model,
        generation_config=T.GenerationConfig(response_modalities=["AUDIO"]),
        tools=[T.Tool.functions(_decl("a", "BLOCKING"), _decl("b"))],
    )
    before = msgspec.json.encode(setup)
    caplog.set_level(logging.WARNING, logger="gemini_live")
    out = models.adapt_setup(setup, vertex=vertex)
    assert msgspec.json.encode(setup) == before  # pure: the input is untouched
    wire = _oracle(out)
    decls = wire["tools"][0]["functionDeclarations"]
    assert [d["behavior"] for d in decls] == case.behaviors
    assert wire["generationConfig"].get("thinkingConfig") == case.thinking
    warnings = _warnings(caplog)
    assert len(warnings) == case.n_warnings, warnings
    for w in warnings:
        assert w.startswith(f"models/{model}: ")


@dataclass
class FixCase:
    family: str
    setup: dict[str, Any]  # wire JSON of the setup (model added)
    expect: dict[str, Any]  # wire JSON after adapting (model added)
    warns: list[str]  # substrings, one per warning, in order


FIXES = [
    FixCase(
        "3.8-live",
        {"generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}},
        {"generationConfig": {}},
        ["generationConfig.thinkingConfig: not supported by this model; removed"],
    ),
    FixCase(
        "3.8-live",
        {"proactivity": {"proactiveAudio": True}},
        {},
        ["proactivity: always on for this model; removed"],
    ),
    FixCase(
        "3.8-live",
        {"generationConfig": {"enableAffectiveDialog": False}},
        {"generationConfig": {}},
        ["generationConfig.enableAffectiveDialog: not supported"],
    ),
    FixCase(
        "3.1-flash-live",
        {"proactivity": {"proactiveAudio": False}},
        {},
        ["proactivity: not supported by this model; removed (it was off)"],
    ),
    FixCase(
        "3.1-flash-live",
        {"tools": [{"functionDeclarations": [{"name": "f", "behavior": "NON_BLOCKING"}]}]},
        {"tools": [{"functionDeclarations": [{"name": "f", "behavior": "BLOCKING"}]}]},
        ["NON_BLOCKING is not supported by this model; declared BLOCKING instead"],
    ),
    FixCase(
        "3.1-flash-live",
        {"generationConfig": {"thinkingConfig": {"thinkingLevel": "minimal"}}},
        {"generationConfig": {"thinkingConfig": {"thinkingLevel": "MINIMAL"}}},
        [],
    ),
    FixCase(
        "3.8-extended-thinking",
        {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
        {"generationConfig": {"thinkingConfig": {"includeThoughts": True, "thinkingLevel": "LOW"}}},
        ["thinkingLevel: required and missing; set to LOW"],
    ),
    FixCase(
        "3.8-extended-thinking",
        {"generationConfig": {"thinkingConfig": {"thinkingLevel": "MINIMAL"}}},
        {"generationConfig": {"thinkingConfig": {"thinkingLevel": "MINIMAL"}}},
        ["MINIMAL is not documented for this model; sent unchanged"],
    ),
    FixCase(
        "3.8-extended-thinking",
        {"proactivity": {"proactiveAudio": True}},
        {
            "generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}},
            "proactivity": {"proactiveAudio": True},
        },
        ["required and missing", "proactivity: not documented for this model; sent unchanged"],
    ),
    FixCase(
        "2.5-native-audio",
        {
            "generationConfig": {
                "thinkingConfig": {"thinkingBudget": 0},
                "enableAffectiveDialog": True,
            },
            "proactivity": {"proactiveAudio": True},
            "tools": [{"functionDeclarations": [{"name": "f", "behavior": "NON_BLOCKING"}]}],
        },
        {
            "generationConfig": {
                "thinkingConfig": {"thinkingBudget": 0},
                "enableAffectiveDialog": True,
            },
            "proactivity": {"proactiveAudio": True},
            "tools": [{"functionDeclarations": [{"name": "f", "behavior": "NON_BLOCKING"}]}],
        },
        [],
    ),
    FixCase(
        "transcribe-live",
        {},
        {"generationConfig": {"responseModalities": ["TEXT"]}, "inputAudioTranscription": {}},
        ["responseModalities: set to ['TEXT']", "inputAudioTranscription: required"],
    ),
    FixCase(
        "transcribe-live",
        {"generationConfig": {"responseModalities": ["TEXT"]}, "inputAudioTranscription": {}},
        {"generationConfig": {"responseModalities": ["TEXT"]}, "inputAudioTranscription": {}},
        [],
    ),
    FixCase(
        "translate",
        {
            "generationConfig": {
                "speechConfig": {
                    "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
                    "languageCode": "de-DE",
                },
            }
        },
        {"generationConfig": {"speechConfig": {"languageCode": "de-DE"}}},
        ["speechConfig.voiceConfig: voice selection is not supported"],
    ),
    FixCase(
        "translate",
        {"tools": [{"functionDeclarations": [{"name": "f", "behavior": "BLOCKING"}]}]},
        {"tools": [{"functionDeclarations": [{"name": "f", "behavior": "BLOCKING"}]}]},
        ["function tools are not documented for this model; sent unchanged"],
    ),
]


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini", "vertex"])
@pytest.mark.parametrize("case", FIXES, ids=lambda c: f"{c.family}-{sorted(c.setup)}")
def test_fixes_and_warnings(case: FixCase, vertex: bool, caplog: pytest.LogCaptureFixture) -> None:
    model = f"models/{FAMILY_IDS[case.family]}"
    setup = msgspec.convert({"model": model, **case.setup}, T.Setup)
    caplog.set_level(logging.WARNING, logger="gemini_live")
    out = models.adapt_setup(setup, vertex=vertex)
    assert _oracle(out) == {"model": model, **case.expect}
    assert msgspec.to_builtins(setup) == {"model": model, **case.setup}
    warnings = _warnings(caplog)
    assert len(warnings) == len(case.warns), warnings
    for got, want in zip(warnings, case.warns, strict=True):
        assert want in got and got.startswith(model), (got, want)


ERRORS = [
    ("2.5-native-audio", {"generationConfig": {"thinkingConfig": {"thinkingLevel": "LOW"}}},
     "generationConfig.thinkingConfig.thinkingLevel"),
    ("3.1-flash-live", {"generationConfig": {"thinkingConfig": {"thinkingBudget": 128}}},
     "generationConfig.thinkingConfig.thinkingBudget"),
    ("3.8-extended-thinking",
     {"generationConfig": {"thinkingConfig": {"thinkingBudget": -1}}},
     "generationConfig.thinkingConfig.thinkingBudget"),
    ("3.8-extended-thinking",
     {"generationConfig": {"thinkingConfig": {"thinkingLevel": "EXTREME"}}},
     "generationConfig.thinkingConfig.thinkingLevel"),
    ("3.8-live", {"generationConfig": {"responseModalities": ["TEXT"]}},
     "generationConfig.responseModalities"),
    ("3.1-flash-live", {"generationConfig": {"responseModalities": ["TEXT"]}},
     "generationConfig.responseModalities"),
    ("transcribe-live", {"generationConfig": {"responseModalities": ["AUDIO"]}},
     "generationConfig.responseModalities"),
    ("3.8-live", {"proactivity": {"proactiveAudio": False}}, "proactivity.proactiveAudio"),
    ("3.1-flash-live", {"proactivity": {"proactiveAudio": True}}, "proactivity"),
    ("3.1-flash-live", {"generationConfig": {"enableAffectiveDialog": True}},
     "generationConfig.enableAffectiveDialog"),
    ("3.8-live", {"generationConfig": {"enableAffectiveDialog": True}},
     "generationConfig.enableAffectiveDialog"),
    ("3.8-live", {"tools": [{"functionDeclarations": [{"name": "f", "behavior": "SOMETIMES"}]}]},
     "tools[0].functionDeclarations[0].behavior"),
]  # fmt: skip


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini", "vertex"])
@pytest.mark.parametrize(("family", "setup", "field_path"), ERRORS)
def test_errors_name_the_model_and_the_field(
    family: str, setup: dict[str, Any], field_path: str, vertex: bool
) -> None:
    model = f"models/{FAMILY_IDS[family]}"
    s = msgspec.convert({"model": model, **setup}, T.Setup)
    with pytest.raises(ConfigError) as info:
        models.adapt_setup(s, vertex=vertex)
    assert model in str(info.value)
    assert field_path in str(info.value)


def test_translation_config_is_gemini_api_only() -> None:
    setup = msgspec.convert(
        {
            "model": "models/gemini-3.5-live-translate-preview",
            "generationConfig": {"translationConfig": {"targetLanguageCode": "de-DE"}},
        },
        T.Setup,
    )
    assert models.adapt_setup(setup, vertex=False) is setup
    with pytest.raises(ConfigError, match=r"generationConfig\.translationConfig"):
        models.adapt_setup(setup, vertex=True)


def test_unknown_model_passes_unchanged_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup = _setup(
        "gemini-9.9-hyper-live",
        generation_config=T.GenerationConfig(thinking_config=T.ThinkingConfig(thinking_budget=1)),
        tools=[T.Tool.functions(_decl("a", "BLOCKING"))],
    )
    models._WARNED_UNKNOWN.discard(setup.model)
    caplog.set_level(logging.WARNING, logger="gemini_live")
    assert models.adapt_setup(setup, vertex=False) is setup
    (warning,) = _warnings(caplog)
    assert "gemini-9.9-hyper-live" in warning and "unknown model" in warning
    # The next session with the same model does not repeat it (hundreds of sessions would).
    caplog.clear()
    assert models.adapt_setup(setup, vertex=False) is setup
    assert not _warnings(caplog)


def test_nothing_to_change_returns_the_same_object() -> None:
    setup = _setup(
        "gemini-3.8-live",
        tools=[T.Tool.functions(_decl("a", "NON_BLOCKING")), T.Tool.google_search_tool()],
    )
    assert models.adapt_setup(setup, vertex=False) is setup


# --------------------------------------------------------------------------- tool responses


@pytest.mark.parametrize(
    ("family", "vertex", "keeps_scheduling", "keeps_will_continue"),
    [
        ("2.5-native-audio", False, True, True),
        ("2.5-native-audio", True, False, False),
        ("3.8-live", False, True, True),
        ("3.8-live", True, False, False),
        ("3.8-extended-thinking", False, True, True),
        ("3.1-flash-live", False, False, False),
    ],
)
def test_adapt_function_response(
    family: str,
    vertex: bool,
    keeps_scheduling: bool,
    keeps_will_continue: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fr = T.FunctionResponse(
        name="f", id="c1", response={"output": 1}, scheduling="WHEN_IDLE", will_continue=True
    )
    caplog.set_level(logging.WARNING, logger="gemini_live")
    out = models.adapt_function_response(FAMILY_IDS[family], fr, vertex=vertex)
    assert (out.scheduling == "WHEN_IDLE") is keeps_scheduling
    assert (out.will_continue is True) is keeps_will_continue
    assert fr.scheduling == "WHEN_IDLE" and fr.will_continue is True  # untouched
    assert len(_warnings(caplog)) == (not keeps_scheduling) + (not keeps_will_continue)
    if keeps_scheduling and keeps_will_continue:
        assert out is fr


@pytest.mark.parametrize(
    ("model", "vertex", "key"),
    [
        ("gemini-3.8-live", False, "realtimeInput"),
        ("gemini-3.1-flash-live-preview", True, "realtimeInput"),
        ("gemini-2.5-flash-native-audio-latest", False, "realtimeInput"),
        ("gemini-live-2.5-flash-native-audio", True, "clientContent"),
        ("some-unknown-model", True, "realtimeInput"),
    ],
)
def test_text_message_routing(model: str, vertex: bool, key: str) -> None:
    msg = models.text_message(model, "hello", vertex=vertex)
    frame = msgspec.json.encode(msg)
    genai_types.LiveClientMessage.model_validate_json(frame)
    wire = json.loads(frame)
    assert list(wire) == [key]
    if key == "clientContent":
        assert wire[key] == {
            "turns": [{"parts": [{"text": "hello"}], "role": "user"}],
            "turnComplete": True,
        }
    else:
        assert wire[key] == {"text": "hello"}


@pytest.mark.parametrize(
    "model", ["gemini-3.5-transcribe-live", "gemini-3.5-live-translate-preview"]
)
def test_text_message_refused_where_there_is_no_text_input(model: str) -> None:
    with pytest.raises(ConfigError, match=model):
        models.text_message(model, "hello", vertex=False)
    with pytest.raises(ConfigError):
        models.text_message("gemini-3.8-live", "", vertex=False)
