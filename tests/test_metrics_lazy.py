"""The metrics' shortcuts (per-frame audio and transcript paths, repeated snapshots, lazily
folded session total) give exactly what the plain per-event path gives, on random event
sequences."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gemini_live import events as ev
from gemini_live.metrics import (
    LatencyTracker,
    UsageMeter,
    observe,
    observe_audio,
    observe_input,
    observe_transcript,
)
from gemini_live.types import UsageMetadata
from gemini_live.types.server import ModalityTokenCount
from strategies import profile

_AUDIO = ev.ModelAudio(b"\x00\x00" * 480, 24000)


def _usage(prompt: int, response: int) -> ev.Usage:
    return ev.Usage(
        UsageMetadata(
            prompt_token_count=prompt,
            response_token_count=response,
            total_token_count=prompt + response,
            prompt_tokens_details=[ModalityTokenCount(modality="AUDIO", token_count=prompt)],
        )
    )


# A small pool, so that the same snapshot often comes again (as the service repeats it).
_USAGES = [_usage(p, r) for p, r in ((10, 5), (10, 5), (12, 5), (3, 1), (40, 20), (0, 0))]

_STEPS = st.lists(
    st.one_of(
        st.just(("audio",)),
        st.just(("input",)),
        st.just(("turn",)),
        st.tuples(st.just("text"), st.sampled_from(("hi", "", " there"))),
        st.tuples(st.just("usage"), st.integers(0, len(_USAGES) - 1)),
    ),
    max_size=60,
)


def _run(steps: list[tuple[Any, ...]], mode: str, fast: bool) -> tuple[object, ...]:
    meter = UsageMeter(cumulative=mode)  # type: ignore[arg-type]
    tracker = LatencyTracker(clock=lambda: 0.0)
    for i, step in enumerate(steps):
        now = float(i)
        kind = step[0]
        if kind == "audio":
            if fast:
                observe_audio(meter, tracker, _AUDIO, now)
            else:
                observe(meter, tracker, _AUDIO, now)
        elif kind == "input":
            observe_input(meter, tracker, now)
        elif kind == "turn":
            observe(meter, tracker, ev.TurnComplete(), now)
        elif kind == "text":
            words = ev.OutputTranscription(step[1])
            if fast:
                observe_transcript(meter, tracker, words, now)
            else:
                observe(meter, tracker, words, now)
        else:
            if not fast:
                meter._last_meta = None  # the reference never takes the repeat shortcut
            observe(meter, tracker, _USAGES[step[1]], now)
        if not fast:
            _ = meter.session  # the reference folds the session total at every step
    turns = [(t.index, t.tokens, t.snapshots, t.complete) for t in meter.turns]
    lat = [
        (t.index, t.input_end, t.first_audio, t.first_text, t.turn_complete, t.audio_bytes)
        for t in tracker.turns
    ]
    pending = tracker.pending
    return (
        turns,
        meter.session,
        meter.snapshots,
        lat,
        None if pending is None else (pending.first_audio, pending.first_text, pending.audio_bytes),
    )


@profile(max_examples=300)
@given(steps=_STEPS, mode=st.sampled_from(("turn", "session")))
def test_metric_shortcuts_match_the_plain_path(steps: list[tuple[Any, ...]], mode: str) -> None:
    assert _run(steps, mode, fast=True) == _run(steps, mode, fast=False)


def test_session_total_is_folded_in_bounded_batches() -> None:
    meter = UsageMeter()
    for i in range(200):
        meter.add(_usage(i + 1, 1))
        meter.turn_complete()
        meter.start_turn()
    assert len(meter._session_changes) < 64
    assert meter.session.prompt == sum(range(1, 201))
    assert not meter._session_changes
