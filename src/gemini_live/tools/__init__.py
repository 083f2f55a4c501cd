"""Function calling: declare Python functions as tools and answer the model's calls.

Declare::

    registry = ToolRegistry()

    @registry.tool
    async def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, float]:
        '''Current weather for a city.

        Args:
            city: City name, e.g. "Paris".
        '''
        ...

    setup = Setup(model=..., tools=registry.tools(google_search()))

Answer::

    async with session.run_tools(registry):
        ...  # every ToolCall is answered (exactly once per id) while this block runs

or let ``gl.connect(..., tools=registry)`` declare the tools and answer every call from
the first frame on (it attaches ``ToolRunner(registry)`` before connecting).
Change the declared tools mid-session with
``await session.send_context_update(tools=registry.tools())``.

Type hints become JSON Schema (``parametersJsonSchema``); call arguments are validated
and converted back to the annotated types with ``msgspec.convert`` before the function
runs. ``behavior`` is left unset unless a tool passes ``behavior=``: when the session is
built, the model capability table (:func:`gemini_live.models.adapt_setup`) declares each
family's default (``NON_BLOCKING`` on 3.8, ``BLOCKING`` on 2.5 and 3.1), and an explicit
choice the family does not accept is replaced with a warning. The runner reads the
behaviour back from the session's adapted setup (:meth:`ToolRunner.behavior`).

Result envelope (``FunctionResponse.response``):

* a ``dict`` result is sent as the response object itself; any other result is sent as
  ``{"output": value}`` (dataclasses, Structs, enums, sets and tuples are converted with
  ``msgspec.to_builtins``);
* a failure is sent as ``{"error": {"message", "type", "retryable"[, "hint"]}}``;
* a call cancelled by the server (``toolCallCancellation``) gets no response at all.

Generator tools (sync or async) stream: for a ``NON_BLOCKING`` tool each yielded item is
sent at once with ``willContinue: true``, and the stream ends with an empty response
``{}`` with ``willContinue: false`` and ``scheduling: SILENT`` (so the end marker does
not make the model speak again; without any partials it keeps the tool's scheduling).
``willContinue`` only works for ``NON_BLOCKING`` calls on the Gemini API, so for a
``BLOCKING`` tool (or with ``partial_responses=False``, for Vertex AI) only the last
yielded item is sent, as the single final answer.

Long-running tools (``@tool(long_running=True)`` or ``budget=seconds``) answer inline
when they finish within their budget (0.3 s by default); otherwise the model at once gets
``{"status": "started", "task": "T1", ...}`` and the result follows later: as the call's
final response (``willContinue`` partials before it) where the family takes
``willContinue`` on a ``NON_BLOCKING`` call, else as a user turn naming the call, also
when the service forgot the call after a reconnect. ``ctx.progress(...)``,
:attr:`ToolRunner.tasks`, :meth:`ToolTask.cancel`, :meth:`ToolRunner.add_task_tools` and
the ``on_task`` callback follow and steer them (see :class:`ToolRunner`). With a stored
conversation their records are saved with it, so a restarted process takes them over
(lost, re-run when ``idempotent=True``, or delivered). ``executor=`` runs a tool
elsewhere: an :class:`Executor` (submit, result, cancel), e.g. :class:`ArqExecutor`.

The package has three parts: ``_schema`` (type hints and docstrings to JSON Schema),
``_registry`` (declaring tools) and ``_runner`` (answering calls).
"""

from __future__ import annotations

from gemini_live.tools._arq import ArqExecutor, arq_function_name, arq_worker_settings
from gemini_live.tools._executor import Executor, ExecutorCall, ExecutorLike, RemoteToolError
from gemini_live.tools._registry import (
    BehaviorLike,
    SchedulingLike,
    ToolArgumentError,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    ToolSpec,
    code_execution,
    google_search,
    tool,
    url_context,
)
from gemini_live.tools._runner import (
    OnCall,
    OnResult,
    OnTask,
    ToolRunner,
    ToolRunnerStats,
    ToolSession,
    ToolTask,
    run_tools,
)

__all__ = [
    "ArqExecutor",
    "BehaviorLike",
    "Executor",
    "ExecutorCall",
    "ExecutorLike",
    "OnCall",
    "OnResult",
    "OnTask",
    "RemoteToolError",
    "SchedulingLike",
    "ToolArgumentError",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "ToolRunner",
    "ToolRunnerStats",
    "ToolSession",
    "ToolSpec",
    "ToolTask",
    "arq_function_name",
    "arq_worker_settings",
    "code_execution",
    "google_search",
    "run_tools",
    "tool",
    "url_context",
]
