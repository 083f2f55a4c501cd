"""Small pieces shared by the ASGI endpoints (web relay, phone bridges) and the test kit.

* The ASGI callable types, spelled as Starlette spells them, so an endpoint type-checks
  where Starlette or FastAPI expects one.
* :class:`Notifier`: wake every waiter on a state change (for ``wait_until`` helpers).
* :func:`respond_json`: one JSON HTTP response that no cache keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import msgspec

__all__ = ["Message", "Notifier", "Receive", "Scope", "Send", "respond_json"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Notifier:
    """Wake every waiter on any state change (``notify`` is synchronous, no lock needed)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> None:
        """Wait (bounded by ``within`` seconds) until ``predicate()`` holds; it is checked
        again after every :meth:`notify`."""
        async with asyncio.timeout(within):
            while not predicate():
                await self._event.wait()


async def respond_json(send: Send, status: int, body: Mapping[str, Any]) -> None:
    """Answer an HTTP request with ``body`` as JSON (``Cache-Control: no-store``: the
    endpoints that use it hand out tokens and session descriptions)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": msgspec.json.encode(body)})
