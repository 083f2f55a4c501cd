"""Test-only oracle: check a server frame against the official SDK's ``LiveServerMessage``.

``google-genai`` is imported lazily (it takes ~0.6 s and is only a test dependency). Its
pydantic models forbid unknown fields and check base64, so a frame that passes here is one
the official client can parse.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["validate_server_frame"]

_model: Any = None


def _live_server_message() -> Any:
    global _model
    if _model is None:
        from google.genai import types  # test dependency, imported on first use

        _model = types.LiveServerMessage
    return _model


def validate_server_frame(data: bytes | str, *, vertex: bool = False) -> None:
    """Raise ``AssertionError`` unless ``data`` is a valid ``LiveServerMessage`` JSON frame.

    With ``vertex=True`` the Vertex usage names (``candidatesTokenCount``,
    ``candidatesTokensDetails``) are mapped to the Gemini API names first, as the SDK's
    Vertex converter does. Test-only: needs ``google-genai`` installed.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise AssertionError(f"server frame is not JSON: {exc}; frame={raw[:200]!r}") from None
    if not isinstance(obj, dict) or not obj:
        raise AssertionError(f"server frame must be a non-empty JSON object: {raw[:200]!r}")
    changed = False
    va = obj.get("voiceActivity")
    if isinstance(va, dict) and "type" in va:
        # The wire key is `type`; the SDK's model calls it `voiceActivityType` and its
        # converter renames the key before validating. Do the same here.
        va = dict(va)
        va["voiceActivityType"] = va.pop("type")
        obj["voiceActivity"] = va
        changed = True
    usage = obj.get("usageMetadata")
    if vertex and isinstance(usage, dict):
        usage = dict(usage)
        for src, dst in (
            ("candidatesTokenCount", "responseTokenCount"),
            ("candidatesTokensDetails", "responseTokensDetails"),
        ):
            if src in usage:
                usage[dst] = usage.pop(src)
        obj["usageMetadata"] = usage
        changed = True
    if changed:
        raw = json.dumps(obj).encode()
    model = _live_server_message()
    try:
        # JSON mode on purpose: only there are bytes fields checked as base64.
        model.model_validate_json(raw)
    except Exception as exc:  # pydantic.ValidationError
        raise AssertionError(
            f"server frame is not a valid LiveServerMessage: {exc}\nframe={raw[:300]!r}"
        ) from None
