"""Size limits of the Live API wire, each written down once.

Imported by the transport, the session and the test kit; it imports nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_CLOSE_REASON_BYTES", "MAX_MESSAGE_SIZE", "truncate_reason"]

#: Largest WebSocket message accepted in either direction (16 MiB). Larger server messages
#: close the connection with 1009; the service closes with 1009 for larger client ones.
MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024

#: A close frame is a control frame: at most 125 payload bytes, 2 of them the code
#: (RFC 6455 §5.5), so the reason gets 123 bytes of UTF-8.
MAX_CLOSE_REASON_BYTES: Final = 123


def truncate_reason(reason: str, limit: int = MAX_CLOSE_REASON_BYTES) -> str:
    """``reason`` cut to at most ``limit`` UTF-8 bytes, never in the middle of a character."""
    raw = reason.encode()
    if len(raw) <= limit:
        return reason
    return raw[:limit].decode("utf-8", "ignore")
