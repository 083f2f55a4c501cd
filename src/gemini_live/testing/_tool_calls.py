"""The tool-calls room of a fake-server connection: call groups, responses, cancellations.

The calls of one ``toolCall`` form a group; when every call of a group is answered (or
cancelled), the model replies to the results (unless all were ``SILENT``): after its
current turn (``WHEN_IDLE``, or no scheduling), or at once, cutting the current turn short
with ``interrupted`` (``INTERRUPT``). Responses to
cancelled calls are ignored; a response to an unknown id closes 1008, as the service does.
"""

from __future__ import annotations

from gemini_live.testing._canned import ENTITY_NOT_FOUND, result_json
from gemini_live.testing._connection import ConnectionBase
from gemini_live.testing._records import PendingCall
from gemini_live.testing.script import CallTools, Reply
from gemini_live.types import (
    FunctionCall,
    FunctionResponse,
    ServerMessage,
    ToolCall,
    ToolCallCancellation,
    ToolResponse,
)

__all__ = ["ToolCallsRoom"]


class ToolCallsRoom(ConnectionBase):
    """Tool calls (a room of ``_ConnectionLogic``)."""

    async def start_tool_call(
        self, calls: list[FunctionCall], *, non_blocking: bool = False
    ) -> list[str]:
        session = self.session
        if session is None:
            raise LookupError("the connection has no session yet (no setup received)")
        group = self.core.next_group()
        ids: list[str] = []
        for call in calls:
            if not isinstance(call.id, str):
                call.id = self.core.next_call_id()
            name = call.name if isinstance(call.name, str) else ""
            session.pending_calls[call.id] = PendingCall(call.id, name, group, non_blocking)
            ids.append(call.id)
        await self._send(ServerMessage(tool_call=ToolCall(function_calls=calls)))
        return ids

    async def cancel_calls(self, ids: list[str], *, finish: bool = True) -> None:
        session = self.session
        if session is None:
            raise LookupError("the connection has no session yet (no setup received)")
        groups = set()
        for call_id in ids:
            call = session.pending_calls.pop(call_id, None)
            if call is not None:
                groups.add(call.group)
            session.cancelled_calls.add(call_id)
        await self._send(ServerMessage(tool_call_cancellation=ToolCallCancellation(ids=ids)))
        if not finish:
            for group in groups:
                if not any(c.group == group for c in session.pending_calls.values()):
                    session.results.pop(group, None)
            return
        for group in groups:
            await self._maybe_finish_group(group)

    async def _call_tools(self, action: CallTools) -> None:
        calls = [
            FunctionCall(id=c.id or self.core.next_call_id(), name=c.name, args=dict(c.args))
            for c in action.calls
        ]
        ids = await self.start_tool_call(calls, non_blocking=not action.blocking)
        self.turn_calls.extend(ids)
        if action.cancel_after:
            await self.cancel_calls(ids)

    async def _tool_response(self, tr: ToolResponse) -> None:
        session = self.session
        assert session is not None
        done_groups: list[int] = []
        for fr in tr.function_responses:
            call_id = fr.id if isinstance(fr.id, str) else self._id_by_name(fr)
            if call_id is not None and call_id in session.cancelled_calls:
                continue  # answered after a cancellation: ignored, as the service does
            call = session.pending_calls.get(call_id) if call_id is not None else None
            if call is None:
                await self.close(1008, ENTITY_NOT_FOUND)
                return
            if fr.will_continue is True:
                call.partials.append(fr.response)
                continue
            del session.pending_calls[call.id]
            scheduling = fr.scheduling if isinstance(fr.scheduling, str) else None
            results = session.results.setdefault(call.group, [])
            for partial in call.partials:
                results.append((call.name, partial, scheduling))
            if fr.response or not call.partials:
                results.append((call.name, fr.response, scheduling))
            if call.group not in done_groups:
                done_groups.append(call.group)
        for group in done_groups:
            await self._maybe_finish_group(group)

    def _id_by_name(self, fr: FunctionResponse) -> str | None:
        assert self.session is not None
        for call in self.session.pending_calls.values():
            if call.name == fr.name:
                return call.id
        return None

    async def _maybe_finish_group(self, group: int) -> None:
        session = self.session
        assert session is not None
        if any(c.group == group for c in session.pending_calls.values()):
            return
        results = session.results.pop(group, [])
        if not results or not self.opts.auto_reply:
            return
        session.prompt_tokens += sum(max(1, len(result_json(r)) // 4) for _, r, _ in results)
        actions = self._scripted(tool_names=[name for name, _, _ in results])
        if actions is None:
            if all(s == "SILENT" for _, _, s in results):
                return
            if any(s == "INTERRUPT" for _, _, s in results) and self._generation is not None:
                # INTERRUPT: the model stops its current turn to speak about the result
                # (WHEN_IDLE waits: background replies run one after the other).
                await self._interrupt([])
            text = "; ".join(f"{name} returned {result_json(r)}" for name, r, _ in results)
            actions = [Reply(text)]
        await self._generate(actions)
