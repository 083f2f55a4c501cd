"""Checks of configuration numbers, one wording for every config object.

Each raises :class:`~gemini_live.errors.ConfigError` naming the setting; a ``bool`` is
never taken for a number, and NaN or infinity never passes.
"""

from __future__ import annotations

import math

from gemini_live.errors import ConfigError, excerpt

__all__ = ["non_negative", "non_negative_int", "positive", "positive_int"]


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def positive(name: str, value: object, *, optional: bool = False) -> None:
    """A finite number > 0 (or None when ``optional``)."""
    if value is None and optional:
        return
    if not _finite(value) or value <= 0:  # type: ignore[operator]
        allowed = "a finite number > 0" + (" or None" if optional else "")
        raise ConfigError(f"{name} must be {allowed}, got {excerpt(value, 40)}")


def non_negative(name: str, value: object) -> None:
    """A finite number >= 0."""
    if not _finite(value) or value < 0:  # type: ignore[operator]
        raise ConfigError(f"{name} must be a finite number >= 0, got {excerpt(value, 40)}")


def positive_int(name: str, value: object, *, optional: bool = False) -> None:
    """An integer > 0 (or None when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be an integer > 0, got {excerpt(value, 40)}")


def non_negative_int(name: str, value: object, *, optional: bool = False) -> None:
    """An integer >= 0 (or None when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {excerpt(value, 40)}")
