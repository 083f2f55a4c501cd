"""What each Live model family accepts: a capability table (data) and the setup adapter.

The table (:data:`FAMILIES`) holds one :class:`ModelFamily` per family: 2.5 native audio,
3.1 Flash Live, 3.8 Live, 3.8 Live Extended Thinking, transcribe-live and live-translate.
Each row records the thinking knob, the tool behaviours, which tool-response fields apply
per backend, how typed text is routed, proactivity / affective dialog, ``contextUpdate``
support and the quirks of reseeding history on a fresh session. ``sources`` names where
each fact comes from and ``unverified`` lists the facts no primary source confirms; an
unverified fact only ever produces a warning, never a change or an error.

:func:`adapt_setup` checks a :class:`~gemini_live.types.Setup` against its model's row:

* what can be fixed safely is fixed, each fix logged as a warning on the ``gemini_live``
  logger (e.g. ``BLOCKING`` tools on Extended Thinking become ``NON_BLOCKING``; the
  required ``thinkingLevel`` defaults to ``LOW``);
* what cannot is a :class:`~gemini_live.errors.ConfigError` naming the model and the field
  (e.g. a ``thinkingLevel`` on 2.5, which takes a budget);
* an unknown model id passes unchanged with one warning (once per model id and process;
  later sessions log it at DEBUG).

The function is pure: the setup passed in is never modified; a changed copy is returned.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from gemini_live.errors import ConfigError
from gemini_live.types import (
    UNSET,
    AudioTranscriptionConfig,
    ClientContent,
    ClientMessage,
    Content,
    FunctionDeclaration,
    FunctionResponse,
    GenerationConfig,
    RealtimeInput,
    Setup,
    ThinkingConfig,
    UnsetType,
)

__all__ = [
    "FAMILIES",
    "HistorySeeding",
    "ModelFamily",
    "adapt_function_response",
    "adapt_setup",
    "bare_model_id",
    "effective_behavior",
    "family_of",
    "text_message",
]

logger = logging.getLogger("gemini_live")
#: Unknown model ids already warned about in this process.
_WARNED_UNKNOWN: set[str] = set()

Backend = Literal["gemini", "vertex"]
ThinkingKnob = Literal["budget", "level", "none"]
TextRoute = Literal["realtime_input", "client_content", "none"]
Support = Literal["opt_in", "always_on", "unsupported"]

# Sources, abbreviated once (full references in docs/protocol.md).
_LP = "live-protocol.md"
_PEERS = "peers-2026-11.md"


@dataclass(frozen=True, slots=True)
class HistorySeeding:
    """How a fresh session of this family is seeded with an earlier conversation.

    The seed is ``clientContent`` turns (roles ``user`` / ``model``) sent right after
    ``setupComplete`` and before any other input, with ``turn_complete`` as given here.
    """

    #: Seeding is possible at all (not on transcription / translation models).
    supported: bool = True
    #: Set ``historyConfig.initialHistoryInClientContent: true`` in the setup, per backend.
    history_config: Mapping[Backend, bool] = field(
        default_factory=lambda: {"gemini": True, "vertex": True}
    )
    #: ``turnComplete`` of the (last) seed message: False = ingest, do not answer.
    turn_complete: bool = False
    #: The seed's last turn must be a ``user`` turn (append an empty one if needed).
    last_turn_user: bool = False
    #: Free-text notes for people (shown in docs, not used by code).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelFamily:
    """One model family's capabilities. All fields are data; see the module docstring."""

    #: Short key, e.g. ``"3.8-extended-thinking"``.
    name: str
    #: People's name, e.g. ``"Gemini 3.8 Live Extended Thinking"``.
    title: str
    #: Regular expression matched against the bare model id (see :func:`bare_model_id`).
    pattern: str
    #: Example ids (documentation and tests).
    examples: tuple[str, ...]
    #: ``responseModalities`` the family accepts (one per session).
    modalities: tuple[str, ...]
    #: Which thinking knob the family takes: ``thinkingBudget``, ``thinkingLevel`` or none.
    thinking: ThinkingKnob
    #: Whether the service rejects a setup without the knob.
    thinking_required: bool = False
    #: What the library sets when the knob is required and missing (else None).
    thinking_default: str | None = None
    #: Accepted ``thinkingLevel`` values (level knob only).
    thinking_levels: tuple[str, ...] = ()
    #: Accepted ``FunctionDeclaration.behavior`` values (empty: no function tools).
    tool_behaviors: tuple[str, ...] = ("BLOCKING",)
    #: The behaviour the library writes into declarations that leave it unset.
    default_behavior: str | None = "BLOCKING"
    #: Backends on which ``FunctionResponse.scheduling`` has an effect.
    scheduling: frozenset[Backend] = frozenset()
    #: Backends on which ``FunctionResponse.willContinue`` is accepted.
    will_continue: frozenset[Backend] = frozenset()
    #: How typed user text should be sent, per backend.
    text_route: Mapping[Backend, TextRoute] = field(
        default_factory=lambda: {"gemini": "realtime_input", "vertex": "realtime_input"}
    )
    #: ``clientContent`` after the initial history: any time, or not at all.
    client_content_mid_session: bool = True
    proactivity: Support = "unsupported"
    affective_dialog: Support = "unsupported"
    #: ``contextUpdate`` (mid-session system instruction / tools) is accepted.
    context_update: bool = False
    history: HistorySeeding = field(default_factory=HistorySeeding)
    #: Fact name -> source (issue / document). Keys match the field names above.
    sources: Mapping[str, str] = field(default_factory=dict)
    #: Facts no primary source confirms: they only warn, never change or reject a setup.
    unverified: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()

    def matches(self, model: str) -> bool:
        return re.match(self.pattern, bare_model_id(model)) is not None

    def scheduling_applies(self, *, vertex: bool) -> bool:
        return ("vertex" if vertex else "gemini") in self.scheduling

    def will_continue_applies(self, *, vertex: bool) -> bool:
        return ("vertex" if vertex else "gemini") in self.will_continue

    def text_route_for(self, *, vertex: bool) -> TextRoute:
        return self.text_route["vertex" if vertex else "gemini"]

    def uses_history_config(self, *, vertex: bool) -> bool:
        return (
            self.history.supported and self.history.history_config["vertex" if vertex else "gemini"]
        )


