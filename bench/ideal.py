"""The codec of the ideal pure-Python clients (the clients themselves are in ``bench.modes``).

The two ideal clients are the least a general Live client written in Python does:

* ``ideal-cb``, the **ideal callback client**: picows callbacks; each server frame is
  decoded by msgspec into small Structs (only the fields a voice app reads), the audio is
  base64-decoded by pybase64, and **one event object per frame** is handed to the app's
  callback inside the frame callback. Sending writes the chunk's base64 (pybase64) into
  the audio message, whose bytes around the base64 msgspec built once.
* ``ideal-queue``, the **ideal queue client**: the same, but the frame callback puts the
  event into an ``asyncio.Queue`` and a consumer task takes it out and calls the app:
  the cost of an ``async for``-style API with one wake-up per event.

Unlike the transport floor, both are real clients: every frame is decoded in full (no
guessing by the first bytes, no pre-built frames), bad JSON or a wrong type raises, and
nothing a voice app reads is skipped. They do no more: no resumption window, no stats,
no checks beyond what msgspec's types give. They are the reference points of the
instruction gate (``python -m bench.instructions``).
"""

from __future__ import annotations

from typing import Final

import msgspec
import pybase64

from bench.common import IN_MIME, MODEL

# -- the server's messages, as far as a voice app reads them --------------------------------


class InlineData(msgspec.Struct, rename="camel", gc=False):
    mime_type: str = ""
    data: str = ""


class Part(msgspec.Struct, rename="camel", gc=False):
    inline_data: InlineData | None = None
    text: str | None = None


class Content(msgspec.Struct, rename="camel"):
    parts: list[Part] = []


class Transcription(msgspec.Struct, gc=False):
    text: str = ""


class ServerContent(msgspec.Struct, rename="camel"):
    model_turn: Content | None = None
    input_transcription: Transcription | None = None
    output_transcription: Transcription | None = None
    turn_complete: bool = False
    interrupted: bool = False


class Usage(msgspec.Struct, rename="camel", gc=False):
    prompt_token_count: int = 0
    response_token_count: int = 0
    total_token_count: int = 0


class ResumptionUpdate(msgspec.Struct, rename="camel", gc=False):
    new_handle: str | None = None
    resumable: bool = False


class GoAway(msgspec.Struct, rename="camel", gc=False):
    time_left: str = ""


class SetupComplete(msgspec.Struct, gc=False):
    pass


class ServerMessage(msgspec.Struct, rename="camel"):
    setup_complete: SetupComplete | None = None
    server_content: ServerContent | None = None
    usage_metadata: Usage | None = None
    session_resumption_update: ResumptionUpdate | None = None
    go_away: GoAway | None = None


# -- the client's messages ------------------------------------------------------------------


class OutBlob(msgspec.Struct, rename="camel", gc=False):
    data: str  # base64
    mime_type: str


class RealtimeInput(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    audio: OutBlob | None = None
    text: str | None = None


class ClientMessage(msgspec.Struct, rename="camel", gc=False):
    realtime_input: RealtimeInput


class ResumptionConfig(msgspec.Struct, omit_defaults=True, gc=False):
    handle: str | None = None


class GenerationConfig(msgspec.Struct, rename="camel", gc=False):
    response_modalities: list[str]


class Setup(msgspec.Struct, rename="camel", gc=False):
    model: str
    generation_config: GenerationConfig
    session_resumption: ResumptionConfig


class SetupMessage(msgspec.Struct, gc=False):
    setup: Setup


# -- the event the app gets: one per frame --------------------------------------------------


class Event(msgspec.Struct, gc=False):
    """Everything one server frame says, in one object."""

    audio: bytes | None = None
    output_text: str | None = None
    input_text: str | None = None
    turn_complete: bool = False
    interrupted: bool = False
    usage: Usage | None = None
    handle: str | None = None
    go_away: bool = False
    setup_complete: bool = False
    closed: bool = False


_decode: Final = msgspec.json.Decoder(ServerMessage).decode
_encode: Final = msgspec.json.Encoder().encode
_b64decode: Final = pybase64.b64decode
#: What the clients hand the app once the connection is gone.
CLOSED: Final = Event(closed=True)


def to_event(payload: bytes | memoryview) -> Event:
    """One server frame -> one event (raises ``msgspec.ValidationError``/``DecodeError``)."""
    msg = _decode(payload)
    sc = msg.server_content
    if sc is not None:
        audio: bytes | None = None
        turn = sc.model_turn
        if turn is not None:
            for part in turn.parts:
                blob = part.inline_data
                if blob is not None:
                    pcm = _b64decode(blob.data, validate=True)
                    audio = pcm if audio is None else audio + pcm
        ot, it = sc.output_transcription, sc.input_transcription
        return Event(
            audio=audio,
            output_text=None if ot is None else ot.text,
            input_text=None if it is None else it.text,
            turn_complete=sc.turn_complete,
            interrupted=sc.interrupted,
            usage=msg.usage_metadata,
        )
    sru = msg.session_resumption_update
    if sru is not None:
        return Event(handle=sru.new_handle if sru.resumable else None)
    if msg.go_away is not None:
        return Event(go_away=True)
    if msg.setup_complete is not None:
        return Event(setup_complete=True)
    return Event(usage=msg.usage_metadata)


_MARK: Final = "@@AUDIO@@"
#: The audio message around its base64 (built once by msgspec): the message has one
#: shape, so the client writes only the base64 (pybase64) into it per chunk.
_AUDIO_HEAD, _AUDIO_TAIL = _encode(
    ClientMessage(RealtimeInput(audio=OutBlob(_MARK, IN_MIME)))
).split(_MARK.encode())
_b64encode: Final = pybase64.b64encode


def audio_frame(pcm: bytes) -> bytes:
    """A ``realtimeInput.audio`` message for 16 kHz PCM16."""
    return b"".join((_AUDIO_HEAD, _b64encode(pcm), _AUDIO_TAIL))


def text_frame(text: str) -> bytes:
    return _encode(ClientMessage(RealtimeInput(text=text)))


def setup_frame(handle: str | None) -> bytes:
    setup = Setup(
        model=MODEL,
        generation_config=GenerationConfig(response_modalities=["AUDIO"]),
        session_resumption=ResumptionConfig(handle=handle),
    )
    return _encode(SetupMessage(setup))
