"""``gemini-live chat --conversation NAME``: two runs, the second continues the first."""

from __future__ import annotations

import stat
from pathlib import Path

from gemini_live.testing import FakeLiveServer

from .conftest import CliRunner, offline_env, run_cli_async


def test_offline_chat_continues_yesterdays_conversation(run_cli: CliRunner, tmp_path: Path) -> None:
    """Each offline run has its own embedded fake service, so the second run cannot
    resume the first one's handle: it starts fresh, seeded with the stored history."""
    env = offline_env(XDG_DATA_HOME=str(tmp_path / "data"))
    first = run_cli("chat", "--conversation", "daily", input="my name is Ada\n/quit\n", env=env)
    assert first.returncode == 0, first.stderr
    assert "conversation daily: new, saved as you chat" in first.stdout
    db = tmp_path / "data" / "gemini-live" / "conversations.db"
    assert db.exists()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600  # it holds the conversation's text
    second = run_cli("chat", "--conversation", "daily", input="what did I say\n/quit\n", env=env)
    assert second.returncode == 0, second.stderr
    assert "conversation daily: continued, FRESH session reseeded with" in second.stdout
    assert "model> Earlier you said: my name is Ada" in second.stdout
    # Another name is another conversation.
    other = run_cli("chat", "--conversation", "other", input="what did I say\n/quit\n", env=env)
    assert "conversation other: new" in other.stdout
    assert other.returncode == 0, other.stderr
    assert "my name is Ada" not in other.stdout


async def test_chat_resumes_the_stored_handle_against_one_service(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'chats.db'}"
    async with FakeLiveServer() as server:
        code, out, err = await run_cli_async(
            "--url",
            server.url,
            "chat",
            "--conversation",
            "c1",
            "--store",
            store,
            stdin=b"first\n/quit\n",
            cwd=tmp_path,
        )
        assert code == 0, err
        assert "conversation c1: new" in out
        sid = server.connections[0].session_id
        code, out2, err = await run_cli_async(
            "--url",
            server.url,
            "chat",
            "--conversation",
            "c1",
            "--store",
            store,
            stdin=b"second\n/quit\n",
            cwd=tmp_path,
        )
        assert code == 0, err
        assert "conversation c1: continued, state restored" in out2
        assert "model> You said: second" in out2
        assert server.connections[-1].resumed_from is not None
        assert server.conversation(sid).user_texts == ("first", "second")


def test_store_flags_are_checked(run_cli: CliRunner, tmp_path: Path) -> None:
    r = run_cli("chat", "--store", f"sqlite:///{tmp_path / 'x.db'}", input="/quit\n")
    assert r.returncode == 2 and "--store needs --conversation" in r.stderr
    r = run_cli("chat", "--conversation", "has space", input="/quit\n")
    assert r.returncode == 2 and "conversation id" in r.stderr
    r = run_cli("chat", "--conversation", "x", "--store", "ftp://nope", input="/quit\n")
    assert r.returncode == 2 and "--store" in r.stderr
