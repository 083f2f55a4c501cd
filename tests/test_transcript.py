"""Transcript aggregation over recorded-like frame sequences, interrupted turns included."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gemini_live import events as ev
from gemini_live.audio import PlaybackBuffer
from gemini_live.codec import decode_events
from gemini_live.transcript import Transcript

RATE = 24000


def pcm(seconds: float) -> bytes:
    return bytes(int(seconds * RATE) * 2)


def audio(seconds: float, transcript: str | None = None) -> dict[str, Any]:
    data = base64.b64encode(pcm(seconds)).decode()
    sc: dict[str, Any] = {
        "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}]}
    }
    if transcript is not None:
        sc["outputTranscription"] = {"text": transcript}
    return {"serverContent": sc}


def sc(**fields: Any) -> dict[str, Any]:
    return {"serverContent": fields}


def feed(t: Transcript, *frames: dict[str, Any], playback: PlaybackBuffer | None = None) -> None:
    """Feed frames as an app does: the transcript first, then the audio into the buffer."""
    for frame in frames:
        for event in decode_events(json.dumps(frame).encode()):
            t.observe(event)
            if playback is not None:
                if isinstance(event, ev.Interrupted):
                    playback.flush()
                elif isinstance(event, ev.ModelAudio):
                    playback.push(event.data)


def test_plain_turn_interim_replaces_finals_append() -> None:
    t = Transcript()
    feed(
        t,
        sc(interimInputTranscription={"text": "what is"}),
        sc(interimInputTranscription={"text": "what is the wea"}),
        sc(inputTranscription={"text": "What is the weather", "languageCode": "en-US"}),
        sc(inputTranscription={"text": " in Paris?", "finished": True}),
        audio(0.2, "It is "),
        audio(0.2, "sunny."),
        sc(generationComplete=True),
    )
    turn = t.current
    assert turn is not None and not turn.complete
    assert turn.user.text == "What is the weather in Paris?" and turn.user.interim == ""
    assert turn.user.closed and turn.user.language_code == "en-US"
    assert turn.model.closed  # generationComplete closes the model segment
    assert turn.model.text == "It is sunny."
    assert turn.model.audio_seconds == pytest.approx(0.4)
    feed(t, sc(turnComplete=True))
    assert t.current is None
    done = t.last_turn
    assert done is turn and done.complete and done.interaction_done
    assert t.text() == "user: What is the weather in Paris?\nmodel: It is sunny."


def test_interim_shows_until_the_final_arrives() -> None:
    t = Transcript()
    feed(t, sc(interimInputTranscription={"text": "hel"}))
    assert t.current is not None and t.current.user.display == "hel"
    feed(t, sc(interimInputTranscription={"text": "hello th"}))
    assert t.current.user.display == "hello th"
    feed(t, sc(inputTranscription={"text": "hello there"}))
    assert t.current.user.display == "hello there" and not t.current.user.closed


def test_finished_early_keeps_later_text() -> None:
    # 3.1 marks the input transcript finished on its first text (google/adk-python#6045).
    t = Transcript()
    feed(
        t,
        sc(inputTranscription={"text": "book a", "finished": True}),
        sc(inputTranscription={"text": " table"}),
        sc(turnComplete=True),
    )
    assert t.turns[0].user.text == "book a table"


def test_interrupted_turn_is_trimmed_to_the_played_audio() -> None:
    clock = [0.0]
    buf = PlaybackBuffer(RATE, clock=lambda: clock[0])
    t = Transcript(playback=buf)
    feed(
        t,
        audio(0.5, "one two "),
        audio(0.5, "three four "),
        audio(0.5, "five six."),
        playback=buf,
    )
    # 1.5 s arrived at once (faster than real time); the speaker has played 0.75 s.
    buf.pop(int(0.75 * RATE) * 2)
    feed(t, sc(interrupted=True), sc(turnComplete=True), playback=buf)
    turn = t.turns[0]
    assert turn.interrupted and turn.complete
    assert turn.model.received_text == "one two three four five six."
    assert turn.model.played_seconds == pytest.approx(0.75)
    assert turn.model.text == "one two three"
    assert turn.model.trimmed
    assert t.text() == "model: one two three [interrupted]"


def test_played_position_counts_from_the_turns_own_audio() -> None:
    buf = PlaybackBuffer(RATE, clock=lambda: 0.0)
    t = Transcript(playback=buf)
    # Turn 1 is played completely.
    feed(t, audio(1.0, "first answer."), sc(turnComplete=True), playback=buf)
    buf.pop(int(1.0 * RATE) * 2)
    # Turn 2: 1 s arrives, 0.5 s is played, then the user barges in.
    feed(t, audio(0.5, "second "), audio(0.5, "answer here."), playback=buf)
    buf.pop(int(0.5 * RATE) * 2)
    feed(t, sc(interrupted=True), sc(turnComplete=True), playback=buf)
    assert t.turns[0].model.text == "first answer." and not t.turns[0].interrupted
    assert t.turns[1].model.played_seconds == pytest.approx(0.5)
    assert t.turns[1].model.text == "second "


def test_previous_audio_still_queued_is_not_counted_for_the_new_turn() -> None:
    buf = PlaybackBuffer(RATE, clock=lambda: 0.0)
    t = Transcript(playback=buf)
    feed(t, audio(1.0, "first."), sc(turnComplete=True), playback=buf)
    buf.pop(int(0.5 * RATE) * 2)  # half of turn 1 still queued when turn 2 arrives
    feed(t, audio(1.0, "second turn words."), playback=buf)
    buf.pop(int(1.0 * RATE) * 2)  # 0.5 s of turn 1, then 0.5 s of turn 2
    feed(t, sc(interrupted=True), playback=buf)
    assert t.turns[1].model.played_seconds == pytest.approx(0.5)
    assert t.turns[1].model.text == "second "


def test_nothing_played_means_nothing_heard() -> None:
    buf = PlaybackBuffer(RATE, clock=lambda: 0.0)
    t = Transcript(playback=buf)
    feed(t, audio(0.5, "never heard"), sc(interrupted=True), playback=buf)
    assert t.current is not None and t.current.model.text == ""
    assert t.current.model.received_text == "never heard"


def test_vertex_transcript_ahead_of_audio() -> None:
    # Vertex: each transcript fragment arrives before its audio, and the transcript
    # covers text whose audio never arrives before the interruption.
    t = Transcript(transcript_leads_audio=True)
    feed(
        t,
        sc(outputTranscription={"text": "Alpha beta "}),
        audio(0.5),
        sc(outputTranscription={"text": "gamma delta "}),
        audio(0.5),
        sc(outputTranscription={"text": "epsilon zeta."}),  # no audio follows
        sc(interrupted=True),
    )
    seg = t.turns[0].model
    assert seg.received_text == "Alpha beta gamma delta epsilon zeta."
    # Everything received was played: the fragment without audio was never spoken.
    assert t.trim(1.0) == "Alpha beta gamma delta "
    assert t.trim(0.75) == "Alpha beta gamma "
    assert t.trim(0.0) == ""


def test_trim_with_a_played_duration_and_no_buffer() -> None:
    t = Transcript()
    feed(t, audio(1.0, "a b c d"), sc(interrupted=True), sc(turnComplete=True))
    assert t.turns[0].model.text == "a b c d"  # nothing known about playback: untouched
    assert t.trim(0.5) == "a b"
    assert t.turns[0].model.played_seconds == 0.5


def test_text_reply_without_audio_is_never_cut() -> None:
    t = Transcript()
    feed(t, sc(outputTranscription={"text": "hi"}), sc(interrupted=True))
    assert t.trim(0.0) == "hi"


def test_extended_thinking_turns_and_interaction_end() -> None:
    t = Transcript()
    feed(
        t,
        sc(inputTranscription={"text": "research this", "finished": True}),
        audio(0.2, "Let me check."),
        sc(turnComplete=True, interactionStatus="IN_PROGRESS"),
        audio(0.2, "Here it is."),
        sc(generationComplete=True),
        sc(turnComplete=True, interactionStatus="IDLE"),
    )
    assert [(x.user.text, x.model.text, x.interaction_done) for x in t.turns] == [
        ("research this", "Let me check.", False),
        ("", "Here it is.", True),
    ]


def test_watchdog_timeout_ends_the_interaction() -> None:
    t = Transcript()
    feed(t, audio(0.1, "working"), sc(turnComplete=True, interactionStatus="IN_PROGRESS"))
    assert not t.turns[0].interaction_done
    t.observe(ev.InteractionTimeout(30.0))
    assert t.turns[0].interaction_done


def test_transcription_metadata_is_kept() -> None:
    t = Transcript()
    feed(
        t,
        sc(
            inputTranscription={
                "text": "hola",
                "languageCode": "es-ES",
                "speakerLabel": "spk-2",
                "words": [{"word": "hola", "startOffset": "0.1s", "endOffset": "0.4s"}],
            }
        ),
    )
    seg = t.turns[0].user
    assert (seg.language_code, seg.speaker_label) == ("es-ES", "spk-2")
    assert seg.words == [ev.TranscriptWord("hola", 0.1, 0.4)]


def test_bounded_turns() -> None:
    t = Transcript(max_turns=2)
    for i in range(3):
        feed(t, sc(inputTranscription={"text": f"q{i}"}), sc(turnComplete=True))
    assert [x.index for x in t.turns] == [2, 3]
    assert t.turns[0].empty is False
