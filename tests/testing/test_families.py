"""The fake refuses setups and input per model family, as the capability table says.

Every test talks raw JSON over ``websockets`` so the library's own ``adapt_setup`` cannot
hide what the fake does; the last one checks that what ``adapt_setup`` sends is accepted.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gemini_live.models import FAMILIES, ModelFamily, adapt_setup
from gemini_live.testing import INVALID_ARGUMENT, TEXT_NOT_SUPPORTED, FakeLiveServer
from gemini_live.types import FunctionDeclaration, Setup, Tool

from .conftest import JSON, expect_close, is_turn_complete, recv_json, recv_until, send_json

ET = "models/gemini-3.8-live-extended-thinking"
LIVE_38 = "models/gemini-3.8-live"
FLASH_31 = "models/gemini-3.1-flash-live-preview"
NATIVE_25 = "models/gemini-2.5-flash-native-audio-preview-12-2025"
TRANSCRIBE = "models/gemini-3.5-transcribe-live"
TRANSLATE = "models/gemini-3.5-live-translate-preview"
LOW = {"thinkingConfig": {"thinkingLevel": "LOW"}}


def tool(behavior: str | None) -> list[JSON]:
    decl: JSON = {"name": "lookup", "description": "Look something up."}
    if behavior is not None:
        decl["behavior"] = behavior
    return [{"functionDeclarations": [decl]}]


async def setup_answer(setup: JSON) -> tuple[str, int | None, str]:
    """Send ``setup`` raw; ``("ok", None, "")`` or ``("closed", code, reason)``."""
    async with (
        asyncio.timeout(10),
        FakeLiveServer(validate_frames=True) as server,
        connect(server.url, compression=None, open_timeout=5) as c,
    ):
        await send_json(c, {"setup": setup})
        code, reason, frames = await expect_close_or_setup(c)
    if code is None:
        return "ok", None, ""
    assert frames == []
    return "closed", code, reason


async def expect_close_or_setup(c: ClientConnection) -> tuple[int | None, str, list[JSON]]:
    try:
        frame = await recv_json(c)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code, exc.rcvd.reason, []
    assert "setupComplete" in frame, frame
    return None, "", [frame]


REFUSED = [
    # modalities
    pytest.param({"model": ET, "generationConfig": {**LOW, "responseModalities": ["TEXT"]}},
                 TEXT_NOT_SUPPORTED, id="text-on-extended-thinking"),
    pytest.param({"model": TRANSLATE, "generationConfig": {"responseModalities": ["TEXT"]}},
                 TEXT_NOT_SUPPORTED, id="text-on-translate"),
    pytest.param({"model": TRANSCRIBE},
                 "The requested combination of response modalities (AUDIO) is not supported"
                 " by the model", id="default-audio-on-transcribe"),
    pytest.param({"model": NATIVE_25, "generationConfig": {"responseModalities": ["VIDEO"]}},
                 "The requested combination of response modalities (VIDEO) is not supported"
                 " by the model", id="video-on-2.5"),
    # tool behaviours
    pytest.param({"model": FLASH_31, "tools": tool("NON_BLOCKING")},
                 INVALID_ARGUMENT, id="non-blocking-on-3.1"),
    pytest.param({"model": ET, "generationConfig": LOW, "tools": tool("BLOCKING")},
                 INVALID_ARGUMENT, id="blocking-on-extended-thinking"),
    # thinking
    pytest.param({"model": ET}, INVALID_ARGUMENT, id="no-thinking-level-on-extended-thinking"),
    pytest.param({"model": ET, "generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
                 INVALID_ARGUMENT, id="thinking-config-without-level-on-extended-thinking"),
    pytest.param({"model": ET, "generationConfig": {"thinkingConfig": {"thinkingLevel": "MAX"}}},
                 INVALID_ARGUMENT, id="unknown-level-on-extended-thinking"),
    pytest.param({"model": LIVE_38, "generationConfig": LOW},
                 INVALID_ARGUMENT, id="thinking-on-3.8-live"),
    pytest.param({"model": NATIVE_25, "generationConfig": LOW},
                 INVALID_ARGUMENT, id="level-on-2.5"),
    pytest.param({"model": FLASH_31, "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}},
                 INVALID_ARGUMENT, id="budget-on-3.1"),
    # proactivity
    pytest.param({"model": LIVE_38, "proactivity": {"proactiveAudio": False}},
                 INVALID_ARGUMENT, id="proactive-audio-off-on-3.8"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "reason"), REFUSED)
async def test_setup_refused_as_the_service_does(setup: JSON, reason: str) -> None:
    assert await setup_answer(setup) == ("closed", 1007, reason)


ACCEPTED = [
    pytest.param({"model": FLASH_31, "tools": tool("BLOCKING")}, id="blocking-on-3.1"),
    pytest.param({"model": FLASH_31, "tools": tool(None)}, id="default-behaviour-on-3.1"),
    pytest.param({"model": ET, "generationConfig": LOW, "tools": tool("NON_BLOCKING")},
                 id="non-blocking-on-extended-thinking"),
    pytest.param({"model": ET, "generationConfig": {"thinkingConfig": {"thinkingLevel": "high"}}},
                 id="lowercase-level-on-extended-thinking"),
    # MINIMAL on Extended Thinking is an unverified fact: never refused.
    pytest.param({"model": ET, "generationConfig": {"thinkingConfig": {"thinkingLevel":
                                                                        "MINIMAL"}}},
                 id="unverified-minimal-on-extended-thinking"),
    pytest.param({"model": NATIVE_25, "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
                  "tools": tool("NON_BLOCKING")}, id="budget-and-non-blocking-on-2.5"),
    pytest.param({"model": LIVE_38, "tools": tool("BLOCKING"),
                  "proactivity": {"proactiveAudio": True}}, id="blocking-on-3.8"),
    pytest.param({"model": LIVE_38, "generationConfig": {"responseModalities": ["VIDEO"]}},
                 id="video-on-3.8"),
    pytest.param({"model": TRANSCRIBE, "generationConfig": {"responseModalities": ["TEXT"]}},
                 id="text-on-transcribe"),
    pytest.param({"model": "models/some-future-model", "generationConfig": LOW,
                  "tools": tool("NON_BLOCKING")}, id="unknown-model"),
]  # fmt: skip


@pytest.mark.parametrize("setup", ACCEPTED)
async def test_setup_accepted(setup: JSON) -> None:
    assert await setup_answer(setup) == ("ok", None, "")


@pytest.mark.parametrize(
    ("model", "refused"),
    [(FLASH_31, True), (NATIVE_25, True), (LIVE_38, False), (ET, False)],
)
async def test_context_update_per_family(model: str, refused: bool) -> None:
    gen = LOW if model == ET else {}
    async with (
        asyncio.timeout(10),
        FakeLiveServer(validate_frames=True, reply_chunks=1) as server,
        connect(server.url, compression=None, open_timeout=5) as c,
    ):
        await send_json(c, {"setup": {"model": model, "generationConfig": gen}})
        assert "setupComplete" in await recv_json(c)
        update = {"systemInstruction": {"parts": [{"text": "Be brief."}]}}
        await send_json(c, {"contextUpdate": update})
        if refused:
            code, reason, _ = await expect_close(c)
            assert (code, reason) == (1007, INVALID_ARGUMENT)
        else:
            # Extended Thinking's contextUpdate support is unverified: accepted.
            await send_json(c, {"realtimeInput": {"text": "hi"}})
            await recv_until(c, is_turn_complete)
            assert server.connections[0].open


async def test_transcribe_live_answers_in_text_and_refuses_client_content() -> None:
    async with (
        asyncio.timeout(10),
        FakeLiveServer(validate_frames=True, reply_chunks=2) as server,
        connect(server.url, compression=None, open_timeout=5) as c,
    ):
        gen = {"responseModalities": ["TEXT"]}
        await send_json(c, {"setup": {"model": TRANSCRIBE, "generationConfig": gen}})
        assert "setupComplete" in await recv_json(c)
        await send_json(c, {"realtimeInput": {"text": "hello"}})
        frames = await recv_until(c, is_turn_complete)
        parts = [
            p
            for f in frames
            for p in f.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
        ]
        assert "".join(p["text"] for p in parts) == "You said: hello"
        turn = {"turns": [{"role": "user", "parts": [{"text": "x"}]}], "turnComplete": True}
        await send_json(c, {"clientContent": turn})
        code, reason, _ = await expect_close(c)
    assert (code, reason) == (1007, INVALID_ARGUMENT)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
async def test_what_adapt_setup_sends_is_accepted(family: ModelFamily) -> None:
    """One table: a setup the library adapted for a family is never refused by the fake,
    while the same setup unadapted is refused where the family says so."""
    model = "models/" + family.examples[0]
    behavior = "BLOCKING" if "BLOCKING" not in family.tool_behaviors else "NON_BLOCKING"
    raw = Setup(
        model=model,
        tools=[Tool(function_declarations=[FunctionDeclaration(name="f", behavior=behavior)])],
    )
    adapted = adapt_setup(raw, vertex=False)
    wire = msgspec.to_builtins(adapted)
    assert await setup_answer(wire) == ("ok", None, "")
    if family.tool_behaviors and behavior not in family.tool_behaviors:
        assert await setup_answer(msgspec.to_builtins(raw)) == ("closed", 1007, INVALID_ARGUMENT)