_BOTH: Final[frozenset[Backend]] = frozenset({"gemini", "vertex"})
_GEMINI: Final[frozenset[Backend]] = frozenset({"gemini"})

NATIVE_AUDIO_25 = ModelFamily(
    name="2.5-native-audio",
    title="Gemini 2.5 Flash native audio",
    pattern=r"gemini-(live-)?2\.5-flash(-preview)?-native-audio",
    examples=(
        "gemini-2.5-flash-native-audio-preview-12-2025",
        "gemini-2.5-flash-native-audio-latest",
        "gemini-live-2.5-flash-native-audio",
    ),
    modalities=("AUDIO",),
    thinking="budget",
    tool_behaviors=("BLOCKING", "NON_BLOCKING"),
    default_behavior="BLOCKING",
    scheduling=_GEMINI,
    will_continue=_GEMINI,
    text_route={"gemini": "realtime_input", "vertex": "client_content"},
    proactivity="opt_in",
    affective_dialog="opt_in",
    context_update=False,
    history=HistorySeeding(
        history_config={"gemini": False, "vertex": False},
        last_turn_user=True,
        notes=(
            "clientContent is accepted any time, so no historyConfig is needed",
            "the seed's last turn must be a user turn",
            "with audio as the first input the seed is ignored unless a clientContent"
            " turnComplete:true follows the first user stop",
        ),
    ),
    sources={
        "thinking": f"{_LP} §2.1.1, §9; juspay/clairvoyance#972 ({_PEERS} §2.5)",
        "tool_behaviors": f"{_LP} §2.1.3, §9",
        "scheduling": f"{_LP} §2.4; Vertex drops scheduling: {_PEERS} §4.7",
        "will_continue": f"{_LP} §2.4 (Gemini API only)",
        "text_route": f"{_LP} §2.2, §2.3 (realtimeInput.text rejected on Vertex in 2025,"
        " googleapis/python-genai#673); pipecat-ai/pipecat#4403 ({_PEERS} §3.3)",
        "proactivity": f"{_LP} §2.1, §9 (v1alpha on the Gemini API)",
        "affective_dialog": f"{_LP} §2.1.1, §9 (v1alpha on the Gemini API)",
        "context_update": f"{_LP} §9",
        "history": f"{_PEERS} §4.5 (pipecat _create_initial_response;"
        " discuss.ai.google.dev/t/111617)",
        "modalities": f"{_LP} §2.1.1 (livekit/agents#4423)",
    },
    unverified=frozenset({"text_route.vertex"}),
    notes=("proactivity and enableAffectiveDialog need the v1alpha API on the Gemini API",),
)

