"""Endpoints (where to connect) and credentials (how to prove who we are).

Rules kept here and nowhere else:

* Gemini API keys travel only in the ``x-goog-api-key`` header, never in the URL.
* Ephemeral tokens use the ``BidiGenerateContentConstrained`` method, sent as
  ``Authorization: Token <name>`` (or the ``access_token`` query parameter when asked).
* Vertex AI uses ``Authorization: Bearer <oauth token>``; a ``bearer_provider`` is called
  again before every (re)connect so tokens are fresh.
* Every credential is registered with :func:`gemini_live.errors.register_secret` and is
  shown as ``***`` in every repr. So are the values of extra headers whose name looks
  like a credential (:func:`register_header_secrets`: ``Authorization``, ``Cookie``,
  ``x-goog-api-key``, any name with ``auth``, ``key``, ``token``, ``secret``, ...), so a
  server that echoes one back never gets it into a log, an error or a cassette.
* Everything is checked when it is built, before anything can reach the wire: a key or
  token is stripped of surrounding whitespace (a file or ``$ENV`` value often ends with a
  newline) and must then be printable ASCII without spaces, so it cannot inject a header;
  an endpoint URL must parse, use ``ws``/``wss``, name a host and carry no ``user:pass@``.
  Failures raise :class:`~gemini_live.errors.ConfigError`, which is never retried.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import msgspec

from gemini_live.errors import ConfigError, ConnectError, redact, register_secret
from gemini_live.transport._common import check_header
from gemini_live.types import Setup

__all__ = [
    "ApiKind",
    "Auth",
    "Endpoint",
    "EphemeralToken",
    "create_ephemeral_token",
    "is_credential_header",
    "register_header_secrets",
    "token_request_body",
    "vertex_model_path",
]

#: Which API an endpoint speaks ("custom" = a URL of your own, e.g. a fake server).
ApiKind = Literal["gemini", "vertex", "custom"]

GEMINI_HOST = "generativelanguage.googleapis.com"
#: WebSocket paths of the Live API ({v}: API version); the one home of these facts.
GEMINI_PATH_FMT = "/ws/google.ai.generativelanguage.{v}.GenerativeService.BidiGenerateContent"
VERTEX_PATH_FMT = "/ws/google.cloud.aiplatform.{v}.LlmBidiService/BidiGenerateContent"

#: Anything but visible ASCII: no credential contains it, and CR/LF would inject a header.
_NOT_TOKEN_CHAR: Final = re.compile(r"[^\x21-\x7e]")
#: Whitespace and controls have no place in a URL (RFC 3986 §2).
_NOT_URL_CHAR: Final = re.compile(r"[\x00-\x20\x7f]")


def _credential(what: str, value: object) -> str:
    """``value`` stripped of surrounding whitespace, checked and registered as a secret.

    Raises:
        ConfigError: not a str, empty, or holding a character that cannot travel in an
            HTTP header (control, space, non-ASCII). The value itself is never shown.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a str, got {type(value).__name__}")
    # A key read from a file or an environment variable often ends with a newline.
    cleaned = value.strip()
    if not cleaned:
        raise ConfigError(f"{what} is empty")
    register_secret(cleaned, permanent=True)
    bad = _NOT_TOKEN_CHAR.search(cleaned)
    if bad is not None:
        raise ConfigError(
            f"{what} contains a character that cannot be sent in an HTTP header "
            f"(U+{ord(bad.group()):04X} at position {bad.start()})"
        )
    return cleaned


#: Header names that carry credentials (matched case-insensitively, anywhere in the name).
_CREDENTIAL_NAME: Final = re.compile(
    r"(?i)auth|cookie|key|token|secret|passw|session|signature|credential"
)
#: Words of an ``Authorization`` value that name the scheme, not the credential.
_AUTH_SCHEMES: Final = frozenset(
    {"bearer", "token", "basic", "digest", "negotiate", "ntlm", "hoba", "mutual", "dpop"}
)
#: Parts of a header value shorter than this are not registered on their own (they
#: would mangle ordinary words); the whole value always is.
_MIN_PART: Final = 8


