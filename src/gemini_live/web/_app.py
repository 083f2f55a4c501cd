"""The page, the token endpoint, a ready-made Starlette app and an in-process server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import inspect
import ipaddress
import logging
import re
import secrets
import signal
import struct
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from gemini_live._asgi import Receive, Scope, Send, respond_json
from gemini_live._bridge import (
    ABORT_EXTENSION,
    ON_MESSAGE_EXTENSION,
    SEND_NOWAIT_EXTENSION,
    LoopBatch,
    parse_scope,
)
from gemini_live.auth import GEMINI_HOST, MAX_TOKEN_LIFETIME, Endpoint, create_ephemeral_token
from gemini_live.errors import ConfigError, ConnectError
from gemini_live.transport._common import small_reads
from gemini_live.types import UNSET, Setup
from gemini_live.web._drain import SigtermDrain
from gemini_live.web._relay import (
    ConnectionInfo,
    Relay,
    RelayLimits,
    RelayRejected,
    origin_allowed,
    parse_origins,
)

if TYPE_CHECKING:
    from gemini_live.webrtc import WebRTCRelay

__all__ = [
    "LOOPBACK_HOSTS",
    "AccessToken",
    "TokenEndpoint",
    "TokenRequest",
    "create_app",
    "page_html",
    "running",
    "serve",
    "static_file",
]

logger = logging.getLogger("gemini_live.web")

_STATIC_FILES: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    "mic-worklet.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}
_CSP: Final = (
    "default-src 'self'; connect-src 'self'; media-src 'self' blob:; "
    "script-src 'self'; style-src 'self'; frame-ancestors 'none'"
)


def static_file(name: str) -> bytes:
    """The bytes of a static file of the page: ``app.js``, ``favicon.svg``,
    ``mic-worklet.js``, ``page.css``."""
    if name not in _STATIC_FILES:
        raise KeyError(name)
    return resources.files("gemini_live.web").joinpath("static", name).read_bytes()


def page_html(
    *, relay_path: str = "/live", static_path: str = "/static", webrtc_path: str | None = None
) -> bytes:
    """The voice page, wired to a relay at ``relay_path`` (and, with ``webrtc_path``, to
    a WebRTC offer endpoint it prefers)."""
    for value in (relay_path, static_path, webrtc_path or "/"):
        if not value.startswith("/") or any(c in value for c in "\"'<>&"):
            raise ConfigError(f"path must start with '/' and hold no quotes or markup: {value!r}")
    html = resources.files("gemini_live.web").joinpath("static", "index.html").read_text()
    html = html.replace("__RELAY_PATH__", relay_path).replace("__STATIC__", static_path.rstrip("/"))
    html = html.replace("__WEBRTC_PATH__", webrtc_path or "")
    return html.encode()


# -- ephemeral tokens ------------------------------------------------------------------


#: Header names whose values are credentials (or may hold one): masked in reprs.
_SECRET_HEADER: Final = re.compile(
    r"cookie|authori[sz]ation|token|secret|key|signature|session|passw|csrf|xsrf|auth", re.I
)
#: Setup fields every minted token locks, set or not: the model, its instructions, its
#: tools and its generation settings stay the server's choice.
_ALWAYS_LOCKED: Final = ("model", "systemInstruction", "tools", "generationConfig")


def _masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for name, value in headers.items():
        if _SECRET_HEADER.search(name):
            shown[name] = "***"
        elif "?" in value or "#" in value:  # a Referer (or any URL) may carry a token
            shown[name] = value.split("?", 1)[0].split("#", 1)[0] + "?***"
        else:
            shown[name] = value
    return shown


@dataclass(repr=False)
class TokenRequest:
    """What the ``authorize`` and ``setup`` hooks of :class:`TokenEndpoint` see.

    ``client`` is the socket peer; ``address`` the client's address the endpoint rate
    limits by: the peer, or the address a configured trusted proxy put in
    ``X-Forwarded-For``. The repr masks cookies, credentials and URL query strings.
    """

    headers: Mapping[str, str]
    client: tuple[str, int] | None
    origin: str | None
    identity: object = None
    extra: dict[str, Any] = field(default_factory=dict)
    address: str | None = None

    def __repr__(self) -> str:
        return (
            f"TokenRequest(address={self.address!r}, origin={self.origin!r},"
            f" headers={_masked_headers(self.headers)!r}, identity={self.identity!r},"
            f" extra={sorted(self.extra)!r})"
        )


def _networks(values: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigError(
                f"trusted_proxies: {value!r} is not an IP address or network"
            ) from None
    return tuple(out)


def _in_networks(
    address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _client_address(
    peer: str | None,
    forwarded_for: str | None,
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> str:
    """The client's address: ``peer``, unless ``peer`` is a trusted proxy; then the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries to
    its left were written by the client and prove nothing)."""
    if peer is None:
        return "?"
    if not forwarded_for or not _in_networks(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        if hop and not _in_networks(hop, trusted_proxies):
            return hop[:64]
    return peer


class TokenEndpoint:
    """An ASGI endpoint (``POST``) minting one ephemeral token per browser session.

    For apps whose browser connects to the Live API directly: the API key stays here,
    the browser gets a short-lived, single-use token for the ``...Constrained`` method
    and passes it as the ``access_token`` query parameter. Answer (JSON, ``no-store``)::

        {"token": "auth_tokens/...", "expire_time": "...", "new_session_expire_time": "...",
         "url": "wss://.../BidiGenerateContentConstrained"}

    A token can only do what the server allows: it is locked to the server's ``setup``
    (the model, and always ``systemInstruction``, ``tools`` and ``generationConfig``,
    set or not, plus every other field the setup sets and ``lock_fields``), opens
    ``uses`` sessions (1) within ``new_session_seconds`` (60 s) and expires after
    ``expire_seconds`` (10 min). Only ``sessionResumption`` stays the client's, so it can
    resume.

    Args:
        api_key: The real key (never leaves the server).
        authorize: ``authorize(request)`` (sync or async) returns an identity, or
            ``None``/``False`` to answer 401; raise :class:`RelayRejected` for 403.
            Required: without it the endpoint refuses to start, unless
            ``insecure_no_authorize=True`` (local development only; logged), because
            anyone who can reach it could mint tokens on your key.
        setup: The :class:`~gemini_live.types.Setup` every token is locked to (it must
            name the model), or a ``setup(request)`` hook (sync or async) returning one.
            Required.
        allowed_origins: As for :class:`Relay`; ``None`` is same-origin only. Requests
            without ``Origin`` are refused unless ``allow_no_origin``. The ``Origin``
            check stops other web pages, not scripts: ``authorize`` is the real check.
        uses: Sessions one token may open (at least 1).
        expire_seconds: Lifetime of a token (and so of the sessions it opened).
        new_session_seconds: How long a token may start new sessions.
        lock_fields: More setup fields (wire paths) to lock.
        max_per_minute: Tokens minted per client address per minute (429 beyond).
        max_clients: Client addresses the rate table remembers (least recently seen
            forgotten first).
        trusted_proxies: Addresses or networks of your reverse proxies: only a request
            from one of them has its client address taken from ``X-Forwarded-For``.
    """

    def __init__(
        self,
        api_key: str,
        *,
        authorize: Callable[[TokenRequest], object] | None = None,
        setup: Setup | Callable[[TokenRequest], Any] | None = None,
        insecure_no_authorize: bool = False,
        allowed_origins: Sequence[str] | Literal["*"] | None = None,
        allow_no_origin: bool = False,
        uses: int = 1,
        expire_seconds: float = 10 * 60.0,
        new_session_seconds: float = 60.0,
        lock_fields: Sequence[str] | None = None,
        api_version: str = "v1beta",
        base_url: str = f"https://{GEMINI_HOST}",
        host: str = GEMINI_HOST,
        max_per_minute: int = 30,
        max_clients: int = 10_000,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        if not api_key:
            raise ConfigError("API key is empty")
        if authorize is None and not insecure_no_authorize:
            raise ConfigError(
                "TokenEndpoint needs authorize= (who may have a token): without it anyone who"
                " reaches the endpoint mints tokens on your key; for local development only,"
                " pass insecure_no_authorize=True"
            )
        if authorize is not None and insecure_no_authorize:
            raise ConfigError("insecure_no_authorize=True contradicts the authorize hook given")
        if insecure_no_authorize:
            logger.warning(
                "TokenEndpoint: insecure_no_authorize=True: anyone who reaches it gets a"
                " token; never expose it"
            )
        if setup is None:
            raise ConfigError(
                "TokenEndpoint needs setup= (a Setup naming the model, or a hook returning"
                " one): a token not locked to a setup opens any model with any instructions"
            )
        if isinstance(setup, Setup):
            _check_setup(setup)
        elif not callable(setup):
            raise ConfigError(f"setup must be a Setup or a hook, got {type(setup).__name__}")
        if isinstance(uses, bool) or not isinstance(uses, int) or uses < 1:
            raise ConfigError("uses must be at least 1 (a token with 0 uses is unlimited)")
        if not 0 < new_session_seconds <= expire_seconds <= MAX_TOKEN_LIFETIME:
            raise ConfigError(
                "need 0 < new_session_seconds <= expire_seconds <= 20 h,"
                f" got {new_session_seconds} and {expire_seconds}"
            )
        if max_per_minute < 1 or max_clients < 1:
            raise ConfigError("max_per_minute and max_clients must be at least 1")
        self._api_key = api_key
        self._authorize = authorize
        self._setup = setup
        self._origins = parse_origins(allowed_origins)
        self._allow_no_origin = allow_no_origin
        self.uses = uses
        self.expire_seconds = expire_seconds
        self.new_session_seconds = new_session_seconds
        self.lock_fields = tuple(lock_fields or ())
        self.api_version = api_version
        self.base_url = base_url
        self.url = Endpoint.gemini(api_version=api_version, constrained=True, host=host).url
        self.max_per_minute = max_per_minute
        self.max_clients = max_clients
        self._trusted = _networks(trusted_proxies)
        # client address -> times of its recent requests; least recently seen first.
        self._recent: OrderedDict[str, list[float]] = OrderedDict()
        #: Tokens minted so far.
        self.minted = 0

    def __repr__(self) -> str:
        return f"<TokenEndpoint url={self.url!r} minted={self.minted}>"

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if scope["type"] != "http":
            return
        status, body = await self._handle(scope, receive)
        await respond_json(send, status, body)

    def _over_limit(self, address: str, now: float) -> bool:
        """Count this request against ``address``; True if it is one too many."""
        table = self._recent
        recent = [t for t in table.pop(address, ()) if now - t < 60.0]
        over = len(recent) >= self.max_per_minute
        if not over:
            recent.append(now)
        table[address] = recent
        while len(table) > self.max_clients:
            table.popitem(last=False)
        return over

    def _lock_mask(self, setup: Setup) -> list[str]:
        fields = [*_ALWAYS_LOCKED, *msgspec.to_builtins(setup), *self.lock_fields]
        return list(dict.fromkeys(f for f in fields if f != "sessionResumption"))

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        if scope.get("method") != "POST":
            return 405, {"error": "use POST"}
        # Drain (and bound) the request body; its content is not used.
        size = 0
        while True:
            msg = await receive()
            size += len(msg.get("body", b""))
            if size > 16 * 1024:
                return 413, {"error": "request body too large"}
            if not msg.get("more_body"):
                break
        headers: dict[str, str] = {}
        forwarded: list[str] = []
        for k, v in scope.get("headers", []):
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            headers[name] = value
            if name == "x-forwarded-for":
                forwarded.append(value)
        client = scope.get("client")
        peer = (str(client[0]), int(client[1])) if client else None
        req = TokenRequest(
            headers=headers,
            client=peer,
            origin=headers.get("origin"),
            address=_client_address(
                peer[0] if peer else None, ",".join(forwarded) or None, self._trusted
            ),
        )
        scheme = str(scope.get("scheme", "http"))
        if not origin_allowed(self._origins, self._allow_no_origin, req.origin, headers, scheme):
            return 403, {"error": "origin not allowed"}
        assert req.address is not None
        if self._over_limit(req.address, time.monotonic()):
            return 429, {"error": "too many token requests"}
        try:
            if self._authorize is not None:
                identity = await _maybe_await(self._authorize(req))
                if identity is None or identity is False:
                    return 401, {"error": "unauthorized"}
                req.identity = identity
            setup = self._setup
            if not isinstance(setup, Setup):
                assert setup is not None
                setup = await _maybe_await(setup(req))
        except RelayRejected as exc:
            return 403, {"error": exc.reason}
        try:
            if not isinstance(setup, Setup):
                raise ConfigError(f"the setup hook returned {type(setup).__name__}, not a Setup")
            _check_setup(setup)
        except ConfigError as exc:
            logger.error("TokenEndpoint: no token minted: %s", exc)
            return 500, {"error": "no setup to lock the token to"}
        if setup.session_resumption is not UNSET:
            # The client's resume handle must reach the service: never part of the lock.
            setup = msgspec.structs.replace(setup, session_resumption=UNSET)
        try:
            token = await create_ephemeral_token(
                self._api_key,
                uses=self.uses,
                expire_time=self.expire_seconds,
                new_session_expire_time=self.new_session_seconds,
                setup=setup,
                lock_fields=self._lock_mask(setup),
                api_version=self.api_version,
                base_url=self.base_url,
            )
        except ConnectError as exc:
            logger.warning("minting an ephemeral token failed: %s", exc)
            return 502, {"error": "the token service failed", "status": exc.status}
        self.minted += 1
        return 200, {
            "token": token.name,
            "expire_time": token.expire_time,
            "new_session_expire_time": token.new_session_expire_time,
            "url": self.url,
        }


def _check_setup(setup: Setup) -> None:
    if not isinstance(setup.model, str) or not setup.model:
        raise ConfigError("the token's setup must name the model")


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


# -- local access: a Host allow-list and a per-launch token -------------------------------

#: Host names that always reach a loopback server (``Host`` header, without the port).
LOOPBACK_HOSTS: Final = ("localhost", "127.0.0.1", "[::1]")


def _host_name(host_header: str) -> str:
    """``Host`` header -> the name without the port (``[::1]`` keeps its brackets)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _normalize_host(name: str) -> str:
    name = name.strip().lower()
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # a bare IPv6 address
    return name


