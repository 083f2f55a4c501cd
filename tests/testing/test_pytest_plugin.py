"""The pytest plugin: its fixtures and markers in a project with no pytest configuration,
and the testing recipe's exact flow (fresh venv, ``pip install``, one file, ``pytest``)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import venv
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "docs" / "guide" / "recipes" / "testing.md"
PLUGIN = "gemini_live.testing.pytest_plugin"
#: Whether this environment already loads the plugin through its entry point (an
#: installed gemini-live): then ``-p`` would register it twice.
INSTALLED = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))


def recipe_file() -> str:
    """The test file of the recipe, verbatim (the python block starting with its name)."""
    blocks = re.findall(r"^```python\n(.*?)^```", RECIPE.read_text(), re.S | re.M)
    (code,) = [b for b in blocks if b.startswith("# test_voice_app.py\n")]
    return str(code)


def recipe_commands() -> list[str]:
    """The shell lines of the recipe's empty-project block."""
    blocks = re.findall(r"^```bash\n(.*?)^```", RECIPE.read_text(), re.S | re.M)
    (block,) = [b for b in blocks if "pip install" in b and "[pytest]" in b]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def run_pytest(
    folder: Path, *args: str, plugin: bool = True, upstream: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GEMINI_"))}
    env.pop("CI", None)
    if upstream is not None:
        env["GEMINI_LIVE_UPSTREAM"] = upstream
    env["PYTHONPATH"] = str(ROOT / "src")
    if plugin and not INSTALLED:
        args = ("-p", PLUGIN, *args)
    elif not plugin and INSTALLED:
        args = ("-p", f"no:{PLUGIN}", "-p", "no:gemini_live", *args)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project: no pytest.ini, no pyproject, no conftest."""
    folder = tmp_path / "voice-tests"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("asyncio_plugin", [True, False], ids=["with-pytest-asyncio", "alone"])
def test_the_recipe_file_passes_without_any_configuration(
    project: Path, asyncio_plugin: bool
) -> None:
    (project / "test_voice_app.py").write_text(recipe_file())
    extra = () if asyncio_plugin else ("-p", "no:asyncio")
    done = run_pytest(project, "--strict-markers", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_without_the_plugin_the_recipe_file_fails(project: Path) -> None:
    """What a new user met before: async tests are not run by plain pytest."""
    (project / "test_voice_app.py").write_text(recipe_file())
    done = run_pytest(project, "-p", "no:asyncio", plugin=False)
    assert done.returncode != 0


CASSETTE_TESTS = """
import pytest
import gemini_live as gl
from gemini_live import events as ev


async def talk(url):
    async with gl.connect(url=url) as session:
        await session.send_text("hello")
        async for event in session:
            if isinstance(event, ev.TurnComplete):
                return


async def test_greeting(live_cassette):
    await talk(live_cassette.url)


@pytest.mark.gemini_live(timeout=5)
async def test_marked_runs_too():
    assert True


def test_sync_tests_stay_sync():
    assert True
"""


def test_live_cassette_records_once_then_replays_and_fails_when_missing(
    project: Path,
) -> None:
    from gemini_live.testing import FakeLiveServer

    (project / "test_talk.py").write_text(CASSETTE_TESTS)
    cassette = project / "cassettes" / "test_talk" / "test_greeting.jsonl"
    # Missing, outside CI: skipped, and said so.
    done = run_pytest(project, "-rs")
    assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout
    assert "record it once" in done.stdout
    # Missing with --cassettes=replay-only (CI): a failure, not a green skip.
    done = run_pytest(project, "--cassettes=replay-only")
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout
    assert "missing cassettes fail: --cassettes=replay-only" in done.stdout

    async def record() -> subprocess.CompletedProcess[str]:
        # Recording against the fake (as against `gemini-live fake-server`): the URL it
        # prints goes in GEMINI_LIVE_UPSTREAM as is.
        async with FakeLiveServer() as fake, asyncio.timeout(150):
            return await asyncio.to_thread(
                run_pytest, project, "--cassettes=record-missing", upstream=fake.url
            )

    done = asyncio.run(record())
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr
    assert cassette.exists()
    # Replayed, with nothing else running.
    done = run_pytest(project, "--cassettes=replay-only")
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout


def test_a_sync_test_asking_for_a_live_fixture_is_told_why(project: Path) -> None:
    (project / "test_sync.py").write_text("def test_x(fake_live_server):\n    pass\n")
    done = run_pytest(project)
    assert done.returncode != 0
    assert "the gemini-live fixtures need an `async def` test" in done.stdout + done.stderr


@pytest.mark.timeout(180)
def test_the_recipe_flow_in_a_fresh_venv(tmp_path: Path) -> None:
    """The recipe, step by step: a new venv (not sharing our packages), ``pip install`` of
    this checkout with the ``pytest`` extra, the recipe's file, ``pytest -q``."""
    commands = recipe_commands()
    assert commands[0] == "mkdir voice-tests && cd voice-tests"
    assert commands[1] == "python -m venv .venv && . .venv/bin/activate"
    assert commands[2].startswith('pip install "../gemini-live[pytest]"')
    assert commands[3:] == ["pytest -q"]
    project = tmp_path / "voice-tests"
    project.mkdir()
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(project / ".venv")
    bin_dir = project / ".venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GEMINI_"))}
    env.pop("CI", None)
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(project / ".venv")
    install = subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", f"{ROOT}[pytest]"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    if install.returncode != 0 and "Could not find a version" in install.stderr:
        pytest.skip(f"no package index reachable: {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr[-2000:]
    (project / "test_voice_app.py").write_text(recipe_file())
    done = subprocess.run(
        [str(bin_dir / "pytest"), "-q"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
