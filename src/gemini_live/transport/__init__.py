"""WebSocket transports behind one small seam (see :mod:`gemini_live.transport.base`).

``get_backend("picows")`` (the default, fastest) or ``get_backend("websockets")`` (the
reference implementation) returns a :class:`Backend`. The library-specific modules are
imported only when a backend is asked for, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib.util
from typing import Final

from gemini_live.errors import ConfigError, TransportClosed
from gemini_live.transport._common import (
    CLOSE_TIMEOUT as CLOSE_TIMEOUT,
)
from gemini_live.transport._common import (
    WRITE_HIGH_WATER as WRITE_HIGH_WATER,
)
from gemini_live.transport._common import (
    WRITE_LOW_WATER as WRITE_LOW_WATER,
)
from gemini_live.transport._common import (
    check_headers,
    library_logger,
    mask_headers,
)
from gemini_live.transport.base import (
    Backend,
    CloseInfo,
    ConnectOptions,
    DirectWriter,
    FrameHandler,
    SyncSender,
    Transport,
    UnsentBytes,
)

__all__ = [
    "DEFAULT_BACKEND",
    "Backend",
    "CloseInfo",
    "ConnectOptions",
    "DirectWriter",
    "FrameHandler",
    "SyncSender",
    "Transport",
    "TransportClosed",
    "UnsentBytes",
    "available_backends",
    "check_headers",
    "get_backend",
    "mask_headers",
]

#: The backend used when none is named.
DEFAULT_BACKEND: Final = "picows"

#: Backend name -> the package it needs.
_BACKENDS: Final = {"picows": "picows", "websockets": "websockets"}


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


# Kept for the test kit, which imported it from here (use _common.library_logger).
_library_logger = library_logger
