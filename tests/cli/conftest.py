"""Helpers for CLI tests: run ``python -m gemini_live`` offline, bounded in time."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

#: A made-up key in the shape of a real one; it must never be printed or recorded.
FAKE_KEY = "AIzaSyTESTONLY-0123456789abcdefghijkl"

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def offline_env(**extra: str) -> dict[str, str]:
    """The current environment without any credential (so the CLI falls back offline)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_MODEL")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


@pytest.fixture
def run_cli(tmp_path: Path) -> CliRunner:
    """``run_cli("demo", timeout=30)`` -> CompletedProcess (text), cwd = tmp_path."""

    def run(
        *args: str,
        timeout: float = 30.0,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gemini_live", *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            env=env if env is not None else offline_env(),
            cwd=tmp_path,
            check=False,
        )

    return run
