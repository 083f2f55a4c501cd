"""Interaction-level turns (3.8 Extended Thinking): metrics, the CLI Conversation, watchdog.

The Extended Thinking conversation runs on FakeLiveServer with ``auto_reply=False``; the
test plays the model by sending hand-made frames through the fake's public ``send``:
filler speech closed by ``turnComplete`` + ``interactionStatus: IN_PROGRESS``, then the
answer closed by ``IDLE``.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.cli._runtime import Conversation, Timeline
from gemini_live.codec import decode_events
from gemini_live.metrics import LatencyTracker, UsageMeter, observe, observe_input
from gemini_live.testing import FakeLiveServer
from gemini_live.watchdog import DEFAULT_INTERACTION_TIMEOUT, InteractionWatchdog

ET_MODEL = "models/gemini-3.8-live-extended-thinking"
PCM_B64 = "AAAAAAAAAAA="  # 8 bytes of silence


def audio(transcript: str) -> dict[str, Any]:
    return {
        "serverContent": {
            "modelTurn": {
                "parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": PCM_B64}}]
            },
            "outputTranscription": {"text": transcript},
        }
    }


def turn_complete(status: str | None, prompt: int, response: int) -> dict[str, Any]:
    sc: dict[str, Any] = {"turnComplete": True}
    if status is not None:
        sc["interactionStatus"] = status
    return {
        "serverContent": sc,
        "usageMetadata": {
            "promptTokenCount": prompt,
            "responseTokenCount": response,
            "totalTokenCount": prompt + response,
        },
    }


#: One Extended Thinking interaction, as the service sends it.
ET_FRAMES: list[dict[str, Any]] = [
    audio("Let me look into that. "),
    turn_complete("IN_PROGRESS", 10, 4),
    audio("Still checking. "),
    turn_complete("IN_PROGRESS", 12, 7),
    audio("It is sunny in Paris."),
    {"serverContent": {"generationComplete": True}},
    turn_complete("IDLE", 14, 12),
]


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


# --------------------------------------------------------------------------- pure metrics


def test_metrics_count_one_turn_per_interaction() -> None:
    meter, tracker = UsageMeter(), LatencyTracker()
    observe_input(meter, tracker, 0.0)
    t = 0.0
    idle_at = None
    for frame in ET_FRAMES:
        for event in decode_events(encode(frame)):
            t += 0.5
            observe(meter, tracker, event, t)
            if isinstance(event, ev.TurnComplete) and event.interaction_done:
                idle_at = t
    assert len(tracker.turns) == 1
    turn = tracker.last_turn
    assert turn is not None and turn.time_to_first_audio == 0.5
    assert turn.time_to_turn_complete == idle_at
    assert [u.complete for u in meter.turns] == [True]
    assert meter.session.prompt == 14 and meter.session.response == 12


def test_metrics_end_the_interaction_at_the_watchdog_timeout() -> None:
    meter, tracker = UsageMeter(), LatencyTracker()
    observe_input(meter, tracker, 0.0)
    for frame in ET_FRAMES[:2]:
        for event in decode_events(encode(frame)):
            observe(meter, tracker, event, 1.0)
    assert tracker.pending is not None and not tracker.turns
    observe(meter, tracker, ev.InteractionTimeout(30.0), 31.0)
    assert len(tracker.turns) == 1 and tracker.turns[0].time_to_turn_complete == 31.0
    assert meter.last_turn is not None and meter.last_turn.complete


def test_older_models_end_the_turn_at_turn_complete_without_status() -> None:
    tracker = LatencyTracker()
    tracker.mark_user_input(0.0)
    for frame in (audio("hi"), turn_complete(None, 1, 1)):
        for event in decode_events(encode(frame)):
            tracker.on_event(event, 1.0)
    assert len(tracker.turns) == 1


# --------------------------------------------------------------------------- watchdog


def test_watchdog_arms_on_in_progress_and_disarms_on_idle() -> None:
    dog = InteractionWatchdog()
    assert dog.timeout == DEFAULT_INTERACTION_TIMEOUT == 30.0
    dog.observe(ev.ModelAudio(b"\0\0"), 0.0)
    assert dog.deadline() is None  # output alone does not arm it
    dog.observe(ev.TurnComplete(interaction_status="IN_PROGRESS"), 1.0)
    assert dog.armed and dog.deadline() == 31.0
    assert dog.expired(30.9) is None
    dog.observe(ev.OutputTranscription("still here"), 10.0)  # progress pushes it out
    assert dog.deadline() == 40.0
    dog.observe(ev.TurnComplete(interaction_status="IDLE"), 12.0)
    assert dog.deadline() is None and dog.expired(100.0) is None


def test_watchdog_fires_once_when_idle_never_comes() -> None:
    dog = InteractionWatchdog(timeout=5.0)
    dog.observe(ev.TurnComplete(interaction_status="IN_PROGRESS"), 2.0)
    assert dog.expired(7.5) == ev.InteractionTimeout(5.5)
    assert dog.expired(100.0) is None and not dog.armed


@pytest.mark.parametrize(
    "event",
    [
        ev.TurnComplete(),  # no status: older models, ends the interaction
        ev.TurnComplete(interaction_status="REQUIRES_ACTION"),
        ev.Closed(1000, "bye"),
        ev.Resumed(False),
        ev.InteractionTimeout(1.0),
    ],
)
def test_watchdog_disarms(event: ev.Event) -> None:
    dog = InteractionWatchdog(timeout=5.0)
    dog.observe(ev.TurnComplete(interaction_status="IN_PROGRESS"), 0.0)
    dog.observe(event, 1.0)
    assert dog.deadline() is None


def test_watchdog_keeps_watching_across_a_restored_resume_and_can_be_off() -> None:
    dog = InteractionWatchdog(timeout=5.0)
    dog.observe(ev.TurnComplete(interaction_status="IN_PROGRESS"), 0.0)
    dog.observe(ev.Resumed(True), 1.0)
    assert dog.deadline() == 5.0
    off = InteractionWatchdog(timeout=None)
    off.observe(ev.TurnComplete(interaction_status="IN_PROGRESS"), 0.0)
    assert off.deadline() is None and off.expired(1e9) is None


# --------------------------------------------------------------------------- end to end


async def test_extended_thinking_conversation_on_the_fake_server() -> None:
    async with (
        asyncio.timeout(20),
        FakeLiveServer(auto_reply=False, validate_frames=True) as server,
    ):
        config = gl.build_config(model=ET_MODEL, url=server.url, output_audio_transcription=True)
        session = await gl.connect(config)
        try:
            out = io.StringIO()
            dog = InteractionWatchdog(timeout=30.0)
            seen: list[ev.Event] = []
            generation_complete = asyncio.Event()

            def watch(event: ev.Event) -> None:  # called after the Conversation's bookkeeping
                seen.append(event)
                dog.observe(event, 0.0)
                if isinstance(event, ev.GenerationComplete):
                    generation_complete.set()

            conv = Conversation(session, Timeline(out), on_event=watch)
            async with conv:
                fut = conv.expect_turn()
                await session.send_text("weather in Paris?")
                await server.wait_for_messages(1)
                for frame in ET_FRAMES[:-1]:
                    await server.send(encode(frame))
                await generation_complete.wait()
                # Two IN_PROGRESS turn ends and generationComplete arrived: not over yet.
                assert not fut.done()
                assert dog.deadline() == 30.0
                await server.send(encode(ET_FRAMES[-1]))
                reply = await conv.wait(fut, 10)
            assert reply.text == "Let me look into that. Still checking. It is sunny in Paris."
            assert reply.audio_chunks == 3
            assert len(conv.turns) == 1
            assert sum(isinstance(e, ev.TurnComplete) for e in seen) == 3
            assert dog.deadline() is None  # IDLE disarmed the watchdog
            latency, usage = session.latency, session.usage
            assert latency is not None and usage is not None
            assert len(latency.turns) == 1
            assert reply.latency is latency.last_turn
            assert [u.complete for u in usage.turns] == [True]
            assert usage.session.response == 12
        finally:
            await session.close()


async def test_watchdog_fires_when_idle_never_comes_on_the_fake_server() -> None:
    async with asyncio.timeout(20), FakeLiveServer(auto_reply=False) as server:
        session = await gl.connect(
            gl.build_config(model=ET_MODEL, url=server.url, output_audio_transcription=True)
        )
        try:
            dog = InteractionWatchdog(timeout=30.0)
            clock = 100.0  # a fake clock: the test decides when the deadline has passed
            in_progress = asyncio.Event()

            def watch(event: ev.Event) -> None:  # called after the Conversation's bookkeeping
                dog.observe(event, clock)
                if isinstance(event, ev.TurnComplete) and not event.interaction_done:
                    in_progress.set()

            conv = Conversation(session, Timeline(io.StringIO()), on_event=watch)
            async with conv:
                fut = conv.expect_turn()
                await session.send_text("long task")
                await server.wait_for_messages(1)
                await server.send(encode(ET_FRAMES[0]))
                await server.send(encode(ET_FRAMES[1]))
                await in_progress.wait()
                assert not fut.done()
                # What the session's timer does: at the deadline, ask the watchdog.
                assert dog.deadline() == 130.0
                assert dog.expired(129.0) is None
                timeout = dog.expired(130.0)
                assert timeout == ev.InteractionTimeout(30.0)
                conv._handle(timeout)  # the session emits it to every subscriber
                reply = await conv.wait(fut, 5)
            assert reply.text == "Let me look into that. "
        finally:
            await session.close()
