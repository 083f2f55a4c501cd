"""Tolerant decoding of client frames, the way the real service's proto3 JSON parser reads them.

The official Python SDK sends a mix of camelCase and snake_case keys (``realtime_input``,
``mime_type``, ``voice_config`` ...) and base64 in the URL-safe alphabet. The service accepts
all of that, so the fake server must too:

* keys are normalised to lowerCamelCase recursively, except inside free-form user data
  (function-call ``args``, function ``response`` payloads, JSON schemas, the property names
  of an OpenAPI ``parameters`` schema, ``partialArgs``);
* every Blob ``data`` is re-encoded in the standard base64 alphabet (after checking that it
  decodes at all).

Frames that are plain camelCase with no ``_`` anywhere take the fast path straight through
:func:`gemini_live.codec.decode_client`.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

import msgspec
import pybase64

from gemini_live.codec import decode_client
from gemini_live.errors import MalformedMessage
from gemini_live.testing._canned import bad_input_rate
from gemini_live.types import UNSET, Blob, ClientMessage, Content, b64decode_any

__all__ = ["FrameError", "decode_client_tolerant", "normalize_keys", "to_camel"]

_SNAKE: Final = re.compile(r"_([a-z0-9])")

#: Values under these keys are user data: copied verbatim, keys untouched.
_FREEFORM: Final = frozenset(
    {"args", "response", "parametersJsonSchema", "responseJsonSchema", "partialArgs", "labels"}
)
#: OpenAPI Schema keys whose value is itself a Schema (or a list of them).
_SCHEMA_CHILD: Final = frozenset({"items", "anyOf", "additionalProperties", "not"})


class FrameError(ValueError):
    """A client frame the service would answer with 1007 "invalid argument"."""


@functools.lru_cache(maxsize=1024)
def to_camel(key: str) -> str:
    """``mime_type`` -> ``mimeType``; camelCase keys pass through unchanged."""
    if "_" not in key:
        return key
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


def _norm_schema(obj: Any) -> Any:
    """Normalise an OpenAPI Schema: schema keys are camel-cased, property names are not."""
    if isinstance(obj, list):
        return [_norm_schema(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        ck = to_camel(key)
        if ck == "properties" and isinstance(value, dict):
            out[ck] = {name: _norm_schema(sub) for name, sub in value.items()}
        elif ck in _SCHEMA_CHILD:
            out[ck] = _norm_schema(value)
        else:
            # enum / default / example / description ... are user values.
            out[ck] = value
    return out


def normalize_keys(obj: Any, *, _in_declaration: bool = False) -> Any:
    """Return ``obj`` with every protocol key in lowerCamelCase (user data untouched)."""
    if isinstance(obj, list):
        return [normalize_keys(v, _in_declaration=_in_declaration) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        ck = to_camel(key)
        if _in_declaration and ck in ("parameters", "response"):
            out[ck] = _norm_schema(value)
        elif ck in _FREEFORM:
            out[ck] = value
        else:
            out[ck] = normalize_keys(value, _in_declaration=ck == "functionDeclarations")
    return out


def _fix_blob(blob: Blob) -> bytes:
    """Check that ``blob.data`` is base64 (and an audio MIME type's rate usable) and
    rewrite the data in the standard alphabet."""
    if isinstance(blob.mime_type, str) and blob.mime_type.startswith("audio/"):
        why = bad_input_rate(blob.mime_type)
        if why is not None:
            raise FrameError(why)
    try:
        raw = b64decode_any(blob.data)
    except ValueError:
        raise FrameError("blob data is not base64") from None
    data = blob.data
    if "-" in data or "_" in data or len(data) % 4:
        blob.data = pybase64.b64encode_as_string(raw)
    return raw


def _fix_content(content: Content | Any) -> None:
    if not isinstance(content, Content) or content.parts is UNSET:
        return
    for part in content.parts:
        if isinstance(part.inline_data, Blob):
            _fix_blob(part.inline_data)


def _fix_dict_parts(parts: Any) -> None:
    """``FunctionResponse.parts`` are untyped dicts: fix their inline data in place."""
    if not isinstance(parts, list):
        return
    for part in parts:
        if isinstance(part, dict):
            blob = part.get("inlineData")
            if isinstance(blob, dict) and isinstance(blob.get("data"), str):
                try:
                    raw = b64decode_any(blob["data"])
                except ValueError:
                    raise FrameError("blob data is not base64") from None
                blob["data"] = pybase64.b64encode_as_string(raw)


def normalize_blobs(msg: ClientMessage) -> bytes:
    """Rewrite every Blob of ``msg`` to standard base64; return the decoded realtime audio.

    Raises :class:`FrameError` when some ``data`` is not base64.
    """
    audio = b""
    ri = msg.realtime_input
    if ri is not UNSET:
        if isinstance(ri.audio, Blob):
            audio = _fix_blob(ri.audio)
        if isinstance(ri.video, Blob):
            _fix_blob(ri.video)
        if ri.media_chunks is not UNSET:
            chunks = []
            for blob in ri.media_chunks:
                raw = _fix_blob(blob)
                if isinstance(blob.mime_type, str) and blob.mime_type.startswith("audio/"):
                    chunks.append(raw)
            audio = b"".join(chunks)
    cc = msg.client_content
    if cc is not UNSET and cc.turns is not UNSET:
        for turn in cc.turns:
            _fix_content(turn)
    setup = msg.setup
    if setup is not UNSET:
        _fix_content(setup.system_instruction)
    tr = msg.tool_response
    if tr is not UNSET:
        for fr in tr.function_responses:
            if fr.parts is not UNSET:
                _fix_dict_parts(fr.parts)
    cu = msg.context_update
    if cu is not UNSET:
        _fix_content(cu.system_instruction)
    return audio


def decode_client_tolerant(data: bytes | str) -> tuple[ClientMessage, bytes]:
    """Decode one client frame; return the message and its decoded realtime audio bytes.

    Raises :class:`FrameError` for anything the service would reject as an invalid
    argument: bad JSON, wrong types, not exactly one top-level message kind, bad base64.
    """
    raw = data.encode() if isinstance(data, str) else data
    msg: ClientMessage
    if b"_" not in raw:
        try:
            msg = decode_client(raw)
        except MalformedMessage as exc:
            raise FrameError(str(exc)) from None
    else:
        try:
            obj = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise FrameError(f"invalid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise FrameError("a client frame must be a JSON object")
        try:
            msg = msgspec.convert(normalize_keys(obj), ClientMessage, strict=False)
        except msgspec.ValidationError as exc:
            raise FrameError(str(exc)) from None
    kinds = [f for f in ClientMessage.__struct_fields__ if getattr(msg, f) is not UNSET]
    if len(kinds) != 1:
        raise FrameError(f"expected exactly one message kind, got {kinds or 'none'}")
    audio = normalize_blobs(msg)
    return msg, audio


def message_kind(msg: ClientMessage) -> str:
    """The snake_case name of the one field set in ``msg`` (e.g. ``"realtime_input"``)."""
    for f in ClientMessage.__struct_fields__:
        if getattr(msg, f) is not UNSET:
            return f
    return ""
