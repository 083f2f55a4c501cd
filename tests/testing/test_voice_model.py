"""FakeLiveServer plays a voice model: VAD on audio time, barge-in, scripts, modalities."""

from __future__ import annotations

import array
import asyncio
import base64
import json
import math
import wave
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.audio import PlaybackBuffer
from gemini_live.testing import TEXT_NOT_SUPPORTED, FakeLiveServer
from gemini_live.testing import script as s
from gemini_live.tools import ToolRegistry

from .conftest import (
    JSON,
    do_setup,
    expect_close,
    is_turn_complete,
    recv_json,
    recv_until,
    send_json,
)

RATE = 16000
CHUNK_MS = 20


def tone(ms: int, *, hz: float = 300.0, amplitude: int = 8000, rate: int = RATE) -> bytes:
    n = rate * ms // 1000
    return array.array(
        "h", (int(amplitude * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))
    ).tobytes()


def silence(ms: int, rate: int = RATE) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def chunks(pcm: bytes, ms: int = CHUNK_MS, rate: int = RATE) -> list[bytes]:
    step = rate * ms // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def fake(**options: Any) -> FakeLiveServer:
    return FakeLiveServer(validate_frames=True, **options)


def ws(url: str) -> connect:
    return connect(url, compression=None, open_timeout=5)


async def send_audio(c: ClientConnection, pcm: bytes) -> None:
    data = base64.b64encode(pcm).decode()
    await send_json(c, {"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm"}}})


def server_kinds(server: FakeLiveServer, connection: int = 0) -> list[str]:
    """What the server sent so far, one word per frame (setup excluded)."""
    out: list[str] = []
    for raw in server.connections[connection].sent[1:]:
        frame = json.loads(raw)
        sc = frame.get("serverContent", {})
        if "modelTurn" in sc:
            out.append("audio")
        elif "inputTranscription" in sc:
            out.append("heard:" + sc["inputTranscription"]["text"])
        elif sc.get("interrupted"):
            out.append("interrupted")
        elif sc.get("turnComplete"):
            out.append("turnComplete")
        elif sc.get("generationComplete"):
            out.append("generationComplete")
        else:
            out.append(next(iter(frame)))
    return out


