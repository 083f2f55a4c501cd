#!/usr/bin/env python3
"""One entry point for people and CI; needs only Python >= 3.11 and pip.

    python3 dev.py demo     # create .venv, install, run the offline demo
                            # (talks to Google instead when GEMINI_API_KEY is set)
    python3 dev.py test     # create .venv, install dev extras, run the whole test suite
    python3 dev.py lint     # ruff check, ruff format --check, mypy --strict (src and tests)
    python3 dev.py bench    # the benchmarks (see docs/performance.md)
    python3 dev.py bench --page  # every benchmark of docs/performance.md, then the page
    python3 dev.py docs     # build the user guide + API reference into site/ (strict)

Extra arguments after the command go to the underlying tool
(``python3 dev.py test -k session``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("GEMINI_LIVE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")

EXTRAS = {
    "demo": "cli,audio",
    "test": "dev",
    "lint": "dev",
    "bench": "dev,bench",
    "docs": "docs",
}


def _run(*cmd: str | Path) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def ensure_env(extras: str) -> None:
    """Create the venv and (re)install the project when pyproject.toml or extras changed."""
    first = not PY.exists()
    if first:
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp_text = (ROOT / "pyproject.toml").read_bytes() + extras.encode()
    stamp = hashlib.sha256(stamp_text).hexdigest()
    stamp_file = VENV / f".gemini-live-{extras.replace(',', '-')}"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return
    print(
        f"installing gemini-live[{extras}] into {VENV}"
        + (" (the first run downloads the dependencies: about a minute)" if first else ""),
        flush=True,
    )
    quiet = ["--quiet", "--disable-pip-version-check"]
    rc = _run(PY, "-m", "pip", "install", *quiet, "--upgrade", "pip")
    if rc == 0:
        # The first install takes a while: show pip's progress then, not silence.
        shown = ["--disable-pip-version-check", "--progress-bar", "on"]
        rc = _run(PY, "-m", "pip", "install", *(shown if first else quiet), "-e", f".[{extras}]")
    if rc != 0:
        sys.exit(f"pip install failed with exit code {rc}")
    stamp_file.write_text(stamp)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run on an older python3
        sys.exit("gemini-live needs Python 3.11 or newer")
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env(EXTRAS[command])
    if command == "demo":
        return _run(PY, "-m", "gemini_live", "demo", *rest)
    if command == "test":
        return _run(PY, "-m", "pytest", *rest)
    if command == "lint":
        rc = _run(PY, "-m", "ruff", "check", "src", "tests", "bench", "examples", "dev.py")
        rc |= _run(
            PY, "-m", "ruff", "format", "--check", "src", "tests", "bench", "examples", "dev.py"
        )
        rc |= _run(PY, "-m", "mypy", "--strict", "src", "tests")
        return rc
    if command == "bench":
        if "--page" in rest:  # python -m bench.page run, then render --write
            rest = [a for a in rest if a != "--page"]
            return _run(PY, "-m", "bench.page", "run", "--render", *rest)
        return _run(PY, "-m", "bench", *rest)
    if command == "docs":
        os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")  # a banner, not a warning
        return _run(PY, "-m", "mkdocs", "build", "--strict", "--site-dir", "site", *rest)
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
