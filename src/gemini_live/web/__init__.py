"""Put a voice agent in a browser: a WebSocket relay, a ready web page, ephemeral tokens.

Two patterns:

* **Relay** (recommended): the browser talks to *your* server; the API key stays there and
  each browser connection is one :class:`~gemini_live.Session` with its reconnects::

      from gemini_live.web import Relay
      relay = Relay(lambda conn: gl.build_config(api_key=KEY), authorize=check_user)
      app.router.routes.append(WebSocketRoute("/live", relay))  # Starlette or FastAPI

* **Direct**: :class:`TokenEndpoint` mints one ephemeral token per browser session and the
  browser connects to the Live API itself.

:func:`create_app` bundles the page, the relay and (optionally) the token endpoint;
``gemini-live web --fake`` serves it against the built-in fake server. The browser <->
relay protocol is documented in ``docs/web-relay.md``. Needs the ``web`` extra
(``pip install 'gemini-live[web]'``) for :func:`create_app` and :func:`running`; the
:class:`Relay` and :class:`TokenEndpoint` themselves are plain ASGI apps.
"""

from gemini_live.config import with_client_activity
from gemini_live.web._app import (
    LOOPBACK_HOSTS,
    AccessToken,
    TokenEndpoint,
    TokenRequest,
    create_app,
    page_html,
    running,
    serve,
    static_file,
)
from gemini_live.web._relay import (
    ALLOW_ANYONE,
    CLOSE_MOVED,
    PROTOCOL_VERSION,
    ConnectionInfo,
    PlaybackReport,
    Relay,
    RelayLimits,
    RelayRejected,
    RelayStats,
    TurnDetection,
)

__all__ = [
    "ALLOW_ANYONE",
    "CLOSE_MOVED",
    "LOOPBACK_HOSTS",
    "PROTOCOL_VERSION",
    "AccessToken",
    "ConnectionInfo",
    "PlaybackReport",
    "Relay",
    "RelayLimits",
    "RelayRejected",
    "RelayStats",
    "TokenEndpoint",
    "TokenRequest",
    "TurnDetection",
    "create_app",
    "page_html",
    "running",
    "serve",
    "static_file",
    "with_client_activity",
]
