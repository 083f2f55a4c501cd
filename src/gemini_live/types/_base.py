"""Shared base for wire Structs and the small wire helpers every type module uses."""

from __future__ import annotations

import math
import re
from typing import Any, Final, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

__all__ = ["UNSET", "JSONObject", "UnsetType", "WireStruct", "format_duration", "parse_duration"]

#: A free-form JSON object (tool arguments, tool results, JSON schemas).
JSONObject: TypeAlias = dict[str, Any]


class WireStruct(
    msgspec.Struct,
    rename="camel",
    omit_defaults=True,
    kw_only=True,
    repr_omit_defaults=True,
):
    """Base of every wire type.

    Field names are snake_case in Python and lowerCamelCase on the wire. Every optional
    field defaults to ``UNSET`` and is then left out of the JSON entirely (the service
    rejects ``null`` for several optional configs). Unknown fields are ignored on decode
    so that newer servers do not break older clients.
    """


_DURATION_RE: Final = re.compile(r"^\s*(-?\d+(?:\.\d*)?|-?\.\d+)\s*s?\s*$")


def parse_duration(value: str | float | int) -> float:
    """Parse a proto Duration string such as ``"50s"`` or ``"9.500s"`` to seconds.

    Numbers pass through. Raises ``ValueError`` for anything else.
    """
    result: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            result = float(m.group(1))
    if result is None or not math.isfinite(result):
        raise ValueError(f"not a duration: {value!r}")
    return result


def format_duration(seconds: float) -> str:
    """Format seconds as a proto Duration string (``1.5`` -> ``"1.5s"``)."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text or '0'}s"
