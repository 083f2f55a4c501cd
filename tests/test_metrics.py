"""UsageMeter and LatencyTracker: recorded snapshot sequences, a fake clock, no event loop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gemini_live import events as ev
from gemini_live.codec import decode_events
from gemini_live.metrics import (
    LatencyTracker,
    PriceTable,
    TokenCounts,
    UsageMeter,
    observe,
    observe_input,
)
from gemini_live.types import FunctionCall, UsageMetadata

# --------------------------------------------------------------------------- helpers


def frames(*objs: dict[str, Any]) -> list[ev.Event]:
    """Decode wire frames (as the service sends them) into the session's events."""
    out: list[ev.Event] = []
    for obj in objs:
        out.extend(decode_events(json.dumps(obj).encode()))
    return out


def audio_frame(transcript: str | None = None) -> dict[str, Any]:
    sc: dict[str, Any] = {
        "modelTurn": {
            "parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAA="}}]
        }
    }
    if transcript:
        sc["outputTranscription"] = {"text": transcript}
    return {"serverContent": sc}


def gemini_usage(prompt: int, response: int, *, audio_in: int = 0) -> dict[str, Any]:
    u: dict[str, Any] = {
        "promptTokenCount": prompt,
        "responseTokenCount": response,
        "totalTokenCount": prompt + response,
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response}],
    }
    if audio_in:
        u["promptTokensDetails"] = [
            {"modality": "AUDIO", "tokenCount": audio_in},
            {"modality": "TEXT", "tokenCount": prompt - audio_in},
        ]
    return u


def vertex_usage(prompt: int, response: int) -> dict[str, Any]:
    # Vertex names the response side "candidates" and int64s may come as strings.
    return {
        "promptTokenCount": str(prompt),
        "candidatesTokenCount": str(response),
        "totalTokenCount": str(prompt + response),
        "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": str(response)}],
        "trafficType": "ON_DEMAND",
    }


def feed(meter: UsageMeter, events: list[ev.Event]) -> None:
    for e in events:
        observe(meter, None, e, 0.0)


# --------------------------------------------------------------------------- usage


