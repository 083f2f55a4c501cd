"""``gemini-live stream FILE.wav``: the model answers the whole file, the reply is saved.

By default the file is one user turn: the service's automatic activity detection is off
and the audio is bracketed with ``activityStart`` / ``activityEnd``. With ``--server-vad``
the service's activity detection decides where turns end (a pause in the file can make
several replies); every reply is printed and saved, until the one after
``audioStreamEnd``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from array import array
from pathlib import Path
from typing import IO

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.audio import (
    INPUT_RATE,
    OUTPUT_RATE,
    WavAudio,
    chunk_pcm,
    duration_seconds,
    load_wav_for_live,
    read_wav,
    resample,
    write_wav,
)
from gemini_live.cli._runtime import (
    Conversation,
    Timeline,
    TurnResult,
    UsageError,
    ms,
    open_target,
)
from gemini_live.errors import AudioFormatError
from gemini_live.metrics import TurnLatency

__all__ = ["Progress", "check_out", "latency_line", "level_dbfs", "run_stream"]


def check_out(out: Path) -> None:
    """Refuse an output path that cannot be written, before reading or connecting."""
    if out.is_dir():
        raise UsageError(f"cannot write {out}: it is a directory (give a file name)")
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {out}: no such directory {parent}")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"cannot write {out}: permission denied")


def _load(path: Path, out: Path) -> tuple[WavAudio, bytes]:
    check_out(out)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        info = read_wav(path)
        pcm = load_wav_for_live(path)
    except AudioFormatError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not pcm:
        raise UsageError(f"{path}: the file holds no audio")
    return info, pcm


def level_dbfs(chunk: bytes) -> float:
    """The chunk's RMS level in dB relative to full scale (-inf for silence)."""
    samples = array("h")
    samples.frombytes(chunk[: len(chunk) - len(chunk) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return -math.inf
    mean = sum(s * s for s in samples) / len(samples)
    return 10 * math.log10(mean / 32768**2) if mean else -math.inf


class Progress:
    """``stream --realtime``: elapsed / total and a level meter on stderr.

    On a terminal the line is redrawn in place (about 10 times a second); otherwise a
    line is written about once a second, plus a last one at the end.
    """

    WIDTH = 20

    def __init__(self, total: float, *, out: IO[str] | None = None) -> None:
        self.total = total
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty()
        self._last = -math.inf

    def line(self, elapsed: float, dbfs: float) -> str:
        # -60 dBFS and below is an empty meter, 0 dBFS a full one.
        filled = 0 if dbfs == -math.inf else round(self.WIDTH * min(1.0, max(0.0, 1 + dbfs / 60)))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        level = "silence" if dbfs == -math.inf else f"{dbfs:5.1f} dBFS"
        return f"streaming {elapsed:6.2f} / {self.total:.2f} s  [{bar}] {level}"

    def clear(self) -> None:
        """On a terminal, erase the line so that other output starts on a clean line."""
        if self.tty and self._last != -math.inf:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._last = -math.inf  # redraw at the next update

    def update(self, elapsed: float, chunk: bytes, *, final: bool = False) -> None:
        every = 0.1 if self.tty else 1.0
        if not final and elapsed - self._last < every:
            return
        self._last = elapsed
        text = self.line(elapsed, level_dbfs(chunk))
        if self.tty:
            self.out.write(f"\r\x1b[K{text}" + ("\n" if final else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()


def _save(out: Path, audio: bytes) -> None:
    with out.open("wb") as f:  # open first: a bad path fails cleanly
        write_wav(f, audio, OUTPUT_RATE)


#: After ``audioStreamEnd`` in ``--server-vad`` mode, when every reply so far is complete:
#: how long to wait for one more before deciding the model has answered everything.
QUIET_AFTER_END = 3.0


def latency_line(lat: TurnLatency | None) -> str:
    """The latency line: only the measured parts, never a row of dashes."""
    if lat is None:
        return "latency: not measured"
    parts = [
        f"{label} {ms(value)}"
        for label, value in (
            ("first audio", lat.time_to_first_audio),
            ("first text", lat.time_to_first_text),
            ("turn complete", lat.time_to_turn_complete),
        )
        if value is not None
    ]
    if not parts:
        return (
            "latency: not measured (the model started answering before the input ended,"
            " so there is no end of input to measure from)"
        )
    return "latency: " + ", ".join(parts)


def _report(t: Timeline, turn: TurnResult, n: int | None) -> None:
    label = "model" if n is None else f"model (reply {n})"
    if turn.input_text:
        t.log(f"you (transcribed): {turn.input_text.strip()}")
    note = " [interrupted]" if turn.interrupted else ""
    t.log(f"{label}: {turn.text.strip() or '(no transcript)'}{note}")
    if turn.audio_bytes or turn.text:
        t.log(latency_line(turn.latency))


async def _send_file(
    session: gl.Session,
    pcm: bytes,
    chunk_ms: int,
    progress: Progress | None,
) -> int:
    """Send ``pcm`` in ``chunk_ms`` chunks (paced when ``progress`` is set); the count."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    sent = 0
    chunk = b""
    for n, chunk in enumerate(chunk_pcm(pcm, rate=INPUT_RATE, ms=chunk_ms), 1):
        if progress is not None:
            # Pace against the clock (not sleep-per-chunk) so delays do not add up.
            due = start + (n - 1) * chunk_ms / 1000
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            progress.update(duration_seconds(sent, INPUT_RATE), chunk)
        await session.send_audio(chunk)
        sent += len(chunk)
    if progress is not None:
        progress.update(duration_seconds(sent, INPUT_RATE), chunk, final=True)
    return n


async def _replies_until_settled(
    conv: Conversation, before_end: int, turn_timeout: float, quiet: float
) -> None:
    """``--server-vad``: wait for the reply that follows ``audioStreamEnd``.

    The service's activity detection may have answered parts of the file already
    (``before_end`` replies when ``audioStreamEnd`` went out). Wait for a reply that
    completes after it; when every reply so far is complete and nothing is being said,
    wait at most ``quiet`` seconds for one more (the last pause may already have ended
    the last turn).
    """
    while True:
        busy = conv.in_progress()
        if len(conv.turns) > before_end and not busy:
            return
        fut = conv.expect_turn()
        settled = bool(conv.turns) and not busy
        try:
            await conv.wait(fut, min(quiet, turn_timeout) if settled else turn_timeout)
        except TimeoutError:
            if settled and not conv.in_progress():
                return
            raise


async def run_stream(args: argparse.Namespace) -> int:
    path = Path(args.file)
    out = Path(args.out)
    info, pcm = _load(path, out)
    chunk_ms: int = args.chunk_ms
    server_vad: bool = getattr(args, "server_vad", False)
    t = Timeline()
    t.log(
        f"read {path.name}: {info.duration:.3f} s, {info.rate} Hz, {info.channels} channel(s)"
        f" -> {duration_seconds(len(pcm), INPUT_RATE):.3f} s at {INPUT_RATE} Hz mono"
    )

    progress = Progress(duration_seconds(len(pcm), INPUT_RATE)) if args.realtime else None

    def on_event(event: ev.Event) -> None:
        if progress is not None and isinstance(event, ev.GoAway | ev.Reconnecting | ev.Resumed):
            progress.clear()  # a timeline line is coming: do not print it after the meter
        match event:
            case ev.GoAway(time_left=left):
                t.log(f"goAway ({left:.1f} s left) -> rotating")
            case ev.Reconnecting(cause=cause):
                t.log(f"reconnecting: {cause}")
            case ev.Resumed(state_restored=restored):
                t.log("resumed (state restored)" if restored else "resumed as a fresh session")
            case _:
                pass

    replies = 0

    def on_turn(turn: TurnResult) -> None:
        # --server-vad: each reply is printed as it completes (the file may still be
        # streaming); the one turn of the default mode is printed at the end.
        nonlocal replies
        replies += 1
        if server_vad:
            if progress is not None:
                progress.clear()
            _report(t, turn, replies)

    mode = "paced in real time" if args.realtime else "as fast as possible"
    async with open_target(args, timeline=t, client_activity=not server_vad) as target:
        session = target.session
        t.log(f"connected session={session.session_id} — {target.describe()}")
        async with Conversation(session, t, on_event=on_event, on_turn=on_turn) as conv:
            if server_vad:
                n = await _send_file(session, pcm, chunk_ms, progress)
                before_end = len(conv.turns)
                await session.send_audio_stream_end()
                t.log(f"sent {n} chunks of {chunk_ms} ms ({mode}) + audioStreamEnd")
                await _replies_until_settled(conv, before_end, args.turn_timeout, QUIET_AFTER_END)
                turns = list(conv.turns)
            else:
                # One turn for the whole file: the service's activity detection is off
                # and the file is bracketed with activityStart / activityEnd.
                fut = conv.expect_turn()
                await session.send_activity_start()
                n = await _send_file(session, pcm, chunk_ms, progress)
                await session.send_activity_end()
                t.log(f"sent activityStart + {n} chunks of {chunk_ms} ms ({mode}) + activityEnd")
                turns = [await conv.wait(fut, args.turn_timeout)]

        many = len(turns) > 1
        if not server_vad:
            _report(t, turns[0], None)
        else:
            t.log(
                "the model answered 1 time"
                if len(turns) == 1
                else f"the model answered {len(turns)} times"
            )
        audio = bytearray()
        chunks = 0
        for turn in turns:
            part = bytes(turn.audio)
            if turn.sample_rate != OUTPUT_RATE and part:
                part = resample(part, turn.sample_rate, OUTPUT_RATE)
            audio += part
            chunks += turn.audio_chunks
        _save(out, bytes(audio))
        secs = duration_seconds(len(audio), OUTPUT_RATE)
        what = f"{chunks} chunks" + (f", {len(turns)} replies" if many else "")
        t.log(f"wrote {out} ({secs:.3f} s, {OUTPUT_RATE} Hz mono, {what})")
        for line in conv.usage_lines():
            t.log(line)
    return 0
