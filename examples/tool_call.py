"""Function calling: a Python function as a tool, answered automatically.

    python examples/tool_call.py

``ToolRegistry`` turns type hints and the docstring into the declaration;
``session.run_tools`` answers every call id exactly once while the block runs. Uses the
Gemini API when GEMINI_API_KEY is set, otherwise an offline FakeLiveServer scripted to
call get_weather when the user says "weather".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.tools import ToolRegistry
from gemini_live.types import FunctionCall, FunctionResponse

registry = ToolRegistry()


@registry.tool
async def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: City name, e.g. "Paris".
    """
    return {"city": city, "temperature_c": 18, "conditions": "sunny"}  # call a real API here


def show_result(call: FunctionCall, response: FunctionResponse, elapsed: float) -> None:
    print(f"tool:  {call.name}({call.args}) -> {response.response} in {elapsed * 1000:.1f} ms")


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        where: dict[str, Any]
        if key := os.environ.get("GEMINI_API_KEY"):
            where = {"api_key": key}
        else:
            from gemini_live.testing import FakeLiveServer, ToolScript

            server = await stack.enter_async_context(
                FakeLiveServer(
                    tool_triggers={"weather": ToolScript("get_weather", {"city": "Paris"})}
                )
            )
            where = {"url": server.url}
            print("(no GEMINI_API_KEY: talking to an offline FakeLiveServer)")
        session = await stack.enter_async_context(
            gl.connect(
                model=os.environ.get("GEMINI_MODEL", "models/gemini-3.8-live"),
                tools=registry.tools(),
                output_audio_transcription=True,
                **where,
            )
        )
        events = session.events()
        async with session.run_tools(registry, on_result=show_result):
            question = "What's the weather in Paris? Use the get_weather tool."
            print(f"you:   {question}")
            await session.send_text(question)
            answer: list[str] = []
            async for event in events:
                match event:
                    case ev.ToolCall(calls=calls):
                        print(f"model asks for: {', '.join(str(c.name) for c in calls)}")
                    case ev.OutputTranscription(text=text):
                        answer.append(text)
                    case ev.TurnComplete() if answer:
                        break
            print(f"model: {''.join(answer).strip()}")


if __name__ == "__main__":
    asyncio.run(main())
