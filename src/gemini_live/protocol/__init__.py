"""Sans-I/O client core of the Live protocol: every rule of both directions, no I/O.

No asyncio, no sockets, no clock: the caller passes ``now`` (its monotonic time) where
time matters. :class:`ClientProtocol` is the one object the I/O layer talks to; it routes
each call to the small part that owns the rule (see ``docs/design.md``, "where each rule
lives"). The import paths of this package are the public ones; the modules behind them
are private. :meth:`ClientProtocol.snapshot` saves a whole core as one
:class:`ProtocolSnapshot` (version ``SNAPSHOT_VERSION``) and
:meth:`ClientProtocol.restore` rebuilds it.
"""

from __future__ import annotations

from gemini_live.auth import ApiKind
from gemini_live.protocol._checks import check_types, validate_setup
from gemini_live.protocol._client import ClientProtocol
from gemini_live.protocol._outbox import ResendWindow
from gemini_live.protocol._snapshot import SNAPSHOT_VERSION, ProtocolSnapshot
from gemini_live.protocol._state import SessionStats, State

__all__ = [
    "SNAPSHOT_VERSION",
    "ApiKind",
    "ClientProtocol",
    "ProtocolSnapshot",
    "ResendWindow",
    "SessionStats",
    "State",
    "check_types",
    "validate_setup",
]