def is_credential_header(name: str) -> bool:
    """True when a header named ``name`` may carry a credential (see the module docstring)."""
    return _CREDENTIAL_NAME.search(name) is not None


def register_header_secrets(headers: Sequence[tuple[str, str]]) -> int:
    """Register the values of credential-looking headers for redaction; return how many.

    The whole value is registered, and so are its parts: the words of
    ``Bearer <token>`` / ``Basic <b64>`` but the scheme, and each ``name=value`` cookie's
    value, so a server that echoes only the token is redacted too. Long-lived (the
    registry's permanent tier), like API keys.
    """
    n = 0
    for name, value in headers:
        if not is_credential_header(name):
            continue
        whole = value.strip()
        found = {whole} if len(whole) >= 4 else set()
        for word in re.split(r"[\s;,]+", whole):
            if word.lower() in _AUTH_SCHEMES:
                continue
            found.add(word)
            if "=" in word:
                found.add(word.split("=", 1)[1])
        for secret in found:
            if secret == whole or len(secret) >= _MIN_PART:
                register_secret(secret, permanent=True)
                n += 1
    return n


@dataclass(frozen=True, slots=True, repr=False)
class Endpoint:
    """Where the session connects. Build one with the class methods.

    ``repr`` scrubs the URL with :func:`~gemini_live.errors.redact`, so a ``?key=`` or
    ``access_token=`` someone put in a custom URL is never shown.
    """

    url: str
    api: ApiKind
    #: Vertex project/location, used to expand short model names.
    project: str | None = None
    location: str | None = None

    def __post_init__(self) -> None:
        url = self.url
        if not isinstance(url, str):
            raise ConfigError(f"endpoint URL must be a str, got {type(url).__name__}")
        bad = _NOT_URL_CHAR.search(url)
        if bad is not None:
            raise ConfigError(
                f"endpoint URL contains whitespace or a control character "
                f"(U+{ord(bad.group()):04X} at position {bad.start()})"
            )
        try:
            parts = urllib.parse.urlsplit(url)
            host, _ = parts.hostname, parts.port
        except ValueError as exc:
            raise ConfigError(f"malformed endpoint URL: {exc}") from None
        if parts.scheme.lower() not in ("ws", "wss"):
            raise ConfigError(f"endpoint URL must start with ws:// or wss://, got {parts.scheme!r}")
        if not host:
            raise ConfigError("endpoint URL has no host")
        if "@" in parts.netloc:
            raise ConfigError("endpoint URL must not carry credentials (user:pass@); use Auth")
        if self.api not in get_args(ApiKind):
            raise ConfigError(f"api must be one of {get_args(ApiKind)}, got {self.api!r}")

    def __repr__(self) -> str:
        extra = ""
        if self.project is not None or self.location is not None:
            extra = f", project={self.project!r}, location={self.location!r}"
        return f"Endpoint(url={redact(self.url)!r}, api={self.api!r}{extra})"

    @classmethod
    def gemini(
        cls, *, api_version: str = "v1beta", constrained: bool = False, host: str = GEMINI_HOST
    ) -> Endpoint:
        """The Gemini Developer API. ``constrained=True`` is the ephemeral-token method."""
        path = GEMINI_PATH_FMT.format(v=api_version)
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
            f"wss://{host}{VERTEX_PATH_FMT.format(v=api_version)}",
            "vertex",
            project=project,
            location=location,
        )

    @classmethod
    def custom(cls, url: str, *, api: ApiKind = "custom") -> Endpoint:
        """Any ``ws://`` / ``wss://`` URL (a proxy, a gateway, FakeLiveServer).

        Raises :class:`~gemini_live.errors.ConfigError` for a URL that does not parse, has
        another scheme, no host, or credentials in it.
        """
        endpoint = cls(url, api)  # checks the URL
        if api == "custom":
            path = urllib.parse.urlsplit(url).path
            if "aiplatform" in path:
                return cls(url, "vertex")
            if "generativelanguage" in path:
                return cls(url, "gemini")
        return endpoint

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

    def __post_init__(self) -> None:
        kind = self.kind
        if kind in ("api_key", "ephemeral_token", "bearer"):
            what = {"api_key": "API key", "ephemeral_token": "ephemeral token"}.get(
                kind, "bearer token"
            )
            object.__setattr__(self, "_secret", _credential(what, self._secret))
        elif kind == "bearer_provider":
            if not callable(self._provider):
                raise ConfigError("bearer_provider must be an async callable returning a token")
        elif kind != "none":
            raise ConfigError(f"unknown auth kind {kind!r}")
        if self.quota_project is not None:
            check_header("x-goog-user-project", self.quota_project)

    def __repr__(self) -> str:
        return f"Auth(kind={self.kind!r}, secret={'***' if self._secret else None})"

    __str__ = __repr__

    @classmethod
    def none(cls) -> Auth:
        return cls("none")

    @classmethod
    def api_key(cls, key: str) -> Auth:
        """A Gemini API (or Vertex express) key, sent as ``x-goog-api-key``.

        Surrounding whitespace (a trailing newline from a file) is stripped; an empty key
        or one with a control character raises :class:`~gemini_live.errors.ConfigError`.
        """
        return cls("api_key", key)

    @classmethod
    def ephemeral_token(cls, token: str, *, in_query: bool = False) -> Auth:
        """An ephemeral token (``auth_tokens/...``) for the Constrained endpoint."""
        return cls("ephemeral_token", token, in_query=in_query)

    @classmethod
    def bearer(cls, token: str, *, quota_project: str | None = None) -> Auth:
        """A fixed OAuth2 access token (Vertex AI)."""
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
            token = _credential("the token from bearer_provider", await self._provider())
            headers.append(("Authorization", f"Bearer {token}"))
        if self.quota_project:
            headers.append(("x-goog-user-project", self.quota_project))
        return url, headers


