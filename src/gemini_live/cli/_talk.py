"""``gemini-live talk``: microphone -> model -> speaker, with barge-in.

Built on the library's own pieces: :func:`gemini_live.media.microphone` (20 ms chunks from
the sound card's thread, bounded queue), :class:`gemini_live.media.Speaker` (the card pulls
from a :class:`~gemini_live.audio.PlaybackBuffer`; ``interrupted`` flushes it at once, so
the model stops talking as soon as the service hears you) and
:class:`gemini_live.vad.ActivitySender` in ``stream_end`` mode: the service's own activity
detection decides the turns, and the client sends ``audioStreamEnd`` after each utterance so
the service flushes its buffered audio.

Echo cancellation (:class:`gemini_live.audio.EchoCanceller`, the ``aec`` extra) is on by
default: every block handed to the speaker is the reference, and each microphone chunk is
cleaned before it is sent, so the model does not hear (and interrupt) itself through
loudspeakers. ``--no-aec`` turns it off; without the extra, talk says so once and goes on
without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from gemini_live import events as ev
from gemini_live._aec import AEC_HINT
from gemini_live.audio import INPUT_RATE, OUTPUT_RATE, EchoCanceller
from gemini_live.cli._runtime import (
    Conversation,
    Timeline,
    UsageError,
    format_call,
    ms,
    open_target,
    weather_tools,
)
from gemini_live.media import Speaker, microphone
from gemini_live.vad import ActivityDetector, ActivitySender

__all__ = [
    "NO_AUDIO_MESSAGE",
    "check_devices",
    "echo_canceller",
    "import_sounddevice",
    "run_talk",
]

NO_AUDIO_MESSAGE = (
    "talk needs a microphone and speaker through the 'sounddevice' package and the PortAudio"
    " library: pip install 'gemini-live[audio]', and PortAudio with"
    " apt install libportaudio2 | brew install portaudio (Windows wheels include it)"
)

MIC_MS = 20
#: Quiet after speech before ``audioStreamEnd`` is sent.
PAUSE_MS = 600


def import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing package or PortAudio into a UsageError."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise UsageError(f"{NO_AUDIO_MESSAGE} ({type(exc).__name__}: {_one_line(exc)})") from exc
    module: ModuleType = sounddevice
    return module


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check_devices(sd: Any) -> None:
    """Refuse, before connecting, when there is no default microphone or speaker."""
    for kind, what in (("input", "microphone"), ("output", "speaker")):
        try:
            sd.query_devices(kind=kind)
        except Exception as exc:  # sounddevice.PortAudioError (no such device), ValueError
            raise UsageError(
                f"no audio {kind} device ({what}) found: {_one_line(exc)};"
                " list devices with: python -m sounddevice"
            ) from exc


@contextlib.contextmanager
def _device_errors(sd: Any) -> Iterator[None]:
    """A sound card that fails to open (or vanishes) becomes one clear line."""
    error: type[BaseException] = getattr(sd, "PortAudioError", OSError)
    try:
        yield
    except error as exc:
        raise UsageError(f"the audio device failed: {_one_line(exc)}") from exc


def echo_canceller(wanted: bool) -> tuple[EchoCanceller | None, str]:
    """The canceller talk uses (or None) and the line that says so."""
    if not wanted:
        return None, "echo cancellation off (--no-aec): use headphones"
    try:
        aec = EchoCanceller(INPUT_RATE, far_rate=OUTPUT_RATE)
    except ImportError:
        return None, f"echo cancellation unavailable ({AEC_HINT}): use headphones"
    return aec, "echo cancellation on (--no-aec turns it off)"


async def run_talk(args: argparse.Namespace) -> int:
    sd: Any = import_sounddevice()
    t = Timeline()
    registry = weather_tools()
    aec, aec_line = echo_canceller(args.aec)
    speaker = Speaker(block_ms=MIC_MS, on_played=aec.playback if aec is not None else None)
    max_turns: int | None = args.max_turns

    def on_event(event: ev.Event) -> None:
        match event:
            case ev.Interrupted():
                heard = speaker.interrupt()
                t.log(
                    f"interrupted: heard {ms(heard)} of the reply,"
                    f" dropped {ms(speaker.last_dropped_seconds)} still queued"
                )
            case ev.ModelAudio():
                speaker.on_event(event)
            case ev.InputTranscription(text=text, interim=False) if text:
                t.log(f"you: {text}")
            case ev.ToolCall(calls=calls):
                for c in calls:
                    t.log(f"tool call -> {format_call(str(c.name), c.args)}")
            case ev.GoAway(time_left=left):
                t.log(f"goAway ({left:.1f} s left) -> rotating")
            case ev.Resumed(state_restored=restored):
                t.log("resumed (state restored)" if restored else "resumed as a fresh session")
            case _:
                speaker.on_event(event)

    async with open_target(args, tools=registry, timeline=t) as target:
        session = target.session
        t.log(f"connected session={session.session_id} — {target.describe()}")
        if target.offline:
            t.log("offline fake server: it answers each pause with a tone, not with speech")
        t.log(aec_line)
        t.log("speak; Ctrl-C to stop")

        async with Conversation(session, t, keep_audio=False, on_event=on_event) as conv:
            done = asyncio.Event()

            async def report() -> None:
                n = 0
                while True:
                    turn = await conv.expect_turn()
                    n += 1
                    lat = turn.latency
                    t.log(
                        f"model: {turn.text.strip() or '(audio)'}  [first audio"
                        f" {ms(lat.time_to_first_audio if lat else None)}]"
                    )
                    if max_turns is not None and n >= max_turns:
                        done.set()

            async def uplink() -> None:
                # The service's VAD takes the turns; after each utterance the client
                # tells it the mic paused (audioStreamEnd flushes its buffered audio).
                sender = ActivitySender(
                    session,
                    ActivityDetector(sample_rate=INPUT_RATE, frame_ms=MIC_MS, end_ms=PAUSE_MS),
                    mode="stream_end",
                )
                async for chunk in microphone(sample_rate=INPUT_RATE, chunk_ms=MIC_MS):
                    await sender.feed(aec.capture(chunk) if aec is not None else chunk)

            tasks = [asyncio.ensure_future(report()), asyncio.ensure_future(uplink())]
            try:
                async with session.run_tools(registry):
                    with _device_errors(sd), speaker:
                        waits = [
                            asyncio.ensure_future(done.wait()),
                            asyncio.ensure_future(conv.ended.wait()),
                        ]
                        try:
                            await asyncio.wait(
                                [*waits, *tasks], return_when=asyncio.FIRST_COMPLETED
                            )
                        except asyncio.CancelledError:
                            # Ctrl-C: stop talking, then still print the summary below.
                            current = asyncio.current_task()
                            if current is not None:
                                current.uncancel()
                            t.log("stopping")
                        finally:
                            for w in waits:
                                w.cancel()
                        for task in tasks:
                            if task.done() and not task.cancelled():
                                exc = task.exception()
                                if exc is not None:
                                    raise exc
                        if done.is_set():
                            # Let the last reply finish playing before closing the card.
                            await speaker.drain(speaker.queued_seconds + 1.0)
            finally:
                for task in tasks:
                    task.cancel()
                # A task's own error was raised above (a device error as a UsageError);
                # here only wait for them to end, so cleanup cannot replace that error.
                await asyncio.gather(*tasks, return_exceptions=True)
            for line in conv.usage_lines():
                t.log(line)
            if aec is not None:
                t.log(
                    f"echo cancellation: {aec.frames} frames,"
                    f" {aec.cpu_per_frame * 1e6:.0f} us CPU per 10 ms frame"
                )
    return 0
