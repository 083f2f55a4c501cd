"""The voice page keeps its conversation (headless Chromium, a relay with a store): after
a reload it rejoins with ``?conversation=ID``; when its relay drains for a deploy it gets
4012, reconnects by itself to the next relay on the same store and the conversation goes
on (no text lost, none answered twice)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gemini_live._asgi import Receive, Scope, Send
from gemini_live.audio import write_wav
from gemini_live.store import SqliteStore
from gemini_live.testing import FakeLiveServer
from gemini_live.web import ConnectionInfo, Relay, create_app, running

from .cdp import Page, chromium_page, find_chromium
from .conftest import fake_config, silence

pytestmark = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("CI"),  # in CI a missing browser fails
    reason="chromium is not installed: run .ci/install-browser (apt-get install chromium)",
)

TRANSCRIPT = "document.getElementById('transcript').innerText"


def _tester(conn: ConnectionInfo) -> str:
    return "tester"  # the test's stand-in for a signed session cookie


async def _say(page: Page, text: str) -> None:
    turns = await page.evaluate("glState.turns")
    await page.evaluate(
        f"document.getElementById('text').value = {text!r};"
        " document.getElementById('textform').requestSubmit()"
    )
    await page.wait_for(f"glState.turns > {turns}", within=20)


def _flags(tmp_path: Path) -> list[str]:
    wav = tmp_path / "quiet.wav"
    write_wav(wav, silence(2000), 16000)  # the microphone hears nothing: text turns only
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]


def _user_texts(server: FakeLiveServer) -> list[str]:
    return [t for s in server.sessions.values() for t in s.user_texts]


@pytest.mark.timeout(120)
async def test_a_reloaded_page_goes_on_with_its_conversation(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "conversations.db")
    async with FakeLiveServer(reply_chunks=5) as server:
        relay = Relay(fake_config(server), authorize=_tester, store=store)
        async with (
            running(create_app(relay)) as base,
            chromium_page(
                base + "/?autostart=1&raw=1", tmp_path / "profile", _flags(tmp_path)
            ) as page,
        ):
            cid = await page.wait_for("window.glState && glState.conversation", within=30)
            assert await page.evaluate("sessionStorage.getItem('gl-conversation')") == cid
            await _say(page, "my name is Ada")
            assert "You said: my name is Ada" in await page.evaluate(TRANSCRIPT)
            await page.call("Page.reload")
            await page.wait_for(
                "window.glState && glState.status === 'open' && glState.conversation", 30
            )
            assert await page.evaluate("glState.conversation") == cid
            await _say(page, "what did I say")
            text = await page.evaluate(TRANSCRIPT)
            assert "my name is Ada" in text.split("what did I say", 1)[1], text
            exceptions = [c for c in page.console if c.startswith("exception")]
            assert not exceptions, exceptions
        # The reloaded page's socket asked for its conversation by id.
        last = relay.finished[-1]
        assert last.query.get("conversation") == cid
        assert _user_texts(server).count("my name is Ada") == 1


class _Switch:
    """The load balancer in miniature: every request goes to the current app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@pytest.mark.timeout(120)
async def test_a_drained_relay_moves_the_page_to_the_next_one(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "conversations.db")
    async with FakeLiveServer(reply_chunks=5) as server:
        first = Relay(fake_config(server), authorize=_tester, store=store)
        second = Relay(fake_config(server), authorize=_tester, store=store)
        switch = _Switch(create_app(first))
        async with (
            running(switch, limits=first.limits) as base,
            chromium_page(
                base + "/?autostart=1&raw=1", tmp_path / "profile", _flags(tmp_path)
            ) as page,
        ):
            cid = await page.wait_for("window.glState && glState.conversation", within=30)
            await _say(page, "my name is Ada")
            # The deploy: the load balancer sends newcomers to the next relay (it sees
            # /readyz fail), then the old one drains.
            switch.app = create_app(second)
            assert await first.drain(within=10) == 1
            await page.wait_for("glState.reconnects === 1 && glState.status === 'open'", 30)
            await second.wait_until(lambda: second.stats.accepted == 1, within=30)
            assert await page.evaluate("glState.conversation") == cid
            await _say(page, "what did I say")
            text = await page.evaluate(TRANSCRIPT)
            assert "my name is Ada" in text.split("what did I say", 1)[1], text
            assert await page.evaluate("glState.closeCode") == 4012
            exceptions = [c for c in page.console if c.startswith("exception")]
            assert not exceptions, exceptions
        assert first.stats.moved == 1
        texts = _user_texts(server)
        assert texts.count("my name is Ada") == 1 and texts.count("what did I say") == 1


async def _only_record_ids(store: SqliteStore) -> list[str]:
    import sqlite3

    with sqlite3.connect(store.path) as db:
        (key,) = [row[0] for row in db.execute("SELECT id FROM gl_records")]
    record = await store.load(key)
    assert record is not None
    return record.text_ids


@pytest.mark.timeout(120)
async def test_the_page_keeps_texts_until_acknowledged_and_a_resent_one_is_not_doubled(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "conversations.db")
    async with FakeLiveServer(reply_chunks=5) as server:
        first = Relay(fake_config(server), authorize=_tester, store=store)
        second = Relay(fake_config(server), authorize=_tester, store=store)
        switch = _Switch(create_app(first))
        async with (
            running(switch, limits=first.limits) as base,
            chromium_page(
                base + "/?autostart=1&raw=1", tmp_path / "profile", _flags(tmp_path)
            ) as page,
        ):
            await page.wait_for("window.glState && glState.conversation", within=30)
            await _say(page, "my name is Ada")
            await page.wait_for("glState.pendingTexts.length === 0", within=10)
            (tid,) = await _only_record_ids(store)
            # As if the relay had saved the text and died before its text_ack arrived:
            # the page still holds it when it moves to the next relay.
            await page.evaluate(
                f"glState.pendingTexts.push({{id: {tid!r}, text: 'my name is Ada'}})"
            )
            switch.app = create_app(second)
            assert await first.drain(within=10) == 1
            await page.wait_for("glState.reconnects === 1 && glState.status === 'open'", 30)
            # The re-sent text is acknowledged as a duplicate and leaves the page's list.
            await page.wait_for("glState.pendingTexts.length === 0", within=10)
            await _say(page, "what did I say")
            exceptions = [c for c in page.console if c.startswith("exception")]
            assert not exceptions, exceptions
        assert second.stats.duplicate_texts == 1
        texts = _user_texts(server)
        assert texts.count("my name is Ada") == 1 and texts.count("what did I say") == 1
