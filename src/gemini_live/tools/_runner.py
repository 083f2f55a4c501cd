"""Answering the model's tool calls: :class:`ToolRunner` and :func:`run_tools`.

The runner listens with :meth:`Session.on_event <gemini_live.Session.on_event>`: a
synchronous callback that sees every event, in order, and never drops one. So a call that
arrives while the runner is busy, or in the very first frame after it was attached, is
always answered (exactly once per id). Endpoint rules (which ids a response needs, whether
``willContinue`` is allowed, whether a BLOCKING call is pending) belong to the session's
protocol; the runner sends what the tool produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final, Protocol, TypeAlias

import msgspec

from gemini_live import events as ev
from gemini_live.errors import ConfigError, SessionClosedError, redact
from gemini_live.models import effective_behavior, family_of
from gemini_live.store._record import MAX_STORED_TASKS, TaskRecord
from gemini_live.tools._executor import Executor, ExecutorCall, RemoteToolError
from gemini_live.tools._registry import (
    SchedulingLike,
    ToolArgumentError,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    ToolSpec,
)
from gemini_live.types import (
    UNSET,
    Behavior,
    Content,
    FunctionCall,
    FunctionResponse,
    FunctionResponseScheduling,
    JSONObject,
    Part,
    Setup,
)

__all__ = [
    "OnCall",
    "OnResult",
    "OnTask",
    "ToolRunner",
    "ToolRunnerStats",
    "ToolSession",
    "ToolTask",
    "run_tools",
]

logger = logging.getLogger("gemini_live.tools")


class ToolSession(Protocol):
    """What a :class:`ToolRunner` needs from a session (:class:`gemini_live.Session` has it).

    ``on_event`` must call ``callback`` synchronously for every event, in stream order,
    with :class:`~gemini_live.events.Closed` last, and return a function that unregisters
    it. ``closed`` is True once the session has ended (no ``Closed`` will follow). A
    ``setup`` attribute (a :class:`~gemini_live.types.Setup`), when the session has one,
    tells the runner the behaviour of tools declared without one.
    """

    @property
    def closed(self) -> bool: ...

    def on_event(self, callback: Callable[[ev.Event], object]) -> Callable[[], None]: ...

    async def send_tool_response(
        self, responses: FunctionResponse | Iterable[FunctionResponse]
    ) -> None: ...


#: ``hook(call)``, run before a call (may be async).
OnCall: TypeAlias = Callable[[FunctionCall], object]
#: ``hook(call, response, elapsed_s)``, run after each response is sent (may be async).
OnResult: TypeAlias = Callable[[FunctionCall, FunctionResponse, float], object]


@dataclasses.dataclass
class ToolRunnerStats:
    """Counters of a :class:`ToolRunner` (monotonic)."""

    #: Calls received and started.
    started: int = 0
    #: Final responses sent (success or error).
    answered: int = 0
    #: Final responses that carried an error (includes timed_out, unknown, invalid_args).
    failed: int = 0
    timed_out: int = 0
    #: Calls cancelled by the server, a fresh session or the session's end (not answered).
    cancelled: int = 0
    unknown: int = 0
    invalid_args: int = 0
    #: ``willContinue: true`` responses sent.
    partials: int = 0
    send_errors: int = 0
    hook_errors: int = 0
    #: Long-running calls refused at once because ``max_running_tasks`` were running.
    too_many_tasks: int = 0
    #: Tasks of a previous owner found running after a restart: reported lost, re-run
    #: (idempotent), or collected from their executor.
    lost: int = 0
    rerun: int = 0
    resumed: int = 0


#: ``hook(task, what)`` (synchronous, on the event loop) on a long-running task's life:
#: ``what`` is ``"started"``, ``"progress"``, ``"finished"``, ``"failed"``,
#: ``"cancelled"``, ``"lost"`` (taken over from a previous owner that stopped while it
#: ran) or ``"delivered"``. A task taken over from a stored conversation and still running
#: (re-run, or waited for on its executor) is announced with ``"started"`` again.
OnTask: TypeAlias = Callable[["ToolTask", str], object]

#: Finished tasks kept in :attr:`ToolRunner.tasks` (running ones are always kept).
MAX_FINISHED_TASKS: Final = 64
#: Progress values kept per task.
MAX_PROGRESS: Final = 32
#: Long-running tasks a session may have running at once (``max_running_tasks``).
DEFAULT_MAX_RUNNING_TASKS: Final = 16


class ToolTask:
    """A long-running tool call that did not finish within its budget.

    The model got a ``{"status": "started", "task": id}`` answer at once; the result
    follows when the tool finishes. ``state`` is ``"running"``, ``"finished"``,
    ``"failed"``, ``"cancelled"`` or ``"lost"``; ``delivered`` says how the outcome
    reached the model: ``"response"`` (the call's final function response), ``"context"``
    (a user-side turn naming the call: the family takes no ``willContinue``, or the
    service forgot the call), or None (not yet, or the call was cancelled by the server).
    With a stored conversation :meth:`to_record` is what the store keeps of it.
    """

    __slots__ = (
        "_cancel_requested",
        "_inner",
        "args",
        "call_id",
        "delivered",
        "executor",
        "id",
        "idempotent",
        "job",
        "name",
        "parts",
        "progress",
        "result",
        "route",
        "scheduling",
        "started_at",
        "state",
        "updated_at",
    )

    def __init__(self, task_id: str, call_id: str | None, name: str, args: JSONObject) -> None:
        self.id = task_id
        self.call_id = call_id
        self.name = name
        self.args = args
        #: ``"running"``, ``"finished"``, ``"failed"``, ``"cancelled"`` or ``"lost"`` (its
        #: previous owner stopped while it ran and the tool is not idempotent).
        self.state = "running"
        self.delivered: str | None = None
        #: The last progress values (at most 32).
        self.progress: list[Any] = []
        #: The response body sent (or to send) as the outcome.
        self.result: JSONObject | None = None
        #: Media parts and scheduling of the outcome (from a :class:`ToolResult`).
        self.parts: list[JSONObject] | None = None
        self.scheduling: str | None = None
        #: ``"response"`` or ``"context"``: how the outcome reaches the model.
        self.route = "context"
        #: Where it runs (``"inline"`` or an executor's name) and the executor's job id.
        self.executor = "inline"
        self.job: str | None = None
        self.idempotent = False
        self.started_at = time.time()
        self.updated_at = self.started_at
        self._inner: asyncio.Task[Any] | None = None
        self._cancel_requested = False

    def to_record(self) -> TaskRecord:
        """The task as the conversation store keeps it."""
        return TaskRecord(
            task=self.id,
            call_id=self.call_id,
            name=self.name,
            args=dict(self.args),
            state="delivered" if self.delivered is not None else self.state,
            result=self.result,
            parts=self.parts,
            scheduling=self.scheduling,
            route=self.route,
            delivered=self.delivered,
            executor=self.executor,
            job=self.job,
            idempotent=self.idempotent,
            started_at=self.started_at,
            updated_at=self.updated_at,
        )

    @classmethod
    def from_record(cls, record: TaskRecord) -> ToolTask:
        task = cls(record.task, record.call_id, record.name, dict(record.args))
        task.state = "finished" if record.state == "delivered" else record.state
        task.delivered = record.delivered
        task.result = record.result
        task.parts = record.parts
        task.scheduling = record.scheduling
        task.route = record.route
        task.executor = record.executor
        task.job = record.job
        task.idempotent = record.idempotent
        task.started_at = record.started_at
        task.updated_at = record.updated_at
        return task

    def cancel(self) -> bool:
        """Cancel the running tool; returns False if it already ended. The model is told
        (``{"status": "cancelled"}``) unless the server itself cancelled the call."""
        inner = self._inner
        if self.state != "running" or inner is None or inner.done():
            return False
        self._cancel_requested = True
        inner.cancel()
        return True

    def summary(self) -> JSONObject:
        """What ``list_tasks`` shows the model."""
        out: JSONObject = {"task": self.id, "tool": self.name, "state": self.state}
        if self.progress:
            out["progress"] = msgspec.to_builtins(self.progress[-1], str_keys=True)
        return out

    def __repr__(self) -> str:
        return f"<ToolTask {self.id} {self.name} {self.state} delivered={self.delivered}>"


class _Job:
    __slots__ = (
        "answered",
        "call",
        "cancelled",
        "ctx",
        "detached",
        "id",
        "name",
        "sending",
        "t0",
        "task",
        "tool_task",
    )

    def __init__(self, call: FunctionCall) -> None:
        self.call = call
        self.id: str | None = call.id if call.id is not UNSET else None
        self.name: str = call.name if call.name is not UNSET else ""
        args = call.args if call.args is not UNSET else {}
        self.ctx = ToolContext(self.id, self.name, args)
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False
        self.answered = False
        self.sending = False
        self.t0 = time.perf_counter()
        #: A long-running call past its budget: its task outlives a fresh session.
        self.detached = False
        self.tool_task: ToolTask | None = None

    def cancel(self, *, force: bool = False) -> bool:
        """Cancel unless already answered; returns whether this call counted as cancelled."""
        if self.cancelled or self.answered:
            if force and self.task is not None:
                self.task.cancel()
            return False
        self.cancelled = True
        self.ctx.cancelled.set()
        if self.task is not None and (force or not self.sending):
            self.task.cancel()
        return True


_NOTHING: Final = object()
_DONE: Final = object()


class ToolRunner:
    """Answers the model's tool calls using ``registry``.

    Attach it to a session with :meth:`attach` (or use :func:`run_tools`). From that
    moment every call is dispatched: each call of a ``ToolCall`` runs concurrently (async
    tools as tasks, sync tools in a bounded thread pool the runner owns) and is answered
    as soon as it finishes. Call ids named in a ``toolCallCancellation`` are cancelled and
    never answered; so are calls still running when a reconnect starts a fresh
    (non-resumed) session or when the session ends. Hook or send failures are logged and
    counted, never raised.

    Args:
        registry: The tools.
        max_workers: Threads for sync tools (default ``min(32, cpu + 4)``). A cancelled or
            timed-out sync tool keeps its thread until it returns.
        default_timeout: Seconds per call for tools without their own (None: no limit).
        on_call: ``hook(call)`` before a call runs (sync or async).
        on_result: ``hook(call, response, elapsed_s)`` after each response is sent.
        partial_responses: Send ``willContinue`` partials for NON_BLOCKING generator tools
            (default True). Vertex AI does not support them: pass False there, and every
            generator tool then sends only its last item, as the single final answer.
        on_task: ``hook(task, what)`` on each step of a long-running task (see
            :data:`OnTask`).
        delivery_timeout: Seconds a late result waits for an open (and, for WHEN_IDLE, an
            idle) session before it is given up (logged; the task keeps its result).
        max_running_tasks: Long-running tasks allowed to run at once (default 16).
        executors: Executors by name, for tools declared with ``executor="name"`` and for
            stored tasks whose executor a restarted process must find again.

    With a stored conversation (``connect(conversation=..., store=...)``) each task's
    record (call, arguments, state, result, executor job) is saved in the conversation
    at every state change. A process that resumes the conversation reports the previous
    owner's in-process tasks that were still running as lost (or re-runs those declared
    ``idempotent``), waits again for tasks on an executor, and delivers finished but
    undelivered results, once.

    Long-running tools (``long_running=True`` / ``budget=``) answer inline when they finish
    within their budget. Otherwise the model at once gets ``{"status": "started", "task":
    id}`` and the runner lists a :class:`ToolTask` in :attr:`tasks`. The result arrives
    later, as the family accepts it: on a ``NON_BLOCKING`` call where ``willContinue``
    applies, "started" and progress are ``willContinue`` partials (``SILENT``) and the
    result is the call's final response with the tool's scheduling (default
    ``WHEN_IDLE``); otherwise "started" is the final answer and the result is a user turn
    that names the call (``WHEN_IDLE`` waits for the model's turn to end; ``SILENT`` adds
    it without asking for a reply where the family takes mid-session ``clientContent``).
    A result whose call the service forgot (a fresh session, a resume from an older
    handle) goes as that turn too, never as a response to an unknown id; a result that
    finishes while disconnected waits for the session to be open again. Each outcome is
    delivered once.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        max_workers: int | None = None,
        default_timeout: float | None = 30.0,
        on_call: OnCall | None = None,
        on_result: OnResult | None = None,
        partial_responses: bool = True,
        on_task: OnTask | None = None,
        delivery_timeout: float = 300.0,
        max_running_tasks: int = DEFAULT_MAX_RUNNING_TASKS,
        executors: Mapping[str, Executor] | None = None,
    ) -> None:
        if not isinstance(registry, ToolRegistry):
            raise ConfigError(
                f"ToolRunner takes a ToolRegistry first, got {type(registry).__name__} "
                "(attach the session with .attach(session), or use run_tools(session, registry))"
            )
        if max_workers is not None and max_workers < 1:
            raise ConfigError("max_workers must be at least 1")
        if default_timeout is not None and not default_timeout > 0:
            raise ConfigError("default_timeout must be positive or None")
        if (
            isinstance(max_running_tasks, bool)
            or not isinstance(max_running_tasks, int)
            or max_running_tasks < 1
        ):
            raise ConfigError(f"max_running_tasks must be an int >= 1, got {max_running_tasks!r}")
        #: At most this many long-running tasks run at once; a call beyond it is answered
        #: at once with a ``TooManyTasks`` error (counted in ``stats.too_many_tasks``).
        self.max_running_tasks = max_running_tasks
        self.executors: dict[str, Executor] = dict(executors or {})
        for key, value in self.executors.items():
            if not isinstance(value, Executor):
                raise ConfigError(f"executors[{key!r}] is not an Executor")
        #: The stored conversation the tasks are saved in (None: not stored).
        self._link: Any = None
        self.registry = registry
        self.session: ToolSession | None = None
        self.default_timeout = default_timeout
        self.on_call = on_call
        self.on_result = on_result
        self.partial_responses = partial_responses
        self.on_task = on_task
        #: Seconds a late result waits for the session to be open (and idle, WHEN_IDLE).
        self.delivery_timeout = delivery_timeout
        self._tasks: dict[str, ToolTask] = {}
        #: Progress sends in flight (kept referenced until done).
        self._side: set[asyncio.Task[bool]] = set()
        self._task_ids = itertools.count(1)
        #: Set on each connection / turn event; late deliveries wait on it.
        self._wake = asyncio.Event()
        self.stats = ToolRunnerStats()
        #: Seconds to wait for cancelled tool tasks to finish when stopping.
        self.cancel_grace = 1.0
        self._max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._executor: ThreadPoolExecutor | None = None
        self._jobs: dict[str, _Job] = {}
        self._anon = itertools.count(1)
        self._unsubscribe: Callable[[], None] | None = None
        #: aclose() was called: no new session, no new calls.
        self._closed = False
        #: The session ended: nothing can be sent any more.
        self._ended = False
        self._stopping: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle --------------------------------------------------------------------------

    def attach(self, session: ToolSession) -> ToolRunner:
        """Start answering ``session``'s tool calls; returns the runner.

        Registers the event callback at once (no await), so attaching before the session
        receives its first frame means no call can be missed. Idempotent for the same
        session; a runner serves one session for its whole life.

        Raises:
            ConfigError: The runner was closed, or is attached to another session.
        """
        if self._closed:
            raise ConfigError("this ToolRunner was closed; create a new one")
        if self.session is not None:
            if self.session is not session:
                raise ConfigError("this ToolRunner is attached to another session")
            return self
        self.session = session
        if session.closed:
            self._ended = True
            self._stopped.set()
            return self
        self._unsubscribe = session.on_event(self._on_event)
        link = getattr(session, "conversation", None)
        if link is not None and hasattr(link, "tasks_source"):
            self._link = link
            stored = list(link.record.tasks) if link.record is not None else []
            link.tasks_source = self._task_records
            if stored:
                self._recover(stored)
        return self

    def start(self) -> ToolRunner:
        """Check that the runner is attached and answering; returns it. Idempotent.

        Kept for symmetry with :meth:`aclose`: :meth:`attach` already starts answering.

        Raises:
            ConfigError: Not attached yet, or closed.
        """
        if self._closed:
            raise ConfigError("this ToolRunner was closed; create a new one")
        if self.session is None:
            raise ConfigError("attach the ToolRunner to a session first: runner.attach(session)")
        return self

    async def aclose(self, *, answer_pending: bool = True) -> None:
        """Stop: cancel running calls and release the threads. Idempotent.

        Args:
            answer_pending: Answer each call still running with a ``Cancelled`` error so
                the model is not left waiting (an unanswered BLOCKING call wedges the
                session). Calls are never answered once the session has ended.
        """
        self._closed = True
        self._unsubscribe_now()
        stopping = self._stopping
        if stopping is not None and stopping is not asyncio.current_task():
            await asyncio.wait({stopping})
        await self._stop_jobs(answer=answer_pending and not self._ended)
        self._shutdown_executor()
        self._stopped.set()

    async def wait(self) -> None:
        """Wait until the runner stops (the session ended or :meth:`aclose` finished)."""
        if self.session is not None:
            await self._stopped.wait()

    async def wait_idle(self) -> None:
        """Wait until no call is in flight (every started call answered or cancelled)."""
        await self._idle.wait()

    @property
    def running(self) -> bool:
        """True while attached to a session that has not ended and not closed."""
        return self.session is not None and not self._stopped.is_set() and not self._closed

    @property
    def tasks(self) -> list[ToolTask]:
        """Long-running tasks: running ones and the last finished ones, oldest first."""
        return list(self._tasks.values())

    def get_task(self, task_id: str) -> ToolTask | None:
        """The task with this id, if the runner still lists it."""
        return self._tasks.get(task_id)

    def add_task_tools(self) -> ToolRunner:
        """Offer the model ``list_tasks`` and ``cancel_task`` (added to :attr:`registry`;
        declare them with ``registry.tools()``). Returns the runner."""
        runner = self

        async def list_tasks() -> dict[str, Any]:
            """List the background tasks started by earlier tool calls and their state."""
            return {"tasks": [t.summary() for t in runner.tasks]}

        async def cancel_task(task: str) -> dict[str, Any]:
            """Cancel a running background task.

            Args:
                task: The task id a tool answered with (e.g. "T1").
            """
            found = runner.get_task(task)
            if found is None:
                raise ToolError(f"no task {task!r}", hint="call list_tasks for the ids")
            return {"task": task, "cancelled": found.cancel(), "state": found.state}

        for fn in (list_tasks, cancel_task):
            if fn.__name__ not in self.registry:
                self.registry.add(fn, behavior=None)
        return self

    @property
    def pending(self) -> int:
        """Calls running or waiting for their answer to be sent."""
        return len(self._jobs)

    async def __aenter__(self) -> ToolRunner:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ToolRunner {state} pending={self.pending} tools={self.registry.names}>"

    # -- events (synchronous, on the event loop, in stream order) ---------------------------

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(
            event,
            ev.Resumed | ev.SetupComplete | ev.TurnComplete | ev.Interrupted | ev.Closed,
        ):
            self._wake.set()
        if isinstance(event, ev.ToolCall):
            if not self._closed:
                for call in event.calls:
                    self._dispatch(call)
        elif isinstance(event, ev.ToolCallCancellation):
            self._cancel(event.ids)
        elif isinstance(event, ev.Resumed) and not event.state_restored:
            # Long-running tasks past their budget go on: their results go as a turn.
            ids = [k for k, j in self._jobs.items() if not j.detached]
            if ids:
                logger.warning(
                    "fresh session after a reconnect: cancelling %d tool call(s)", len(ids)
                )
                self._cancel(ids)
        elif isinstance(event, ev.Closed):
            self._session_ended()

    def _unsubscribe_now(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def _session_ended(self) -> None:
        """The session is over: cancel every call (nothing can be answered) and stop."""
        self._ended = True
        self._unsubscribe_now()
        if not self._jobs:
            self._shutdown_executor()
            self._stopped.set()
        elif self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(
                self._finish(), name="gemini-live-tools-stop"
            )

    async def _finish(self) -> None:
        try:
            await self._stop_jobs(answer=False)
        finally:
            self._shutdown_executor()
            self._stopped.set()

    async def _stop_jobs(self, *, answer: bool) -> None:
        jobs = list(self._jobs.values())
        abandoned = [j for j in jobs if answer and not j.cancelled and not j.answered]
        for job in jobs:
            if job.cancel(force=True) and job not in abandoned:
                self.stats.cancelled += 1
        me = asyncio.current_task()
        tasks = {j.task for j in jobs if j.task is not None and j.task is not me}
        if tasks:
            _, slow = await asyncio.wait(tasks, timeout=self.cancel_grace)
            for t in slow:
                logger.warning("tool task %s ignores cancellation", t.get_name())
        for job in abandoned:
            await self._answer_abandoned(job)

    async def _answer_abandoned(self, job: _Job) -> None:
        if job.answered:
            return
        job.answered = True
        spec = self.registry.get(job.name)
        body = {
            "message": "the client stopped handling tool calls before this call finished",
            "type": "Cancelled",
            "retryable": True,
        }
        streaming = spec is not None and _streams(self, spec)
        response = self._make(
            job, spec, {"error": body}, will_continue=False if streaming else None
        )
        try:
            async with asyncio.timeout(self.cancel_grace):
                await self._send_to_session(response)
        except Exception as exc:
            self.stats.send_errors += 1
            logger.warning("could not answer abandoned call %r (%s): %r", job.id, job.name, exc)
            return
        self.stats.answered += 1
        self.stats.failed += 1

    async def _send_to_session(self, response: FunctionResponse) -> None:
        session = self.session
        if session is None or self._ended:
            raise SessionClosedError("the session has ended; the response cannot be sent")
        await session.send_tool_response(response)

    def _shutdown_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _dispatch(self, call: FunctionCall) -> None:
        job = _Job(call)
        key = job.id if job.id is not None else f"\x00anonymous-{next(self._anon)}"
        if key in self._jobs:
            logger.warning("duplicate tool call id %r ignored (already running)", job.id)
            return
        self.stats.started += 1
        self._jobs[key] = job
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(
            self._handle(job), name=f"gemini-live-tool:{job.name}:{job.id}"
        )
        job.task = task
        task.add_done_callback(functools.partial(self._job_done, key, job))

    def _job_done(self, key: str, job: _Job, task: asyncio.Task[None]) -> None:
        if self._jobs.get(key) is job:
            del self._jobs[key]
            if not self._jobs:
                self._idle.set()
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:  # pragma: no cover - _handle catches everything
                logger.error("tool task crashed", exc_info=exc)

    def _cancel(self, ids: Iterable[str]) -> None:
        for cid in ids:
            job = self._jobs.get(cid)
            if job is None:
                logger.debug("cancellation of call %r: not running", cid)
            elif job.cancel():
                self.stats.cancelled += 1

    # -- one call ---------------------------------------------------------------------------

    async def _handle(self, job: _Job) -> None:
        if self.on_call is not None:
            await self._hook(self.on_call, job.call)
        spec = self.registry.get(job.name)
        if spec is None:
            self.stats.unknown += 1
            names = ", ".join(self.registry.names) or "none"
            await self._send_error(
                job,
                None,
                {
                    "message": f"unknown function {job.name!r}",
                    "type": "UnknownFunction",
                    "retryable": False,
                    "hint": f"available functions: {names}",
                },
            )
            return
        if spec.long_running:
            loop = asyncio.get_running_loop()
            job.ctx = ToolContext(
                job.id,
                job.name,
                job.ctx.args,
                job.ctx.cancelled,
                functools.partial(self._progress_from_any_thread, loop, job),
            )
        try:
            args, kwargs = spec.bind(job.ctx.args, job.ctx)
        except ToolArgumentError as exc:
            self.stats.invalid_args += 1
            await self._send_error(job, spec, _error_body(exc))
            return
        if spec.long_running:
            await self._long(job, spec, args, kwargs)
            return
        timeout = spec.timeout if spec.timeout is not None else self.default_timeout
        if timeout is not None and math.isinf(timeout):
            timeout = None
        final: FunctionResponse
        try:
            async with asyncio.timeout(timeout) as scope:
                if spec.kind in ("async_gen", "sync_gen"):
                    final = await self._stream(job, spec, args, kwargs)
                else:
                    if spec.kind == "async":
                        value = await spec.fn(*args, **kwargs)
                    else:
                        value = await self._in_thread(spec.fn, *args, **kwargs)
                        if inspect.isawaitable(value):
                            value = await value
                    final = self._response(job, spec, value)
        except asyncio.CancelledError:
            job.ctx.cancelled.set()
            task = asyncio.current_task()
            if job.cancelled or self._closed or (task is not None and task.cancelling()):
                raise
            # The tool raised CancelledError on its own: still answer (never wedge).
            await self._send_error(job, spec, _error_body(asyncio.CancelledError("cancelled")))
            return
        except TimeoutError as exc:
            job.ctx.cancelled.set()
            if scope.expired():
                self.stats.timed_out += 1
                logger.warning("tool %r timed out after %g s", spec.name, timeout)
                body = {
                    "message": f"{spec.name} did not finish within {timeout:g} s",
                    "type": "TimeoutError",
                    "retryable": True,
                }
            else:
                body = _error_body(exc)
            await self._send_error(job, spec, body, streaming=_streams(self, spec))
            return
        except Exception as exc:
            if isinstance(exc, ToolError):
                logger.info("tool %r reported an error: %s", spec.name, exc.message)
            else:
                logger.warning("tool %r failed: %r", spec.name, exc, exc_info=True)
            await self._send_error(job, spec, _error_body(exc), streaming=_streams(self, spec))
            return
        await self._send(job, final, final=True)

    async def _stream(
        self, job: _Job, spec: ToolSpec, args: list[Any], kwargs: dict[str, Any]
    ) -> FunctionResponse:
        """Run a generator tool, sending partials; returns the final response."""
        partial = _streams(self, spec)
        last: Any = _NOTHING
        sent = 0
        if spec.kind == "async_gen":
            agen = spec.fn(*args, **kwargs)
            try:
                async for item in agen:
                    if partial:
                        await self._send(job, self._response(job, spec, item, more=True))
                        sent += 1
                        if job.cancelled:
                            raise asyncio.CancelledError
                    else:
                        last = item
            finally:
                await agen.aclose()
        else:
            gen = spec.fn(*args, **kwargs)
            while True:
                item = await self._in_thread(next, gen, _DONE)
                if item is _DONE:
                    break
                if partial:
                    await self._send(job, self._response(job, spec, item, more=True))
                    sent += 1
                    if job.cancelled:
                        raise asyncio.CancelledError
                else:
                    last = item
        if partial:
            scheduling = FunctionResponseScheduling.SILENT if sent else None
            return self._make(job, spec, {}, scheduling=scheduling, will_continue=False)
        if last is _NOTHING:
            return self._make(job, spec, {})
        return self._response(job, spec, last)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        executor = self._executor
        if executor is None:
            executor = self._executor = ThreadPoolExecutor(
                self._max_workers, thread_name_prefix="gemini-live-tool"
            )
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, functools.partial(ctx.run, fn, *args, **kwargs))

    # -- long-running calls ---------------------------------------------------------------

    async def _value(
        self,
        job: _Job,
        spec: ToolSpec,
        args: list[Any],
        kwargs: dict[str, Any],
        task: ToolTask,
        executor: Executor | None,
    ) -> Any:
        """Run the tool to its result (a generator's items are progress, the last one the
        result), within its own timeout (long-running tools have none by default); on an
        executor, submit it and wait for the job."""
        timeout = spec.timeout
        if timeout is not None and math.isinf(timeout):
            timeout = None
        async with asyncio.timeout(timeout):
            if executor is not None:
                link = self._link
                submitted = ExecutorCall(
                    tool=spec.name,
                    args=dict(job.ctx.args),
                    call_id=job.id,
                    task=task.id,
                    conversation=getattr(link, "id", None),
                )
                task.job = await executor.submit(submitted)
                if task.id in self._tasks:
                    self._remember(task)  # the job id is saved with the record
                return await self._collect(executor, task.job, task)
            if spec.kind == "async":
                return await spec.fn(*args, **kwargs)
            if spec.kind == "sync":
                value = await self._in_thread(spec.fn, *args, **kwargs)
                return await value if inspect.isawaitable(value) else value
            last: Any = None
            if spec.kind == "async_gen":
                agen = spec.fn(*args, **kwargs)
                try:
                    async for item in agen:
                        if last is not None:
                            job.ctx.progress(last)
                        last = item
                finally:
                    await agen.aclose()
                return last
            gen = spec.fn(*args, **kwargs)
            while True:
                item = await self._in_thread(next, gen, _DONE)
                if item is _DONE:
                    return last
                if last is not None:
                    job.ctx.progress(last)
                last = item

    def _progress_from_any_thread(
        self, loop: asyncio.AbstractEventLoop, job: _Job, value: Any
    ) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._on_progress(job, value)
            return
        try:
            loop.call_soon_threadsafe(self._on_progress, job, value)
        except RuntimeError:  # the loop is closed: nobody to tell
            pass

    def _on_progress(self, job: _Job, value: Any) -> None:
        task = job.tool_task
        if task is None:
            return  # still within the budget: the inline answer says it all
        task.progress.append(value)
        del task.progress[:-MAX_PROGRESS]
        self._task_event(task, "progress")
        spec = self.registry.get(job.name)
        pending = _pending_ids(self.session)
        if (
            spec is not None
            and self._late_route(spec) == "response"
            and task.state == "running"
            and (pending is None or job.id in pending)  # the service still has the call
        ):
            try:
                body: JSONObject = {
                    "status": "running",
                    "task": task.id,
                    "progress": msgspec.to_builtins(value, str_keys=True),
                }
            except (TypeError, ValueError):
                return
            response = self._make(
                job,
                spec,
                body,
                scheduling=FunctionResponseScheduling.SILENT,
                will_continue=True,
            )
            side = asyncio.get_running_loop().create_task(
                self._send(job, response), name=f"gemini-live-tool-progress:{task.id}"
            )
            self._side.add(side)
            side.add_done_callback(self._side.discard)

    def _late_route(self, spec: ToolSpec) -> str:
        """``"response"`` when the call may get willContinue partials and a late final
        response (NON_BLOCKING, and the family and backend take willContinue), else
        ``"context"``."""
        if not self.partial_responses or self.behavior(spec) is not Behavior.NON_BLOCKING:
            return "context"
        setup = _session_setup(self.session)
        fam = family_of(setup.model) if setup is not None else None
        if fam is None:
            return "context"
        return (
            "response" if fam.will_continue_applies(vertex=_is_vertex(self.session)) else "context"
        )

    def _task_event(self, task: ToolTask, what: str) -> None:
        hook = self.on_task
        if hook is None:
            return
        try:
            hook(task, what)
        except Exception:
            self.stats.hook_errors += 1
            logger.exception("on_task hook %r failed", hook)

    def _remember(self, task: ToolTask) -> None:
        task.updated_at = time.time()
        self._tasks[task.id] = task
        # Delivered ones go first; an undelivered one only when the list overflows anyway.
        done = [k for k, t in self._tasks.items() if t.state != "running" and t.delivered]
        done += [k for k, t in self._tasks.items() if t.state != "running" and not t.delivered]
        for k in done[: max(0, len(done) - MAX_FINISHED_TASKS)]:
            del self._tasks[k]
        link = self._link
        if link is not None:
            link.mark()

    def _task_records(self) -> list[TaskRecord]:
        """The tasks as the store keeps them: running and undelivered ones first, then
        the newest delivered ones, at most ``MAX_STORED_TASKS``."""
        open_ = [t for t in self._tasks.values() if t.delivered is None]
        done = [t for t in self._tasks.values() if t.delivered is not None]
        keep = open_[-MAX_STORED_TASKS:]
        room = MAX_STORED_TASKS - len(keep)
        keep = (done[-room:] if room > 0 else []) + keep
        return [t.to_record() for t in keep]

    def _running_tasks(self) -> int:
        return sum(1 for t in self._tasks.values() if t.state == "running")

    def _executor_for(self, spec: ToolSpec | None, name: str) -> Executor | None:
        """The executor of ``spec`` (or registered as ``name``); None for inline."""
        wanted: object = spec.executor if spec is not None else name
        if isinstance(wanted, str):
            if wanted == "inline":
                return None
            found = self.executors.get(wanted)
            if found is None:
                raise ConfigError(
                    f"no executor named {wanted!r}: pass ToolRunner(executors={{{wanted!r}: ...}})"
                )
            return found
        assert isinstance(wanted, Executor)
        self.executors.setdefault(wanted.name, wanted)
        return wanted

    async def _long(
        self, job: _Job, spec: ToolSpec, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        if self._running_tasks() >= self.max_running_tasks:
            self.stats.too_many_tasks += 1
            await self._send_error(
                job,
                spec,
                {
                    "message": f"too many running tasks ({self.max_running_tasks}); "
                    f"{spec.name} was not started",
                    "type": "TooManyTasks",
                    "retryable": True,
                    "hint": "wait for a running task to finish, or cancel one (list_tasks)",
                },
            )
            return
        task = ToolTask(f"T{next(self._task_ids)}", job.id, job.name, job.ctx.args)
        task.idempotent = spec.idempotent
        try:
            executor = self._executor_for(spec, job.name)
        except ConfigError as exc:
            logger.error("tool %r: %s", spec.name, exc)
            await self._send_error(job, spec, _error_body(exc))
            return
        if executor is not None:
            task.executor = executor.name
        inner = asyncio.get_running_loop().create_task(
            self._value(job, spec, args, kwargs, task, executor),
            name=f"gemini-live-tool-task:{job.name}",
        )
        try:
            await asyncio.wait({inner}, timeout=spec.budget)
            if inner.done():
                await self._inline(job, spec, inner)
                return
            task._inner = inner
            job.tool_task = task
            job.detached = True
            route = task.route = self._late_route(spec)
            self._remember(task)
            started: JSONObject = {
                "status": "started",
                "task": task.id,
                "note": "still running; the result will follow in a later message",
            }
            if route == "response":
                await self._send(
                    job,
                    self._make(
                        job,
                        spec,
                        started,
                        scheduling=FunctionResponseScheduling.SILENT,
                        will_continue=True,
                    ),
                )
            else:
                answer = self._make(job, spec, started)
                # A BLOCKING call: the model waits for this answer and speaks to it; a
                # NON_BLOCKING one (no willContinue here) takes it quietly.
                non_blocking = self.behavior(spec) is Behavior.NON_BLOCKING
                answer.scheduling = (
                    str(FunctionResponseScheduling.SILENT) if non_blocking else UNSET
                )
                await self._send(job, answer, final=True)
            self._task_event(task, "started")
            await self._follow(job, spec, task, inner)
        except asyncio.CancelledError:
            if task.id in self._tasks:
                self._ended_by_cancel(task)
            raise
        finally:
            if not inner.done():
                inner.cancel()

    def _ended_by_cancel(self, task: ToolTask) -> None:
        """The server cancelled the call, or the runner stops: a running task ends with
        it (with a store it stays running for the next owner, see :meth:`_handover`)."""
        if task.state == "running" and not self._handover(task):
            task.state = "cancelled"
            self.stats.cancelled += 1
            self._remember(task)
            self._task_event(task, "cancelled")

    async def _follow(
        self, job: _Job, spec: ToolSpec | None, task: ToolTask, inner: asyncio.Task[Any]
    ) -> None:
        """Wait for a detached task's end, record it, deliver it."""
        try:
            await asyncio.wait({inner})
            if inner.cancelled():
                task.state = "cancelled"
                task.result = {"status": "cancelled", "task": task.id}
                self.stats.cancelled += 1
            else:
                exc = inner.exception()
                if exc is None:
                    try:
                        response = self._late_response(job, spec, task, inner.result())
                    except TypeError as bad:
                        exc = bad
                    else:
                        task.result = response.response or {}
                        parts = response.parts
                        task.parts = list(parts) if isinstance(parts, list) and parts else None
                        sched = response.scheduling
                        task.scheduling = sched if isinstance(sched, str) else None
                        task.state = "finished"
                if exc is not None:
                    task.state = "failed"
                    task.result = {"error": _error_body(exc)}
                    self.stats.failed += 1
            self._remember(task)
            self._task_event(task, task.state)
            if job.cancelled:
                return  # the server cancelled the call: nobody to tell
            await self._deliver(job, spec, task)
        except asyncio.CancelledError:
            self._ended_by_cancel(task)
            raise
        finally:
            if not inner.done():
                inner.cancel()

    def _late_response(
        self, job: _Job, spec: ToolSpec | None, task: ToolTask, value: Any
    ) -> FunctionResponse:
        if spec is not None:
            return self._response(job, spec, value)
        # A recovered task whose tool is no longer registered (an executor's result).
        fake = ToolSpec.from_function(lambda: None, name=task.name)
        return self._response(job, fake, value)

    def _recover(self, stored: list[TaskRecord]) -> None:
        """Take over the tasks of a previous owner of the stored conversation."""
        highest = 0
        for record in stored:
            number = record.task[1:]
            if record.task.startswith("T") and number.isdigit():
                highest = max(highest, int(number))
        self._task_ids = itertools.count(highest + 1)
        loop = asyncio.get_running_loop()
        for record in stored:
            task = ToolTask.from_record(record)
            self._tasks[task.id] = task
            if task.delivered is not None:
                continue
            spec = self.registry.get(task.name)
            call = FunctionCall(
                name=task.name,
                args=dict(task.args),
                id=task.call_id if task.call_id is not None else UNSET,
            )
            job = _Job(call)
            job.detached = True
            job.tool_task = task
            inner: asyncio.Task[Any] | None = None
            if task.state == "running":
                inner = self._resume_running(job, spec, task, loop)
            key = job.id if job.id is not None else f"\x00anonymous-{next(self._anon)}"
            if key in self._jobs:
                continue
            self._jobs[key] = job
            self._idle.clear()
            if inner is not None:
                task._inner = inner
                self._task_event(task, "started")
                coro = self._follow(job, spec, task, inner)
            else:
                coro = self._deliver(job, spec, task)
            job.task = loop.create_task(coro, name=f"gemini-live-tool-recovered:{task.id}")
            job.task.add_done_callback(functools.partial(self._job_done, key, job))
        if self._link is not None:
            self._link.mark()

    def _resume_running(
        self,
        job: _Job,
        spec: ToolSpec | None,
        task: ToolTask,
        loop: asyncio.AbstractEventLoop,
    ) -> asyncio.Task[Any] | None:
        """A task that was running when its owner stopped: collect it from its executor,
        re-run it (idempotent) or mark it lost. Returns the task to follow (None: lost)."""
        if task.executor != "inline" and task.job is not None:
            executor = self.executors.get(task.executor)
            if executor is None and spec is not None and not isinstance(spec.executor, str):
                executor = spec.executor
            if executor is not None:
                self.stats.resumed += 1
                logger.info("task %s: waiting again for %s job", task.id, task.executor)
                return loop.create_task(self._collect(executor, task.job, task))
        if task.idempotent and spec is not None:
            try:
                args, kwargs = spec.bind(job.ctx.args, job.ctx)
                executor = self._executor_for(spec, task.name)
            except (ToolArgumentError, ConfigError) as exc:
                logger.warning("task %s (%s): cannot run it again: %s", task.id, task.name, exc)
            else:
                self.stats.rerun += 1
                logger.info("task %s (%s): re-running it (idempotent)", task.id, task.name)
                return loop.create_task(self._value(job, spec, args, kwargs, task, executor))
        self.stats.lost += 1
        logger.warning("task %s (%s): lost with its previous owner", task.id, task.name)
        task.state = "lost"
        task.result = {
            "status": "lost",
            "task": task.id,
            "message": f"{task.name} was interrupted by a restart before it finished; "
            "its outcome is unknown",
            "retryable": True,
        }
        self._task_event(task, "lost")
        return None

    def _handover(self, task: ToolTask) -> bool:
        """The session or runner ends with ``task`` running, nobody cancelled it, and the
        conversation is stored: it stays ``running`` in the record, and the next owner
        collects it from its executor, re-runs it (idempotent) or reports it lost."""
        return (
            self._link is not None and (self._ended or self._closed) and not task._cancel_requested
        )

    async def _collect(self, executor: Executor, job_id: str, task: ToolTask) -> Any:
        try:
            return await executor.result(job_id)
        except asyncio.CancelledError:
            if not self._handover(task):  # handed over: the job goes on for the next owner
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.cancel_grace):
                        await executor.cancel(job_id)
            raise

    async def _inline(self, job: _Job, spec: ToolSpec, inner: asyncio.Task[Any]) -> None:
        if inner.cancelled():
            await self._send_error(job, spec, _error_body(asyncio.CancelledError("cancelled")))
            return
        exc = inner.exception()
        if exc is None:
            try:
                response = self._response(job, spec, inner.result())
            except TypeError as bad:
                exc = bad
            else:
                await self._send(job, response, final=True)
                return
        await self._send_error(job, spec, _error_body(exc))

    async def _deliver(self, job: _Job, spec: ToolSpec | None, task: ToolTask) -> None:
        """Send the outcome once: the call's final response if the service still has the
        call pending, else a user turn naming the call (with the result's parts and
        scheduling, else the tool's)."""
        route = task.route
        sched = FunctionResponseScheduling.WHEN_IDLE
        chosen = task.scheduling or (spec.scheduling if spec is not None else None)
        if chosen:
            sched = FunctionResponseScheduling(chosen)
        session = self.session
        assert task.result is not None
        try:
            async with asyncio.timeout(self.delivery_timeout):
                await self._until(lambda: _ready(session))
                if route == "context" and sched is FunctionResponseScheduling.WHEN_IDLE:
                    await self._until(lambda: not _generating(session))
        except TimeoutError:
            logger.warning(
                "task %s (%s): result not delivered (session not open)", task.id, task.name
            )
            return
        except SessionClosedError:
            return  # the session ended first: the stored record keeps it undelivered
        if self._ended or session is None:
            return
        pending = _pending_ids(session)
        # The delivery is recorded before the send goes into the session (synchronously,
        # with it): a saved record never says "undelivered" for a sent result.
        if route == "response" and job.id is not None and (pending is None or job.id in pending):
            response = self._make(
                job, spec, task.result, scheduling=sched, will_continue=False, parts=task.parts
            )
            task.delivered = "response"
            if not await self._send(job, response, final=True):
                task.delivered = None
        else:
            job.answered = True
            body = msgspec.json.encode(task.result).decode()
            text = (
                f"[Result of your earlier call {task.name} (call id {task.call_id}, "
                f"task {task.id}): {body}]"
            )
            task.delivered = "context"
            try:
                await _send_turn(
                    session,
                    text,
                    silent=sched is FunctionResponseScheduling.SILENT,
                    parts=task.parts,
                )
            except Exception as exc:
                task.delivered = None
                self.stats.send_errors += 1
                logger.warning("task %s: sending the late result failed: %r", task.id, exc)
                return
        if task.delivered is not None:
            self._remember(task)
            self._task_event(task, "delivered")

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            if self._ended:
                raise SessionClosedError("the session has ended")
            self._wake.clear()
            await self._wake.wait()

    # -- responses --------------------------------------------------------------------------

    def _make(
        self,
        job: _Job,
        spec: ToolSpec | None,
        response: JSONObject,
        *,
        scheduling: SchedulingLike | None = None,
        will_continue: bool | None = None,
        parts: Sequence[JSONObject] | None = None,
    ) -> FunctionResponse:
        sched = scheduling or (self._default_scheduling(spec) if spec is not None else None)
        return FunctionResponse(
            name=job.name,
            response=response,
            id=job.id if job.id is not None else UNSET,
            scheduling=str(sched) if sched else UNSET,
            will_continue=will_continue if will_continue is not None else UNSET,
            parts=list(parts) if parts else UNSET,
        )

    def behavior(self, spec: ToolSpec) -> Behavior | None:
        """The behaviour the model was told for ``spec``: the tool's own ``behavior``, else
        what the session's setup declares for that name after the model table filled in
        the family default (``NON_BLOCKING`` on 3.8, ``BLOCKING`` on 2.5 / 3.1; a
        declaration left unset, as in a contextUpdate, also means that default); ``None``
        when nothing says (an unknown model, a session without a setup, a name it does
        not declare): the runner then acts as for ``BLOCKING`` (no partials)."""
        if spec.behavior is not None:
            return spec.behavior
        setup = _session_setup(self.session)
        declared = effective_behavior(setup, spec.name) if setup is not None else None
        try:
            return Behavior(declared) if declared is not None else None
        except ValueError:
            return None

    def _default_scheduling(self, spec: ToolSpec) -> FunctionResponseScheduling | None:
        if spec.scheduling is not None:
            return spec.scheduling
        if spec.behavior is None and self.behavior(spec) is Behavior.NON_BLOCKING:
            # NON_BLOCKING by the model's default: the same WHEN_IDLE as a declared one.
            return FunctionResponseScheduling.WHEN_IDLE
        return None

    def _response(
        self, job: _Job, spec: ToolSpec, value: Any, *, more: bool = False
    ) -> FunctionResponse:
        """The response for a result (raises TypeError if it is not JSON-able)."""
        scheduling: SchedulingLike | None = None
        parts: Sequence[JSONObject] | None = None
        if isinstance(value, ToolResult):
            scheduling, parts, value = value.scheduling, value.parts, value.value
        try:
            out = msgspec.to_builtins(value, str_keys=True)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the result of {spec.name} is not JSON-serialisable: {exc}") from exc
        body = out if isinstance(value, dict) else {"output": out}
        return self._make(
            job,
            spec,
            body,
            scheduling=scheduling,
            will_continue=True if more else None,
            parts=parts,
        )

    async def _send_error(
        self, job: _Job, spec: ToolSpec | None, body: JSONObject, *, streaming: bool = False
    ) -> None:
        self.stats.failed += 1
        response = self._make(
            job, spec, {"error": body}, will_continue=False if streaming else None
        )
        await self._send(job, response, final=True)

    async def _send(self, job: _Job, response: FunctionResponse, *, final: bool = False) -> bool:
        """Send ``response`` unless the call was cancelled or answered; returns whether
        it went out."""
        if job.cancelled or job.answered:
            return False
        if final:
            job.answered = True
        job.sending = True
        try:
            await self._send_to_session(response)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.send_errors += 1
            logger.warning("sending the response to call %r (%s) failed: %r", job.id, job.name, exc)
            return False
        finally:
            job.sending = False
        if final:
            self.stats.answered += 1
        else:
            self.stats.partials += 1
        if self.on_result is not None:
            await self._hook(self.on_result, job.call, response, time.perf_counter() - job.t0)
        return True

    async def _hook(self, hook: Callable[..., object], *args: Any) -> None:
        try:
            result = hook(*args)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.hook_errors += 1
            logger.exception("tool runner hook %r failed", hook)


