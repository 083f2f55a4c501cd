"""Helpers shared by the transport backends (private: backends and the test kit use them).

* the write-buffer and close-handshake defaults;
* what an HTTP header may contain, checked once when :class:`ConnectOptions` is built;
* :func:`map_connect_errors`, the one place that turns a WebSocket library's connect
  failures into :class:`~gemini_live.errors.ConnectError`;
* scrubbing of credentials from error texts, and a logger that never sees DEBUG lines.
"""

from __future__ import annotations

import contextlib
import logging
import re
import struct
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

from gemini_live._checks import positive
from gemini_live._limits import truncate_reason
from gemini_live.errors import ConfigError, ConnectError, excerpt, redact

if TYPE_CHECKING:
    from gemini_live.transport.base import ConnectOptions

__all__ = [
    "CLOSE_TIMEOUT",
    "WRITE_HIGH_WATER",
    "WRITE_LOW_WATER",
    "Refusal",
    "check_header",
    "check_headers",
    "check_positive",
    "close_args",
    "has_header",
    "kernel_unsent",
    "library_logger",
    "map_connect_errors",
    "mask_headers",
    "scrub",
    "sendable",
    "ssl_raw_buffer",
    "where",
]

#: ``send`` waits once more than this many bytes are queued for the socket ...
WRITE_HIGH_WATER: Final = 1024 * 1024
#: ... until the queue has drained below this.
WRITE_LOW_WATER: Final = WRITE_HIGH_WATER // 4
#: Default bound on the closing handshake, in seconds (``ConnectOptions.close_timeout``).
CLOSE_TIMEOUT: Final = 5.0

# --- what has not left this host --------------------------------------------------------

#: Linux ``SIOCOUTQ`` (equal to ``TIOCOUTQ``): bytes in a TCP socket's send queue that the
#: peer has not acknowledged yet (unsent ones included). Other systems: None (not asked).
if sys.platform.startswith("linux"):  # pragma: no branch - CI runs on Linux
    import fcntl
    import termios

    _SIOCOUTQ: int | None = termios.TIOCOUTQ
else:  # pragma: no cover
    _SIOCOUTQ = None


