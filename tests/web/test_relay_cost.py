"""What the relay's turn detection costs per 20 ms frame without numpy (a relay that does
not resample never imports it): no Python code runs per sample."""

from __future__ import annotations

import math
import struct
import sys
from types import FrameType
from typing import Any

import pytest

from gemini_live.vad import ActivityDetector, rms_dbfs


def _tone(n: int = 320, amp: float = 9000.0) -> bytes:
    return struct.pack(f"<{n}h", *(int(amp * math.sin(i / 5)) for i in range(n)))


def _python_calls(fn: Any, *args: Any) -> int:
    calls = 0

    def count(_frame: FrameType, event: str, _arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return calls


def test_level_without_numpy_runs_no_python_code_per_sample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = _tone()
    with_numpy = rms_dbfs(frame) if "numpy" in sys.modules else None
    monkeypatch.setitem(sys.modules, "numpy", None)  # as in a process that never imported it
    level = rms_dbfs(frame)
    expected = 10 * math.log10(sum(x * x for x in struct.unpack("<320h", frame)) / 320 / 32768**2)
    assert level == pytest.approx(expected, abs=1e-9)
    if with_numpy is not None:
        assert level == pytest.approx(with_numpy, abs=1e-9)
    assert rms_dbfs(bytes(640)) == -100.0
    # A handful of calls per frame, not one per sample (320 here).
    assert _python_calls(rms_dbfs, frame) < 10
    detector = ActivityDetector()
    assert _python_calls(detector.process, frame) < 20
