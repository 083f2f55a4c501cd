"""``import gemini_live`` loads no optional or store backend library: those come when used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlite3", "redis", "cryptography", "aiortc", "av", "numpy", "soxr", "livekit", "arq")


def test_import_gemini_live_loads_no_backend_library() -> None:
    code = (
        "import sys, gemini_live, gemini_live.store; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "", f"imported eagerly: {out.stdout.strip()}"