FLASH_LIVE_31 = ModelFamily(
    name="3.1-flash-live",
    title="Gemini 3.1 Flash Live",
    pattern=r"gemini-3\.1-flash-live",
    examples=("gemini-3.1-flash-live-preview",),
    modalities=("AUDIO",),
    thinking="level",
    thinking_levels=("MINIMAL", "LOW", "MEDIUM", "HIGH"),
    tool_behaviors=("BLOCKING",),
    default_behavior="BLOCKING",
    scheduling=frozenset(),
    will_continue=frozenset(),
    text_route={"gemini": "realtime_input", "vertex": "realtime_input"},
    client_content_mid_session=False,
    proactivity="unsupported",
    affective_dialog="unsupported",
    context_update=False,
    history=HistorySeeding(
        notes=(
            "clientContent only as initial history with historyConfig (mid-session: 1007)",
            "pipecat disables historyConfig on Vertex; Vertex documents it (CONFLICT)",
        ),
    ),
    sources={
        "thinking": f"{_LP} §2.1.1, §9 (level, default MINIMAL)",
        "tool_behaviors": f"{_LP} §2.1.3, §9 (synchronous only); pipecat"
        f" _supports_non_blocking_tools ({_PEERS} §2.2)",
        "text_route": f"{_LP} §2.3 (the way to send typed text to 3.1)",
        "client_content_mid_session": f"{_LP} §2.2 (livekit/agents#5251,"
        " google/adk-python#5018; CONFLICT with later model-page text)",
        "proactivity": f"{_LP} §1.4, §9 (setup may hang: PatterAI/Patter#210)",
        "affective_dialog": f"{_LP} §1.4, §9",
        "context_update": f"{_LP} §9",
        "history": f"{_LP} §2.1 historyConfig; {_PEERS} §4.5 (CONFLICT on Vertex:"
        " google/adk-python#6218 vs pipecat)",
        "modalities": f"{_LP} §2.1.1",
    },
    unverified=frozenset({"history.history_config.vertex", "text_route.vertex"}),
)

LIVE_38 = ModelFamily(
    name="3.8-live",
    title="Gemini 3.8 Live",
    pattern=r"gemini-3\.8-live(?!-extended-thinking)",
    examples=("gemini-3.8-live",),
    modalities=("AUDIO", "VIDEO"),
    thinking="none",
    tool_behaviors=("BLOCKING", "NON_BLOCKING"),
    default_behavior="NON_BLOCKING",
    scheduling=_GEMINI,
    will_continue=_GEMINI,
    text_route={"gemini": "realtime_input", "vertex": "realtime_input"},
    proactivity="always_on",
    affective_dialog="unsupported",
    context_update=True,
    history=HistorySeeding(
        notes=(
            "seeded with turnComplete:true, 3.x needs a realtime-input nudge before it"
            " answers (pipecat); the library seeds with turnComplete:false",
        ),
    ),
    sources={
        "thinking": f"{_LP} §2.1.1, §9 (omit thinkingConfig); firebase/firebase-android-sdk"
        f"#8616; livekit ValueError for thinking_level on 3.8 ({_PEERS} §2.3)",
        "tool_behaviors": f"{_LP} §2.1.3, §9 (NON_BLOCKING default, BLOCKING opt-in);"
        f" livekit _default_tool_behavior ({_PEERS} §2.3)",
        "scheduling": f"{_LP} §2.4; Vertex drops scheduling: {_PEERS} §4.7",
        "will_continue": f"{_LP} §2.4 (Gemini API only)",
        "text_route": f"{_LP} §2.2, §2.3 (clientContent turnComplete:true interrupts)",
        "proactivity": f"{_LP} §2.1, §9 (always on; proactiveAudio:false is an error)",
        "affective_dialog": f"{_LP} §2.1.1, §9 (removed from the API)",
        "context_update": f"{_LP} §2.5, §9",
        "history": f"{_PEERS} §4.5; livekit _sync_chat_ctx ({_PEERS} §2.3)",
        "modalities": f"{_LP} §2.1.1, §9 (VIDEO for the avatar on Vertex)",
    },
    unverified=frozenset({"text_route.vertex"}),
)

