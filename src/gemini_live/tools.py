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

    async with run_tools(session, registry):
        ...  # every ToolCall is answered (exactly once per id) while this block runs

Type hints become JSON Schema (``parametersJsonSchema``); call arguments are validated
and converted back to the annotated types with ``msgspec.convert`` before the function
runs. ``behavior`` is always declared explicitly (default ``BLOCKING``) because the
server default differs between model families.

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
``BLOCKING`` tool (or on Vertex AI) only the last yielded item is sent, as the single
final answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
import itertools
import logging
import math
import os
import re
import threading
import time
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final, Literal, Protocol, TypeAlias, TypeVar, overload

import msgspec
import msgspec.inspect as mi

from gemini_live import events as ev
from gemini_live.errors import ConfigError, redact
from gemini_live.types import (
    UNSET,
    Behavior,
    Content,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    FunctionResponseScheduling,
    JSONObject,
    Tool,
)

__all__ = [
    "BehaviorLike",
    "OnCall",
    "OnResult",
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
    "clear_tools",
    "code_execution",
    "google_search",
    "run_tools",
    "set_system_instruction",
    "tool",
    "update_tools",
    "url_context",
]

logger = logging.getLogger("gemini_live.tools")

BehaviorLike: TypeAlias = Behavior | Literal["BLOCKING", "NON_BLOCKING"]
SchedulingLike: TypeAlias = FunctionResponseScheduling | Literal["INTERRUPT", "WHEN_IDLE", "SILENT"]

_F = TypeVar("_F", bound=Callable[..., Any])
_ToolKind: TypeAlias = Literal["async", "sync", "async_gen", "sync_gen"]

_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,127}$")
_OPTIONS_ATTR: Final = "__gemini_live_tool__"


# -- results, errors, context -------------------------------------------------------------


