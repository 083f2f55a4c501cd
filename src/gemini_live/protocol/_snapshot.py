"""The saved form of a whole core: one versioned, JSON/msgpack-encodable value.

:meth:`ClientProtocol.snapshot <gemini_live.protocol.ClientProtocol.snapshot>` builds a
:class:`ProtocolSnapshot` from the parts' own plain-data states and
:meth:`ClientProtocol.restore <gemini_live.protocol.ClientProtocol.restore>` rebuilds an
equal core from one. The outbox's records are :class:`~gemini_live.protocol._outbox.RecordState`
arrays here (at run time they stay plain tuples, ADR 31).

Version 1 holds: the settings the core was built with (api, setup, input rate, buffer
and frame bounds, re-send window, rotation margin and hold), the identity of the
conversation (resumption on/off and transparent, the latest handle, the session id,
whether a connection ever opened), the current connection (:class:`Connection`), the
model's generating flag, the direct-write flag, the seed of a fresh session, the
counters (:class:`SessionStats`), and the states of the outbox, the tool ledger and the
rotation plan. A change to any of these shapes bumps :data:`SNAPSHOT_VERSION`.
"""

from __future__ import annotations

from typing import Final

import msgspec

from gemini_live.errors import ConfigError
from gemini_live.protocol._ledger import ToolLedger
from gemini_live.protocol._outbox import OutboxState, ResendWindow
from gemini_live.protocol._rotation import RotationState
from gemini_live.protocol._state import Connection, SessionStats
from gemini_live.types import Setup

__all__ = ["SNAPSHOT_VERSION", "ProtocolSnapshot", "checked_copy"]

#: Version of :class:`ProtocolSnapshot`; a snapshot of another version is refused.
SNAPSHOT_VERSION: Final = 1


class ProtocolSnapshot(msgspec.Struct, kw_only=True):
    """Everything a :class:`ClientProtocol` holds, as one plain value.

    Encodable with ``msgspec.json`` or ``msgspec.msgpack`` and decodable with
    ``type=ProtocolSnapshot``; frames are bytes (base64 in JSON). The settings the
    protocol was built with are part of it; only ``normalize_model`` (a function) is
    passed to :meth:`ClientProtocol.restore` again.
    """

    version: int = SNAPSHOT_VERSION
    api: str
    setup: Setup
    input_rate: int
    offline_buffer_bytes: int
    max_frame_bytes: int
    resend: ResendWindow
    transparent: bool
    resumption_enabled: bool
    resume_handle: str | None
    session_id: str | None
    ever_open: bool
    generating: bool
    direct_writes: bool
    seed_setup: Setup | None
    seed_turns: int
    conn: Connection | None
    stats: SessionStats
    outbox: OutboxState
    ledger: ToolLedger
    rotation: RotationState


def checked_copy(snapshot: object) -> ProtocolSnapshot:
    """A private copy of ``snapshot`` (nothing shared with the caller's value), checked:
    the type, the version and the field types (a typed error, never a half-built core)."""
    if not isinstance(snapshot, ProtocolSnapshot):
        raise ConfigError(f"expected a ProtocolSnapshot, got {type(snapshot).__name__}")
    if snapshot.version != SNAPSHOT_VERSION:
        raise ConfigError(
            f"protocol snapshot version {snapshot.version} is not supported "
            f"(this library reads version {SNAPSHOT_VERSION})"
        )
    try:
        copy = msgspec.convert(msgspec.to_builtins(snapshot), ProtocolSnapshot)
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid protocol snapshot: {exc}") from None
    if copy.api not in ("gemini", "vertex", "custom"):
        raise ConfigError(f"unknown api {copy.api!r} in the protocol snapshot")
    return copy