EXTENDED_THINKING_38 = ModelFamily(
    name="3.8-extended-thinking",
    title="Gemini 3.8 Live Extended Thinking",
    pattern=r"gemini-3\.8-live-extended-thinking",
    examples=("gemini-3.8-live-extended-thinking",),
    modalities=("AUDIO",),
    thinking="level",
    thinking_required=True,
    thinking_default="LOW",
    thinking_levels=("LOW", "MEDIUM", "HIGH"),
    tool_behaviors=("NON_BLOCKING",),
    default_behavior="NON_BLOCKING",
    scheduling=_GEMINI,
    will_continue=_GEMINI,
    text_route={"gemini": "realtime_input", "vertex": "realtime_input"},
    proactivity="always_on",
    affective_dialog="unsupported",
    context_update=False,
    history=HistorySeeding(),
    sources={
        "thinking": f"{_LP} §2.1.1, §9 (LOW/MEDIUM/HIGH); required, no server default:"
        f" pipecat _resolved_thinking_config ({_PEERS} §2.2, §4.2)",
        "tool_behaviors": f"{_LP} §2.1.3, §9; google-gemini/gemini-skills#81,"
        f" firebase/firebase-android-sdk#8616 ({_PEERS} §5.2)",
        "scheduling": f"{_LP} §2.4; {_PEERS} §4.7",
        "will_continue": f"{_LP} §2.4 (Gemini API only)",
        "text_route": f"{_LP} §2.3",
        "proactivity": f"{_LP} §9 (not documented; assumed as 3.8 Live)",
        "affective_dialog": f"{_LP} §9 (not documented; assumed as 3.8 Live)",
        "context_update": f"{_LP} §2.5, §9 (UNVERIFIED)",
        "client_content_mid_session": f"{_LP} §9 (UNVERIFIED)",
        "history": f"{_PEERS} §4.5 (assumed as 3.8 Live)",
        "modalities": f"{_LP} §9",
    },
    unverified=frozenset(
        {
            "thinking_levels.MINIMAL",
            "proactivity",
            "affective_dialog",
            "context_update",
            "client_content_mid_session",
            "history",
            "text_route.vertex",
        }
    ),
    notes=(
        "turnComplete with interactionStatus IN_PROGRESS is not the end of the answer;"
        " the interaction ends at IDLE",
        "a report says tools need the OpenAPI `parameters` schema rather than"
        " parametersJsonSchema (AidenAI-IO/aiden-firmware#708, UNVERIFIED)",
    ),
)

TRANSCRIBE_LIVE = ModelFamily(
    name="transcribe-live",
    title="Gemini transcribe-live (streaming speech recognition)",
    pattern=r"gemini-[0-9.]+-transcribe-live",
    examples=("gemini-3.5-transcribe-live",),
    modalities=("TEXT",),
    thinking="none",
    tool_behaviors=(),
    default_behavior=None,
    text_route={"gemini": "none", "vertex": "none"},
    client_content_mid_session=False,
    history=HistorySeeding(supported=False, history_config={"gemini": False, "vertex": False}),
    sources={
        "modalities": f"{_LP} §2.1.1, §9 (responseModalities TEXT + inputAudioTranscription);"
        f" {_PEERS} §4.10",
        "thinking": f"{_LP} §9 (not documented)",
        "tool_behaviors": f"{_LP} §9 (streaming ASR; not documented)",
        "history": f"{_PEERS} §3.10, §4.11 (no session end, generationComplete per utterance)",
    },
    unverified=frozenset({"thinking", "tool_behaviors", "proactivity", "affective_dialog"}),
    notes=(
        "generationComplete per utterance; the session never ends by itself;"
        " audioStreamEnd force-finalises; no usageMetadata",
    ),
)

