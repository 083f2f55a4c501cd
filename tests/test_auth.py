"""Endpoints, credentials and the ephemeral-token REST helper (against a local HTTP fake)."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from gemini_live import errors
from gemini_live.auth import (
    Auth,
    Endpoint,
    create_ephemeral_token,
    token_request_body,
    vertex_model_path,
)
from gemini_live.types import GenerationConfig, SessionResumptionConfig, Setup, SpeechConfig

KEY = "AIzaAUTHTESTKEY000000000000000000"


def test_gemini_endpoints() -> None:
    e = Endpoint.gemini()
    assert e.url == (
        "wss://generativelanguage.googleapis.com/ws/"
        "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    assert e.api == "gemini" and not e.constrained
    c = Endpoint.gemini(api_version="v1alpha", constrained=True)
    assert c.url.endswith("v1alpha.GenerativeService.BidiGenerateContentConstrained")
    assert c.constrained


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("us-central1", "us-central1-aiplatform.googleapis.com"),
        ("global", "aiplatform.googleapis.com"),
        ("eu", "aiplatform.eu.rep.googleapis.com"),
    ],
)
def test_vertex_endpoints(location: str, host: str) -> None:
    e = Endpoint.vertex(location=location, project="proj")
    assert e.url == (
        f"wss://{host}/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    )
    assert e.api == "vertex"
    assert e.model_name("gemini-live-2.5") == (
        f"projects/proj/locations/{location}/publishers/google/models/gemini-live-2.5"
    )


def test_model_names() -> None:
    assert Endpoint.gemini().model_name("gemini-3.8-live") == "models/gemini-3.8-live"
    assert Endpoint.gemini().model_name("models/x") == "models/x"
    assert vertex_model_path("models/x", None, None) == "publishers/google/models/x"
    assert vertex_model_path("projects/p/x", "q", "l") == "projects/p/x"


def test_custom_endpoint_detects_api_and_rejects_http() -> None:
    assert Endpoint.custom("ws://127.0.0.1:1/ws/google.ai.generativelanguage.v1.X").api == "gemini"
    assert Endpoint.custom("ws://h/ws/google.cloud.aiplatform.v1.LlmBidiService/B").api == "vertex"
    assert Endpoint.custom("wss://proxy.example/live").api == "custom"
    with pytest.raises(errors.ConfigError):
        Endpoint.custom("https://example.com/live")


async def test_credentials_go_to_headers_and_never_to_reprs() -> None:
    url = Endpoint.gemini().url
    key = Auth.api_key(KEY)
    assert await key.apply(url) == (url, [("x-goog-api-key", KEY)])
    assert KEY not in repr(key) and KEY not in str(key)
    tok = Auth.ephemeral_token("auth_tokens/t1")
    assert await tok.apply(url) == (url, [("Authorization", "Token auth_tokens/t1")])
    q_url, q_headers = await Auth.ephemeral_token("auth_tokens/t1", in_query=True).apply(url)
    assert q_url.endswith("?access_token=auth_tokens/t1") and q_headers == []
    bearer = Auth.bearer("ya29.abc", quota_project="billing")
    assert await bearer.apply(url) == (
        url,
        [("Authorization", "Bearer ya29.abc"), ("x-goog-user-project", "billing")],
    )
    assert await Auth.none().apply(url) == (url, [])
    assert "ya29" not in repr(bearer)
    for bad in ("", "  "):
        with pytest.raises(errors.ConfigError):
            Auth.api_key(bad)


async def test_bearer_provider_is_awaited_each_time() -> None:
    tokens = iter(["ya29.one", "ya29.two"])

    async def provider() -> str:
        return next(tokens)

    auth = Auth.bearer_provider(provider)
    first = await auth.apply("wss://x")
    second = await auth.apply("wss://x")
    assert first[1] == [("Authorization", "Bearer ya29.one")]
    assert second[1] == [("Authorization", "Bearer ya29.two")]

    async def empty() -> str:
        return ""

    with pytest.raises(errors.ConfigError):
        await Auth.bearer_provider(empty).apply("wss://x")


# --------------------------------------------------------------------------- checked when built

#: One constructor per kind of fixed credential.
MAKERS: dict[str, Callable[[str], Auth]] = {
    "api_key": Auth.api_key,
    "ephemeral_token": Auth.ephemeral_token,
    "bearer": Auth.bearer,
}
#: Each would split or corrupt the header line the credential travels in.
BAD_CHARS = ["\r\nX-Injected: 1", "\n", "\r", "\x00", "\t", " ", "\x7f", "\u00e9", "\u2028"]


@pytest.mark.parametrize("bad", BAD_CHARS, ids=repr)
@pytest.mark.parametrize("kind", ["api_key", "ephemeral_token", "bearer"])
def test_credentials_with_header_breaking_characters_are_refused(kind: str, bad: str) -> None:
    secret = f"{KEY}{bad}tail-of-the-secret"
    make = MAKERS
    with pytest.raises(errors.ConfigError, match="cannot be sent in an HTTP header") as caught:
        make[kind](secret)
    assert KEY not in str(caught.value) and "tail-of-the-secret" not in str(caught.value)
    with pytest.raises(errors.ConfigError):
        Auth(kind, secret)  # type: ignore[arg-type]  # direct construction is checked too


@pytest.mark.parametrize("kind", ["api_key", "ephemeral_token", "bearer"])
async def test_one_trailing_newline_from_a_file_is_stripped(kind: str) -> None:
    make = MAKERS
    auth = make[kind](f"{KEY}\n")
    _, headers = await auth.apply("wss://x")
    assert headers[0][1].endswith(KEY)
    assert all("\n" not in value for _, value in headers)
    assert make[kind](f"  {KEY}\r\n") == auth


@pytest.mark.parametrize("bad", ["", "   ", "\n", None, 123, b"AIzabytes"], ids=repr)
def test_empty_or_non_str_credentials_are_refused(bad: object) -> None:
    for make in (Auth.api_key, Auth.ephemeral_token, Auth.bearer):
        with pytest.raises(errors.ConfigError):
            make(bad)  # type: ignore[arg-type]


def test_other_auth_fields_are_checked() -> None:
    with pytest.raises(errors.ConfigError, match="x-goog-user-project"):
        Auth.bearer("ya29.abc", quota_project="billing\r\nX-Injected: 1")
    with pytest.raises(errors.ConfigError, match="unknown auth kind"):
        Auth("password")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match="bearer_provider"):
        Auth("bearer_provider")


async def test_bearer_provider_token_is_checked_on_every_connect() -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return "ya29.first\n" if calls == 1 else "ya29.sec\r\nX-Injected: 1"

    auth = Auth.bearer_provider(provider)
    assert (await auth.apply("wss://x"))[1] == [("Authorization", "Bearer ya29.first")]
    with pytest.raises(errors.ConfigError, match="bearer_provider") as caught:
        await auth.apply("wss://x")
    assert "ya29.sec" not in str(caught.value)

    async def not_a_str() -> str:
        return 42  # type: ignore[return-value]

    with pytest.raises(errors.ConfigError, match="must be a str"):
        await Auth.bearer_provider(not_a_str).apply("wss://x")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ws://[::1", "malformed endpoint URL"),
        ("ws://[::1]:99999/x", "malformed endpoint URL"),
        ("ws://host:port/x", "malformed endpoint URL"),
        ("ws:///no-host", "no host"),
        ("wss://", "no host"),
        ("ws://user:pw@127.0.0.1:1/x", "must not carry credentials"),
        ("ws://127.0.0.1:1/a b", "whitespace or a control character"),
        ("ws://127.0.0.1:1/x\r\nHost: evil", "whitespace or a control character"),
        ("http://127.0.0.1:1/x", "ws:// or wss://"),
        ("127.0.0.1:1", "ws:// or wss://"),
    ],
)
def test_malformed_endpoint_urls_are_refused_when_built(url: str, match: str) -> None:
    with pytest.raises(errors.ConfigError, match=match):
        Endpoint.custom(url)
    with pytest.raises(errors.ConfigError, match=match):
        Endpoint(url, "custom")


def test_endpoint_repr_hides_credentials_in_the_url() -> None:
    e = Endpoint.custom(f"ws://127.0.0.1:1/live?key={KEY}&alt=json")
    assert KEY not in repr(e) and KEY not in str(e)
    assert "key=***&alt=json" in repr(e)
    v = Endpoint.vertex(project="proj")
    assert repr(v).endswith("api='vertex', project='proj', location='us-central1')")


def test_endpoint_fields_are_checked() -> None:
    with pytest.raises(errors.ConfigError, match="api must be one of"):
        Endpoint("ws://127.0.0.1:1/x", "openai")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match="must be a str"):
        Endpoint(b"ws://127.0.0.1:1/x", "custom")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError):
        Endpoint.gemini(host="bad host")
    with pytest.raises(errors.ConfigError):
        Endpoint.vertex(location="us-central1/../x y")
    assert Endpoint.custom("ws://[::1]:8080/live").url == "ws://[::1]:8080/live"


async def test_google_default_uses_adc(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth

    class FakeCreds:
        token: str | None = None

        def refresh(self, request: object) -> None:
            self.token = "ya29.from-adc"

    def fake_default(scopes: list[str]) -> tuple[FakeCreds, str]:
        assert scopes == ["https://www.googleapis.com/auth/cloud-platform"]
        return FakeCreds(), "proj"

    monkeypatch.setattr(google.auth, "default", fake_default)
    auth = Auth.google_default()
    assert await auth.apply("wss://x") == ("wss://x", [("Authorization", "Bearer ya29.from-adc")])


def test_token_body_locks_everything_but_resumption() -> None:
    setup = Setup(
        model="models/gemini-3.8-live",
        generation_config=GenerationConfig(speech_config=SpeechConfig.voice("Kore")),
        session_resumption=SessionResumptionConfig(),
    )
    body = token_request_body(uses=2, setup=setup, now=1_700_000_000.0)
    assert body["uses"] == 2
    assert body["expireTime"] == "2023-11-14T22:43:20.000000Z"  # now + 30 min
    assert body["newSessionExpireTime"] == "2023-11-14T22:14:20.000000Z"  # now + 60 s
    assert body["fieldMask"] == "model,generationConfig"
    assert body["bidiGenerateContentSetup"]["generationConfig"] == {
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}
    }
    # Every field sent is covered by the mask (the service's 400 rule).
    assert set(body["bidiGenerateContentSetup"]) == {"model", "generationConfig"}
    explicit = token_request_body(setup=setup, lock_fields=["model"], now=1_700_000_000.0)
    assert explicit["fieldMask"] == "model"
    assert explicit["bidiGenerateContentSetup"] == {"model": "models/gemini-3.8-live"}
    assert "fieldMask" not in token_request_body(now=1_700_000_000.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"uses": -1},
        {"expire_time": 21 * 3600.0},
        {"expire_time": -5.0},
        {"expire_time": datetime.datetime(2030, 1, 1)},  # naive
        {"lock_fields": ["model"]},  # nothing to lock
    ],
)
def test_token_body_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(errors.ConfigError):
        token_request_body(**kwargs)


class _TokenService(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, dict[str, str], dict[str, Any]]]] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.status == 200:
            payload = {"name": "auth_tokens/minted-1", "expireTime": body["expireTime"]}
        else:
            payload = {"error": {"code": self.status, "message": "API key not valid."}}
        data = json.dumps(payload).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def token_service() -> Iterator[tuple[str, type[_TokenService]]]:
    handler = type("Handler", (_TokenService,), {"requests": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_create_ephemeral_token(token_service: tuple[str, type[_TokenService]]) -> None:
    base, handler = token_service
    setup = Setup(model="models/gemini-3.8-live")
    async with asyncio.timeout(10):
        token = await create_ephemeral_token(
            KEY, uses=1, setup=setup, base_url=base, api_version="v1alpha"
        )
    assert token.name == "auth_tokens/minted-1"
    assert "minted" not in repr(token)
    assert token.auth().kind == "ephemeral_token"
    ((path, headers, body),) = handler.requests
    assert path == "/v1alpha/auth_tokens"
    assert headers["x-goog-api-key"] == KEY
    assert body["bidiGenerateContentSetup"] == {"model": "models/gemini-3.8-live"}
    assert body["fieldMask"] == "model"


async def test_create_ephemeral_token_error_hides_key(
    token_service: tuple[str, type[_TokenService]],
) -> None:
    base, handler = token_service
    handler.status = 400
    with pytest.raises(errors.ConnectError) as info:
        async with asyncio.timeout(10):
            await create_ephemeral_token(KEY, base_url=base)
    assert info.value.status == 400
    assert not info.value.retryable
    assert KEY not in str(info.value)
    assert "API key not valid" in str(info.value)
