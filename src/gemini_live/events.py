"""Semantic events: what the application sees.

One server frame becomes an ordered list of events (:func:`from_server_message`). The
order within a frame is fixed:

1. ``SetupComplete``
2. ``VoiceActivity`` / ``VadSignal`` (early barge-in hints)
3. ``Interrupted`` (so playback is flushed before any audio of the same frame)
4. ``ToolCallCancellation``
5. ``InputTranscription`` (interim first, then final)
6. every part of ``modelTurn`` in order: ``ModelText`` / ``ModelAudio`` / ``ModelPart``
7. ``OutputTranscription``, ``Grounding``
8. ``ToolCall``
9. ``GenerationComplete``, ``TurnComplete``
10. ``Usage``, ``SessionResumptionUpdate``, ``GoAway``, ``ErrorReport``

Empty objects carry nothing and produce no event: ``groundingMetadata: {}`` (Vertex sends
it on every turn end) and ``outputTranscription: {}`` / ``inputTranscription: {}``.

A *turn* ends at ``TurnComplete``; the *interaction* (the whole answer to one request)
ends at the ``TurnComplete`` whose :attr:`TurnComplete.interaction_done` is true. They
differ only on models that report ``interactionStatus: IN_PROGRESS`` (3.8 Extended
Thinking speaks fillers and closes several turns before the final answer).

Lifecycle events (``Reconnecting``, ``Resumed``, ``Lagged``, ``Closed``,
``InteractionTimeout``) come from the session, not from frames. All events are frozen
msgspec Structs: cheap to build and usable in ``match`` statements with positional
patterns.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec
import pybase64

from gemini_live._pcm import OUTPUT_MIME, OUTPUT_RATE, parse_pcm_rate
from gemini_live.errors import MalformedMessage
from gemini_live.types import (
    UNSET,
    FunctionCall,
    Part,
    ServerMessage,
    Transcription,
    UnsetType,
    UsageMetadata,
    parse_duration,
)

__all__ = [
    "Closed",
    "ErrorReport",
    "Event",
    "GenerationComplete",
    "GoAway",
    "Grounding",
    "InputTranscription",
    "InteractionTimeout",
    "Interrupted",
    "Lagged",
    "ModelAudio",
    "ModelPart",
    "ModelText",
    "OutputTranscription",
    "Reconnecting",
    "Resumed",
    "SessionResumptionUpdate",
    "SetupComplete",
    "ToolCall",
    "ToolCallCancellation",
    "TranscriptWord",
    "TurnComplete",
    "Usage",
    "VadSignal",
    "VoiceActivity",
    "from_server_message",
]


class _Event(msgspec.Struct, frozen=True):
    pass


# -- reprs: sizes and durations, never payloads (audio, images, long text, handles) -------

_REPR_TEXT = 60


def _short(text: str) -> str:
    if len(text) <= _REPR_TEXT:
        return repr(text)
    return f"{text[:_REPR_TEXT]!r}… ({len(text)} chars)"


def _part_summary(part: Part) -> str:
    if part.text is not UNSET:
        return f"text {_short(part.text)}"
    blob = part.inline_data
    if blob is not UNSET:
        mime = blob.mime_type if blob.mime_type is not UNSET else "?"
        size = len(blob.data) * 3 // 4 - blob.data[-2:].count("=")  # base64 text -> bytes
        return f"inline_data {mime}, {size} bytes"
    for name in (
        "file_data",
        "function_call",
        "function_response",
        "executable_code",
        "code_execution_result",
    ):
        if getattr(part, name) is not UNSET:
            return name
    return "empty"


class SetupComplete(_Event, frozen=True):
    """The service accepted the setup; the connection is open.

    ``voice_consent_signature`` is set when a replicated voice's consent audio was
    verified: pass it as ``ReplicatedVoiceConfig.voice_consent_signature`` next time
    instead of the consent audio.
    """

    session_id: str | None = None
    voice_consent_signature: str | None = None


class ModelText(_Event, frozen=True):
    """Text from the model. ``thought`` marks thinking text (do not show or speak it)."""

    text: str
    thought: bool = False

    def __repr__(self) -> str:
        return f"ModelText({_short(self.text)}{', thought' if self.thought else ''})"


class ModelAudio(_Event, frozen=True, gc=False):
    """Model speech: PCM16 little-endian mono bytes at ``sample_rate`` (normally 24 kHz)."""

    data: bytes
    sample_rate: int = OUTPUT_RATE

    def __repr__(self) -> str:
        n = len(self.data)
        ms = n / 2 / self.sample_rate * 1000 if self.sample_rate else 0.0
        return f"ModelAudio({n} bytes, {ms:.1f} ms at {self.sample_rate} Hz)"


class ModelPart(_Event, frozen=True):
    """Any other model part (non-audio inline data, file data, code, code results)."""

    part: Part

    def __repr__(self) -> str:
        return f"ModelPart({_part_summary(self.part)})"


class GenerationComplete(_Event, frozen=True):
    """The model finished generating this response (not sent for interrupted turns)."""


class TurnComplete(_Event, frozen=True):
    """The turn is over. ``interaction_status`` IN_PROGRESS means more is coming (3.8 ET).

    Use :attr:`interaction_done` to find the end of the whole answer.
    """

    reason: str | None = None
    interaction_status: str | None = None
    waiting_for_input: bool = False

    @property
    def interaction_done(self) -> bool:
        """True unless the service said ``IN_PROGRESS``: ``IDLE``, the deprecated
        ``REQUIRES_ACTION`` and no status at all (models before 3.8 ET) end the interaction."""
        return self.interaction_status != "IN_PROGRESS"


class InteractionTimeout(_Event, frozen=True):
    """The interaction stayed ``IN_PROGRESS`` for ``seconds`` with no IDLE: treat it as over.

    Emitted by the session's watchdog (see :class:`gemini_live.watchdog.InteractionWatchdog`);
    consumers that wait for the end of an interaction end it here too.
    """

    seconds: float


class Interrupted(_Event, frozen=True):
    """User activity cut the generation: flush queued playback now."""


class TranscriptWord(msgspec.Struct, frozen=True):
    """One word of a transcript with its offsets in seconds (when the service sends them)."""

    word: str
    start: float | None = None
    end: float | None = None


class InputTranscription(_Event, frozen=True):
    """User speech transcript. ``interim`` fragments replace each other; finals append.

    ``language_code`` (BCP-47), ``speaker_label`` (diarization), ``words`` (word timing)
    and the fragment's ``start_offset`` / ``end_offset`` (seconds) are set when the
    service sends them (transcribe-live with ``wordTimestamp`` / ``diarization``).
    """

    text: str
    finished: bool = False
    interim: bool = False
    language_code: str | None = None
    speaker_label: str | None = None
    words: tuple[TranscriptWord, ...] = ()
    start_offset: float | None = None
    end_offset: float | None = None

    def __repr__(self) -> str:
        flags = "".join(
            f", {name}" for name in ("finished", "interim") if getattr(self, name) is True
        )
        return f"InputTranscription({_short(self.text)}{flags})"


class OutputTranscription(_Event, frozen=True, gc=False):
    """Model speech transcript fragment (concatenate fragments); metadata as for input."""

    text: str
    finished: bool = False
    language_code: str | None = None
    speaker_label: str | None = None
    words: tuple[TranscriptWord, ...] = ()
    start_offset: float | None = None
    end_offset: float | None = None

    def __repr__(self) -> str:
        return f"OutputTranscription({_short(self.text)}{', finished' if self.finished else ''})"


class Grounding(_Event, frozen=True):
    """Search grounding or URL-context metadata attached to the model's answer."""

    grounding_metadata: dict[str, Any] | None = None
    url_context_metadata: dict[str, Any] | None = None

    def __repr__(self) -> str:
        keys = sorted({*(self.grounding_metadata or {}), *(self.url_context_metadata or {})})
        return f"Grounding(keys={keys})"


