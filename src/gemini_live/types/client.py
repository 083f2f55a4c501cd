"""Client -> server messages. Every frame is a :class:`ClientMessage` with one field set."""

from __future__ import annotations

from gemini_live.types._base import UNSET, UnsetType, WireStruct
from gemini_live.types.config import (
    AudioTranscriptionConfig,
    AvatarConfig,
    ContextWindowCompression,
    GenerationConfig,
    HistoryConfig,
    ProactivityConfig,
    RealtimeInputConfig,
    SafetySetting,
    SessionResumptionConfig,
    Tool,
)
from gemini_live.types.content import Blob, Content, FunctionResponse

__all__ = [
    "ActivityEnd",
    "ActivityStart",
    "ClientContent",
    "ClientMessage",
    "ContextUpdate",
    "RealtimeInput",
    "Setup",
    "ToolResponse",
    "ToolsUpdate",
]


class Setup(WireStruct):
    """The first (and only) setup of a connection (``BidiGenerateContentSetup``)."""

    model: str
    generation_config: GenerationConfig | UnsetType = UNSET
    system_instruction: Content | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    realtime_input_config: RealtimeInputConfig | UnsetType = UNSET
    session_resumption: SessionResumptionConfig | UnsetType = UNSET
    context_window_compression: ContextWindowCompression | UnsetType = UNSET
    input_audio_transcription: AudioTranscriptionConfig | UnsetType = UNSET
    output_audio_transcription: AudioTranscriptionConfig | UnsetType = UNSET
    proactivity: ProactivityConfig | UnsetType = UNSET
    #: Vertex-only.
    explicit_vad_signal: bool | UnsetType = UNSET
    history_config: HistoryConfig | UnsetType = UNSET
    avatar_config: AvatarConfig | UnsetType = UNSET
    safety_settings: list[SafetySetting] | UnsetType = UNSET
    labels: dict[str, str] | UnsetType = UNSET


class ClientContent(WireStruct):
    """Turns appended to the history; ``turn_complete=True`` starts (and interrupts) generation."""

    turns: list[Content] | UnsetType = UNSET
    turn_complete: bool | UnsetType = UNSET


class ActivityStart(WireStruct):
    """Manual VAD: the user started speaking (only with automatic detection disabled)."""


class ActivityEnd(WireStruct):
    """Manual VAD: the user stopped speaking."""


class RealtimeInput(WireStruct):
    """Streamed user input; exactly one field per frame."""

    audio: Blob | UnsetType = UNSET
    video: Blob | UnsetType = UNSET
    text: str | UnsetType = UNSET
    audio_stream_end: bool | UnsetType = UNSET
    activity_start: ActivityStart | UnsetType = UNSET
    activity_end: ActivityEnd | UnsetType = UNSET
    #: Deprecated mixed list; rejected by 3.x models. Decoded, never produced by us.
    media_chunks: list[Blob] | UnsetType = UNSET


class ToolResponse(WireStruct):
    """Answers to the model's function calls, each matched to a call by its id."""

    function_responses: list[FunctionResponse]


class ToolsUpdate(WireStruct):
    """Wrapper so that "clear all tools" (``tools=[]``) differs from "leave tools alone"."""

    tools: list[Tool]


class ContextUpdate(WireStruct):
    """Mid-session change of system instruction and/or tools (3.8 Live)."""

    system_instruction: Content | UnsetType = UNSET
    tools: ToolsUpdate | UnsetType = UNSET


class ClientMessage(WireStruct):
    """Envelope of every client frame; exactly one field must be set."""

    setup: Setup | UnsetType = UNSET
    client_content: ClientContent | UnsetType = UNSET
    realtime_input: RealtimeInput | UnsetType = UNSET
    tool_response: ToolResponse | UnsetType = UNSET
    context_update: ContextUpdate | UnsetType = UNSET