LIVE_TRANSLATE = ModelFamily(
    name="translate",
    title="Gemini live-translate (speech translation)",
    pattern=r"gemini-[0-9.]+-live-translate",
    examples=("gemini-3.5-live-translate-preview",),
    modalities=("AUDIO",),
    thinking="none",
    tool_behaviors=(),
    default_behavior=None,
    text_route={"gemini": "none", "vertex": "none"},
    client_content_mid_session=False,
    history=HistorySeeding(supported=False, history_config={"gemini": False, "vertex": False}),
    sources={
        "modalities": f"{_LP} §9",
        "speech_config": f"{_PEERS} §3.9, §4.12 (no voice selection; the speaker's voice"
        " is cloned: kizuna-ai-lab/sokuji#392, dograh-hq/dograh#436)",
        "translation_config": f"{_LP} §2.1.1 (Gemini API only)",
        "thinking": f"{_LP} §9 (not documented)",
        "tool_behaviors": f"{_LP} §9 (not documented)",
    },
    unverified=frozenset({"thinking", "tool_behaviors", "proactivity", "affective_dialog"}),
)

#: Every known family, most specific pattern first.
FAMILIES: Final[tuple[ModelFamily, ...]] = (
    EXTENDED_THINKING_38,
    LIVE_38,
    FLASH_LIVE_31,
    NATIVE_AUDIO_25,
    TRANSCRIBE_LIVE,
    LIVE_TRANSLATE,
)


def bare_model_id(model: str) -> str:
    """``models/x``, ``publishers/google/models/x`` and ``projects/.../models/x`` -> ``x``."""
    return model.rsplit("/", 1)[-1].strip().lower()


def family_of(model: str) -> ModelFamily | None:
    """The family of a model id (any of the Gemini API / Vertex spellings), or None."""
    bare = bare_model_id(model)
    for fam in FAMILIES:
        if re.match(fam.pattern, bare):
            return fam
    return None


def effective_behavior(setup: Setup, name: str) -> str | None:
    """The behaviour the service applies to function ``name`` under ``setup``.

    The one home of "declared, else the family default": the first declaration of
    ``name`` in ``setup.tools`` gives its ``behavior`` when set; an unset one (tools sent
    in a contextUpdate are not adapted by the model table) is the model family's default
    (``NON_BLOCKING`` on 3.8, ``BLOCKING`` on 2.5 / 3.1). None when nothing says: the name
    is not declared, or the family is unknown or has no default. Callers treat None as
    ``BLOCKING``, the safe choice.
    """
    tools = setup.tools
    if isinstance(tools, UnsetType):
        return None
    for tool in tools:
        decls = tool.function_declarations
        if isinstance(decls, UnsetType):
            continue
        for decl in decls:
            if decl.name != name:
                continue
            if isinstance(decl.behavior, str):
                return decl.behavior
            family = family_of(setup.model)
            return family.default_behavior if family is not None else None
    return None


# --------------------------------------------------------------------------- adapting


