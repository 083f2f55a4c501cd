"""Checks of what the app hands the core: a setup for an endpoint, a wire Struct's types.

No state: each function raises a typed error or returns nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec

from gemini_live.auth import ApiKind
from gemini_live.errors import ConfigError, InvalidMessageError
from gemini_live.types import UNSET, Setup

__all__ = ["check_types", "not_a_list", "validate_setup"]


def validate_setup(setup: Setup, api: ApiKind) -> None:
    """Reject settings the chosen endpoint does not accept, before anything is sent."""
    if not isinstance(setup, Setup):
        raise ConfigError(f"setup must be a types.Setup, got {type(setup).__name__}")
    check_types(setup, Setup, "setup")
    if not setup.model:
        raise ConfigError("setup.model is required")
    if api == "gemini":
        sr = setup.session_resumption
        if sr is not UNSET and sr.transparent is True:
            raise ConfigError(
                "sessionResumption.transparent is only accepted by Vertex AI, not the Gemini API"
            )
        if setup.explicit_vad_signal is not UNSET:
            raise ConfigError("explicitVadSignal is only accepted by Vertex AI")
        if not setup.model.startswith(("models/", "tunedModels/")):
            raise ConfigError(
                f"on the Gemini API the model must look like 'models/<id>', got {setup.model!r}"
            )
    cwc = setup.context_window_compression
    if cwc is not UNSET:
        if cwc.sliding_window is UNSET:
            raise ConfigError(
                "contextWindowCompression needs slidingWindow (use SlidingWindow() for defaults)"
            )
        target = cwc.sliding_window.target_tokens
        if cwc.trigger_tokens is not UNSET and target is not UNSET and target >= cwc.trigger_tokens:
            raise ConfigError("slidingWindow.targetTokens must be below triggerTokens")
    gc = setup.generation_config
    if gc is not UNSET and gc.response_modalities is not UNSET and len(gc.response_modalities) != 1:
        raise ConfigError("responseModalities takes exactly one modality per session")


def check_types(value: msgspec.Struct, cls: type[Any], what: str) -> None:
    """Check every field of a wire Struct against its declared type (and finite floats).

    msgspec Structs do not check types when built, and the encoder would happily write
    ``Part(text=5)``; this round trip through the builtin form does, once per message
    at the public boundary (the audio hot path never comes here).
    """
    try:
        builtins = msgspec.to_builtins(value)
        msgspec.convert(builtins, cls)
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        raise InvalidMessageError(f"invalid {what}: {exc}") from None
    bad = _non_finite(builtins)
    if bad is not None:
        raise InvalidMessageError(f"invalid {what}: {bad} is not valid JSON (NaN or infinity)")


def _non_finite(obj: object, depth: int = 0) -> str | None:
    if isinstance(obj, float):
        return None if math.isfinite(obj) else repr(obj)
    if depth > 64:
        return None
    if isinstance(obj, dict):
        for v in obj.values():
            found = _non_finite(v, depth + 1)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _non_finite(v, depth + 1)
            if found is not None:
                return found
    return None


def not_a_list(value: object) -> bool:
    """True unless ``value`` is a list-like of items (a str or bytes is not)."""
    return isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable)
