"""The session survives connection rotation: goAway -> Reconnecting -> Resumed.

    python examples/reconnect_demo.py

The service sends goAway shortly before it closes a connection (about every 10 minutes).
The session then closes the old socket, reconnects with the latest resumption handle and
keeps one event stream across both connections. Offline, a FakeLiveServer forces the
goAway at once; with GEMINI_API_KEY set the script just keeps a session open and reports
the rotations the service asks for (Ctrl-C to stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import gemini_live as gl
from gemini_live import events as ev


async def ask(session: gl.Session, events: AsyncIterator[ev.Event], text: str) -> None:
    """Send ``text`` and print the reply transcript until turnComplete."""
    await session.send_text(text)
    print(f"you:   {text}\nmodel: ", end="", flush=True)
    async for event in events:
        if isinstance(event, ev.OutputTranscription):
            print(event.text, end="", flush=True)
        elif isinstance(event, ev.TurnComplete):
            print()
            return


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        key = os.environ.get("GEMINI_API_KEY")
        server = None
        if key:
            config = gl.build_config(api_key=key, output_audio_transcription=True)
        else:
            from gemini_live.testing import FakeLiveServer

            server = await stack.enter_async_context(FakeLiveServer())
            config = gl.build_config(url=server.url, output_audio_transcription=True)
            print("(no GEMINI_API_KEY: talking to an offline FakeLiveServer)")
        session = await stack.enter_async_context(gl.connect(config))
        events = session.events()
        print(f"connected: session {session.session_id}")
        await ask(session, events, "Remember the number 42, please.")

        lifecycle = session.events()  # a second, independent subscriber
        if server is not None:
            await server.send_go_away(time_left=1.0)  # what the service does near its limit
        else:
            print("waiting for the service's goAway (about 10 minutes); Ctrl-C to stop")
        async for event in lifecycle:
            match event:
                case ev.GoAway(time_left=left):
                    print(f"goAway: {left:.1f} s left -> rotating now")
                case ev.Reconnecting(attempt=n, cause=cause):
                    print(f"reconnecting (attempt {n}): {cause}")
                case ev.Resumed(state_restored=restored):
                    print("resumed, history kept" if restored else "FRESH session (history lost)")
                    break
        s = session.stats
        print(f"connections {s.connects}, rotations {s.go_away_rotations}, resumed {s.resumed}")
        await ask(session, events, "Which number did I ask you to remember?")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