def write_wav(path: Path, pcm: bytes, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


# --------------------------------------------------------------------------- VAD


async def test_paced_wav_with_a_pause_one_reply_after_the_pause(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    write_wav(wav, tone(600) + silence(1000) + tone(400) + silence(600))
    pieces = chunks(read_wav(wav))
    async with asyncio.timeout(10), fake(reply_chunks=2) as server, ws(server.url) as c:
        await do_setup(c, inputAudioTranscription={})
        replies_after: list[int] = []
        for i, piece in enumerate(pieces):
            await send_audio(c, piece)
            await server.wait_for_messages(i + 2)  # setup + i + 1 audio chunks processed
            heard = [k for k in server_kinds(server) if k.startswith("heard:")]
            if len(heard) > len(replies_after):
                replies_after.append(i)
        # Two utterances, each answered once the default 300 ms of silence had passed.
        speech1_end = 600 // CHUNK_MS - 1
        speech2_end = (600 + 1000 + 400) // CHUNK_MS - 1
        assert replies_after == [speech1_end + 300 // CHUNK_MS, speech2_end + 300 // CHUNK_MS]
        await send_json(c, {"realtimeInput": {"audioStreamEnd": True}})
        await server.wait_for_messages(len(pieces) + 2)
        kinds = server_kinds(server)
    # The trailing silence and audioStreamEnd add no third turn.
    assert kinds.count("turnComplete") == 2
    assert kinds[:5] == [
        "heard:600 ms of audio",
        "audio",
        "audio",
        "generationComplete",
        "turnComplete",
    ]
    assert server.conversation().audio_ms == pytest.approx(2600.0)


async def test_the_stream_is_fast_vad_runs_on_audio_time() -> None:
    """Ten seconds of audio stream in well under ten seconds: no wall clock involved."""
    pcm = (tone(400) + silence(600)) * 10
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(10), fake(reply_chunks=1) as server, ws(server.url) as c:
        await do_setup(c)
        for piece in chunks(pcm, 100):
            await send_audio(c, piece)
        frames = []
        for _ in range(10):
            frames += await recv_until(c, is_turn_complete)  # the client reads as it goes
        assert server.conversation().turns == 10
    assert loop.time() - start < 5.0


@pytest.mark.parametrize(
    ("config", "expected_ms"),
    [
        ({"automaticActivityDetection": {"silenceDurationMs": 800}}, None),
        ({"automaticActivityDetection": {"silenceDurationMs": 200}}, 400),
        (
            {"automaticActivityDetection": {"startOfSpeechSensitivity": "START_SENSITIVITY_LOW"}},
            None,
        ),
        ({"turnCoverage": "TURN_INCLUDES_ALL_INPUT"}, 700),
    ],
)
async def test_activity_detection_knobs(config: JSON, expected_ms: int | None) -> None:
    """400 ms of quiet speech, 300 ms of silence: answered only where the knobs allow."""
    quiet = tone(400, amplitude=700)  # RMS ~ 495: above HIGH (300), below LOW (1000)
    async with asyncio.timeout(10), fake(reply_chunks=1) as server, ws(server.url) as c:
        await do_setup(c, realtimeInputConfig=config)
        pieces = chunks(quiet + silence(300))
        for piece in pieces:
            await send_audio(c, piece)
        await server.wait_for_messages(1 + len(pieces))
        answers = server.conversation().answers
    if expected_ms is None:
        assert answers == ()
    else:
        assert answers == (f"I heard {expected_ms} ms of audio.",)


async def test_vad_disabled_needs_activity_start_and_end() -> None:
    speech = chunks(tone(600) + silence(1000))
    async with asyncio.timeout(10), fake(reply_chunks=1) as server, ws(server.url) as c:
        await do_setup(c, realtimeInputConfig={"automaticActivityDetection": {"disabled": True}})
        for piece in speech:
            await send_audio(c, piece)
        await server.wait_for_messages(1 + len(speech))
        assert server.conversation().turns == 0  # a pause alone ends nothing
        await send_json(c, {"realtimeInput": {"activityStart": {}}})
        for piece in speech:
            await send_audio(c, piece)
        await server.wait_for_messages(2 + 2 * len(speech))
        assert server.conversation().turns == 0
        await send_json(c, {"realtimeInput": {"activityEnd": {}}})
        frames = await recv_until(c, is_turn_complete)
    assert server.conversation().answers == ("I heard 1600 ms of audio.",)
    assert any("modelTurn" in f.get("serverContent", {}) for f in frames)


async def test_voice_activity_events_and_vad_signals() -> None:
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=1, voice_activity=True) as server,
        ws(server.url_for("vertex")) as c,
    ):
        await do_setup(c, explicitVadSignal=True, inputAudioTranscription={})
        for piece in chunks(silence(100) + tone(500) + silence(400)):
            await send_audio(c, piece)
        frames = await recv_until(c, is_turn_complete)
    activity = [f["voiceActivity"] for f in frames if "voiceActivity" in f]
    assert activity == [
        {"type": "ACTIVITY_START", "audioOffset": "0.1s"},
        {"type": "ACTIVITY_END", "audioOffset": "0.9s"},
    ]
    signals = [
        f["voiceActivityDetectionSignal"]["vadSignalType"]
        for f in frames
        if "voiceActivityDetectionSignal" in f
    ]
    assert signals == ["VAD_SIGNAL_TYPE_SOS", "VAD_SIGNAL_TYPE_EOS"]
    heard = [
        f["serverContent"]["inputTranscription"]["text"]
        for f in frames
        if "inputTranscription" in f.get("serverContent", {})
    ]
    assert heard == ["500 ms of audio"]


# --------------------------------------------------------------------------- barge-in


async def test_barge_in_interrupts_cancels_the_call_and_flushes_playback() -> None:
    """The model calls a tool and starts a long reply; the user speaks over it."""
    script = s.Script(
        [
            s.On(
                s.Utterance(1),
                [
                    s.CallTools([s.Call("lookup", {"q": "x"})]),
                    s.Reply("Let me look that up.", chunks=50),
                ],
            )
        ]
    )
    async with (
        asyncio.timeout(10),
        fake(script=script, paced_by_input=True) as server,
        gl.connect(
            gl.SessionConfig(
                setup=gl.types.Setup(model="models/gemini-3.8-live"),
                transport=gl.TransportConfig(
                    endpoint=gl.Endpoint.custom(server.url), backend=server.memory_backend()
                ),
            )
        ) as session,
    ):
        playback = PlaybackBuffer(24000, clock=lambda: 0.0)
        events = session.events()
        for piece in chunks(tone(400) + silence(300)):
            await session.send_audio(piece)
        seen: list[ev.Event] = []
        async with asyncio.timeout(5):
            async for e in events:
                seen.append(e)
                if isinstance(e, ev.ModelAudio):
                    playback.push(e.data)
                    break  # the reply has started; the rest plays as the mic streams
        queued_before = playback.queued_bytes
        # The mic keeps streaming: 100 ms of silence plays 2 more chunks, then speech.
        for piece in chunks(silence(100) + tone(200)):
            await session.send_audio(piece)
        after: list[ev.Event] = []
        async with asyncio.timeout(5):
            async for e in events:
                after.append(e)
                if isinstance(e, ev.Interrupted):
                    playback.flush()
                elif isinstance(e, ev.ModelAudio):
                    playback.push(e.data)
                if isinstance(e, ev.TurnComplete):
                    break
        kinds = [type(e).__name__ for e in after]
        i = kinds.index("Interrupted")
        assert "ModelAudio" not in kinds[i:]  # nothing of the old reply after `interrupted`
        assert "ToolCallCancellation" in kinds[i:]
        cancel = next(e for e in after if isinstance(e, ev.ToolCallCancellation))
        call = next(e for e in seen if isinstance(e, ev.ToolCall))
        assert list(cancel.ids) == [c.id for c in call.calls]
        assert queued_before > 0 and playback.queued_bytes == 0 and playback.generation == 1
        conv = server.conversation()
        # Only what was sent of the reply stays in the history.
        assert conv.answers and conv.answers[0] != "Let me look that up."
        assert "Let me look that up.".startswith(conv.answers[0])


async def test_no_interruption_keeps_the_reply_and_answers_after() -> None:
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=10, paced_by_input=True) as server,
        ws(server.url) as c,
    ):
        await do_setup(c, realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"})
        for piece in chunks(tone(400) + silence(300) + tone(200) + silence(300) + silence(400)):
            await send_audio(c, piece)
        await send_json(c, {"realtimeInput": {"audioStreamEnd": True}})
        frames = await recv_until(c, is_turn_complete)
        frames += await recv_until(c, is_turn_complete)
    kinds = [k for k in server_kinds(server) if k != "sessionResumptionUpdate"]
    assert "interrupted" not in kinds
    assert kinds.count("audio") == 20
    assert server.conversation().answers == (
        "I heard 400 ms of audio.",
        "I heard 200 ms of audio.",
    )


async def test_activity_start_barges_in_with_manual_vad() -> None:
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=5, chunk_interval=0.05) as server,
        ws(server.url) as c,
    ):
        await do_setup(c, realtimeInputConfig={"automaticActivityDetection": {"disabled": True}})
        await send_json(c, {"realtimeInput": {"text": "tell me a story"}})
        first = await recv_json(c)
        assert "modelTurn" in first["serverContent"]
        await send_json(c, {"realtimeInput": {"activityStart": {}}})
        frames = await recv_until(c, is_turn_complete)
    assert frames[-2:] == [
        {"serverContent": {"interrupted": True}},
        {"serverContent": {"turnComplete": True}},
    ]


