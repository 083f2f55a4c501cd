"""Bytes <-> typed messages.

* :func:`encode_client` turns a :class:`~gemini_live.types.ClientMessage` into the UTF-8 JSON
  of one frame, after checking its shape (one top-level field, one realtime payload).
* :class:`AudioFrameEncoder` is the audio send fast path: a pre-built frame template around
  a base64 payload, no per-chunk objects.
* :func:`decode_server` parses a binary or text frame into a
  :class:`~gemini_live.types.ServerMessage`; any problem becomes
  :class:`~gemini_live.errors.MalformedMessage`.
* :func:`decode_events` is decode + :func:`gemini_live.events.from_server_message`.
* :func:`fast_events` (and :func:`fast_audio`) is the receive fast path for the most
  common frames, audio alone or with an output transcript, in the service's indented
  layout or compact JSON; anything else returns None and takes the general path.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec
import pybase64

from gemini_live._pcm import OUTPUT_MIME, OUTPUT_RATE, as_pcm16, pcm_mime
from gemini_live.errors import ConfigError, MalformedMessage
from gemini_live.events import Event, ModelAudio, OutputTranscription, from_server_message
from gemini_live.types import UNSET, ClientMessage, RealtimeInput, ServerMessage

__all__ = [
    "AudioFrameEncoder",
    "check_client_message",
    "decode_events",
    "decode_frame",
    "decode_server",
    "encode_client",
    "encode_server",
    "fast_audio",
    "fast_events",
]

_encoder: Final = msgspec.json.Encoder()
# Lax mode: int64 fields arrive as numbers or numeric strings (proto3 JSON).
_server_decoder: Final = msgspec.json.Decoder(ServerMessage, strict=False)
_client_decoder: Final = msgspec.json.Decoder(ClientMessage, strict=False)

_CLIENT_FIELDS: Final = ClientMessage.__struct_fields__
_REALTIME_FIELDS: Final = RealtimeInput.__struct_fields__


def check_client_message(msg: ClientMessage) -> str:
    """Return the name of the one field set in ``msg``; raise ConfigError otherwise."""
    set_fields = [f for f in _CLIENT_FIELDS if getattr(msg, f) is not UNSET]
    if len(set_fields) != 1:
        raise ConfigError(
            f"a client message must set exactly one field, got {len(set_fields)}"
            f" ({', '.join(set_fields) or 'none'})"
        )
    kind = set_fields[0]
    if kind == "realtime_input":
        ri = msg.realtime_input
        assert ri is not UNSET
        payloads = [f for f in _REALTIME_FIELDS if getattr(ri, f) is not UNSET]
        if len(payloads) != 1:
            raise ConfigError(
                "realtimeInput must carry exactly one payload per frame, got "
                f"{len(payloads)} ({', '.join(payloads) or 'none'})"
            )
        if payloads[0] == "media_chunks":
            raise ConfigError("realtimeInput.mediaChunks is deprecated and rejected by 3.x")
    return kind


def encode_client(msg: ClientMessage) -> bytes:
    """Check and encode one client frame."""
    check_client_message(msg)
    return _encoder.encode(msg)


def encode_server(msg: ServerMessage) -> bytes:
    """Encode one server frame (used by the fake server and benchmarks)."""
    return _encoder.encode(msg)


Frame = bytes | bytearray | memoryview | str

# What a hostile or broken frame can make msgspec raise besides DecodeError: invalid
# UTF-8 inside a string, lone surrogates in a str frame, absurd nesting depth.
_DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeError, RecursionError, ValueError)


def _raw(data: Frame) -> bytes:
    return data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)


def decode_server(data: Frame) -> ServerMessage:
    """Parse one server frame (binary or text) into a :class:`ServerMessage`."""
    try:
        return _server_decoder.decode(data)
    except _DECODE_ERRORS as exc:
        raise MalformedMessage(f"malformed server frame: {exc}", frame=_raw(data)) from None


def decode_client(data: Frame) -> ClientMessage:
    """Parse one camelCase client frame (used by tests and the fake server)."""
    try:
        return _client_decoder.decode(data)
    except _DECODE_ERRORS as exc:
        raise MalformedMessage(f"malformed client frame: {exc}", frame=_raw(data)) from None


# The most common frames by far are one 24 kHz audio part, alone or next to an output
# transcript fragment. The service sends them as indented JSON (2-space indent, trailing
# newline); other servers (and our fake server) send compact JSON. For both layouts the
# JSON around the base64 payload is known in advance: a frame that is exactly such a
# template, with a payload and a plain transcript (no escapes) in its holes, is decoded by
# comparing the literal pieces and base64-decoding the payload. Anything else (other
# fields, other whitespace, escapes, another rate) takes the general path. A tolerant
# matcher (a regular expression for any JSON whitespace) measured no faster than the
# general path, so it is not used. Tests fuzz this path against the general one.
_HOLE_T: Final = "@@T@@"
_HOLE_D: Final = "@@D@@"


def _layout(
    indent: int | None,
) -> tuple[tuple[tuple[Any, ...], ...], bytes, tuple[tuple[bytes, ...], ...]]:
    """The literal pieces of every fast-path frame in one JSON layout.

    Returns (audio first, transcript-first head, transcript first): per inlineData key
    order, ``(head, its length, tail + newline, tail, middle to the transcript, tail,
    tail + newline)`` for frames that start with the audio, and ``(middle to the payload,
    tail, tail + newline)`` after the shared head of frames that start with the transcript.
    """
    import json

    def pieces(content: dict[str, object]) -> list[bytes]:
        sep = (",", ":") if indent is None else None
        text = json.dumps({"serverContent": content}, indent=indent, separators=sep)
        return [p.encode() for p in _split_holes(text)]

    audio_first = []
    text_first = []
    head_t = b""
    for mime_first in (True, False):
        items = [("mimeType", OUTPUT_MIME), ("data", _HOLE_D)]
        blob = dict(items if mime_first else items[::-1])
        turn: dict[str, object] = {"modelTurn": {"parts": [{"inlineData": blob}]}}
        tr: dict[str, object] = {"outputTranscription": {"text": _HOLE_T}}
        head, tail = pieces(turn)
        head2, middle, tail2 = pieces({**turn, **tr})
        assert head2 == head
        audio_first.append((head, len(head), tail + b"\n", tail, middle, tail2, tail2 + b"\n"))
        head_t, middle_t, tail_t = pieces({**tr, **turn})
        text_first.append((middle_t, tail_t, tail_t + b"\n"))
    return tuple(audio_first), head_t, tuple(text_first)


def _split_holes(text: str) -> list[str]:
    out: list[str] = []
    rest = text
    while True:
        hits = [i for i in (rest.find(_HOLE_T), rest.find(_HOLE_D)) if i >= 0]
        if not hits:
            return [*out, rest]
        i = min(hits)
        out.append(rest[:i])
        rest = rest[i + len(_HOLE_T) :]


_LAYOUTS: Final = (_layout(None), _layout(2))
#: Frames are told apart by their first bytes: enough to see the first key inside
#: serverContent in both layouts. A frame of any other kind misses with one dict lookup.
_KEY_LEN: Final = 31
_DISPATCH: Final[dict[bytes, tuple[bool, tuple[Any, ...]]]] = {}
for _audio_first, _head_t, _text_first in _LAYOUTS:
    # The audio-first pieces with each tail's negative length (a slice start) and the
    # middle's length next to them.
    _DISPATCH[_audio_first[0][0][:_KEY_LEN]] = (
        True,
        tuple(
            (h, n, t_nl, -len(t_nl), t, -len(t), m, len(m), t2, t2_nl)
            for h, n, t_nl, t, m, t2, t2_nl in _audio_first
        ),
    )
    # The transcript-first pieces with the middle's length and each tail's negative
    # length next to them.
    _DISPATCH[_head_t[:_KEY_LEN]] = (
        False,
        (
            _head_t,
            len(_head_t),
            tuple((m, len(m), t_nl, -len(t_nl), t, -len(t)) for m, t, t_nl in _text_first),
        ),
    )
_b64decode: Final = pybase64.b64decode
_bad_text: Final = re.compile(rb'[\\"\x00-\x1f]').search
#: A backslash as an int: ``int in bytes`` is a byte search (``bytes in bytes`` first
#: tries, and fails, to read the operand as an int, at a cost above the search's).
_BACKSLASH: Final = ord("\\")


def _fast_parts(data: object) -> tuple[bytes, str | None] | None:
    """(PCM, transcript or None) of a frame that fills a fast-path template, else None.

    The template match and the decoding in one function (the receive hot path): one dict
    lookup on the first bytes tells a frame of any other kind apart. The fixed pieces are
    compared as slices: ``startswith``, ``endswith`` and ``find`` with a start parse their
    arguments with the generic parser, a few hundred instructions per call (issue 24).
    The one search is for a quote (one byte, a plain ``memchr``): a long needle in a
    frame of some kilobytes takes a search with a costly set-up.
    """
    if type(data) is not bytes:
        return None
    hit = _DISPATCH.get(data[:_KEY_LEN])
    if hit is None:
        return None
    audio_first, candidates = hit
    raw: bytes
    if audio_first:
        for head, start, tail_nl, cut_nl, tail, cut, middle, mlen, tail2, tail2_nl in candidates:
            if data[:start] == head:  # the heads of the two key orders exclude each other
                # Audio alone (the most frequent frame, decoded right here): the payload
                # runs to the fixed tail. No search for its end: the strict base64 decode
                # refuses anything but base64 characters, so a frame that only starts and
                # ends like the template (a quote and more members in between) falls back
                # to the general decoder.
                if data[cut_nl:] == tail_nl:
                    try:
                        return _b64decode(data[start:cut_nl], None, True), None
                    except ValueError:  # bad base64
                        return None
                if data[cut:] == tail:
                    try:
                        return _b64decode(data[start:cut], None, True), None
                    except ValueError:
                        return None
                find = data.find
                stop = find(b'"', start)
                text_at = stop + mlen
                if stop < 0 or data[stop:text_at] != middle:
                    return None
                text_end = find(b'"', text_at)
                rest = data[text_end:]
                if text_end < 0 or rest not in (tail2, tail2_nl):
                    return None
                raw = data[text_at:text_end]
                break
        else:
            return None
    else:
        head_t, text_at, text_first = candidates
        if data[:text_at] != head_t:
            return None
        text_end = data.find(b'"', text_at)
        if text_end < 0:
            return None
        for middle, mlen, tail_nl, cut_nl, tail, cut in text_first:
            start = text_end + mlen
            if data[text_end:start] == middle:
                # The payload runs to the fixed tail, as for audio alone: no search for
                # its end (the strict base64 decode refuses a quote or anything else
                # that is not base64 in between).
                if data[cut_nl:] == tail_nl:
                    stop = len(data) + cut_nl
                elif data[cut:] == tail:
                    stop = len(data) + cut
                else:
                    return None
                if stop < start:  # the tail overlaps the middle: not the template
                    return None
                raw = data[text_at:text_end]
                break
        else:
            return None
    # Audio and a transcript. Strict base64 validation also rejects a backslash in the
    # payload (an escape), so a frame that merely looks like a template falls back to the
    # general decoder.
    try:
        pcm = _b64decode(data[start:stop], None, True)  # validate=True
        text = raw.decode()
    except ValueError:  # bad base64, invalid UTF-8 in the transcript
        return None
    # An escape or a control character in the transcript: leave it to the JSON parser.
    # A printable text has no control character, so only the backslash is left to rule
    # out (the pattern runs only for the rare text with other unprintable characters).
    if _BACKSLASH in raw or (not text.isprintable() and _bad_text(raw) is not None):
        return None
    return pcm, text


def fast_audio(data: object) -> bytes | None:
    """PCM of a frame that is exactly one 24 kHz audio part, else None (use the full path).

    Compact and indented JSON alike (see :func:`fast_events` for audio + transcript).
    """
    parts = _fast_parts(data)
    if parts is None or parts[1] is not None:
        return None
    return parts[0]


def fast_events(data: object) -> list[Event] | None:
    """The events of a frame that is one 24 kHz audio part, optionally with an
    ``outputTranscription`` text, else None (use :func:`decode_frame`).

    Returns exactly what :func:`decode_events` returns for such a frame: the audio, then
    the transcript. The frame carries no lifecycle fields, so nothing else needs it.
    """
    parts = _fast_parts(data)
    if parts is None:
        return None
    pcm, text = parts
    if not text:  # an empty transcript is no event (as in events.from_server_message)
        return [ModelAudio(pcm, OUTPUT_RATE)]
    return [ModelAudio(pcm, OUTPUT_RATE), OutputTranscription(text)]


def decode_frame(data: Frame) -> tuple[ServerMessage, list[Event]]:
    """Parse one server frame to its message and its ordered events.

    Every failure, also one found after parsing (bad base64 audio, a bad Duration), is a
    :class:`MalformedMessage` carrying the start of the frame.
    """
    msg = decode_server(data)
    try:
        return msg, from_server_message(msg)
    except MalformedMessage as exc:
        if exc.frame is None:
            exc.frame = _raw(data)[:200]
        raise


def decode_events(data: Frame) -> list[Event]:
    """Parse one server frame straight to its ordered events (see :func:`decode_frame`)."""
    return decode_frame(data)[1]


#: What follows the base64 in every audio frame.
AUDIO_FRAME_SUFFIX: Final = b'"}}}'


class AudioFrameEncoder:
    """Encodes PCM16 chunks into complete ``realtimeInput.audio`` frames.

    The JSON around the payload is built once per sample rate; each call only
    base64-encodes the chunk and joins three byte strings. Input is validated by
    :func:`gemini_live.audio.as_pcm16` (odd byte counts and wrong dtypes raise
    :class:`~gemini_live.errors.AudioFormatError`).
    """

    __slots__ = ("_prefix", "_suffix", "empty_frame_size", "mime_type", "rate")

    def __init__(self, rate: int = 16000) -> None:
        self.mime_type = pcm_mime(rate)
        self.rate = rate
        self._prefix = (
            b'{"realtimeInput":{"audio":{"mimeType":"' + self.mime_type.encode() + (b'","data":"')
        )
        self._suffix = AUDIO_FRAME_SUFFIX
        #: Length of a frame with no audio (to reject empty chunks cheaply).
        self.empty_frame_size = len(self._prefix) + len(self._suffix)

    @property
    def prefix(self) -> bytes:
        """The frame's bytes before the base64 payload."""
        return self._prefix

    def encode(self, pcm: object) -> bytes:
        """One frame for ``pcm`` (bytes, memoryview, array('h'), numpy int16/float32)."""
        raw = as_pcm16(pcm)
        return b"".join((self._prefix, pybase64.b64encode(raw), self._suffix))
