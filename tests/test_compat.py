"""compat.setup_from_genai, and every Python block of docs/migrating-from-google-genai.md.

The doc's blocks run in order in one namespace. Both the google-genai client and
gemini-live talk to the offline FakeLiveServer: the SDK client through its websocket base
URL, gemini-live through ``Endpoint.gemini`` (both patched only for the test).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from google.genai import types as gt

import gemini_live as gl
from gemini_live import types as T
from gemini_live.compat import is_genai_config, setup_from_genai
from gemini_live.errors import ConfigError
from gemini_live.testing import FakeLiveServer
from test_auth_field_mask import mask_error

DOC = Path(__file__).resolve().parents[1] / "docs" / "migrating-from-google-genai.md"
KEY = "test-only-migration-key"


class _TokenService(BaseHTTPRequestHandler):
    """Answers POST .../auth_tokens like the service, enforcing the fieldMask rule."""

    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        error = mask_error(body)
        status = 200 if error is None else 400
        payload = {"name": "auth_tokens/browser-1"} if error is None else {"error": error}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def token_service() -> Iterator[tuple[str, type[_TokenService]]]:
    handler = type("Handler", (_TokenService,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_doc_has_blocks() -> None:
    assert len(python_blocks()) >= 5


async def test_every_python_block_of_the_migration_page_runs(
    monkeypatch: pytest.MonkeyPatch, token_service: tuple[str, type[_TokenService]]
) -> None:
    from google import genai

    from gemini_live import auth

    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    tokens_url, tokens = token_service
    defaults = dict(auth.create_ephemeral_token.__kwdefaults__ or {})
    monkeypatch.setattr(
        auth.create_ephemeral_token, "__kwdefaults__", {**defaults, "base_url": tokens_url}
    )
    async with asyncio.timeout(30), FakeLiveServer(require_api_key=KEY) as server:
        real_client = genai.Client

        def client(**kwargs: Any) -> Any:
            c = real_client(**kwargs)
            api = c._api_client
            api._websocket_base_url = lambda http_options=None: server.base_url  # type: ignore[method-assign]
            api._websocket_ssl_ctx = {}
            return c

        monkeypatch.setattr(genai, "Client", client)
        monkeypatch.setattr(
            gl.Endpoint,
            "gemini",
            classmethod(lambda cls, **kw: cls.custom(server.url, api="gemini")),
        )
        namespace: dict[str, Any] = {"__name__": "migration_doc"}
        for block in python_blocks():
            exec(compile(block, str(DOC), "exec"), namespace)
        assert await namespace["ask_genai"]("Hello!") == "You said: Hello!"
        assert await namespace["ask"]("Hello!") == "You said: Hello!"
        assert await namespace["ask_with_genai_config"]("Hi") == "You said: Hi"
        # All three sent the same setup (the SDK's own wire form is the reference).
        setups = [rec.received[0].setup for rec in server.connections]
        assert len(setups) == 3
        sdk, ours, converted = setups
        assert ours == converted
        # Same fields as the SDK sent (it adds role "user" to the system instruction;
        # gemini-live adds sessionResumption for its automatic resume).
        assert isinstance(sdk, T.Setup) and isinstance(ours, T.Setup)
        assert sdk.generation_config == ours.generation_config
        assert sdk.output_audio_transcription == ours.output_audio_transcription
        assert sdk.model == ours.model
        # The token block: one mint per call, only masked fields sent.
        answer = await namespace["token_for_browser"]()
        assert answer["token"] == "auth_tokens/browser-1"
        assert answer["url"] == server.url  # Endpoint.gemini is pointed at the fake here
        ((body,),) = [tokens.bodies]
        assert body["fieldMask"] == "model,systemInstruction"
        assert body["uses"] == 1


# --------------------------------------------------------------------------- conversion


def full_config() -> gt.LiveConnectConfig:
    return gt.LiveConnectConfig(
        response_modalities=[gt.Modality.AUDIO],
        temperature=0.4,
        media_resolution=gt.MediaResolution.MEDIA_RESOLUTION_LOW,
        speech_config=gt.SpeechConfig(
            voice_config=gt.VoiceConfig(
                prebuilt_voice_config=gt.PrebuiltVoiceConfig(voice_name="Kore")
            ),
            language_code="en-US",
        ),
        thinking_config=gt.ThinkingConfig(thinking_level=gt.ThinkingLevel.LOW),
        system_instruction=gt.Content(parts=[gt.Part(text="Be brief.")]),
        tools=[
            gt.Tool(google_search=gt.GoogleSearch()),
            gt.Tool(
                function_declarations=[
                    gt.FunctionDeclaration(
                        name="get_weather",
                        description="Weather for a city",
                        parameters=gt.Schema(
                            type=gt.Type.OBJECT,
                            properties={"city_name": gt.Schema(type=gt.Type.STRING)},
                            required=["city_name"],
                        ),
                        behavior=gt.Behavior.NON_BLOCKING,
                    )
                ]
            ),
        ],
        session_resumption=gt.SessionResumptionConfig(handle="h-1"),
        input_audio_transcription=gt.AudioTranscriptionConfig(),
        output_audio_transcription=gt.AudioTranscriptionConfig(language_codes=["en-US"]),
        realtime_input_config=gt.RealtimeInputConfig(
            automatic_activity_detection=gt.AutomaticActivityDetection(silence_duration_ms=500),
            turn_coverage=gt.TurnCoverage.TURN_INCLUDES_ALL_INPUT,
        ),
        context_window_compression=gt.ContextWindowCompressionConfig(
            trigger_tokens=20000, sliding_window=gt.SlidingWindow(target_tokens=10000)
        ),
        proactivity=gt.ProactivityConfig(proactive_audio=True),
        history_config=gt.HistoryConfig(initial_history_in_client_content=True),
    )


def test_full_config_converts_to_the_sdk_wire_form() -> None:
    config = full_config()
    assert is_genai_config(config) and not is_genai_config({})
    setup = setup_from_genai(config, model="models/gemini-3.8-live")
    wire = json.loads(msgspec.json.encode(T.ClientMessage(setup=setup)))
    gen = wire["setup"]["generationConfig"]
    assert gen["responseModalities"] == ["AUDIO"] and gen["temperature"] == 0.4
    assert gen["thinkingConfig"] == {"thinkingLevel": "LOW"}
    assert gen["speechConfig"]["languageCode"] == "en-US"
    fd = wire["setup"]["tools"][1]["functionDeclarations"][0]
    assert fd["behavior"] == "NON_BLOCKING"
    assert fd["parameters"]["properties"] == {"city_name": {"type": "STRING"}}  # names kept
    assert wire["setup"]["sessionResumption"] == {"handle": "h-1"}
    assert wire["setup"]["contextWindowCompression"]["slidingWindow"] == {"targetTokens": 10000}
    # The SDK's wire model accepts it (realtimeInputConfig is not in its setup model).
    checked = json.loads(json.dumps(wire))
    checked["setup"].pop("realtimeInputConfig")
    gt.LiveClientMessage.model_validate_json(json.dumps(checked))
    assert setup.realtime_input_config == T.RealtimeInputConfig(
        automatic_activity_detection=T.AutomaticActivityDetection(silence_duration_ms=500),
        turn_coverage="TURN_INCLUDES_ALL_INPUT",
    )


def test_dict_form_snake_and_camel_and_top_level_wins() -> None:
    setup = setup_from_genai(
        {
            "generationConfig": {"temperature": 0.1, "response_modalities": ["TEXT"]},
            "responseModalities": ["AUDIO"],
            "speech_config": gt.SpeechConfig(voice_config=gt.VoiceConfig(voice="voices/custom-1")),
            "system_instruction": ["line one", gt.Part(text="line two")],
            "avatar_config": {"customized_avatar": {"image_data": b"\x89PNG"}},
            "labels": {"team": "voice"},
            "tools": None,
        },
        model="m",
    )
    assert setup.generation_config == T.GenerationConfig(
        response_modalities=["AUDIO"],
        temperature=0.1,
        speech_config=T.SpeechConfig(voice_config=T.VoiceConfig(voice="voices/custom-1")),
    )
    assert setup.system_instruction == T.Content(
        parts=[T.Part(text="line one"), T.Part(text="line two")]
    )
    assert setup.avatar_config == T.AvatarConfig(
        customized_avatar=T.CustomizedAvatar(image_data="iVBORw==")
    )
    assert setup.labels == {"team": "voice"}


def _tool_function(city: str) -> str:
    return city


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"http_options": {"api_version": "v1alpha"}}, "httpOptions"),
        ({"tools": [{"retrieval": {}}]}, "tools[0].retrieval"),
        ({"tools": [_tool_function]}, "tools[0]"),
        ({"generation_config": {"response_mime_type": "x"}}, "generationConfig.responseMimeType"),
        (
            {"safety_settings": [{"category": "C", "method": "SEVERITY"}]},
            "safetySettings[0].method",
        ),
        ({"speech_config": {"voice_config": {"bogus": 1}}}, "voiceConfig.bogus"),
        ({"model": "x"}, "model"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_unmappable_fields_are_config_errors(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        setup_from_genai(config, model="models/gemini-3.8-live")
    assert field in str(info.value)


def test_sdk_object_with_a_callable_tool_is_refused() -> None:
    config = gt.LiveConnectConfig(tools=[_tool_function])
    with pytest.raises(ConfigError, match=r"tools\[0\]: a Python function"):
        setup_from_genai(config, model="m")


def test_not_a_config() -> None:
    with pytest.raises(ConfigError):
        setup_from_genai(42, model="m")
    with pytest.raises(ConfigError):
        setup_from_genai({}, model="")
