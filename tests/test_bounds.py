"""Growth bounds of the library core (issue 18 item 5): one oversized history entry, text
still being transcribed without ``turnComplete``, and a transcript segment that never ends.

Each bound is hit on purpose; each test checks both that what is kept stays under the
bound and that a counter says how much was cut.
"""

from __future__ import annotations

import re
import tracemalloc

import pytest

from gemini_live import events as ev
from gemini_live.errors import ConfigError
from gemini_live.history import History
from gemini_live.transcript import Transcript
from gemini_live.types import ClientContent

MODEL_25 = "gemini-2.5-flash-native-audio-preview-09-2025"
MODEL_3 = "gemini-3.1-flash-live-preview"
#: 40 ms of 24 kHz PCM16.
CHUNK = bytes(24000 * 2 // 25)


def _seed_chars(history: History, model: str) -> int:
    seed = history.seed(model, vertex=False)
    total = 0
    for message in seed.messages:
        content = message.client_content
        assert isinstance(content, ClientContent) and isinstance(content.turns, list)
        for turn in content.turns:
            assert isinstance(turn.parts, list)
            total += sum(len(p.text) for p in turn.parts if isinstance(p.text, str))
    return total


@pytest.mark.parametrize("model", [MODEL_25, MODEL_3])
def test_one_oversized_entry_is_cut_so_the_reseed_stays_under_the_bound(model: str) -> None:
    limit = 32_000  # SessionConfig's default history_max_chars
    history = History(max_chars=limit)
    history.add_user_text("hello")
    pasted = "".join(f"line {i} " for i in range(30_000))  # ~225,000 characters
    assert len(pasted) > 200_000
    history.add_user_text(pasted)

    assert history.chars <= limit
    assert all(e.size <= limit for e in history.entries)
    assert history.truncated == 1
    assert history.cut_chars > len(pasted) - limit
    kept = history.entries[-1].text
    # The end is kept (the most recent words), behind a marker that says what was cut.
    assert kept.endswith("line 29999 ")
    marker = re.match(r"\[\u2026 (\d+) characters cut\] ", kept)
    assert marker is not None
    assert int(marker.group(1)) == len(pasted) - (len(kept) - marker.end())
    # The reseed a fresh session would get is under the bound too (plus the blank user
    # turn a 2.5 seed may end with).
    assert _seed_chars(history, model) <= limit + 1


def test_an_oversized_summary_and_amended_reply_are_cut_too() -> None:
    history = History(max_entries=4, max_chars=1000, summarizer=lambda old: "s" * 5000)
    for i in range(10):
        history.add_user_text(f"turn {i} " * 20)
    assert all(e.size <= 1000 for e in history.entries)
    assert history.chars <= 1000
    history.add_model_text("short")
    history.amend_last_model("m" * 50_000)
    assert all(e.size <= 1000 for e in history.entries)
    assert history.chars <= 1000
    assert history.truncated >= 2


def test_text_still_being_transcribed_is_bounded_without_turn_complete() -> None:
    """~1 MiB of transcript fragments and no turnComplete: memory stays flat."""
    history = History(max_chars=32_000)
    fragment = "and then the model kept talking "  # 32 characters
    tracemalloc.start()
    try:
        for _ in range(2_000):  # warm up: reach the bound first
            history.observe(ev.OutputTranscription(fragment))
            history.observe(ev.InputTranscription(fragment))
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(32_000):  # ~1 MiB per speaker
            history.observe(ev.OutputTranscription(fragment))
            history.observe(ev.InputTranscription(fragment))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"pending transcript grew by {grown} bytes"
    assert history.cut_chars >= 2 * 32_000 * len(fragment) - 2 * 32_000
    history.observe(ev.TurnComplete())
    # Each speaker's text became one entry of at most 32,000 characters; together they
    # are above the history bound, so the older (the user's) went.
    (model,) = history.entries
    assert model.role == "model"
    assert model.size <= 32_000
    assert model.text.startswith("[\u2026 ")
    assert model.text.endswith("kept talking")
    assert history.dropped == 1
    assert history.chars <= 32_000


def test_transcript_segment_is_bounded_without_turn_complete() -> None:
    transcript = Transcript(max_segment_chars=10_000)
    fragment = "words words words "  # 18 characters
    n = 60_000  # ~1 MiB of model transcript, 40 ms of audio after each fragment
    for _ in range(n):
        transcript.observe(ev.OutputTranscription(fragment))
        transcript.observe(ev.ModelAudio(CHUNK))
        transcript.observe(ev.InputTranscription(fragment))
    turn = transcript.current
    assert turn is not None
    model, user = turn.model, turn.user
    assert len(model.received_text) <= 10_000
    assert len(model.text) <= 10_000
    assert len(user.text) <= 10_000
    assert model.cut_chars + len(model.received_text) == n * len(fragment)
    assert user.cut_chars + len(user.text) == n * len(fragment)
    assert transcript.cut_chars == model.cut_chars + user.cut_chars
    assert model.audio_seconds == pytest.approx(n * 0.04)

    # Trimming after a cut still works from the kept pieces: 1.02 s before the end of
    # the audio leaves about the last 25.5 fragments (40 ms each) unplayed.
    kept = transcript.trim(model.audio_seconds - 1.02)
    assert model.received_text.startswith(kept)
    unplayed = len(model.received_text) - len(kept)
    assert 24 * len(fragment) <= unplayed <= 27 * len(fragment)  # float drift over 40 min
    # Nothing played at all: nothing was heard.
    assert transcript.trim(0.0) == ""


def test_transcript_bound_must_be_sane() -> None:
    with pytest.raises(ConfigError, match="max_segment_chars"):
        Transcript(max_segment_chars=0)
