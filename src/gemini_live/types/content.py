"""Content shared by client and server messages: parts, blobs, function calls."""

from __future__ import annotations

import binascii

import pybase64

from gemini_live.types._base import UNSET, JSONObject, UnsetType, WireStruct

__all__ = [
    "Blob",
    "CodeExecutionResult",
    "Content",
    "ExecutableCode",
    "FileData",
    "FunctionCall",
    "FunctionResponse",
    "Part",
    "Transcription",
    "TranscriptionWord",
    "b64decode_any",
]

_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64decode_any(data: str | bytes) -> bytes:
    """Decode base64 the one lenient way the library accepts it (the single policy).

    Standard or URL-safe alphabet, padded or not, line breaks and spaces ignored.

    Raises ``ValueError`` (``binascii.Error``) on anything that is not base64, including a
    truncated payload (a length that no encoder produces).
    """
    try:
        raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    except (UnicodeEncodeError, TypeError):
        raise ValueError("not valid base64") from None
    try:
        return pybase64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        pass
    fixed = b"".join(raw.split()).translate(_URLSAFE).rstrip(b"=")
    if len(fixed) % 4 == 1:
        raise ValueError("not valid base64 (truncated)")
    fixed += b"=" * (-len(fixed) % 4)
    try:
        return pybase64.b64decode(fixed, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


class Blob(WireStruct):
    """Inline bytes with a MIME type. ``data`` holds the base64 text as sent on the wire."""

    data: str
    mime_type: str | UnsetType = UNSET
    display_name: str | UnsetType = UNSET

    @classmethod
    def of(cls, raw: bytes | bytearray | memoryview, mime_type: str) -> Blob:
        """Build a Blob from raw bytes (base64-encodes them)."""
        return cls(data=pybase64.b64encode_as_string(raw), mime_type=mime_type)

    def decoded(self) -> bytes:
        """The raw bytes (standard or URL-safe base64 accepted)."""
        return b64decode_any(self.data)


class FileData(WireStruct):
    """A reference to a file (Files API URI on the Gemini API, ``gs://`` on Vertex)."""

    file_uri: str
    mime_type: str | UnsetType = UNSET
    display_name: str | UnsetType = UNSET


class FunctionCall(WireStruct):
    """A call the model asks the client to run."""

    name: str | UnsetType = UNSET
    id: str | UnsetType = UNSET
    args: JSONObject | UnsetType = UNSET
    #: Vertex-only streamed arguments.
    partial_args: list[JSONObject] | UnsetType = UNSET
    will_continue: bool | UnsetType = UNSET


class FunctionResponse(WireStruct):
    """The client's answer to one :class:`FunctionCall`.

    ``scheduling`` (``SILENT`` / ``WHEN_IDLE`` / ``INTERRUPT``) and ``will_continue`` are
    top-level fields, not part of ``response``.
    """

    name: str
    response: JSONObject
    id: str | UnsetType = UNSET
    scheduling: str | UnsetType = UNSET
    will_continue: bool | UnsetType = UNSET
    parts: list[JSONObject] | UnsetType = UNSET


class ExecutableCode(WireStruct):
    """Code the model wrote for the code-execution tool, with its language."""

    code: str | UnsetType = UNSET
    language: str | UnsetType = UNSET


class CodeExecutionResult(WireStruct):
    """The outcome and output of running the model's code."""

    outcome: str | UnsetType = UNSET
    output: str | UnsetType = UNSET


class Part(WireStruct):
    """One piece of a :class:`Content`; exactly one payload field is normally set."""

    text: str | UnsetType = UNSET
    inline_data: Blob | UnsetType = UNSET
    file_data: FileData | UnsetType = UNSET
    function_call: FunctionCall | UnsetType = UNSET
    function_response: FunctionResponse | UnsetType = UNSET
    executable_code: ExecutableCode | UnsetType = UNSET
    code_execution_result: CodeExecutionResult | UnsetType = UNSET
    thought: bool | UnsetType = UNSET
    thought_signature: str | UnsetType = UNSET
    video_metadata: JSONObject | UnsetType = UNSET


class Content(WireStruct):
    """A turn: a role (``user`` / ``model``) and its parts."""

    parts: list[Part] | UnsetType = UNSET
    role: str | UnsetType = UNSET

    @classmethod
    def text(cls, text: str, role: str = "user") -> Content:
        """A single-part text turn."""
        return cls(parts=[Part(text=text)], role=role)


class TranscriptionWord(WireStruct):
    """One transcribed word with its start and end offsets (when word timestamps are on)."""

    word: str | UnsetType = UNSET
    start_offset: str | UnsetType = UNSET
    end_offset: str | UnsetType = UNSET


class Transcription(WireStruct):
    """A transcript fragment of user or model speech."""

    text: str | UnsetType = UNSET
    finished: bool | UnsetType = UNSET
    language_code: str | UnsetType = UNSET
    speaker_label: str | UnsetType = UNSET
    words: list[TranscriptionWord] | UnsetType = UNSET
    start_offset: str | UnsetType = UNSET
    end_offset: str | UnsetType = UNSET
