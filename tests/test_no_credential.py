"""``gl.connect()`` with no credential for Google's endpoint: refused before dialing."""

from __future__ import annotations

import asyncio

import pytest

import gemini_live as gl
from gemini_live.config import NO_CREDENTIAL, check_credentials
from gemini_live.errors import AuthError
from gemini_live.testing import FakeLiveServer


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _never_dial(*args: object, **kwargs: object) -> None:
    raise AssertionError("a Session was created: the library was about to dial")


async def test_connect_without_any_credential_is_an_auth_error(
    no_key_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gl.Session, "__init__", _never_dial)
    with pytest.raises(AuthError) as info:
        async with asyncio.timeout(5):
            await gl.connect()
    text = str(info.value)
    assert text == NO_CREDENTIAL
    assert text.startswith("no API key: set GEMINI_API_KEY or pass api_key=")
    assert info.value.local and info.value.phase == "connect"
    with pytest.raises(AuthError):
        async with asyncio.timeout(5), gl.connect(model="gemini-3.8-live"):
            pass


def test_any_credential_or_custom_url_passes(no_key_env: None) -> None:
    check_credentials(gl.build_config(api_key="AIzaSyTESTONLY-0123456789abcdefghijkl"))
    check_credentials(gl.build_config(auth=gl.Auth.ephemeral_token("auth_tokens/abc")))
    check_credentials(gl.build_config(auth=gl.Auth.bearer("ya29.test-only")))
    check_credentials(gl.build_config(headers=[("X-Goog-Api-Key", "AIzaSyTESTONLY-0123")]))
    check_credentials(gl.build_config(url="ws://127.0.0.1:9/ws"))
    with pytest.raises(AuthError):
        check_credentials(gl.build_config(auth=gl.Auth.none()))


async def test_env_key_is_found(monkeypatch: pytest.MonkeyPatch, no_key_env: None) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaSyTESTONLY-0123456789abcdefghijkl")
    check_credentials(gl.build_config())


async def test_the_fake_needs_no_credential(no_key_env: None) -> None:
    async with (
        asyncio.timeout(10),
        FakeLiveServer() as server,
        gl.connect(url=server.url) as session,
    ):
        assert session.session_id
