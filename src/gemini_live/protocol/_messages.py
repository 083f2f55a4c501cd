"""What the app hands a ``send_*``, checked and built into a client message (no state).

Each function raises a typed error for a bad argument (nothing is queued then) or returns
the message; :func:`classify` says what a checked message carries, which decides how the
outbox treats it (:class:`~gemini_live.protocol._outbox.Kind`, turn end, audio seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from gemini_live._pcm import INPUT_RATE, parse_pcm_rate
from gemini_live.codec import check_client_message, encode_client
from gemini_live.errors import ConfigError, InvalidMessageError
from gemini_live.models import ModelFamily, text_message
from gemini_live.protocol._checks import check_types, not_a_list
from gemini_live.protocol._outbox import Kind
from gemini_live.types import (
    UNSET,
    ActivityEnd,
    ActivityStart,
    Blob,
    ClientContent,
    ClientMessage,
    Content,
    ContextUpdate,
    FunctionResponse,
    Part,
    RealtimeInput,
    SessionResumptionConfig,
    Setup,
    Tool,
    ToolResponse,
    ToolsUpdate,
)

__all__ = [
    "ACTIVITY_END",
    "ACTIVITY_START",
    "AUDIO_STREAM_END",
    "IMAGE_MIME_TYPES",
    "classify",
    "client_content",
    "context_update",
    "setup",
    "text",
    "tool_response",
    "video",
]

#: Image types the service takes as video frames.
IMAGE_MIME_TYPES: Final = ("image/jpeg", "image/png", "image/webp")

#: The three markers, built once.
ACTIVITY_START: Final = ClientMessage(realtime_input=RealtimeInput(activity_start=ActivityStart()))
ACTIVITY_END: Final = ClientMessage(realtime_input=RealtimeInput(activity_end=ActivityEnd()))
AUDIO_STREAM_END: Final = ClientMessage(realtime_input=RealtimeInput(audio_stream_end=True))

_REALTIME_KINDS: Final = {
    "audio": Kind.AUDIO,
    "video": Kind.VIDEO,
    "text": Kind.TEXT,
    "activity_start": Kind.ACTIVITY_START,
    "activity_end": Kind.ACTIVITY_END,
    "audio_stream_end": Kind.AUDIO_STREAM_END,
}


def setup(setup: Setup, resumption: bool, handle: str | None) -> bytes:
    """The setup frame: with resumption on, ``sessionResumption`` carries ``handle``."""
    if resumption:
        sr = setup.session_resumption
        base = sr if sr is not UNSET else SessionResumptionConfig()
        new_sr = SessionResumptionConfig(
            handle=handle if handle else UNSET, transparent=base.transparent
        )
        setup = msgspec.structs.replace(setup, session_resumption=new_sr)
    return encode_client(ClientMessage(setup=setup))


def text(model: str, text: object, vertex: bool) -> tuple[ClientMessage, Kind, bool | None]:
    """Typed user text: realtime input, or client content where the family wants it."""
    if not isinstance(text, str):
        raise InvalidMessageError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ConfigError("text is empty")
    msg = text_message(model, text, vertex=vertex)
    if msg.client_content is not UNSET:
        return msg, Kind.CLIENT_CONTENT, True
    return msg, Kind.TEXT, None


def video(frame: object, mime_type: str) -> ClientMessage:
    """One still frame (JPEG/PNG/WebP) as realtime input."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise InvalidMessageError(
            f"a video frame must be encoded image bytes, got {type(frame).__name__}"
        )
    if mime_type not in IMAGE_MIME_TYPES:
        raise ConfigError(f"video frames must be one of {', '.join(IMAGE_MIME_TYPES)}")
    if not len(frame):
        raise ConfigError("video frame is empty")
    return ClientMessage(realtime_input=RealtimeInput(video=Blob.of(frame, mime_type)))


def client_content(
    turns: Content | str | Sequence[Content] | None, turn_complete: object
) -> ClientMessage:
    """Turns for the conversation history (``turn_complete`` starts generation)."""
    if not isinstance(turn_complete, bool):
        raise InvalidMessageError("turn_complete must be a bool")
    items: list[Content] | None
    if turns is None:
        items = None
    elif isinstance(turns, str):
        if not turns:
            raise ConfigError("text is empty")
        items = [Content.text(turns)]
    elif isinstance(turns, Content):
        items = [turns]
    elif not_a_list(turns):
        raise InvalidMessageError(
            f"turns must be a str, a Content or a list of Content, got {type(turns).__name__}"
        )
    else:
        items = list(turns)
    return ClientMessage(
        client_content=ClientContent(
            turns=items if items is not None else UNSET, turn_complete=turn_complete
        )
    )