MANUAL = {"automaticActivityDetection": {"disabled": True}}


async def test_activity_start_cancels_the_turns_pending_tool_call_with_manual_vad() -> None:
    script = s.Script([s.On(s.Text("weather"), [s.CallTools([s.Call("get_weather")])])])
    async with asyncio.timeout(10), fake(script=script) as server, ws(server.url) as c:
        await do_setup(c, realtimeInputConfig=MANUAL)
        await send_json(c, {"realtimeInput": {"text": "the weather?"}})
        call = await recv_json(c)
        call_id = call["toolCall"]["functionCalls"][0]["id"]
        await send_json(c, {"realtimeInput": {"activityStart": {}}})
        frames = await recv_until(c, is_turn_complete)
        # A late answer to the cancelled call is ignored (no reply turn).
        await send_json(
            c,
            {
                "toolResponse": {
                    "functionResponses": [
                        {"id": call_id, "name": "get_weather", "response": {"x": 1}}
                    ]
                }
            },
        )
        await server.wait_for_messages(4)
        assert server.connections[0].open
    assert frames == [
        {"serverContent": {"interrupted": True}},
        {"toolCallCancellation": {"ids": [call_id]}},
        {"serverContent": {"turnComplete": True}},
    ]
    assert server.conversation().answers == ()