class ToolCall(_Event, frozen=True):
    """The model asks for one or more function calls; answer every id exactly once."""

    calls: tuple[FunctionCall, ...]

    def __repr__(self) -> str:
        def one(call: FunctionCall) -> str:
            name = call.name if call.name is not UNSET else "?"
            ident = f" id={call.id}" if call.id is not UNSET else ""
            n = len(call.args) if call.args is not UNSET else 0
            return f"{name}({n} arg{'' if n == 1 else 's'}{ident})"

        return f"ToolCall({', '.join(map(one, self.calls))})"


class ToolCallCancellation(_Event, frozen=True):
    """These call ids are cancelled: stop them and do not answer them."""

    ids: tuple[str, ...]


class SessionResumptionUpdate(_Event, frozen=True):
    """A new resumption handle (only usable when ``resumable``)."""

    handle: str | None
    resumable: bool
    last_consumed_index: int | None = None

    def __repr__(self) -> str:
        handle = "None" if self.handle is None else f"<{len(self.handle)} chars>"
        return (
            f"SessionResumptionUpdate(handle={handle}, resumable={self.resumable},"
            f" last_consumed_index={self.last_consumed_index})"
        )


class GoAway(_Event, frozen=True):
    """The service will close this connection in ``time_left`` seconds."""

    time_left: float


