"""``gemini-live stream FILE.wav``: send a WAV file as one audio turn, save the reply."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

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
from gemini_live.cli._runtime import Conversation, Timeline, UsageError, ms, open_target
from gemini_live.errors import AudioFormatError

__all__ = ["run_stream"]


def _load(path: Path, out: Path) -> tuple[WavAudio, bytes]:
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: no such directory {out.parent}")
    try:
        info = read_wav(path)
        pcm = load_wav_for_live(path)
    except AudioFormatError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not pcm:
        raise UsageError(f"{path}: the file holds no audio")
    return info, pcm


def _save(out: Path, audio: bytes) -> None:
    with out.open("wb") as f:  # open first: a bad path fails cleanly
        write_wav(f, audio, OUTPUT_RATE)


async def run_stream(args: argparse.Namespace) -> int:
    path = Path(args.file)
    out = Path(args.out)
    info, pcm = _load(path, out)
    chunk_ms: int = args.chunk_ms
    t = Timeline()
    t.log(
        f"read {path.name}: {info.duration:.3f} s, {info.rate} Hz, {info.channels} channel(s)"
        f" -> {duration_seconds(len(pcm), INPUT_RATE):.3f} s at {INPUT_RATE} Hz mono"
    )

    def on_event(event: ev.Event) -> None:
        match event:
            case ev.GoAway(time_left=left):
                t.log(f"goAway ({left:.1f} s left) -> rotating")
            case ev.Reconnecting(cause=cause):
                t.log(f"reconnecting: {cause}")
            case ev.Resumed(state_restored=restored):
                t.log("resumed (state restored)" if restored else "resumed as a fresh session")
            case _:
                pass

    async with open_target(args, timeline=t) as target:
        session = target.session
        t.log(f"connected session={session.session_id} — {target.describe()}")
        async with Conversation(session, t, on_event=on_event) as conv:
            fut = conv.expect_turn()
            loop = asyncio.get_running_loop()
            start = loop.time()
            n = 0
            for n, chunk in enumerate(chunk_pcm(pcm, rate=INPUT_RATE, ms=chunk_ms), 1):
                if args.realtime:
                    # Pace against the clock (not sleep-per-chunk) so delays do not add up.
                    due = start + (n - 1) * chunk_ms / 1000
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await session.send_audio(chunk)
            await session.send_audio_stream_end()
            mode = "paced in real time" if args.realtime else "as fast as possible"
            t.log(f"sent {n} chunks of {chunk_ms} ms ({mode}) + audioStreamEnd")
            turn = await conv.wait(fut, args.turn_timeout)

        if turn.input_text:
            t.log(f"you (transcribed): {turn.input_text.strip()}")
        t.log(f"model: {turn.text.strip() or '(no transcript)'}")
        audio = bytes(turn.audio)
        if turn.sample_rate != OUTPUT_RATE and audio:
            audio = resample(audio, turn.sample_rate, OUTPUT_RATE)
        _save(out, audio)
        secs = duration_seconds(len(audio), OUTPUT_RATE)
        t.log(f"wrote {out} ({secs:.3f} s, {OUTPUT_RATE} Hz mono, {turn.audio_chunks} chunks)")
        lat = turn.latency
        if lat is not None:
            t.log(
                f"latency: first audio {ms(lat.time_to_first_audio)}, first text"
                f" {ms(lat.time_to_first_text)}, turn complete {ms(lat.time_to_turn_complete)}"
            )
        for line in conv.usage_lines():
            t.log(line)
    return 0
