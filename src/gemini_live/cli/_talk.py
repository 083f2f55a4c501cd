"""``gemini-live talk``: microphone -> model -> speaker, with barge-in.

The sound card runs two callbacks on its own threads: the microphone hands 20 ms chunks to
the event loop (bounded queue, oldest dropped), the speaker pulls from a
:class:`~gemini_live.audio.PlaybackBuffer` under a lock. ``interrupted`` flushes that
buffer at once (it precedes any audio of the same frame), so the model stops talking as
soon as the service hears you.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from array import array
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from gemini_live import events as ev
from gemini_live.audio import INPUT_RATE, OUTPUT_RATE, PlaybackBuffer, resample
from gemini_live.cli._runtime import (
    Conversation,
    Timeline,
    UsageError,
    format_call,
    ms,
    open_target,
    weather_tools,
)

__all__ = [
    "NO_AUDIO_MESSAGE",
    "PauseDetector",
    "Speaker",
    "check_devices",
    "import_sounddevice",
    "run_talk",
]

NO_AUDIO_MESSAGE = (
    "talk needs a microphone and speaker through the 'sounddevice' package and the PortAudio"
    " library: pip install 'gemini-live[audio]', and PortAudio with"
    " apt install libportaudio2 | brew install portaudio (Windows wheels include it)"
)

MIC_MS = 20


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


def rms(chunk: bytes) -> float:
    """Root mean square of a PCM16 little-endian chunk."""
    samples = array("h")
    samples.frombytes(chunk[: len(chunk) - len(chunk) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return 0.0
    return float((sum(s * s for s in samples) / len(samples)) ** 0.5)


class PauseDetector:
    """Energy-based speech/pause tracking on the microphone stream.

    :meth:`feed` returns ``"speech"`` for a loud chunk, ``"pause"`` once after
    ``pause_ms`` of quiet that followed speech (the moment to send ``audioStreamEnd``),
    else ``None``.
    """

    def __init__(self, *, threshold: float = 500.0, pause_ms: int = 600) -> None:
        self.threshold = threshold
        self.pause_ms = pause_ms
        self._quiet_ms = 0.0
        self._speaking = False

    def feed(self, chunk: bytes, rate: int = INPUT_RATE) -> str | None:
        dur = len(chunk) / 2 / rate * 1000
        if rms(chunk) >= self.threshold:
            self._speaking = True
            self._quiet_ms = 0.0
            return "speech"
        if not self._speaking:
            return None
        self._quiet_ms += dur
        if self._quiet_ms >= self.pause_ms:
            self._speaking = False
            return "pause"
        return None


class Speaker:
    """The playback side: model audio in, sound-card frames out, flushed on barge-in."""

    def __init__(self, *, max_seconds: float = 30.0) -> None:
        self.buffer = PlaybackBuffer(OUTPUT_RATE, max_seconds=max_seconds)
        self.lock = threading.Lock()
        self.interruptions = 0
        self._drained: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    async def wait_drained(self, limit: float) -> None:
        """Wait (at most ``limit`` seconds) until everything queued has been played."""
        event = asyncio.Event()
        with self.lock:
            if not self.buffer.queued_bytes:
                return
            self._drained = (asyncio.get_running_loop(), event)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await event.wait()
        self._drained = None

    def on_event(self, event: ev.Event) -> float | None:
        """Queue audio; on ``Interrupted`` flush and return the seconds dropped."""
        if isinstance(event, ev.Interrupted):
            with self.lock:
                dropped = self.buffer.flush()
            self.interruptions += 1
            return dropped / 2 / OUTPUT_RATE
        if isinstance(event, ev.ModelAudio):
            data = event.data
            if event.sample_rate != OUTPUT_RATE:
                data = resample(data, event.sample_rate, OUTPUT_RATE)
            with self.lock:
                self.buffer.push(data)
        return None

    def callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        """sounddevice RawOutputStream callback (runs on the audio thread)."""
        with self.lock:
            data = self.buffer.pop(frames * 2)
            drained = self._drained if not self.buffer.queued_bytes else None
        outdata[:] = data
        if drained is not None:
            loop, event = drained
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                loop.call_soon_threadsafe(event.set)


@contextlib.contextmanager
def _device_errors(sd: Any) -> Iterator[None]:
    """A sound card that fails to open (or vanishes) becomes one clear line."""
    error: type[BaseException] = getattr(sd, "PortAudioError", OSError)
    try:
        yield
    except error as exc:
        raise UsageError(f"the audio device failed: {_one_line(exc)}") from exc


async def run_talk(args: argparse.Namespace) -> int:
    sd: Any = import_sounddevice()
    t = Timeline()
    registry = weather_tools()
    loop = asyncio.get_running_loop()
    mic: asyncio.Queue[bytes] = asyncio.Queue(maxsize=250)  # 5 s of 20 ms chunks
    speaker = Speaker()
    pauses = PauseDetector()
    max_turns: int | None = args.max_turns

    def on_mic(indata: Any, frames: int, time_info: Any, status: Any) -> None:
        data = bytes(indata)

        def put() -> None:
            if mic.full():
                mic.get_nowait()  # drop the oldest: never block the audio thread
            mic.put_nowait(data)

        loop.call_soon_threadsafe(put)

    def on_event(event: ev.Event) -> None:
        dropped = speaker.on_event(event)
        match event:
            case ev.Interrupted():
                t.log(f"interrupted: dropped {ms(dropped)} of queued reply")
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
                pass

    async with open_target(args, tools=registry, timeline=t) as target:
        session = target.session
        t.log(f"connected session={session.session_id} — {target.describe()}")
        if target.offline:
            t.log("offline fake server: it answers each pause with a tone, not with speech")
        t.log("speak (headphones avoid echo); Ctrl-C to stop")

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
                while True:
                    chunk = await mic.get()
                    await session.send_audio(chunk)
                    state = pauses.feed(chunk)
                    if state == "pause":
                        # Tell the service the mic paused (flushes its buffered audio).
                        await session.send_audio_stream_end()

            stream_kw: dict[str, Any] = {"channels": 1, "dtype": "int16"}
            tasks = [asyncio.ensure_future(report()), asyncio.ensure_future(uplink())]
            try:
                async with session.run_tools(registry):
                    with (
                        _device_errors(sd),
                        sd.RawInputStream(
                            samplerate=INPUT_RATE,
                            blocksize=INPUT_RATE * MIC_MS // 1000,
                            callback=on_mic,
                            **stream_kw,
                        ),
                        sd.RawOutputStream(
                            samplerate=OUTPUT_RATE,
                            blocksize=OUTPUT_RATE * MIC_MS // 1000,
                            callback=speaker.callback,
                            **stream_kw,
                        ),
                    ):
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
                            await speaker.wait_drained(speaker.buffer.queued_seconds + 1.0)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            for line in conv.usage_lines():
                t.log(line)
    return 0