class ToolError(Exception):
    """Raise from a tool to control the error the model sees.

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


# -- docstrings ---------------------------------------------------------------------------

_SECTION_RE: Final = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_ARG_SECTIONS: Final = frozenset({"Args", "Arguments", "Parameters", "Params"})
_ATTR_SECTIONS: Final = frozenset({"Attributes", *_ARG_SECTIONS})
_ARG_LINE_RE: Final = re.compile(r"^\*{0,2}([A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_doc(doc: str | None, sections: frozenset[str]) -> tuple[str | None, dict[str, str]]:
    """Google-style docstring -> (first paragraph, {arg name: description})."""
    if not doc:
        return None, {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        text = line.strip()
        if not text or _SECTION_RE.match(line):
            break
        summary.append(text)
    args: dict[str, str] = {}
    in_args = False
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        text = line.strip()
        if not text:
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            m = _SECTION_RE.match(line)
            in_args = bool(m) and m is not None and m.group(1) in sections
            entry_indent = current = None
            continue
        if not in_args:
            continue
        if entry_indent is None:
            entry_indent = indent
        if indent <= entry_indent:
            m = _ARG_LINE_RE.match(text)
            current = None
            if m:
                current = m.group(1)
                args[current] = m.group(2).strip()
        elif current is not None:
            args[current] = f"{args[current]} {text}".strip()
    return (" ".join(summary) or None), args


def _class_doc(cls: type) -> tuple[str | None, dict[str, str]]:
    doc = cls.__doc__
    if doc and dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        doc = None  # the signature dataclasses put there
    return _parse_doc(doc, _ATTR_SECTIONS)


# -- JSON Schema from type hints ----------------------------------------------------------


def _annotated_description(hint: Any) -> str | None:
    """Strings in ``Annotated[X, "..."]`` (through Required/NotRequired) as a description."""
    texts: list[str] = []
    while True:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            texts.extend(m for m in hint.__metadata__ if isinstance(m, str))
            hint = typing.get_args(hint)[0]
        elif origin in (typing.Required, typing.NotRequired):
            hint = typing.get_args(hint)[0]
        else:
            break
    return " ".join(texts) or None


def _jsonable(value: Any) -> tuple[bool, Any]:
    try:
        return True, msgspec.to_builtins(value, str_keys=True)
    except (TypeError, ValueError):
        return False, None


_FORMATS: Final[dict[type[mi.Type], JSONObject]] = {
    mi.DateTimeType: {"type": "string", "format": "date-time"},
    mi.DateType: {"type": "string", "format": "date"},
    mi.TimeType: {"type": "string", "format": "time"},
    mi.TimeDeltaType: {"type": "string", "format": "duration"},
    mi.UUIDType: {"type": "string", "format": "uuid"},
    mi.DecimalType: {"type": "number"},
    mi.BytesType: {"type": "string"},
    mi.ByteArrayType: {"type": "string"},
    mi.MemoryViewType: {"type": "string"},
}


class _SchemaBuilder:
    """Turns ``msgspec.inspect`` type info into the JSON Schema subset Gemini accepts.

    Named types are inlined; only recursive ones go to ``$defs`` (referenced by ``$ref``).
    """

    def __init__(self) -> None:
        self.defs: dict[str, JSONObject] = {}
        self._names: dict[type, str] = {}
        self._stack: list[type] = []
        self._recursive: set[type] = set()

    def hint(self, hint: Any) -> JSONObject:
        schema = self.info(mi.type_info(hint))
        desc = _annotated_description(hint)
        if desc:
            schema = {**schema, "description": desc}
        return schema

    def info(self, t: mi.Type) -> JSONObject:
        if isinstance(t, mi.Metadata):
            schema = dict(self.info(t.type))
            if t.extra_json_schema:
                schema.update(t.extra_json_schema)
            return schema
        if isinstance(t, mi.AnyType):
            return {}
        if isinstance(t, mi.NoneType):
            return {"type": "null"}
        if isinstance(t, mi.BoolType):
            return {"type": "boolean"}
        if isinstance(t, mi.IntType):
            schema = {"type": "integer"}
            lo = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else None)
            hi = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else None)
            return _with(schema, minimum=lo, maximum=hi)
        if isinstance(t, mi.FloatType):
            # exclusive bounds (gt / lt) are not in Gemini's schema subset; msgspec still
            # enforces them when the arguments are converted.
            return _with({"type": "number"}, minimum=t.ge, maximum=t.le)
        if isinstance(t, mi.StrType):
            return _with(
                {"type": "string"},
                minLength=t.min_length,
                maxLength=t.max_length,
                pattern=t.pattern,
            )
        fmt = _FORMATS.get(type(t))
        if fmt is not None:
            return dict(fmt)
        if isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            return _with(
                {"type": "array", "items": self.info(t.item_type)},
                minItems=t.min_length,
                maxItems=t.max_length,
            )
        if isinstance(t, mi.TupleType | mi.NamedTupleType):
            types = (
                list(t.item_types) if isinstance(t, mi.TupleType) else [f.type for f in t.fields]
            )
            item_schemas: list[JSONObject] = []
            for it in types:
                s = self.info(it)
                if s not in item_schemas:
                    item_schemas.append(s)
            schema = {"type": "array"}
            if len(item_schemas) == 1:
                schema["items"] = item_schemas[0]
            elif item_schemas:
                schema["items"] = {"anyOf": item_schemas}
            schema["minItems"] = schema["maxItems"] = len(types)
            return schema
        if isinstance(t, mi.DictType):
            key = t.key_type
            if isinstance(key, mi.Metadata):
                key = key.type
            if not isinstance(
                key, mi.StrType | mi.AnyType | mi.IntType | mi.EnumType | mi.LiteralType
            ):
                raise TypeError(f"dict keys must be str, got {key}")
            schema = {"type": "object"}
            if not isinstance(t.value_type, mi.AnyType):
                schema["additionalProperties"] = self.info(t.value_type)
            return _with(schema, minProperties=t.min_length, maxProperties=t.max_length)
        if isinstance(t, mi.LiteralType):
            return _enum(list(t.values))
        if isinstance(t, mi.EnumType):
            schema = _enum([m.value for m in t.cls])
            desc, _ = _class_doc(t.cls)
            if desc:
                schema["description"] = desc
            return schema
        if isinstance(t, mi.UnionType):
            return {"anyOf": [self.info(m) for m in t.types]}
        if isinstance(t, mi.StructType | mi.DataclassType | mi.TypedDictType):
            return self._object(t)
        raise TypeError(f"no JSON Schema for {t}")

    def _object(self, t: mi.StructType | mi.DataclassType | mi.TypedDictType) -> JSONObject:
        cls = t.cls
        name = self._names.get(cls)
        if name is None:
            name = cls.__name__
            used = set(self._names.values())
            n = 2
            while name in used:
                name = f"{cls.__name__}{n}"
                n += 1
            self._names[cls] = name
        if cls in self._stack:
            self._recursive.add(cls)
            return {"$ref": f"#/$defs/{name}"}
        self._stack.append(cls)
        try:
            try:
                hints = typing.get_type_hints(cls, include_extras=True)
            except Exception:  # unresolvable forward references: no descriptions then
                hints = {}
            desc, field_docs = _class_doc(cls)
            props: dict[str, JSONObject] = {}
            required: list[str] = []
            if isinstance(t, mi.StructType):
                if t.array_like:
                    raise TypeError(f"array_like Struct {cls.__name__} is not supported")
                if t.tag_field is not None and t.tag is not None:
                    props[t.tag_field] = _enum([t.tag])
                    required.append(t.tag_field)
            for f in t.fields:
                fs = self.info(f.type)
                fdesc = _annotated_description(hints.get(f.name)) or field_docs.get(f.name)
                if fdesc:
                    fs = {**fs, "description": fdesc}
                if f.default is not msgspec.NODEFAULT:
                    ok, default = _jsonable(f.default)
                    if ok:
                        fs = {**fs, "default": default}
                props[f.encode_name] = fs
                if f.required:
                    required.append(f.encode_name)
        finally:
            self._stack.pop()
        schema: JSONObject = {"type": "object"}
        if desc:
            schema["description"] = desc
        schema["properties"] = props
        if required:
            schema["required"] = required
        if cls in self._recursive:
            self.defs[name] = schema
            return {"$ref": f"#/$defs/{name}"}
        return schema


def _is_context(hint: Any) -> bool:
    """``ToolContext`` or ``ToolContext | None``."""
    if hint is ToolContext:
        return True
    args = typing.get_args(hint)
    return ToolContext in args and all(a is ToolContext or a is type(None) for a in args)


def _with(schema: JSONObject, **extra: Any) -> JSONObject:
    for k, v in extra.items():
        if v is not None:
            schema[k] = v
    return schema


_ENUM_TYPES: Final = {str: "string", int: "integer", bool: "boolean"}


def _enum(values: list[Any]) -> JSONObject:
    """``enum`` with a ``type`` when every value has the same JSON type."""
    kinds = {type(v) for v in values}
    kind = _ENUM_TYPES.get(kinds.pop()) if len(kinds) == 1 else None
    return {"type": kind, "enum": values} if kind else {"enum": values}


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
    behavior: Behavior
    #: Scheduling put on every response (always set for NON_BLOCKING tools).
    scheduling: FunctionResponseScheduling | None
    #: Seconds; None uses the runner's default, ``math.inf`` disables the limit.
    timeout: float | None
    kind: _ToolKind
    params: tuple[_Param, ...] = dataclasses.field(repr=False)
    var_keyword: bool = dataclasses.field(repr=False, default=False)

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        behavior: BehaviorLike = Behavior.BLOCKING,
        scheduling: SchedulingLike | None = None,
        timeout: float | None = None,
        parameters_json_schema: JSONObject | None = None,
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
            beh = Behavior(behavior)
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
        kind: _ToolKind
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
        doc_desc, arg_docs = _parse_doc(inspect.getdoc(target), _ARG_SECTIONS)

        builder = _SchemaBuilder()
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
                ok, default = _jsonable(p.default)
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
        )

    def declaration(self) -> FunctionDeclaration:
        """The wire declaration (``behavior`` always set)."""
        return FunctionDeclaration(
            name=self.name,
            description=self.description if self.description else UNSET,
            parameters_json_schema=(
                self.parameters_json_schema if self.parameters_json_schema is not None else UNSET
            ),
            behavior=self.behavior.value,
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
    behavior: BehaviorLike = "BLOCKING",
    scheduling: SchedulingLike | None = None,
    timeout: float | None = None,
    parameters_json_schema: JSONObject | None = None,
) -> Callable[[_F], _F]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    behavior: BehaviorLike = "BLOCKING",
    scheduling: SchedulingLike | None = None,
    timeout: float | None = None,
    parameters_json_schema: JSONObject | None = None,
) -> Any:
    """Mark a function as a tool and set its options (``@tool`` or ``@tool(...)``).

    The function is returned unchanged; :meth:`ToolRegistry.add` reads the options
    (explicit arguments to ``add`` win). Inspection happens at ``add`` time, so forward
    references in annotations are fine.
    """
    options = _ToolOptions(name, description, behavior, scheduling, timeout, parameters_json_schema)

    def mark(f: _F) -> _F:
        setattr(f, _OPTIONS_ATTR, options)
        return f

    return mark if fn is None else mark(fn)


class ToolRegistry:
    """The functions a session offers, by name.

    Mutating it while a :class:`ToolRunner` runs is fine (lookups happen per call); tell
    the model with :func:`update_tools`.
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
    ) -> ToolSpec:
        """Register ``fn`` and return its spec.

        Args:
            fn: A sync or async function, or a sync or async generator function.
            name: Declared name (default: the function's name).
            description: Declared description (default: the docstring's first paragraph).
            behavior: ``"BLOCKING"`` (default) or ``"NON_BLOCKING"``; always sent.
            scheduling: Default scheduling of responses (NON_BLOCKING default: WHEN_IDLE).
            timeout: Seconds per call (None: the runner's default; ``math.inf``: none).
            parameters_json_schema: Use this schema instead of generating one.

        Raises:
            ConfigError: invalid options, unsupported parameter types, duplicate name.
        """
        base: _ToolOptions = getattr(fn, _OPTIONS_ATTR, None) or _ToolOptions()
        spec = ToolSpec.from_function(
            fn,
            name=name or base.name,
            description=description if description is not None else base.description,
            behavior=behavior or base.behavior or Behavior.BLOCKING,
            scheduling=scheduling or base.scheduling,
            timeout=timeout if timeout is not None else base.timeout,
            parameters_json_schema=(
                parameters_json_schema
                if parameters_json_schema is not None
                else base.parameters_json_schema
            ),
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


# -- the dispatcher -------------------------------------------------------------------------


class ToolSession(Protocol):
    """What :class:`ToolRunner` needs from a session (``Session`` satisfies it)."""

    def events(self) -> AsyncIterator[ev.Event]: ...

    async def send_tool_response(
        self, responses: FunctionResponse | Iterable[FunctionResponse]
    ) -> None: ...


class _ContextSession(Protocol):
    async def send_context_update(
        self,
        *,
        system_instruction: Content | str | None = None,
        tools: Sequence[Tool] | None = None,
    ) -> None: ...


OnCall: TypeAlias = Callable[[FunctionCall], object]
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


class _Job:
    __slots__ = ("answered", "call", "cancelled", "ctx", "id", "name", "sending", "t0", "task")

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
    """Answers the model's tool calls on ``session`` using ``registry``.

    Every call of a ``ToolCall`` runs concurrently (async tools as tasks, sync tools in a
    bounded thread pool the runner owns) and is answered as soon as it finishes. Call ids
    named in a ``toolCallCancellation`` are cancelled and never answered; so are calls
    still running when a reconnect starts a fresh (non-resumed) session or when the
    session ends. Hook or send failures are logged and counted, never raised.

    Args:
        session: A :class:`~gemini_live.Session` (or anything with ``events()`` and
            ``send_tool_response()``).
        registry: The tools.
        max_workers: Threads for sync tools (default ``min(32, cpu + 4)``). A cancelled or
            timed-out sync tool keeps its thread until it returns.
        default_timeout: Seconds per call for tools without their own (None: no limit).
        on_call: ``hook(call)`` before a call runs (sync or async).
        on_result: ``hook(call, response, elapsed_s)`` after each response is sent.
        partial_responses: Send ``willContinue`` partials for NON_BLOCKING generator tools
            (default: yes, except on Vertex AI, which does not support them).
    """

    def __init__(
        self,
        session: ToolSession,
        registry: ToolRegistry,
        *,
        max_workers: int | None = None,
        default_timeout: float | None = 30.0,
        on_call: OnCall | None = None,
        on_result: OnResult | None = None,
        partial_responses: bool | None = None,
    ) -> None:
        if max_workers is not None and max_workers < 1:
            raise ConfigError("max_workers must be at least 1")
        if default_timeout is not None and not default_timeout > 0:
            raise ConfigError("default_timeout must be positive or None")
        self.session = session
        self.registry = registry
        self.default_timeout = default_timeout
        self.on_call = on_call
        self.on_result = on_result
        if partial_responses is None:
            api = getattr(getattr(session, "protocol", None), "api", None)
            partial_responses = api != "vertex"
        self.partial_responses = partial_responses
        self.stats = ToolRunnerStats()
        #: Seconds to wait for cancelled tool tasks to finish when stopping.
        self.cancel_grace = 1.0
        self._max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._executor: ThreadPoolExecutor | None = None
        self._jobs: dict[str, _Job] = {}
        self._anon = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._answer_on_stop = False
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> ToolRunner:
        """Subscribe to the session's events and start answering. Idempotent."""
        if self._closed:
            raise ConfigError("this ToolRunner was closed; create a new one")
        if self._task is None:
            events = self.session.events()  # subscribe now: no event can slip through
            self._task = asyncio.get_running_loop().create_task(
                self._run(events), name="gemini-live-tools"
            )
        return self

    async def aclose(self, *, answer_pending: bool = True) -> None:
        """Stop: cancel running calls and release the threads. Idempotent.

        Args:
            answer_pending: Answer each call still running with a ``Cancelled`` error so
                the model is not left waiting (an unanswered BLOCKING call wedges the
                session). Calls are never answered once the session has ended.
        """
        self._closed = True
        self._answer_on_stop = answer_pending
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task})
        await self._stop_jobs(answer=answer_pending)
        self._shutdown_executor()

    async def wait(self) -> None:
        """Wait until the runner stops (the session ended or :meth:`aclose`)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def wait_idle(self) -> None:
        """Wait until no call is in flight (every started call answered or cancelled)."""
        await self._idle.wait()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def pending(self) -> int:
        """Calls running or waiting for their answer to be sent."""
        return len(self._jobs)

    @property
    def blocking_pending(self) -> bool:
        """True while a BLOCKING tool's call is unanswered (hold realtime input back)."""
        for job in self._jobs.values():
            spec = self.registry.get(job.name)
            if spec is None or spec.behavior is Behavior.BLOCKING:
                return True
        return False

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

    # -- event loop -------------------------------------------------------------------------

    async def _run(self, events: AsyncIterator[ev.Event]) -> None:
        try:
            async for event in events:
                if isinstance(event, ev.ToolCall):
                    for call in event.calls:
                        self._dispatch(call)
                elif isinstance(event, ev.ToolCallCancellation):
                    self._cancel(event.ids)
                elif isinstance(event, ev.Resumed) and not event.state_restored:
                    if self._jobs:
                        logger.warning(
                            "fresh session after a reconnect: cancelling %d tool call(s)",
                            len(self._jobs),
                        )
                        self._cancel(list(self._jobs))
                elif isinstance(event, ev.Lagged):
                    logger.error(
                        "tool runner fell behind by %d events; tool calls may be unanswered",
                        event.count,
                    )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.info("tool runner: the session ended with %r", exc)
            self._answer_on_stop = False
        else:
            self._answer_on_stop = False  # the session is over: nothing can be sent
        finally:
            try:
                await self._stop_jobs(answer=self._answer_on_stop)
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    try:
                        await aclose()
                    except Exception:  # pragma: no cover - defensive
                        logger.debug("closing the event stream failed", exc_info=True)
                self._shutdown_executor()

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
                await self.session.send_tool_response(response)
        except Exception as exc:
            self.stats.send_errors += 1
            logger.warning("could not answer abandoned call %r (%s): %r", job.id, job.name, exc)
            return
        self.stats.answered += 1
        self.stats.failed += 1

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
        try:
            args, kwargs = spec.bind(job.ctx.args, job.ctx)
        except ToolArgumentError as exc:
            self.stats.invalid_args += 1
            await self._send_error(job, spec, _error_body(exc))
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
        sched = scheduling or (spec.scheduling if spec is not None else None)
        return FunctionResponse(
            name=job.name,
            response=response,
            id=job.id if job.id is not None else UNSET,
            scheduling=str(sched) if sched else UNSET,
            will_continue=will_continue if will_continue is not None else UNSET,
            parts=list(parts) if parts else UNSET,
        )

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

    async def _send(self, job: _Job, response: FunctionResponse, *, final: bool = False) -> None:
        if job.cancelled or job.answered:
            return
        if final:
            job.answered = True
        job.sending = True
        try:
            await self.session.send_tool_response(response)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.send_errors += 1
            logger.warning("sending the response to call %r (%s) failed: %r", job.id, job.name, exc)
            return
        finally:
            job.sending = False
        if final:
            self.stats.answered += 1
        else:
            self.stats.partials += 1
        if self.on_result is not None:
            await self._hook(self.on_result, job.call, response, time.perf_counter() - job.t0)

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
        and spec.behavior is Behavior.NON_BLOCKING
        and spec.kind in ("async_gen", "sync_gen")
    )


