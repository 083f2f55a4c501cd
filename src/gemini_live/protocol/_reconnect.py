"""What to do after a connection ended: the reconnect rules of ADR 14, without I/O.

The connection loop asks :meth:`ReconnectState.after` once per ended connection and does
what the answer says:

* :class:`Rotate` — a planned rotation (goAway or a setup change): reconnect at once;
* :class:`FreshStart` — the service rejected the resumption handle: forget it and
  reconnect at once as a fresh session (at most ``max_fresh_restarts`` in a row);
* :class:`Retry` — reconnect after ``delay`` (attempt ``attempt`` of this outage);
* :class:`GiveUp` — the session ends with ``error``.

The rules: one retry predicate and one delay rule for every kind of failure (a connect
that failed, a connection that died). The attempt and fresh-restart counters reset only
after a *healthy* connection (open for ``healthy_after`` seconds, or until a model turn
completed), so a service that accepts the setup and then closes at once sees growing
backoff, not a hot loop; after a healthy connection the first retry goes out at once.
A failure of the very first connection ends the session unless ``retry_initial``.

Pure: no clock and no sleeping (the caller says whether the connection was healthy); the
only randomness is the policy's jitter in :meth:`ReconnectPolicy.delay
<gemini_live.config.ReconnectPolicy.delay>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from gemini_live.errors import GeminiLiveError, SessionClosedError, SessionNotFound

__all__ = [
    "FreshStart",
    "GiveUp",
    "ReconnectCounters",
    "ReconnectState",
    "Retry",
    "Rotate",
]


class _Policy(Protocol):
    """The part of :class:`gemini_live.config.ReconnectPolicy` the rules read."""

    @property
    def retry_initial(self) -> bool: ...
    @property
    def max_attempts(self) -> int | None: ...
    @property
    def max_fresh_restarts(self) -> int | None: ...
    def should_retry(self, error: GeminiLiveError) -> bool: ...
    def delay(self, attempt: int) -> float: ...


@dataclass(frozen=True, slots=True)
class Rotate:
    """A planned rotation: reconnect now (resuming)."""


@dataclass(frozen=True, slots=True)
class FreshStart:
    """The handle was rejected: drop it and reconnect now as a fresh session."""

    error: GeminiLiveError


@dataclass(frozen=True, slots=True)
class Retry:
    """Reconnect after ``delay`` seconds; ``attempt`` counts this outage's retries."""

    attempt: int
    delay: float
    error: GeminiLiveError


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The session ends with ``error``."""

    error: GeminiLiveError


Decision = Rotate | FreshStart | Retry | GiveUp


class ReconnectCounters(msgspec.Struct, kw_only=True):
    """The counters of :class:`ReconnectState`, as plain data."""

    attempt: int = 0
    fresh_in_a_row: int = 0
    #: No connection has opened yet (the first failure may end the session).
    first: bool = True


class ReconnectState:
    """The reconnect decisions of one session (the websockets backoff-generator shape:
    resetting the backoff is resetting the counters)."""

    __slots__ = ("counters", "policy")

    def __init__(self, policy: _Policy, counters: ReconnectCounters | None = None) -> None:
        self.policy = policy
        self.counters = counters if counters is not None else ReconnectCounters()

    @property
    def first(self) -> bool:
        """No connection has opened yet."""
        return self.counters.first

    def opened(self) -> None:
        """A connection opened (its setup completed)."""
        self.counters.first = False

    def after(
        self,
        outcome: GeminiLiveError | Literal["rotate"],
        *,
        healthy: bool,
        resuming: bool,
    ) -> Decision:
        """The decision after a connection ended with ``outcome``.

        ``healthy``: the connection that ended was healthy. ``resuming``: the connection
        tried to resume from a handle (a rejection then means a fresh start).
        """
        c = self.counters
        policy = self.policy
        if healthy:
            c.attempt = 0
            c.fresh_in_a_row = 0
        if outcome == "rotate":
            return Rotate()
        err = outcome
        assert isinstance(err, GeminiLiveError)
        if isinstance(err, SessionNotFound) and resuming:
            c.fresh_in_a_row += 1
            limit = policy.max_fresh_restarts
            if limit is not None and c.fresh_in_a_row > limit:
                gave_up = SessionClosedError(
                    f"gave up after {limit} fresh restarts in a row: the service rejected "
                    f"every resumption ({err})"
                )
                gave_up.__cause__ = err
                return GiveUp(gave_up)
            return FreshStart(err)
        if c.first and not policy.retry_initial:
            return GiveUp(err)
        if not policy.should_retry(err):
            return GiveUp(err)
        c.attempt += 1
        if policy.max_attempts is not None and c.attempt > policy.max_attempts:
            return GiveUp(err)
        # After a healthy connection the first retry goes out at once; a connection that
        # died early backs off like a failed connect (no reconnect storm).
        delay = 0.0 if healthy and c.attempt == 1 else policy.delay(c.attempt)
        return Retry(c.attempt, delay, err)
