"""Type hints and Google-style docstrings to the JSON Schema subset Gemini accepts.

Pure functions, no I/O and no knowledge of tools: :mod:`gemini_live.tools._registry`
builds declarations with them.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

from gemini_live.types import JSONObject

__all__ = [
    "ARG_SECTIONS",
    "SchemaBuilder",
    "annotated_description",
    "jsonable",
    "parse_doc",
]

# -- docstrings ---------------------------------------------------------------------------

_SECTION_RE: Final = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
ARG_SECTIONS: Final = frozenset({"Args", "Arguments", "Parameters", "Params"})
_ATTR_SECTIONS: Final = frozenset({"Attributes", *ARG_SECTIONS})
_ARG_LINE_RE: Final = re.compile(r"^\*{0,2}([A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_doc(doc: str | None, sections: frozenset[str]) -> tuple[str | None, dict[str, str]]:
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
    return parse_doc(doc, _ATTR_SECTIONS)


# -- JSON Schema from type hints ----------------------------------------------------------


def annotated_description(hint: Any) -> str | None:
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


def jsonable(value: Any) -> tuple[bool, Any]:
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


class SchemaBuilder:
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
        desc = annotated_description(hint)
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
                fdesc = annotated_description(hints.get(f.name)) or field_docs.get(f.name)
                if fdesc:
                    fs = {**fs, "description": fdesc}
                if f.default is not msgspec.NODEFAULT:
                    ok, default = jsonable(f.default)
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