def gemini_turn(prompt: int, responses: list[int]) -> list[ev.Event]:
    """A Gemini API turn: usage on several frames, growing; the last one with turnComplete."""
    seq: list[dict[str, Any]] = [
        {**audio_frame("x"), "usageMetadata": gemini_usage(prompt, r)} for r in responses[:-1]
    ]
    seq.append({"serverContent": {"generationComplete": True}})
    seq.append(
        {
            "serverContent": {"turnComplete": True},
            "usageMetadata": gemini_usage(prompt, responses[-1], audio_in=prompt // 2),
        }
    )
    seq.append({"sessionResumptionUpdate": {"newHandle": "h", "resumable": True}})
    return frames(*seq)


def test_gemini_growing_snapshots_are_not_summed() -> None:
    meter = UsageMeter()
    observe_input(meter, None, 0.0)
    feed(meter, gemini_turn(100, [5, 12, 20]))
    last = meter.last_turn
    assert last is not None and last.complete
    assert last.snapshots == 3
    assert (last.tokens.prompt, last.tokens.response, last.tokens.total) == (100, 20, 120)
    assert last.tokens.response_by_modality == {"AUDIO": 20}
    assert last.tokens.prompt_by_modality == {"AUDIO": 50, "TEXT": 50}
    assert meter.session.total == 120
    assert len(meter.turns) == 1


def test_session_total_is_sum_of_turn_finals() -> None:
    meter = UsageMeter()
    observe_input(meter, None, 0.0)
    feed(meter, gemini_turn(100, [5, 12, 20]))
    observe_input(meter, None, 1.0)
    feed(meter, gemini_turn(140, [3, 30]))
    assert [t.tokens.total for t in meter.turns] == [120, 170]
    s = meter.session
    assert (s.prompt, s.response, s.total) == (240, 50, 290)
    assert s.response_by_modality == {"AUDIO": 50}
    assert meter.last_turn is meter.turns[-1]


def test_repeated_identical_snapshots_are_counted_once() -> None:
    meter = UsageMeter()
    observe_input(meter, None, 0.0)
    u = {"usageMetadata": gemini_usage(10, 4)}
    feed(meter, frames(u, u, u, {"serverContent": {"turnComplete": True}, **u}, u))
    assert meter.snapshots == 5
    assert len(meter.turns) == 1
    assert meter.session.total == 14
    assert meter.turns[0].snapshots == 5


def test_stale_smaller_snapshot_does_not_reduce_a_turn() -> None:
    meter = UsageMeter()
    meter.add(UsageMetadata(prompt_token_count=10, response_token_count=9, total_token_count=19))
    meter.add(UsageMetadata(prompt_token_count=10, response_token_count=4, total_token_count=14))
    assert meter.session.response == 9
    assert meter.session.total == 19


def test_vertex_candidates_names_are_normalised() -> None:
    meter = UsageMeter()
    observe_input(meter, None, 0.0)
    feed(
        meter,
        frames(
            {**audio_frame(), "usageMetadata": vertex_usage(10, 3)},
            {**audio_frame(), "usageMetadata": vertex_usage(10, 7)},
            {"serverContent": {"turnComplete": True}, "usageMetadata": vertex_usage(10, 7)},
        ),
    )
    observe_input(meter, None, 1.0)
    feed(
        meter,
        frames({"serverContent": {"turnComplete": True}, "usageMetadata": vertex_usage(30, 5)}),
    )
    assert [(t.tokens.prompt, t.tokens.response) for t in meter.turns] == [(10, 7), (30, 5)]
    assert meter.session.response == 12
    assert meter.session.response_by_modality == {"AUDIO": 12}
    assert meter.session.total == 52


def test_golden_vertex_frame(load_frame: Any) -> None:
    (usage,) = [
        e for e in decode_events(load_frame("usage_vertex_candidates")) if isinstance(e, ev.Usage)
    ]
    t = TokenCounts.from_usage(usage.metadata)
    assert (t.prompt, t.response, t.total) == (10, 7, 17)
    assert t.response_by_modality == {"AUDIO": 7}


def test_golden_turn_complete_frame(load_frame: Any) -> None:
    meter = UsageMeter()
    feed(meter, decode_events(load_frame("turn_complete_usage")))
    last = meter.last_turn
    assert last is not None
    assert (last.tokens.prompt, last.tokens.response, last.tokens.total) == (120, 45, 165)
    assert last.tokens.prompt_by_modality == {"AUDIO": 100, "TEXT": 20}


def test_usage_trailing_turn_complete_belongs_to_that_turn() -> None:
    # turnComplete and usageMetadata share a frame; the event order puts Usage after
    # TurnComplete. A usage-only frame right after still belongs to the closed turn.
    meter = UsageMeter()
    observe_input(meter, None, 0.0)
    feed(
        meter,
        frames(
            {**audio_frame(), "usageMetadata": gemini_usage(10, 2)},
            {"serverContent": {"turnComplete": True}, "usageMetadata": gemini_usage(10, 6)},
            {"usageMetadata": gemini_usage(10, 6)},
        ),
    )
    assert len(meter.turns) == 1
    assert meter.session.total == 16
    # The next turn's first snapshot is smaller than the closed turn's: a new turn,
    # even without an explicit start (a model-initiated turn).
    feed(meter, frames({"usageMetadata": gemini_usage(3, 1)}))
    assert len(meter.turns) == 2
    assert meter.session.total == 20


def test_usage_after_new_activity_opens_a_new_turn() -> None:
    meter = UsageMeter()
    feed(
        meter,
        frames({"serverContent": {"turnComplete": True}, "usageMetadata": gemini_usage(10, 6)}),
    )
    # 3.1 sends a usage-only serverContent before the first modelTurn of a turn.
    observe_input(meter, None, 1.0)
    feed(meter, frames({"usageMetadata": gemini_usage(20, 0)}, audio_frame()))
    feed(
        meter,
        frames({"serverContent": {"turnComplete": True}, "usageMetadata": gemini_usage(20, 8)}),
    )
    assert [t.tokens.total for t in meter.turns] == [16, 28]
    assert meter.session.total == 44


def test_turn_without_usage_is_recorded_empty() -> None:
    meter = UsageMeter()
    observe_input(meter, None, 0.0)
    feed(meter, frames(audio_frame(), {"serverContent": {"turnComplete": True}}))
    assert meter.last_turn is not None
    assert meter.last_turn.tokens == TokenCounts()
    assert meter.session.total == 0


def test_thoughts_and_tool_use_tokens() -> None:
    meter = UsageMeter()
    meter.add(
        UsageMetadata(
            prompt_token_count=10,
            response_token_count=5,
            thoughts_token_count=7,
            tool_use_prompt_token_count=3,
            cached_content_token_count=2,
        )
    )
    s = meter.session
    assert (s.thoughts, s.tool_use_prompt, s.cached) == (7, 3, 2)
    assert s.total == 25  # derived when totalTokenCount is absent
    assert "thoughts 7" in s.summary() and "tool-use 3" in s.summary()


def test_session_cumulative_mode_takes_deltas() -> None:
    # A server whose snapshots keep growing over the whole session.
    meter = UsageMeter(cumulative="session")
    observe_input(meter, None, 0.0)
    feed(
        meter,
        frames({"serverContent": {"turnComplete": True}, "usageMetadata": gemini_usage(10, 3)}),
    )
    observe_input(meter, None, 1.0)
    feed(
        meter,
        frames(
            {"usageMetadata": gemini_usage(25, 5)},
            {"serverContent": {"turnComplete": True}, "usageMetadata": gemini_usage(25, 6)},
        ),
    )
    assert [(t.tokens.prompt, t.tokens.response) for t in meter.turns] == [(10, 3), (15, 3)]
    assert (meter.session.prompt, meter.session.response) == (25, 6)


def test_cost_estimate_from_injected_prices() -> None:
    prices = PriceTable(input={"TEXT": 1.0, "AUDIO": 3.0}, output={"TEXT": 4.0, "AUDIO": 12.0})
    meter = UsageMeter(prices=prices)
    assert meter.cost() == 0.0
    feed(
        meter,
        frames(
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": gemini_usage(1_000_000, 500_000, audio_in=600_000),
            }
        ),
    )
    # 600k audio in * 3 + 400k text in * 1 + 500k audio out * 12 (per 1M)
    assert meter.cost() == pytest.approx(1.8 + 0.4 + 6.0)
    assert meter.last_turn is not None
    assert meter.cost(meter.last_turn) == pytest.approx(8.2)
    assert UsageMeter().cost() is None


