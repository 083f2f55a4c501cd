"""WebSocket transports behind one small seam (see :mod:`gemini_live.transport.base`).

``get_backend("picows")`` (the default, fastest) or ``get_backend("websockets")`` (the
reference implementation) returns a :class:`Backend`. The library-specific modules are
imported only when a backend is asked for, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib.util
import logging
import urllib.parse
from typing import Final

from gemini_live.errors import ConfigError, redact
from gemini_live.transport.base import (
    Backend,
    CloseInfo,
    ConnectOptions,
    FrameHandler,
    Transport,
    TransportClosed,
)

__all__ = [
    "DEFAULT_BACKEND",
    "Backend",
    "CloseInfo",
    "ConnectOptions",
    "FrameHandler",
    "Transport",
    "TransportClosed",
    "available_backends",
    "get_backend",
]

#: The backend used when none is named.
DEFAULT_BACKEND: Final = "picows"

#: Backend name -> the package it needs.
_BACKENDS: Final = {"picows": "picows", "websockets": "websockets"}

#: ``send`` waits once more than this many bytes are queued for the socket ...
WRITE_HIGH_WATER: Final = 1024 * 1024
#: ... until the queue has drained below this.
WRITE_LOW_WATER: Final = WRITE_HIGH_WATER // 4
#: Default bound on the closing handshake (``options.extra["close_timeout"]`` overrides).
CLOSE_TIMEOUT: Final = 5.0


def available_backends() -> tuple[str, ...]:
    """Names accepted by :func:`get_backend` whose library is installed."""
    return tuple(
        name for name, module in _BACKENDS.items() if importlib.util.find_spec(module) is not None
    )


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` ("picows" or "websockets").

    Raises :class:`~gemini_live.errors.ConfigError` for an unknown name or when the
    backend's library is not installed.
    """
    if name not in _BACKENDS:
        known = ", ".join(repr(n) for n in _BACKENDS)
        raise ConfigError(f"unknown transport backend {name!r} (known: {known})")
    try:
        if name == "picows":
            from gemini_live.transport._picows import PicowsBackend

            return PicowsBackend()
        from gemini_live.transport._websockets import WebsocketsBackend

        return WebsocketsBackend()
    except ImportError as exc:
        raise ConfigError(
            f"transport backend {name!r} needs the {_BACKENDS[name]!r} package ({exc.msg})"
        ) from None


# --- helpers shared by the backends (private) -------------------------------------------


class _NoDebugLogger(logging.LoggerAdapter[logging.Logger]):
    """Passes INFO and above to ``logger``; drops DEBUG and lower.

    WebSocket libraries trace the upgrade request (headers included, so credentials) at
    debug level; handing them this adapter keeps those lines out of any log.
    """

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.INFO and self.logger.isEnabledFor(level)


def _library_logger(name: str) -> _NoDebugLogger:
    return _NoDebugLogger(logging.getLogger(name), {})


def _scrub(text: str, options: ConnectOptions) -> str:
    """Remove every header value (and any proxy URL) of ``options`` from ``text``, then redact."""
    secrets: list[str] = []
    for _, value in options.headers:
        secrets.append(value)
        secrets.extend(value.split())
    if options.proxy:
        secrets.append(options.proxy)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return redact(text)


def _close_timeout(options: ConnectOptions) -> float:
    value = options.extra.get("close_timeout", CLOSE_TIMEOUT)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError("options.extra['close_timeout'] must be a positive number")
    return float(value)


def _has_header(options: ConnectOptions, name: str) -> bool:
    low = name.lower()
    return any(key.lower() == low for key, _ in options.headers)


def _where(url: str) -> str:
    """``host:port`` of ``url`` for error messages (never the userinfo, path or query)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "?"
    if port is None:
        port = 443 if parts.scheme.lower() == "wss" else 80
    return f"{host}:{port}"


def _sendable(code: int) -> bool:
    """True for a close code that may be sent in a CLOSE frame (RFC 6455 §7.4)."""
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def _close_args(code: int, reason: str) -> str:
    """Check a close code for :meth:`Transport.close`; return ``reason`` cut to fit the frame."""
    if not _sendable(code):
        raise ConfigError(f"close code {code} cannot be sent in a close frame")
    raw = reason.encode()
    if len(raw) > 123:  # a control frame carries at most 125 bytes, 2 of them the code
        reason = raw[:123].decode("utf-8", "ignore")
    return reason
