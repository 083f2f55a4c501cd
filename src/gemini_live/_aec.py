"""Acoustic echo cancellation for a microphone next to a speaker (the ``aec`` extra).

With loudspeakers, the microphone hears the model's reply and the service takes it for the
user talking over it: the model interrupts itself. :class:`EchoCanceller` removes what the
speaker played from what the microphone captured. The played audio is the *reference*
(far end); the canceller learns the echo path (delay, room, attenuation) from it and
subtracts the estimate, then suppresses what is left.

The engine is WebRTC's audio processing module (AEC3) as shipped in the ``livekit`` wheels
(``pip install 'gemini-live[aec]'``); it was chosen by measurement (tests/test_aec.py):
more than 20 dB of echo removed on a synthetic echo path after a few seconds, the user's
speech kept during double talk, well under a millisecond of CPU per 10 ms frame.

Threading: :meth:`EchoCanceller.playback` may be called from the sound card's output
thread; it only queues the reference (bounded). Everything else, including the engine
itself, runs on the caller of :meth:`EchoCanceller.capture`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Final

from gemini_live._pcm import INPUT_RATE, OUTPUT_RATE, as_pcm16, check_rate

__all__ = ["AEC_HINT", "EchoCanceller"]

AEC_HINT: Final = "install the aec extra: pip install 'gemini-live[aec]'"
_FRAME_MS: Final = 10


def _load_engine() -> Any:
    try:
        from livekit import rtc
    except ImportError as exc:
        raise ImportError(f"echo cancellation needs the livekit package; {AEC_HINT}") from exc
    return rtc


class EchoCanceller:
    """Removes the speaker's echo from microphone audio, one 10 ms frame at a time.

    ``rate`` is the microphone's rate, ``far_rate`` the speaker's (both PCM16 mono; the
    engine converts the reference itself, so nothing is resampled twice). Feed what the
    speaker plays to :meth:`playback` as it is handed to the card, and pass each microphone
    chunk through :meth:`capture`; or call :meth:`process` with both when they are already
    aligned (files, tests). Output comes in whole 10 ms frames; a partial frame is kept
    for the next call, so 10/20 ms chunks come back the same size.

    The reference queue is bounded (``max_reference_seconds``): when the microphone side
    stops pulling, the oldest reference is dropped and counted in
    :attr:`dropped_reference_seconds`.
    """

    def __init__(
        self,
        rate: int = INPUT_RATE,
        *,
        far_rate: int = OUTPUT_RATE,
        noise_suppression: bool = False,
        high_pass_filter: bool = True,
        max_reference_seconds: float = 2.0,
    ) -> None:
        for name, value in (("rate", rate), ("far_rate", far_rate)):
            check_rate(value)
            if value % (1000 // _FRAME_MS):
                raise ValueError(f"{name} must be a multiple of 100 Hz, got {value}")
        if not max_reference_seconds > 0:
            raise ValueError(f"max_reference_seconds must be positive, got {max_reference_seconds}")
        self._rtc = _load_engine()
        self.rate = rate
        self.far_rate = far_rate
        self._near_bytes = rate * _FRAME_MS // 1000 * 2
        self._far_bytes = far_rate * _FRAME_MS // 1000 * 2
        self._apm = self._rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
        )
        self._lock = threading.Lock()
        self._far: deque[bytes] = deque()
        self._far_partial = b""
        self._max_far = max(1, int(max_reference_seconds * 1000) // _FRAME_MS)
        self._dropped_far = 0
        self._near_partial = b""
        #: 10 ms microphone frames processed so far.
        self.frames = 0
        #: CPU time (``time.process_time``) the engine spent on them, in seconds.
        self.cpu_seconds = 0.0

    def __repr__(self) -> str:
        return f"EchoCanceller(rate={self.rate}, far_rate={self.far_rate}, frames={self.frames})"

    @property
    def dropped_reference_seconds(self) -> float:
        """Reference audio dropped because the queue was full."""
        return self._dropped_far * _FRAME_MS / 1000

    @property
    def cpu_per_frame(self) -> float:
        """Mean engine CPU seconds per 10 ms microphone frame (0 before the first)."""
        return self.cpu_seconds / self.frames if self.frames else 0.0

    def playback(self, pcm: object) -> None:
        """Queue audio the speaker is playing now (PCM16 mono at ``far_rate``).

        Safe to call from the sound card's thread: it only splits and queues.
        """
        data = as_pcm16(pcm)
        with self._lock:
            buf = self._far_partial + data
            size = self._far_bytes
            whole = len(buf) - len(buf) % size
            for i in range(0, whole, size):
                if len(self._far) >= self._max_far:
                    self._far.popleft()
                    self._dropped_far += 1
                self._far.append(buf[i : i + size])
            self._far_partial = buf[whole:]

    def capture(self, pcm: object) -> bytes:
        """Cancel the echo in microphone audio (PCM16 mono at ``rate``).

        Returns the cleaned audio in whole 10 ms frames; a partial frame waits for the
        next call.
        """
        data = self._near_partial + as_pcm16(pcm)
        size = self._near_bytes
        whole = len(data) - len(data) % size
        self._near_partial = data[whole:]
        with self._lock:
            far = list(self._far)
            self._far.clear()
        rtc = self._rtc
        apm = self._apm
        out = bytearray()
        started = time.process_time()
        for ref in far:
            apm.process_reverse_stream(rtc.AudioFrame(ref, self.far_rate, 1, self._far_bytes // 2))
        for i in range(0, whole, size):
            frame = rtc.AudioFrame(data[i : i + size], self.rate, 1, size // 2)
            # The engine finds the real delay itself; 0 is the documented starting point.
            apm.set_stream_delay_ms(0)
            apm.process_stream(frame)
            out += frame.data.cast("B")
        self.cpu_seconds += time.process_time() - started
        self.frames += whole // size
        return bytes(out)

    def process(self, near: object, far: object) -> bytes:
        """:meth:`playback` ``far``, then :meth:`capture` ``near``: for aligned streams."""
        self.playback(far)
        return self.capture(near)