def _streams(runner: ToolRunner, spec: ToolSpec) -> bool:
    """Whether this tool's responses use willContinue partials."""
    return (
        runner.partial_responses
        and spec.kind in ("async_gen", "sync_gen")
        and runner.behavior(spec) is Behavior.NON_BLOCKING
    )


def _session_setup(session: object) -> Setup | None:
    """The setup a session sends (after the model table adapted it), if it exposes one:
    :attr:`gemini_live.Session.setup`, or a session-like object's ``setup``. Else unknown.
    """
    setup = getattr(session, "setup", None)
    return setup if isinstance(setup, Setup) else None


def _is_vertex(session: object) -> bool:
    protocol = getattr(session, "protocol", None)
    return getattr(protocol, "api", "gemini") == "vertex"


def _ready(session: object) -> bool:
    """The service took the setup of the current connection: the ledger knows which calls
    it still has, and a send goes out (or is queued for the flush that follows)."""
    state = getattr(getattr(session, "protocol", None), "state", None)
    if state is not None:
        return bool(getattr(state, "value", state) == "open")
    return bool(getattr(session, "status", "open") == "open")


def _generating(session: object) -> bool:
    return getattr(getattr(session, "protocol", None), "generating", False) is True


def _pending_ids(session: object) -> dict[str, str] | None:
    """The call ids the service still has pending (the session's ledger), if known."""
    pending = getattr(getattr(session, "protocol", None), "pending_tool_calls", None)
    return pending if isinstance(pending, dict) else None


