"""FakeLiveServer, driven by a bare websockets client, the memory backend and google-genai."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from gemini_live.codec import decode_server, encode_server
from gemini_live.errors import ConnectError
from gemini_live.testing import (
    API_KEY_INVALID,
    BEARER_INVALID,
    CANCELLED,
    ENTITY_NOT_FOUND,
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    TOKEN_INVALID,
    TONE_PCM,
    UNREGISTERED_CALLER,
    FakeLiveServer,
    ToolScript,
    validate_server_frame,
)
from gemini_live.testing._canned import parse_path
from gemini_live.testing._memory import MemoryTransport
from gemini_live.testing._normalize import decode_client_tolerant, normalize_keys
from gemini_live.transport.base import CloseInfo, ConnectOptions, Transport, TransportClosed
from gemini_live.types import (
    UNSET,
    Blob,
    Content,
    GoAway,
    ServerContent,
    ServerMessage,
    VoiceActivity,
)

from .conftest import (
    JSON,
    Collector,
    do_setup,
    expect_close,
    is_handle,
    is_turn_complete,
    is_update,
    recv_json,
    recv_until,
    send_json,
    transcript,
)

KEY = "AIzaFAKEKEY0123456789"
TOKEN = "auth_tokens/tok123"
BEARER = "ya29.bearer"
PCM_16K_20MS = bytes(range(256)) * 2 + bytes(128)  # 640 bytes = 20 ms at 16 kHz


def fake(**options: Any) -> FakeLiveServer:
    """Every test server checks its own frames with the google-genai oracle."""
    return FakeLiveServer(validate_frames=True, **options)


def ws(url: str, headers: dict[str, str] | None = None) -> connect:
    return connect(url, additional_headers=headers, compression=None, open_timeout=5)


# --------------------------------------------------------------------------- paths & urls


def test_url_shapes() -> None:
    server = FakeLiveServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    server._port = 1234
    assert server.base_url == "ws://127.0.0.1:1234"
    assert server.url == (
        "ws://127.0.0.1:1234/ws/google.ai.generativelanguage.v1beta"
        ".GenerativeService.BidiGenerateContent"
    )
    assert server.url_for("constrained", "v1alpha").endswith(
        "generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
    )
    assert server.url_for("vertex") == (
        "ws://127.0.0.1:1234/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    )
    assert server.url_for("gemini", "v1").endswith(".v1.GenerativeService.BidiGenerateContent")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
            ("gemini", "v1beta"),
        ),
        (
            "//ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent",
            ("gemini", "v1"),
        ),
        (
            "/ws/google.ai.generativelanguage.v1alpha.GenerativeService"
            ".BidiGenerateContentConstrained?access_token=x",
            ("constrained", "v1alpha"),
        ),
        (
            "/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent",
            ("vertex", "v1"),
        ),
        (
            "//ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent",
            ("vertex", "v1beta1"),
        ),
        ("/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent", None),
        ("/ws/google.cloud.aiplatform.v1beta.LlmBidiService/BidiGenerateContent", None),
        ("/ws/other", None),
        ("/", None),
    ],
)
def test_parse_path(path: str, expected: tuple[str, str] | None) -> None:
    assert parse_path(path) == expected


async def test_unknown_path_is_http_404() -> None:
    async with asyncio.timeout(5), fake() as server:
        with pytest.raises(InvalidStatus) as info:
            async with ws(server.base_url + "/ws/nope"):
                pass
        assert info.value.response.status_code == 404
        assert server.connections == []


async def test_double_slash_path_accepted() -> None:
    async with asyncio.timeout(5), fake() as server:
        url = server.base_url + "//ws/google.ai.generativelanguage.v1.GenerativeService"
        async with ws(url + ".BidiGenerateContent") as c:
            await do_setup(c)
        assert server.connections[0].api_version == "v1"
        assert server.connections[0].kind == "gemini"


# --------------------------------------------------------------------------- auth


async def _auth_result(
    server: FakeLiveServer, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str] | JSON:
    """Connect, send setup: the setupComplete frame, or (code, reason) of the close."""
    async with ws(url, headers) as c:
        await send_json(c, {"setup": {"model": "models/m"}})
        code, reason, frames = await expect_close_or_first(c)
        return frames if frames else (code, reason)


async def expect_close_or_first(c: ClientConnection) -> tuple[int, str, JSON]:
    try:
        frame = await recv_json(c)
    except Exception:
        code, reason, _ = await expect_close(c)
        return code, reason, {}
    return 0, "", frame


@pytest.mark.parametrize(
    ("kind", "suffix", "headers", "expected"),
    [
        ("gemini", "", {"x-goog-api-key": KEY}, None),
        ("gemini", f"?key={KEY}", None, None),
        ("gemini", "", {"x-goog-api-key": "wrong"}, (1007, API_KEY_INVALID)),
        ("gemini", "", None, (1007, API_KEY_INVALID)),
        ("gemini", "?key=wrong", None, (1007, API_KEY_INVALID)),
        ("gemini", f"?access_token={TOKEN}", None, (1008, UNREGISTERED_CALLER[:123])),
        ("gemini", "", {"Authorization": f"Token {TOKEN}"}, (1008, UNREGISTERED_CALLER[:123])),
        ("constrained", "", {"Authorization": f"Token {TOKEN}"}, None),
        ("constrained", f"?access_token={TOKEN}", None, None),
        ("constrained", "?access_token=auth_tokens/bogus", None, (1007, TOKEN_INVALID)),
        ("constrained", "", {"x-goog-api-key": KEY}, (1007, TOKEN_INVALID)),
        ("vertex", "", {"Authorization": f"Bearer {BEARER}"}, None),
        ("vertex", "", {"Authorization": "Bearer ya29.other"}, (1007, BEARER_INVALID)),
        ("vertex", "", {"x-goog-api-key": KEY}, None),  # express mode
        ("vertex", "", None, (1007, BEARER_INVALID)),
    ],
)
async def test_auth_modes(
    kind: str, suffix: str, headers: dict[str, str] | None, expected: tuple[int, str] | None
) -> None:
    async with (
        asyncio.timeout(5),
        fake(require_api_key=KEY, require_token=TOKEN, require_bearer=BEARER) as server,
    ):
        version = "v1alpha" if kind == "constrained" else None
        url = server.url_for(kind, version) + suffix  # type: ignore[arg-type]
        result = await _auth_result(server, url, headers)
        if expected is None:
            assert isinstance(result, dict) and "setupComplete" in result
        else:
            assert result == expected
            rec = await server.wait_for_close()
            assert (rec.close_code, rec.close_reason) == expected


async def test_no_requirements_accepts_anyone() -> None:
    async with asyncio.timeout(5), fake() as server:
        for kind in ("gemini", "constrained", "vertex"):
            async with ws(server.url_for(kind)) as c:
                await do_setup(c)
        assert [c.kind for c in server.connections] == ["gemini", "constrained", "vertex"]


async def test_headers_and_query_are_recorded() -> None:
    async with asyncio.timeout(5), fake(require_api_key=KEY) as server:
        async with ws(server.url + "?alt=x", {"X-Goog-Api-Key": KEY, "X-Extra": "1"}) as c:
            await do_setup(c)
        rec = server.connections[0]
        assert rec.headers["x-goog-api-key"] == KEY
        assert rec.headers["x-extra"] == "1"
        assert rec.query == {"alt": "x"}
        assert rec.transport == "websocket"


async def test_auth_on_connect_closes_before_setup() -> None:
    async with asyncio.timeout(5), fake(require_api_key=KEY, auth_on_connect=True) as server:
        async with ws(server.url) as c:
            code, reason, frames = await expect_close(c)
        assert (code, reason, frames) == (1007, API_KEY_INVALID, [])
        assert server.received == [[]]


# --------------------------------------------------------------------------- setup


async def test_setup_complete_is_binary_with_session_id() -> None:
    async with asyncio.timeout(5), fake() as server:
        async with ws(server.url) as c:
            await send_json(c, {"setup": {"model": "models/m"}})
            raw = await c.recv()
            assert isinstance(raw, bytes)
            assert json.loads(raw) == {"setupComplete": {"sessionId": "fake-session-1"}}
        rec = await server.wait_for_close()
        assert rec.close_code == 1000
        assert rec.session_id == "fake-session-1"
        assert rec.setup_completed


@pytest.mark.parametrize(
    "first",
    [
        {"realtimeInput": {"text": "hi"}},
        {"setup": {"model": "m"}, "realtimeInput": {"text": "hi"}},
        {},
        {"setup": {}},  # model is required
        {"setup": {"model": 5}},
    ],
)
async def test_first_frame_must_be_a_valid_setup(first: JSON) -> None:
    async with asyncio.timeout(5), fake() as server, ws(server.url) as c:
        await send_json(c, first)
        assert (await expect_close(c))[:2] == (1007, INVALID_ARGUMENT)


@pytest.mark.parametrize("frame", [b"not json", b"[1,2]", b'"x"', b"\xff\xfe"])
async def test_undecodable_frame_closes_1007(frame: bytes) -> None:
    async with asyncio.timeout(5), fake() as server:
        async with ws(server.url) as c:
            await do_setup(c)
            await c.send(frame)
            assert (await expect_close(c))[:2] == (1007, INVALID_ARGUMENT)
        assert len(server.received[0]) == 1


async def test_bad_base64_closes_1007() -> None:
    async with asyncio.timeout(5), fake() as server, ws(server.url) as c:
        await do_setup(c)
        await send_json(c, {"realtimeInput": {"audio": {"data": "!!!", "mimeType": "a"}}})
        assert (await expect_close(c))[:2] == (1007, INVALID_ARGUMENT)


@pytest.mark.parametrize(
    "mime", ["audio/pcm;rate=0", "audio/pcm;rate=" + "9" * 5000, "audio/pcm;rate=x"]
)
async def test_unusable_audio_rate_closes_1007(mime: str) -> None:
    # Once a ZeroDivisionError (1011) or a slow int() of a huge digit string.
    async with asyncio.timeout(5), fake() as server, ws(server.url) as c:
        await do_setup(c)
        await send_json(c, {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": mime}}})
        assert (await expect_close(c))[:2] == (1007, INVALID_ARGUMENT)


async def test_second_setup_closes_1007() -> None:
    async with asyncio.timeout(5), fake() as server:
        async with ws(server.url) as c:
            await do_setup(c)
            await send_json(c, {"setup": {"model": "models/m"}})
            assert (await expect_close(c))[:2] == (1007, INVALID_ARGUMENT)
        assert len(server.received[0]) == 2  # the second setup is recorded too


async def test_reject_setup() -> None:
    reject = (1007, "Cannot extract voices from a non-audio request.")
    async with asyncio.timeout(5), fake(reject_setup=reject) as server:
        async with ws(server.url) as c:
            await send_json(c, {"setup": {"model": "models/m"}})
            code, reason, frames = await expect_close(c)
        assert (code, reason, frames) == (*reject, [])


async def test_reject_next_setups() -> None:
    async with asyncio.timeout(5), fake() as server:
        server.reject_next_setups(2, (1011, "Internal error encountered."))
        for _ in range(2):
            async with ws(server.url) as c:
                await send_json(c, {"setup": {"model": "models/m"}})
                assert (await expect_close(c))[:2] == (1011, "Internal error encountered.")
        async with ws(server.url) as c:
            await do_setup(c)


async def test_missing_setup_complete() -> None:
    async with asyncio.timeout(5), fake(send_setup_complete=False) as server:
        async with ws(server.url) as c:
            await send_json(c, {"setup": {"model": "models/m"}})
            await send_json(c, {"realtimeInput": {"text": "anyone?"}})
            await server.wait_for_messages(2)
            await server.close(1011, "Internal error encountered.")
            code, reason, frames = await expect_close(c)
        assert frames == []  # neither setupComplete nor a reply
        assert (code, reason) == (1011, "Internal error encountered.")


async def test_setup_delay() -> None:
    async with asyncio.timeout(5), fake(setup_delay=0.1) as server, ws(server.url) as c:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await do_setup(c)
        assert loop.time() - start >= 0.09


# --------------------------------------------------------------------------- decoding


def test_normalize_keys_keeps_user_data() -> None:
    obj = {
        "realtime_input": {"audio": {"mime_type": "audio/pcm", "data": "AA"}},
        "tool_response": {
            "function_responses": [
                {"id": "c", "name": "n", "will_continue": True, "response": {"temp_c": 1}}
            ]
        },
        "setup": {
            "tools": [
                {
                    "function_declarations": [
                        {
                            "name": "f",
                            "parameters": {
                                "type": "OBJECT",
                                "properties": {
                                    "city_name": {"type": "STRING", "any_of": [{"max_items": 1}]}
                                },
                                "property_ordering": ["city_name"],
                            },
                            "parameters_json_schema": {"properties": {"snake_key": {}}},
                            "response": {"type": "OBJECT", "properties": {"out_val": {}}},
                        }
                    ]
                }
            ],
            "realtime_input_config": {"automatic_activity_detection": {"disabled": True}},
        },
        "toolCall": {"functionCalls": [{"args": {"a_b": 1}, "partial_args": [{"x_y": 1}]}]},
    }
    out = normalize_keys(obj)
    assert out["realtimeInput"]["audio"] == {"mimeType": "audio/pcm", "data": "AA"}
    fr = out["toolResponse"]["functionResponses"][0]
    assert fr == {"id": "c", "name": "n", "willContinue": True, "response": {"temp_c": 1}}
    decl = out["setup"]["tools"][0]["functionDeclarations"][0]
    assert decl["parameters"] == {
        "type": "OBJECT",
        "properties": {"city_name": {"type": "STRING", "anyOf": [{"maxItems": 1}]}},
        "propertyOrdering": ["city_name"],
    }
    assert decl["parametersJsonSchema"] == {"properties": {"snake_key": {}}}
    assert decl["response"] == {"type": "OBJECT", "properties": {"out_val": {}}}
    assert out["setup"]["realtimeInputConfig"] == {"automaticActivityDetection": {"disabled": True}}
    assert out["toolCall"]["functionCalls"][0] == {"args": {"a_b": 1}, "partialArgs": [{"x_y": 1}]}


def test_decode_tolerant_urlsafe_and_int64_strings() -> None:
    raw = b"\xff\xd8\xfb\xef" * 4
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "-" in urlsafe or "_" in urlsafe
    frame = json.dumps({"realtime_input": {"audio": {"data": urlsafe, "mime_type": "audio/pcm"}}})
    msg, audio = decode_client_tolerant(frame.encode())
    assert audio == raw
    assert msg.realtime_input is not UNSET and isinstance(msg.realtime_input.audio, Blob)
    assert msg.realtime_input.audio.data == base64.b64encode(raw).decode()
    assert msg.realtime_input.audio.mime_type == "audio/pcm"
    setup = b'{"setup":{"model":"m","contextWindowCompression":{"triggerTokens":"25000"}}}'
    msg, _ = decode_client_tolerant(setup)
    assert msg.setup is not UNSET and msg.setup.context_window_compression is not UNSET
    assert msg.setup.context_window_compression.trigger_tokens == 25000


@pytest.mark.parametrize(
    "frame",
    [
        b'{"realtime_input": [}',
        b'[{"a_b": 1}]',
        b'{"realtime_input": {"text": 5}}',
        b'{"client_content": {}, "tool_response": {"function_responses": []}}',
        b'{"tool_response": {"function_responses": [{"name": "f", "response": {},'
        b' "parts": [{"inline_data": {"data": "!!"}}]}]}}',
        b'{"realtime_input": {"media_chunks": [{"data": "%%", "mime_type": "audio/pcm"}]}}',
    ],
)
def test_decode_tolerant_rejects(frame: bytes) -> None:
    with pytest.raises(ValueError):
        decode_client_tolerant(frame)


def test_decode_tolerant_media_chunks_and_response_parts() -> None:
    pcm = b"\xfb\xff" * 8
    urlsafe = base64.urlsafe_b64encode(pcm).decode()
    chunks = [
        {"data": urlsafe, "mime_type": "audio/pcm;rate=8000"},
        {"data": urlsafe, "mime_type": "image/jpeg"},
    ]
    msg, audio = decode_client_tolerant(
        json.dumps({"realtime_input": {"media_chunks": chunks}}).encode()
    )
    assert audio == pcm  # only the audio chunk counts as audio
    assert msg.realtime_input is not UNSET and msg.realtime_input.media_chunks is not UNSET
    assert [b.data for b in msg.realtime_input.media_chunks] == [base64.b64encode(pcm).decode()] * 2
    frame = {
        "tool_response": {
            "function_responses": [
                {
                    "id": "c",
                    "name": "f",
                    "response": {"x_y": 1},
                    "parts": [{"inline_data": {"data": urlsafe, "mime_type": "image/png"}}],
                }
            ]
        }
    }
    msg, _ = decode_client_tolerant(json.dumps(frame).encode())
    assert msg.tool_response is not UNSET
    fr = msg.tool_response.function_responses[0]
    assert fr.response == {"x_y": 1}
    assert fr.parts == [
        {"inlineData": {"data": base64.b64encode(pcm).decode(), "mimeType": "image/png"}}
    ]
    setup = {
        "setup": {
            "model": "m",
            "system_instruction": {"parts": [{"inline_data": {"data": urlsafe, "mime_type": "a"}}]},
        }
    }
    msg, _ = decode_client_tolerant(json.dumps(setup).encode())
    assert msg.setup is not UNSET and isinstance(msg.setup.system_instruction, Content)
    parts = msg.setup.system_instruction.parts
    assert parts is not UNSET and isinstance(parts[0].inline_data, Blob)
    assert parts[0].inline_data.data == base64.b64encode(pcm).decode()


async def test_media_chunks_audio_turn() -> None:
    pcm = bytes(1600)  # 100 ms at 8 kHz
    chunk = {"data": base64.b64encode(pcm).decode(), "mimeType": "audio/pcm;rate=8000"}
    async with asyncio.timeout(5), fake(reply_chunks=1) as server, ws(server.url) as c:
        await do_setup(c, inputAudioTranscription={})
        await send_json(c, {"realtimeInput": {"mediaChunks": [chunk]}})
        await send_json(c, {"realtimeInput": {"audioStreamEnd": True}})
        frames = await recv_until(c, is_turn_complete)
    assert frames[0] == {"serverContent": {"inputTranscription": {"text": "100 ms of audio"}}}


async def test_server_bug_is_reported_not_hidden() -> None:
    triggers = {"boom": ToolScript("f", {"x": object()})}  # not JSON-encodable
    with pytest.raises(AssertionError, match="fake server error"):
        async with asyncio.timeout(5), fake(tool_triggers=triggers) as server:
            async with ws(server.url) as c:
                await do_setup(c)
                await send_json(c, {"realtimeInput": {"text": "boom"}})
                assert (await expect_close(c))[:2] == (1011, "Internal error encountered.")
            assert len(server.errors) == 1


async def test_snake_case_and_urlsafe_frames_over_the_wire() -> None:
    img = b"\xff\xd8\xff\xe0" * 8
    pcm = b"\xfb\xff\xfe\xff" * 160  # URL-safe base64 of this has '-' / '_'
    async with asyncio.timeout(5), fake() as server:
        async with ws(server.url) as c:
            await do_setup(
                c,
                generation_config={
                    "response_modalities": ["AUDIO"],
                    "speech_config": {
                        "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}
                    },
                },
                tools=[
                    {
                        "function_declarations": [
                            {
                                "name": "get_weather",
                                "parameters_json_schema": {
                                    "type": "object",
                                    "properties": {"city_name": {"type": "string"}},
                                },
                            }
                        ]
                    }
                ],
                context_window_compression={"sliding_window": {"target_tokens": 1000}},
            )
            b64u = base64.urlsafe_b64encode
            await send_json(
                c,
                {
                    "realtime_input": {
                        "audio": {"data": b64u(pcm).decode(), "mime_type": "audio/pcm;rate=16000"}
                    }
                },
            )
            await send_json(
                c,
                {
                    "realtime_input": {
                        "video": {"data": b64u(img).decode(), "mime_type": "image/jpeg"}
                    }
                },
            )
            await send_json(
                c,
                {
                    "client_content": {
                        "turns": [
                            {
                                "role": "user",
                                "parts": [
                                    {
                                        "inline_data": {
                                            "data": b64u(img).decode(),
                                            "mime_type": "image/jpeg",
                                        }
                                    }
                                ],
                            }
                        ],
                        "turn_complete": False,
                    }
                },
            )
            await c.send(json.dumps({"realtime_input": {"audio_stream_end": True}}).encode())
            await server.wait_for_messages(5)
        setup, audio, video, content, end = server.received[0]
        assert setup.setup is not UNSET
        gc = setup.setup.generation_config
        assert gc is not UNSET and gc.speech_config is not UNSET
        assert gc.speech_config.voice_config is not UNSET
        assert gc.speech_config.voice_config.prebuilt_voice_config is not UNSET
        assert gc.speech_config.voice_config.prebuilt_voice_config.voice_name == "Kore"
        assert setup.setup.tools is not UNSET
        decls = setup.setup.tools[0].function_declarations
        assert decls is not UNSET
        assert decls[0].parameters_json_schema == {
            "type": "object",
            "properties": {"city_name": {"type": "string"}},
        }
        cwc = setup.setup.context_window_compression
        assert cwc is not UNSET and cwc.sliding_window is not UNSET
        assert cwc.sliding_window.target_tokens == 1000
        assert audio.realtime_input is not UNSET and isinstance(audio.realtime_input.audio, Blob)
        assert audio.realtime_input.audio.decoded() == pcm
        assert audio.realtime_input.audio.data == base64.b64encode(pcm).decode()
        assert video.realtime_input is not UNSET and isinstance(video.realtime_input.video, Blob)
        assert video.realtime_input.video.data == base64.b64encode(img).decode()
        assert content.client_content is not UNSET and content.client_content.turns is not UNSET
        part = content.client_content.turns[0].parts
        assert part is not UNSET and isinstance(part[0].inline_data, Blob)
        assert part[0].inline_data.decoded() == img
        assert end.realtime_input is not UNSET and end.realtime_input.audio_stream_end is True
        assert bytes(server.connections[0].audio) == pcm


# --------------------------------------------------------------------------- replies


async def test_text_reply_turn_structure() -> None:
    async with asyncio.timeout(5), fake(reply_chunks=3) as server, ws(server.url) as c:
        await do_setup(c, sessionResumption={}, outputAudioTranscription={})
        await send_json(c, {"realtimeInput": {"text": "hello there world"}})
        frames = await recv_until(c, is_handle)
        await send_json(c, {"realtimeInput": {"text": "again"}})
        frames2 = await recv_until(c, is_handle)
    # While the model generates, the session is not resumable.
    assert frames[0] == {"sessionResumptionUpdate": {"resumable": False}}
    frames = frames[1:]
    frames2 = frames2[1:]
    audio = [f for f in frames if "modelTurn" in f.get("serverContent", {})]
    assert len(audio) == 3
    for f in audio:
        (part,) = f["serverContent"]["modelTurn"]["parts"]
        assert part["inlineData"]["mimeType"] == "audio/pcm;rate=24000"
        assert base64.b64decode(part["inlineData"]["data"]) == TONE_PCM
    assert len(TONE_PCM) == 1920  # 40 ms of 24 kHz PCM16
    assert transcript(frames) == "You said: hello there world"
    assert frames[3] == {"serverContent": {"generationComplete": True}}
    assert frames[4]["serverContent"] == {"turnComplete": True}
    usage1 = frames[4]["usageMetadata"]
    assert usage1["totalTokenCount"] == usage1["promptTokenCount"] + usage1["responseTokenCount"]
    assert frames[5] == {
        "sessionResumptionUpdate": {"newHandle": "fake-handle-1", "resumable": True}
    }
    assert len(frames) == 6
    usage2 = frames2[4]["usageMetadata"]
    assert usage2["promptTokenCount"] > usage1["promptTokenCount"]
    # Per-turn usage: the prompt is the whole context so far, the response this turn's only.
    assert usage2["responseTokenCount"] == usage1["responseTokenCount"]
    assert usage2["promptTokenCount"] >= usage1["totalTokenCount"]
    assert transcript(frames2) == "You said: again"
    # Every frame decodes with our own codec too.
    for f in frames + frames2:
        decode_server(json.dumps(f))


async def test_no_transcription_or_update_unless_asked() -> None:
    async with asyncio.timeout(5), fake(reply_chunks=2) as server, ws(server.url) as c:
        await do_setup(c)
        await send_json(c, {"realtimeInput": {"text": "hi"}})
        frames = await recv_until(c, is_turn_complete)
        await send_json(c, {"realtimeInput": {"text": "next"}})
        nxt = await recv_json(c)
    assert transcript(frames) == ""
    assert len(frames) == 4
    assert "modelTurn" in nxt["serverContent"]  # no resumption update in between


async def test_client_content_turns() -> None:
    async with asyncio.timeout(5), fake(reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, outputAudioTranscription={})
            await send_json(
                c,
                {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "history"}]}]}},
            )
            await send_json(
                c,
                {
                    "clientContent": {
                        "turns": [{"role": "user", "parts": [{"text": "question"}]}],
                        "turnComplete": True,
                    }
                },
            )
            frames = await recv_until(c, is_turn_complete)
        assert transcript(frames) == "You said: question"
        session = server.sessions["fake-session-1"]
        assert session.history == [
            ("user", "history"),
            ("user", "question"),
            ("model", "You said: question"),
        ]
        assert session.turns == 1


async def test_initial_history_is_not_answered() -> None:
    def turn(role: str, text: str) -> JSON:
        return {"role": role, "parts": [{"text": text}]}

    async with (
        asyncio.timeout(5),
        fake(reply_chunks=1) as server,
        ws(server.url) as c,
    ):
        await do_setup(
            c,
            historyConfig={"initialHistoryInClientContent": True},
            outputAudioTranscription={},
        )
        await send_json(c, {"clientContent": {"turns": [turn("user", "a"), turn("model", "b")]}})
        await send_json(c, {"clientContent": {"turns": [turn("user", "c")], "turnComplete": True}})
        await send_json(c, {"realtimeInput": {"text": "now"}})
        frames = await recv_until(c, is_turn_complete)
        assert transcript(frames) == "You said: now"  # the first reply is for "now"
        assert server.sessions["fake-session-1"].history == [
            ("user", "a"),
            ("model", "b"),
            ("user", "c"),
            ("user", "now"),
            ("model", "You said: now"),
        ]


@pytest.mark.parametrize("end", ["audioStreamEnd", "activityEnd"])
async def test_audio_turn(end: str) -> None:
    async with asyncio.timeout(5), fake(reply_chunks=2) as server, ws(server.url) as c:
        await do_setup(c, inputAudioTranscription={}, outputAudioTranscription={})
        if end == "activityEnd":
            await send_json(c, {"realtimeInput": {"activityStart": {}}})
        chunk = base64.b64encode(PCM_16K_20MS).decode()
        for _ in range(5):
            await send_json(
                c,
                {"realtimeInput": {"audio": {"data": chunk, "mimeType": "audio/pcm;rate=16000"}}},
            )
        end_value: Any = True if end == "audioStreamEnd" else {}
        await send_json(c, {"realtimeInput": {end: end_value}})
        frames = await recv_until(c, is_turn_complete)
    assert frames[0] == {"serverContent": {"inputTranscription": {"text": "100 ms of audio"}}}
    assert transcript(frames) == "I heard 100 ms of audio."
    audio = [f for f in frames if "modelTurn" in f.get("serverContent", {})]
    assert len(audio) == 2
    assert bytes(server.connections[0].audio) == PCM_16K_20MS * 5


async def test_audio_stream_end_without_audio_is_silent() -> None:
    async with asyncio.timeout(5), fake() as server, ws(server.url) as c:
        await do_setup(c)
        await send_json(c, {"realtimeInput": {"audioStreamEnd": True}})
        await send_json(c, {"realtimeInput": {"text": "x"}})
        first = await recv_json(c)
    assert "modelTurn" in first["serverContent"]
    assert len(server.connections[0].sent) == 1 + 3 + 2  # setupComplete + the "x" turn


async def test_auto_reply_off_records_only() -> None:
    async with asyncio.timeout(5), fake(auto_reply=False) as server:
        async with ws(server.url) as c:
            await do_setup(c)
            await send_json(c, {"realtimeInput": {"text": "hi"}})
            await server.wait_for_messages(2)
            await server.send(ServerMessage(server_content=ServerContent(turn_complete=True)))
            assert await recv_json(c) == {"serverContent": {"turnComplete": True}}
        assert server.sessions["fake-session-1"].history == [("user", "hi")]


async def test_zero_reply_chunks_still_transcribes() -> None:
    async with asyncio.timeout(5), fake(reply_chunks=0) as server, ws(server.url) as c:
        await do_setup(c, outputAudioTranscription={})
        await send_json(c, {"realtimeInput": {"text": "x"}})
        frames = await recv_until(c, is_turn_complete)
    assert frames[0] == {"serverContent": {"outputTranscription": {"text": "You said: x"}}}
    assert len(frames) == 3


# --------------------------------------------------------------------------- tools


def _calls(frame: JSON) -> list[JSON]:
    calls: list[JSON] = frame["toolCall"]["functionCalls"]
    return calls


async def test_blocking_tool_call_round_trip() -> None:
    triggers = {"weather": ToolScript("get_weather", {"city": "Paris"})}
    async with asyncio.timeout(5), fake(tool_triggers=triggers, reply_chunks=2) as server:
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={}, outputAudioTranscription={})
            await send_json(c, {"realtimeInput": {"text": "What's the Weather?"}})
            call = await recv_json(c)
            assert _calls(call) == [
                {"id": "call-1", "name": "get_weather", "args": {"city": "Paris"}}
            ]
            # While a blocking call runs the session is not resumable.
            assert await recv_json(c) == {"sessionResumptionUpdate": {"resumable": False}}
            await send_json(
                c,
                {
                    "tool_response": {
                        "function_responses": [
                            {
                                "id": "call-1",
                                "name": "get_weather",
                                "response": {"output": {"temp_c": 18}},
                            }
                        ]
                    }
                },
            )
            frames = await recv_until(c, is_handle)
        assert transcript(frames) == 'get_weather returned {"temp_c":18}'
        assert frames[-1]["sessionResumptionUpdate"]["resumable"] is True
        tr = server.received[0][-1].tool_response
        assert tr is not UNSET
        assert tr.function_responses[0].response == {"output": {"temp_c": 18}}


async def test_parallel_calls_reply_after_all_answers() -> None:
    triggers = {"lights": ToolScript("turn_on", {"room": "all"}, parallel=3)}
    async with asyncio.timeout(5), fake(tool_triggers=triggers, reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, outputAudioTranscription={})
            await send_json(c, {"realtimeInput": {"text": "lights please"}})
            calls = _calls(await recv_json(c))
            assert [x["id"] for x in calls] == ["call-1", "call-2", "call-3"]
            # Answer two in one message, the third separately: only then a reply.
            first = [{"id": x["id"], "name": "turn_on", "response": {"ok": 1}} for x in calls[:2]]
            await send_json(c, {"toolResponse": {"functionResponses": first}})
            await server.wait_for_messages(3)
            await send_json(
                c,
                {
                    "toolResponse": {
                        "functionResponses": [{"id": "call-3", "name": "turn_on", "response": {}}]
                    }
                },
            )
            frames = await recv_until(c, is_turn_complete)
        assert transcript(frames) == (
            'turn_on returned {"ok":1}; turn_on returned {"ok":1}; turn_on returned {}'
        )
        assert "toolCall" not in frames[0]


async def test_cancelled_call() -> None:
    triggers = {"slow": ToolScript("slow_op", cancel_after=True, parallel=2)}
    async with asyncio.timeout(5), fake(tool_triggers=triggers) as server:
        async with ws(server.url) as c:
            await do_setup(c, outputAudioTranscription={})
            await send_json(c, {"realtimeInput": {"text": "do the slow thing"}})
            ids = [x["id"] for x in _calls(await recv_json(c))]
            assert await recv_json(c) == {"toolCallCancellation": {"ids": ids}}
            end = await recv_json(c)
            assert end["serverContent"] == {"turnComplete": True}
            # A late response to a cancelled id is ignored, not an error.
            await send_json(
                c,
                {
                    "toolResponse": {
                        "functionResponses": [{"id": ids[0], "name": "slow_op", "response": {}}]
                    }
                },
            )
            await send_json(c, {"realtimeInput": {"text": "still there?"}})
            frames = await recv_until(c, is_turn_complete)
        assert transcript(frames) == "You said: still there?"
        assert server.sessions["fake-session-1"].cancelled_calls == set(ids)


async def test_unknown_tool_response_id_closes_1008() -> None:
    async with asyncio.timeout(5), fake() as server, ws(server.url) as c:
        await do_setup(c)
        await send_json(
            c,
            {"toolResponse": {"functionResponses": [{"id": "nope", "name": "f", "response": {}}]}},
        )
        assert (await expect_close(c))[:2] == (1008, ENTITY_NOT_FOUND)


async def test_partial_responses_only_final_replies() -> None:
    triggers = {"count": ToolScript("counter")}
    async with asyncio.timeout(5), fake(tool_triggers=triggers, reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, outputAudioTranscription={})
            await send_json(c, {"realtimeInput": {"text": "count for me"}})
            (call,) = _calls(await recv_json(c))
            for i in range(2):
                resp = {
                    "id": call["id"],
                    "name": "counter",
                    "response": {"output": i},
                    "willContinue": True,
                }
                await send_json(c, {"toolResponse": {"functionResponses": [resp]}})
            await server.wait_for_messages(4)
            assert len(server.connections[0].sent) == 2  # setupComplete + toolCall only
            final = {"id": call["id"], "name": "counter", "response": {}, "willContinue": False}
            await send_json(c, {"toolResponse": {"functionResponses": [final]}})
            frames = await recv_until(c, is_turn_complete)
        assert transcript(frames) == "counter returned 0; counter returned 1"


@pytest.mark.parametrize("scheduling", ["SILENT", "WHEN_IDLE"])
async def test_non_blocking_call(scheduling: str) -> None:
    triggers = {"search": ToolScript("search", {"q": "x"}, non_blocking=True)}
    async with asyncio.timeout(5), fake(tool_triggers=triggers, reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, outputAudioTranscription={}, sessionResumption={})
            await send_json(c, {"realtimeInput": {"text": "search it"}})
            (call,) = _calls(await recv_json(c))
            frames = await recv_until(c, is_handle)
            assert transcript(frames) == "Calling search."
            assert frames[-1]["sessionResumptionUpdate"]["resumable"] is True  # non-blocking
            resp = {
                "id": call["id"],
                "name": "search",
                "response": {"output": "r"},
                "scheduling": scheduling,
            }
            await send_json(c, {"toolResponse": {"functionResponses": [resp]}})
            await send_json(c, {"realtimeInput": {"text": "bye"}})
            frames = await recv_until(c, is_turn_complete)
        expected = 'search returned "r"' if scheduling == "WHEN_IDLE" else "You said: bye"
        assert transcript(frames) == expected


async def test_server_initiated_tool_call_and_cancellation() -> None:
    async with asyncio.timeout(5), fake(reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, outputAudioTranscription={})
            ids = await server.send_tool_call(
                calls=[("c-9", "lookup", {"q": "x"}), ("c-10", "lookup", {})]
            )
            assert ids == ["c-9", "c-10"]
            assert _calls(await recv_json(c)) == [
                {"id": "c-9", "name": "lookup", "args": {"q": "x"}},
                {"id": "c-10", "name": "lookup", "args": {}},
            ]
            await server.send_tool_call_cancellation(["c-10"])
            assert await recv_json(c) == {"toolCallCancellation": {"ids": ["c-10"]}}
            resp = {"id": "c-9", "name": "lookup", "response": {"output": 42}}
            await send_json(c, {"toolResponse": {"functionResponses": [resp]}})
            frames = await recv_until(c, is_turn_complete)
        assert transcript(frames) == "lookup returned 42"


# --------------------------------------------------------------------------- goAway


async def test_go_away_after_messages_then_close_1000() -> None:
    async with asyncio.timeout(5), fake(go_away_after_messages=2, go_away_time_left=0.2) as server:
        async with ws(server.url) as c:
            await do_setup(c)
            await send_json(c, {"realtimeInput": {"text": "one"}})
            await recv_until(c, is_turn_complete)
            await send_json(c, {"realtimeInput": {"text": "two"}})
            frames = await recv_until(c, lambda f: "goAway" in f)
            loop = asyncio.get_running_loop()
            start = loop.time()
            code, reason, rest = await expect_close(c)
            waited = loop.time() - start
        assert frames[-1] == {"goAway": {"timeLeft": "0.2s"}}
        assert (code, reason, rest) == (1000, CANCELLED, [])
        assert waited >= 0.1
        rec = await server.wait_for_close()
        assert (rec.close_code, rec.close_reason) == (1000, CANCELLED)


async def test_go_away_after_seconds() -> None:
    async with (
        asyncio.timeout(5),
        fake(go_away_after_seconds=0.05, go_away_time_left=0.05) as server,
        ws(server.url) as c,
    ):
        await do_setup(c)
        assert await recv_json(c) == {"goAway": {"timeLeft": "0.05s"}}
        assert (await expect_close(c))[:2] == (1000, CANCELLED)


async def test_go_away_zero_messages_is_immediate() -> None:
    async with asyncio.timeout(5), fake(go_away_after_messages=0, go_away_time_left=30) as server:
        async with ws(server.url) as c:
            await do_setup(c)
            assert await recv_json(c) == {"goAway": {"timeLeft": "30s"}}
            await c.close()  # the client leaves before the deadline: no server close
        rec = await server.wait_for_close()
        assert rec.close_code == 1000 and rec.close_reason == ""


async def test_manual_go_away_without_deadline() -> None:
    async with asyncio.timeout(5), fake() as server, ws(server.url) as c:
        await do_setup(c)
        await server.send_go_away(time_left=0.01, close_after=False)
        assert await recv_json(c) == {"goAway": {"timeLeft": "0.01s"}}
        await send_json(c, {"realtimeInput": {"text": "still open"}})
        await recv_until(c, is_turn_complete)


# --------------------------------------------------------------------------- resumption


async def test_resume_with_handle_keeps_session() -> None:
    async with asyncio.timeout(5), fake(reply_chunks=1) as server:
        async with ws(server.url) as c:
            sid = (await do_setup(c, sessionResumption={}))["setupComplete"]["sessionId"]
            await send_json(c, {"realtimeInput": {"text": "remember me"}})
            frames = await recv_until(c, is_handle)
            handle = frames[-1]["sessionResumptionUpdate"]["newHandle"]
            usage1 = frames[-2]["usageMetadata"]
        async with ws(server.url) as c:
            resumed = await do_setup(c, sessionResumption={"handle": handle})
            assert resumed["setupComplete"]["sessionId"] == sid
            await send_json(c, {"realtimeInput": {"text": "again"}})
            frames = await recv_until(c, is_handle)
            usage2 = frames[-2]["usageMetadata"]
        assert usage2["promptTokenCount"] > usage1["promptTokenCount"]
        assert usage2["totalTokenCount"] > usage1["totalTokenCount"]
        assert server.connections[1].resumed_from == handle
        assert server.connections[0].resumed_from is None
        session = server.sessions[sid]
        assert session.turns == 2 and session.connections == [0, 1]
        assert [t for _, t in session.history] == [
            "remember me",
            "You said: remember me",
            "again",
            "You said: again",
        ]
        # Stale handles: expired ones and unknown ones.
        server.expire_handles()
        assert server.handles == []
        for bad in (handle, "fake-handle-999"):
            async with ws(server.url) as c:
                await send_json(
                    c, {"setup": {"model": "models/m", "sessionResumption": {"handle": bad}}}
                )
                assert (await expect_close(c))[:2] == (1008, SESSION_NOT_FOUND)
        # An empty handle starts a fresh session.
        async with ws(server.url) as c:
            fresh = await do_setup(c, sessionResumption={"handle": ""})
            assert fresh["setupComplete"]["sessionId"] != sid


async def test_resuming_from_an_old_handle_rolls_back() -> None:
    async with asyncio.timeout(5), fake(reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={})
            await send_json(c, {"realtimeInput": {"text": "one"}})
            old = (await recv_until(c, is_handle))[-1]["sessionResumptionUpdate"]["newHandle"]
            await send_json(c, {"realtimeInput": {"text": "two"}})
            await recv_until(c, is_handle)
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={"handle": old})
        session = server.sessions["fake-session-1"]
        assert [t for _, t in session.history] == ["one", "You said: one"]
        assert server.connections[0].rolled_back == {2}
        assert [m.realtime_input.text for m in server.consumed[0][1:]] == ["one"]  # type: ignore[union-attr]


async def test_not_resumable() -> None:
    async with asyncio.timeout(5), fake(resumable=False, reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={})
            await send_json(c, {"realtimeInput": {"text": "x"}})
            frames = await recv_until(c, is_turn_complete)
            frames.append(await recv_json(c))
        updates = [f for f in frames if is_update(f)]
        assert updates == [{"sessionResumptionUpdate": {"resumable": False}}] * 2
        assert server.handles == []


async def test_pending_call_unknown_after_resume_from_pre_call_handle() -> None:
    triggers = {"tool": ToolScript("f")}
    async with asyncio.timeout(5), fake(tool_triggers=triggers, reply_chunks=1) as server:
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={})
            await send_json(c, {"realtimeInput": {"text": "hi"}})
            handle = (await recv_until(c, is_handle))[-1]["sessionResumptionUpdate"]["newHandle"]
            await send_json(c, {"realtimeInput": {"text": "use the tool"}})
            (call,) = _calls(await recv_json(c))
        async with ws(server.url) as c:
            await do_setup(c, sessionResumption={"handle": handle})
            resp = {"id": call["id"], "name": "f", "response": {}}
            await send_json(c, {"toolResponse": {"functionResponses": [resp]}})
            assert (await expect_close(c))[:2] == (1008, ENTITY_NOT_FOUND)


async def test_transparent_indices() -> None:
    async with asyncio.timeout(5), fake(transparent=True, ack_every=3, reply_chunks=1) as server:
        async with ws(server.url_for("vertex")) as c:
            await do_setup(c, sessionResumption={"transparent": True})
            first = await recv_json(c)  # an update for the setup itself
            assert first["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "0"
            chunk = base64.b64encode(PCM_16K_20MS).decode()
            for _ in range(3):
                await send_json(
                    c, {"realtimeInput": {"audio": {"data": chunk, "mimeType": "audio/pcm"}}}
                )
            ack = await recv_json(c)
            upd = ack["sessionResumptionUpdate"]
            assert upd["lastConsumedClientMessageIndex"] == "3"  # an int64 string
            assert upd["resumable"] is True and upd["newHandle"]
            await send_json(c, {"realtimeInput": {"text": "hi"}})  # index 4
            frames = await recv_until(c, is_handle)
            assert frames[-1]["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "4"
            # Vertex usage names.
            usage = frames[-2]["usageMetadata"]
            assert "candidatesTokenCount" in usage and "responseTokenCount" not in usage
            handle = upd["newHandle"]
        # Resume from the index-3 handle: message 4 is rolled back; numbering restarts.
        async with ws(server.url_for("vertex")) as c:
            await do_setup(c, sessionResumption={"handle": handle, "transparent": True})
            assert (await recv_json(c))["sessionResumptionUpdate"][
                "lastConsumedClientMessageIndex"
            ] == "0"
            await send_json(c, {"realtimeInput": {"text": "hi"}})  # the replay
            frames = await recv_until(c, is_handle)
            assert frames[-1]["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "1"
        consumed = [m for conn in server.consumed for m in conn if m.setup is UNSET]
        texts = [m.realtime_input.text for m in consumed if m.realtime_input is not UNSET]
        assert texts.count("hi") == 1  # exactly once despite the replay


async def test_transparent_not_requested_means_no_index() -> None:
    async with asyncio.timeout(5), fake(transparent=True, reply_chunks=1) as server:
        async with ws(server.url_for("vertex")) as c:
            await do_setup(c, sessionResumption={})
            await send_json(c, {"realtimeInput": {"text": "hi"}})
            frames = await recv_until(c, is_handle)
        assert "lastConsumedClientMessageIndex" not in frames[-1]["sessionResumptionUpdate"]


async def test_transparent_index_as_number() -> None:
    async with asyncio.timeout(5), fake(transparent=True, int64_as_string=False) as server:
        async with ws(server.url_for("vertex")) as c:
            await do_setup(c, sessionResumption={"transparent": True})
            upd = (await recv_json(c))["sessionResumptionUpdate"]
        assert upd["lastConsumedClientMessageIndex"] == 0


# --------------------------------------------------------------------------- faults & injection


async def test_drop_is_abnormal_close() -> None:
    async with asyncio.timeout(5), fake() as server:
        async with ws(server.url) as c:
            await do_setup(c)
            await server.drop()
            code, reason, _ = await expect_close(c)
        assert (code, reason) == (1006, "")
        rec = await server.wait_for_close()
        assert rec.close_code == 1006


async def test_server_close_with_code() -> None:
    async with asyncio.timeout(5), fake() as server:
        async with ws(server.url) as c:
            await do_setup(c)
            await server.close(1011, "Internal error encountered.")
            assert (await expect_close(c))[:2] == (1011, "Internal error encountered.")
        assert server.connections[0].close_code == 1011


async def test_send_injection_and_records_in_order() -> None:
    async with asyncio.timeout(5), fake() as server:
        async with ws(server.url) as c:
            await do_setup(c)
            await server.send(ServerMessage(go_away=GoAway(time_left="50s")))
            await server.send(b'{"voiceActivity":{"type":"ACTIVITY_START","audioOffset":"1.5s"}}')
            assert await recv_json(c) == {"goAway": {"timeLeft": "50s"}}
            assert await recv_json(c) == {
                "voiceActivity": {"type": "ACTIVITY_START", "audioOffset": "1.5s"}
            }
            for i in range(5):
                await send_json(
                    c, {"contextUpdate": {"systemInstruction": {"parts": [{"text": str(i)}]}}}
                )
            await server.wait_for_messages(6)
            await c.close(4000, "bye")
        rec = await server.wait_for_close()
        assert (rec.close_code, rec.close_reason) == (4000, "bye")
        texts = []
        for m in server.received[0][1:]:
            assert m.context_update is not UNSET
            si = m.context_update.system_instruction
            assert isinstance(si, Content) and si.parts is not UNSET
            texts.append(si.parts[0].text)
        assert texts == ["0", "1", "2", "3", "4"]
        assert len(rec.raw_received) == 6
        assert len(rec.sent) == 3
        with pytest.raises(LookupError):
            await server.send(b"{}")


async def test_wait_helpers_are_bounded() -> None:
    async with fake() as server:
        with pytest.raises(TimeoutError):
            await server.wait_for_connections(1, within=0.05)
        with pytest.raises(TimeoutError):
            await server.wait_for_messages(1, within=0.05)


async def test_stop_closes_connections_1001() -> None:
    async with asyncio.timeout(5):
        server = await fake(setup_delay=30).start()
        async with ws(server.url) as c:
            await send_json(c, {"setup": {"model": "models/m"}})
            await server.wait_for_connections(1)
            await server.wait_until(lambda: len(server.connections[0].received) == 1)
            await server.stop()  # also interrupts the 30 s setup delay
            assert (await expect_close(c))[:2] == (1001, "")
        await server.stop()  # idempotent


async def test_invalid_frames_fail_the_server_on_exit() -> None:
    with pytest.raises(AssertionError, match="not a valid LiveServerMessage"):
        async with asyncio.timeout(5), fake() as server, ws(server.url) as c:
            await do_setup(c)
            await server.send(b'{"bogusField": 1}')
            await recv_json(c)


# --------------------------------------------------------------------------- oracle


def test_oracle_accepts_every_kind_of_frame_we_emit() -> None:
    frames = [
        encode_server(
            ServerMessage(voice_activity=VoiceActivity(voice_activity_type="ACTIVITY_END"))
        ),
        b'{"sessionResumptionUpdate":{"newHandle":"h","resumable":true,"lastConsumedClientMessageIndex":"7"}}',
        b'{"usageMetadata":{"candidatesTokenCount":3,"candidatesTokensDetails":[{"modality":"AUDIO","tokenCount":3}]}}',
    ]
    validate_server_frame(frames[0])
    validate_server_frame(frames[1])
    validate_server_frame(frames[2], vertex=True)
    with pytest.raises(AssertionError):
        validate_server_frame(frames[2])  # Vertex names are not Gemini API names
    for bad in (
        b"{}",
        b"[]",
        b"nope",
        b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"data":"!"}}]}}}',
    ):
        with pytest.raises(AssertionError):
            validate_server_frame(bad)


async def test_every_frame_of_a_busy_session_passes_the_oracle() -> None:
    triggers = {
        "tool": ToolScript("f", {"a": [1, 2]}, parallel=2),
        "cancel": ToolScript("g", cancel_after=True),
    }
    async with (
        asyncio.timeout(5),
        fake(tool_triggers=triggers, transparent=True, ack_every=2) as server,
    ):
        async with ws(server.url_for("vertex")) as c:
            await do_setup(
                c,
                sessionResumption={"transparent": True},
                inputAudioTranscription={},
                outputAudioTranscription={},
            )
            await send_json(c, {"realtimeInput": {"text": "hello"}})
            await send_json(c, {"realtimeInput": {"text": "use the tool"}})
            await send_json(c, {"realtimeInput": {"text": "cancel it"}})
            chunk = base64.b64encode(PCM_16K_20MS).decode()
            await send_json(
                c, {"realtimeInput": {"audio": {"data": chunk, "mimeType": "audio/pcm"}}}
            )
            await send_json(c, {"realtimeInput": {"audioStreamEnd": True}})
            await server.wait_for_messages(6)
            await server.send_go_away(1.0)
            await recv_until(c, lambda f: "goAway" in f)  # read everything (no backpressure)
        rec = server.connections[0]
        assert len(rec.sent) > 20
        for frame in rec.sent:
            validate_server_frame(frame, vertex=True)
    assert server.frame_errors == []


# --------------------------------------------------------------------------- memory backend


def opts(*headers: tuple[str, str]) -> ConnectOptions:
    return ConnectOptions(headers=headers)


async def test_memory_text_turn_and_records() -> None:
    async with asyncio.timeout(5), fake(require_api_key=KEY, reply_chunks=2) as server:
        backend = server.memory_backend()
        assert backend.name == "memory"
        assert server.memory_backend() is backend
        h = Collector()
        t = await backend.connect(server.url, h, opts(("X-Goog-Api-Key", KEY)))
        assert isinstance(t, Transport)
        assert isinstance(t, MemoryTransport)  # close_info/write_buffer_size are its extras
        assert t.write_buffer_size() == 0
        setup = b'{"setup":{"model":"models/m","outputAudioTranscription":{}}}'
        await t.send(setup)
        assert (await h.next())["setupComplete"]["sessionId"] == "fake-session-1"
        await t.send(b'{"realtime_input":{"text":"hi"}}')
        frames = await h.until(is_turn_complete)
        assert transcript(frames) == "You said: hi"
        await t.close()
        assert t.closed and t.close_info == CloseInfo(1000, "", True)
        assert await h.wait_closed() == CloseInfo(1000, "", True)
        with pytest.raises(TransportClosed):
            await t.send(b"{}")
        rec = await server.wait_for_close()
        assert rec.transport == "memory" and rec.close_code == 1000
        assert rec.headers["x-goog-api-key"] == KEY
        assert len(rec.received) == 2


async def test_memory_frames_are_delivered_from_the_loop() -> None:
    async with asyncio.timeout(5), fake() as server:
        h = Collector()
        t = await server.memory_backend().connect(server.url, h, opts())
        assert isinstance(t, MemoryTransport)
        await t.send(b'{"setup":{"model":"m"}}')
        await h.next()
        await server.send(b'{"goAway":{"timeLeft":"1s"}}')
        await server.send(b'{"goAway":{"timeLeft":"2s"}}')
        assert len(h.events) == 1  # not synchronously inside send
        assert await h.next() == {"goAway": {"timeLeft": "1s"}}
        assert await h.next() == {"goAway": {"timeLeft": "2s"}}
        # Frames sent before a close arrive before on_close, which comes exactly once.
        await server.send(b'{"goAway":{"timeLeft":"3s"}}')
        await server.close(1011, "Internal error encountered.")
        info = await h.wait_closed()
        assert info == CloseInfo(1011, "Internal error encountered.", False)
        assert [e[0] for e in h.events] == ["frame"] * 4 + ["close"]
        assert t.closed and t.close_info == info
        with pytest.raises(TransportClosed):
            await t.send(b"{}")
        await t.close()  # idempotent after a peer close
        assert h.events[-1] == ("close", info)


async def test_memory_abort_and_drop() -> None:
    async with asyncio.timeout(5), fake() as server:
        backend = server.memory_backend()
        h1 = Collector()
        t1 = await backend.connect(server.url, h1, opts())
        await t1.send(b'{"setup":{"model":"m"}}')
        await h1.next()
        t1.abort()
        assert t1.closed
        assert await h1.wait_closed() == CloseInfo(1006, "", True)
        assert (await server.wait_for_close(0)).close_code == 1006
        h2 = Collector()
        t2 = await backend.connect(server.url, h2, opts())
        await t2.send(b'{"setup":{"model":"m"}}')
        await h2.next()
        await server.drop()
        assert not t2.closed or h2.closed.is_set()
        assert await h2.wait_closed() == CloseInfo(1006, "", False)
        assert (await server.wait_for_close(1)).close_code == 1006


async def test_memory_paths_and_auth() -> None:
    async with asyncio.timeout(5), fake(require_token=TOKEN) as server:
        backend = server.memory_backend()
        with pytest.raises(ConnectError) as info:
            await backend.connect(server.base_url + "/ws/nope", Collector(), opts())
        assert info.value.status == 404
        with pytest.raises(ConnectError):
            await backend.connect("http://127.0.0.1:1/x", Collector(), opts())
        url = server.url_for("constrained", "v1alpha")
        h = Collector()
        t = await backend.connect(url + f"?access_token={TOKEN}", h, opts())
        await t.send(b'{"setup":{"model":"m"}}')
        assert "setupComplete" in await h.next()
        await t.close(4001, "done")
        assert (await server.wait_for_close()).close_reason == "done"
        for target, headers, expected in (
            (url + "?access_token=bad", (), (1007, TOKEN_INVALID)),
            (server.url, (("authorization", f"Token {TOKEN}"),), (1008, UNREGISTERED_CALLER[:123])),
        ):
            h = Collector()
            t = await backend.connect(target, h, opts(*headers))
            await t.send(b'{"setup":{"model":"m"}}')
            assert await h.wait_closed() == CloseInfo(*expected, False)
    with pytest.raises(ConnectError):
        await backend.connect(server.url, Collector(), opts())  # the server is stopped


async def test_memory_go_away_deadline() -> None:
    async with asyncio.timeout(5), fake(go_away_after_messages=1, go_away_time_left=0.05) as server:
        h = Collector()
        t = await server.memory_backend().connect(server.url, h, opts())
        await t.send(b'{"setup":{"model":"m"}}')
        await t.send(b'{"clientContent":{"turnComplete":false}}')
        await h.until(lambda f: "goAway" in f)
        assert await h.wait_closed() == CloseInfo(1000, CANCELLED, False)


async def test_memory_client_close_while_frames_queued() -> None:
    async with asyncio.timeout(5), fake(auto_reply=False) as server:
        h = Collector()
        t = await server.memory_backend().connect(server.url, h, opts())
        await t.send(b'{"setup":{"model":"m"}}')
        for i in range(3):
            await t.send(json.dumps({"realtimeInput": {"text": str(i)}}).encode())
        await t.close(1000, "")
        rec = await server.wait_for_close()
        # The server still got everything sent before the close, in order.
        assert [m.realtime_input.text for m in rec.received[1:]] == ["0", "1", "2"]  # type: ignore[union-attr]
        assert rec.close_code == 1000


# --------------------------------------------------------------------------- official SDK


def _sdk_client(server: FakeLiveServer, api_key: str = "x") -> Any:
    from google import genai

    client = genai.Client(api_key=api_key)
    api = client._api_client
    api._websocket_base_url = lambda http_options=None: server.base_url  # type: ignore[method-assign]
    api._websocket_ssl_ctx = {}
    return client


async def test_unmodified_google_genai_client() -> None:
    from google.genai import types as gt

    config = gt.LiveConnectConfig(
        response_modalities=[gt.Modality.AUDIO],
        input_audio_transcription=gt.AudioTranscriptionConfig(),
        output_audio_transcription=gt.AudioTranscriptionConfig(),
        speech_config=gt.SpeechConfig(
            voice_config=gt.VoiceConfig(
                prebuilt_voice_config=gt.PrebuiltVoiceConfig(voice_name="Kore")
            )
        ),
        session_resumption=gt.SessionResumptionConfig(),
    )
    async with asyncio.timeout(10), fake(require_api_key="sdk-key", reply_chunks=4) as server:
        client = _sdk_client(server, "sdk-key")
        async with client.aio.live.connect(model="gemini-3.8-live", config=config) as session:
            assert session.session_id == "fake-session-1"
            await session.send_realtime_input(text="hello from the sdk")
            text = ""
            async for msg in session.receive():
                sc = msg.server_content
                if sc and sc.output_transcription and sc.output_transcription.text:
                    text += sc.output_transcription.text
            assert text == "You said: hello from the sdk"
            # receive() stops at turnComplete; the trailing resumption update comes next.
            upd = None
            async for msg in session.receive():
                if msg.session_resumption_update:
                    upd = msg.session_resumption_update
                    break
            assert upd is not None and upd.resumable and upd.new_handle

            pcm = (
                b"\xfb\xff\xfe\xff" * 320
            )  # 1280 bytes = 40 ms at 16 kHz; URL-safe b64 on the wire
            for _ in range(3):
                await session.send_realtime_input(
                    audio=gt.Blob(data=pcm, mime_type="audio/pcm;rate=16000")
                )
            await session.send_realtime_input(audio_stream_end=True)
            audio = b""
            heard = ""
            async for msg in session.receive():
                if msg.data:
                    audio += msg.data
                sc = msg.server_content
                if sc and sc.input_transcription and sc.input_transcription.text:
                    heard += sc.input_transcription.text
            assert audio == TONE_PCM * 4
            assert heard == "120 ms of audio"
        rec = server.connections[0]
        assert (
            rec.path == "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent"
        )
        assert rec.headers["x-goog-api-key"] == "sdk-key"
        assert bytes(rec.audio) == pcm * 3
        setup = rec.received[0].setup
        assert setup is not UNSET and setup.model == "models/gemini-3.8-live"
        gc = setup.generation_config
        assert gc is not UNSET and gc.speech_config is not UNSET
        assert gc.speech_config.voice_config is not UNSET
        assert gc.speech_config.voice_config.prebuilt_voice_config is not UNSET
        assert gc.speech_config.voice_config.prebuilt_voice_config.voice_name == "Kore"


async def test_google_genai_tool_round_trip_and_bad_key() -> None:
    from google.genai import errors as gerrors
    from google.genai import types as gt

    triggers = {"weather": ToolScript("get_weather", {"city": "Oslo"})}
    config = gt.LiveConnectConfig(
        response_modalities=[gt.Modality.AUDIO],
        output_audio_transcription=gt.AudioTranscriptionConfig(),
        tools=[gt.Tool(function_declarations=[gt.FunctionDeclaration(name="get_weather")])],
    )
    async with (
        asyncio.timeout(10),
        fake(require_api_key="k", tool_triggers=triggers, reply_chunks=1) as server,
    ):
        async with _sdk_client(server, "k").aio.live.connect(model="m", config=config) as session:
            await session.send_realtime_input(text="weather?")
            calls = []
            async for msg in session.receive():
                if msg.tool_call and msg.tool_call.function_calls:
                    calls = msg.tool_call.function_calls
                    break
            assert calls[0].id == "call-1" and calls[0].args == {"city": "Oslo"}
            await session.send_tool_response(
                function_responses=gt.FunctionResponse(
                    id="call-1", name="get_weather", response={"output": "sunny"}
                )
            )
            text = ""
            async for msg in session.receive():
                sc = msg.server_content
                if sc and sc.output_transcription and sc.output_transcription.text:
                    text += sc.output_transcription.text
            assert text == 'get_weather returned "sunny"'
        with pytest.raises(gerrors.APIError) as info:
            async with _sdk_client(server, "wrong").aio.live.connect(model="m", config=config):
                pass
        assert info.value.code == 1007
        assert "API key not valid" in str(info.value)