def test_max_turns_bounds_history_but_not_totals() -> None:
    meter = UsageMeter(max_turns=2)
    for _ in range(5):
        observe_input(meter, None, 0.0)
        feed(
            meter,
            frames({"serverContent": {"turnComplete": True}, "usageMetadata": gemini_usage(1, 1)}),
        )
    assert len(meter.turns) == 2
    assert meter.session.total == 10


# --------------------------------------------------------------------------- latency


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t


def run(
    tracker: LatencyTracker, clock: FakeClock, script: list[tuple[float, ev.Event | str]]
) -> None:
    """``(dt, event)`` steps; the string "input" marks a user send."""
    for dt, item in script:
        clock.advance(dt)
        if isinstance(item, str):
            tracker.mark_user_input()
        else:
            tracker.on_event(item)


AUDIO = ev.ModelAudio(b"\0\0" * 480)


def test_latency_from_last_input_to_first_audio_text_and_complete() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock=clock)
    run(
        tracker,
        clock,
        [
            (0.0, "input"),
            (0.02, "input"),
            (0.02, "input"),  # the last send before the reply counts
            (0.1, ev.InputTranscription("hello", finished=True)),
            (0.15, AUDIO),
            (0.05, ev.OutputTranscription("Hi")),
            (0.02, AUDIO),
            (0.3, ev.TurnComplete()),
        ],
    )
    t = tracker.last_turn
    assert t is not None
    assert t.time_to_input_transcription == pytest.approx(0.1)
    assert t.time_to_first_audio == pytest.approx(0.25)
    assert t.time_to_first_text == pytest.approx(0.30)
    assert t.time_to_first_response == pytest.approx(0.25)
    assert t.time_to_turn_complete == pytest.approx(0.62)
    assert t.audio_bytes == 2 * len(AUDIO.data)
    assert "first audio 250 ms" in t.summary()
    assert tracker.pending is None


