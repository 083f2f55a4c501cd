"""The executor seam: where a long-running tool runs.

The default is ``"inline"``: the tool runs in the process that owns the session. An
:class:`Executor` runs it somewhere else (a job queue's worker process) and hands the
result back by job id, so whichever process owns the conversation when the job ends can
collect it: the job id is kept in the conversation's stored task record.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeAlias, runtime_checkable

from gemini_live.types import JSONObject

__all__ = ["Executor", "ExecutorCall", "ExecutorLike", "RemoteToolError"]


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutorCall:
    """One tool call handed to an :class:`Executor`.

    Attributes:
        tool: The tool's name (the worker looks it up in its own registry).
        args: The model's arguments (JSON), not yet validated (the worker binds them).
        call_id: The function call's id (None: the call had none).
        task: The task id the model was told ("T3").
        conversation: The stored conversation's id (None: the session is not stored).
    """

    tool: str
    args: JSONObject
    call_id: str | None
    task: str
    conversation: str | None = None


@runtime_checkable
class Executor(Protocol):
    """Runs long-running tool calls elsewhere (see :class:`~gemini_live.tools.ArqExecutor`).

    ``name`` identifies the executor in stored task records: a process that resumes the
    conversation finds it again by that name (``ToolRunner(executors=...)`` or the
    tool's own ``executor=``). The three methods:

    * ``submit(call)`` queues the call and returns a job id (a str, unique per call);
    * ``result(job)`` waits for that job and returns the tool's result (a plain value or a
      :class:`~gemini_live.tools.ToolResult`) or raises its error (raise
      :class:`RemoteToolError` to pass on the error body the worker produced). It must
      work from another process than the one that submitted the job;
    * ``cancel(job)`` asks for the job to stop; returns whether it was still running.
    """

    @property
    def name(self) -> str: ...

    async def submit(self, call: ExecutorCall) -> str: ...

    async def result(self, job: str) -> Any: ...

    async def cancel(self, job: str) -> bool: ...


#: ``"inline"``, an executor's name, or an :class:`Executor`.
ExecutorLike: TypeAlias = "str | Executor"


class RemoteToolError(Exception):
    """A tool failed on an executor's worker; ``body`` is the error envelope it produced
    (``message``, ``type``, ``retryable``[, ``hint``]), sent to the model as it is."""

    def __init__(self, body: JSONObject) -> None:
        super().__init__(str(body.get("message", "the tool failed on its worker")))
        self.body = body
