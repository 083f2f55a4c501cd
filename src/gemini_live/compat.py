"""Coming from google-genai: turn a ``LiveConnectConfig`` into this library's ``Setup``.

:func:`setup_from_genai` accepts a ``google.genai.types.LiveConnectConfig`` or its dict
form (``LiveConnectConfigDict``: snake_case or camelCase keys, nested SDK objects,
enums and bytes allowed) and returns the :class:`~gemini_live.types.Setup` that puts the
same fields on the wire, the way the SDK's own converter does (the top-level generation
knobs such as ``response_modalities``, ``speech_config``, ``thinking_config`` and
``enable_affective_dialog`` move into ``generationConfig``; a string system instruction
becomes a text ``Content``).

google-genai is never imported here: SDK objects are read through their pydantic
``model_dump``. Anything that has no place in the Live setup is a
:class:`~gemini_live.errors.ConfigError` naming the field: ``http_options`` (use
:class:`~gemini_live.auth.Endpoint`), Python functions in ``tools`` (declare them with
:class:`~gemini_live.tools.ToolRegistry`), and any field this library's types do not
carry (e.g. ``tools[0].retrieval``, ``generationConfig.responseMimeType``).
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from typing import Any

import msgspec
import msgspec.inspect as mi

from gemini_live.errors import ConfigError
from gemini_live.types import Setup

__all__ = ["is_genai_config", "setup_from_genai"]

#: LiveConnectConfig fields the SDK moves into ``generationConfig`` (wire names).
_GENERATION_KEYS = (
    "responseModalities",
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "mediaResolution",
    "seed",
    "speechConfig",
    "thinkingConfig",
    "enableAffectiveDialog",
    "translationConfig",
)

_SETUP_INFO: mi.StructType | None = None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def is_genai_config(obj: object) -> bool:
    """True for a google-genai ``LiveConnectConfig`` object (without importing google-genai)."""
    cls = type(obj)
    return cls.__name__ == "LiveConnectConfig" and cls.__module__.startswith("google.genai")


def _dump(value: Any) -> Any:
    """An SDK (pydantic) object as its wire-named JSON dict; anything else unchanged."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, Mapping):
        return dump(mode="json", by_alias=True, exclude_none=True)
    return value


def _plain(value: Any, path: str) -> Any:
    """Free-form JSON (schemas, labels): SDK objects dumped, enums to values, bytes to base64."""
    value = _dump(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value, path)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{path}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ConfigError(f"{path}: cannot convert a {type(value).__name__} to the Live setup")


def _walk(value: Any, info: mi.Type, path: str) -> Any:
    value = _dump(value)
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bytes | bytearray | memoryview):
        value = base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(info, mi.UnionType):
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        for t in members:
            if isinstance(t, mi.StructType) and isinstance(value, Mapping):
                return _walk(value, t, path)
            if isinstance(t, mi.ListType) and isinstance(value, list | tuple):
                return _walk(value, t, path)
            if isinstance(t, mi.DictType | mi.AnyType) and isinstance(value, Mapping):
                return _plain(value, path)
        return _plain(value, path)
    if isinstance(info, mi.StructType):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected an object, got {type(value).__name__}")
        by_name: dict[str, mi.Field] = {}
        for fi in info.fields:
            by_name[fi.encode_name] = fi
            by_name[fi.name] = fi
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            key = str(key)
            f: mi.Field | None = by_name.get(key) or by_name.get(_camel(key))
            where = f"{path}.{_camel(key)}" if path else _camel(key)
            if f is None:
                raise ConfigError(f"{where}: not supported in a Live setup by gemini-live")
            out[f.encode_name] = _walk(item, f.type, where)
        return out
    if isinstance(info, mi.ListType):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return [_walk(v, info.item_type, f"{path}[{i}]") for i, v in enumerate(value)]
    return _plain(value, path)


def _system_instruction(value: Any) -> Any:
    value = _dump(value)
    if isinstance(value, str):
        return {"parts": [{"text": value}]}
    if isinstance(value, Mapping) and "parts" not in value:
        return {"parts": [value]}  # a single Part
    if isinstance(value, list | tuple):
        parts = []
        for item in value:
            item = _dump(item)
            parts.append({"text": item} if isinstance(item, str) else item)
        return {"parts": parts}
    return value


def setup_from_genai(config: object, *, model: str) -> Setup:
    """Convert a google-genai ``LiveConnectConfig`` (or its dict form) to a ``Setup``.

    Args:
        config: ``google.genai.types.LiveConnectConfig`` or a mapping with its fields.
        model: The model id (google-genai passes it to ``connect`` separately).

    Raises:
        ConfigError: a field that cannot be mapped, named by its wire path.
    """
    global _SETUP_INFO
    if not model:
        raise ConfigError("model is required")
    if isinstance(config, Mapping):
        raw_tools = config.get("tools")
    else:
        raw_tools = getattr(config, "tools", None)
    for i, tool in enumerate(raw_tools if isinstance(raw_tools, list | tuple) else ()):
        if callable(tool) and not hasattr(tool, "model_dump") and not isinstance(tool, Mapping):
            raise ConfigError(
                f"tools[{i}]: a Python function; declare it with gemini_live.tools.ToolRegistry"
                " and answer calls with run_tools()"
            )
    raw = _dump(config)
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"expected a google-genai LiveConnectConfig or a dict, got {type(config).__name__}"
        )
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if value is not None:
            fields[_camel(str(key))] = value
    if "httpOptions" in fields:
        raise ConfigError(
            "httpOptions: not part of the Live setup; choose the endpoint and API version"
            " with gemini_live.Endpoint (e.g. Endpoint.gemini(api_version='v1alpha'))"
        )
    if "model" in fields:
        raise ConfigError("model: pass the model with model=, not inside the config")
    gen = _dump(fields.pop("generationConfig", None)) or {}
    if not isinstance(gen, Mapping):
        raise ConfigError("generationConfig: expected an object")
    gen = {_camel(str(k)): v for k, v in gen.items() if v is not None}
    for key in _GENERATION_KEYS:
        if key in fields:
            gen[key] = fields.pop(key)  # the SDK: the top-level value wins
    setup: dict[str, Any] = {"model": model}
    if gen:
        setup["generationConfig"] = gen
    if "systemInstruction" in fields:
        fields["systemInstruction"] = _system_instruction(fields["systemInstruction"])
    setup.update(fields)
    if _SETUP_INFO is None:
        info = mi.type_info(Setup)
        assert isinstance(info, mi.StructType)
        _SETUP_INFO = info
    wire = _walk(setup, _SETUP_INFO, "")
    try:
        return msgspec.convert(wire, Setup)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"cannot convert the google-genai config: {exc}") from None