class _Adapter:
    def __init__(self, setup: Setup, fam: ModelFamily, vertex: bool) -> None:
        self.original = setup
        self.setup = setup
        self.fam = fam
        self.vertex = vertex
        self.model = setup.model
        self.copied = False

    def mutable(self) -> Setup:
        if not self.copied:
            self.setup = copy.deepcopy(self.original)
            self.copied = True
        return self.setup

    def gen(self) -> GenerationConfig | None:
        gc = self.mutable().generation_config
        return gc if isinstance(gc, GenerationConfig) else None

    # ``source_key`` names the fact's row in ``ModelFamily.sources`` (kept for readers of
    # the table); messages are plain sentences and cite no documents.
    def warn(self, field_path: str, message: str, source_key: str) -> None:
        del source_key
        logger.warning("%s: %s: %s", self.model, field_path, message)

    def fail(self, field_path: str, message: str, source_key: str) -> ConfigError:
        del source_key
        return ConfigError(
            f"model {self.model!r} ({self.fam.title}) does not accept {field_path}: {message}"
        )

    def unverified(self, fact: str) -> bool:
        return fact in self.fam.unverified

    # -- checks ------------------------------------------------------------------------

    def modalities(self) -> None:
        gc = self.setup.generation_config
        mods = gc.response_modalities if isinstance(gc, GenerationConfig) else UNSET
        if isinstance(mods, UnsetType):
            if self.fam.modalities == ("TEXT",):
                # The service default is AUDIO, which this family does not produce.
                g = self.gen()
                if g is None:
                    g = self.mutable().generation_config = GenerationConfig()
                g.response_modalities = ["TEXT"]
                self.warn("generationConfig.responseModalities", "set to ['TEXT']", "modalities")
            return
        bad = [m for m in mods if m not in self.fam.modalities]
        if bad:
            fix = ""
            if "TEXT" in bad and "AUDIO" in self.fam.modalities:
                fix = (
                    "; this model speaks its answers: for text, keep AUDIO and pass"
                    " output_audio_transcription=True (the transcript of the reply arrives"
                    " as text)"
                )
            raise self.fail(
                "generationConfig.responseModalities",
                f"{bad} (accepted: {list(self.fam.modalities)}){fix}",
                "modalities",
            )

    def thinking(self) -> None:
        fam = self.fam
        gc = self.setup.generation_config
        tc = gc.thinking_config if isinstance(gc, GenerationConfig) else UNSET
        path = "generationConfig.thinkingConfig"
        if isinstance(tc, UnsetType):
            if fam.thinking_required and fam.thinking_default is not None:
                g = self.gen()
                if g is None:
                    g = self.mutable().generation_config = GenerationConfig()
                g.thinking_config = ThinkingConfig(thinking_level=fam.thinking_default)
                self.warn(
                    f"{path}.thinkingLevel",
                    f"required and missing; set to {fam.thinking_default}",
                    "thinking",
                )
            return
        if fam.thinking == "none":
            if self.unverified("thinking"):
                self.warn(path, "this family is not known to think; sent unchanged", "thinking")
                return
            g = self.gen()
            assert g is not None
            g.thinking_config = UNSET
            self.warn(path, "not supported by this model; removed", "thinking")
            return
        has_budget = not isinstance(tc.thinking_budget, UnsetType)
        has_level = not isinstance(tc.thinking_level, UnsetType)
        if fam.thinking == "budget":
            if has_level:
                raise self.fail(
                    f"{path}.thinkingLevel", "this model takes thinkingBudget", "thinking"
                )
            return
        # level knob
        if has_budget:
            raise self.fail(f"{path}.thinkingBudget", "this model takes thinkingLevel", "thinking")
        if not has_level:
            if fam.thinking_required and fam.thinking_default is not None:
                g = self.gen()
                assert g is not None and isinstance(g.thinking_config, ThinkingConfig)
                g.thinking_config.thinking_level = fam.thinking_default
                self.warn(
                    f"{path}.thinkingLevel",
                    f"required and missing; set to {fam.thinking_default}",
                    "thinking",
                )
            return
        level = str(tc.thinking_level).upper()
        if level != tc.thinking_level:
            g = self.gen()
            assert g is not None and isinstance(g.thinking_config, ThinkingConfig)
            g.thinking_config.thinking_level = level
        if level not in fam.thinking_levels:
            if self.unverified(f"thinking_levels.{level}"):
                self.warn(
                    f"{path}.thinkingLevel",
                    f"{level} is not documented for this model; sent unchanged",
                    "thinking",
                )
                return
            raise self.fail(
                f"{path}.thinkingLevel",
                f"{level} (accepted: {', '.join(fam.thinking_levels)})",
                "thinking",
            )

    def proactivity(self) -> None:
        pro = self.setup.proactivity
        if isinstance(pro, UnsetType):
            return
        fam = self.fam
        if fam.proactivity == "opt_in" or self.unverified("proactivity"):
            if self.unverified("proactivity"):
                self.warn(
                    "proactivity", "not documented for this model; sent unchanged", "proactivity"
                )
            return
        on = pro.proactive_audio is True or pro.proactive_video is True
        if fam.proactivity == "always_on":
            if pro.proactive_audio is False:
                raise self.fail(
                    "proactivity.proactiveAudio",
                    "false (proactive audio is always on for this model)",
                    "proactivity",
                )
            self.mutable().proactivity = UNSET
            self.warn("proactivity", "always on for this model; removed", "proactivity")
            return
        # unsupported
        if on:
            raise self.fail("proactivity", "not supported by this model", "proactivity")
        self.mutable().proactivity = UNSET
        self.warn("proactivity", "not supported by this model; removed (it was off)", "proactivity")

    def affective_dialog(self) -> None:
        gc = self.setup.generation_config
        value = gc.enable_affective_dialog if isinstance(gc, GenerationConfig) else UNSET
        if isinstance(value, UnsetType) or self.fam.affective_dialog == "opt_in":
            return
        path = "generationConfig.enableAffectiveDialog"
        if self.unverified("affective_dialog"):
            self.warn(path, "not documented for this model; sent unchanged", "affective_dialog")
            return
        if value:
            raise self.fail(path, "not supported by this model", "affective_dialog")
        g = self.gen()
        assert g is not None
        g.enable_affective_dialog = UNSET
        self.warn(path, "not supported by this model; removed (it was false)", "affective_dialog")

    def tools(self) -> None:
        tools = self.setup.tools
        if isinstance(tools, UnsetType):
            return
        fam = self.fam
        allowed = fam.tool_behaviors
        for ti, tool in enumerate(tools):
            decls = tool.function_declarations
            if isinstance(decls, UnsetType):
                continue
            for di, decl in enumerate(decls):
                path = f"tools[{ti}].functionDeclarations[{di}].behavior ({decl.name})"
                if not allowed:
                    self.warn(
                        path,
                        "function tools are not documented for this model; sent unchanged",
                        "tool_behaviors",
                    )
                    continue
                beh = decl.behavior
                if isinstance(beh, UnsetType):
                    if fam.default_behavior is not None:
                        self._decl(ti, di).behavior = fam.default_behavior
                    continue
                if beh in allowed:
                    continue
                if beh not in ("BLOCKING", "NON_BLOCKING"):
                    raise self.fail(path, f"unknown behavior {beh!r}", "tool_behaviors")
                # The only accepted behaviour replaces the other one.
                new = allowed[0]
                self._decl(ti, di).behavior = new
                self.warn(
                    path,
                    f"{beh} is not supported by this model; declared {new} instead",
                    "tool_behaviors",
                )

    def _decl(self, ti: int, di: int) -> FunctionDeclaration:
        tools = self.mutable().tools
        assert not isinstance(tools, UnsetType)
        decls = tools[ti].function_declarations
        assert not isinstance(decls, UnsetType)
        return decls[di]

    def speech(self) -> None:
        if self.fam is not LIVE_TRANSLATE:
            return
        gc = self.setup.generation_config
        sc = gc.speech_config if isinstance(gc, GenerationConfig) else UNSET
        if isinstance(sc, UnsetType) or isinstance(sc.voice_config, UnsetType):
            return
        g = self.gen()
        assert g is not None and not isinstance(g.speech_config, UnsetType)
        g.speech_config.voice_config = UNSET
        self.warn(
            "generationConfig.speechConfig.voiceConfig",
            "voice selection is not supported (the speaker's voice is used); removed",
            "speech_config",
        )

    def backend(self) -> None:
        gc = self.setup.generation_config
        tr = gc.translation_config if isinstance(gc, GenerationConfig) else UNSET
        if self.vertex and not isinstance(tr, UnsetType):
            raise ConfigError(
                f"model {self.model!r}: generationConfig.translationConfig is only accepted by"
                " the Gemini API, not Vertex AI"
            )

    def transcription(self) -> None:
        if self.fam is not TRANSCRIBE_LIVE:
            return
        if isinstance(self.setup.input_audio_transcription, UnsetType):
            self.mutable().input_audio_transcription = AudioTranscriptionConfig()
            self.warn(
                "inputAudioTranscription",
                "required for transcription; enabled",
                "modalities",
            )