async def test_activity_start_does_not_interrupt_with_no_interruption() -> None:
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=5, chunk_interval=0.02) as server,
        ws(server.url) as c,
    ):
        await do_setup(c, realtimeInputConfig={**MANUAL, "activityHandling": "NO_INTERRUPTION"})
        await send_json(c, {"realtimeInput": {"text": "tell me a story"}})
        first = await recv_json(c)
        assert "modelTurn" in first["serverContent"]
        await send_json(c, {"realtimeInput": {"activityStart": {}}})
        frames = [first, *await recv_until(c, is_turn_complete)]
    assert not any(f.get("serverContent", {}).get("interrupted") for f in frames)
    assert sum("modelTurn" in f.get("serverContent", {}) for f in frames) == 5
    assert server.conversation().answers == ("You said: tell me a story",)


async def test_assumed_playback_holds_the_turn_and_activity_start_interrupts_it() -> None:
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=100, assumed_playback=True) as server,  # 4 s of reply audio
        ws(server.url) as c,
    ):
        await do_setup(c, realtimeInputConfig=MANUAL)
        await send_json(c, {"realtimeInput": {"text": "tell me a story"}})
        frames = await recv_until(
            c, lambda f: bool(f.get("serverContent", {}).get("generationComplete"))
        )
        assert sum("modelTurn" in f.get("serverContent", {}) for f in frames) == 100
        # Every chunk is out, but the turn is still open while the client plays it.
        await send_json(c, {"realtimeInput": {"activityStart": {}}})
        rest = await recv_until(c, is_turn_complete)
        assert rest == [
            {"serverContent": {"interrupted": True}},
            {"serverContent": {"turnComplete": True}},
        ]
        # The next utterance is answered as usual.
        await send_audio(c, tone(300))
        await send_json(c, {"realtimeInput": {"activityEnd": {}}})
        await recv_until(c, lambda f: bool(f.get("serverContent", {}).get("generationComplete")))
    conv = server.conversation()
    # The barge-in came right after the last chunk was sent: the user heard the start of
    # the 4 s reply, not the whole sentence; ``generated`` keeps the whole of it.
    assert conv.generated == ("You said: tell me a story", "I heard 300 ms of audio.")
    first, second = conv.answers
    assert first != "You said: tell me a story"
    assert "You said: tell me a story".startswith(first)
    assert second == "I heard 300 ms of audio."
    assert conv.history[1] == ("model", first)


