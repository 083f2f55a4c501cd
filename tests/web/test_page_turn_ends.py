"""The voice page after its worker died between the save that covered a turn and that
turn's ``turn_complete`` (headless Chromium): on the next connection it names the text
still waiting for its turn end, and the relay that took over sends that turn end from the
stored record; the text is not answered again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gemini_live.testing import FakeLiveServer
from gemini_live.web import Relay, create_app, running

from .cdp import chromium_page, find_chromium
from .conftest import fake_config
from .test_page_rejoin import _flags, _Switch, _tester, _user_texts
from .test_relay_rejoin_turns import DeadWorkerStore, KillAtTurnEnd

pytestmark = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("CI"),  # in CI a missing browser fails
    reason="chromium is not installed: run .ci/install-browser (apt-get install chromium)",
)


@pytest.mark.timeout(120)
async def test_the_page_gets_the_turn_end_its_dead_worker_never_wrote(tmp_path: Path) -> None:
    store = DeadWorkerStore()
    async with FakeLiveServer(reply_chunks=5) as server:
        first = Relay(fake_config(server), authorize=_tester, store=store)
        second = Relay(fake_config(server), authorize=_tester, store=store)
        worker = KillAtTurnEnd(create_app(first), store)
        switch = _Switch(worker)
        async with (
            running(switch, limits=first.limits) as base,
            chromium_page(
                base + "/?autostart=1&raw=1", tmp_path / "profile", _flags(tmp_path)
            ) as page,
        ):
            cid = await page.wait_for("window.glState && glState.conversation", within=30)
            await page.evaluate(
                "document.getElementById('text').value = 'my name is Ada';"
                " document.getElementById('textform').requestSubmit()"
            )
            # Acknowledged; the answer is shown; the worker dies writing the turn end.
            await page.wait_for("glState.awaitingTurns.length === 1", within=20)
            await first.wait_until(lambda: len(first.finished) == 1, within=20)
            assert worker.killed
            await page.wait_for("glState.status !== 'open'", within=20)
            assert await page.evaluate("glState.turns") == 0
            # The next worker on the same store; the user presses Start again.
            store.dead = False
            switch.app = create_app(second)
            await page.evaluate("document.getElementById('start').click()")
            await page.wait_for("glState.turns === 1 && glState.awaitingTurns.length === 0", 30)
            assert await page.evaluate("glState.conversation") == cid
            assert second.stats.turn_ends_replayed == 1
            exceptions = [c for c in page.console if c.startswith("exception")]
            assert not exceptions, exceptions
        assert _user_texts(server).count("my name is Ada") == 1
