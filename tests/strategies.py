"""Hypothesis strategies for the wire types of :mod:`gemini_live.types`.

Strategies are derived by introspecting the msgspec Structs (``msgspec.inspect.type_info``),
so a field added to a wire type is generated (and round-tripped) without touching this
module. A field type this module does not know raises ``NotImplementedError`` at strategy
build time, which makes the round-trip tests fail loudly instead of silently skipping it.

Reusable pieces:

* :func:`structs` -- any wire Struct, every optional field either ``UNSET`` or a value;
* :func:`wire_struct_types` -- every ``WireStruct`` subclass, sorted by name;
* :func:`client_messages` -- client envelopes that pass ``codec.check_client_message``;
* :data:`json_values` / :data:`json_objects` -- free-form JSON (finite floats, int64 ints);
* :func:`b64_text` -- base64 text of random bytes in the standard or the URL-safe alphabet;
* :func:`profile` -- the stable settings every test here uses (derandomized, no database).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import msgspec
import msgspec.inspect as mi
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from gemini_live import types as T

__all__ = [
    "INT64",
    "b64_text",
    "client_messages",
    "for_type_info",
    "json_objects",
    "json_scalars",
    "json_values",
    "profile",
    "structs",
    "wire_struct_types",
]

S = TypeVar("S", bound=msgspec.Struct)

INT64: st.SearchStrategy[int] = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_FLOATS: st.SearchStrategy[float] = st.floats(allow_nan=False, allow_infinity=False)
_TEXT: st.SearchStrategy[str] = st.text(max_size=24)

#: JSON leaves: what ``msgspec.json`` round-trips exactly (no NaN/inf, ints within int64).
json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), INT64, _FLOATS, st.text(max_size=16)
)
#: Any JSON value, kept small.
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=8), children, max_size=3),
    ),
    max_leaves=10,
)
#: A free-form JSON object (tool args, schemas, grounding metadata).
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(max_size=8), json_values, max_size=4
)


def profile(max_examples: int) -> settings:
    """Stable settings for CI: derandomized, no example database, no deadline."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def wire_struct_types() -> list[type[T.WireStruct]]:
    """Every (transitive) subclass of ``WireStruct``, sorted by qualified name."""
    seen: set[type[T.WireStruct]] = set()
    stack: list[type[T.WireStruct]] = [T.WireStruct]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
    return sorted(seen, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def for_type_info(info: mi.Type) -> st.SearchStrategy[Any]:
    """A strategy for values of one ``msgspec.inspect`` type node."""
    if isinstance(info, mi.StructType):
        return _struct_strategy(info.cls)
    if isinstance(info, mi.StrType):
        return _TEXT
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.IntType):
        return INT64
    if isinstance(info, mi.FloatType):
        return _FLOATS
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.AnyType):
        return json_values
    if isinstance(info, mi.ListType):
        return st.lists(for_type_info(info.item_type), max_size=3)
    if isinstance(info, mi.DictType):
        if not isinstance(info.key_type, mi.StrType):
            raise NotImplementedError(f"dict key type {info.key_type!r}")
        return st.dictionaries(_TEXT, for_type_info(info.value_type), max_size=3)
    if isinstance(info, mi.UnionType):
        return st.one_of(*(for_type_info(t) for t in info.types))
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(info.values)
    raise NotImplementedError(f"no strategy for msgspec type {info!r}; extend tests/strategies.py")


@functools.cache
def _struct_strategy(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    # deferred: resolves lazily, so recursive Structs (none today) would still work.
    return st.deferred(lambda: _build_struct(cls))


def _build_struct(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in info.fields:
        strategy = for_type_info(field.type)
        (required if field.required else optional)[field.name] = strategy
    # Optional keys left out of the dict keep their default (UNSET for every wire type).
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))


def structs(cls: type[S]) -> st.SearchStrategy[S]:
    """Instances of the Struct ``cls``; optional fields are UNSET or hold a value."""
    return cast("st.SearchStrategy[S]", _struct_strategy(cls))


def b64_text(*, urlsafe: bool | None = None, max_size: int = 64) -> st.SearchStrategy[str]:
    """Base64 text of random bytes. ``urlsafe=None`` draws the alphabet too."""
    alphabets = [False, True] if urlsafe is None else [urlsafe]

    def enc(raw: bytes, url: bool) -> str:
        return (base64.urlsafe_b64encode if url else base64.b64encode)(raw).decode("ascii")

    return st.builds(enc, st.binary(max_size=max_size), st.sampled_from(alphabets))


def _setter(cls: type[S], name: str) -> Callable[[Any], S]:
    """``value -> cls(name=value)``."""

    def build(value: Any) -> S:
        return cls(**{name: value})

    return build


def client_messages() -> st.SearchStrategy[T.ClientMessage]:
    """Client envelopes with exactly one top-level field and one realtime payload.

    ``mediaChunks`` is never produced (``encode_client`` refuses it).
    """
    realtime_payloads: list[st.SearchStrategy[T.RealtimeInput]] = []
    for field in msgspec.structs.fields(T.RealtimeInput):
        if field.name == "media_chunks":
            continue
        info = mi.type_info(field.type)
        # type_info of ``X | UnsetType`` drops UnsetType, leaving X.
        realtime_payloads.append(for_type_info(info).map(_setter(T.RealtimeInput, field.name)))
    kinds: list[st.SearchStrategy[T.ClientMessage]] = [
        st.one_of(realtime_payloads).map(lambda ri: T.ClientMessage(realtime_input=ri))
    ]
    for field in msgspec.structs.fields(T.ClientMessage):
        if field.name == "realtime_input":
            continue
        info = mi.type_info(field.type)
        kinds.append(for_type_info(info).map(_setter(T.ClientMessage, field.name)))
    return st.one_of(kinds)
