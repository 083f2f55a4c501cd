"""Small things a new user meets: a closed pipe, a busy port, a handled error, each ends
with at most one line and no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import offline_env


def test_fake_server_into_head_prints_one_line_and_stops(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gemini_live", "fake-server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=offline_env(),
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()  # what `| head -1` reads, then it goes away
        proc.stdout.close()
        status = proc.wait(timeout=20)
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert first.startswith(b"fake Live API server playing a voice model, listening on ws://")
    assert status == 141, err
    assert err == "", err


def test_web_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "gemini_live", "web", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env=offline_env(),
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"gemini-live web: error: cannot listen on 127.0.0.1:{port}: ")
    assert "address already in use" in lines[0]


def test_a_handled_error_prints_nothing(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio

            import gemini_live as gl
            from gemini_live.testing import FakeLiveServer


            async def main() -> None:
                async with asyncio.timeout(20), FakeLiveServer() as server:
                    try:
                        async with gl.connect(url=server.url) as session:
                            await server.close(1008, "policy violation")
                            async for _ in session:
                                pass
                    except gl.GeminiLiveError as exc:
                        print("handled", type(exc).__name__)


            asyncio.run(main())
            """
        )
    )
    r = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=offline_env(),
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "handled PolicyViolation\n"
    assert r.stderr == ""  # the app asked for no logs: the library prints none


def test_run_loop_errors_are_not_chained_to_the_uvloop_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gemini_live.cli import run_loop

    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed

    async def fails() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError) as info:
        run_loop(fails())
    assert not isinstance(info.value.__context__, ImportError)


def test_a_failed_connect_is_said_once(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run(
        [sys.executable, "-m", "gemini_live", "--url", f"ws://127.0.0.1:{port}/ws", "chat"],
        capture_output=True,
        text=True,
        timeout=30,
        env=offline_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("gemini-live chat: error: ConnectError: cannot connect to")