def adapt_setup(setup: Setup, *, vertex: bool) -> Setup:
    """Check ``setup`` against its model family and return a fixed copy (or ``setup``).

    Fixes (each one logged as a warning on the ``gemini_live`` logger):

    * tool ``behavior``: unset -> the family default (``NON_BLOCKING`` on 3.8,
      ``BLOCKING`` on 2.5 / 3.1); a behaviour the family does not accept is replaced by
      the one it does (``BLOCKING`` -> ``NON_BLOCKING`` on 3.8 Extended Thinking,
      ``NON_BLOCKING`` -> ``BLOCKING`` on 3.1). Only the unset-default case is silent.
    * ``thinkingConfig`` on 3.8 Live (no thinking) is removed; a missing required
      ``thinkingLevel`` (Extended Thinking) is set to ``LOW``; a level's case is fixed.
    * switches the family does not support but that were *off* (``proactivity`` on 3.1,
      ``enableAffectiveDialog: false`` on 3.x) are removed; ``proactivity`` on 3.8 (always
      on) is removed.
    * transcribe-live: ``responseModalities`` defaults to ``["TEXT"]`` and
      ``inputAudioTranscription`` is enabled; live-translate: the voice is removed.

    Raises :class:`~gemini_live.errors.ConfigError` (naming the model and the field) for a
    wrong thinking knob (a level on 2.5, a budget on 3.x), an unknown thinking level, a
    response modality the family does not produce, a feature switched on that the family
    does not have (affective dialog / proactivity on 3.x), and ``proactiveAudio: false``
    on 3.8, and ``translationConfig`` on Vertex AI (``vertex=True``; Gemini API only). An
    unknown model id is returned unchanged with one warning (the first time per process;
    DEBUG after that).
    """
    fam = family_of(setup.model)
    if fam is None:
        # Once per model id and process at WARNING (a server with hundreds of sessions
        # would repeat it for each); later sessions log it at DEBUG.
        first = setup.model not in _WARNED_UNKNOWN
        _WARNED_UNKNOWN.add(setup.model)
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "%s: unknown model; the setup is sent unchanged (known families: %s)",
            setup.model,
            ", ".join(f.name for f in FAMILIES),
        )
        return setup
    a = _Adapter(setup, fam, vertex)
    a.modalities()
    a.thinking()
    a.proactivity()
    a.affective_dialog()
    a.tools()
    a.speech()
    a.transcription()
    a.backend()
    return a.setup


