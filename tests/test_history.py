"""History: fed by events and sends, bounded, summarised, and seeding a fresh session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from google.genai import types as genai_types

import gemini_live as gl
from gemini_live import events as ev
from gemini_live import types as T
from gemini_live.codec import decode_events
from gemini_live.errors import ConfigError
from gemini_live.history import History, HistoryEntry
from gemini_live.testing import FakeLiveServer


def frames(*objs: dict[str, Any]) -> list[ev.Event]:
    out: list[ev.Event] = []
    for obj in objs:
        out.extend(decode_events(json.dumps(obj).encode()))
    return out


def sc(**fields: Any) -> dict[str, Any]:
    return {"serverContent": fields}


def feed(h: History, *objs: dict[str, Any]) -> None:
    for e in frames(*objs):
        h.observe(e)


def conversation() -> History:
    h = History()
    h.add_user_text("What's the weather in Paris?")
    feed(
        h,
        {
            "toolCall": {
                "functionCalls": [{"id": "c1", "name": "get_weather", "args": {"city": "Paris"}}]
            }
        },
    )
    h.add_tool_result(
        T.FunctionResponse(name="get_weather", id="c1", response={"output": {"temp_c": 18}})
    )
    feed(
        h,
        sc(outputTranscription={"text": "It is 18 degrees "}),
        sc(outputTranscription={"text": "and sunny."}),
        sc(generationComplete=True),
        sc(turnComplete=True),
        sc(interimInputTranscription={"text": "and tomo"}),
        sc(inputTranscription={"text": "And tomorrow?"}),
        sc(modelTurn={"parts": [{"text": "thinking...", "thought": True}]}),
        sc(outputTranscription={"text": "Rain tomorrow."}),
        sc(turnComplete=True),
    )
    return h


def test_history_is_fed_by_sends_and_events_and_readable() -> None:
    h = conversation()
    assert [(e.role, e.kind) for e in h.entries] == [
        ("user", "text"),
        ("model", "tool_call"),
        ("model", "tool_result"),
        ("model", "transcript"),
        ("user", "transcript"),
        ("model", "transcript"),
    ]
    assert h.render() == (
        "user: What's the weather in Paris?\n"
        'model: [called get_weather({"city":"Paris"})]\n'
        'model: [get_weather returned {"output":{"temp_c":18}}]\n'
        "model: It is 18 degrees and sunny.\n"
        "user: And tomorrow?\n"
        "model: Rain tomorrow."
    )
    assert len(h) == 6 and h.chars == sum(e.size for e in h)


def test_user_transcript_comes_before_the_model_reply_of_the_same_turn() -> None:
    h = History()
    # No ordering guarantee: the user's transcript may arrive after the reply started.
    feed(
        h,
        sc(outputTranscription={"text": "Sure."}),
        sc(inputTranscription={"text": "Can you help?"}),
        sc(turnComplete=True),
    )
    assert [(e.role, e.text) for e in h] == [("user", "Can you help?"), ("model", "Sure.")]


def test_cancelled_tool_calls_leave_the_history() -> None:
    h = History()
    feed(
        h,
        {"toolCall": {"functionCalls": [{"id": "a", "name": "f"}, {"id": "b", "name": "g"}]}},
        {"toolCallCancellation": {"ids": ["a"]}},
    )
    assert [e.call_id for e in h] == ["b"]
    assert h.chars == sum(e.size for e in h)


def test_amend_last_model_with_what_was_played() -> None:
    h = History()
    feed(h, sc(outputTranscription={"text": "one two three four"}), sc(interrupted=True))
    h.amend_last_model("one two")
    assert h.render() == "model: one two"
    h.amend_last_model("")
    assert len(h) == 0 and h.chars == 0


def test_bound_drops_the_oldest() -> None:
    h = History(max_entries=3)
    for i in range(5):
        h.add_user_text(f"q{i}")
    assert [e.text for e in h] == ["q2", "q3", "q4"] and h.dropped == 2
    c = History(max_chars=10)
    for text in ("aaaa", "bbbb", "cccc"):
        c.add_user_text(text)
    assert [e.text for e in c] == ["bbbb", "cccc"] and c.chars == 8


def test_summarizer_folds_dropped_entries() -> None:
    calls: list[list[str]] = []

    def summarize(entries: Sequence[HistoryEntry]) -> str:
        calls.append([e.text for e in entries])
        return "talked about " + ", ".join(e.text for e in entries if e.kind != "summary")

    h = History(max_entries=4, summarizer=summarize)
    for i in range(5):
        h.add_user_text(f"q{i}")
    assert calls == [["q0", "q1", "q2"]]
    assert [(e.kind, e.text) for e in h] == [
        ("summary", "talked about q0, q1, q2"),
        ("text", "q3"),
        ("text", "q4"),
    ]
    assert h.render().startswith("user: (Summary of the earlier conversation) talked about q0")
    for i in range(5, 8):
        h.add_user_text(f"q{i}")
    # The previous summary is handed to the hook again, first.
    assert calls[1][0] == "talked about q0, q1, q2"


def test_from_messages() -> None:
    h = History.from_messages(
        [("user", "hi"), ("assistant", "hello"), T.Content.text("bye", role="user")]
    )
    assert [(e.role, e.text) for e in h] == [("user", "hi"), ("model", "hello"), ("user", "bye")]
    with pytest.raises(ConfigError):
        History.from_messages([("system", "x")])


# --------------------------------------------------------------------------- seeds


def _validate(msg: T.ClientMessage) -> dict[str, Any]:
    frame = msgspec.json.encode(msg)
    genai_types.LiveClientMessage.model_validate_json(frame)
    out: dict[str, Any] = json.loads(frame)
    return out


@pytest.mark.parametrize(
    ("model", "vertex", "history_config", "last_role"),
    [
        ("models/gemini-3.1-flash-live-preview", False, True, "model"),
        ("models/gemini-3.1-flash-live-preview", True, True, "model"),
        ("models/gemini-3.8-live", False, True, "model"),
        ("models/gemini-3.8-live-extended-thinking", False, True, "model"),
        # 2.5: clientContent any time (no historyConfig); the seed must end with a user turn.
        ("models/gemini-2.5-flash-native-audio-preview-12-2025", False, False, "user"),
        ("publishers/google/models/gemini-live-2.5-flash-native-audio", True, False, "user"),
        ("models/some-future-model", False, True, "model"),
    ],
)
def test_seed_per_family(model: str, vertex: bool, history_config: bool, last_role: str) -> None:
    h = conversation()
    seed = h.seed(model, vertex=vertex)
    assert seed.history_config is history_config
    (msg,) = seed.messages
    wire = _validate(msg)
    cc = wire["clientContent"]
    assert cc.get("turnComplete", False) is False
    roles = [t["role"] for t in cc["turns"]]
    assert roles[:4] == ["user", "model", "user", "model"]  # same-role entries share a turn
    assert roles[-1] == last_role and seed.turns == len(roles)
    assert cc["turns"][1]["parts"][0]["text"] == '[called get_weather({"city":"Paris"})]'
    setup = T.Setup(model=model)
    applied = seed.apply(setup)
    assert setup.history_config is T.UNSET  # untouched
    if history_config:
        assert applied.history_config == T.HistoryConfig(initial_history_in_client_content=True)
        _validate(T.ClientMessage(setup=applied))
    else:
        assert applied is setup


def test_seed_is_split_into_several_messages() -> None:
    h = History.from_messages([("user" if i % 2 == 0 else "model", f"m{i}") for i in range(7)])
    seed = h.seed("models/gemini-3.8-live", vertex=False, turns_per_message=3)
    assert [len(m.client_content.turns) for m in seed.messages] == [3, 3, 1]  # type: ignore[union-attr, arg-type]
    assert seed.turns == 7


def test_empty_history_and_models_without_history() -> None:
    assert History().seed("models/gemini-3.8-live", vertex=False).messages == ()
    assert History().seed("models/gemini-3.5-transcribe-live", vertex=False).turns == 0
    with pytest.raises(ConfigError, match="transcribe-live"):
        conversation().seed("models/gemini-3.5-transcribe-live", vertex=False)


async def test_fresh_session_seeded_on_the_fake_server() -> None:
    """A brand-new session gets the history: the fake ingests it without answering, then
    answers the next question with the seeded turns in its server-side history."""
    h = conversation()
    model = "models/gemini-3.1-flash-live-preview"
    seed = h.seed(model, vertex=False)
    async with asyncio.timeout(20), FakeLiveServer(validate_frames=True) as server:
        setup = seed.apply(
            T.Setup(model=model, output_audio_transcription=T.AudioTranscriptionConfig())
        )
        config = gl.build_config(setup=setup, url=server.url)
        async with gl.connect(config) as session:
            for msg in seed.messages:
                await session.send_raw(msg)
            events = session.events()
            await session.send_text("And the day after?")
            reply = ""
            async for event in events:
                if isinstance(event, ev.OutputTranscription):
                    reply += event.text
                if isinstance(event, ev.TurnComplete):
                    break
        assert reply == "You said: And the day after?"  # one answer: the seed got none
        (state,) = server.sessions.values()
        assert state.history[: seed.turns] == [
            (c.role, "".join(p.text for p in c.parts if isinstance(p.text, str)))  # type: ignore[union-attr]
            for c in h.contents()
        ]
        assert state.history[seed.turns :] == [
            ("user", "And the day after?"),
            ("model", "You said: And the day after?"),
        ]
        rec = server.connections[0]
        sent = rec.received[0].setup
        assert isinstance(sent, T.Setup)
        assert sent.history_config == T.HistoryConfig(initial_history_in_client_content=True)
