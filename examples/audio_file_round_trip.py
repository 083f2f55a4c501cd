"""Send a WAV file as one spoken turn and save the model's spoken answer.

    python examples/audio_file_round_trip.py [question.wav] [reply.wav]

Any WAV works (any rate, any channel count): it is converted to 16 kHz mono PCM16, sent in
20 ms chunks and closed with audioStreamEnd. The reply (24 kHz mono) goes to reply.wav.
Without an input file a short tone is generated. Uses the Gemini API when GEMINI_API_KEY
is set, otherwise an offline FakeLiveServer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import tempfile
from array import array
from pathlib import Path
from typing import Any

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.audio import INPUT_RATE, OUTPUT_RATE, chunk_pcm, load_wav_for_live, write_wav


def make_tone(path: Path, seconds: float = 1.0, rate: int = 48000) -> None:
    samples = array(
        "h",
        (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))),
    )
    if sys.byteorder == "big":
        samples.byteswap()
    write_wav(path, samples.tobytes(), rate)


async def main(source: Path | None, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            source = Path(tmp) / "tone.wav"
            make_tone(source)
        pcm = load_wav_for_live(source)  # -> 16 kHz mono PCM16
    print(f"input: {source.name}, {len(pcm) / 2 / INPUT_RATE:.2f} s after conversion")

    async with contextlib.AsyncExitStack() as stack:
        where: dict[str, Any]
        if key := os.environ.get("GEMINI_API_KEY"):
            where = {"api_key": key}
        else:
            from gemini_live.testing import FakeLiveServer

            server = await stack.enter_async_context(FakeLiveServer())
            where = {"url": server.url}
            print("(no GEMINI_API_KEY: talking to an offline FakeLiveServer)")
        session = await stack.enter_async_context(
            gl.connect(
                model=os.environ.get("GEMINI_MODEL", "models/gemini-3.8-live"),
                input_audio_transcription=True,
                output_audio_transcription=True,
                **where,
            )
        )
        events = session.events()  # subscribe before sending: nothing can be missed
        for chunk in chunk_pcm(pcm, rate=INPUT_RATE, ms=20):
            await session.send_audio(chunk)
        await session.send_audio_stream_end()

        reply = bytearray()
        transcript: list[str] = []
        async for event in events:
            match event:
                case ev.InputTranscription(text=text, interim=False):
                    print(f"heard: {text}")
                case ev.ModelAudio(data=data):
                    reply += data
                case ev.OutputTranscription(text=text):
                    transcript.append(text)
                case ev.TurnComplete():
                    break

    write_wav(out, reply, OUTPUT_RATE)
    print(f"model: {''.join(transcript).strip()}")
    print(f"wrote {out}: {len(reply) / 2 / OUTPUT_RATE:.3f} s at {OUTPUT_RATE} Hz")


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("reply.wav")
    asyncio.run(main(src, dst))
