"""Declaring tools: :class:`ToolSpec`, the ``@tool`` marker, :class:`ToolRegistry`, the
built-in tools, and the values a tool raises, returns or receives (:class:`ToolError`,
:class:`ToolResult`, :class:`ToolContext`).

Inspection (signature, hints, docstring) happens once, when a function is registered;
:meth:`ToolSpec.bind` converts the model's arguments on every call.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import threading
import typing
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, TypeAlias, TypeVar, overload

import msgspec

from gemini_live.errors import ConfigError
from gemini_live.tools._executor import ExecutorLike
from gemini_live.tools._schema import ARG_SECTIONS, SchemaBuilder, jsonable, parse_doc
from gemini_live.types import (
    UNSET,
    Behavior,
    FunctionDeclaration,
    FunctionResponseScheduling,
    JSONObject,
    Tool,
)

__all__ = [
    "BehaviorLike",
    "SchedulingLike",
    "ToolArgumentError",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "code_execution",
    "google_search",
    "tool",
    "url_context",
]

#: A tool's ``behavior``: the enum or its name.
BehaviorLike: TypeAlias = Behavior | Literal["BLOCKING", "NON_BLOCKING"]
#: A response's ``scheduling``: the enum or its name.
SchedulingLike: TypeAlias = FunctionResponseScheduling | Literal["INTERRUPT", "WHEN_IDLE", "SILENT"]

_F = TypeVar("_F", bound=Callable[..., Any])
ToolKind: TypeAlias = Literal["async", "sync", "async_gen", "sync_gen"]

_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,127}$")
_OPTIONS_ATTR: Final = "__gemini_live_tool__"


# -- results, errors, context -------------------------------------------------------------


class ToolError(Exception):
    """Raise from a tool to control the error the model sees.

    Deliberately *outside* :class:`~gemini_live.errors.GeminiLiveError`: the library never
    raises it to you; your tool raises it to talk to the model, and the runner turns it
    into the ``{"error": ...}`` envelope of the function response.

    Args:
        message: What went wrong, written for the model.
        retryable: Whether calling again (unchanged) may succeed.
        hint: What the model should do next, e.g. "ask the user for the date".
    """

    def __init__(self, message: str, *, retryable: bool = False, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.hint = hint


class ToolArgumentError(ToolError):
    """The model's arguments do not match the declared parameters."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            retryable=False,
            hint="call the function again with arguments that match its declared parameters",
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ToolResult:
    """A result with per-response options (return or yield it from a tool).

    Attributes:
        value: The result (same rules as a plain return value).
        scheduling: Overrides the tool's scheduling for this response.
        parts: Media parts (``inlineData`` / ``fileData`` JSON objects) sent with it.
    """

    value: Any = None
    scheduling: SchedulingLike | None = None
    parts: Sequence[JSONObject] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ToolContext:
    """Injected into a tool parameter annotated ``ToolContext`` (hidden from the model).

    ``cancelled`` is set when the call is cancelled or timed out; long-running sync tools
    (which cannot be interrupted in their thread) should poll it.
    """

    id: str | None
    name: str
    args: JSONObject
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    #: Where :meth:`progress` reports go (set by the runner; thread-safe).
    progress_sink: Callable[[Any], None] | None = dataclasses.field(default=None, repr=False)

    def progress(self, value: Any) -> None:
        """Report progress (any JSON-able value); safe from a sync tool's thread.

        For a long-running tool the runner sends it to the model as a ``willContinue``
        partial where the family takes them, else keeps it on the task (``task.progress``)
        and tells the app (``on_task``). Without a runner it is ignored.
        """
        sink = self.progress_sink
        if sink is not None:
            sink(value)


def _is_context(hint: Any) -> bool:
    """``ToolContext`` or ``ToolContext | None``."""
    if hint is ToolContext:
        return True
    args = typing.get_args(hint)
    return ToolContext in args and all(a is ToolContext or a is type(None) for a in args)


