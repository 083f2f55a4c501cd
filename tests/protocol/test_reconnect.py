"""Pure tests of the reconnect rules (ADR 14): no loop, no socket, no clock."""

from __future__ import annotations

import msgspec
import pytest

from gemini_live import errors
from gemini_live.config import ReconnectPolicy
from gemini_live.protocol._reconnect import (
    FreshStart,
    GiveUp,
    ReconnectCounters,
    ReconnectState,
    Retry,
    Rotate,
)


def dropped() -> errors.GeminiLiveError:
    return errors.ConnectionDropped(1006, "", phase="stream")


def rejected() -> errors.GeminiLiveError:
    return errors.SessionNotFound(1008, "session not found", phase="setup")


def opened(**policy: object) -> ReconnectState:
    """Rules after the first connection opened (jitter off: delays are exact)."""
    policy.setdefault("jitter", 0.0)
    rules = ReconnectState(ReconnectPolicy(**policy))  # type: ignore[arg-type]
    rules.opened()
    return rules


def test_a_planned_rotation_reconnects_at_once() -> None:
    assert isinstance(opened().after("rotate", healthy=False, resuming=True), Rotate)


def test_connections_that_die_early_back_off_like_failed_connects() -> None:
    """The storm rule: a service that accepts the setup and closes at once sees growing
    delays, never a hot loop."""
    rules = opened(base_backoff=0.5, max_backoff=5.0, max_attempts=None)
    delays = []
    for _ in range(6):
        d = rules.after(dropped(), healthy=False, resuming=True)
        assert isinstance(d, Retry)
        delays.append(d.delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert rules.counters.attempt == 6


def test_a_healthy_connection_resets_the_backoff_and_retries_at_once() -> None:
    rules = opened(base_backoff=0.5)
    for _ in range(3):
        rules.after(dropped(), healthy=False, resuming=True)
    d = rules.after(dropped(), healthy=True, resuming=True)
    assert isinstance(d, Retry) and (d.attempt, d.delay) == (1, 0.0)
    d = rules.after(dropped(), healthy=False, resuming=True)  # died early again
    assert isinstance(d, Retry) and (d.attempt, d.delay) == (2, 1.0)


def test_attempts_per_outage_are_bounded() -> None:
    rules = opened(max_attempts=2)
    assert isinstance(rules.after(dropped(), healthy=False, resuming=True), Retry)
    assert isinstance(rules.after(dropped(), healthy=False, resuming=True), Retry)
    d = rules.after(dropped(), healthy=False, resuming=True)
    assert isinstance(d, GiveUp) and isinstance(d.error, errors.ConnectionDropped)


def test_a_rejected_handle_starts_fresh_up_to_the_limit_in_a_row() -> None:
    rules = opened(max_fresh_restarts=2)
    assert isinstance(rules.after(rejected(), healthy=False, resuming=True), FreshStart)
    assert isinstance(rules.after(rejected(), healthy=False, resuming=True), FreshStart)
    d = rules.after(rejected(), healthy=False, resuming=True)
    assert isinstance(d, GiveUp) and isinstance(d.error, errors.SessionClosedError)
    assert "gave up after 2 fresh restarts" in str(d.error)
    assert isinstance(d.error.__cause__, errors.SessionNotFound)


def test_a_healthy_connection_resets_the_fresh_restart_count() -> None:
    rules = opened(max_fresh_restarts=1)
    assert isinstance(rules.after(rejected(), healthy=False, resuming=True), FreshStart)
    assert isinstance(rules.after(rejected(), healthy=True, resuming=True), FreshStart)
    assert isinstance(rules.after(rejected(), healthy=False, resuming=True), GiveUp)


def test_a_rejection_without_a_handle_is_an_ordinary_error() -> None:
    d = opened().after(rejected(), healthy=False, resuming=False)
    assert isinstance(d, GiveUp)  # SessionNotFound is not retryable


def test_the_first_connection_fails_fast_unless_asked_to_retry() -> None:
    rules = ReconnectState(ReconnectPolicy(jitter=0.0))
    assert rules.first
    assert isinstance(rules.after(dropped(), healthy=False, resuming=False), GiveUp)
    patient = ReconnectState(ReconnectPolicy(jitter=0.0, retry_initial=True))
    assert isinstance(patient.after(dropped(), healthy=False, resuming=False), Retry)


@pytest.mark.parametrize(
    "policy",
    [ReconnectPolicy(enabled=False), ReconnectPolicy(retry=lambda e: False)],
    ids=["disabled", "predicate"],
)
def test_the_retry_predicate_decides(policy: ReconnectPolicy) -> None:
    rules = ReconnectState(policy)
    rules.opened()
    assert isinstance(rules.after(dropped(), healthy=False, resuming=True), GiveUp)


def test_the_counters_are_plain_data() -> None:
    rules = opened()
    rules.after(dropped(), healthy=False, resuming=True)
    saved = msgspec.json.encode(rules.counters)
    again = ReconnectState(rules.policy, msgspec.json.decode(saved, type=ReconnectCounters))
    d1 = rules.after(dropped(), healthy=False, resuming=True)
    d2 = again.after(dropped(), healthy=False, resuming=True)
    assert isinstance(d1, Retry) and isinstance(d2, Retry)
    assert (d1.attempt, d1.delay) == (d2.attempt, d2.delay) == (2, 1.0)
