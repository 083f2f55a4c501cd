"""Smoke-run bench/relay_latency.py end to end (a few turns, one small level). Speed is
never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.bench, pytest.mark.timeout(120)]


def test_relay_latency_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.relay_latency",
            "--turns",
            "3",
            "--levels",
            "2",
            "--seconds",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    paths = [row["path"] for row in result["latency"]]
    assert paths == ["direct session", "relay manual", "relay vad", "bridge (twilio)"]
    assert all(row["turns"] == 3 for row in result["latency"])
    assert result["levels"][0]["connections"] == 2
    assert result["levels"][0]["peak_active"] == 2