async def test_assumed_playback_waits_for_the_audio_time_and_speech_interrupts() -> None:
    story = s.Script([s.On(s.Text("story"), [s.Reply("Once upon a time", chunks=100)])])
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=5, assumed_playback=True, script=story) as server,
        ws(server.url) as c,
    ):
        await do_setup(c)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await send_json(c, {"realtimeInput": {"text": "hi"}})
        await recv_until(c, is_turn_complete)
        assert loop.time() - started >= 0.2  # 5 chunks = 200 ms of audio played
        # 4 s of audio: detected speech during the playback gap interrupts the turn.
        await send_json(c, {"realtimeInput": {"text": "a story"}})
        await recv_until(c, lambda f: bool(f.get("serverContent", {}).get("generationComplete")))
        for piece in chunks(tone(200)):
            await send_audio(c, piece)
        rest = await recv_until(c, is_turn_complete)
    assert [f for f in rest if "serverContent" in f] == [
        {"serverContent": {"interrupted": True}},
        {"serverContent": {"turnComplete": True}},
    ]
    conv = server.conversation()
    assert conv.generated == ("You said: hi", "Once upon a time")
    # 4 s of reply, cut by speech within its first second: the answer holds what played.
    assert conv.answers[0] == "You said: hi"
    assert conv.answers[1] != "Once upon a time"
    assert "Once upon a time".startswith(conv.answers[1])


# --------------------------------------------------------------------------- scripts & tools


async def test_tool_triggered_by_the_second_utterance_answered_by_the_tool_runner() -> None:
    registry = ToolRegistry()

    @registry.tool
    async def get_time(zone: str) -> dict[str, str]:
        """The time in a zone."""
        return {"zone": zone, "time": "12:00"}

    script = s.Script([s.On(s.Utterance(2), [s.CallTools([s.Call("get_time", {"zone": "UTC"})])])])
    async with (
        asyncio.timeout(10),
        fake(script=script, reply_chunks=1) as server,
        gl.connect(
            gl.SessionConfig(
                setup=gl.types.Setup(
                    model="models/gemini-3.8-live",
                    tools=registry.tools(),
                    output_audio_transcription=gl.types.AudioTranscriptionConfig(),
                ),
                transport=gl.TransportConfig(
                    endpoint=gl.Endpoint.custom(server.url), backend=server.memory_backend()
                ),
            )
        ) as session,
    ):
        events = session.events()
        async with session.run_tools(registry) as runner:
            for piece in chunks((tone(300) + silence(400)) * 2):
                await session.send_audio(piece)
            said = ""
            async with asyncio.timeout(5):
                async for e in events:
                    if isinstance(e, ev.OutputTranscription):
                        said += e.text
                    if "get_time returned" in said and isinstance(e, ev.TurnComplete):
                        break
        assert runner.stats.answered == 1
    assert server.conversation().answers == (
        "I heard 300 ms of audio.",
        'get_time returned {"zone":"UTC","time":"12:00"}',
    )


async def test_script_json_equivalent_and_interaction_status(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "rules": [
                    {
                        "when": {"text": "plan"},
                        "do": [
                            {"reply": "Working on it.", "interactionStatus": "IN_PROGRESS"},
                            {"usage": {"promptTokenCount": 5, "totalTokenCount": 5}},
                            {"reply": "Done.", "interactionStatus": "IDLE"},
                        ],
                    },
                    {
                        "when": {"turn": 2},
                        "do": [
                            {
                                "goAway": 0.2,
                                "close": [
                                    1011,
                                    "Deadline expired before operation could complete.",
                                ],
                            }
                        ],
                    },
                ],
            }
        )
    )
    loaded = s.Script.load(path)
    assert loaded == s.Script(
        [
            s.On(
                s.Text("plan"),
                [
                    s.Reply("Working on it.", interaction_status="IN_PROGRESS"),
                    s.Usage({"promptTokenCount": 5, "totalTokenCount": 5}),
                    s.Reply("Done.", interaction_status="IDLE"),
                ],
            ),
            s.On(
                s.TurnNumber(2),
                [s.GoAway(0.2, (1011, "Deadline expired before operation could complete."))],
            ),
        ]
    )
    async with (
        asyncio.timeout(10),
        fake(script=loaded, reply_chunks=1) as server,
        ws(server.url) as c,
    ):
        await do_setup(c)
        await send_json(c, {"realtimeInput": {"text": "make a plan"}})
        first = await recv_until(c, is_turn_complete)
        second = await recv_until(c, is_turn_complete)
        assert first[-1]["serverContent"] == {
            "turnComplete": True,
            "interactionStatus": "IN_PROGRESS",
        }
        assert second[0] == {"usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}
        assert second[-1]["serverContent"]["interactionStatus"] == "IDLE"
        await send_json(c, {"realtimeInput": {"text": "anything"}})
        assert await recv_json(c) == {"goAway": {"timeLeft": "0.2s"}}
        code, reason, _ = await expect_close(c)
    assert (code, reason) == (1011, "Deadline expired before operation could complete.")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"rules": [{"when": {"nope": 1}, "do": []}]}, "unknown trigger 'nope'"),
        ({"rules": [{"when": {"text": "x"}, "do": [{"dance": 1}]}]}, "unknown action"),
        ({"version": 2, "rules": []}, "unsupported script version"),
        ({"rules": [{"when": {"text": "x"}}]}, "needs 'when' and 'do'"),
    ],
)
def test_bad_scripts_are_refused_clearly(bad: JSON, message: str) -> None:
    with pytest.raises(s.ScriptError, match=message):
        s.Script.from_json(bad)


