"""The README's table of extras names every extra pyproject.toml declares, and no other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


def _in_readme() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("| extra | adds | for |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.M))


def test_readme_lists_every_extra() -> None:
    declared, listed = _declared(), _in_readme()
    assert declared - listed == set(), f"extras missing from the README table: {declared - listed}"
    assert listed - declared == set(), f"README lists extras pyproject lacks: {listed - declared}"