def _error_body(exc: BaseException) -> JSONObject:
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
    partial_responses: bool | None = None,
) -> ToolRunner:
    """Create and start a :class:`ToolRunner` (call from a running event loop).

    Use as ``async with run_tools(session, registry): ...`` or keep the runner and
    ``await runner.aclose()`` later.
    """
    return ToolRunner(
        session,
        registry,
        max_workers=max_workers,
        default_timeout=default_timeout,
        on_call=on_call,
        on_result=on_result,
        partial_responses=partial_responses,
    ).start()


# -- mid-session changes ------------------------------------------------------------------


async def update_tools(session: _ContextSession, tools: ToolRegistry | Sequence[Tool]) -> None:
    """Replace the session's tools (``contextUpdate``). The list replaces all tools.

    A registry sends only its functions; to keep built-ins pass
    ``registry.tools(google_search(), ...)``.
    """
    items = tools.tools() if isinstance(tools, ToolRegistry) else list(tools)
    await session.send_context_update(tools=items)


async def clear_tools(session: _ContextSession) -> None:
    """Remove every tool (sends ``tools: {tools: []}``)."""
    await session.send_context_update(tools=[])


async def set_system_instruction(session: _ContextSession, text: str | Content) -> None:
    """Replace the system instruction mid-session (``contextUpdate``)."""
    await session.send_context_update(system_instruction=text)
