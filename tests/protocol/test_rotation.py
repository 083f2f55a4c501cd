"""Pure tests of the rotation plan: ``due`` is a question, ``begin`` the only latch."""

from __future__ import annotations

import pytest

from gemini_live.protocol._ledger import ToolLedger
from gemini_live.protocol._outbox import Kind, Outbox, ResendWindow
from gemini_live.protocol._rotation import RotationPlan
from gemini_live.protocol._state import Connection, SessionStats, State
from gemini_live.types import FunctionCall


def parts() -> tuple[ToolLedger, Outbox]:
    box = Outbox(
        SessionStats(),
        input_rate=16000,
        offline_buffer_bytes=1 << 20,
        max_frame_bytes=1 << 20,
        resend=ResendWindow(handle_guard=0.1),
    )
    return ToolLedger(), box


def flags(plan: RotationPlan) -> tuple[bool, bool]:
    """(rotating, holding), read through a call so that mypy does not narrow them."""
    return plan.rotating, plan.holding


def due(plan: RotationPlan, now: float, *, generating: bool = False, is_open: bool = True) -> bool:
    ledger, box = parts()
    return plan.due(now, is_open=is_open, ledger=ledger, outbox=box, generating=generating)


def test_nothing_is_due_before_a_go_away_or_on_a_closed_connection() -> None:
    plan = RotationPlan()
    assert not plan.draining and not due(plan, 100.0)
    plan.go_away(0.0, 10.0)
    assert not due(plan, 0.0, is_open=False)


def test_due_is_a_question_and_begin_the_latch() -> None:
    plan = RotationPlan(margin=0.25)
    plan.go_away(0.0, 10.0)
    assert due(plan, 1.0)  # idle: a clean point
    assert flags(plan) == (False, False)  # asking changed nothing
    assert not due(plan, 1.0, generating=True)
    plan.begin()
    assert flags(plan) == (True, True)
    assert due(plan, 1.0, generating=True)  # decided: the clean point cannot slip away


def test_the_deadline_minus_the_margin_rotates_whatever_is_pending() -> None:
    plan = RotationPlan(margin=0.25)
    plan.go_away(1.0, 2.0)
    assert plan.latest() == pytest.approx(2.75)
    assert not due(plan, 2.7, generating=True)
    assert due(plan, 2.75, generating=True)


def test_a_request_rotates_at_once_but_only_a_connected_one_starts_draining() -> None:
    plan = RotationPlan()
    plan.request(5.0, connected=False)
    assert plan.requested and not plan.draining
    plan.reset()
    plan.request(5.0, connected=True)
    assert plan.deadline == 5.0
    assert due(plan, 5.0, generating=True)


def test_hold_while_draining_holds_input_from_the_go_away() -> None:
    plan = RotationPlan(hold_while_draining=True)
    assert flags(plan) == (False, False)
    plan.go_away(0.0, 10.0)
    assert flags(plan) == (False, True)
    plan.reset()
    assert flags(plan) == (False, False) and plan.deadline is None


def test_blockers_name_each_reason_in_order() -> None:
    ledger, box = parts()
    conn = Connection(state=State.OPEN)
    ledger.calls([FunctionCall(id="c1", name="f")])
    box.submit(b'{"realtimeInput":{"text":"q"}}', Kind.TEXT, 0.0, conn, True)
    assert RotationPlan.blockers(ledger, box, True) == [
        "a pending blocking tool call",
        "the model's turn in progress",
        "a tool call newer than the last handle",
        "input not yet covered by a resumption handle",
    ]
    ledger.cancel(["c1"])
    box.cover_by_handle(10.0)
    assert RotationPlan.blockers(ledger, box, False) == []


def test_a_plan_survives_its_snapshot() -> None:
    plan = RotationPlan(margin=0.5, hold_while_draining=True)
    plan.go_away(1.0, 3.0)
    plan.begin()
    again = RotationPlan.restore(plan.snapshot())
    assert again.snapshot() == plan.snapshot()
    assert again.holding and again.rotating
