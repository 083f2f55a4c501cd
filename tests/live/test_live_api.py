"""Against the real Gemini API. Skipped unless GEMINI_API_KEY is set (never in CI here)."""

from __future__ import annotations

import asyncio
import os

import pytest

import gemini_live as gl
from gemini_live import events as ev

KEY = os.environ.get("GEMINI_API_KEY")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not KEY, reason="needs GEMINI_API_KEY"),
    pytest.mark.timeout(60),
]


async def test_text_turn_against_google() -> None:
    async with gl.connect(api_key=KEY, output_audio_transcription=True) as session:
        await session.send_text("Say the word 'ready' and nothing else.")
        transcript = ""
        async with asyncio.timeout(45):
            async for event in session:
                if isinstance(event, ev.OutputTranscription):
                    transcript += event.text
                if isinstance(event, ev.TurnComplete):
                    break
    assert transcript.strip()