class Usage(_Event, frozen=True):
    """A token-count snapshot (cumulative, not a delta)."""

    metadata: UsageMetadata

    def __repr__(self) -> str:
        m = self.metadata
        response = m.response_tokens()
        fields = (
            ("prompt", m.prompt_token_count),
            ("response", UNSET if response is None else response),
            ("total", m.total_token_count),
        )
        shown = ", ".join(f"{k}={v}" for k, v in fields if v is not UNSET)
        return f"Usage({shown})"


class VoiceActivity(_Event, frozen=True):
    """Server VAD: ``kind`` is ACTIVITY_START or ACTIVITY_END."""

    kind: str
    audio_offset: float | None = None


class VadSignal(_Event, frozen=True):
    """Explicit VAD signal (Vertex ``explicitVadSignal``)."""

    kind: str


class ErrorReport(_Event, frozen=True):
    """A frame that carried an error body instead of content."""

    body: dict[str, Any]


class Reconnecting(_Event, frozen=True):
    """The connection was lost or is being rotated; attempt ``attempt`` starts after ``delay``."""

    attempt: int
    delay: float
    cause: str


class Resumed(_Event, frozen=True):
    """Connected again. ``state_restored`` False means a fresh session.

    On a fresh session, ``reseeded`` says whether the conversation history was sent to
    it again and ``turns`` how many history turns the seed held. ``from_store`` is true
    on the first connection of a session that continued a stored conversation
    (:mod:`gemini_live.store`). ``handle_age`` is how old (seconds) the handle the
    connection tried was when it tried it (None: no handle, or its age is unknown).
    Also emitted on the first connection when it was to resume (a handle in the setup,
    or a stored conversation), so an app can tell a resumed session from a reseeded one.
    """

    state_restored: bool
    reseeded: bool = False
    turns: int = 0
    from_store: bool = False
    handle_age: float | None = None


class Lagged(_Event, frozen=True):
    """This subscriber fell behind; ``count`` events were skipped for it."""

    count: int


class Closed(_Event, frozen=True):
    """The session ended. Last event of every stream."""

    code: int | None = None
    reason: str = ""


#: Any event a session yields (a union of the event classes above; match on the class).
Event: TypeAlias = (
    SetupComplete
    | ModelText
    | ModelAudio
    | ModelPart
    | GenerationComplete
    | TurnComplete
    | Interrupted
    | InputTranscription
    | OutputTranscription
    | Grounding
    | ToolCall
    | ToolCallCancellation
    | SessionResumptionUpdate
    | GoAway
    | Usage
    | VoiceActivity
    | VadSignal
    | ErrorReport
    | Reconnecting
    | Resumed
    | Lagged
    | Closed
    | InteractionTimeout
)