def test_latency_thought_text_is_ignored_and_model_text_counts() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock=clock)
    run(
        tracker,
        clock,
        [
            (0.0, "input"),
            (0.1, ev.ModelText("thinking...", thought=True)),
            (0.1, ev.ModelText("Answer")),
            (0.1, ev.TurnComplete()),
        ],
    )
    t = tracker.last_turn
    assert t is not None
    assert t.time_to_first_text == pytest.approx(0.2)
    assert t.time_to_first_audio is None


def test_latency_input_while_replying_starts_the_next_turn() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock=clock)
    run(
        tracker,
        clock,
        [
            (0.0, "input"),
            (0.2, AUDIO),
            (0.1, "input"),  # typed while the reply streams
            (0.1, AUDIO),
            (0.1, ev.TurnComplete()),
            (0.3, AUDIO),
            (0.1, ev.TurnComplete()),
        ],
    )
    first, second = tracker.turns
    assert first.time_to_first_audio == pytest.approx(0.2)
    assert first.time_to_turn_complete == pytest.approx(0.5)
    assert second.time_to_first_audio == pytest.approx(0.5)
    assert second.time_to_turn_complete == pytest.approx(0.6)


def test_latency_tool_turn_spans_the_tool_round_trip() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock=clock)
    call = ev.ToolCall((FunctionCall(id="c1", name="get_weather", args={}),))
    run(
        tracker,
        clock,
        [
            (0.0, "input"),
            (0.1, call),
            (0.05, ev.TurnComplete()),  # some models close the tool-call turn
            (0.2, AUDIO),
            (0.1, ev.TurnComplete()),
        ],
    )
    (t,) = tracker.turns
    assert t.time_to_tool_call == pytest.approx(0.1)
    assert t.time_to_first_audio == pytest.approx(0.35)
    assert t.time_to_turn_complete == pytest.approx(0.45)
    assert "tool call 100 ms" in t.summary()


def test_latency_unanswered_tool_turn_is_closed_by_new_input() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock=clock)
    call = ev.ToolCall((FunctionCall(id="c1", name="f", args={}),))
    run(
        tracker,
        clock,
        [
            (0.0, "input"),
            (0.1, call),
            (0.1, ev.TurnComplete()),
            (1.0, "input"),
            (0.2, AUDIO),
            (0.1, ev.TurnComplete()),
        ],
    )
    first, second = tracker.turns
    assert first.first_audio is None and first.time_to_turn_complete == pytest.approx(0.2)
    assert second.time_to_first_audio == pytest.approx(0.2)


def test_latency_model_initiated_turn_has_no_reference() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock=clock)
    run(tracker, clock, [(0.0, AUDIO), (0.1, ev.Interrupted()), (0.1, ev.TurnComplete())])
    t = tracker.last_turn
    assert t is not None and t.interrupted
    assert t.time_to_first_audio is None
    assert "interrupted" in t.summary()


def test_latency_activity_end_and_averages() -> None:
    clock = FakeClock()
    tracker = LatencyTracker(clock=clock)
    for ttfa in (0.2, 0.4):
        run(
            tracker,
            clock,
            [
                (0.0, "input"),
                (0.05, ev.VoiceActivity("ACTIVITY_END")),
                (ttfa - 0.05, AUDIO),
                (0.1, ev.TurnComplete()),
            ],
        )
    assert tracker.turns[0].time_to_activity_end == pytest.approx(0.05)
    avg = tracker.averages()
    assert avg["time_to_first_audio"] == pytest.approx(0.3)
    assert "time_to_first_text" not in avg


