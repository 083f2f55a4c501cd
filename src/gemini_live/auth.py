"""Endpoints (where to connect) and credentials (how to prove who we are).

Rules kept here and nowhere else:

* Gemini API keys travel only in the ``x-goog-api-key`` header, never in the URL.
* Ephemeral tokens use the ``BidiGenerateContentConstrained`` method, sent as
  ``Authorization: Token <name>`` (or the ``access_token`` query parameter when asked).
* Vertex AI uses ``Authorization: Bearer <oauth token>``; a ``bearer_provider`` is called
  again before every (re)connect so tokens are fresh.
* Every credential is registered with :func:`gemini_live.errors.register_secret` and is
  shown as ``***`` in every repr.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from gemini_live.errors import ConfigError, register_secret
from gemini_live.protocol import ApiKind

__all__ = ["Auth", "Endpoint", "vertex_model_path"]

GEMINI_HOST = "generativelanguage.googleapis.com"
_GEMINI_PATH = "/ws/google.ai.generativelanguage.{v}.GenerativeService.BidiGenerateContent"
_VERTEX_PATH = "/ws/google.cloud.aiplatform.{v}.LlmBidiService/BidiGenerateContent"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the session connects. Build one with the class methods."""

    url: str
    api: ApiKind
    #: Vertex project/location, used to expand short model names.
    project: str | None = None
    location: str | None = None

    @classmethod
    def gemini(
        cls, *, api_version: str = "v1beta", constrained: bool = False, host: str = GEMINI_HOST
    ) -> Endpoint:
        """The Gemini Developer API. ``constrained=True`` is the ephemeral-token method."""
        path = _GEMINI_PATH.format(v=api_version)
        if constrained:
            path += "Constrained"
        return cls(f"wss://{host}{path}", "gemini")

    @classmethod
    def vertex(
        cls,
        *,
        location: str = "us-central1",
        project: str | None = None,
        api_version: str = "v1beta1",
    ) -> Endpoint:
        """Vertex AI: regional host, or ``aiplatform.googleapis.com`` for ``global``."""
        if location == "global":
            host = "aiplatform.googleapis.com"
        elif location in ("us", "eu"):
            host = f"aiplatform.{location}.rep.googleapis.com"
        else:
            host = f"{location}-aiplatform.googleapis.com"
        return cls(
            f"wss://{host}{_VERTEX_PATH.format(v=api_version)}",
            "vertex",
            project=project,
            location=location,
        )

    @classmethod
    def custom(cls, url: str, *, api: ApiKind = "custom") -> Endpoint:
        """Any ``ws://`` / ``wss://`` URL (a proxy, a gateway, FakeLiveServer)."""
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("ws", "wss"):
            raise ConfigError(f"endpoint URL must start with ws:// or wss://, got {scheme!r}")
        if api == "custom":
            path = urllib.parse.urlsplit(url).path
            if "aiplatform" in path:
                api = "vertex"
            elif "generativelanguage" in path:
                api = "gemini"
        return cls(url, api)

    @property
    def constrained(self) -> bool:
        return self.url.split("?", 1)[0].endswith("Constrained")

    def model_name(self, model: str) -> str:
        """Normalise a model id for this endpoint (``models/x`` or the Vertex path)."""
        if self.api == "vertex":
            return vertex_model_path(model, self.project, self.location)
        if model.startswith(("models/", "tunedModels/", "projects/", "publishers/")):
            return model
        return f"models/{model}"


def vertex_model_path(model: str, project: str | None, location: str | None) -> str:
    """Expand a Vertex model id to ``projects/P/locations/L/publishers/google/models/X``."""
    if model.startswith("projects/"):
        return model
    if model.startswith("models/"):
        model = model.removeprefix("models/")
    if not model.startswith("publishers/"):
        model = f"publishers/google/models/{model}"
    if project and location:
        return f"projects/{project}/locations/{location}/{model}"
    return model


BearerProvider = Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Auth:
    """A credential. The secret never appears in ``repr`` or ``str``."""

    kind: Literal["none", "api_key", "ephemeral_token", "bearer", "bearer_provider"]
    _secret: str | None = field(default=None, repr=False)
    _provider: BearerProvider | None = field(default=None, repr=False)
    in_query: bool = False
    quota_project: str | None = None

    def __repr__(self) -> str:
        return f"Auth(kind={self.kind!r}, secret={'***' if self._secret else None})"

    __str__ = __repr__

    @classmethod
    def none(cls) -> Auth:
        return cls("none")

    @classmethod
    def api_key(cls, key: str) -> Auth:
        """A Gemini API (or Vertex express) key, sent as ``x-goog-api-key``."""
        if not key or not key.strip():
            raise ConfigError("API key is empty")
        register_secret(key)
        return cls("api_key", key.strip())

    @classmethod
    def ephemeral_token(cls, token: str, *, in_query: bool = False) -> Auth:
        """An ephemeral token (``auth_tokens/...``) for the Constrained endpoint."""
        if not token:
            raise ConfigError("ephemeral token is empty")
        register_secret(token)
        return cls("ephemeral_token", token, in_query=in_query)

    @classmethod
    def bearer(cls, token: str, *, quota_project: str | None = None) -> Auth:
        """A fixed OAuth2 access token (Vertex AI)."""
        if not token:
            raise ConfigError("bearer token is empty")
        register_secret(token)
        return cls("bearer", token, quota_project=quota_project)

    @classmethod
    def bearer_provider(cls, provider: BearerProvider, *, quota_project: str | None = None) -> Auth:
        """An async callable returning a fresh OAuth2 token; called before every connect."""
        return cls("bearer_provider", _provider=provider, quota_project=quota_project)

    @classmethod
    def google_default(cls, *, quota_project: str | None = None) -> Auth:
        """Application Default Credentials via google-auth (``pip install gemini-live[vertex]``)."""
        try:
            import google.auth
            import google.auth.transport.requests
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ConfigError(
                "Auth.google_default() needs google-auth: pip install 'gemini-live[vertex]'"
            ) from exc
        import asyncio

        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])

        async def provider() -> str:
            def refresh() -> str:
                creds.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
                return str(creds.token)

            return await asyncio.to_thread(refresh)

        return cls.bearer_provider(provider, quota_project=quota_project)

    async def apply(self, url: str) -> tuple[str, list[tuple[str, str]]]:
        """Return the URL and headers to connect with (fresh token for providers)."""
        headers: list[tuple[str, str]] = []
        if self.kind == "api_key":
            assert self._secret is not None
            headers.append(("x-goog-api-key", self._secret))
        elif self.kind == "ephemeral_token":
            assert self._secret is not None
            if self.in_query:
                sep = "&" if "?" in url else "?"
                url = f"{url}{sep}access_token={urllib.parse.quote(self._secret, safe='/')}"
            else:
                headers.append(("Authorization", f"Token {self._secret}"))
        elif self.kind == "bearer":
            assert self._secret is not None
            headers.append(("Authorization", f"Bearer {self._secret}"))
        elif self.kind == "bearer_provider":
            assert self._provider is not None
            token = await self._provider()
            if not token:
                raise ConfigError("bearer_provider returned an empty token")
            register_secret(token)
            headers.append(("Authorization", f"Bearer {token}"))
        if self.quota_project:
            headers.append(("x-goog-user-project", self.quota_project))
        return url, headers