_GENERATION_COMPLETE = GenerationComplete()
_INTERRUPTED = Interrupted()
_b64decode = pybase64.b64decode


def _audio_event(part: Part) -> ModelAudio | None:
    blob = part.inline_data
    if blob is UNSET:
        return None
    mime = blob.mime_type if blob.mime_type is not UNSET else ""
    if not mime.startswith("audio/"):
        return None
    try:
        data = _b64decode(blob.data, None, True)  # validate=True (positional: cheaper)
    except ValueError:
        try:
            data = blob.decoded()
        except ValueError as exc:
            raise MalformedMessage("inline audio is not valid base64") from exc
    rate = OUTPUT_RATE if mime == OUTPUT_MIME else parse_pcm_rate(mime, OUTPUT_RATE)
    return ModelAudio(data, rate)


def _offset(value: str | UnsetType, what: str) -> float | None:
    if isinstance(value, UnsetType):
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise MalformedMessage(f"bad transcription {what} {value!r}") from exc


def _words(t: Transcription) -> tuple[TranscriptWord, ...]:
    if isinstance(t.words, UnsetType):
        return ()
    return tuple(
        TranscriptWord(
            w.word if isinstance(w.word, str) else "",
            _offset(w.start_offset, "word startOffset"),
            _offset(w.end_offset, "word endOffset"),
        )
        for w in t.words
    )


def _empty(t: Transcription) -> bool:
    """``{}`` or an empty text with nothing else: no event."""
    return (
        not t.text
        and t.finished is not True
        and not t.words
        and isinstance(t.language_code, UnsetType)
        and isinstance(t.speaker_label, UnsetType)
    )


def _input_transcription(t: Transcription, interim: bool) -> InputTranscription:
    if (
        isinstance(t.language_code, UnsetType)
        and isinstance(t.speaker_label, UnsetType)
        and isinstance(t.words, UnsetType)
        and isinstance(t.start_offset, UnsetType)
        and isinstance(t.end_offset, UnsetType)
    ):
        # The common case: text only.
        return InputTranscription(
            t.text if t.text is not UNSET else "", t.finished is True, interim
        )
    return InputTranscription(
        t.text if t.text is not UNSET else "",
        t.finished is True,
        interim,
        t.language_code if t.language_code is not UNSET else None,
        t.speaker_label if t.speaker_label is not UNSET else None,
        _words(t),
        _offset(t.start_offset, "startOffset"),
        _offset(t.end_offset, "endOffset"),
    )


def _output_transcription(t: Transcription) -> OutputTranscription:
    if (
        isinstance(t.language_code, UnsetType)
        and isinstance(t.speaker_label, UnsetType)
        and isinstance(t.words, UnsetType)
        and isinstance(t.start_offset, UnsetType)
        and isinstance(t.end_offset, UnsetType)
    ):
        return OutputTranscription(t.text if t.text is not UNSET else "", t.finished is True)
    return OutputTranscription(
        t.text if t.text is not UNSET else "",
        t.finished is True,
        t.language_code if t.language_code is not UNSET else None,
        t.speaker_label if t.speaker_label is not UNSET else None,
        _words(t),
        _offset(t.start_offset, "startOffset"),
        _offset(t.end_offset, "endOffset"),
    )


