"""The signalling endpoint: one HTTP offer in, one answer out, a relay connection behind."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec
from aiortc import RTCIceServer

from gemini_live._asgi import Receive, Scope, Send, respond_json
from gemini_live.errors import ConfigError
from gemini_live.web._relay import Relay

__all__ = ["OFFER_PATH", "IceServer", "WebRTCRelay", "WebRTCStats"]

logger = logging.getLogger("gemini_live.webrtc")

#: Where :func:`gemini_live.web.create_app` mounts the endpoint, under the relay's path.
OFFER_PATH: Final = "/webrtc/offer"

#: An ICE server: an ``RTCIceServer``, a URL (``"stun:stun.example:3478"``) or a mapping
#: ``{"urls": ..., "username": ..., "credential": ...}`` (TURN).
IceServer = RTCIceServer | str | Mapping[str, Any]

# Close codes of the relay -> HTTP status of a refused offer.
_HTTP_STATUS: Final = {
    1003: 400,
    1008: 400,
    1009: 413,
    1011: 500,
    1013: 503,
    4012: 503,
    4401: 401,
    4403: 403,
    4429: 429,
    4502: 502,
}
_MEDIA_LINE: Final = re.compile(r"^m=(\w+) ", re.MULTILINE)


class _Offer(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["offer"]
    sdp: str


_decode_offer: Final = msgspec.json.Decoder(_Offer)


@dataclass
class WebRTCStats:
    """Counters of a :class:`WebRTCRelay`."""

    #: Offers received (every POST).
    offers: int = 0
    #: Offers answered (a peer connection was made for each).
    answered: int = 0
    #: Offers refused with an HTTP error (nothing was left open for them).
    refused: int = 0
    #: Peer connections open now.
    active: int = 0
    #: Microphone RTP packets that came after their frame's play-out deadline (dropped).
    audio_late_packets: int = 0
    #: Missing microphone frames given up at their deadline and filled with silence.
    audio_gaps_filled: int = 0
    #: Microphone RTP packets that arrived out of order and were put back in order.
    audio_reordered_packets: int = 0
    #: Packets held ahead of a gap, dropped when a jump of more than 0.5 s started over.
    audio_discarded_packets: int = 0
    #: Microphone packets the decoder refused (their 20 ms filled with silence).
    audio_undecodable_packets: int = 0


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _ice_server(value: IceServer) -> RTCIceServer:
    if isinstance(value, RTCIceServer):
        return value
    if isinstance(value, str):
        return RTCIceServer(urls=value)
    if isinstance(value, Mapping):
        unknown = set(value) - {"urls", "username", "credential"}
        if unknown or "urls" not in value:
            raise ConfigError(
                "an ICE server mapping has 'urls' and optionally 'username', 'credential'"
            )
        return RTCIceServer(
            urls=value["urls"], username=value.get("username"), credential=value.get("credential")
        )
    raise ConfigError(f"not an ICE server: {type(value).__name__}")


class WebRTCRelay:
    """The WebRTC end of a :class:`~gemini_live.web.Relay`: an ASGI HTTP app answering
    ``POST`` offers; each answered offer is one relay connection.

    Args:
        relay: The relay whose hooks, limits, store and counters the peers share.
        ice_servers: STUN/TURN servers for the server's side of ICE (default: none, host
            candidates only, which is enough when the server has an address the browsers
            reach). Behind NAT, give a TURN server (``{"urls": "turn:turn.example:3478",
            "username": ..., "credential": ...}``).
        max_offer_bytes: Largest offer body; bigger ones are refused 413.
        connect_timeout: Seconds from the answer until ICE, DTLS and the data channel
            are up; later, the peer is closed (default: the relay's
            ``limits.connect_timeout``).
        outbound_buffer_seconds: Model audio queued for the outbound track at most; the
            relay waits (back-pressure) beyond it. Barge-in empties it.
        jitter_ms: The microphone's reordering tolerance: packets next in sequence go to
            the relay as they arrive; a missing one is waited for at most this long after
            it was due, then its 20 ms are filled with silence and the packets after it
            go on (a packet later than that is dropped and counted in
            :class:`WebRTCStats`). 0 to 500; default 40 (two packets).
    """

    def __init__(
        self,
        relay: Relay,
        *,
        ice_servers: Sequence[IceServer] | None = None,
        max_offer_bytes: int = 32 * 1024,
        connect_timeout: float | None = None,
        outbound_buffer_seconds: float = 60.0,
        jitter_ms: float = 40.0,
    ) -> None:
        if not isinstance(relay, Relay):
            raise ConfigError("WebRTCRelay needs a gemini_live.web.Relay")
        if isinstance(ice_servers, (str, Mapping)):
            raise ConfigError("ice_servers must be a list")
        if not max_offer_bytes > 0:
            raise ConfigError("max_offer_bytes must be > 0")
        if connect_timeout is not None and not connect_timeout > 0:
            raise ConfigError("connect_timeout must be > 0")
        if not outbound_buffer_seconds > 0:
            raise ConfigError("outbound_buffer_seconds must be > 0")
        if (
            isinstance(jitter_ms, bool)
            or not isinstance(jitter_ms, (int, float))
            or not 0 <= jitter_ms <= 500
        ):
            raise ConfigError("jitter_ms must be a number of milliseconds from 0 to 500")
        self.relay = relay
        # Private: TURN credentials stay out of reprs.
        self._ice: tuple[RTCIceServer, ...] = tuple(_ice_server(s) for s in ice_servers or ())
        self.max_offer_bytes = max_offer_bytes
        self.connect_timeout = (
            connect_timeout if connect_timeout is not None else relay.limits.connect_timeout
        )
        self.outbound_buffer_seconds = outbound_buffer_seconds
        self.jitter_ms = float(jitter_ms)
        self.stats = WebRTCStats()
        #: The peers open now (their links), by the relay's connection id.
        self.peers: set[Any] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<WebRTCRelay ice_servers={len(self._ice)} active={self.stats.active}>"

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.stats.offers += 1
        try:
            answer = await self._handle(scope, receive)
        except _Refused as exc:
            self.stats.refused += 1
            body: dict[str, Any] = {"error": exc.message}
            if exc.code is not None:
                body["code"] = exc.code
            await respond_json(send, exc.status, body)
            return
        self.stats.answered += 1
        await respond_json(send, 200, {"type": "answer", "sdp": answer})

    async def _handle(self, scope: Scope, receive: Receive) -> str:
        if scope.get("method") != "POST":
            raise _Refused(405, "POST an offer here")
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _Refused(415, "the offer must be JSON (content-type: application/json)")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_offer_bytes:
            raise _Refused(413, f"offer too big (at most {self.max_offer_bytes} bytes)")
        body = await self._body(receive)
        try:
            offer = _decode_offer.decode(body)
        except msgspec.ValidationError as exc:
            raise _Refused(400, f"bad offer: {exc}") from None
        except msgspec.DecodeError:
            raise _Refused(400, "bad offer: not JSON") from None
        sdp = offer.sdp
        if not sdp.startswith("v=0"):
            raise _Refused(400, "bad offer: not an SDP session description")
        media = _MEDIA_LINE.findall(sdp)
        if "audio" not in media:
            raise _Refused(400, "bad offer: no audio m-line")
        if "application" not in media:
            raise _Refused(400, "bad offer: no data channel")
        return await self._connect(scope, sdp)

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise _Refused(400, "the request ended early")
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_offer_bytes:
                raise _Refused(413, f"offer too big (at most {self.max_offer_bytes} bytes)")
            chunks.append(chunk)
            if not msg.get("more_body"):
                return b"".join(chunks)

    async def _connect(self, scope: Scope, sdp: str) -> str:
        from gemini_live.webrtc._peer import _RtcConnection, _RtcLink

        link = _RtcLink(self, sdp)
        ws_scope = dict(scope)
        ws_scope["type"] = "websocket"
        ws_scope["scheme"] = "wss" if scope.get("scheme") == "https" else "ws"
        ws_scope.pop("method", None)
        conn = _RtcConnection(self.relay, ws_scope, link)
        self.peers.add(link)
        self.stats.active += 1
        task = asyncio.get_running_loop().create_task(conn.run(), name="webrtc-peer")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        # The connection's own timeouts bound this (authorize + the answer); the margin
        # only guards against a bug.
        within = 2 * self.relay.limits.connect_timeout + 5.0
        try:
            async with asyncio.timeout(within):
                outcome = await asyncio.shield(link.outcome)
        except TimeoutError:
            task.cancel()
            raise _Refused(504, "the answer took too long") from None
        if outcome[0] == "answer":
            return str(outcome[1])
        code, reason = int(outcome[1]), str(outcome[2])
        # Nothing stays open for a refused offer: wait (bounded) for the peer to finish.
        try:
            async with asyncio.timeout(10.0):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
        raise _Refused(_HTTP_STATUS.get(code, 400), reason, code)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.relay._notify()

    @property
    def running(self) -> int:
        """Peer tasks still running (a finished peer's task is gone from here)."""
        return len(self._tasks)

    def _link_closed(self, link: Any) -> None:
        if link in self.peers:
            self.peers.discard(link)
            self.stats.active -= 1

    async def aclose(self, within: float = 10.0) -> None:
        """Close every peer connection (a server shutting down): each page is told 1012
        (it reconnects, like after a WebSocket relay's restart) and its peer connection
        closed; after ``within`` seconds what is left is cancelled."""
        for link in list(self.peers):
            link.shutdown()
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=within)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=within)