def adapt_function_response(
    model: str, response: FunctionResponse, *, vertex: bool
) -> FunctionResponse:
    """Drop ``scheduling`` / ``willContinue`` where the family and backend ignore or reject
    them (Vertex drops ``scheduling``; ``willContinue`` is Gemini-API only; 3.1 has neither).

    Returns ``response`` itself when nothing changes; each removal is logged as a warning.
    Unknown models pass unchanged.
    """
    fam = family_of(model)
    if fam is None:
        return response
    drop_sched = not isinstance(response.scheduling, UnsetType) and not fam.scheduling_applies(
        vertex=vertex
    )
    drop_cont = not isinstance(response.will_continue, UnsetType) and not (
        fam.will_continue_applies(vertex=vertex)
    )
    if not (drop_sched or drop_cont):
        return response
    out = copy.copy(response)
    backend = "Vertex AI" if vertex else "the Gemini API"
    if drop_sched:
        out.scheduling = UNSET
        logger.warning(
            "%s: toolResponse.functionResponses[].scheduling is not applied on %s; removed",
            model,
            backend,
        )
    if drop_cont:
        out.will_continue = UNSET
        logger.warning(
            "%s: toolResponse.functionResponses[].willContinue is not accepted on %s; removed",
            model,
            backend,
        )
    return out


def text_message(model: str, text: str, *, vertex: bool) -> ClientMessage:
    """The frame that sends typed user text to ``model``, routed as the table says.

    ``realtimeInput.text`` (3.x, and 2.5 on the Gemini API) or a ``clientContent`` user
    turn with ``turnComplete: true`` (2.5 on Vertex AI). Unknown models get
    ``realtimeInput.text``. Raises :class:`~gemini_live.errors.ConfigError` for a family
    that takes no typed text (transcribe-live, live-translate) and for empty text.
    """
    if not text:
        raise ConfigError("text is empty")
    fam = family_of(model)
    route: TextRoute = "realtime_input" if fam is None else fam.text_route_for(vertex=vertex)
    if route == "none":
        assert fam is not None
        raise ConfigError(f"model {model!r} ({fam.title}) does not take typed text input")
    if route == "client_content":
        return ClientMessage(
            client_content=ClientContent(turns=[Content.text(text)], turn_complete=True)
        )
    return ClientMessage(realtime_input=RealtimeInput(text=text))
