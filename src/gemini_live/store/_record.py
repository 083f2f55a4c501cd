"""The stored form of a conversation and the lease that lets one owner drive it."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Final

import msgspec

from gemini_live.errors import ConfigError, StoreFormatError
from gemini_live.history import HistoryEntry
from gemini_live.protocol import ProtocolSnapshot
from gemini_live.types import UNSET, Setup

__all__ = [
    "MAX_ID_CHARS",
    "MAX_STORED_TASKS",
    "MAX_TEXT_IDS",
    "READABLE_VERSIONS",
    "RECORD_VERSION",
    "ConversationRecord",
    "Lease",
    "TaskRecord",
    "check_id",
    "check_ttl",
    "decode_record",
    "encode_record",
    "setup_fingerprint",
]

#: Version of :class:`ConversationRecord`. Version 2 added ``text_ids`` and ``tasks``; a
#: version-1 record is read (with neither). A record of any other version is refused with
#: :class:`~gemini_live.errors.StoreFormatError` (never half-read).
RECORD_VERSION: Final = 2

#: Versions :func:`decode_record` reads (older ones are upgraded as they are read).
READABLE_VERSIONS: Final = (1, 2)

#: How many accepted client text ids a record keeps (the most recent ones).
MAX_TEXT_IDS: Final = 64

#: Long-running task records kept per conversation (running and undelivered ones first;
#: the oldest delivered ones make room).
MAX_STORED_TASKS: Final = 64

#: The longest conversation id accepted.
MAX_ID_CHARS: Final = 200

_ID = re.compile(r"[A-Za-z0-9._:@=+-]+")


class TaskRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One long-running tool call as a store keeps it (see :class:`~gemini_live.tools.ToolTask`).

    ``state`` is ``"running"``, ``"finished"``, ``"failed"``, ``"cancelled"``, ``"lost"``
    (its worker stopped and the tool is not idempotent) or ``"delivered"`` (the outcome
    reached the model; ``delivered`` says how: ``"response"`` or ``"context"``).
    """

    #: The task id the model was told ("T1").
    task: str
    #: The function call's id (None: the call had none).
    call_id: str | None = None
    name: str
    args: dict[str, object] = msgspec.field(default_factory=dict)
    state: str = "running"
    #: The response body of the outcome (finished, failed, cancelled, lost).
    result: dict[str, object] | None = None
    #: Media parts sent with the result, and the scheduling it goes with.
    parts: list[dict[str, object]] | None = None
    scheduling: str | None = None
    #: How the late result reaches the model: ``"response"`` or ``"context"``.
    route: str = "context"
    delivered: str | None = None
    #: ``"inline"`` (in the owner's process) or the executor's name, and its job id.
    executor: str = "inline"
    job: str | None = None
    idempotent: bool = False
    #: Wall-clock times (Unix seconds).
    started_at: float = 0.0
    updated_at: float = 0.0


class ConversationRecord(msgspec.Struct, kw_only=True):
    """Everything a store keeps of one conversation (version :data:`RECORD_VERSION`).

    It holds conversation text (the history, with the model's transcribed answers, and
    user texts not yet covered by a handle, inside the snapshot) and audio the service
    may not have consumed yet: treat the store like the conversation itself.
    """

    version: int = RECORD_VERSION
    #: The conversation id.
    conversation: str
    #: The session core: handle, uncovered re-send window, queued frames, pending tool
    #: calls, counters (:class:`~gemini_live.protocol.ProtocolSnapshot`).
    snapshot: ProtocolSnapshot
    #: The bounded history (what a fresh session is seeded with).
    history: list[HistoryEntry] = msgspec.field(default_factory=list)
    #: :func:`setup_fingerprint` of the setup the conversation was configured with.
    setup_fingerprint: str = ""
    #: The owner that wrote the record and its fencing token.
    owner: str = ""
    epoch: int = 0
    #: Wall-clock time (Unix seconds) of the save and of the latest handle (None: none).
    saved_at: float = 0.0
    handle_at: float | None = None
    #: Client ids of the user texts this conversation accepted, oldest first (at most
    #: :data:`MAX_TEXT_IDS`): a text re-sent with one of them is not sent again
    #: (version 2).
    text_ids: list[str] = msgspec.field(default_factory=list)
    #: How many of the oldest ``text_ids`` had their turn end (each turn end ends the
    #: oldest text not ended yet) before the handle this record holds: their answers are
    #: over and a restore never answers them again (version 2).
    text_ids_ended: int = 0
    #: Long-running tool calls (at most :data:`MAX_STORED_TASKS`; version 2).
    tasks: list[TaskRecord] = msgspec.field(default_factory=list)


