"""Reprs that help: events show sizes and durations (never payloads); meters show totals."""

from __future__ import annotations

from gemini_live import events as ev
from gemini_live.metrics import LatencyTracker, UsageMeter
from gemini_live.types import Blob, FunctionCall, Part, UsageMetadata


def test_audio_shows_size_and_duration_not_bytes() -> None:
    r = repr(ev.ModelAudio(b"\x01\x02" * 2400))
    assert r == "ModelAudio(4800 bytes, 100.0 ms at 24000 Hz)"
    assert repr(ev.ModelAudio(b"\x00" * 320, 16000)) == "ModelAudio(320 bytes, 10.0 ms at 16000 Hz)"


def test_long_text_is_cut_with_its_length() -> None:
    r = repr(ev.ModelText("word " * 100))
    assert r.startswith("ModelText('word word") and r.endswith("… (500 chars))")
    assert len(r) < 100
    assert repr(ev.ModelText("hmm", thought=True)) == "ModelText('hmm', thought)"
    assert repr(ev.OutputTranscription("Hi", True)) == "OutputTranscription('Hi', finished)"
    assert repr(ev.InputTranscription("a", interim=True)) == "InputTranscription('a', interim)"


def test_parts_tool_calls_usage_and_handles() -> None:
    blob = Blob.of(b"\x89PNG" + bytes(96), "image/png")
    assert (
        repr(ev.ModelPart(Part(inline_data=blob))) == "ModelPart(inline_data image/png, 100 bytes)"
    )
    call = FunctionCall(name="get_weather", id="c1", args={"city": "Paris"})
    assert repr(ev.ToolCall((call,))) == "ToolCall(get_weather(1 arg id=c1))"
    usage = UsageMetadata(prompt_token_count=3, candidates_token_count=4, total_token_count=7)
    assert repr(ev.Usage(usage)) == "Usage(prompt=3, response=4, total=7)"
    r = repr(ev.SessionResumptionUpdate("secret-resumption-handle", True, 4))
    assert "secret" not in r and "<24 chars>" in r
    assert repr(ev.Grounding({"webSearchQueries": ["x"]})) == "Grounding(keys=['webSearchQueries'])"


def test_meters_show_their_totals() -> None:
    meter = UsageMeter()
    assert repr(meter) == "<UsageMeter 0 turns: prompt 0 · response 0 · total 0>"
    meter.add(UsageMetadata(prompt_token_count=10, response_token_count=5, total_token_count=15))
    meter.turn_complete()
    assert repr(meter) == "<UsageMeter 1 turn: prompt 10 · response 5 · total 15>"

    tracker = LatencyTracker(clock=lambda: 0.0)
    assert repr(tracker) == "<LatencyTracker 0 turns>"
    tracker.mark_user_input(1.0)
    assert repr(tracker) == "<LatencyTracker 0 turns, 1 pending>"
    tracker.on_event(ev.ModelAudio(b"\x00\x00"), 1.25)
    tracker.on_event(ev.TurnComplete(), 1.5)
    assert repr(tracker) == (
        "<LatencyTracker 1 turn: avg first audio 250 ms · avg turn complete 500 ms>"
    )
