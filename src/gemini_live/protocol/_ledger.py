"""The tool-call ledger: which calls the model waits on, and which answers may still go.

A call is *pending* from its ``toolCall`` until it is answered (without ``willContinue``),
cancelled by the server, or forgotten by the service (a resume from a handle older than
the call, or a fresh session). Each call remembers the *handle epoch* it was made in (the
number of resumable handles seen before it) until a handle covers it: a resume from an
older handle must know the call is gone.

Answers are checked here, once per message: every id answers a pending call, once; an
answer to a cancelled or forgotten call is dropped (counted and logged), never sent.

Which answer the model replies to is decided here too (:meth:`ToolLedger.reply_expected`):
the outbox covers an answer by that reply as it covers a user turn by its answer, and a
handle covers an answered call only once the outbox no longer holds its answer (one rule:
the ledger asks the outbox, :meth:`ToolLedger.handle_arrived`).

``blocking_pending`` is the rotation's question: a call to a function whose effective
behaviour (:func:`gemini_live.models.effective_behavior`) is not ``NON_BLOCKING``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

import msgspec

from gemini_live.errors import ConfigError, UnknownToolCallError
from gemini_live.models import adapt_function_response, effective_behavior
from gemini_live.protocol._state import SessionStats
from gemini_live.types import UNSET, FunctionCall, FunctionResponse, Setup, ToolResponse

__all__ = ["ToolLedger"]

logger = logging.getLogger("gemini_live.protocol")


class ToolLedger(msgspec.Struct, kw_only=True):
    """Tool calls of one session; plain data (it is its own snapshot)."""

    #: Calls the model waits on: id -> function name.
    pending: dict[str, str] = {}
    #: Handle epoch each call was made in (kept after the answer until a handle covers it).
    epochs: dict[str, int] = {}
    #: Resumable handles seen so far.
    handle_epoch: int = 0
    #: Declared names whose effective behaviour is NON_BLOCKING.
    non_blocking: set[str] = set()
    #: Calls the service forgot (a resume from an older handle, a fresh session).
    stale: set[str] = set()
    #: Calls the server cancelled.
    cancelled: set[str] = set()
    #: The ``toolCall`` each pending call came in (its number): the model replies once
    #: every call of one ``toolCall`` is answered (or cancelled).
    groups: dict[str, int] = {}
    #: ``toolCall`` messages seen so far.
    tool_calls: int = 0
    #: ``toolCall`` numbers with a final answer and calls still pending: whether one of
    #: the answers was not ``SILENT`` (the model then speaks about the results once the
    #: group is complete), and the call answered last.
    answered: dict[int, tuple[bool, str]] = {}

    # -- questions ------------------------------------------------------------------------

    @property
    def blocking_pending(self) -> bool:
        """True if a call to a function that is not NON_BLOCKING is still unanswered."""
        return any(name not in self.non_blocking for name in self.pending.values())

    @property
    def newer_than_handle(self) -> bool:
        """A pending call was made after the latest resumable handle."""
        epoch = self.handle_epoch
        return any(self.epochs.get(i, -1) >= epoch for i in self.pending)

    # -- what happens ---------------------------------------------------------------------

    def note_setup(self, setup: Setup) -> None:
        """The setup (or a contextUpdate) declares the functions: which ones do not block."""
        names: set[str] = set()
        for tool in setup.tools if setup.tools is not UNSET else []:
            for decl in (
                tool.function_declarations if tool.function_declarations is not UNSET else []
            ):
                if effective_behavior(setup, decl.name) == "NON_BLOCKING":
                    names.add(decl.name)
        self.non_blocking = names

    def calls(self, calls: Iterable[FunctionCall]) -> None:
        """A ``toolCall`` arrived: its calls are pending, in the current handle epoch."""
        group = self.tool_calls
        self.tool_calls = group + 1
        for call in calls:
            if call.id is not UNSET:
                self.pending[call.id] = call.name if call.name is not UNSET else ""
                self.epochs[call.id] = self.handle_epoch
                self.groups[call.id] = group

    def cancel(self, ids: Iterable[str]) -> list[str]:
        """A ``toolCallCancellation``: the calls are gone; a late answer is dropped.

        Returns the calls whose answers the model now replies to: the call answered last
        in each group the cancellation completes, when an answer of it was not SILENT.
        """
        done: set[int] = set()
        for i in ids:
            if self.pending.pop(i, None) is not None:
                self.cancelled.add(i)
            self.epochs.pop(i, None)
            group = self.groups.pop(i, None)
            if group is not None:
                done.add(group)
        left = set(self.groups.values())
        replied: list[str] = []
        for group in done - left:
            voiced, last = self.answered.pop(group, (False, ""))
            if voiced:
                replied.append(last)
        return replied

    def handle_arrived(self, held: Collection[str] = ()) -> None:
        """A resumable handle: a new epoch. An answered call no longer needs its epoch
        once the handle covers its answer: ``held`` names the calls whose answers the
        outbox still keeps to re-send (not covered); those keep theirs."""
        self.handle_epoch += 1
        pending = self.pending
        self.epochs = {i: e for i, e in self.epochs.items() if i in pending or i in held}

    def opened(self, *, resuming: bool, reconnected: bool) -> None:
        """A connection opened: forget the calls the service no longer has."""
        if resuming:
            # Calls made after the handle we resumed from are gone with the rest.
            stale = [i for i, e in self.epochs.items() if e >= self.handle_epoch]
        elif reconnected:
            # A fresh session after a loss: the server knows nothing of earlier calls,
            # nor of the answered ones no handle covers (their answers would be re-sent).
            stale = list(self.pending.keys() | self.epochs.keys())
        else:
            stale = []
        for i in stale:
            self.pending.pop(i, None)
            self.epochs.pop(i, None)
            self.groups.pop(i, None)
            self.stale.add(i)
        if stale:
            live = set(self.groups.values())
            self.answered = {g: a for g, a in self.answered.items() if g in live}

    def check_response(
        self, msg: ToolResponse, *, model: str, api: str, stats: SessionStats
    ) -> ToolResponse | None:
        """Every id answers a pending call, once; answers to forgotten calls are dropped.

        Returns the message to send (possibly with fewer responses, or adapted to the
        endpoint), or None if nothing is left. Answers clear their ids.
        """
        keep: list[FunctionResponse] = []
        seen: set[str] = set()
        changed = False
        for resp in msg.function_responses:
            rid = resp.id if resp.id is not UNSET and resp.id else None
            if rid is None:
                if api == "gemini":
                    raise ConfigError(f"function response for {resp.name!r} has no id")
                keep.append(resp)
                continue
            if rid in self.stale or rid in self.cancelled:
                stats.stale_tool_responses_dropped += 1
                logger.warning(
                    "not sending the tool response for call %s (%s): the call was %s",
                    rid,
                    resp.name,
                    "cancelled by the server"
                    if rid in self.cancelled
                    else "made in a session state the service no longer has",
                )
                changed = True
                continue
            if rid in seen:
                raise UnknownToolCallError(f"tool call {rid!r} is answered twice in one message")
            if rid not in self.pending:
                raise UnknownToolCallError(
                    f"no pending tool call has id {rid!r} (unknown or already answered); "
                    "nothing was sent"
                )
            seen.add(rid)
            # Endpoint and model rules (e.g. no willContinue / scheduling on Vertex).
            adapted = adapt_function_response(model, resp, vertex=api == "vertex")
            if adapted is not resp:
                resp = adapted
                changed = True
            keep.append(resp)
        for resp in keep:
            rid = resp.id if resp.id is not UNSET and resp.id else None
            if rid is not None and resp.will_continue is not True:
                # The epoch stays until a handle covers the call: a resume from an older
                # handle must still know the call (and its answer) are gone.
                self.pending.pop(rid, None)
        if not keep:
            return None
        return ToolResponse(function_responses=keep) if changed else msg

    def reply_expected(self, msg: ToolResponse) -> bool:
        """Whether the model replies to ``msg`` (an answer as sent, after
        :meth:`check_response`): the message completes the answers to one ``toolCall``
        and not every final answer of that call group was ``SILENT``. A ``willContinue``
        answer gets no reply, nor does the first answer of a group answered in several
        messages. A later model turn answers the message that did complete the group
        (the outbox covers by it, see ``Outbox.model_started``). Unknown (an answer
        without an id, a call not seen): a reply is expected.
        """
        groups = self.groups
        answered = self.answered
        done: list[int] = []
        unknown = False
        for resp in msg.function_responses:
            if resp.will_continue is True:
                continue
            rid = resp.id if resp.id is not UNSET and resp.id else None
            group = groups.pop(rid, None) if rid is not None else None
            if rid is None or group is None:
                unknown = unknown or resp.scheduling != "SILENT"
                continue
            voiced = answered.get(group, (False, ""))[0] or resp.scheduling != "SILENT"
            answered[group] = (voiced, rid)
            done.append(group)
        left = set(groups.values())
        replied = False
        for group in done:
            if group not in left and group in answered:
                replied = answered.pop(group)[0] or replied
        return replied or unknown
