"""A screen-share assistant: frames of the screen at a capped rate, plus a question.

    python examples/voice/screen_share.py             # synthetic frames, offline-friendly
    python examples/voice/screen_share.py --screen    # the real screen (pip install mss)

Frames are JPEG-encoded within a size bound (longest side 1024 px, <= 512 KiB) and capped
at ``FPS`` frames per second; the sender can be paused while the user types a password.
Uses the Gemini API when GEMINI_API_KEY is set, otherwise an offline FakeLiveServer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

import numpy as np

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.media import VideoSender, screen_frames

FPS = 4.0  # the Live API looks at about 1 frame per second; 4 keeps the demo short


async def synthetic_screen(n: int) -> AsyncIterator[np.ndarray]:
    """A moving gradient standing in for a 1080p screen; offers frames at 30 fps."""
    x = np.linspace(0, 255, 1920, dtype=np.float32)
    for i in range(n):
        frame = np.empty((1080, 1920, 3), dtype=np.uint8)
        frame[..., 0] = (x + 8 * i) % 256
        frame[..., 1] = 128
        frame[..., 2] = 255 - frame[..., 0]
        yield frame
        await asyncio.sleep(1 / 30)  # pacing, like a capture loop


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if key := os.environ.get("GEMINI_API_KEY"):
            where: dict[str, str] = {"api_key": key}
        else:
            from gemini_live.testing import FakeLiveServer

            server = await stack.enter_async_context(FakeLiveServer())
            where = {"url": server.url}
            print("(no GEMINI_API_KEY: talking to an offline FakeLiveServer)")
        session = await stack.enter_async_context(
            gl.connect(**where, output_audio_transcription=True)
        )
        sender = VideoSender(session, fps=FPS, max_side=1024, quality=70)
        frames = screen_frames(fps=FPS) if "--screen" in sys.argv else synthetic_screen(24)
        if "--screen" in sys.argv:
            async with asyncio.timeout(3):
                with contextlib.suppress(TimeoutError):
                    await sender.run(frames)
        else:
            await sender.run(frames)
        each_kib = sender.bytes_sent // max(sender.sent, 1) // 1024
        print(
            f"frames offered {sender.sent + sender.skipped}, sent {sender.sent} "
            f"({each_kib} KiB each), skipped {sender.skipped}"
        )
        sender.pause()  # e.g. while a password field has focus
        await session.send_text("What is on my screen?")
        text = []
        async with asyncio.timeout(30):
            async for event in session:
                if isinstance(event, ev.OutputTranscription):
                    text.append(event.text)
                elif isinstance(event, ev.TurnComplete):
                    break
        print("model:", "".join(text))


if __name__ == "__main__":
    asyncio.run(main())
