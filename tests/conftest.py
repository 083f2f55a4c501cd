"""Shared pytest fixtures. Keep this generic; test-specific helpers live in their modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

#: Golden server frames, one JSON file per message kind.
FRAMES_DIR = Path(__file__).parent / "frames"


@pytest.fixture
def load_frame() -> Callable[[str], bytes]:
    """Return a loader: ``load_frame("go_away_50s")`` -> the raw bytes of that golden frame."""

    def load(name: str) -> bytes:
        return (FRAMES_DIR / f"{name.removesuffix('.json')}.json").read_bytes()

    return load
