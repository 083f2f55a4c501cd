"""create_ephemeral_token against a local token service that enforces the fieldMask rule.

The real service answers 400 "BidiGenerateContentSetup contains fields that are not
specified in field_mask" when the constrained setup holds a field the mask does not
cover (google-gemini/gemini-live-api-examples#49), and 400 "field_mask is invalid" for
array-index paths (googleapis/js-genai#1492); paths are lowerCamel JSON names. The fake
below applies exactly those rules, and every combination of ``lock_fields`` must pass.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from gemini_live import types as T
from gemini_live.auth import create_ephemeral_token
from gemini_live.errors import ConfigError

KEY = "AIzaSyTESTONLY-fieldmask-0123456789abc"

_PATH = re.compile(r"[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*")


def _leaf_paths(obj: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaf_paths(value, path + ".")
        else:
            yield path


def mask_error(body: dict[str, Any]) -> str | None:
    """The service's rule: None if the body is acceptable, else the 400 message."""
    setup = body.get("bidiGenerateContentSetup")
    mask = body.get("fieldMask")
    if mask is None:
        return None
    paths = mask.split(",")
    if not all(_PATH.fullmatch(p) for p in paths):
        return "field_mask is invalid for BidiGenerateContentSetup"
    for leaf in _leaf_paths(setup or {}):
        if not any(leaf == p or leaf.startswith(p + ".") for p in paths):
            return "BidiGenerateContentSetup contains fields that are not specified in field_mask"
    return None


class _StrictTokenService(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        error = mask_error(body)
        if error is None:
            status, payload = 200, {"name": "auth_tokens/ok", "expireTime": body["expireTime"]}
        else:
            status, payload = 400, {"error": {"code": 400, "message": error}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def service() -> Iterator[tuple[str, type[_StrictTokenService]]]:
    handler = type("Handler", (_StrictTokenService,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def full_setup() -> T.Setup:
    return T.Setup(
        model="models/gemini-3.8-live",
        generation_config=T.GenerationConfig(
            response_modalities=["AUDIO"], speech_config=T.SpeechConfig.voice("Kore")
        ),
        system_instruction=T.Content.text("Be brief."),
        tools=[T.Tool.google_search_tool()],
        session_resumption=T.SessionResumptionConfig(),
        context_window_compression=T.ContextWindowCompression(sliding_window=T.SlidingWindow()),
    )


CANDIDATES = [
    "model",
    "generationConfig",
    "generationConfig.speechConfig",
    "system_instruction",  # snake_case: converted to systemInstruction
    "tools",
    "sessionResumption",
]


def test_the_fake_enforces_the_rule() -> None:
    # The body the old code sent for a setup and no lock_fields: rejected.
    assert mask_error(
        {"bidiGenerateContentSetup": {"model": "m", "sessionResumption": {}}, "fieldMask": "model"}
    )
    assert mask_error({"bidiGenerateContentSetup": {"tools": [{}]}, "fieldMask": "tools.0"})
    assert mask_error({"bidiGenerateContentSetup": {"tools": [{}]}, "fieldMask": "tools"}) is None


async def test_every_combination_of_lock_fields_is_accepted(
    service: tuple[str, type[_StrictTokenService]], caplog: pytest.LogCaptureFixture
) -> None:
    base, handler = service
    combos: list[list[str] | None] = [None]
    for n in range(1, len(CANDIDATES) + 1):
        combos.extend(list(c) for c in itertools.combinations(CANDIDATES, n))
    caplog.set_level(logging.WARNING, logger="gemini_live")
    for lock in combos:
        async with asyncio.timeout(10):
            token = await create_ephemeral_token(
                KEY, setup=full_setup(), lock_fields=lock, base_url=base
            )
        assert token.name == "auth_tokens/ok", lock
        body = handler.bodies[-1]
        assert mask_error(body) is None
        mask = body["fieldMask"].split(",")
        sent = body["bidiGenerateContentSetup"]
        if lock is None:
            # Everything set is locked, except the resume handle (client-controlled).
            assert "sessionResumption" not in sent and "sessionResumption" not in mask
            assert (
                set(mask)
                == set(sent)
                == {
                    "model",
                    "generationConfig",
                    "systemInstruction",
                    "tools",
                    "contextWindowCompression",
                }
            )
        else:
            # The locked fields are sent as set; nothing else is.
            for path in mask:
                assert "_" not in path
            if "model" in lock:
                assert sent["model"] == "models/gemini-3.8-live"
            if "generationConfig" in lock:
                assert sent["generationConfig"]["responseModalities"] == ["AUDIO"]
                assert "generationConfig.speechConfig" not in mask  # covered by its parent
            elif "generationConfig.speechConfig" in lock:
                assert sent["generationConfig"] == {
                    "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}
                }
            if "system_instruction" in lock:
                assert "systemInstruction" in mask and "systemInstruction" in sent
            assert "contextWindowCompression" not in sent
    assert len(handler.bodies) == len(combos) == 64
    # What was left out is named in a warning (never silently dropped).
    assert any("contextWindowCompression" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "lock",
    [["tools.0"], ["tools[0]"], ["generationConfig..speechConfig"], ["Model"], []],
)
async def test_bad_lock_fields_fail_before_anything_is_sent(
    service: tuple[str, type[_StrictTokenService]], lock: list[str]
) -> None:
    base, handler = service
    with pytest.raises(ConfigError):
        async with asyncio.timeout(10):
            await create_ephemeral_token(KEY, setup=full_setup(), lock_fields=lock, base_url=base)
    assert handler.bodies == []


async def test_no_setup_sends_no_mask(service: tuple[str, type[_StrictTokenService]]) -> None:
    base, handler = service
    async with asyncio.timeout(10):
        await create_ephemeral_token(KEY, base_url=base)
    (body,) = handler.bodies
    assert "fieldMask" not in body and "bidiGenerateContentSetup" not in body
