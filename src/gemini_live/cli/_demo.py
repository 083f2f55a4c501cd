"""``gemini-live demo``: text turn, audio turn, tool call, goAway + resume, metrics."""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
from array import array
from pathlib import Path
from typing import Any

from gemini_live import events as ev
from gemini_live.audio import INPUT_RATE, chunk_pcm, duration_seconds, load_wav_for_live, write_wav
from gemini_live.cli._runtime import (
    Conversation,
    Timeline,
    TurnResult,
    format_call,
    format_json,
    ms,
    open_target,
    weather_tools,
)
from gemini_live.types import FunctionCall, FunctionResponse

__all__ = ["make_chirp", "run_demo"]


def make_chirp(
    seconds: float = 0.6, rate: int = 44100, f0: float = 300.0, f1: float = 1200.0
) -> bytes:
    """A linear sine sweep, PCM16 mono little-endian (a stand-in for a spoken question)."""
    n = int(seconds * rate)
    k = (f1 - f0) / seconds
    samples = array(
        "h",
        (
            int(9000 * math.sin(2 * math.pi * (f0 * (i / rate) + 0.5 * k * (i / rate) ** 2)))
            for i in range(n)
        ),
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


class _DemoPrinter:
    """Timeline lines for the events the demo story is about."""

    def __init__(self, timeline: Timeline) -> None:
        self.t = timeline

    def __call__(self, event: ev.Event) -> None:
        log = self.t.log
        match event:
            case ev.SetupComplete(session_id=sid):
                log(f"connected session={sid or '?'}")
            case ev.InputTranscription(text=text, interim=False) if text:
                log(f"heard: {text}")
            case ev.ToolCall(calls=calls):
                for c in calls:
                    log(f"tool call -> {format_call(_name(c), _args(c))}")
            case ev.Interrupted():
                log("interrupted")
            case ev.GoAway(time_left=left):
                log(f"goAway ({left:.1f} s left) -> rotating")
            case ev.Reconnecting(attempt=n, delay=d, cause=cause):
                log(f"reconnecting (attempt {n}, in {d:.2f} s): {cause}")
            case ev.Resumed(state_restored=True):
                log("resumed (state restored)")
            case ev.Resumed(state_restored=False):
                log("resumed as a FRESH session (state lost)")
            case ev.Closed(code=code, reason=reason):
                log(f"closed code={code} {reason}".rstrip())
            case _:
                pass


def _name(call: FunctionCall) -> str:
    return call.name if isinstance(call.name, str) else "?"


def _args(call: FunctionCall) -> Any:
    return call.args if isinstance(call.args, dict) else {}


def _report_turn(t: Timeline, label: str, turn: TurnResult) -> None:
    reply = turn.text.strip() or "(no transcript)"
    t.log(f"model: {reply}")
    lat = turn.latency
    t.log(
        f"{label} done: {turn.audio_chunks} audio chunks ({turn.audio_seconds * 1000:.0f} ms"
        f" at {turn.sample_rate} Hz); first audio {ms(lat.time_to_first_audio if lat else None)}"
        f", first text {ms(lat.time_to_first_text if lat else None)}"
    )


async def run_demo(args: argparse.Namespace) -> int:
    t = Timeline()
    timeout: float = args.turn_timeout
    registry = weather_tools()

    def on_call(call: FunctionCall) -> None:
        t.log(f"tool running: {_name(call)}")

    def on_result(call: FunctionCall, response: FunctionResponse, elapsed: float) -> None:
        t.log(
            f"tool result <- {_name(call)}: {format_json(response.response)}"
            f" ({elapsed * 1000:.1f} ms)"
        )

    async with open_target(args, tools=registry, timeline=t) as target:
        session = target.session
        t.log(f"connected session={session.session_id} — {target.describe()}")
        printer = _DemoPrinter(t)

        def on_event(event: ev.Event) -> None:
            if not isinstance(event, ev.SetupComplete) or session.stats.connects > 1:
                printer(event)

        conv = Conversation(session, t, on_event=on_event)
        async with conv, session.run_tools(registry, on_call=on_call, on_result=on_result):
            # 1. text
            t.plain("")
            t.log("— 1. text turn —")
            text = "Hello! Please introduce yourself in one sentence."
            t.log(f"you: {text}")
            turn = await conv.send_text(text, seconds=timeout)
            _report_turn(t, "text turn", turn)

            # 2. audio from a WAV file
            t.plain("")
            t.log("— 2. audio turn —")
            with tempfile.TemporaryDirectory(prefix="gemini-live-demo-") as tmp:
                wav = Path(tmp) / "question.wav"
                write_wav(wav, make_chirp(), 44100)
                pcm = load_wav_for_live(wav)
            secs = duration_seconds(len(pcm), INPUT_RATE)
            t.log(f"you: [{secs * 1000:.0f} ms of audio: {wav.name}, 44.1 kHz -> 16 kHz mono]")
            fut = conv.expect_turn()
            chunks = 0
            for chunk in chunk_pcm(pcm, rate=INPUT_RATE, ms=20):
                await session.send_audio(chunk)
                chunks += 1
            await session.send_audio_stream_end()
            t.log(f"sent {chunks} chunks of 20 ms + audioStreamEnd")
            if target.offline:
                turn = await conv.wait(fut, timeout)
                _report_turn(t, "audio turn", turn)
            else:
                # A synthetic chirp is not speech: the service's VAD may not answer it.
                try:
                    turn = await conv.wait(fut, min(timeout, 15.0))
                except TimeoutError:
                    t.log("no reply: the service heard no speech in the synthetic chirp; going on")
                else:
                    _report_turn(t, "audio turn", turn)

            # 3. a tool call
            t.plain("")
            t.log("— 3. tool call —")
            text = "What's the weather in Paris right now? Use the get_weather tool."
            t.log(f"you: {text}")
            turn = await conv.send_text(text, seconds=timeout)
            _report_turn(t, "tool turn", turn)
            if not turn.tool_calls and not any(x.tool_calls for x in conv.turns):
                t.log("(the model answered without calling the tool)")

            # 4. goAway + resumption
            t.plain("")
            t.log("— 4. goAway and resumption —")
            if target.fake is None:
                t.log(
                    f"skipped: goAway can't be forced on {target.describe()} (the service"
                    " sends it near its ~10 min connection limit; the session then rotates"
                    " and resumes on its own)"
                )
            else:
                conv.resumed.clear()
                await target.fake.send_go_away(time_left=1.0)
                async with asyncio.timeout(timeout):
                    await conv.resumed.wait()
                text = "Are you still there after the reconnect?"
                t.log(f"you: {text}")
                turn = await conv.send_text(text, seconds=timeout)
                _report_turn(t, "follow-up turn", turn)
                st = session.stats
                t.log(
                    f"connections {st.connects}, goAway rotations {st.go_away_rotations},"
                    f" resumed {st.resumed}, session={session.session_id}"
                )

            # summary
            t.plain("")
            t.log("— summary —")
            for line in conv.usage_lines():
                t.plain(f"  {line}")
            t.plain("  latency (from the end of your input):")
            for line in conv.latency_lines():
                t.plain(f"    {line}")
            avg = conv.tracker.averages()
            if "time_to_first_audio" in avg:
                t.plain(f"    average time to first audio: {ms(avg['time_to_first_audio'])}")
    t.log("done")
    return 0