# -- tool specs -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Param:
    name: str
    kind: inspect._ParameterKind
    #: Type for msgspec.convert, or None to pass the raw JSON value.
    hint: Any
    required: bool
    default: Any
    context: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _ToolOptions:
    name: str | None = None
    description: str | None = None
    behavior: BehaviorLike | None = None
    scheduling: SchedulingLike | None = None
    timeout: float | None = None
    parameters_json_schema: JSONObject | None = None
    long_running: bool = False
    budget: float | None = None
    idempotent: bool = False
    executor: ExecutorLike | None = None


#: Seconds a long-running tool may take and still answer inline.
DEFAULT_BUDGET: Final = 0.3


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ToolSpec:
    """A registered tool: the function, its declaration and how responses are sent.

    Build with :meth:`from_function` (or :meth:`ToolRegistry.add`).
    """

    name: str
    fn: Callable[..., Any]
    description: str | None
    #: JSON Schema of the arguments; None for a function without parameters.
    parameters_json_schema: JSONObject | None
    #: Declared behaviour; None leaves it unset, so the model family's default applies
    #: (:func:`gemini_live.models.adapt_setup` fills it in when the session is built).
    behavior: Behavior | None
    #: Scheduling put on every response (always set for declared NON_BLOCKING tools; the
    #: runner uses WHEN_IDLE for a tool whose NON_BLOCKING behaviour came from the model).
    scheduling: FunctionResponseScheduling | None
    #: Seconds; None uses the runner's default, ``math.inf`` disables the limit.
    timeout: float | None
    kind: ToolKind
    params: tuple[_Param, ...] = dataclasses.field(repr=False)
    var_keyword: bool = dataclasses.field(repr=False, default=False)
    #: Long-running: answers inline within ``budget`` seconds, else "started" at once and
    #: the result later (see :class:`~gemini_live.tools.ToolRunner`).
    long_running: bool = False
    #: Seconds to answer inline (long-running tools; None when not long-running).
    budget: float | None = None
    #: Safe to run again with the same arguments: a task its worker lost is re-run after
    #: a restart instead of being reported lost.
    idempotent: bool = False
    #: Where the tool runs: ``"inline"`` (this process, the default), an executor's name
    #: (resolved by the runner's ``executors=``) or an object implementing
    #: :class:`~gemini_live.tools.Executor`. Not inline implies ``long_running``.
    executor: ExecutorLike = "inline"

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        behavior: BehaviorLike | None = None,
        scheduling: SchedulingLike | None = None,
        timeout: float | None = None,
        parameters_json_schema: JSONObject | None = None,
        long_running: bool = False,
        budget: float | None = None,
        idempotent: bool = False,
        executor: ExecutorLike | None = None,
    ) -> ToolSpec:
        """Inspect ``fn`` (signature, type hints, docstring) and build its spec.

        Raises:
            ConfigError: bad name, behavior, scheduling or timeout, or a parameter type
                that has no JSON Schema (pass ``parameters_json_schema`` to override).
        """
        if not callable(fn):
            raise ConfigError(f"a tool must be callable, got {fn!r}")
        tool_name = name or getattr(fn, "__name__", None)
        if not isinstance(tool_name, str) or not _NAME_RE.match(tool_name):
            raise ConfigError(
                f"invalid tool name {tool_name!r}: start with a letter or '_', then letters, "
                "digits, '_', '.', ':' or '-' (at most 128 characters)"
            )
        try:
            beh = None if behavior is None else Behavior(behavior)
        except ValueError:
            raise ConfigError(
                f"behavior must be BLOCKING or NON_BLOCKING, got {behavior!r}"
            ) from None
        sched: FunctionResponseScheduling | None = None
        if scheduling is not None:
            try:
                sched = FunctionResponseScheduling(scheduling)
            except ValueError:
                raise ConfigError(
                    f"scheduling must be INTERRUPT, WHEN_IDLE or SILENT, got {scheduling!r}"
                ) from None
        elif beh is Behavior.NON_BLOCKING:
            sched = FunctionResponseScheduling.WHEN_IDLE
        if timeout is not None and not timeout > 0:
            raise ConfigError(f"timeout must be positive, got {timeout!r}")
        if budget is not None:
            if not isinstance(budget, int | float) or not budget >= 0 or budget != budget:
                raise ConfigError(f"budget must be a number of seconds >= 0, got {budget!r}")
            long_running = True
        if executor is None:
            executor = "inline"
        if isinstance(executor, str):
            if not executor:
                raise ConfigError("executor must be a non-empty name or an Executor")
        elif not all(
            callable(getattr(executor, m, None)) for m in ("submit", "result", "cancel")
        ) or not isinstance(getattr(executor, "name", None), str):
            raise ConfigError(
                f"executor must be a name or an object with name, submit(), result() and "
                f"cancel(), got {type(executor).__name__}"
            )
        if executor != "inline":
            long_running = True
        if long_running and budget is None:
            budget = DEFAULT_BUDGET
        if parameters_json_schema is not None and not isinstance(parameters_json_schema, dict):
            raise ConfigError("parameters_json_schema must be a JSON object (dict)")

        if isinstance(fn, type):
            raise ConfigError(f"a tool must be a function, not the class {fn.__name__}")
        # The function whose code, hints and docstring describe the tool.
        target: Any = fn
        while isinstance(target, functools.partial):
            target = target.func
        if not inspect.isfunction(target) and not inspect.ismethod(target):
            target = target.__call__
        kind: ToolKind
        if inspect.isasyncgenfunction(target):
            kind = "async_gen"
        elif inspect.iscoroutinefunction(target):
            kind = "async"
        elif inspect.isgeneratorfunction(target):
            kind = "sync_gen"
        else:
            kind = "sync"

        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"cannot read the signature of {tool_name!r}: {exc}") from exc
        try:
            hints = typing.get_type_hints(target, include_extras=True)
        except Exception as exc:
            raise ConfigError(
                f"cannot resolve the type hints of {tool_name!r}: {exc} "
                "(types used in annotations must be importable at module level)"
            ) from exc
        doc_desc, arg_docs = parse_doc(inspect.getdoc(target), ARG_SECTIONS)

        builder = SchemaBuilder()
        props: dict[str, JSONObject] = {}
        required: list[str] = []
        params: list[_Param] = []
        var_keyword = False
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                var_keyword = True
                continue
            if p.kind is p.VAR_POSITIONAL:
                continue
            hint = hints.get(p.name, Any)
            if _is_context(hint):
                params.append(_Param(p.name, p.kind, None, False, p.default, True))
                continue
            has_default = p.default is not p.empty
            conv: Any = None if hint is Any else hint
            try:
                schema = builder.hint(hint)
            except (TypeError, ValueError) as exc:
                if parameters_json_schema is None:
                    raise ConfigError(
                        f"tool {tool_name!r}: parameter {p.name!r} has an unsupported type "
                        f"{hint!r} ({exc}); pass parameters_json_schema to declare it yourself"
                    ) from exc
                schema, conv = {}, None
            if "description" not in schema and p.name in arg_docs and arg_docs[p.name]:
                schema["description"] = arg_docs[p.name]
            if has_default:
                ok, default = jsonable(p.default)
                if ok:
                    schema["default"] = default
            else:
                required.append(p.name)
            props[p.name] = schema
            params.append(_Param(p.name, p.kind, conv, not has_default, p.default, False))

        schema_out: JSONObject | None
        if parameters_json_schema is not None:
            schema_out = parameters_json_schema
        elif props:
            schema_out = {"type": "object", "properties": props}
            if required:
                schema_out["required"] = required
            if builder.defs:
                schema_out["$defs"] = builder.defs
        else:
            schema_out = None
        return cls(
            name=tool_name,
            fn=fn,
            description=description if description is not None else doc_desc,
            parameters_json_schema=schema_out,
            behavior=beh,
            scheduling=sched,
            timeout=timeout,
            kind=kind,
            params=tuple(params),
            var_keyword=var_keyword,
            long_running=bool(long_running),
            budget=float(budget) if long_running and budget is not None else None,
            idempotent=bool(idempotent),
            executor=executor,
        )

    def declaration(self) -> FunctionDeclaration:
        """The wire declaration (``behavior`` only when the tool declares one)."""
        return FunctionDeclaration(
            name=self.name,
            description=self.description if self.description else UNSET,
            parameters_json_schema=(
                self.parameters_json_schema if self.parameters_json_schema is not None else UNSET
            ),
            behavior=self.behavior.value if self.behavior is not None else UNSET,
        )

    def bind(
        self, args: JSONObject, context: ToolContext | None = None
    ) -> tuple[list[Any], dict[str, Any]]:
        """Convert the model's ``args`` into ``(positional, keyword)`` call arguments.

        Raises:
            ToolArgumentError: a missing, unexpected or ill-typed argument.
        """
        pos: list[Any] = []
        kw: dict[str, Any] = {}
        extra = dict(args)
        problems: list[str] = []
        missing: list[str] = []
        for p in self.params:
            if p.context:
                value: Any = context
            elif p.name in extra:
                raw = extra.pop(p.name)
                if p.hint is None:
                    value = raw
                else:
                    try:
                        value = msgspec.convert(raw, p.hint, strict=False)
                    except msgspec.ValidationError as exc:
                        problems.append(f"argument {p.name!r}: {exc}")
                        continue
            elif p.required:
                missing.append(p.name)
                continue
            elif p.kind is inspect.Parameter.POSITIONAL_ONLY:
                value = p.default
            else:
                continue
            if p.kind is inspect.Parameter.POSITIONAL_ONLY:
                pos.append(value)
            else:
                kw[p.name] = value
        if missing:
            problems.insert(0, f"missing required argument(s): {', '.join(missing)}")
        if extra:
            if self.var_keyword:
                kw.update(extra)
            else:
                accepted = [p.name for p in self.params if not p.context]
                problems.append(
                    f"unexpected argument(s): {', '.join(sorted(extra))}"
                    f" (accepted: {', '.join(accepted) or 'none'})"
                )
        if problems:
            raise ToolArgumentError(f"invalid arguments for {self.name!r}: " + "; ".join(problems))
        return pos, kw


