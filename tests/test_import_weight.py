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


def test_import_gemini_live_leaves_the_conversation_store_for_its_first_use() -> None:
    # The store's modules load with the first session that names a stored conversation
    # (or with ``import gemini_live.store``), not with every import of the package.
    code = (
        "import sys, gemini_live; "
        "print(','.join(m for m in sys.modules "
        "if m.startswith(('gemini_live.store', 'gemini_live._conversation'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "", f"imported eagerly: {out.stdout.strip()}"