class _Header(msgspec.Struct):
    version: int = 0


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ConversationRecord)
_header = msgspec.msgpack.Decoder(_Header)


def encode_record(record: ConversationRecord) -> bytes:
    """The record as bytes (msgpack)."""
    if not isinstance(record, ConversationRecord):
        raise ConfigError(f"expected a ConversationRecord, got {type(record).__name__}")
    return _encoder.encode(record)


def decode_record(data: bytes, *, where: str = "store") -> ConversationRecord:
    """The record in ``data``; a record of another version or a damaged one raises
    :class:`~gemini_live.errors.StoreFormatError`."""
    try:
        version = _header.decode(data).version
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StoreFormatError(f"{where}: the stored record is damaged ({exc})") from None
    if version not in READABLE_VERSIONS:
        newer = "a newer" if version > RECORD_VERSION else "an older"
        raise StoreFormatError(
            f"{where}: the stored record has version {version}, written by {newer} release; "
            f"this release reads versions {READABLE_VERSIONS[0]}-{RECORD_VERSION} "
            "(delete the conversation or upgrade gemini-live)"
        )
    try:
        record = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StoreFormatError(f"{where}: the stored record is damaged ({exc})") from None
    if len(record.text_ids) > MAX_TEXT_IDS or len(record.tasks) > MAX_STORED_TASKS:
        raise StoreFormatError(
            f"{where}: the stored record is damaged (more than {MAX_TEXT_IDS} text ids or "
            f"{MAX_STORED_TASKS} tasks)"
        )
    if not 0 <= record.text_ids_ended <= len(record.text_ids):
        raise StoreFormatError(
            f"{where}: the stored record is damaged (text_ids_ended out of range)"
        )
    # An older record is read as the current version (its new fields at their defaults).
    record.version = RECORD_VERSION
    return record


def setup_fingerprint(setup: Setup) -> str:
    """A hash of ``setup`` (without its resumption handle): two setups with the same
    fingerprint configure the same conversation."""
    sr = setup.session_resumption
    if sr is not UNSET and sr.handle is not UNSET:
        setup = msgspec.structs.replace(setup, session_resumption=UNSET)
    data = msgspec.json.encode(msgspec.to_builtins(setup, order="sorted"))
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to drive one conversation, until ``expires_at`` unless renewed.

    ``fence`` is the fencing token: it grows with every acquisition of the
    conversation, and a store refuses a save whose token is not the latest one.
    ``expires_at`` is this process's wall clock (Unix seconds), approximate.
    """

    conversation: str
    owner: str
    fence: int
    ttl: float
    expires_at: float

    def __repr__(self) -> str:
        return f"Lease({self.conversation!r}, owner={self.owner!r}, fence={self.fence})"


def check_id(conversation: object) -> str:
    """``conversation`` if it is a usable id (letters, digits and ``._:@=+-``)."""
    if not isinstance(conversation, str):
        raise ConfigError(f"conversation id must be a str, got {type(conversation).__name__}")
    if not conversation or len(conversation) > MAX_ID_CHARS or not _ID.fullmatch(conversation):
        raise ConfigError(
            f"conversation id must be 1-{MAX_ID_CHARS} characters of letters, digits and "
            "._:@=+- (hash anything else first)"
        )
    return conversation


def check_ttl(name: str, value: object, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
