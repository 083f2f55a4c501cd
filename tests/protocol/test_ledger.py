"""Pure tests of the tool-call ledger and of ``models.effective_behavior``."""

from __future__ import annotations

import logging

import msgspec
import pytest

from gemini_live import errors
from gemini_live.models import effective_behavior
from gemini_live.protocol._ledger import ToolLedger
from gemini_live.protocol._state import SessionStats
from gemini_live.types import (
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    Setup,
    Tool,
    ToolResponse,
)

M38 = "models/gemini-3.8-live"  # family default NON_BLOCKING
M31 = "models/gemini-3.1-flash-live-preview"  # family default BLOCKING


def decls(*items: FunctionDeclaration) -> list[Tool]:
    return [Tool(function_declarations=list(items))]


def call(*ids: str, name: str = "f") -> list[FunctionCall]:
    return [FunctionCall(id=i, name=name) for i in ids]


def answer(*ids: str, **kw: object) -> ToolResponse:
    return ToolResponse(
        function_responses=[FunctionResponse(id=i, name="f", response={}, **kw) for i in ids]  # type: ignore[arg-type]
    )


def check(ledger: ToolLedger, msg: ToolResponse, api: str = "gemini") -> ToolResponse | None:
    return ledger.check_response(msg, model=M38, api=api, stats=SessionStats())


def test_effective_behavior_is_declared_else_the_family_default() -> None:
    tools = decls(
        FunctionDeclaration(name="says", behavior="BLOCKING"),
        FunctionDeclaration(name="unset"),
    )
    assert effective_behavior(Setup(model=M38, tools=tools), "says") == "BLOCKING"
    assert effective_behavior(Setup(model=M38, tools=tools), "unset") == "NON_BLOCKING"
    assert effective_behavior(Setup(model=M31, tools=tools), "unset") == "BLOCKING"
    assert effective_behavior(Setup(model="models/unknown", tools=tools), "unset") is None
    assert effective_behavior(Setup(model=M38, tools=tools), "undeclared") is None
    assert effective_behavior(Setup(model=M38), "says") is None


def test_blocking_pending_follows_the_effective_behaviour() -> None:
    ledger = ToolLedger()
    tools = decls(
        FunctionDeclaration(name="bg"), FunctionDeclaration(name="fg", behavior="BLOCKING")
    )
    ledger.note_setup(Setup(model=M38, tools=tools))
    ledger.calls(call("c1", name="bg"))
    blocking = [ledger.blocking_pending]
    ledger.calls(call("c2", name="fg"))
    blocking.append(ledger.blocking_pending)
    assert blocking == [False, True]
    ledger.note_setup(Setup(model=M31, tools=tools))  # a 3.1 default: bg blocks too
    ledger.cancel(["c2"])
    assert ledger.blocking_pending


def test_an_undeclared_function_blocks() -> None:
    ledger = ToolLedger()
    ledger.calls(call("c1", name="nobody"))
    assert ledger.blocking_pending


def test_an_answer_names_a_pending_call_once() -> None:
    ledger = ToolLedger()
    ledger.calls(call("c1", "c2"))
    with pytest.raises(errors.UnknownToolCallError, match="twice"):
        check(ledger, answer("c1", "c1"))
    with pytest.raises(errors.UnknownToolCallError, match="no pending"):
        check(ledger, answer("zz"))
    msg = answer("c1")
    assert check(ledger, msg) is msg
    assert ledger.pending == {"c2": "f"}
    with pytest.raises(errors.UnknownToolCallError):
        check(ledger, answer("c1"))  # already answered


def test_will_continue_keeps_the_call_pending() -> None:
    ledger = ToolLedger()
    ledger.calls(call("c1"))
    check(ledger, answer("c1", will_continue=True))
    assert "c1" in ledger.pending


def test_gemini_needs_ids_vertex_does_not() -> None:
    ledger = ToolLedger()
    no_id = ToolResponse(function_responses=[FunctionResponse(name="f", response={})])
    with pytest.raises(errors.ConfigError, match="no id"):
        check(ledger, no_id)
    assert check(ledger, no_id, api="vertex") is no_id


def test_answers_to_cancelled_calls_are_dropped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger, stats = ToolLedger(), SessionStats()
    ledger.calls(call("c1", "c2"))
    ledger.cancel(["c1"])
    with caplog.at_level(logging.WARNING, "gemini_live.protocol"):
        kept = ledger.check_response(answer("c1", "c2"), model=M38, api="gemini", stats=stats)
    assert kept is not None and [r.id for r in kept.function_responses] == ["c2"]
    assert stats.stale_tool_responses_dropped == 1
    assert "cancelled by the server" in caplog.text
    assert ledger.check_response(answer("c1"), model=M38, api="gemini", stats=stats) is None


def test_a_resume_forgets_the_calls_made_after_its_handle() -> None:
    ledger = ToolLedger()
    ledger.calls(call("old"))
    ledger.handle_arrived()
    ledger.calls(call("new"))
    assert ledger.newer_than_handle
    ledger.opened(resuming=True, reconnected=True)
    assert ledger.pending == {"old": "f"}
    assert ledger.stale == {"new"}


def test_an_answered_call_keeps_its_epoch_until_a_handle_covers_it() -> None:
    ledger = ToolLedger()
    ledger.handle_arrived()
    ledger.calls(call("c1"))
    check(ledger, answer("c1"))
    ledger.opened(resuming=True, reconnected=True)  # resumed from before the call
    assert ledger.stale == {"c1"}  # its answer must not be re-sent
    ledger2 = ToolLedger()
    ledger2.calls(call("c1"))
    check(ledger2, answer("c1"))
    ledger2.handle_arrived()  # covers the call and its answer
    ledger2.opened(resuming=True, reconnected=True)
    assert ledger2.stale == set()


def test_a_fresh_session_forgets_every_pending_call() -> None:
    ledger = ToolLedger()
    ledger.calls(call("c1", "c2"))
    ledger.opened(resuming=False, reconnected=True)
    assert ledger.pending == {} and ledger.stale == {"c1", "c2"}
    first = ToolLedger()
    first.calls(call("c1"))
    first.opened(resuming=False, reconnected=False)  # the first connection: nothing to forget
    assert first.pending == {"c1": "f"}


def test_the_ledger_is_its_own_snapshot() -> None:
    ledger = ToolLedger()
    ledger.note_setup(Setup(model=M38, tools=decls(FunctionDeclaration(name="f"))))
    ledger.calls(call("a", "b"))
    ledger.cancel(["a"])
    ledger.handle_arrived()
    for codec in (msgspec.json, msgspec.msgpack):
        assert codec.decode(codec.encode(ledger), type=ToolLedger) == ledger