def from_server_message(msg: ServerMessage) -> list[Event]:
    """Turn one decoded server frame into its ordered list of events."""
    out: list[Event] = []
    if msg.setup_complete is not UNSET:
        sc0 = msg.setup_complete
        sig = sc0.voice_consent_signature
        out.append(
            SetupComplete(
                sc0.session_id if sc0.session_id is not UNSET else None,
                sig.signature
                if sig is not UNSET and isinstance(sig.signature, str) and sig.signature
                else None,
            )
        )
    va = msg.voice_activity
    if va is not UNSET:
        kind = va.voice_activity_type if va.voice_activity_type is not UNSET else ""
        offset = None
        if va.audio_offset is not UNSET:
            try:
                offset = parse_duration(va.audio_offset)
            except ValueError as exc:
                raise MalformedMessage(f"bad audioOffset {va.audio_offset!r}") from exc
        out.append(VoiceActivity(kind, offset))
    vs = msg.voice_activity_detection_signal
    if vs is not UNSET:
        out.append(VadSignal(vs.vad_signal_type if vs.vad_signal_type is not UNSET else ""))
    sc = msg.server_content
    if sc is not UNSET and sc.interrupted is True:
        out.append(_INTERRUPTED)
    tcc = msg.tool_call_cancellation
    if tcc is not UNSET:
        out.append(ToolCallCancellation(tuple(tcc.ids) if tcc.ids is not UNSET else ()))
    if sc is not UNSET:
        t = sc.interim_input_transcription
        if t is not UNSET and not _empty(t):
            out.append(_input_transcription(t, True))
        t = sc.input_transcription
        if t is not UNSET and not _empty(t):
            out.append(_input_transcription(t, False))
        turn = sc.model_turn
        if turn is not UNSET and turn.parts is not UNSET:
            for part in turn.parts:
                if part.inline_data is not UNSET:
                    audio = _audio_event(part)
                    out.append(audio if audio is not None else ModelPart(part))
                elif part.text is not UNSET:
                    out.append(ModelText(part.text, part.thought is True))
                else:
                    out.append(ModelPart(part))
        t = sc.output_transcription
        if t is not UNSET and not _empty(t):
            out.append(_output_transcription(t))
        # UNSET and an empty object (Vertex: `groundingMetadata: {}` on every turn end)
        # carry nothing: no event.
        gm = sc.grounding_metadata if isinstance(sc.grounding_metadata, dict) else None
        um = sc.url_context_metadata if isinstance(sc.url_context_metadata, dict) else None
        if gm or um:
            out.append(Grounding(gm or None, um or None))
    tc = msg.tool_call
    if tc is not UNSET:
        out.append(ToolCall(tuple(tc.function_calls) if tc.function_calls is not UNSET else ()))
    if sc is not UNSET:
        if sc.generation_complete is True:
            out.append(_GENERATION_COMPLETE)
        if sc.turn_complete is True:
            out.append(
                TurnComplete(
                    sc.turn_complete_reason if sc.turn_complete_reason is not UNSET else None,
                    sc.interaction_status if sc.interaction_status is not UNSET else None,
                    sc.waiting_for_input is True,
                )
            )
    if msg.usage_metadata is not UNSET:
        out.append(Usage(msg.usage_metadata))
    sru = msg.session_resumption_update
    if sru is not UNSET:
        out.append(
            SessionResumptionUpdate(
                sru.new_handle if sru.new_handle is not UNSET and sru.new_handle else None,
                sru.resumable is True,
                sru.last_consumed_client_message_index
                if sru.last_consumed_client_message_index is not UNSET
                else None,
            )
        )
    ga = msg.go_away
    if ga is not UNSET:
        try:
            left = parse_duration(ga.time_left) if ga.time_left is not UNSET else 0.0
        except ValueError as exc:
            raise MalformedMessage(f"bad goAway.timeLeft {ga.time_left!r}") from exc
        out.append(GoAway(max(0.0, left)))
    if msg.error is not UNSET:
        out.append(ErrorReport(msg.error))
    elif msg.code is not UNSET or msg.message is not UNSET or msg.status is not UNSET:
        body: dict[str, Any] = {}
        for key in ("code", "message", "status"):
            value = getattr(msg, key)
            if value is not UNSET:
                body[key] = value
        out.append(ErrorReport(body))
    return out