class _HostAllowList:
    """ASGI middleware: refuse HTTP and WebSocket requests whose ``Host`` is not allowed.

    A browser sends the name it resolved in ``Host``; a DNS-rebinding page (its own name,
    resolved to 127.0.0.1) is refused because that name is not on the list.
    """

    def __init__(self, app: Any, hosts: Sequence[str]) -> None:
        self.app = app
        self.hosts = frozenset(_normalize_host(h) for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or "*" in self.hosts:
            await self.app(scope, receive, send)
            return
        headers, _, _ = parse_scope(scope)
        if _host_name(headers.get("host", "")) in self.hosts:
            await self.app(scope, receive, send)
            return
        logger.info("refused a request for host %r (not allowed)", headers.get("host", "")[:80])
        if scope["type"] == "websocket":
            msg = await receive()
            if msg["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 4403, "reason": "host not allowed"})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": b"host not allowed\n"})


class AccessToken:
    """A random secret for one launch of a local server, as local notebook servers use.

    Print :meth:`url` for the user; the page route trades the token for a cookie
    (``HttpOnly``, ``SameSite=Strict``) and drops it from the address bar, and the
    relay's ``authorize=token.authorize`` admits a WebSocket that carries the cookie or
    the token (query parameter ``token``), compared in constant time.
    """

    #: Query parameter that carries the token.
    param: Final = "token"

    def __init__(self, value: str | None = None) -> None:
        if value is not None and (not isinstance(value, str) or len(value) < 16):
            raise ConfigError("an access token must be a string of at least 16 characters")
        self._value = value or secrets.token_urlsafe(32)

    def __repr__(self) -> str:
        return "<AccessToken ***>"

    @property
    def value(self) -> str:
        return self._value

    def url(self, base: str, path: str = "/") -> str:
        """``base + path`` with the token (the URL to open once)."""
        return f"{base.rstrip('/')}{path}?{self.param}={self._value}"

    def cookie_name(self, headers: Mapping[str, str]) -> str:
        """One cookie per port: cookies are shared by every port of a host."""
        host = headers.get("host", "")
        port = host.rsplit(":", 1)[1] if host.count(":") == 1 or "]:" in host else "default"
        return f"gemini_live_token_{''.join(c for c in port if c.isalnum())}"

    def matches(self, candidate: str | None) -> bool:
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self._value.encode())

    def _cookie(self, headers: Mapping[str, str]) -> str | None:
        name = self.cookie_name(headers)
        for part in headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def check(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        """True if the request carries the token (query) or its cookie."""
        return self.matches(query.get(self.param)) or self.matches(self._cookie(headers))

    def authorize(self, conn: ConnectionInfo) -> object:
        """A :class:`Relay` ``authorize`` hook: the local user, or ``None``."""
        return "local-user" if self.check(conn.headers, conn.query) else None


# -- the app -----------------------------------------------------------------------------


def create_app(
    relay: Relay,
    *,
    relay_path: str = "/live",
    page: bool = True,
    token_endpoint: TokenEndpoint | None = None,
    token_path: str = "/token",
    allowed_hosts: Sequence[str] | None = None,
    access_token: AccessToken | None = None,
    drain_timeout: float | None = 25.0,
    webrtc: bool | WebRTCRelay = False,
) -> Any:
    """A Starlette app: the voice page at ``/``, its files under ``/static``, the relay at
    ``relay_path``, optionally the token endpoint at ``token_path``, ``/healthz`` (200
    while the process runs) and ``/readyz`` (200 while it admits browsers, 503 once
    :meth:`Relay.drain` began: point a load balancer's health check there).

    ``allowed_hosts``: refuse every request (HTTP and WebSocket) whose ``Host`` is not
    one of these names (``"*"``: any); this is what stops DNS rebinding. ``None`` (the
    default) checks nothing: set it, or put the app behind a proxy that does.
    ``access_token``: the page is served only to a browser that brought the token (or
    its cookie); pair it with ``Relay(..., authorize=access_token.authorize)``.
    ``webrtc``: ``True`` (or a :class:`gemini_live.webrtc.WebRTCRelay` of this relay, for
    ICE servers and its other settings) adds the WebRTC offer endpoint at
    ``relay_path + "/webrtc/offer"``; the page then prefers WebRTC and falls back to the
    WebSocket relay (docs/guide/webrtc.md; needs the ``webrtc`` extra).

    ``drain_timeout``: served by a server that runs the ASGI lifespan (plain ``uvicorn
    module:app``, ``uvicorn --workers N``), the first SIGTERM drains the relay
    (:meth:`Relay.drain`, at most this many seconds) before the server's own shutdown
    runs; ``None``: SIGTERM stops at once. (:func:`serve` drains with its own
    ``drain_timeout``.)

    Needs the ``web`` extra (``pip install 'gemini-live[web]'``).
    """
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, RedirectResponse, Response
        from starlette.routing import BaseRoute, Route, WebSocketRoute
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("create_app needs the web extra: pip install 'gemini-live[web]'") from exc

    rtc: WebRTCRelay | None = None
    if webrtc is True:
        from gemini_live.webrtc import WebRTCRelay as _WebRTCRelay

        rtc = _WebRTCRelay(relay)
    elif webrtc is not False:
        from gemini_live.webrtc import WebRTCRelay as _WebRTCRelay

        if not isinstance(webrtc, _WebRTCRelay) or webrtc.relay is not relay:
            raise ConfigError("webrtc must be True, False or a WebRTCRelay of this relay")
        rtc = webrtc
    rtc_path = relay_path.rstrip("/") + "/webrtc/offer" if rtc is not None else None
    html = page_html(relay_path=relay_path, webrtc_path=rtc_path)
    token = access_token

    async def index(request: Request) -> Response:
        if token is not None:
            headers = {k.lower(): v for k, v in request.headers.items()}
            query = dict(request.query_params)
            if token.matches(query.get(token.param)):
                # Trade the token for a cookie and take it out of the address bar.
                rest = urllib.parse.urlencode(
                    [(k, v) for k, v in request.query_params.multi_items() if k != token.param]
                )
                response: Response = RedirectResponse(
                    request.url.path + (f"?{rest}" if rest else ""), status_code=303
                )
                response.set_cookie(
                    token.cookie_name(headers),
                    token.value,
                    httponly=True,
                    samesite="strict",
                    secure=request.url.scheme == "https",
                    path="/",
                )
                response.headers["cache-control"] = "no-store"
                response.headers["referrer-policy"] = "no-referrer"
                return response
            if not token.check(headers, {}):
                return Response(
                    b"open the URL with the access token that was printed when this "
                    b"server started\n",
                    status_code=401,
                    media_type="text/plain",
                )
        return Response(
            html,
            media_type="text/html; charset=utf-8",
            headers={
                "content-security-policy": _CSP,
                "cache-control": "no-cache",
                "referrer-policy": "no-referrer",
            },
        )

    async def static(request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in _STATIC_FILES:
            return Response(b"not found", status_code=404, media_type="text/plain")
        return Response(static_file(name), media_type=_STATIC_FILES[name])

    async def healthz(_request: Request) -> Response:
        s = relay.stats
        return JSONResponse({"ok": True, "active": s.active, "accepted": s.accepted})

    async def readyz(_request: Request) -> Response:
        if relay.draining:
            return JSONResponse({"ready": False, "draining": True}, status_code=503)
        return JSONResponse({"ready": True, "active": relay.stats.active})

    routes: list[BaseRoute] = [
        WebSocketRoute(relay_path, relay),
        Route(relay_path, relay),  # plain HTTP gets 426 Upgrade Required
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    if rtc is not None and rtc_path is not None:
        routes.append(Route(rtc_path, rtc))
    if page:
        routes += [Route("/", index), Route("/static/{name}", static)]
    if token_endpoint is not None:
        routes.append(Route(token_path, token_endpoint))
    if drain_timeout is not None and not drain_timeout > 0:
        raise ConfigError("drain_timeout must be > 0 seconds (or None)")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        hook = SigtermDrain(relay, drain_timeout) if drain_timeout is not None else None
        if hook is not None:
            hook.install()
        try:
            yield
        finally:
            if hook is not None:
                hook.uninstall()

    app = Starlette(routes=routes, lifespan=lifespan)
    # web.serve/running size the server from these.
    app.state.gemini_live_limits = relay.limits
    app.state.gemini_live_relay = relay
    app.state.gemini_live_webrtc = rtc
    if allowed_hosts is not None:
        app.add_middleware(_HostAllowList, hosts=list(allowed_hosts))
    return app


# -- serving -------------------------------------------------------------------------------

#: Largest WebSocket message the library's server takes for an app without a relay.
_DEFAULT_WS_MAX_SIZE: Final = 1024 * 1024
#: Connections beyond the relay's own limit (page loads, static files, health checks).
_HTTP_HEADROOM: Final = 32


def _relay_of(app: Any) -> Relay | None:
    relay = getattr(getattr(app, "state", None), "gemini_live_relay", None)
    return relay if isinstance(relay, Relay) else None


def _limits_of(app: Any) -> RelayLimits | None:
    limits = getattr(getattr(app, "state", None), "gemini_live_limits", None)
    return limits if isinstance(limits, RelayLimits) else None


def _protocols(handshake_timeout: float) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """uvicorn's HTTP and WebSocket protocols with two additions: a request must arrive
    in full within ``handshake_timeout`` (half-sent requests and upgrades are cut), and
    a WebSocket connection offers its transport's ``abort`` to the app (the relay uses it
    when a close frame cannot be sent in time)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    try:
        from websockets.speedups import apply_mask
    except ImportError:  # pragma: no cover - websockets built without its C helper
        from websockets.utils import apply_mask

    http_base: Any = AutoHTTPProtocol

    class _DeadlineHTTP(http_base):  # type: ignore[misc]
        _gl_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            small_reads(transport)  # kept when the connection upgrades
            super().connection_made(transport)
            self._gl_timer = self.loop.call_later(handshake_timeout, self._gl_expired)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._gl_timer is not None:
                self._gl_timer.cancel()
            super().connection_lost(exc)

        def _gl_expired(self) -> None:
            self._gl_timer = None
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            if transport.get_protocol() is not self:  # upgraded to a WebSocket
                return
            if getattr(self, "cycle", None) is None:  # no request arrived in full
                transport.abort()

    class _AbortableWS(WebSocketsSansIOProtocol):
        # The app's synchronous inbound handler (ON_MESSAGE_EXTENSION), whether the app
        # waits in receive() now, and what a handler raised (for the next receive()).
        _gl_on_message: Callable[[bytes | str], bool] | None = None
        _gl_waiting = False
        _gl_raised: BaseException | None = None
        # Frame boundaries tracked from the upgrade on (see _gl_frames), the bytes of an
        # incomplete frame held back, and whether data arrived before.
        _gl_track = False
        _gl_tail = b""
        _gl_started = False
        _gl_seen = False

        def connection_made(self, transport: Any) -> None:
            proxy: Any = CoalescingTransport(transport, asyncio.get_running_loop())
            super().connection_made(proxy)

        def data_received(self, data: bytes) -> None:
            if self._gl_track:
                tail = self._gl_tail
                if tail:
                    data = tail + data
                    self._gl_tail = b""
                data = self._gl_frames(data)
                if data:
                    super().data_received(data)
            else:
                first = not self._gl_started
                self._gl_started = True
                super().data_received(data)
                # uvicorn's HTTP protocol hands over the upgrade request, whole and
                # alone, as the first data: what follows starts at a frame boundary.
                if (
                    first
                    and self.handshake_initiated
                    and not self.close_sent
                    and data.endswith(b"\r\n\r\n")
                    and not self.conn.reader.buffer
                ):
                    self._gl_track = True
            # uvicorn asks to pause after every message it queues; the proxy stops
            # reading only once READ_AHEAD_MESSAGES wait for the app.
            if self.queue.qsize() >= READ_AHEAD_MESSAGES:
                proxy: Any = self.transport
                if isinstance(proxy, CoalescingTransport):
                    proxy.hold_reading()

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope: Any = getattr(self, "scope", None)
            if scope is not None:
                extensions = scope.setdefault("extensions", {})
                extensions[ABORT_EXTENSION] = self._gl_abort
                extensions[SEND_NOWAIT_EXTENSION] = self._gl_send_nowait
                extensions[ON_MESSAGE_EXTENSION] = self._gl_set_on_message

        def _gl_set_on_message(self, handler: Callable[[bytes | str], bool] | None) -> None:
            self._gl_on_message = handler

        def send_receive_event_to_app(self) -> None:
            # A complete data message. With a handler set, the app waiting in receive()
            # and nothing queued (so nothing before this message is still unhandled),
            # the handler may take it here; anything else goes uvicorn's way (queued,
            # or dropped after our close, or a close for bad UTF-8).
            handler = self._gl_on_message
            if self._gl_seen:  # the handler declined this message already
                self._gl_seen = False
                handler = None
            if (
                handler is not None
                and self._gl_waiting
                and not self.close_sent
                and not self.queue.qsize()
            ):
                frames = self.frames
                raw: bytes = frames[0] if len(frames) == 1 else b"".join(frames)
                data: bytes | str = raw
                if self.curr_msg_data_type == "text":
                    try:
                        data = raw.decode()
                    except UnicodeDecodeError:
                        super().send_receive_event_to_app()  # uvicorn closes 1007
                        return
                try:
                    handled = handler(data)
                except Exception as exc:
                    self._gl_on_message = None
                    self._gl_raised = exc
                    handled = False
                if handled:
                    self.frames = []
                    return
            super().send_receive_event_to_app()

        def _gl_frames(self, data: bytes) -> bytes:
            # ``data`` starts at a frame boundary. Complete, final, masked binary or
            # text frames (no extension bits, not too big, valid UTF-8 for text) go to
            # the handler while it may take them; from the first frame it does not take
            # (or that is anything else: control frames, fragments, bad frames), the
            # complete frames go to websockets, which parses and checks them as ever.
            # An incomplete frame at the end is held for the next data (at most
            # ``max_size`` + 14 bytes: a bigger frame goes to websockets, which fails
            # the connection 1009, and tracking stops). So websockets only ever sees
            # whole frames, and the two parsers never disagree on a boundary.
            conn = self.conn
            max_size = conn.max_message_size
            if conn.max_fragment_size is not None:
                max_size = min(max_size or conn.max_fragment_size, conn.max_fragment_size)
            n = len(data)
            pos = 0
            start = -1  # where the bytes for websockets begin
            while n - pos >= 2:
                b1 = data[pos + 1]
                length = b1 & 0x7F
                head = pos + 2
                if length == 126:
                    head = pos + 4
                elif length == 127:
                    head = pos + 10
                if b1 & 0x80:
                    head += 4
                if head > n:
                    break
                if length == 126:
                    length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                elif length == 127:
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                if max_size is not None and length > max_size:
                    self._gl_track = False  # websockets refuses it and closes
                    return data[pos if start < 0 else start :]
                end = head + length
                if end > n:
                    break
                if start < 0 and not self._gl_inline(data, pos, head, end):
                    start = pos  # this frame and the ones after it: websockets's
                pos = end
            if pos < n:
                self._gl_tail = data[pos:]
            return b"" if start < 0 else data[start:pos]

        def _gl_inline(self, data: bytes, pos: int, head: int, end: int) -> bool:
            # One complete frame at data[pos:end], payload from ``head``: handled?
            handler = self._gl_on_message
            b0 = data[pos]
            if (
                handler is None
                or (b0 != 0x82 and b0 != 0x81)  # FIN, no RSV bits, binary or text
                or not data[pos + 1] & 0x80  # a client must mask
                or not self._gl_waiting
                or self.close_sent
                or self.queue.qsize()
                or self.conn.state is not State.OPEN
                or self.conn.expect_continuation_frame
            ):
                return False
            payload: bytes | str = apply_mask(data[head:end], data[head - 4 : head])
            if b0 == 0x81:
                try:
                    payload = payload.decode()  # type: ignore[union-attr]
                except UnicodeDecodeError:
                    return False  # websockets closes 1007
            try:
                handled = handler(payload)
            except Exception as exc:
                self._gl_on_message = None
                self._gl_raised = exc
                return False  # queued by websockets and uvicorn: receive() raises
            if not handled:
                self._gl_seen = True  # queued by websockets and uvicorn, not offered again
            return handled

        async def receive(self) -> Any:
            self._gl_waiting = True
            try:
                message = await super().receive()
            finally:
                self._gl_waiting = False
            raised = self._gl_raised
            if raised is not None:
                self._gl_raised = None
                raise raised
            return message

        def _gl_send_nowait(self, data: bytes | str) -> bool:
            # What uvicorn's ``send`` does for a ``websocket.send`` once the connection
            # is open (websockets writes the same frame), without the ASGI message and
            # its coroutines; anything else (not open yet or any more, writes paused,
            # an extension, a fragmented send, bytes websockets still holds) goes the
            # ASGI way.
            conn = self.conn
            transport: Any = self.transport  # the CoalescingTransport (connection_made)
            if (
                self.close_sent
                or not self.handshake_complete
                or self.initial_response is not None
                or self.disconnected
                or not self.writable.is_set()
                or conn.state is not State.OPEN
                or conn.expect_continuation_frame
                or conn.extensions
                or conn.writes
                or transport is None
            ):
                return False
            if type(transport) is CoalescingTransport:
                return transport.write_message(data)
            if transport.is_closing():
                return False
            if isinstance(data, str):
                transport.write(frame_header(_OP_TEXT, len(payload := data.encode())))
            else:
                transport.write(frame_header(_OP_BINARY, len(payload := data)))
            transport.write(payload)
            return True

        def _gl_abort(self) -> None:
            if (
                self.transport is not None and not self.transport.is_closing()
            ) or self.transport is not None:
                self.transport.abort()

    return _DeadlineHTTP, _AbortableWS


_OP_TEXT: Final = 0x1
_OP_BINARY: Final = 0x2
_HEADS: Final = {
    (op, n): bytes((0x80 | op, n)) for op in (_OP_TEXT, _OP_BINARY) for n in range(126)
}


#: A header with a 16-bit length (126 to 65535 bytes: a reply's audio) and a 64-bit one.
_HEAD16: Final = struct.Struct("!BBH").pack
_HEAD64: Final = struct.Struct("!BBQ").pack


def frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked, final, uncompressed WebSocket frame (RFC 6455 5.2),
    as a server sends it."""
    if length < 126:
        return _HEADS[opcode, length]
    if length < 65536:
        return _HEAD16(0x80 | opcode, 126, length)
    return _HEAD64(0x80 | opcode, 127, length)


#: Bytes a :class:`CoalescingTransport` holds before it writes without waiting.
COALESCE_MAX_BYTES: Final = 64 * 1024
#: Messages a WebSocket connection reads ahead of the app before it stops reading.
READ_AHEAD_MESSAGES: Final = 16


class _Flusher(LoopBatch["CoalescingTransport"]):
    """The :class:`CoalescingTransport` s of one event loop with writes pending, flushed
    together by one callback per loop iteration (not one callback per connection: at
    hundreds of connections that was a quarter of the loop's callbacks)."""

    __slots__ = ()

    def run(self, items: list[CoalescingTransport]) -> None:
        for proxy in items:
            proxy._scheduled = False
            try:
                proxy.flush()
            except Exception as exc:  # one connection's failure stays its own
                loop = self._loop()
                if loop is not None:
                    loop.call_exception_handler(
                        {"message": "coalescing transport flush failed", "exception": exc}
                    )


class CoalescingTransport:
    """A transport proxy that joins the writes made in one event-loop iteration into one
    write of the real transport (one system call instead of one per WebSocket message:
    the relay sends a reply's audio and its transcript together, the bridge a media frame
    and its mark). The bytes and their order are unchanged; they leave at the end of the
    iteration (one callback flushes every connection of the loop that wrote), or at once
    when :data:`COALESCE_MAX_BYTES` are pending. ``close`` writes what is pending first;
    ``abort`` drops it.

    Reading: uvicorn pauses the transport after every message it queues for the app and
    resumes it once the app took them all (two ``epoll_ctl`` system calls per inbound
    message). Here ``pause_reading`` is only noted; the protocol calls
    :meth:`hold_reading` once :data:`READ_AHEAD_MESSAGES` wait, which pauses the real
    transport until uvicorn's ``resume_reading``. Everything else is the real transport's.
    """

    __slots__ = ("_flusher", "_held", "_parts", "_scheduled", "_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._flusher = _Flusher.of(loop)
        self._parts: list[bytes] = []
        self._size = 0
        #: True while this proxy waits in its loop's flusher.
        self._scheduled = False
        self._held = False

    def pause_reading(self) -> None:
        pass  # see hold_reading

    def hold_reading(self) -> None:
        """Stop reading until the next ``resume_reading`` (the app is behind)."""
        if not self._held and not self.transport.is_closing():
            self._held = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._held:
            self._held = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._parts.append(data)
        self._size += len(data)
        if self._size >= COALESCE_MAX_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._flusher.add(self)

    def write_message(self, data: bytes | str) -> bool:
        """One WebSocket message as a server sends it (one final, unmasked frame: text
        for ``str``, binary for ``bytes``), written as ``write`` writes: its header and
        its payload, the payload not copied. False (nothing written) once the real
        transport is closing."""
        if self.transport.is_closing():
            return False
        if isinstance(data, str):
            data = data.encode()
            n = len(data)
            head = _HEADS[_OP_TEXT, n] if n < 126 else frame_header(_OP_TEXT, n)
        else:
            n = len(data)
            if n < 126:
                head = _HEADS[_OP_BINARY, n]
            elif n < 65536:  # a reply's audio (frame_header inlined)
                head = _HEAD16(0x82, 126, n)
            else:
                head = frame_header(_OP_BINARY, n)
        parts = self._parts
        parts.append(head)
        if n:
            parts.append(data)
        self._size += len(head) + n
        if self._size >= COALESCE_MAX_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._flusher.add(self)
        return True

    def flush(self) -> None:
        """Write what is pending to the real transport now."""
        parts = self._parts
        if not parts:
            return
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        self._size = 0
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._parts = []
        self._size = 0
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def _uvicorn_server(
    app: Any, host: str, port: int, log_level: str, limits: RelayLimits | None = None
) -> Any:
    import uvicorn

    limits = limits or _limits_of(app)
    handshake = limits.handshake_timeout if limits is not None else 10.0
    http_protocol, ws_protocol = _protocols(handshake)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=http_protocol,
        ws=ws_protocol,
        # The relay refuses bigger messages anyway: do not let uvicorn buffer 16 MiB first.
        ws_max_size=limits.max_message_bytes if limits is not None else _DEFAULT_WS_MAX_SIZE,
        # PCM does not compress: permessage-deflate would only burn CPU on every frame.
        ws_per_message_deflate=False,
        limit_concurrency=(limits.max_connections + _HTTP_HEADROOM if limits is not None else None),
        timeout_keep_alive=5,
        lifespan="off",
        access_log=False,
    )
    return _server_class()(config)


#: Seconds between two ticks of the library's uvicorn server (uvicorn's own: 0.1).
SERVER_TICK: Final = 1.0


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@functools.cache
def _server_class() -> type[Any]:
    """``uvicorn.Server`` with its main loop ticking once a second instead of ten times,
    and woken at once when ``should_exit`` is set (a signal, :func:`running`'s exit).

    uvicorn's tick only refreshes the ``date`` header (once a second: here at every
    tick) and checks whether to stop; ten wake-ups a second are ten passes of the event
    loop for every process however idle, and a stop is seen sooner here than there."""
    import uvicorn

    class _Server(uvicorn.Server):
        _gl_should_exit = False
        #: The running main loop's wait: (its loop, the future a stop completes).
        _gl_wait: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

        @property
        def should_exit(self) -> bool:
            return self._gl_should_exit

        @should_exit.setter
        def should_exit(self, value: bool) -> None:
            self._gl_should_exit = value
            wait = self._gl_wait
            if value and wait is not None:
                loop, fut = wait
                # From the loop, another thread or a signal handler alike.
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    loop.call_soon_threadsafe(_wake, fut)

        async def main_loop(self) -> None:
            # uvicorn's main_loop with SERVER_TICK; ``counter`` counts uvicorn's 0.1 s
            # ticks, so on_tick refreshes the date header at every tick, as every 10th.
            per_tick = round(SERVER_TICK * 10)
            counter = 0
            should_exit = await self.on_tick(counter)
            loop = asyncio.get_running_loop()
            while not should_exit:
                counter = (counter + per_tick) % 864000
                fut = loop.create_future()
                timer = loop.call_later(SERVER_TICK, _wake, fut)
                self._gl_wait = (loop, fut)
                try:
                    if not self._gl_should_exit:
                        await fut
                finally:
                    self._gl_wait = None
                    timer.cancel()
                should_exit = await self.on_tick(counter)

    return _Server


class _StartupErrors(logging.Filter):
    """Keeps (instead of printing) uvicorn's error lines while it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        if len(self.messages) < 8:
            self.messages.append(record.getMessage())
        return False


async def _serve_uvicorn(server: Any, host: str, port: int, errors: _StartupErrors) -> None:
    # uvicorn ends a failed start (a busy port) with its error on its log and
    # sys.exit(3) inside the event loop: that becomes one OSError with the reason.
    try:
        await server.serve()
    except SystemExit:
        reason = "; ".join(errors.messages) or "the server did not start"
        raise OSError(f"cannot listen on {host}:{port}: {reason}") from None


def _start(server: Any, host: str, port: int) -> tuple[asyncio.Task[None], _StartupErrors]:
    errors = _StartupErrors()
    logging.getLogger("uvicorn.error").addFilter(errors)
    task = asyncio.create_task(_serve_uvicorn(server, host, port, errors), name="uvicorn")
    return task, errors


async def _started(server: Any, task: asyncio.Task[None], errors: _StartupErrors) -> str:
    # uvicorn offers no start event: watch its flag (bounded).
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
    finally:
        logging.getLogger("uvicorn.error").removeFilter(errors)
    sock = server.servers[0].sockets[0]
    bound_host, bound_port = sock.getsockname()[:2]
    if ":" in bound_host:
        bound_host = f"[{bound_host}]"
    return f"http://{bound_host}:{bound_port}"


@contextlib.asynccontextmanager
async def running(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    limits: RelayLimits | None = None,
) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn inside the current event loop; yields its base URL.

    For tests, examples and small deployments (``port=0`` picks a free port)::

        async with running(create_app(relay)) as url:
            ...  # http://127.0.0.1:PORT

    The server is sized from the relay's :class:`RelayLimits` (``limits``, else those of
    an app made by :func:`create_app`): ``ws_max_size`` = ``max_message_bytes``,
    ``limit_concurrency`` = ``max_connections`` + 32, requests that do not arrive in
    full within ``handshake_timeout`` are cut, and a close the browser does not read is
    aborted. Without limits: 1 MiB messages, a 10 s handshake timeout.
    """
    server = _uvicorn_server(app, host, port, log_level, limits)
    task, errors = _start(server, host, port)
    try:
        yield await _started(server, task, errors)
    finally:
        server.should_exit = True
        try:
            async with asyncio.timeout(10):
                await task
        except TimeoutError:
            task.cancel()
        await _close_webrtc(app)


async def _close_webrtc(app: Any) -> None:
    """The server stopped: close the app's WebRTC peers too (they outlive HTTP)."""
    rtc = getattr(getattr(app, "state", None), "gemini_live_webrtc", None)
    if rtc is not None:
        await rtc.aclose()


def _drain_on_sigterm(
    server: Any, relay: Relay, within: float, loop: asyncio.AbstractEventLoop
) -> None:
    """Make uvicorn's first SIGTERM drain ``relay`` before the server stops."""
    stop = server.handle_exit
    tasks: set[asyncio.Task[None]] = set()

    async def drain_then_stop(sig: int) -> None:
        try:
            moved = await relay.drain(within)
            logging.getLogger("gemini_live.web").info("drained: %d conversations moved", moved)
        finally:
            stop(sig, None)

    def handle_exit(sig: int, frame: Any) -> None:
        if sig != signal.SIGTERM or relay.draining:
            stop(sig, frame)
            return
        relay.draining = True  # /readyz fails from this instant; drain() starts soon
        loop.call_soon_threadsafe(
            lambda: tasks.add(loop.create_task(drain_then_stop(sig), name="gemini-live-drain"))
        )

    server.handle_exit = handle_exit


async def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
    ready: Callable[[str], object] | None = None,
    limits: RelayLimits | None = None,
    drain_timeout: float = 25.0,
) -> None:
    """Serve an ASGI app with uvicorn until it is stopped (Ctrl-C / SIGTERM).

    ``ready(url)`` is called once the socket is listening. For an app made by
    :func:`create_app`, SIGTERM first drains the relay (:meth:`Relay.drain`, at most
    ``drain_timeout`` seconds: ``/readyz`` turns 503, each conversation is saved at its
    clean point and its browser told to reconnect elsewhere), then the server stops; a
    second SIGTERM, or Ctrl-C, stops at once. Ctrl-C ends it with
    ``KeyboardInterrupt`` once uvicorn has shut down, as it does outside an event loop.
    A port that cannot be listened on (in use, not allowed) raises one :class:`OSError`
    carrying the reason. The server is sized as :func:`running` says.
    """
    server = _uvicorn_server(app, host, port, log_level, limits)
    relay = _relay_of(app)
    if relay is not None:
        _drain_on_sigterm(server, relay, drain_timeout, asyncio.get_running_loop())
    task, errors = _start(server, host, port)
    url = await _started(server, task, errors)
    if ready is not None:
        ready(url)
    try:
        await task
    finally:
        await _close_webrtc(app)
    # uvicorn re-raises the signal it caught after its shutdown; should that not reach
    # us (a rare race seen once in CI: exit code 0 after Ctrl-C), end as Ctrl-C does.
    if signal.SIGINT in getattr(server, "_captured_signals", ()):
        raise KeyboardInterrupt
