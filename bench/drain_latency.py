"""Barge-in latency during a goAway drain: input written on the old connection or held.

The model is mid-reply (a 600 ms turn of paced audio) when the service sends ``goAway``;
the user then interrupts with a text. We measure the time from that send to the first
event of the model's answer to it, for ``drain_input="write"`` and ``"hold"``, on the
embedded FakeLiveServer over loopback (picows). Run: ``python -m bench.drain_latency``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer

TRIALS = 15


async def one(mode: str) -> float:
    async with FakeLiveServer(reply_chunks=15, chunk_interval=0.04) as server:
        cfg = gl.build_config(
            url=server.url,
            output_audio_transcription=True,
            drain_input=mode,  # type: ignore[arg-type]
        )
        async with gl.connect(cfg) as session:
            stream = session.events()
            await session.send_text("tell me a long story")
            async with asyncio.timeout(10):
                async for event in stream:
                    if isinstance(event, ev.ModelAudio):
                        break
            await server.send_go_away(time_left=5.0)
            async with asyncio.timeout(10):
                async for event in stream:
                    if isinstance(event, ev.GoAway):
                        break
            t0 = time.perf_counter()
            await session.send_text("stop")
            async with asyncio.timeout(10):
                async for event in stream:
                    if isinstance(event, ev.OutputTranscription) and "stop" in event.text:
                        return time.perf_counter() - t0
    raise AssertionError("no answer")


async def main() -> None:
    results: dict[str, list[float]] = {"write": [], "hold": []}
    for _ in range(TRIALS):
        for mode in results:  # interleaved
            results[mode].append(await one(mode))
    for mode, values in results.items():
        ms = sorted(v * 1000 for v in values)
        print(
            f"drain_input={mode:5}  median {statistics.median(ms):7.1f} ms"
            f"  min {ms[0]:7.1f}  max {ms[-1]:7.1f}  (n={len(ms)})"
        )
    w = statistics.median(results["write"])
    h = statistics.median(results["hold"])
    print(f"hold / write: {h / w:.1f}x")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
