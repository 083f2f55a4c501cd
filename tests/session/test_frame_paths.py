"""The session's shortcuts for frames of audio and output transcription give exactly what
the general frame path gives: the same events, history, usage, latencies and watchdog."""

from __future__ import annotations

import gc
import json
import random
import time

import pytest

import gemini_live as gl
from gemini_live import _observe as frame_paths
from gemini_live import events as ev
from gemini_live.protocol import ClientProtocol
from gemini_live.testing import FakeLiveServer

from .conftest import config_for

_AUDIO = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAABAAIAAwA="}}


def frame(obj: object, rng: random.Random) -> bytes:
    # Both layouts the service and our own server use, so the codec's fast path and its
    # general path are both exercised.
    if rng.random() < 0.5:
        return (json.dumps(obj, indent=2) + "\n").encode()
    return json.dumps(obj, separators=(",", ":")).encode()


def script(seed: int) -> list[bytes]:
    """A random conversation: turns of audio, audio + words, words alone, user words,
    turn ends (some IN_PROGRESS, which arm the watchdog) with usage, late output after
    some turn ends."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for turn in range(rng.randint(1, 6)):
        if rng.random() < 0.7:
            user = {"inputTranscription": {"text": f"question {turn}"}}
            out.append(frame({"serverContent": user}, rng))
        for _ in range(rng.randint(0, 12)):
            r = rng.random()
            words = {"text": rng.choice(["Hello", " there", "", " ok"])}
            if r < 0.4:
                content: dict[str, object] = {"modelTurn": {"parts": [_AUDIO]}}
            elif r < 0.8:
                content = {"modelTurn": {"parts": [_AUDIO]}, "outputTranscription": words}
            else:
                content = {"outputTranscription": words}
            out.append(frame({"serverContent": content}, rng))
        end: dict[str, object] = {"turnComplete": True}
        if rng.random() < 0.4:
            end["interactionStatus"] = "IN_PROGRESS"
        usage = {"promptTokenCount": 10 + turn, "responseTokenCount": 5, "totalTokenCount": 15}
        out.append(frame({"serverContent": end, "usageMetadata": usage}, rng))
        if rng.random() < 0.3:
            # Late model output right after the turn end: the meters' grace window (no
            # turn is answering, the meters take the full path for audio and words).
            late = {"modelTurn": {"parts": [_AUDIO]}, "outputTranscription": {"text": " late"}}
            out.append(frame({"serverContent": late}, rng))
    # End mid-answer after an IN_PROGRESS turn end half of the time: the watchdog's
    # deadline then depends on the last frames of model output.
    if seed % 2:
        status = {"turnComplete": True, "interactionStatus": "IN_PROGRESS"}
        out.append(frame({"serverContent": status}, rng))
        words = {"text": "still thinking"}
        for _ in range(3):
            content = {"modelTurn": {"parts": [_AUDIO]}, "outputTranscription": words}
            out.append(frame({"serverContent": content}, rng))
    return out


#: In a script: the user sent input here (a chunk, a text) instead of a server frame.
USER_INPUT = b""


def with_inputs(frames: list[bytes], seed: int, where: str) -> list[bytes]:
    """The script with user input between frames, ending with a usage frame (a full path
    applies the last input). ``anywhere``: before replies, during them, between turns;
    ``replying``: only between two frames of model output (what the hot paths defer)."""
    rng = random.Random(seed * 7 + 1)
    out: list[bytes] = []
    for i, data in enumerate(frames):
        if where == "anywhere":
            out.extend([USER_INPUT] * rng.choice((0, 0, 1, 2)))
        out.append(data)
        if where == "replying" and i + 1 < len(frames):
            both = (data, frames[i + 1])
            if all(b"turnComplete" not in f and b"inputTranscription" not in f for f in both):
                out.extend([USER_INPUT] * rng.choice((0, 1)))
    out.append(USER_INPUT)
    usage = {"promptTokenCount": 3, "responseTokenCount": 1, "totalTokenCount": 4}
    out.append(frame({"usageMetadata": usage}, rng))
    return out


class _Link:
    """A connection handler as the record's frame callback sees it."""

    def __init__(self) -> None:
        self.info: object | None = None
        self.last_rx = 0.0


async def replay(
    server: FakeLiveServer, frames: list[bytes], clock: list[float] | None = None
) -> tuple[object, ...]:
    """The outcome of ``frames``; with ``clock`` (the patched ``_monotonic`` of the
    record reads ``clock[0]``) through a connection's frame callback (the fused path)."""
    seen: list[ev.Event] = []
    async with gl.connect(config_for(server, "memory", main_stream=False)) as session:
        session.on_event(seen.append)
        link = _Link()
        deliver = session._receiver(link)
        start = time.monotonic()  # the session's clock: the watchdog's timer runs on it
        for i, data in enumerate(frames):
            if data == USER_INPUT:
                session._record.user_input(start + i * 0.001)
                continue
            if clock is None:
                session._on_frame(data, start + i * 0.001)
            else:
                clock[0] = start + i * 0.001
                deliver(data)
                assert link.last_rx == clock[0]
        assert session.history is not None and session.usage is not None
        history = [(e.role, e.kind, e.text) for e in session.history.entries]
        pending = session.history._pending
        usage = [(t.index, t.tokens, t.snapshots, t.complete) for t in session.usage.turns]
        assert session.latency is not None

        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - start, 6)

        latency: list[tuple[object, ...]] = [
            (
                t.index,
                rel(t.input_end),
                rel(t.first_audio),
                rel(t.first_text),
                t.audio_bytes,
                rel(t.turn_complete),
            )
            for t in [*session.latency.turns, session.latency.pending]
            if t is not None
        ]
        latency.append((rel(session.latency._next_input),))
        dog = session._watchdog.deadline()
        dog = rel(dog)
    return (
        [e for e in seen if not isinstance(e, ev.SetupComplete)],
        history,
        (list(pending.user), list(pending.model), pending.model_kind),
        usage,
        latency,
        dog,
    )


