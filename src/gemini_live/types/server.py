"""Server -> client messages. One frame may carry several top-level fields at once."""

from __future__ import annotations

import msgspec

from gemini_live.types._base import UNSET, JSONObject, UnsetType, WireStruct
from gemini_live.types.config import VoiceConsentSignature
from gemini_live.types.content import Content, FunctionCall, Transcription

__all__ = [
    "GoAway",
    "ModalityTokenCount",
    "ServerContent",
    "ServerMessage",
    "SessionResumptionUpdate",
    "SetupComplete",
    "ToolCall",
    "ToolCallCancellation",
    "UsageMetadata",
    "VoiceActivity",
    "VoiceActivityDetectionSignal",
]


class SetupComplete(WireStruct):
    """The service accepted the setup; the first frame of every connection that opened."""

    session_id: str | UnsetType = UNSET
    voice_consent_signature: VoiceConsentSignature | UnsetType = UNSET


class ServerContent(WireStruct):
    """The model's output for the current turn: parts, transcriptions and the turn's end markers."""

    model_turn: Content | UnsetType = UNSET
    turn_complete: bool | UnsetType = UNSET
    interrupted: bool | UnsetType = UNSET
    generation_complete: bool | UnsetType = UNSET
    input_transcription: Transcription | UnsetType = UNSET
    output_transcription: Transcription | UnsetType = UNSET
    interim_input_transcription: Transcription | UnsetType = UNSET
    grounding_metadata: JSONObject | UnsetType = UNSET
    url_context_metadata: JSONObject | UnsetType = UNSET
    turn_complete_reason: str | UnsetType = UNSET
    waiting_for_input: bool | UnsetType = UNSET
    interaction_status: str | UnsetType = UNSET


class ToolCall(WireStruct):
    """The model asks for one or more function calls; each is answered by its ``id``."""

    function_calls: list[FunctionCall] | UnsetType = UNSET


class ToolCallCancellation(WireStruct):
    """Function calls (by id) the model no longer wants answered, e.g. after a barge-in."""

    ids: list[str] | UnsetType = UNSET


class ModalityTokenCount(WireStruct):
    """Tokens of one modality. ``token_count`` absent on the wire is 0 (proto3 default;
    Vertex leaves it out for zero counts)."""

    modality: str | UnsetType = UNSET
    token_count: int = 0


class UsageMetadata(WireStruct):
    """Token counts. Gemini API says ``response*``; Vertex says ``candidates*``.

    Use :meth:`response_tokens` to read either. Values are snapshots, not deltas.
    """

    prompt_token_count: int | UnsetType = UNSET
    cached_content_token_count: int | UnsetType = UNSET
    response_token_count: int | UnsetType = UNSET
    candidates_token_count: int | UnsetType = UNSET
    tool_use_prompt_token_count: int | UnsetType = UNSET
    thoughts_token_count: int | UnsetType = UNSET
    total_token_count: int | UnsetType = UNSET
    prompt_tokens_details: list[ModalityTokenCount] | UnsetType = UNSET
    cache_tokens_details: list[ModalityTokenCount] | UnsetType = UNSET
    response_tokens_details: list[ModalityTokenCount] | UnsetType = UNSET
    candidates_tokens_details: list[ModalityTokenCount] | UnsetType = UNSET
    tool_use_prompt_tokens_details: list[ModalityTokenCount] | UnsetType = UNSET
    traffic_type: str | UnsetType = UNSET
    service_tier: str | UnsetType = UNSET

    def response_tokens(self) -> int | None:
        """Response-side tokens under either backend's field name."""
        for v in (self.response_token_count, self.candidates_token_count):
            if not isinstance(v, UnsetType):
                return v
        return None

    def response_details(self) -> list[ModalityTokenCount]:
        for v in (self.response_tokens_details, self.candidates_tokens_details):
            if not isinstance(v, UnsetType):
                return v
        return []


class GoAway(WireStruct):
    """The server will close this connection after ``time_left`` (a Duration, e.g. ``"50s"``)."""

    time_left: str | float | UnsetType = UNSET


class SessionResumptionUpdate(WireStruct):
    """A new resumption handle (when ``resumable``) and the index of the last client message it
    covers."""

    new_handle: str | UnsetType = UNSET
    resumable: bool | UnsetType = UNSET
    #: int64: arrives as a number or a numeric string (both accepted).
    last_consumed_client_message_index: int | UnsetType = UNSET


class VoiceActivity(WireStruct):
    """Server VAD event. The wire key is ``type``."""

    voice_activity_type: str | UnsetType = msgspec.field(default=UNSET, name="type")
    audio_offset: str | float | UnsetType = UNSET


class VoiceActivityDetectionSignal(WireStruct):
    """A voice-activity signal from the service's detector (``vad_signal_type``)."""

    vad_signal_type: str | UnsetType = UNSET


class ServerMessage(WireStruct):
    """Envelope of every server frame; any subset of fields may be present."""

    setup_complete: SetupComplete | UnsetType = UNSET
    server_content: ServerContent | UnsetType = UNSET
    tool_call: ToolCall | UnsetType = UNSET
    tool_call_cancellation: ToolCallCancellation | UnsetType = UNSET
    usage_metadata: UsageMetadata | UnsetType = UNSET
    go_away: GoAway | UnsetType = UNSET
    session_resumption_update: SessionResumptionUpdate | UnsetType = UNSET
    voice_activity_detection_signal: VoiceActivityDetectionSignal | UnsetType = UNSET
    voice_activity: VoiceActivity | UnsetType = UNSET
    #: Error body some frames carry instead of the fields above: either nested under
    #: ``error`` or as top-level ``code`` / ``message`` / ``status``.
    error: JSONObject | UnsetType = UNSET
    code: int | UnsetType = UNSET
    message: str | UnsetType = UNSET
    status: str | UnsetType = UNSET
