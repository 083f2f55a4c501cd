"""Conversations that outlive their process: where a session keeps what it needs to go on.

``gl.connect(conversation="id", store=store)`` leases the conversation, loads its record
and resumes it (handle first, re-sending what the handle does not cover; a fresh session
seeded with the history when the handle is gone or rejected), then saves it at every
handle update, turn end and tool-call change. One owner at a time: a lease with a fencing
token (see :class:`ConversationStore`).

Stores: :class:`MemoryStore` (this process; the default), :class:`SqliteStore` (one
machine, a file) and :class:`RedisStore` (many machines; the ``redis`` extra). Each
takes ``cipher=`` (e.g. :class:`AesGcmCipher`) to keep its records encrypted at rest.
:func:`open_store` builds one from a URL (``memory:``, ``sqlite:///path``,
``redis://host:port/db``).
"""

from __future__ import annotations

from pathlib import Path

from gemini_live.errors import (
    ConfigError,
    ConversationBusy,
    ConversationError,
    StaleFenceError,
    StoreError,
    StoreFormatError,
    StoreSealError,
)
from gemini_live.store._base import DEFAULT_LEASE_TTL, DEFAULT_RECORD_TTL, ConversationStore
from gemini_live.store._cipher import AesGcmCipher, Cipher
from gemini_live.store._memory import MemoryStore
from gemini_live.store._record import (
    RECORD_VERSION,
    ConversationRecord,
    Lease,
    TaskRecord,
    decode_record,
    encode_record,
    setup_fingerprint,
)
from gemini_live.store._redis import RedisStore
from gemini_live.store._sqlite import SqliteStore

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_RECORD_TTL",
    "RECORD_VERSION",
    "AesGcmCipher",
    "Cipher",
    "ConversationBusy",
    "ConversationError",
    "ConversationRecord",
    "ConversationStore",
    "Lease",
    "MemoryStore",
    "RedisStore",
    "SqliteStore",
    "StaleFenceError",
    "StoreError",
    "StoreFormatError",
    "StoreSealError",
    "TaskRecord",
    "decode_record",
    "encode_record",
    "open_store",
    "setup_fingerprint",
]


def open_store(url: str, *, cipher: Cipher | None = None) -> ConversationStore:
    """A store from a URL: ``memory:``, ``sqlite:///absolute/path.db`` (or
    ``sqlite:relative.db``), ``redis://...`` / ``rediss://...``; ``cipher`` seals its
    records at rest."""
    if not isinstance(url, str) or not url:
        raise ConfigError("store URL must be a non-empty string")
    if url == "memory:":
        return MemoryStore(cipher=cipher)
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ConfigError("sqlite store URL needs a path: sqlite:///path/to/file.db")
        return SqliteStore(Path(path).expanduser(), cipher=cipher)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, cipher=cipher)
    raise ConfigError("store URL must start with memory:, sqlite: or redis:// (rediss://)")
