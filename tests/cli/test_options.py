"""--help everywhere, version, and the errors that exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gemini_live import __version__
from gemini_live.cli import main
from gemini_live.testing import FakeLiveServer

from .conftest import FAKE_KEY, CliRunner, run_cli_async

COMMANDS = ["demo", "chat", "stream", "talk", "version"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_exits_zero(run_cli: CliRunner, command: str | None) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    r = run_cli(*args, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: gemini-live")
    if command is None:
        for c in COMMANDS:
            assert c in r.stdout
        assert "GEMINI_API_KEY" in r.stdout
    else:
        assert f"gemini-live {command}" in r.stdout
        if command != "version":
            assert "--no-fake" in r.stdout  # connection options work after the command too


def test_version(run_cli: CliRunner) -> None:
    r = run_cli("version", timeout=30)
    assert (r.returncode, r.stdout.strip()) == (0, f"gemini-live {__version__}")
    r = run_cli("--version", timeout=30)
    assert (r.returncode, r.stdout.strip()) == (0, f"gemini-live {__version__}")


def test_no_command_prints_usage_and_exits_2(run_cli: CliRunner) -> None:
    r = run_cli(timeout=30)
    assert r.returncode == 2
    assert "usage: gemini-live" in r.stderr


def test_no_fake_without_key_exits_2_with_a_clear_message(run_cli: CliRunner) -> None:
    for args in (["--no-fake", "demo"], ["demo", "--no-fake"], ["--no-fake", "chat"]):
        r = run_cli(*args, timeout=30)
        assert r.returncode == 2, args
        assert "no API key: set GEMINI_API_KEY or pass --api-key" in r.stderr
        assert r.stdout == ""


def test_conflicting_options_exit_2(run_cli: CliRunner) -> None:
    r = run_cli("--fake", "--url", "ws://127.0.0.1:9/x", "demo", timeout=30)
    assert r.returncode == 2
    assert "--fake cannot be combined with --vertex or --url" in r.stderr
    r = run_cli("--fake", "--no-fake", "demo", timeout=30)
    assert r.returncode == 2
    assert "not allowed with argument" in r.stderr


def test_main_in_process_returns_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "usage: gemini-live" in capsys.readouterr().out
    assert main(["--bogus"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"gemini-live {__version__}"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def test_unreachable_endpoint_exits_1(run_cli: CliRunner) -> None:
    r = run_cli("--url", _closed_port_url(), "demo", timeout=30)
    assert r.returncode == 1
    assert "error: ConnectError: cannot connect" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_outputs_exit_2(run_cli: CliRunner) -> None:
    r = run_cli("--record", "no/such/dir/wire.jsonl", "demo", timeout=30)
    assert r.returncode == 2
    assert "cannot write no/such/dir/wire.jsonl" in r.stderr


async def test_rejected_key_exits_1_without_printing_it(tmp_path: Path) -> None:
    async with FakeLiveServer(require_api_key="AIzaSyTHE-RIGHT-KEY-0123456789abcdef") as server:
        code, out, err = await run_cli_async(
            "--url", server.url, "--api-key", FAKE_KEY, "demo", cwd=tmp_path
        )
    assert code == 1
    assert "error: AuthError" in err
    assert "API key not valid" in err
    assert FAKE_KEY not in out + err