def tool_response(responses: FunctionResponse | Iterable[FunctionResponse]) -> ClientMessage:
    """Answers to tool calls (one or more ``FunctionResponse``)."""
    if isinstance(responses, FunctionResponse):
        items = [responses]
    elif not not_a_list(responses):
        items = list(responses)
    else:
        raise InvalidMessageError(
            f"expected FunctionResponse objects, got {type(responses).__name__}"
        )
    if not items:
        raise ConfigError("no function responses given")
    for r in items:
        if not isinstance(r, FunctionResponse):
            raise InvalidMessageError(f"expected FunctionResponse objects, got {type(r).__name__}")
    return ClientMessage(tool_response=ToolResponse(function_responses=items))


def context_update(
    model: str,
    family: ModelFamily | None,
    system_instruction: Content | str | None,
    tools: Sequence[Tool] | None,
) -> tuple[ClientMessage, Content | None, list[Tool] | None]:
    """A contextUpdate, with the instruction and tools it sets (for the next setup)."""
    if system_instruction is None and tools is None:
        raise ConfigError("send_context_update needs system_instruction and/or tools")
    fam = family
    if fam is not None and not fam.context_update and "context_update" not in fam.unverified:
        raise ConfigError(
            f"model {model!r} ({fam.title}) does not take contextUpdate; "
            "change the setup with update_setup() (it resumes with the new setup)"
        )
    si: Content | None = None
    if isinstance(system_instruction, str):
        si = Content(parts=[Part(text=system_instruction)])
    elif isinstance(system_instruction, Content):
        si = system_instruction
    elif system_instruction is not None:
        raise InvalidMessageError(
            "system_instruction must be a str or a Content, got "
            f"{type(system_instruction).__name__}"
        )
    tool_list: list[Tool] | None = None
    if tools is not None:
        if not_a_list(tools):
            raise InvalidMessageError(f"tools must be a list of Tool, got {type(tools).__name__}")
        tool_list = list(tools)
        bad = [t for t in tool_list if not isinstance(t, Tool)]
        if bad:
            raise InvalidMessageError(f"tools must be Tool objects, got {type(bad[0]).__name__}")
    msg = ClientMessage(
        context_update=ContextUpdate(
            system_instruction=si if si is not None else UNSET,
            tools=ToolsUpdate(tools=tool_list) if tool_list is not None else UNSET,
        )
    )
    return msg, si, tool_list


def classify(message: object) -> tuple[ClientMessage, str, Kind, bool | None, float]:
    """Check any client message (types, one field, one realtime payload); returns it with
    its field, kind, turn end (None: the kind's default) and seconds of audio."""
    if not isinstance(message, ClientMessage):
        raise InvalidMessageError(f"expected a types.ClientMessage, got {type(message).__name__}")
    if message.setup is not UNSET:
        raise ConfigError("setup is sent by the session itself; use update_setup()")
    field = check_client_message(message)
    check_types(message, ClientMessage, field)
    turn_end: bool | None = None
    audio_s = 0.0
    if field == "realtime_input":
        ri = message.realtime_input
        assert ri is not UNSET
        payload = next(k for k in _REALTIME_KINDS if getattr(ri, k) is not UNSET)
        kind = _REALTIME_KINDS[payload]
        if kind is Kind.AUDIO:
            blob = ri.audio
            assert blob is not UNSET
            mime = blob.mime_type if blob.mime_type is not UNSET else ""
            rate = parse_pcm_rate(mime, INPUT_RATE)
            audio_s = len(blob.data) * 3 / 4 / (2 * rate)
    elif field == "client_content":
        kind = Kind.CLIENT_CONTENT
        cc = message.client_content
        assert cc is not UNSET
        turn_end = cc.turn_complete is True
    elif field == "tool_response":
        kind = Kind.TOOL_RESPONSE
    else:
        kind = Kind.CONTEXT_UPDATE
    return message, field, kind, turn_end, audio_s