@overload
def tool(fn: _F, /) -> _F: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    behavior: BehaviorLike | None = None,
    scheduling: SchedulingLike | None = None,
    timeout: float | None = None,
    parameters_json_schema: JSONObject | None = None,
    long_running: bool = False,
    budget: float | None = None,
    idempotent: bool = False,
    executor: ExecutorLike | None = None,
) -> Callable[[_F], _F]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    behavior: BehaviorLike | None = None,
    scheduling: SchedulingLike | None = None,
    timeout: float | None = None,
    parameters_json_schema: JSONObject | None = None,
    long_running: bool = False,
    budget: float | None = None,
    idempotent: bool = False,
    executor: ExecutorLike | None = None,
) -> Any:
    """Mark a function as a tool and set its options (``@tool`` or ``@tool(...)``).

    The function is returned unchanged; :meth:`ToolRegistry.add` reads the options
    (explicit arguments to ``add`` win). Inspection happens at ``add`` time, so forward
    references in annotations are fine.
    """
    options = _ToolOptions(
        name,
        description,
        behavior,
        scheduling,
        timeout,
        parameters_json_schema,
        long_running,
        budget,
        idempotent,
        executor,
    )

    def mark(f: _F) -> _F:
        setattr(f, _OPTIONS_ATTR, options)
        return f

    return mark if fn is None else mark(fn)


