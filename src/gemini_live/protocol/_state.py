"""Connection phase and counters of the sans-I/O core (no rule lives here, only data).

:class:`State` is the phase of one connection, :class:`Connection` its bookkeeping (reset
on every reconnect), :class:`SessionStats` the counters of the whole session (one object,
shared by every part and by the session).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Connection", "SessionStats", "State"]


class State(enum.Enum):
    """The phase of the current connection: ``IDLE -> CONNECTING -> SETUP_SENT -> OPEN ->
    CLOSING -> CLOSED`` (``IDLE`` before the first connection)."""

    IDLE = "idle"
    CONNECTING = "connecting"
    SETUP_SENT = "setup_sent"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(slots=True)
class Connection:
    """Per-connection bookkeeping (a new one on every reconnect).

    A slotted dataclass, not a ``msgspec.Struct`` (snapshots convert both alike): the
    fused audio writer stores two of its counters per chunk, and an attribute store on a
    Struct takes the generic path (~10x the interpreter's specialized slot store).
    """

    state: State = State.CONNECTING
    resuming: bool = False
    next_index: int = 1  # the setup is index 0
    go_away_deadline: float | None = None
    setup_sent_at: float | None = None
    opened_at: float | None = None
    turns_completed: int = 0
    #: Payload bytes handed out on this connection (the end offset of the latest frame):
    #: compared with what the transport has not yet sent when a handle arrives.
    bytes_out: int = 0


@dataclass
class SessionStats:
    """Counters for monitoring; all monotonic over the session's life (one object).

    ``frames_at_risk`` counts the frames that may not have reached the service's state
    and will not be re-sent: audio/video dropped from the re-send window by its bound,
    and frames a handle covered while the transport could not tell whether they had left
    this host (a custom transport without ``unsent_bytes``, or an OS without a send-queue
    query). Everything else the app sent is either acknowledged or kept for re-sending.
    """

    connections: int = 0
    connects: int = 0
    reconnects: int = 0
    opens: int = 0
    resumed: int = 0
    fresh_sessions_after_loss: int = 0
    go_away_rotations: int = 0
    abrupt_drops: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    frames_at_risk: int = 0
    frames_queued_offline: int = 0
    replayed_frames: int = 0
    stale_tool_responses_dropped: int = 0
    malformed_frames: int = 0
    lagged_events: int = 0
    callback_errors: int = 0
    last_error: str | None = None