async def _send_turn(
    session: object, text: str, *, silent: bool, parts: Sequence[JSONObject] | None = None
) -> None:
    """A user-side turn: ``clientContent`` where the family takes it mid-session (no
    ``turnComplete`` when ``silent``; the result's media ``parts`` after the text), else
    typed text (which the model answers; media parts cannot go that way and are logged)."""
    setup = _session_setup(session)
    fam = family_of(setup.model) if setup is not None else None
    send_cc = getattr(session, "send_client_content", None)
    if send_cc is not None and (fam is None or fam.client_content_mid_session):
        content = Content.text(text)
        if parts:
            extra = [msgspec.convert(p, Part) for p in parts]
            content = Content(role="user", parts=[Part(text=text), *extra])
        await send_cc(content, turn_complete=not silent)
        return
    if parts:
        logger.warning(
            "this model takes no clientContent mid-session: %d media part(s) of a late "
            "result are not sent (the text is)",
            len(parts),
        )
    send_text = getattr(session, "send_text", None)
    if send_text is None:
        raise SessionClosedError("the session takes neither clientContent nor text")
    await send_text(text)


def _error_body(exc: BaseException) -> JSONObject:
    if isinstance(exc, RemoteToolError):
        return dict(exc.body)
    if isinstance(exc, ToolError):
        body: JSONObject = {
            "message": redact(exc.message),
            "type": type(exc).__name__,
            "retryable": exc.retryable,
        }
        if exc.hint:
            body["hint"] = exc.hint
        return body
    retryable = getattr(exc, "retryable", None)
    if not isinstance(retryable, bool):
        retryable = isinstance(exc, TimeoutError | ConnectionError)
    return {
        "message": redact(str(exc)) or type(exc).__name__,
        "type": type(exc).__name__,
        "retryable": retryable,
    }


def run_tools(
    session: ToolSession,
    registry: ToolRegistry,
    *,
    max_workers: int | None = None,
    default_timeout: float | None = 30.0,
    on_call: OnCall | None = None,
    on_result: OnResult | None = None,
    partial_responses: bool = True,
    on_task: OnTask | None = None,
    max_running_tasks: int = DEFAULT_MAX_RUNNING_TASKS,
    executors: Mapping[str, Executor] | None = None,
) -> ToolRunner:
    """Create a :class:`ToolRunner` and attach it to ``session`` (it answers at once).

    Use as ``async with run_tools(session, registry): ...`` or keep the runner and
    ``await runner.aclose()`` later. The options are those of :class:`ToolRunner`.
    """
    return ToolRunner(
        registry,
        max_workers=max_workers,
        default_timeout=default_timeout,
        on_call=on_call,
        on_result=on_result,
        partial_responses=partial_responses,
        on_task=on_task,
        max_running_tasks=max_running_tasks,
        executors=executors,
    ).attach(session)
