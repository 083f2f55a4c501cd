"""Text in, spoken reply out (printed as its transcript), with token usage per turn.

    python examples/text_chat.py

Uses the Gemini API when GEMINI_API_KEY is set, otherwise an offline FakeLiveServer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import gemini_live as gl
from gemini_live import events as ev

QUESTIONS = [
    "Hi! In one sentence, what is the Live API good for?",
    "And in one more sentence: why does low latency matter for voice?",
]


async def main() -> None:
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
                output_audio_transcription=True,  # the reply is audio; read its transcript
                **where,
            )
        )
        events = session.events()
        for question in QUESTIONS:
            print(f"you:   {question}")
            await session.send_text(question)
            print("model: ", end="", flush=True)
            async for event in events:
                match event:
                    case ev.OutputTranscription(text=text):
                        print(text, end="", flush=True)
                    case ev.TurnComplete():
                        print()
                        break
        # Usage trails turnComplete; session.usage never double-counts repeated snapshots.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for event in events:
                    if isinstance(event, ev.Usage):
                        break
        assert session.usage is not None  # kept unless connect(..., metrics=False)
        print(f"usage: {session.usage.session.summary()}")


if __name__ == "__main__":
    asyncio.run(main())