@pytest.mark.parametrize("inputs", ["none", "anywhere", "replying"])
@pytest.mark.parametrize("seed", range(12))
async def test_stream_path_matches_the_general_path(
    server: FakeLiveServer, seed: int, inputs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With inputs: the hot paths leave an input sent while the model answers for the next
    # full path (_meters_settled); the meters must end up as if it was applied at once.
    frames = script(seed) if inputs == "none" else with_inputs(script(seed), seed, inputs)
    fast = await replay(server, frames)
    monkeypatch.setattr(frame_paths, "_is_stream", lambda events: False)
    monkeypatch.setattr(ClientProtocol, "receive_stream", lambda self, data, now: None)
    plain = await replay(server, frames)
    assert fast == plain
    if seed % 2:
        assert fast[-1] is not None  # ended with the watchdog armed


@pytest.mark.parametrize("seed", range(6))
async def test_the_connection_callback_matches_on_frame(
    server: FakeLiveServer, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SessionRecord.receiver fuses the connection handler with on_frame's hot path: the
    # same events, meters, history and watchdog for the same frames at the same times.
    frames = with_inputs(script(seed), seed, "anywhere")
    plain = await replay(server, frames)
    clock = [0.0]
    monkeypatch.setattr(frame_paths, "_monotonic", lambda: clock[0])
    fused = await replay(server, frames, clock)
    assert fused == plain


async def test_the_connection_callback_drops_frames_once_its_connection_ended(
    server: FakeLiveServer,
) -> None:
    seen: list[ev.Event] = []
    audio = json.dumps({"serverContent": {"modelTurn": {"parts": [_AUDIO]}}}).encode()
    async with gl.connect(config_for(server, "memory", main_stream=False)) as session:
        session.on_event(seen.append)
        link = _Link()
        deliver = session._receiver(link)
        deliver(audio)
        assert [type(e) for e in seen] == [ev.ModelAudio]
        link.info = "closed"
        before = link.last_rx
        deliver(audio)
        assert len(seen) == 1 and link.last_rx >= before


def test_stream_path_takes_only_audio_and_output_words() -> None:
    audio = ev.ModelAudio(b"\x00\x00")
    words = ev.OutputTranscription("hi")
    assert frame_paths._is_stream([audio, words])
    assert frame_paths._is_stream([words])
    assert not frame_paths._is_stream([])
    assert not frame_paths._is_stream([audio, ev.InputTranscription("x")])
    assert not frame_paths._is_stream([audio, ev.TurnComplete()])
    assert not frame_paths._is_stream([words, ev.GenerationComplete()])


def test_per_turn_records_are_not_tracked_by_the_collector() -> None:
    from gemini_live.history import HistoryEntry
    from gemini_live.metrics import TokenCounts, TurnLatency, TurnUsage

    tokens = TokenCounts(prompt=3, prompt_by_modality={"AUDIO": 3})
    for record in (
        TurnLatency(1),
        TurnUsage(1, tokens),
        tokens,
        HistoryEntry("user", "transcript", "hi"),
    ):
        assert not gc.is_tracked(record), type(record).__name__


async def test_a_long_conversation_does_not_grow_the_collectors_work(
    server: FakeLiveServer,
) -> None:
    # A server holds many sessions for a long time: what a session keeps per turn (history,
    # usage, latency) must not add objects for the collector's full passes to walk.
    rng = random.Random(5)
    turn = [
        frame({"serverContent": {"inputTranscription": {"text": "a question"}}}, rng),
        *(
            frame(
                {
                    "serverContent": {
                        "modelTurn": {"parts": [_AUDIO]},
                        "outputTranscription": {"text": " word"},
                    }
                },
                rng,
            )
            for _ in range(5)
        ),
        frame(
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 9},
            },
            rng,
        ),
    ]
    config = config_for(server, "memory", main_stream=False, history_max_entries=500)
    async with gl.connect(config) as session:
        session.on_event(lambda e: None)
        start = time.monotonic()

        def play(turns: int) -> None:
            for _ in range(turns):
                for data in turn:
                    session._on_frame(data, start)

        play(20)
        gc.collect()
        before = len(gc.get_objects())
        play(200)
        gc.collect()
        grown = len(gc.get_objects()) - before
        assert session.history is not None and len(session.history.entries) >= 400
    assert grown < 40, grown