def test_turn_complete_without_pending_turn_is_ignored() -> None:
    tracker = LatencyTracker(clock=FakeClock())
    assert tracker.on_event(ev.TurnComplete()) is None
    assert tracker.last_turn is None


def test_observe_routes_to_both() -> None:
    clock = FakeClock()
    meter, tracker = UsageMeter(), LatencyTracker(clock=clock)
    observe_input(meter, tracker, clock())
    for frame in (
        {**audio_frame("Hi"), "usageMetadata": gemini_usage(5, 1)},
        {"serverContent": {"turnComplete": True}, "usageMetadata": gemini_usage(5, 2)},
    ):
        now = clock.advance(0.1)
        for e in frames(frame):
            observe(meter, tracker, e, now)
    assert meter.session.total == 7
    t = tracker.last_turn
    assert t is not None
    assert t.time_to_first_audio == pytest.approx(0.1)
    assert t.time_to_first_text == pytest.approx(0.1)
    assert t.time_to_turn_complete == pytest.approx(0.2)


def _lagged() -> Iterator[ev.Event]:
    yield ev.Lagged(3)
    yield ev.Reconnecting(1, 0.0, "goAway")
    yield ev.Resumed(True)


def test_lifecycle_events_are_ignored() -> None:
    meter, tracker = UsageMeter(), LatencyTracker(clock=FakeClock())
    for e in _lagged():
        observe(meter, tracker, e, 0.0)
    assert not meter.turns and not tracker.turns and tracker.pending is None


def test_observe_audio_matches_observe() -> None:
    from gemini_live.metrics import observe, observe_audio

    audio = ev.ModelAudio(b"\x00\x00" * 960, 24000)
    results = []
    for fn in (observe, observe_audio):
        meter, tracker = UsageMeter(), LatencyTracker(clock=lambda: 0.0)
        tracker.mark_user_input(1.0)
        fn(meter, tracker, audio, 1.25)
        fn(meter, tracker, audio, 1.5)
        observe(meter, tracker, ev.TurnComplete(), 2.0)
        last = tracker.last_turn
        assert last is not None
        results.append((last.time_to_first_audio, last.audio_bytes, meter.current))
    assert results[0] == results[1]
    assert results[0][0] == pytest.approx(0.25)


def test_observe_input_inlined_does_what_start_turn_and_mark_user_input_do() -> None:
    """The per-input shortcut agrees with the methods it stands for, in every state."""
    import random

    from gemini_live.metrics import LatencyTracker, UsageMeter, observe, observe_input

    kinds: list[ev.Event] = [
        ev.ModelAudio(b"\x00\x00" * 10),
        ev.OutputTranscription("hi"),
        ev.TurnComplete(),
        ev.ToolCall((FunctionCall(id="c", name="f"),)),
        ev.Interrupted(),
        ev.Usage(UsageMetadata(prompt_token_count=3, total_token_count=5)),
    ]
    for seed in range(20):
        rng = random.Random(seed)
        a = (UsageMeter(), LatencyTracker())
        b = (UsageMeter(), LatencyTracker())
        for step in range(200):
            now = float(step)
            if rng.random() < 0.4:
                observe_input(a[0], a[1], now)
                b[0].start_turn()
                b[1].mark_user_input(now)
            else:
                event = rng.choice(kinds)
                observe(a[0], a[1], event, now)
                observe(b[0], b[1], event, now)
            assert list(a[0].turns) == list(b[0].turns)
            assert a[0]._grace == b[0]._grace
            assert list(a[1].turns) == list(b[1].turns)
            assert a[1]._pending == b[1]._pending
            assert a[1]._next_input == b[1]._next_input
