"""Connection phase and counters of the sans-I/O core (no rule lives here, only data).

:class:`State` is the phase of one connection, :class:`Connection` its bookkeeping (reset
on every reconnect), :class:`SessionStats` the counters of the whole session (one object,
shared by every part and by the session).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
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

    ``frames_sent`` and ``frames_at_risk`` are properties over what was counted (``_sent``,
    ``_risk``) and what the outbox's fused audio writer did and did not count yet (the
    chunks of its open run, the chunks it dropped from a full window: issue 24, an int
    object less per chunk each). They read every frame, also from a reader that holds
    this object; a store keeps the sum it was given. Encoders and ``dataclasses`` read
    them as the fields they are (msgspec asks the property for a field that is not in
    the instance's ``__dict__``); a copy holds the counts as they read.
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

    # The hidden attributes are set and read by name (setattr/getattr), never through
    # ``__dict__``: touching ``__dict__`` turns the instance's inline attribute values into
    # a dict, and every counter's update then takes a slower path (~2x per update).

    def _absorb(self, owed: int) -> None:
        """``owed`` frames the outbox's open run owed are counted now (Outbox._settle)."""
        setattr(self, "_sent", getattr(self, "_sent") + owed)  # noqa: B009, B010

    def _owe_from(self, sent: Callable[[], int], at_risk: Callable[[], int]) -> None:
        """Count what ``sent()`` and ``at_risk()`` return in ``frames_sent`` and
        ``frames_at_risk`` too (the outbox's open run and its writer's drops)."""
        setattr(self, "_owing", sent)  # noqa: B010
        setattr(self, "_risking", at_risk)  # noqa: B010

    def __copy__(self) -> SessionStats:
        # The counts as they read now, on their own (a plain copy would share the
        # outbox's run and lose what it owes once the outbox counts it). A deep copy
        # copies the outbox's window with it, and stays as it reads.
        return dataclasses.replace(self)


def _owe_nothing() -> int:
    return 0


def _frames_sent(self: SessionStats) -> int:
    return int(getattr(self, "_sent") + getattr(self, "_owing", _owe_nothing)())  # noqa: B009


def _set_frames_sent(self: SessionStats, value: int) -> None:
    setattr(self, "_sent", value - getattr(self, "_owing", _owe_nothing)())  # noqa: B010


def _frames_at_risk(self: SessionStats) -> int:
    return int(getattr(self, "_risk") + getattr(self, "_risking", _owe_nothing)())  # noqa: B009


def _set_frames_at_risk(self: SessionStats, value: int) -> None:
    setattr(self, "_risk", value - getattr(self, "_risking", _owe_nothing)())  # noqa: B010


# After the dataclass is made, so that the fields keep their defaults and their places
# (in __init__, repr, eq and the snapshot) and every read and store goes through these.
SessionStats.frames_sent = property(_frames_sent, _set_frames_sent)  # type: ignore[assignment]
SessionStats.frames_at_risk = property(_frames_at_risk, _set_frames_at_risk)  # type: ignore[assignment]