async def test_script_actions_drop_close_wav_and_parallel_calls(tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    write_wav(wav, tone(200, rate=24000), rate=24000)
    script = s.Script(
        [
            s.On(s.Text("wav"), [s.Reply("hello", wav=str(wav))], times=None),
            s.On(s.Text("both"), [s.CallTools([s.Call("a"), s.Call("b")])]),
            s.On(
                s.Text("close"),
                [s.Close(1008, "Operation is not implemented, or supported, or enabled.")],
            ),
            s.On(s.Text("drop"), [s.Drop()]),
        ]
    )
    async with asyncio.timeout(10), fake(script=script) as server:
        async with ws(server.url) as c:
            await do_setup(c)
            await send_json(c, {"realtimeInput": {"text": "wav please"}})
            frames = await recv_until(c, is_turn_complete)
            audio = [f for f in frames if "modelTurn" in f.get("serverContent", {})]
            assert len(audio) == 5  # 200 ms in 40 ms chunks
            await send_json(c, {"realtimeInput": {"text": "both"}})
            call = await recv_json(c)
            assert [fc["name"] for fc in call["toolCall"]["functionCalls"]] == ["a", "b"]
            await send_json(c, {"realtimeInput": {"text": "close"}})
            code, reason, _ = await expect_close(c)
            assert (code, reason) == (
                1008,
                "Operation is not implemented, or supported, or enabled.",
            )
        async with ws(server.url) as c:
            await do_setup(c)
            await send_json(c, {"realtimeInput": {"text": "drop"}})
            code, _, _ = await expect_close(c)
            assert code == 1006


# --------------------------------------------------------------------------- modalities


async def test_text_modality_replies_with_text_parts() -> None:
    async with asyncio.timeout(10), fake(reply_chunks=2) as server, ws(server.url) as c:
        await do_setup(c, generationConfig={"responseModalities": ["TEXT"]})
        await send_json(c, {"realtimeInput": {"text": "hello there"}})
        frames = await recv_until(c, is_turn_complete)
    parts = [
        p for f in frames for p in f.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
    ]
    assert all("inlineData" not in p for p in parts)
    assert "".join(p["text"] for p in parts) == "You said: hello there"
    assert frames[-1]["usageMetadata"]["responseTokensDetails"][0]["modality"] == "TEXT"


@pytest.mark.parametrize(
    "model",
    [
        "models/gemini-2.5-flash-native-audio-preview-12-2025",
        "models/gemini-3.8-live",
        "gemini-3.1-flash-live-preview",
    ],
)
async def test_text_modality_refused_on_audio_only_models(model: str) -> None:
    async with asyncio.timeout(10), fake() as server, ws(server.url) as c:
        await send_json(
            c, {"setup": {"model": model, "generationConfig": {"responseModalities": ["TEXT"]}}}
        )
        code, reason, frames = await expect_close(c)
    assert (code, reason, frames) == (1007, TEXT_NOT_SUPPORTED, [])


async def test_google_genai_client_with_vad_and_barge_in() -> None:
    """The unmodified official client completes a session: VAD turn, then a barge-in."""
    from google import genai
    from google.genai import types

    async with fake(reply_chunks=30, paced_by_input=True, require_api_key="k") as server:
        client = genai.Client(api_key="k")
        api = client._api_client
        base = server.base_url
        api._websocket_base_url = lambda http_options=None: base  # type: ignore[method-assign]
        api._websocket_ssl_ctx = {}
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            input_audio_transcription=types.AudioTranscriptionConfig(),
        )
        async with asyncio.timeout(15):
            async with client.aio.live.connect(model="gemini-3.8-live", config=config) as live:
                blob = types.Blob(data=tone(400) + silence(400), mime_type="audio/pcm;rate=16000")
                await live.send_realtime_input(audio=blob)
                got: list[Any] = []
                async for msg in live.receive():
                    got.append(msg)
                    if msg.server_content and msg.server_content.model_turn:
                        break
                # Barge in: the user speaks while the reply plays.
                await live.send_realtime_input(
                    audio=types.Blob(
                        data=tone(300) + silence(400), mime_type="audio/pcm;rate=16000"
                    )
                )
                interrupted = False
                async for msg in live.receive():
                    got.append(msg)
                    sc = msg.server_content
                    if sc and sc.interrupted:
                        interrupted = True
                    if sc and sc.turn_complete and interrupted:
                        break
    heard = [
        m.server_content.input_transcription.text
        for m in got
        if m.server_content and m.server_content.input_transcription
    ]
    assert heard[0] == "400 ms of audio"
    assert interrupted


