"""The rotation plan: when a connection the service is ending (``goAway``) is replaced.

After a ``goAway`` (or a setup change, :meth:`RotationPlan.request`) the connection is
*draining*: it keeps serving until a *clean point* — the model is not generating, no
BLOCKING call is unanswered, no pending call is newer than the latest handle, and every
user turn and tool answer written so far is covered by a resumable handle (only media may
still be in the re-send window) — or until ``deadline - margin``, whatever is pending.

:meth:`RotationPlan.due` is a question and changes nothing. The owner of the connection
acts on it by calling :meth:`RotationPlan.begin` (the latch): from then on nothing more is
handed out on this connection, so the clean point cannot slip away. Like
:mod:`gemini_live.watchdog`, the plan has no clock; ``now`` is passed in.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from gemini_live.protocol._ledger import ToolLedger
from gemini_live.protocol._outbox import Outbox

__all__ = ["RotationPlan", "RotationState"]


class RotationState(msgspec.Struct, kw_only=True):
    """What a :class:`RotationPlan` holds, as plain data."""

    margin: float = 0.25
    hold_while_draining: bool = False
    deadline: float | None = None
    requested: bool = False
    rotating: bool = False


class _HoldFlag(Protocol):
    """Where a plan mirrors its ``holding`` flag (:meth:`RotationPlan.mirror_to`)."""

    holding: bool


class RotationPlan:
    """The drain and rotation decision of the current connection (reset per connection)."""

    __slots__ = (
        "_rotating",
        "deadline",
        "hold_while_draining",
        "holding",
        "margin",
        "mirror",
        "requested",
    )

    def __init__(self, *, margin: float = 0.25, hold_while_draining: bool = False) -> None:
        self.margin = margin
        self.hold_while_draining = hold_while_draining
        #: When the service cuts the connection (caller's clock), once draining.
        self.deadline: float | None = None
        #: A setup change asked to rotate as soon as possible.
        self.requested = False
        self._rotating = False
        #: New input waits for the next connection (the rotation is decided, or
        #: ``drain_input="hold"`` while draining). Kept in step by the methods below.
        self.holding = False
        #: An object whose ``holding`` is kept equal to :attr:`holding` (see :meth:`mirror_to`).
        self.mirror: _HoldFlag | None = None

    @property
    def draining(self) -> bool:
        """A goAway (or a setup change) asked for a rotation that has not happened yet."""
        return self.deadline is not None

    @property
    def rotating(self) -> bool:
        """The rotation is decided (:meth:`begin` was called on this connection)."""
        return self._rotating

    def mirror_to(self, target: _HoldFlag) -> None:
        """Keep ``target.holding`` equal to :attr:`holding` from now on (the outbox, whose
        audio writer then reads the flag from its own object: one object fewer per chunk)."""
        self.mirror = target
        target.holding = self.holding

    def _update(self) -> None:
        self.holding = self._rotating or (self.hold_while_draining and self.deadline is not None)
        if self.mirror is not None:
            self.mirror.holding = self.holding

    def reset(self) -> None:
        """A new connection: nothing planned."""
        self.deadline = None
        self.requested = False
        self._rotating = False
        self._update()  # not holding (and the mirror with it)

    def go_away(self, now: float, time_left: float) -> None:
        """The service ends this connection in ``time_left`` seconds."""
        self.deadline = now + time_left
        self._update()

    def request(self, now: float, *, connected: bool) -> None:
        """Rotate as soon as possible (a setup change): like a goAway with no time left."""
        self.requested = True
        if connected and self.deadline is None:
            self.deadline = now
        self._update()

    def begin(self) -> None:
        """The rotation is decided: hand nothing more out on this connection."""
        self._rotating = True
        self._update()

    def latest(self) -> float | None:
        """When the rotation happens at the latest (caller's clock), or None."""
        d = self.deadline
        return None if d is None else d - self.margin

    @staticmethod
    def blockers(ledger: ToolLedger, outbox: Outbox, generating: bool) -> list[str]:
        """Why the connection is not at a clean point (empty when it is)."""
        out = []
        if ledger.blocking_pending:
            out.append("a pending blocking tool call")
        if generating:
            out.append("the model's turn in progress")
        if ledger.newer_than_handle:
            out.append("a tool call newer than the last handle")
        if outbox.uncovered_input:
            out.append("input not yet covered by a resumption handle")
        return out

    def due(
        self, now: float, *, is_open: bool, ledger: ToolLedger, outbox: Outbox, generating: bool
    ) -> bool:
        """Rotate now? Draining on an open connection, and decided already, requested, at
        ``deadline - margin``, or at a clean point. Pure: :meth:`begin` acts on it."""
        deadline = self.deadline
        if deadline is None or not is_open:
            return False
        return (
            self._rotating
            or self.requested
            or now >= deadline - self.margin
            or not self.blockers(ledger, outbox, generating)
        )

    def snapshot(self) -> RotationState:
        """The plan as plain data."""
        return RotationState(
            margin=self.margin,
            hold_while_draining=self.hold_while_draining,
            deadline=self.deadline,
            requested=self.requested,
            rotating=self._rotating,
        )

    @classmethod
    def restore(cls, state: RotationState) -> RotationPlan:
        """A plan equal to the one :meth:`snapshot` saw."""
        plan = cls(margin=state.margin, hold_while_draining=state.hold_while_draining)
        plan.deadline = state.deadline
        plan.requested = state.requested
        if state.rotating:
            plan.begin()
        plan._update()
        return plan