def kernel_unsent(sock: object) -> int | None:
    """Bytes in ``sock``'s kernel send queue not yet acknowledged by the peer, or None
    when the system does not tell (not Linux, not a socket, a closed socket).

    One ``ioctl`` system call: callers ask when a resumption handle arrives, never per
    frame.
    """
    if _SIOCOUTQ is None or sock is None:
        return None
    fileno = getattr(sock, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = fileno()
        if not isinstance(fd, int) or fd < 0:
            return None
        raw = fcntl.ioctl(fd, _SIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return None
    value: int = struct.unpack("i", raw)[0]
    return value if value >= 0 else None


def ssl_raw_buffer(transport: object) -> int:
    """Bytes the raw socket transport under asyncio's TLS transport still holds (0 when
    ``transport`` is not a TLS transport or its layout is not the one known here)."""
    proto = getattr(transport, "_ssl_protocol", None)
    raw = getattr(proto, "_transport", None)
    size = getattr(raw, "get_write_buffer_size", None)
    if size is None:
        return 0
    try:
        n = size()
    except Exception:
        return 0
    return n if isinstance(n, int) and n > 0 else 0


# --- headers ----------------------------------------------------------------------------

#: An HTTP field name is a ``token`` (RFC 9110 §5.1, §5.6.2).
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: C0 controls and DEL. CR/LF would end the header line and start another one (header
#: injection); the others are refused by servers or silently mangled by proxies.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def check_header(name: object, value: object) -> tuple[str, str]:
    """Check one header; return it as ``(name, value)``.

    Raises:
        ConfigError: the name is not an HTTP token, or the value is not a string or holds
            a control character (CR, LF, NUL, TAB, ...). The value is never shown: it may
            be a credential.
    """
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ConfigError(f"invalid HTTP header name {excerpt(name, 60)}")
    if not isinstance(value, str):
        raise ConfigError(f"header {name!r}: the value must be a str, got {type(value).__name__}")
    bad = _CONTROL.search(value)
    if bad is not None:
        raise ConfigError(
            f"header {name!r}: the value contains a control character "
            f"(U+{ord(bad.group()):04X} at position {bad.start()})"
        )
    return name, value


def check_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Check every ``(name, value)`` pair with :func:`check_header`; return them as a tuple."""
    items: object = headers
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise ConfigError("headers must be a sequence of (name, value) pairs")
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ConfigError("headers must be a sequence of (name, value) pairs")
        out.append(check_header(item[0], item[1]))
    return tuple(out)


def mask_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The headers with every value replaced by ``***`` (for reprs and logs)."""
    return tuple((name, "***") for name, _ in headers)


def has_header(options: ConnectOptions, name: str) -> bool:
    low = name.lower()
    return any(key.lower() == low for key, _ in options.headers)


# --- numbers ----------------------------------------------------------------------------


#: Finite number > 0 (or None when ``optional``): one wording for every config object.
check_positive = positive


# --- closing ----------------------------------------------------------------------------


def sendable(code: int) -> bool:
    """True for a close code that may be sent in a CLOSE frame (RFC 6455 §7.4)."""
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def close_args(code: int, reason: str) -> str:
    """Check a close code for ``Transport.close``; return ``reason`` cut to fit the frame."""
    if not sendable(code):
        raise ConfigError(f"close code {code} cannot be sent in a close frame")
    return truncate_reason(reason)


# --- connect errors and secrets ---------------------------------------------------------


class _NoDebugLogger(logging.LoggerAdapter[logging.Logger]):
    """Passes INFO and above to ``logger``; drops DEBUG and lower.

    WebSocket libraries trace the upgrade request (headers included, so credentials) at
    debug level; handing them this adapter keeps those lines out of any log.
    """

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.INFO and self.logger.isEnabledFor(level)


def library_logger(name: str) -> logging.LoggerAdapter[logging.Logger]:
    """The logger to hand a WebSocket library: INFO and above only (see above)."""
    return _NoDebugLogger(logging.getLogger(name), {})


def scrub(text: str, options: ConnectOptions) -> str:
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


def where(url: str) -> str:
    """``host:port`` of ``url`` for error messages (never the userinfo, path or query)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "?"
    if port is None:
        port = 443 if parts.scheme.lower() == "wss" else 80
    return f"{host}:{port}"


#: A refused upgrade as a backend reports it: HTTP status, reason phrase, response body.
Refusal = tuple[int, str, bytes]


@contextlib.contextmanager
def map_connect_errors(
    url: str,
    options: ConnectOptions,
    *,
    refusal: Callable[[Exception], Refusal | None],
    handshake_errors: tuple[type[Exception], ...] = (),
) -> Iterator[None]:
    """Turn anything raised while opening a WebSocket into :class:`ConnectError`.

    Wrap the whole opening (the library's connect call *and* the open timeout around it).
    ``refusal(exc)`` returns the status, phrase and body when ``exc`` is the library's
    "upgrade refused" error; ``handshake_errors`` are its other handshake failures.

    The original exception is dropped (``from None``) on purpose: WebSocket libraries put
    the request, headers included, into their exception texts, so a chained traceback
    could print a credential. The message built here is scrubbed of every header value.
    """
    try:
        yield
    except ConnectError:
        raise
    except TimeoutError:
        raise ConnectError(
            f"timed out opening the WebSocket after {options.open_timeout:g} s"
        ) from None
    except Exception as exc:
        refused = refusal(exc)
        if refused is not None:
            status, phrase, body = refused
            text = f"WebSocket upgrade refused: HTTP {status} {phrase}"
            detail = body[:300].decode("utf-8", "replace").strip()
            if detail:
                text += f": {detail}"
            raise ConnectError(scrub(text, options), status=status) from None
        if isinstance(exc, handshake_errors):
            raise ConnectError(scrub(f"WebSocket handshake failed: {exc}", options)) from None
        if isinstance(exc, OSError):
            raise ConnectError(scrub(f"cannot connect to {where(url)}: {exc}", options)) from None
        raise ConnectError(
            scrub(f"cannot connect to {where(url)}: {type(exc).__name__}: {exc}", options)
        ) from None


#: Bytes a connection reads at once on asyncio's own event loop (served connections of
#: :mod:`gemini_live.web`, the ``websockets`` backend). asyncio's socket transport reads
#: with ``recv(256 KiB)``, for which CPython allocates the full size before shrinking it
#: to what arrived: above glibc's mmap threshold (128 KiB) that is an mmap, a page fault
#: and an munmap per read, ~13 µs of kernel time against ~1 µs below it (measured on this
#: project's machines). Live API frames and the voice edge's messages are a few KiB; a
#: larger burst takes more reads. uvloop and picows read into their own buffers.
READ_BYTES: Final = 64 * 1024


def small_reads(transport: object) -> None:
    """Caps ``transport``'s read size at :data:`READ_BYTES` where it has asyncio's
    ``max_size`` (selector socket transports); other transports are left alone."""
    size = getattr(transport, "max_size", None)
    if isinstance(size, int) and size > READ_BYTES:
        transport.max_size = READ_BYTES  # type: ignore[attr-defined]