async def test_a_new_text_turn_cuts_the_reply() -> None:
    async with (
        asyncio.timeout(10),
        fake(reply_chunks=20, chunk_interval=0.05) as server,
        ws(server.url) as c,
    ):
        await do_setup(c, outputAudioTranscription={})
        await send_json(c, {"realtimeInput": {"text": "tell me a long story"}})
        assert "modelTurn" in (await recv_json(c))["serverContent"]
        await send_json(
            c,
            {
                "clientContent": {
                    "turns": [{"role": "user", "parts": [{"text": "stop"}]}],
                    "turnComplete": True,
                }
            },
        )
        frames = await recv_until(c, lambda f: f.get("serverContent", {}).get("interrupted", False))
        frames = await recv_until(c, is_turn_complete)  # the interrupted turn ends
        frames = await recv_until(c, is_turn_complete)  # then the new one is answered
    said = "".join(
        f.get("serverContent", {}).get("outputTranscription", {}).get("text", "") for f in frames
    )
    assert said == "You said: stop"
    assert server.conversation().answers[1] == "You said: stop"


@pytest.mark.parametrize(
    "frame",
    [
        {"realtimeInput": {"mediaChunks": [{"mimeType": "audio/pcm", "data": "AAAA"}]}},
        {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "x"}]}]}},
    ],
)
async def test_gemini_3_1_refuses_media_chunks_and_client_content(frame: JSON) -> None:
    async with asyncio.timeout(10), fake() as server, ws(server.url) as c:
        await do_setup(c, model="models/gemini-3.1-flash-live-preview")
        await send_json(c, frame)
        code, reason, _ = await expect_close(c)
    assert (code, reason) == (1007, "Request contains an invalid argument.")


async def test_gemini_3_1_takes_initial_history_in_client_content() -> None:
    async with asyncio.timeout(10), fake(reply_chunks=1) as server, ws(server.url) as c:
        await do_setup(
            c,
            model="models/gemini-3.1-flash-live-preview",
            historyConfig={"initialHistoryInClientContent": True},
        )
        history = {
            "turns": [{"role": "user", "parts": [{"text": "earlier"}]}],
            "turnComplete": True,
        }
        await send_json(c, {"clientContent": history})
        await send_json(c, {"realtimeInput": {"text": "now"}})
        await recv_until(c, is_turn_complete)
    assert server.conversation().user_texts == ("earlier", "now")
