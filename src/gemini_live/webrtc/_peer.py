"""One browser peer connection, seen by the relay as one more page connection.

:class:`_RtcLink` owns the ``RTCPeerConnection``, its data channel and its two audio
tracks, and offers the relay's connection the two ASGI callables a WebSocket would:
``receive`` yields the page's data-channel messages as text frames and the microphone
(decoded, resampled once to 16 kHz) as binary frames; ``send`` puts text frames on the
data channel and binary frames (model audio) on the outbound track. So the whole
lifecycle of :class:`gemini_live.web._relay._Connection` (admission, limits, timers,
turn detection, store, close and cleanup on every path) serves WebRTC unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError

from gemini_live._asgi import Message, Scope
from gemini_live._bridge import PeerClose
from gemini_live.audio import INPUT_RATE, OUTPUT_RATE
from gemini_live.web._relay import (
    CLOSE_POLICY,
    CLOSE_RATE_LIMITED,
    CLOSE_UNSUPPORTED,
    PlaybackReport,
    Relay,
    _Connection,
    _encode,
)
from gemini_live.webrtc._playout import MAX_FILL, PlayoutBuffer, Slot

if TYPE_CHECKING:
    from gemini_live.webrtc._endpoint import WebRTCRelay

logger = logging.getLogger("gemini_live.webrtc")

#: Outbound audio frames: 20 ms.
_PTIME: Final = 0.020
_OUT_SAMPLES: Final = int(OUTPUT_RATE * _PTIME)
_OUT_FRAME_BYTES: Final = _OUT_SAMPLES * 2
#: Messages (data-channel texts and microphone chunks) waiting for the relay to take them.
_INBOX_MAX: Final = 256
#: Messages for the page queued before its data channel opened (the ``ready`` one).
_PENDING_MAX: Final = 64
#: Data-channel bytes not yet handed to the network beyond which the page counts as gone.
_CHANNEL_BUFFER_MAX: Final = 1024 * 1024
#: Close code recorded when the peer connection failed or the page closed it.
_CLOSE_GONE: Final = 1001

#: aiortc 1.16's ``RTCRtpReceiver`` keeps its jitter buffer in this (name-mangled) attribute.
_JITTER_ATTR: Final = "_RTCRtpReceiver__jitter_buffer"

PlaybackState = Literal["playing", "stopped", "drained"]


class ModelAudioTrack(MediaStreamTrack):
    """The model's voice as an outbound audio track: 24 kHz PCM16 in 20 ms frames, paced
    in real time from a bounded queue (silence when it is empty); aiortc encodes Opus.

    :meth:`put` waits while the queue is full (``max_seconds`` of audio);
    :meth:`clear` (barge-in) drops everything queued at once.
    """

    kind = "audio"

    def __init__(
        self,
        max_seconds: float,
        on_playback: Callable[[PlaybackState, float], None] | None = None,
    ) -> None:
        super().__init__()
        self._buf = bytearray()
        self._cap = max(_OUT_FRAME_BYTES, int(OUTPUT_RATE * 2 * max_seconds))
        self._room = asyncio.Event()
        self._room.set()
        self._on_playback = on_playback
        self._start: float | None = None
        self._pts = 0
        #: Milliseconds of the current reply sent so far (None: quiet).
        self._reply_ms: float | None = None
        #: Model audio bytes put on the track / dropped by :meth:`clear`.
        self.sent_bytes = 0
        self.cleared_bytes = 0

    @property
    def queued_bytes(self) -> int:
        return len(self._buf)

    async def put(self, pcm: bytes) -> None:
        while self._buf and len(self._buf) + len(pcm) > self._cap:
            if self.readyState != "live":
                return
            self._room.clear()
            await self._room.wait()
        self._buf += pcm

    def clear(self) -> int:
        n = len(self._buf)
        self._buf.clear()
        self.cleared_bytes += n
        self._room.set()
        if self._reply_ms is not None:
            ms, self._reply_ms = self._reply_ms, None
            self._report("stopped", ms)
        return n

    def stop(self) -> None:
        super().stop()
        self._buf.clear()
        self._room.set()

    def _report(self, state: PlaybackState, ms: float) -> None:
        if self._on_playback is not None:
            self._on_playback(state, ms)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += _OUT_SAMPLES
            wait = self._start + self._pts / OUTPUT_RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # real-time pacing (a clock, not a synchronization)
        if self._buf:
            chunk = bytes(self._buf[:_OUT_FRAME_BYTES])
            del self._buf[:_OUT_FRAME_BYTES]
            self._room.set()
            self.sent_bytes += len(chunk)
            if self._reply_ms is None:
                self._reply_ms = 0.0
                self._report("playing", 0.0)
            self._reply_ms += len(chunk) / (OUTPUT_RATE * 2) * 1000
            if len(chunk) < _OUT_FRAME_BYTES:
                chunk += bytes(_OUT_FRAME_BYTES - len(chunk))
        else:
            chunk = bytes(_OUT_FRAME_BYTES)
            if self._reply_ms is not None:
                ms, self._reply_ms = self._reply_ms, None
                self._report("drained", ms)
        frame = av.AudioFrame(format="s16", layout="mono", samples=_OUT_SAMPLES)
        frame.planes[0].update(chunk + bytes(frame.planes[0].buffer_size - len(chunk)))
        frame.pts = self._pts
        frame.sample_rate = OUTPUT_RATE
        frame.time_base = fractions.Fraction(1, OUTPUT_RATE)
        return frame


class _ReceiverFeed:
    """Takes the place of aiortc's jitter buffer on one audio receiver (a per-receiver
    attribute, nothing global): every RTP packet goes to a :class:`PlayoutBuffer` as it
    arrives and nothing to aiortc's decoder thread; :class:`_RtcLink` decodes what the
    buffer releases."""

    capacity = MAX_FILL

    def __init__(self, transceiver: Any, delay: float, wake: Callable[[], None]) -> None:
        self._transceiver = transceiver
        self._delay = delay
        self._wake = wake
        self._loop = asyncio.get_running_loop()
        #: Created at the first packet, at its codec's clock rate.
        self.playout: PlayoutBuffer | None = None
        self.codec: Any = None
        #: Packets of another payload type than the first one's (not played).
        self.foreign = 0

    def add(self, packet: Any) -> tuple[bool, None]:
        if self.codec is None:
            codecs = [c for c in self._transceiver._codecs if c.payloadType == packet.payload_type]
            if not codecs:
                self.foreign += 1
                return False, None
            self.codec = codecs[0]
            rate = int(self.codec.clockRate)
            self.playout = PlayoutBuffer(self._delay, rate, int(rate * _PTIME))
        elif packet.payload_type != self.codec.payloadType:
            self.foreign += 1
            return False, None
        assert self.playout is not None
        data = getattr(packet, "_data", packet.payload)
        self.playout.push(packet.sequence_number, packet.timestamp, bytes(data), self._loop.time())
        self._wake()
        return False, None


def ice_configuration(servers: Sequence[RTCIceServer]) -> RTCConfiguration:
    return RTCConfiguration(iceServers=list(servers))


class _RtcLink:
    """The transport under one relay connection: a peer connection posing as a socket."""

    def __init__(self, endpoint: WebRTCRelay, offer_sdp: str) -> None:
        self.endpoint = endpoint
        self.offer_sdp = offer_sdp
        self.pc: RTCPeerConnection | None = None
        self.channel: RTCDataChannel | None = None
        self.track = ModelAudioTrack(endpoint.outbound_buffer_seconds, self._on_playback)
        self.conn: _RtcConnection | None = None
        #: The HTTP handler's answer: ("answer", sdp) or ("refused", code, reason).
        self.outcome: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self._connect_sent = False
        self._inbox: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._gone: int | None = None
        #: A refusal the relay's connection raises at its next receive.
        self._fail: PeerClose | None = None
        self._pending: list[str] = []
        self._open = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._resampler: av.AudioResampler | None = None
        #: The play-out of the microphone track (None until the track came, or on an
        #: aiortc without the per-receiver seam, where its own jitter buffer plays out).
        self.feed: _ReceiverFeed | None = None
        self._arrived = asyncio.Event()
        self._decoder: Any = None
        self._last_frame: av.AudioFrame | None = None
        self._counted: dict[str, int] = {}
        #: True while :meth:`_on_inbound_audio` gets a filled gap (silence), not sound.
        self.inbound_filled = False
        #: Microphone audio (16 kHz PCM16 bytes) decoded and handed to the relay.
        self.audio_in_bytes = 0

    # -- what the relay's connection calls (ASGI receive/send) ---------------------------

    async def receive(self) -> Message:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        while True:
            if self._fail is not None:
                raise self._fail
            if self._inbox:
                return self._inbox.popleft()
            if self._gone is not None:
                return {"type": "websocket.disconnect", "code": self._gone}
            self._wake.clear()
            await self._wake.wait()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            data = message.get("bytes")
            if data is not None:
                await self.track.put(data)
                return
            self._send_text(str(message.get("text", "")))
        elif kind == "websocket.close":
            code = int(message.get("code", 1000))
            reason = str(message.get("reason", ""))
            self._refuse(code, reason)
            channel = self.channel
            if channel is not None and channel.readyState == "open":
                channel.send(self._close_text(code, reason))
                await self._flushed(channel)
            await self.aclose()

    @staticmethod
    def _close_text(code: int, reason: str) -> str:
        return _encode({"type": "close", "code": code, "reason": reason}).decode()

    def _send_text(self, text: str) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            if channel is not None and channel.readyState in ("closing", "closed"):
                raise ConnectionError("the data channel is closed")
            if len(self._pending) >= _PENDING_MAX:
                raise ConnectionError("the data channel did not open")
            self._pending.append(text)
            return
        if channel.bufferedAmount > _CHANNEL_BUFFER_MAX:
            raise ConnectionError("the page stopped reading its data channel")
        channel.send(text)

    @staticmethod
    async def _flushed(channel: RTCDataChannel) -> None:
        if channel.bufferedAmount == 0:
            return
        done = asyncio.Event()
        channel.bufferedAmountLowThreshold = 0
        channel.on("bufferedamountlow", done.set)
        await done.wait()  # bounded by the caller's close timeout

    # -- inbound -------------------------------------------------------------------------

    def _push(self, message: Message) -> None:
        self._inbox.append(message)
        self._wake.set()

    def _on_text(self, text: str | bytes) -> None:
        if isinstance(text, bytes):
            self._fail = PeerClose(
                CLOSE_UNSUPPORTED, "bad message: binary on the data channel (audio is a track)"
            )
            self._wake.set()
            return
        if len(self._inbox) >= _INBOX_MAX:
            self._fail = PeerClose(CLOSE_RATE_LIMITED, "rate limit: too many messages")
            self._wake.set()
            return
        self._push({"type": "websocket.receive", "text": text})

    def _on_inbound_audio(self, pcm16k: bytes, capture_pts: float) -> None:
        """One decoded microphone chunk (16 kHz PCM16) for the relay; ``capture_pts`` is
        its media time in seconds (the RTP clock of the browser's track: its origin is
        arbitrary, its steps are the capture's). Measurements wrap this."""
        self.audio_in_bytes += len(pcm16k)
        if len(self._inbox) >= _INBOX_MAX:
            # The relay is behind by seconds: the oldest audio goes, counted as dropped.
            for i, queued in enumerate(self._inbox):
                old = queued.get("bytes")
                if old is not None:
                    del self._inbox[i]
                    self._count_dropped(len(old))
                    break
            else:
                self._count_dropped(len(pcm16k))
                return
        self._push({"type": "websocket.receive", "bytes": pcm16k})

    def _count_dropped(self, n: int) -> None:
        conn = self.conn
        if conn is not None:
            conn.info.audio_dropped_bytes += n
            conn.relay.stats.audio_dropped_bytes += n

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        """aiortc's own path (its jitter buffer, decoder thread and track): the fallback."""
        resampler = self._resampler = av.AudioResampler(
            format="s16", layout="mono", rate=INPUT_RATE
        )
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                pts = float(frame.time) if frame.time is not None else time.monotonic()
                for out in resampler.resample(frame):
                    pcm = bytes(out.planes[0])[: out.samples * 2]
                    if pcm:
                        self._on_inbound_audio(pcm, pts)
        except MediaStreamError:
            return

    async def _play_out(self, feed: _ReceiverFeed) -> None:
        """Decode and hand over what the play-out buffer releases, when it releases it:
        at once for a packet next in sequence, at its deadline for a gap."""
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=INPUT_RATE)
        loop = asyncio.get_running_loop()
        while True:
            self._arrived.clear()
            playout = feed.playout
            due: float | None = None
            if playout is not None:
                for slot in playout.pop(loop.time()):
                    self._play(feed, slot)
                self._count(playout)
                due = playout.deadline()
            try:
                async with asyncio.timeout_at(due):  # the next gap's deadline: a clock
                    await self._arrived.wait()
            except TimeoutError:
                pass

    def _play(self, feed: _ReceiverFeed, slot: Slot) -> None:
        codec = feed.codec
        assert codec is not None and feed.playout is not None
        rate = feed.playout.clock_rate
        frames: list[av.AudioFrame] = []
        if slot.payload is not None:
            if self._decoder is None:
                self._decoder = get_decoder(codec)
            try:
                decoded = self._decoder.decode(JitterFrame(slot.payload, slot.pts))
                frames = [f for f in decoded if isinstance(f, av.AudioFrame)]
            except av.FFmpegError:
                self.endpoint.stats.audio_undecodable_packets += 1
                frames = []  # its 20 ms are filled like a lost packet's
        filled = not frames
        if filled:
            last = self._last_frame
            if last is None:
                return  # nothing decoded yet: no format to fill with
            samples = round(feed.playout.step * last.sample_rate / rate)
            silence = av.AudioFrame(
                format=last.format.name, layout=last.layout.name, samples=samples
            )
            for plane in silence.planes:
                plane.update(bytes(plane.buffer_size))
            silence.sample_rate = last.sample_rate
            frames = [silence]
        else:
            self._last_frame = frames[-1]
        resampler = self._resampler
        assert resampler is not None
        self.inbound_filled = filled
        try:
            for frame in frames:
                for out in resampler.resample(frame):
                    pcm = bytes(out.planes[0])[: out.samples * 2]
                    if pcm:
                        self._on_inbound_audio(pcm, slot.pts / rate)
        finally:
            self.inbound_filled = False

    def _count(self, playout: PlayoutBuffer) -> None:
        """Add what the play-out counted since last time to the endpoint's counters."""
        stats = self.endpoint.stats
        for name, attr in (
            ("late", "audio_late_packets"),
            ("gaps", "audio_gaps_filled"),
            ("reordered", "audio_reordered_packets"),
            ("discarded", "audio_discarded_packets"),
        ):
            now = int(getattr(playout, name))
            delta = now - self._counted.get(name, 0)
            if delta:
                self._counted[name] = now
                setattr(stats, attr, getattr(stats, attr) + delta)

    def _set_gone(self) -> None:
        if self._gone is None:
            self._gone = _CLOSE_GONE
            self._wake.set()

    # -- the peer connection ---------------------------------------------------------------

    def _refuse(self, code: int, reason: str) -> None:
        if not self.outcome.done():
            self.outcome.set_result(("refused", code, reason))

    async def negotiate(self, within: float) -> None:
        """Answer the offer (the HTTP response carries the answer)."""
        pc = self.pc = RTCPeerConnection(configuration=ice_configuration(self.endpoint._ice))
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)
        try:
            async with asyncio.timeout(within):
                await pc.setRemoteDescription(RTCSessionDescription(self.offer_sdp, "offer"))
                audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
                if not audio:
                    raise PeerClose(CLOSE_UNSUPPORTED, "bad offer: no audio m-line")
                pc.addTrack(self.track)
                await pc.setLocalDescription(await pc.createAnswer())
        except PeerClose:
            raise
        except TimeoutError:
            raise PeerClose(CLOSE_POLICY, "the answer took too long") from None
        except Exception as exc:
            logger.info("webrtc: offer refused: %s", type(exc).__name__)
            raise PeerClose(CLOSE_UNSUPPORTED, "bad offer: the SDP could not be used") from None
        local = pc.localDescription
        if not self.outcome.done():
            self.outcome.set_result(("answer", local.sdp))

    async def connected(self, within: float) -> None:
        """Wait until the data channel is open (ICE and DTLS done)."""
        try:
            async with asyncio.timeout(within):
                await self._open.wait()
        except TimeoutError:
            raise PeerClose(CLOSE_POLICY, "the WebRTC connection did not open in time") from None
        channel = self.channel
        assert channel is not None
        pending, self._pending = self._pending, []
        for text in pending:
            channel.send(text)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self.channel is not None:
            channel.close()  # one channel per peer: the page's
            return
        self.channel = channel
        channel.on("message", self._on_text)
        channel.on("close", self._set_gone)
        if channel.readyState == "open":
            self._open.set()
        else:
            channel.on("open", self._open.set)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._reader is not None or self._closed:
            return
        feed = self._install_feed(track)
        reader = self._read_audio(track) if feed is None else self._play_out(feed)
        self._reader = asyncio.get_running_loop().create_task(reader, name="webrtc-audio-in")

    def _install_feed(self, track: MediaStreamTrack) -> _ReceiverFeed | None:
        """Put a :class:`_ReceiverFeed` in the place of this track's receiver's jitter
        buffer (that receiver only). None when this aiortc has no such place."""
        pc = self.pc
        if pc is None:
            return None
        for transceiver in pc.getTransceivers():
            receiver = transceiver.receiver
            if receiver.track is not track:
                continue
            if not hasattr(receiver, _JITTER_ATTR):
                logger.warning("webrtc: this aiortc has no per-receiver jitter buffer to replace")
                return None
            feed = _ReceiverFeed(transceiver, self.endpoint.jitter_ms / 1000, self._arrived.set)
            setattr(receiver, _JITTER_ATTR, feed)
            self.feed = feed
            return feed
        return None

    def _on_state(self) -> None:
        pc = self.pc
        if pc is not None and pc.connectionState in ("failed", "closed"):
            self._set_gone()

    def shutdown(self) -> None:
        """The server is stopping: the connection ends with 1012 (the page reconnects)."""
        self._fail = PeerClose(1012, "service restart")
        self._wake.set()

    def clear_playback(self) -> int:
        return self.track.clear()

    def _on_playback(self, state: PlaybackState, ms: float) -> None:
        conn = self.conn
        if conn is None:
            return
        info = conn.info
        info.playback.append(PlaybackReport(state, ms, time.monotonic()))
        info.playback_reports += 1
        if state != "playing":
            info.played_ms_total += ms
        conn.relay._notify()

    async def aclose(self) -> None:
        """Close everything this peer holds (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._refuse(1011, "internal error")
        self._set_gone()
        self.track.stop()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        pc, self.pc = self.pc, None
        if pc is not None:
            try:
                async with asyncio.timeout(5.0):
                    await pc.close()
            except Exception:
                logger.warning("webrtc: closing a peer connection failed", exc_info=True)
        self.channel = None
        self.endpoint._link_closed(self)


class _RtcConnection(_Connection):
    """The relay's page connection over a :class:`_RtcLink`."""

    def __init__(self, relay: Relay, scope: Scope, link: _RtcLink) -> None:
        super().__init__(relay, scope, link.receive, link.send)
        self.link = link
        link.conn = self

    async def admit(self) -> None:
        await super().admit()  # origin, limits, identity; "ready" waits for the channel
        lim = self.relay.limits
        await self.link.negotiate(lim.connect_timeout)
        await self.link.connected(self.link.endpoint.connect_timeout)
        self.touch()

    def interrupted(self) -> None:
        self.link.clear_playback()  # barge-in: nothing queued for the page plays any more

    async def cleanup(self) -> None:
        try:
            await super().cleanup()
        finally:
            await self.link.aclose()
