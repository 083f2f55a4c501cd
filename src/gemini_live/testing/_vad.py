"""Energy-based activity detection on audio time (sample counts, never wall time).

The fake server runs one :class:`ServerVad` per connection on the PCM16 it receives (the
service's automatic activity detection; the client's own detector, with pre-roll, is
:class:`gemini_live.vad.ActivityDetector`, a different job).
It works in 10 ms frames: a frame is *voiced* when its RMS exceeds the start-sensitivity
threshold. Start of speech is committed after ``prefix_padding_ms`` of consecutive voiced
audio; end of speech after ``silence_duration_ms`` of consecutive unvoiced audio. Because
only sample counts matter, a test can stream minutes of audio in milliseconds.
"""

from __future__ import annotations

import array
import math
import operator
import sys
from dataclasses import dataclass
from typing import Final, Literal

from gemini_live.testing._canned import INPUT_DEFAULT_RATE
from gemini_live.types import UNSET, RealtimeInputConfig

__all__ = ["ServerVad", "VadEvent", "VadSettings"]

FRAME_MS: Final = 10
#: RMS (of int16 samples) above which a 10 ms frame counts as speech.
START_THRESHOLD: Final = {"START_SENSITIVITY_HIGH": 300.0, "START_SENSITIVITY_LOW": 1000.0}
#: Default prefix padding per start sensitivity, ms.
PREFIX_MS: Final = {"START_SENSITIVITY_HIGH": 30, "START_SENSITIVITY_LOW": 100}
#: Default silence needed to end a turn per end sensitivity, ms.
SILENCE_MS: Final = {"END_SENSITIVITY_HIGH": 300, "END_SENSITIVITY_LOW": 800}


@dataclass(frozen=True, slots=True)
class VadSettings:
    """The knobs of ``realtimeInputConfig.automaticActivityDetection``, with defaults."""

    disabled: bool = False
    threshold: float = START_THRESHOLD["START_SENSITIVITY_HIGH"]
    prefix_padding_ms: int = PREFIX_MS["START_SENSITIVITY_HIGH"]
    silence_duration_ms: int = SILENCE_MS["END_SENSITIVITY_HIGH"]
    interrupts: bool = True
    #: ``TURN_INCLUDES_ONLY_ACTIVITY`` (default) or one of the "all input" coverages.
    only_activity: bool = True

    @classmethod
    def from_config(cls, cfg: RealtimeInputConfig | None) -> VadSettings:
        if cfg is None:
            return cls()
        aad = cfg.automatic_activity_detection
        start = "START_SENSITIVITY_HIGH"
        end = "END_SENSITIVITY_HIGH"
        disabled = False
        prefix: int | None = None
        silence: int | None = None
        if aad is not UNSET:
            disabled = aad.disabled is True
            if isinstance(aad.start_of_speech_sensitivity, str):
                start = aad.start_of_speech_sensitivity
            if isinstance(aad.end_of_speech_sensitivity, str):
                end = aad.end_of_speech_sensitivity
            if isinstance(aad.prefix_padding_ms, int):
                prefix = aad.prefix_padding_ms
            if isinstance(aad.silence_duration_ms, int):
                silence = aad.silence_duration_ms
        coverage = cfg.turn_coverage if isinstance(cfg.turn_coverage, str) else ""
        return cls(
            disabled=disabled,
            threshold=START_THRESHOLD.get(start, START_THRESHOLD["START_SENSITIVITY_HIGH"]),
            prefix_padding_ms=prefix if prefix is not None else PREFIX_MS.get(start, 30),
            silence_duration_ms=silence if silence is not None else SILENCE_MS.get(end, 300),
            interrupts=cfg.activity_handling != "NO_INTERRUPTION",
            only_activity=coverage in ("", "TURN_INCLUDES_ONLY_ACTIVITY"),
        )


@dataclass(frozen=True, slots=True)
class VadEvent:
    """``start`` or ``end`` of speech at ``offset_ms`` of the connection's audio stream.

    For ``end``, ``activity_ms`` is the speech's length (onset to last voiced frame) and
    ``since_turn_ms`` all audio since the previous end of speech.
    """

    kind: Literal["start", "end"]
    offset_ms: float
    activity_ms: float = 0.0
    since_turn_ms: float = 0.0


class ServerVad:
    """The service's VAD: feed it PCM16 little-endian mono; it returns start/end-of-speech
    events."""

    def __init__(self, settings: VadSettings) -> None:
        self.settings = settings
        self.clock_ms = 0.0  # audio time consumed
        self.speaking = False
        #: Voiced audio seen since the last end of speech (any frame above threshold).
        self.heard_voice = False
        self._rate = INPUT_DEFAULT_RATE
        self._frame_samples = INPUT_DEFAULT_RATE * FRAME_MS // 1000
        self._pending = b""
        self._voiced_run = 0.0
        self._silent_run = 0.0
        self._onset = 0.0
        self._last_voiced_end = 0.0
        self._turn_start = 0.0

    def feed(self, pcm: bytes, rate: int) -> list[VadEvent]:
        if rate != self._rate:
            self._rate = rate
            self._frame_samples = max(1, rate * FRAME_MS // 1000)
            self._pending = b""
        data = self._pending + pcm
        step = self._frame_samples * 2
        n = len(data) // step * step
        self._pending = data[n:]
        events: list[VadEvent] = []
        frame_ms = self._frame_samples / self._rate * 1000
        for off in range(0, n, step):
            events.extend(self._frame(data[off : off + step], frame_ms))
        # Partial frames still advance the clock (they are judged with the next chunk).
        return events

    def _frame(self, frame: bytes, frame_ms: float) -> list[VadEvent]:
        samples = array.array("h")
        samples.frombytes(frame)
        if sys.byteorder == "big":
            samples.byteswap()
        rms = math.sqrt(sum(map(operator.mul, samples, samples)) / max(1, len(samples)))
        start = self.clock_ms
        self.clock_ms += frame_ms
        s = self.settings
        if rms > s.threshold:
            self.heard_voice = True
            self._silent_run = 0.0
            if self._voiced_run == 0.0:
                self._onset = start
            self._voiced_run += frame_ms
            self._last_voiced_end = self.clock_ms
            if not self.speaking and self._voiced_run >= max(s.prefix_padding_ms, frame_ms):
                self.speaking = True
                return [VadEvent("start", self._onset)]
            return []
        self._voiced_run = 0.0
        if not self.speaking:
            return []
        self._silent_run += frame_ms
        if self._silent_run >= s.silence_duration_ms:
            return [self.end()]
        return []

    def end(self) -> VadEvent:
        """End the current speech now (end of speech detected, or the stream ended)."""
        event = VadEvent(
            "end",
            self.clock_ms,
            activity_ms=max(0.0, self._last_voiced_end - self._onset),
            since_turn_ms=self.clock_ms - self._turn_start,
        )
        self.speaking = False
        self.heard_voice = False
        self._voiced_run = 0.0
        self._silent_run = 0.0
        self._turn_start = self.clock_ms
        return event
