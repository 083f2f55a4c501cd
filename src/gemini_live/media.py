"""Media helpers: real-time audio sending, video frames, microphone and speaker.

* :func:`stream_audio` sends audio to a session at real-time pace (or as fast as the
  connection takes it), in fixed chunks, with backpressure: it awaits every send, so a
  slow connection slows the source instead of piling up memory.
* :func:`encode_jpeg` turns a numpy array or PIL image into a JPEG within a size bound
  (longest side, quality, bytes); :class:`VideoSender` adds an fps cap (default 1 fps,
  what the Live API processes) and pause/resume. :func:`screen_frames` captures the screen
  with ``mss`` (optional).
* :func:`microphone` (an async iterator of PCM16 chunks) and :class:`Speaker` (a sink with
  instant barge-in) wrap ``sounddevice`` for local voice apps.

Everything takes the session as an argument and uses only its public methods
(``send_audio``, ``send_video``, ``send_audio_stream_end``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from gemini_live.audio import (
    INPUT_RATE,
    OUTPUT_RATE,
    PlaybackBuffer,
    as_pcm16,
    chunk_pcm,
    resample,
)
from gemini_live.errors import ConfigError

__all__ = [
    "AudioSession",
    "Speaker",
    "StreamStats",
    "VideoSender",
    "VideoSession",
    "encode_jpeg",
    "microphone",
    "screen_frames",
    "stream_audio",
]

_MEDIA_HINT = "install the media extra: pip install 'gemini-live[media]'"
_AUDIO_HINT = "install the audio extra: pip install 'gemini-live[audio]'"


class AudioSession(Protocol):
    """What :func:`stream_audio` needs from a session (a :class:`~gemini_live.Session`)."""

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None: ...

    async def send_audio_stream_end(self) -> None: ...


class VideoSession(Protocol):
    """What :class:`VideoSender` needs from a session (a :class:`~gemini_live.Session`)."""

    async def send_video(self, frame: bytes, *, mime_type: str = "image/jpeg") -> None: ...


# -- audio ---------------------------------------------------------------------------------


@dataclass
class StreamStats:
    """What :func:`stream_audio` sent."""

    chunks: int = 0
    bytes: int = 0
    #: Seconds of audio sent.
    audio_seconds: float = 0.0
    #: Wall-clock seconds the stream took.
    wall_seconds: float = 0.0
    #: Largest delay of a chunk behind its real-time slot (seconds).
    max_lag: float = 0.0


async def _chunks(
    source: object, rate: int, chunk_ms: int
) -> AsyncIterator[bytes | bytearray | memoryview]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        for c in chunk_pcm(source, rate=rate, ms=chunk_ms):
            yield c
        return
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield as_pcm16(item)
        return
    if isinstance(source, Iterable):
        for item in source:
            yield as_pcm16(item)
        return
    raise ConfigError(
        f"stream_audio takes PCM16 bytes or an (async) iterable of chunks, "
        f"not {type(source).__name__}"
    )


async def stream_audio(
    session: AudioSession,
    source: object,
    *,
    sample_rate: int = INPUT_RATE,
    chunk_ms: int = 20,
    realtime: bool = True,
    end_of_stream: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> StreamStats:
    """Send audio to ``session`` paced like a live microphone.

    Args:
        session: Anything with ``send_audio`` (a :class:`~gemini_live.Session`).
        source: PCM16 bytes (cut into ``chunk_ms`` chunks), or an iterable / async
            iterable of chunks (sent as they come; anything :func:`~gemini_live.audio.as_pcm16`
            accepts).
        sample_rate: Rate of the audio.
        realtime: Pace chunk *n* to leave at ``start + duration of chunks before it``
            (against the clock, so delays do not add up); ``False`` sends as fast as
            the connection accepts.
        end_of_stream: Send ``audioStreamEnd`` after the last chunk (automatic VAD).

    Every send is awaited (backpressure): when the connection is slow, the source is read
    more slowly; nothing is dropped. Returns :class:`StreamStats`.
    """
    if chunk_ms <= 0:
        raise ConfigError(f"chunk_ms must be positive, got {chunk_ms}")
    stats = StreamStats()
    start = clock()
    sent_s = 0.0
    async for chunk in _chunks(source, sample_rate, chunk_ms):
        n = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
        if not n:
            continue
        if realtime:
            due = start + sent_s
            now = clock()
            if due > now:
                await asyncio.sleep(due - now)  # pacing, not synchronisation
            else:
                stats.max_lag = max(stats.max_lag, now - due)
        await session.send_audio(chunk, sample_rate=sample_rate)
        stats.chunks += 1
        stats.bytes += n
        sent_s += n / (2 * sample_rate)
    if end_of_stream and stats.chunks:
        await session.send_audio_stream_end()
    stats.audio_seconds = sent_s
    stats.wall_seconds = clock() - start
    return stats


# -- video ---------------------------------------------------------------------------------


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(f"encoding video frames needs Pillow; {_MEDIA_HINT}") from exc
    return Image


def _to_image(frame: object) -> Any:
    Image = _pil()
    if isinstance(frame, Image.Image):
        return frame
    np = sys.modules.get("numpy")
    if np is not None and isinstance(frame, np.ndarray):
        arr = frame
        if arr.dtype != np.uint8:
            if arr.dtype.kind == "f":
                arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            else:
                raise ConfigError(f"video frames must be uint8 or float in [0, 1], got {arr.dtype}")
        if arr.ndim == 2:
            return Image.fromarray(arr, "L")
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            return Image.fromarray(
                np.ascontiguousarray(arr), "RGB" if arr.shape[2] == 3 else "RGBA"
            )
        raise ConfigError(f"video frame array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    raise ConfigError(
        f"video frames must be numpy arrays or PIL images, not {type(frame).__name__}"
    )


def encode_jpeg(
    frame: object,
    *,
    max_side: int = 1024,
    quality: int = 80,
    max_bytes: int = 512 * 1024,
    min_quality: int = 30,
) -> bytes:
    """Encode a frame as a JPEG no larger than ``max_side`` pixels and ``max_bytes`` bytes.

    Args:
        frame: A PIL image, or a numpy ``uint8`` array (HxW gray, HxWx3 RGB, HxWx4 RGBA;
            alpha is dropped) or a float array in ``[0, 1]``.
        max_side: The longest side after downscaling (aspect ratio kept; never upscaled).
        quality: JPEG quality to try first.
        max_bytes: Size bound: the quality is lowered step by step down to
            ``min_quality``, then the image is halved, until it fits.

    Raises:
        ConfigError: Bad frame or bounds. ImportError: Pillow is missing.
    """
    if max_side < 16:
        raise ConfigError(f"max_side must be at least 16, got {max_side}")
    if not 1 <= min_quality <= quality <= 95:
        raise ConfigError("qualities must satisfy 1 <= min_quality <= quality <= 95")
    if max_bytes < 1024:
        raise ConfigError(f"max_bytes must be at least 1024, got {max_bytes}")
    Image = _pil()
    img = _to_image(frame)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    w, h = img.size
    if w < 1 or h < 1:
        raise ConfigError("video frame is empty")
    scale = min(1.0, max_side / max(w, h))
    while True:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        sized = img if size == (w, h) else img.resize(size, Image.Resampling.LANCZOS)
        q = quality
        while True:
            buf = io.BytesIO()
            sized.save(buf, format="JPEG", quality=q, optimize=True)
            data = buf.getvalue()
            if len(data) <= max_bytes:
                return data
            if q <= min_quality:
                break
            q = max(min_quality, q - 15)
        if max(size) <= 16:
            raise ConfigError(f"cannot fit the frame in {max_bytes} bytes")
        scale /= 2


class VideoSender:
    """Sends frames to a session with an fps cap, a size bound and pause/resume.

    ``await sender.send(frame)`` encodes and sends the frame if one is due (at most
    ``fps`` per second) and the sender is not paused; otherwise it returns ``False``
    without encoding (counted in :attr:`skipped` / :attr:`paused_frames`). A camera or
    screen source can therefore offer frames as fast as it likes.
    """

    def __init__(
        self,
        session: VideoSession,
        *,
        fps: float = 1.0,
        max_side: int = 1024,
        quality: int = 80,
        max_bytes: int = 512 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < fps <= 30:
            raise ConfigError(f"fps must be in (0, 30], got {fps}")
        self.session = session
        self.fps = fps
        self.max_side = max_side
        self.quality = quality
        self.max_bytes = max_bytes
        self._clock = clock
        self._next = -float("inf")
        self.paused = False
        self.sent = 0
        self.skipped = 0
        self.paused_frames = 0
        self.bytes_sent = 0

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        """Resume; the next offered frame is sent at once."""
        self.paused = False
        self._next = -float("inf")

    async def send(self, frame: object) -> bool:
        if self.paused:
            self.paused_frames += 1
            return False
        now = self._clock()
        if now < self._next:
            self.skipped += 1
            return False
        data = (
            frame
            if isinstance(frame, bytes)
            else encode_jpeg(
                frame, max_side=self.max_side, quality=self.quality, max_bytes=self.max_bytes
            )
        )
        if isinstance(frame, bytes) and len(frame) > self.max_bytes:
            raise ConfigError(f"encoded frame is {len(frame)} bytes > max_bytes {self.max_bytes}")
        await self.session.send_video(data, mime_type="image/jpeg")
        self._next = now + 1.0 / self.fps
        self.sent += 1
        self.bytes_sent += len(data)
        return True

    async def run(self, frames: AsyncIterable[object]) -> None:
        """Offer every frame of ``frames`` (e.g. :func:`screen_frames`) until it ends."""
        async for frame in frames:
            await self.send(frame)


async def screen_frames(
    *, fps: float = 1.0, monitor: int = 1, grabber: Any = None
) -> AsyncGenerator[Any, None]:
    """Capture the screen ``fps`` times a second as RGB numpy arrays (needs ``mss`` and numpy).

    ``grabber`` replaces ``mss.mss()`` (tests); grabbing runs in a worker thread.
    """
    if not 0 < fps <= 30:
        raise ConfigError(f"fps must be in (0, 30], got {fps}")
    import numpy as np

    if grabber is None:
        try:
            import mss
        except ImportError as exc:
            raise ImportError(f"screen capture needs mss: pip install mss; {_MEDIA_HINT}") from exc
        grabber = mss.mss()
    area = grabber.monitors[monitor]
    period = 1.0 / fps
    loop = asyncio.get_running_loop()
    nxt = loop.time()
    while True:
        shot = await asyncio.to_thread(grabber.grab, area)
        bgra = np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        yield np.ascontiguousarray(bgra[:, :, 2::-1])
        nxt += period
        delay = nxt - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing, not synchronisation
        else:
            nxt = loop.time()


# -- microphone and speaker ----------------------------------------------------------------


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise ImportError(
            f"microphone/speaker need sounddevice and PortAudio; {_AUDIO_HINT}"
        ) from exc
    return sounddevice


async def microphone(
    *, sample_rate: int = INPUT_RATE, chunk_ms: int = 20, device: Any = None, max_queue: int = 500
) -> AsyncGenerator[bytes, None]:
    """Yield PCM16 mono chunks from the microphone (``sounddevice``), ``chunk_ms`` each.

    The audio thread hands chunks to the event loop through a bounded queue; if the loop
    falls ``max_queue`` chunks behind, the oldest are dropped and counted in the log.
    """
    sd = _sounddevice()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(max_queue)

    def put(data: bytes) -> None:
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(data)

    def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
        loop.call_soon_threadsafe(put, bytes(indata))

    blocksize = sample_rate * chunk_ms // 1000
    with sd.RawInputStream(
        samplerate=sample_rate,
        channels=1,
        dtype="int16",
        blocksize=blocksize,
        device=device,
        callback=callback,
    ):
        while True:
            yield await queue.get()


class Speaker:
    """Plays model audio through ``sounddevice`` with instant barge-in.

    ``play(pcm)`` queues audio; ``interrupt()`` silences it at once and returns how many
    seconds of the interrupted reply were heard. Feed it events with :meth:`on_event`
    (``ModelAudio`` plays, resampled to ``sample_rate`` if needed; ``Interrupted``
    interrupts; the end of an interaction, ``TurnComplete.interaction_done`` or
    ``InteractionTimeout``, marks where the next reply starts, so the heard time counts
    only the interrupted reply). Use as a context manager.

    The sound card pulls ``block_ms`` blocks on its own thread (default 20 ms: a barge-in
    silences the speaker within one block); the buffer is guarded by a lock.
    """

    def __init__(
        self,
        *,
        sample_rate: int = OUTPUT_RATE,
        device: Any = None,
        max_seconds: float = 60.0,
        block_ms: int = 20,
        on_played: Callable[[bytes], None] | None = None,
    ) -> None:
        if block_ms <= 0:
            raise ConfigError(f"block_ms must be positive, got {block_ms}")
        self.sample_rate = sample_rate
        self.device = device
        self.block_ms = block_ms
        self.buffer = PlaybackBuffer(sample_rate, max_seconds=max_seconds)
        #: Called on the card's thread with each block handed to it (silence included),
        #: e.g. :meth:`gemini_live.audio.EchoCanceller.playback` as the echo reference.
        self.on_played = on_played
        #: Interruptions so far.
        self.interruptions = 0
        #: Seconds of queued audio the last :meth:`interrupt` dropped.
        self.last_dropped_seconds = 0.0
        self._lock = threading.Lock()
        self._stream: Any = None
        self._drained: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def __enter__(self) -> Speaker:
        sd = _sounddevice()
        self._stream = sd.RawOutputStream(
            samplerate=self.sample_rate,
            blocksize=self.sample_rate * self.block_ms // 1000,
            channels=1,
            dtype="int16",
            device=self.device,
            callback=self._callback,
        )
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        with self._lock:
            block = self.buffer.pop(frames * 2)
            drained = self._drained if not self.buffer.queued_bytes else None
        outdata[:] = block
        if self.on_played is not None:
            self.on_played(block)
        if drained is not None:
            loop, event = drained
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                loop.call_soon_threadsafe(event.set)

    def play(self, pcm: object) -> None:
        with self._lock:
            self.buffer.push(pcm)

    def interrupt(self) -> float:
        """Drop queued audio now; returns the seconds of this reply that were heard."""
        with self._lock:
            dropped = self.buffer.flush()
            heard = self.buffer.heard_before_flush or 0.0
        self.interruptions += 1
        self.last_dropped_seconds = dropped / (2 * self.sample_rate)
        return heard

    def mark_reply(self) -> None:
        """Audio played from now on belongs to a new reply (see
        :meth:`~gemini_live.audio.PlaybackBuffer.mark_reply`)."""
        with self._lock:
            self.buffer.mark_reply()

    @property
    def playing(self) -> bool:
        with self._lock:
            return self.buffer.queued_bytes > 0

    @property
    def queued_seconds(self) -> float:
        """Seconds of audio still waiting for the sound card."""
        with self._lock:
            return self.buffer.queued_seconds

    async def drain(self, max_wait: float) -> bool:
        """Wait (at most ``max_wait`` seconds) until everything queued has been played.

        Returns whether it drained. Only meaningful while the stream is open.
        """
        event = asyncio.Event()
        with self._lock:
            if not self.buffer.queued_bytes:
                return True
            self._drained = (asyncio.get_running_loop(), event)
        try:
            async with asyncio.timeout(max_wait):
                await event.wait()
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._drained = None
        return True

    def on_event(self, event: object) -> None:
        from gemini_live import events as ev

        if isinstance(event, ev.ModelAudio):
            data: object = event.data
            if event.sample_rate != self.sample_rate:
                data = resample(data, event.sample_rate, self.sample_rate)
            self.play(data)
        elif isinstance(event, ev.Interrupted):
            self.interrupt()
        elif (isinstance(event, ev.TurnComplete) and event.interaction_done) or isinstance(
            event, ev.InteractionTimeout
        ):
            # Not at an IN_PROGRESS turnComplete (3.8 Extended Thinking): the answer goes on.
            self.mark_reply()