# -- ephemeral tokens (REST) -----------------------------------------------------------------

#: The longest lifetime the service accepts for a token (``expireTime`` < 20 h).
MAX_TOKEN_LIFETIME = 20 * 3600.0


@dataclass(frozen=True, slots=True)
class EphemeralToken:
    """A minted token. ``name`` (``auth_tokens/...``) is the credential; never log it."""

    name: str = field(repr=False)
    expire_time: str | None = None
    new_session_expire_time: str | None = None

    def __repr__(self) -> str:
        return f"EphemeralToken(name='***', expire_time={self.expire_time!r})"

    def auth(self, *, in_query: bool = False) -> Auth:
        """The :class:`Auth` to connect with (use ``Endpoint.gemini(constrained=True)``)."""
        return Auth.ephemeral_token(self.name, in_query=in_query)


def _timestamp(value: datetime.datetime | float | None, default_s: float, now: float) -> str:
    if value is None:
        when = now + default_s
    elif isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ConfigError("token times must be timezone-aware datetimes")
        when = value.timestamp()
    else:
        when = now + float(value)
    if when <= now:
        raise ConfigError("token times must be in the future")
    if when - now > MAX_TOKEN_LIFETIME:
        raise ConfigError("token times must be less than 20 hours from now")
    stamp = datetime.datetime.fromtimestamp(when, tz=datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token_request_body(
    *,
    uses: int = 1,
    expire_time: datetime.datetime | float | None = None,
    new_session_expire_time: datetime.datetime | float | None = None,
    setup: Setup | None = None,
    lock_fields: Sequence[str] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST .../auth_tokens`` (exposed for inspection and tests).

    ``expire_time`` / ``new_session_expire_time`` take an aware datetime or seconds from
    now (defaults: 30 min and 60 s). With a ``setup`` and no ``lock_fields``, every
    top-level field the setup sets is locked *except* ``sessionResumption``: without an
    explicit mask the service would ignore the client's whole setup, resume handle
    included. ``lock_fields`` uses wire (camelCase) paths, e.g. ``"generationConfig.speechConfig"``.
    """
    if uses < 0:
        raise ConfigError("uses must be >= 0 (0 means unlimited)")
    t = time.time() if now is None else now
    body: dict[str, Any] = {
        "uses": uses,
        "expireTime": _timestamp(expire_time, 30 * 60.0, t),
        "newSessionExpireTime": _timestamp(new_session_expire_time, 60.0, t),
    }
    explicit = lock_fields is not None
    if setup is not None:
        setup_json = msgspec.to_builtins(setup)
        body["bidiGenerateContentSetup"] = setup_json
        if lock_fields is None:
            lock_fields = [k for k in setup_json if k != "sessionResumption"]
    elif lock_fields:
        raise ConfigError("lock_fields needs a setup to lock")
    if lock_fields is not None:
        body["fieldMask"] = ",".join(lock_fields)
    # The service rejects (HTTP 400) a setup field the mask does not cover: send only those.
    return _covered_body(body, explicit=explicit)


def _camel_path(raw: str) -> tuple[str, ...]:
    names: list[str] = []
    for name in raw.strip().split("."):
        if not name:
            raise ConfigError(f"lock_fields: {raw!r} has an empty path element")
        if name.isdigit() or "[" in name or "]" in name:
            raise ConfigError(
                f"lock_fields: {raw!r}: array indices are not valid in a field mask;"
                f" lock the whole field ({'.'.join(names) or name!r})"
            )
        camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)
        if not re.fullmatch(r"[a-z][A-Za-z0-9]*", camel):
            raise ConfigError(f"lock_fields: {raw!r} is not a wire field path")
        names.append(camel)
    return tuple(names)


def _covered_body(body: dict[str, Any], *, explicit: bool) -> dict[str, Any]:
    """Keep only the setup fields the mask covers (the service's 400 rule)."""
    setup_json = body.get("bidiGenerateContentSetup")
    mask = body.get("fieldMask")
    if setup_json is None or mask is None:
        return body
    if not mask.strip():
        raise ConfigError(
            "lock_fields is empty: it would lock nothing; leave out setup= for an"
            " unconstrained token"
        )
    paths: list[tuple[str, ...]] = []
    for raw in mask.split(","):
        path = _camel_path(raw)
        if path not in paths:
            paths.append(path)
    # A path under another locked path adds nothing.
    paths = [p for p in paths if not any(q != p and p[: len(q)] == q for q in paths)]
    left_out: list[str] = []

    def prune(obj: dict[str, Any], prefix: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            here = (*prefix, key)
            if any(here[: len(p)] == p for p in paths):
                out[key] = value
            elif isinstance(value, dict) and any(p[: len(here)] == here for p in paths):
                sub = prune(value, here)
                if sub:
                    out[key] = sub
            else:
                left_out.append(".".join(here))
        return out

    new = dict(body)
    new["bidiGenerateContentSetup"] = prune(setup_json, ())
    new["fieldMask"] = ",".join(".".join(p) for p in paths)
    shown = [f for f in left_out if f != "sessionResumption" or explicit]
    if shown:
        logging.getLogger("gemini_live").warning(
            "create_ephemeral_token: not covered by lock_fields, so not sent: %s",
            ", ".join(shown),
        )
    return new


def _token_service_scheme(url: str) -> str:
    """The scheme of the token service URL: https, or http to a loopback host only."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"base_url does not parse: {exc}") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError("base_url must be an https:// URL")
    if "@" in parts.netloc:
        raise ConfigError("base_url must not carry credentials (user:pass@)")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigError(
            "base_url must be https:// (plain http:// would send the API key in clear text;"
            " it is allowed only to a loopback host such as 127.0.0.1)"
        )
    return parts.scheme


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def create_ephemeral_token(
    api_key: str,
    *,
    uses: int = 1,
    expire_time: datetime.datetime | float | None = None,
    new_session_expire_time: datetime.datetime | float | None = None,
    setup: Setup | None = None,
    lock_fields: Sequence[str] | None = None,
    api_version: str = "v1beta",
    base_url: str = f"https://{GEMINI_HOST}",
    http_timeout: float = 10.0,
) -> EphemeralToken:
    """Mint an ephemeral token with a real API key (server side; hand the token to clients).

    Mint one per (re)connection where possible: resuming with a used token has been seen
    to fail. Raises :class:`~gemini_live.errors.ConnectError` (with ``status``) on HTTP
    errors; the key never appears in messages.

    The service rejects (HTTP 400) a constrained setup holding any field that
    ``fieldMask`` does not cover, so only covered fields are sent: with no
    ``lock_fields`` every field the setup sets is locked except ``sessionResumption``
    (which is left out, so the client's resume handle is honoured); with ``lock_fields``
    the setup is cut down to those paths (a warning on the ``gemini_live`` logger names
    what was left out). Paths are lowerCamel wire names (``snake_case`` is converted)
    without array indices (``tools.0`` is a :class:`~gemini_live.errors.ConfigError`:
    lock the whole list); an empty ``lock_fields`` with a setup locks nothing and is a
    ConfigError too.

    The key goes only where ``base_url`` points: a redirect is never followed (it raises
    :class:`~gemini_live.errors.ConnectError` with the status), and ``base_url`` must be
    ``https://``, or ``http://`` to a loopback host (a local fake or proxy), else
    :class:`~gemini_live.errors.ConfigError`.
    """
    # Imported here: urllib.request and ssl cost ~10 ms at import and only this needs them.
    import ssl
    import urllib.error
    import urllib.request

    if not api_key:
        raise ConfigError("API key is empty")
    register_secret(api_key)
    body = msgspec.json.encode(
        token_request_body(
            uses=uses,
            expire_time=expire_time,
            new_session_expire_time=new_session_expire_time,
            setup=setup,
            lock_fields=lock_fields,
        )
    )
    url = f"{base_url.rstrip('/')}/{api_version}/auth_tokens"
    scheme = _token_service_scheme(url)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"x-goog-api-key": api_key, "Content-Type": "application/json"},
    )

    class RefuseRedirects(urllib.request.HTTPRedirectHandler):
        """Never follow a redirect: it would carry ``x-goog-api-key`` to another URL."""

        def redirect_request(self, req: Any, fp: Any, code: int, *args: Any) -> None:
            fp.close()
            error = ConnectError(
                f"creating an ephemeral token failed: the token service answered HTTP {code}"
                " (a redirect), which is not followed: the API key goes nowhere else",
                status=code,
            )
            error.retryable = False
            raise error

    handlers: list[urllib.request.BaseHandler] = [RefuseRedirects()]
    if scheme == "https":
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    else:
        # Plain http goes to loopback only: never through a proxy, in clear text.
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)

    def call() -> bytes:
        try:
            with opener.open(request, timeout=http_timeout) as resp:
                data: bytes = resp.read()
                return data
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            raise ConnectError(
                f"creating an ephemeral token failed: HTTP {exc.code}: {detail}", status=exc.code
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectError(f"creating an ephemeral token failed: {exc}") from None

    raw = await asyncio.to_thread(call)
    try:
        answer = msgspec.json.decode(raw, type=dict[str, Any])
        name = answer["name"]
        if not isinstance(name, str) or not name:
            raise KeyError("name")
    except (msgspec.DecodeError, KeyError) as exc:
        raise ConnectError(f"unexpected answer from the token service: {exc}") from None
    register_secret(name)
    return EphemeralToken(
        name=name,
        expire_time=answer.get("expireTime"),
        new_session_expire_time=answer.get("newSessionExpireTime"),
    )