class ToolRegistry:
    """The functions a session offers, by name.

    Mutating it while a :class:`~gemini_live.tools.ToolRunner` runs is fine (lookups happen
    per call); tell the model with
    ``await session.send_context_update(tools=registry.tools())``.
    """

    def __init__(self, *fns: Callable[..., Any]) -> None:
        self._specs: dict[str, ToolSpec] = {}
        for fn in fns:
            self.add(fn)

    def add(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        behavior: BehaviorLike | None = None,
        scheduling: SchedulingLike | None = None,
        timeout: float | None = None,
        parameters_json_schema: JSONObject | None = None,
        long_running: bool = False,
        budget: float | None = None,
        idempotent: bool = False,
        executor: ExecutorLike | None = None,
    ) -> ToolSpec:
        """Register ``fn`` and return its spec.

        Args:
            fn: A sync or async function, or a sync or async generator function.
            name: Declared name (default: the function's name).
            description: Declared description (default: the docstring's first paragraph).
            behavior: ``"BLOCKING"`` or ``"NON_BLOCKING"``; default: not declared, so the
                model family's default applies (``NON_BLOCKING`` on 3.8, ``BLOCKING`` on
                2.5 and 3.1; see :mod:`gemini_live.models`).
            scheduling: Default scheduling of responses (NON_BLOCKING default: WHEN_IDLE).
            timeout: Seconds per call (None: the runner's default; ``math.inf``: none).
            parameters_json_schema: Use this schema instead of generating one.
            long_running: Answer inline within ``budget``, else "started" at once and the
                result later (:class:`~gemini_live.tools.ToolRunner`).
            budget: Seconds to answer inline (implies ``long_running``; default 0.3).
            idempotent: A task lost with its worker is re-run after a restart (else the
                model is told it was lost).
            executor: ``"inline"`` (default), an executor name the runner resolves
                (``executors=``), or an :class:`~gemini_live.tools.Executor` such as
                :class:`~gemini_live.tools.ArqExecutor` (implies ``long_running``).

        Raises:
            ConfigError: invalid options, unsupported parameter types, duplicate name.
        """
        base: _ToolOptions = getattr(fn, _OPTIONS_ATTR, None) or _ToolOptions()
        spec = ToolSpec.from_function(
            fn,
            name=name or base.name,
            description=description if description is not None else base.description,
            behavior=behavior or base.behavior,
            scheduling=scheduling or base.scheduling,
            timeout=timeout if timeout is not None else base.timeout,
            parameters_json_schema=(
                parameters_json_schema
                if parameters_json_schema is not None
                else base.parameters_json_schema
            ),
            long_running=long_running or base.long_running,
            budget=budget if budget is not None else base.budget,
            idempotent=idempotent or base.idempotent,
            executor=executor if executor is not None else base.executor,
        )
        if spec.name in self._specs:
            raise ConfigError(f"a tool named {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    @overload
    def tool(self, fn: _F, /) -> _F: ...

    @overload
    def tool(
        self,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        behavior: BehaviorLike | None = None,
        scheduling: SchedulingLike | None = None,
        timeout: float | None = None,
        parameters_json_schema: JSONObject | None = None,
        long_running: bool = False,
        budget: float | None = None,
        idempotent: bool = False,
        executor: ExecutorLike | None = None,
    ) -> Callable[[_F], _F]: ...

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        behavior: BehaviorLike | None = None,
        scheduling: SchedulingLike | None = None,
        timeout: float | None = None,
        parameters_json_schema: JSONObject | None = None,
        long_running: bool = False,
        budget: float | None = None,
        idempotent: bool = False,
        executor: ExecutorLike | None = None,
    ) -> Any:
        """Decorator form of :meth:`add`; returns the function unchanged."""

        def register(f: _F) -> _F:
            self.add(
                f,
                name=name,
                description=description,
                behavior=behavior,
                scheduling=scheduling,
                timeout=timeout,
                parameters_json_schema=parameters_json_schema,
                long_running=long_running,
                budget=budget,
                idempotent=idempotent,
                executor=executor,
            )
            return f

        return register if fn is None else register(fn)

    def remove(self, name: str) -> ToolSpec:
        """Unregister a tool; raises KeyError if unknown."""
        return self._specs.pop(name)

    def get(self, name: str) -> ToolSpec | None:
        return self._specs.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> typing.Iterator[ToolSpec]:
        return iter(list(self._specs.values()))

    def declarations(self) -> list[FunctionDeclaration]:
        return [s.declaration() for s in self._specs.values()]

    def as_tool(self) -> Tool:
        """All functions as one ``Tool`` (``functionDeclarations``)."""
        return Tool(function_declarations=self.declarations())

    def tools(self, *builtins: Tool) -> list[Tool]:
        """The ``tools`` list for a setup: the functions (if any) plus built-in tools."""
        out = [self.as_tool()] if self._specs else []
        out.extend(builtins)
        return out

    def __repr__(self) -> str:
        return f"<ToolRegistry {', '.join(self._specs) or '(empty)'}>"


def google_search() -> Tool:
    """The Google Search built-in tool (``googleSearch: {}``)."""
    return Tool.google_search_tool()


def code_execution() -> Tool:
    """The code execution built-in tool (not supported by Live models as of 2026)."""
    return Tool.code_execution_tool()


def url_context() -> Tool:
    """The URL context built-in tool (not supported by Live models as of 2026)."""
    return Tool.url_context_tool()
