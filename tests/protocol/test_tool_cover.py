"""What covers a tool answer (the reply to it, else a handle by the guard rule), and the
ledger and the outbox agreeing on it: the service closes 1008 on an answer to a call it
no longer has pending, so an answer it holds must never be re-sent."""

from __future__ import annotations

from gemini_live.config import ResendWindow
from gemini_live.protocol import ClientProtocol
from gemini_live.protocol._ledger import ToolLedger
from gemini_live.protocol._state import SessionStats
from gemini_live.types import (
    FunctionCall,
    FunctionResponse,
    ToolCallCancellation,
    ToolResponse,
)

from .test_client import (
    MODEL,
    MODEL_TEXT,
    TURN_COMPLETE,
    connect,
    drop,
    flush,
    frame,
    handle_update,
    make,
    tool_call,
)


def cancellation(*ids: str) -> bytes:
    return frame(tool_call_cancellation=ToolCallCancellation(ids=list(ids)))


def answer(p: ClientProtocol, call_id: str, now: float, **kw: object) -> None:
    out = p.send_tool_response(FunctionResponse(id=call_id, name="f", response={}, **kw), now)  # type: ignore[arg-type]
    assert out is not None


def test_a_progress_answer_does_not_take_the_reply_to_the_final_one() -> None:
    p = make(resend=ResendWindow(handle_guard=0.5))
    connect(p)
    p.receive(tool_call("c1"), 0.0)
    answer(p, "c1", 0.01, will_continue=True)  # "started": the model says nothing to it
    answer(p, "c1", 0.02, scheduling="WHEN_IDLE")
    p.receive(MODEL_TEXT, 0.03)  # the reply to the result: the service read both answers
    p.receive(TURN_COMPLETE, 0.03)
    p.receive(handle_update("h1"), 0.03)  # well inside the guard
    assert p.unacknowledged == 0
    drop(p)
    connect(p, 1.0)
    assert flush(p, 1.0) == []  # nothing re-sent (the service would close 1008)


def test_the_reply_to_a_batch_covers_each_of_its_answers() -> None:
    p = make(resend=ResendWindow(handle_guard=0.5))
    connect(p)
    p.receive(tool_call("c1", "c2"), 0.0)
    answer(p, "c1", 0.01)  # the model waits for the whole batch
    answer(p, "c2", 0.02)
    p.receive(MODEL_TEXT, 0.03)
    p.receive(handle_update("h1"), 0.03)
    assert p.unacknowledged == 0


def test_a_silent_answer_takes_no_reply_meant_for_a_later_turn() -> None:
    p = make(resend=ResendWindow(handle_guard=0.5))
    connect(p)
    p.receive(tool_call("c1"), 0.0)
    answer(p, "c1", 0.01, scheduling="SILENT")  # no reply will come
    assert p.send_text("tick", 0.02) is not None
    p.receive(MODEL_TEXT, 0.03)  # the answer to "tick": read after the tool answer
    p.receive(handle_update("h1"), 0.03)
    assert p.unacknowledged == 0


def test_an_answer_with_no_reply_and_a_handle_in_the_guard_is_re_sent() -> None:
    p = make(resend=ResendWindow(handle_guard=0.5))
    connect(p)
    p.receive(tool_call("c1"), 0.0)
    p.receive(handle_update("h1"), 0.0)  # the call is in h1's state
    answer(p, "c1", 0.01, scheduling="SILENT")
    p.receive(handle_update("h2"), 0.02)  # maybe issued before the service read it
    assert p.unacknowledged == 1
    drop(p)
    connect(p, 1.0)  # resumes from h2
    assert flush(p, 1.0) == ["<tool:c1>"]  # h2 may lack it: re-sent, not lost


def test_a_fresh_session_gets_no_answer_a_handle_did_not_cover() -> None:
    # The ledger used to take any handle after an answer as covering it, while the outbox
    # kept the answer (inside the guard): a fresh session after the handle was refused got
    # the answer to a call it never made, and closed 1008.
    p = make(resend=ResendWindow(handle_guard=0.5))
    connect(p)
    p.receive(tool_call("c1"), 0.0)
    answer(p, "c1", 0.01, scheduling="SILENT")
    p.receive(handle_update("h1"), 0.02)
    assert p.unacknowledged == 1
    drop(p)
    p.resume_rejected()  # h1 expired: the next session is fresh
    connect(p, 1.0)
    assert flush(p, 1.0) == []
    assert p.stats.stale_tool_responses_dropped == 1


def test_which_answers_the_model_replies_to() -> None:
    ledger = ToolLedger()

    def sent(*responses: FunctionResponse) -> bool:
        msg = ToolResponse(function_responses=list(responses))
        checked = ledger.check_response(msg, model=MODEL, api="gemini", stats=SessionStats())
        assert checked is not None
        return ledger.reply_expected(checked)

    def fr(call_id: str, **kw: object) -> FunctionResponse:
        return FunctionResponse(id=call_id, name="f", response={}, **kw)  # type: ignore[arg-type]

    ledger.calls([FunctionCall(id="a", name="f")])
    assert not sent(fr("a", will_continue=True))  # progress: the call stays open
    assert sent(fr("a"))
    ledger.calls([FunctionCall(id="b", name="f")])
    assert not sent(fr("b", scheduling="SILENT"))
    ledger.calls([FunctionCall(id="c", name="f"), FunctionCall(id="d", name="f")])
    assert not sent(fr("c"))  # the model waits for the whole batch
    assert sent(fr("d", scheduling="SILENT"))  # not every answer of it was SILENT
    ledger.calls([FunctionCall(id="e", name="f"), FunctionCall(id="g", name="f")])
    assert not sent(fr("e", scheduling="SILENT"))
    assert not sent(fr("g", scheduling="SILENT"))
    ledger.calls([FunctionCall(id="h", name="f"), FunctionCall(id="i", name="f")])
    assert sent(fr("h"), fr("i"))
    assert ledger.groups == {} and ledger.answered == {}  # nothing kept once answered


def test_a_cancellation_that_completes_a_batch_makes_its_answer_await_the_reply() -> None:
    # c1 is answered, "tick" written, then the server cancels c2: the model replies to
    # c1's result. That reply covers c1's answer, not "tick" (maybe not read yet).
    p = make(resend=ResendWindow(handle_guard=0.5))
    connect(p)
    p.receive(tool_call("c1", "c2"), 0.0)
    answer(p, "c1", 0.01)  # the model waits for c2 too: no reply yet
    assert p.send_text("tick", 0.02) is not None
    p.receive(cancellation("c2"), 0.03)
    p.receive(MODEL_TEXT, 0.04)  # the reply to c1's result
    p.receive(handle_update("h1"), 0.04)
    assert p.unacknowledged == 1  # "tick"
    drop(p)
    connect(p, 1.0)
    assert flush(p, 1.0) == ["tick"]
