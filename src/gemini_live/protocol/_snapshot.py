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

Version 2 adds what coverage needs to know whether a frame left this host: each
record's end offset on its connection, the connection's ``bytes_out``, the outbox's
probe points and the latest response lag; and the user turn ends not yet answered
(``unanswered``, replacing ``last_turn_end_seq`` and ``awaiting_response``).

Version 3 adds the reconnect decision state (:class:`ReconnectCounters`: the attempt of
the current outage and the fresh restarts in a row), so a core restored in another
process goes on backing off where the old one was. A version-2 snapshot is read (its
counters at zero).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Self

import msgspec

from gemini_live.auth import ApiKind
from gemini_live.errors import ConfigError
from gemini_live.protocol._checks import validate_setup
from gemini_live.protocol._ledger import ToolLedger
from gemini_live.protocol._outbox import Outbox, OutboxState, ResendWindow
from gemini_live.protocol._reconnect import ReconnectCounters
from gemini_live.protocol._rotation import RotationPlan, RotationState
from gemini_live.protocol._state import Connection, SessionStats
from gemini_live.types import Setup

__all__ = ["SNAPSHOT_VERSION", "ProtocolSnapshot", "Snapshots", "checked_copy"]

#: Version of :class:`ProtocolSnapshot`; a snapshot of another readable version is
#: refused.
SNAPSHOT_VERSION: Final = 3
#: Versions :meth:`~gemini_live.protocol.ClientProtocol.restore` reads.
READABLE_SNAPSHOT_VERSIONS: Final = (2, 3)


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
    #: The reconnect decision state (version 3; zero when read from version 2).
    reconnect: ReconnectCounters = msgspec.field(default_factory=ReconnectCounters)


def checked_copy(snapshot: object) -> ProtocolSnapshot:
    """A private copy of ``snapshot`` (nothing shared with the caller's value), checked:
    the type, the version and the field types (a typed error, never a half-built core)."""
    if not isinstance(snapshot, ProtocolSnapshot):
        raise ConfigError(f"expected a ProtocolSnapshot, got {type(snapshot).__name__}")
    if snapshot.version not in READABLE_SNAPSHOT_VERSIONS:
        raise ConfigError(
            f"protocol snapshot version {snapshot.version} is not supported "
            f"(this library reads versions {READABLE_SNAPSHOT_VERSIONS[0]}-{SNAPSHOT_VERSION})"
        )
    try:
        copy = msgspec.convert(msgspec.to_builtins(snapshot), ProtocolSnapshot)  # shares nothing
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid protocol snapshot: {exc}") from None
    copy.version = SNAPSHOT_VERSION  # an older one is read as the current version
    if copy.api not in ("gemini", "vertex", "custom"):
        raise ConfigError(f"unknown api {copy.api!r} in the protocol snapshot")
    return copy


class Snapshots:
    """The saving half of :class:`~gemini_live.protocol.ClientProtocol` (a base class of
    it): the facade routes calls to the parts, this turns the facade's own fields and the
    parts' states into one :class:`ProtocolSnapshot` and back. The fields it reads and
    writes are declared here; the facade sets them in ``__init__``."""

    api: ApiKind
    transparent: bool
    resumption_enabled: bool
    resume_handle: str | None
    session_id: str | None
    ever_open: bool
    direct_writes: bool
    unsent_bytes: Callable[[], int | None] | None
    expect_resume: bool
    stats: SessionStats
    reconnect: ReconnectCounters
    _normalize: Callable[[str], str] | None
    _setup: Setup
    _input_rate: int
    _generating: bool
    _seed_setup: Setup | None
    _seed_turns: int
    _conn: Connection | None
    _outbox: Outbox
    _ledger: ToolLedger
    _plan: RotationPlan

    def snapshot(self) -> ProtocolSnapshot:
        """Everything this core holds, as one versioned plain value (a copy: nothing in it
        is shared with the core).

        ``msgspec.json.encode`` / ``msgspec.msgpack.encode`` it to save it; rebuild an
        equal core with :meth:`restore`.
        """
        outbox = self._outbox
        held = outbox.snapshot()  # first: it brings the connection's counters up to date
        saved = ProtocolSnapshot(
            api=self.api,
            setup=self._setup,
            input_rate=self._input_rate,
            offline_buffer_bytes=outbox.offline_limit,
            max_frame_bytes=outbox.max_frame,
            resend=outbox.resend,
            transparent=self.transparent,
            resumption_enabled=self.resumption_enabled,
            resume_handle=self.resume_handle,
            session_id=self.session_id,
            ever_open=self.ever_open,
            generating=self._generating,
            direct_writes=self.direct_writes,
            seed_setup=self._seed_setup,
            seed_turns=self._seed_turns,
            conn=self._conn,
            stats=self.stats,
            outbox=held,
            ledger=self._ledger,
            rotation=self._plan.snapshot(),
            reconnect=self.reconnect,
        )
        return msgspec.convert(msgspec.to_builtins(saved), ProtocolSnapshot)

    @classmethod
    def restore(
        cls, snapshot: ProtocolSnapshot, *, normalize_model: Callable[[str], str] | None = None
    ) -> Self:
        """A new core equal to the one :meth:`snapshot` saw (a classmethod).

        ``snapshot`` may come straight from :meth:`snapshot` or from
        ``msgspec.json.decode(data, type=ProtocolSnapshot)``; it is checked (type,
        version, field types, the setup for its endpoint) and not changed.
        ``normalize_model`` is the function the core was built with, if any (it applies
        to later ``update_setup`` calls; the saved setup is normalised already).
        """
        s = checked_copy(snapshot)
        api: ApiKind = s.api  # type: ignore[assignment]  # checked by checked_copy
        validate_setup(s.setup, api)
        p = cls.__new__(cls)
        p.api = api
        p.transparent = s.transparent
        p.resumption_enabled = s.resumption_enabled
        p.resume_handle = s.resume_handle
        p.session_id = s.session_id
        p.ever_open = s.ever_open
        p.direct_writes = s.direct_writes
        p.unsent_bytes = None  # the I/O layer sets it for its connection
        p.expect_resume = False
        p.stats = s.stats
        p.reconnect = s.reconnect
        p._normalize = normalize_model
        p._setup = s.setup
        p._input_rate = s.input_rate
        p._generating = s.generating
        p._seed_setup = s.seed_setup
        p._seed_turns = s.seed_turns
        p._conn = s.conn
        p._outbox = Outbox(
            s.stats,
            input_rate=s.input_rate,
            offline_buffer_bytes=s.offline_buffer_bytes,
            max_frame_bytes=s.max_frame_bytes,
            resend=s.resend,
        )
        p._outbox.restore(s.outbox)
        p._ledger = s.ledger
        p._plan = RotationPlan.restore(s.rotation)
        p._plan.mirror_to(p._outbox)
        return p
