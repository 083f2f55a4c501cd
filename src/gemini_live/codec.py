"""Bytes <-> typed messages.

* :func:`encode_client` turns a :class:`~gemini_live.types.ClientMessage` into the UTF-8 JSON
  of one frame, after checking its shape (one top-level field, one realtime payload).
* :class:`AudioFrameEncoder` is the audio send fast path: a pre-built frame template around
  a base64 payload, no per-chunk objects.
* :func:`decode_server` parses a binary or text frame into a
  :class:`~gemini_live.types.ServerMessage`; any problem becomes
  :class:`~gemini_live.errors.MalformedMessage`.
* :func:`decode_events` is decode + :func:`gemini_live.events.from_server_message`.
"""

from __future__ import annotations

from typing import Final

import msgspec
import pybase64

from gemini_live._pcm import OUTPUT_MIME, as_pcm16, pcm_mime
from gemini_live.errors import ConfigError, MalformedMessage
from gemini_live.events import Event, from_server_message
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


# The most common frame by far is one 24 kHz audio part and nothing else. Recognise its two
# compact key orders by prefix/suffix and decode only the base64; anything else (spaces,
# other fields, escapes) takes the general path, so this never changes a result.
_AUDIO_MIME: Final = OUTPUT_MIME.encode()
_PART_HEAD: Final = b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{'
_AUDIO_SHAPES: Final = tuple(
    (prefix, suffix, len(prefix), len(suffix))
    for prefix, suffix in (
        (_PART_HEAD + b'"mimeType":"' + _AUDIO_MIME + b'","data":"', b'"}}]}}}'),
        (_PART_HEAD + b'"data":"', b'","mimeType":"' + _AUDIO_MIME + b'"}}]}}}'),
    )
)
_b64decode: Final = pybase64.b64decode


def fast_audio(data: object) -> bytes | None:
    """PCM of a frame that is exactly one 24 kHz audio part, else None (use the full path).

    Strict base64 validation also rejects a quote or backslash in the middle, so a frame
    that merely starts and ends like an audio frame falls back to the general decoder.
    """
    if type(data) is not bytes:
        return None
    for prefix, suffix, n_prefix, n_suffix in _AUDIO_SHAPES:
        if data.startswith(prefix) and data.endswith(suffix):
            try:
                return _b64decode(data[n_prefix : len(data) - n_suffix], validate=True)
            except ValueError:
                return None
    return None


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
        self._suffix = b'"}}}'
        #: Length of a frame with no audio (to reject empty chunks cheaply).
        self.empty_frame_size = len(self._prefix) + len(self._suffix)

    def encode(self, pcm: object) -> bytes:
        """One frame for ``pcm`` (bytes, memoryview, array('h'), numpy int16/float32)."""
        raw = as_pcm16(pcm)
        return b"".join((self._prefix, pybase64.b64encode(raw), self._suffix))
