"""Helpers for CLI tests: run ``python -m gemini_live`` offline, bounded in time."""

from __future__ import annotations

import asyncio
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


async def run_cli_async(
    *args: str,
    cwd: Path,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    within: float = 30.0,
) -> tuple[int, str, str]:
    """Run ``python -m gemini_live ARGS`` without blocking the loop (so an in-process
    FakeLiveServer keeps serving); returns (exit code, stdout, stderr). Killed after
    ``within`` seconds.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gemini_live",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else offline_env(),
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(within):
            out_b, err_b = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out_b.decode(), err_b.decode()
