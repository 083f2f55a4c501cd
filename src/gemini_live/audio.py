"""Audio helpers for the Live API: PCM16 checks, base64, resampling, WAV, G.711, playback.

The Live API takes raw 16-bit signed little-endian mono PCM (``audio/pcm;rate=16000``,
any rate from 8 to 48 kHz) and answers with the same format at 24 kHz. This module has
everything needed to get audio into and out of that shape.

Runtime dependencies are the standard library and ``pybase64`` only. ``numpy`` and
``soxr`` (the ``audio`` extra) are imported lazily, inside the functions that use them:

* :func:`as_pcm16` accepts numpy arrays when numpy is installed, without importing it
  otherwise (an array can only exist if numpy was imported already).
* :func:`resample` / :class:`Resampler` pick a backend in this order:

  1. ``"soxr"`` – libsoxr, when importable (best quality, fastest). It runs on float32
     without dither, so results are deterministic;
  2. ``"numpy"`` – a Kaiser-windowed sinc interpolator written here, streaming with
     carried-over history, so chunked and one-shot output are identical;
  3. ``"python"`` – linear interpolation on ``array('h')`` with a carried sample. It
     has no anti-alias filter, so downsampling leaks some aliasing; it is a last resort.

Byte order: PCM16 taken or returned here is always little-endian, whatever the host. On a
big-endian host, native-order inputs (``array('h')``, native numpy ``int16``) are
byte-swapped by :func:`as_pcm16`, and the WAV helpers undo the swapping :mod:`wave`
does there.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final, Literal

import pybase64

from gemini_live._aec import EchoCanceller
from gemini_live._pcm import (
    _BIG_ENDIAN,
    INPUT_MIME,
    INPUT_RATE,
    MAX_RATE,
    MIN_RATE,
    OUTPUT_MIME,
    OUTPUT_RATE,
    _as_int,
    _odd,
    _positive_rate,
    as_pcm16,
    check_rate,
    duration_seconds,
    parse_pcm_rate,
    pcm_mime,
)
from gemini_live.errors import AudioFormatError, ConfigError
from gemini_live.types import b64decode_any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "INPUT_MIME",
    "INPUT_RATE",
    "MAX_RATE",
    "MIN_RATE",
    "OUTPUT_MIME",
    "OUTPUT_RATE",
    "AudioEncoder",
    "EchoCanceller",
    "PlaybackBuffer",
    "Quality",
    "ResampleBackend",
    "Resampler",
    "WavAudio",
    "alaw_to_pcm16",
    "as_pcm16",
    "check_rate",
    "chunk_pcm",
    "decode_audio",
    "duration_seconds",
    "load_wav_for_live",
    "parse_pcm_rate",
    "pcm16_to_alaw",
    "pcm16_to_float32",
    "pcm16_to_ulaw",
    "pcm_mime",
    "read_wav",
    "resample",
    "to_mono",
    "ulaw_to_pcm16",
    "write_wav",
]

#: Resampling quality, soxr's names from quick (``QQ``) to very high (``VHQ``).
Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
#: Which resampler to use; ``auto`` takes soxr when installed, else numpy, else pure Python.
ResampleBackend = Literal["auto", "soxr", "numpy", "python"]
_b64encode: Final = pybase64.b64encode
_b64decode: Final = pybase64.b64decode
_AUDIO_EXTRA_HINT: Final = "install the audio extra: pip install 'gemini-live[audio]'"


class AudioEncoder:
    """Base64-encodes PCM16 chunks for ``realtimeInput.audio``; reuse one per stream.

    Attributes:
        rate: The declared sample rate.
        mime_type: ``audio/pcm;rate=<rate>``, ready to put in the message.
    """

    __slots__ = ("mime_type", "rate")

    def __init__(self, rate: int = INPUT_RATE) -> None:
        self.rate = check_rate(rate)
        self.mime_type = pcm_mime(self.rate)

    def __repr__(self) -> str:
        return f"AudioEncoder(rate={self.rate})"

    def encode(self, pcm: object) -> bytes:
        """Return the standard-alphabet base64 of ``pcm`` as ASCII bytes.

        Args:
            pcm: Anything :func:`as_pcm16` accepts.

        Raises:
            AudioFormatError: See :func:`as_pcm16`.
        """
        if type(pcm) is bytes:
            if len(pcm) & 1:
                raise _odd(len(pcm))
            return _b64encode(pcm)
        return _b64encode(as_pcm16(pcm))


def decode_audio(b64: str | bytes) -> bytes:
    """Decode a base64 audio payload; standard or URL-safe alphabet, padding optional.

    The same policy as every other base64 field (:func:`gemini_live.types.b64decode_any`).

    Raises:
        ValueError: The payload is not valid base64 (``binascii.Error`` is a subclass).
    """
    return b64decode_any(b64)


def pcm16_to_float32(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.float32]:
    """Convert PCM16 bytes to a numpy ``float32`` array in ``[-1.0, 1.0)`` (divides by 32768).

    Raises:
        ImportError: numpy is not installed.
        AudioFormatError: Odd byte count.
    """
    try:
        import numpy as np
    except ImportError as exc:
        raise ImportError(f"pcm16_to_float32 needs numpy; {_AUDIO_EXTRA_HINT}") from exc
    raw = as_pcm16(pcm)
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) * np.float32(1.0 / 32768.0)


def chunk_pcm(pcm: object, *, rate: int = INPUT_RATE, ms: int = 20) -> Iterator[bytes]:
    """Split PCM16 audio into ``ms``-millisecond chunks (the last one may be shorter).

    The Live API works best with 20–100 ms chunks. Boundaries fall on whole samples;
    when ``rate * ms`` is not a multiple of 1000 the chunk length is rounded down.

    Args:
        pcm: Anything :func:`as_pcm16` accepts.
        rate: Sample rate of ``pcm``.
        ms: Chunk length in milliseconds.

    Raises:
        AudioFormatError: Bad audio, rate, or a chunk shorter than one sample.
    """
    raw = as_pcm16(pcm)
    rate = check_rate(rate)
    ms = _as_int(ms, "chunk length")
    size = rate * ms // 1000 * 2
    if size <= 0:
        raise AudioFormatError(f"a {ms} ms chunk at {rate} Hz holds no samples")
    return _chunks(memoryview(raw), size)


def _chunks(mv: memoryview, size: int) -> Iterator[bytes]:
    for start in range(0, len(mv), size):
        yield bytes(mv[start : start + size])


# --------------------------------------------------------------------------------------
# Pure-Python sample helpers
# --------------------------------------------------------------------------------------

_numpy_available: bool | None = None
_soxr_available: bool | None = None


def _has_numpy() -> bool:
    global _numpy_available
    if _numpy_available is None:
        try:
            import numpy  # noqa: F401
        except ImportError:
            _numpy_available = False
        else:
            _numpy_available = True
    return _numpy_available


def _has_soxr() -> bool:
    global _soxr_available
    if _soxr_available is None:
        try:
            import soxr  # noqa: F401
        except ImportError:
            _soxr_available = False
        else:
            _soxr_available = True
    return _soxr_available


def _to_samples(raw: bytes | bytearray | memoryview) -> array[int]:
    samples = array("h")
    samples.frombytes(raw)
    if _BIG_ENDIAN:
        samples.byteswap()
    return samples


def _from_samples(samples: array[int]) -> bytes:
    if _BIG_ENDIAN:
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def to_mono(pcm: bytes | bytearray | memoryview, channels: int) -> bytes:
    """Downmix interleaved PCM16 to mono by averaging channels (rounded half to even).

    Raises:
        AudioFormatError: ``channels`` < 1, or the data is not whole frames.
    """
    channels = _as_int(channels, "channel count")
    if channels < 1:
        raise AudioFormatError(f"channel count must be at least 1, got {channels}")
    raw = as_pcm16(pcm)
    nbytes = len(raw) if not isinstance(raw, memoryview) else raw.nbytes
    if nbytes % (2 * channels):
        raise AudioFormatError(
            f"{nbytes} bytes is not a whole number of {channels}-channel PCM16 frames"
        )
    if channels == 1:
        return bytes(raw)
    if _has_numpy():
        import numpy as np

        frames = np.frombuffer(raw, dtype="<i2").reshape(-1, channels)
        total: npt.NDArray[np.int64] = frames.sum(axis=1, dtype=np.int64)
        return np.rint(total / channels).astype("<i2").tobytes()
    samples = _to_samples(raw)
    planes = [samples[c::channels] for c in range(channels)]
    return _from_samples(array("h", [round(sum(f) / channels) for f in zip(*planes, strict=True)]))


# --------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------

_ZERO_CROSSINGS: Final[dict[str, int]] = {"QQ": 4, "LQ": 8, "MQ": 12, "HQ": 16, "VHQ": 32}
_ROLLOFF: Final = 0.94  # passband edge as a fraction of the lower Nyquist frequency
_KAISER_BETA: Final = 8.0
_MAX_PHASE_TABLE: Final = 4096
_BLOCK: Final = 8192  # outputs computed per numpy step (bounds temporary memory)
#: The least room (samples) a numpy stream keeps for its input (_SincStream._store).
_STORE_MIN: Final = 4096
#: Up to this many phases (``to / gcd``) a chunk is resampled one strided product per
#: phase; more phases (e.g. 44.1 -> 16 kHz) gather an index array instead.
_POLYPHASE_MAX: Final = 8


def _round_to_pcm16(y: npt.ArrayLike) -> bytes:
    import numpy as np

    return np.clip(np.rint(y), -32768.0, 32767.0).astype("<i2").tobytes()


def _round_to_pcm16_inplace(y: npt.NDArray[np.float64]) -> bytes:
    """:func:`_round_to_pcm16` of a float64 array it may overwrite (the same bytes, with
    ufunc calls instead of ``np.clip``'s Python-level checks: a chunk's worth)."""
    import numpy as np

    np.rint(y, out=y)
    _clip_pcm16(y)
    return y.astype("<i2").tobytes()


def _round_to_g711_inplace(y: npt.NDArray[np.float64], table: bytes) -> bytes:
    """``_g711_encode(_round_to_pcm16_inplace(y), table)``: the same bytes, looked up
    from the rounded samples directly."""
    import numpy as np

    np.rint(y, out=y)
    _clip_pcm16(y)
    codes: bytes = _np_table(table).take(y.astype(np.int16).view(np.uint16)).tobytes()
    return codes


def _clip_pcm16(y: npt.NDArray[np.float64]) -> None:
    """Clip ``y`` to the PCM16 range in place (the ``clip`` ufunc when numpy has it
    where we look: one call instead of two)."""
    clip = _clip_ufunc()
    if clip is not None:
        clip(y, -32768.0, 32767.0, out=y)
        return
    import numpy as np

    np.minimum(y, 32767.0, out=y)
    np.maximum(y, -32768.0, out=y)


@functools.cache
def _clip_ufunc() -> Any:
    """numpy's ``clip`` ufunc itself (``np.clip`` checks its arguments in Python first)."""
    for name in ("numpy._core.umath", "numpy.core.umath"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        clip = getattr(module, "clip", None)
        if clip is not None:
            return clip
    return None


def _check_quality(quality: str) -> str:
    q = quality.upper() if isinstance(quality, str) else ""
    if q not in _ZERO_CROSSINGS:
        raise ConfigError(f"quality must be one of {', '.join(_ZERO_CROSSINGS)}, got {quality!r}")
    return q


def _pick_backend(backend: str) -> str:
    if backend == "auto":
        if _has_soxr() and _has_numpy():
            return "soxr"
        return "numpy" if _has_numpy() else "python"
    if backend == "soxr":
        if not (_has_soxr() and _has_numpy()):
            raise ImportError(f"the soxr resampler needs soxr and numpy; {_AUDIO_EXTRA_HINT}")
        return backend
    if backend == "numpy":
        if not _has_numpy():
            raise ImportError(f"the numpy resampler needs numpy; {_AUDIO_EXTRA_HINT}")
        return backend
    if backend == "python":
        return backend
    raise ConfigError(f"backend must be auto, soxr, numpy or python, got {backend!r}")


def _arange_phases(t: int) -> npt.NDArray[np.float64]:
    import numpy as np

    return np.arange(t, dtype=np.float64) / t


def _phase_table(
    stream: _SincStream, f: int, t: int, zero_crossings: int
) -> npt.NDArray[np.float64]:
    """The filter of every phase for a reduced ratio ``f:t``, built once per ratio and
    kept (read-only) for the next stream of the same ratio: a phone call's resampler is
    reset after every reply, and the window function is the costly part."""
    key = (f, t, zero_crossings)
    hit = _PHASE_TABLES.get(key)
    if hit is None:
        hit = stream._kernel(_arange_phases(t))
        hit.flags.writeable = False
        if len(_PHASE_TABLES) >= _PHASE_TABLES_MAX:
            _PHASE_TABLES.pop(next(iter(_PHASE_TABLES)), None)
        _PHASE_TABLES[key] = hit
    return hit


#: Phase tables by reduced ratio and filter length (at most ``_PHASE_TABLES_MAX``).
_PHASE_TABLES: dict[tuple[int, int, int], npt.NDArray[np.float64]] = {}
_PHASE_TABLES_MAX: Final = 16


class _SincStream:
    """Streaming Kaiser-windowed sinc resampler (numpy).

    Output sample ``n`` sits at input position ``n * from / to``; it is computed once
    ``half`` input samples to its right have arrived, so the result does not depend on
    how the input was chunked. Input before the start and after the end counts as zero.
    """

    def __init__(self, from_rate: int, to_rate: int, zero_crossings: int) -> None:
        import numpy as np

        g = math.gcd(from_rate, to_rate)
        self._f = from_rate // g
        self._t = to_rate // g
        self._cutoff = _ROLLOFF * min(1.0, self._t / self._f)
        self._half = math.ceil(zero_crossings / self._cutoff)
        self._offsets = np.arange(-self._half + 1, self._half + 1, dtype=np.int64)
        self._taps = len(self._offsets)
        self._first_tap = int(self._offsets[0])
        self._table: npt.NDArray[np.float64] | None = None
        if self._t <= _MAX_PHASE_TABLE:
            self._table = _phase_table(self, self._f, self._t, zero_crossings)
        # The one filter of a decimation by a whole factor (t == 1), for _process.
        self._decimate: npt.NDArray[np.float64] | None = None
        if self._t == 1 and self._table is not None:
            self._decimate = self._table[0]
        self.reset()

    def reset(self) -> None:
        import numpy as np

        # _buf (the input still needed, as float64) is a view of _store from _lo on; the
        # room after it takes the next chunks without a new array each time.
        self._store = np.zeros(max(_STORE_MIN, 2 * self._half), dtype=np.float64)
        self._lo = 0
        self._buf = self._store[: self._half]
        self._buf_start = -self._half  # input index of _buf[0]
        self._n_in = 0
        self._n_out = 0

    def _append(self, x: npt.NDArray[np.int16]) -> None:
        """Add samples to the end of :attr:`_buf` (converted to float64)."""
        import numpy as np

        n = len(x)
        store = self._store
        lo = self._lo
        hi = lo + len(self._buf)
        if hi + n > len(store):
            keep = hi - lo
            store = np.empty(max(_STORE_MIN, 2 * (keep + n)), dtype=np.float64)
            store[:keep] = self._buf
            self._store = store
            self._lo = lo = 0
            hi = keep
        store[hi : hi + n] = x
        self._buf = store[lo : hi + n]

    def _kernel(self, frac: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        import numpy as np

        x = frac[:, None] - self._offsets[None, :]  # distance from each tap, in inputs
        ratio = np.clip(1.0 - (x / self._half) ** 2, 0.0, None)
        window = np.i0(_KAISER_BETA * np.sqrt(ratio))
        w: npt.NDArray[np.float64] = np.sinc(self._cutoff * x) * window
        w /= w.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
        return w

    def _emit(self, end: int) -> npt.NDArray[np.float64] | None:
        """Outputs up to ``end`` (unrounded; None when there are none)."""
        import numpy as np

        if self._t <= _POLYPHASE_MAX and self._table is not None and end > self._n_out:
            return self._emit_polyphase(end)
        parts: list[npt.NDArray[np.float64]] = []
        n_out = self._n_out
        while n_out < end:
            stop = min(end, n_out + _BLOCK)
            pos = np.arange(n_out, stop, dtype=np.int64) * self._f
            base, phase = np.divmod(pos, self._t)
            idx = (base - self._buf_start)[:, None] + self._offsets[None, :]
            weights = (
                self._table[phase]
                if self._table is not None
                else self._kernel(phase.astype(np.float64) / self._t)
            )
            parts.append(np.einsum("ij,ij->i", self._buf[idx], weights))
            n_out = stop
        self._n_out = n_out
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _emit_polyphase(self, end: int) -> npt.NDArray[np.float64]:
        """:meth:`_emit` for a tabled ratio: the outputs of one phase read input windows
        ``f`` samples apart, so each phase is one strided matrix-vector product (no index
        arrays; the per-chunk cost of a phone call's 24 -> 8 kHz and 8 -> 16 kHz steps).
        At most ``_BLOCK`` outputs at a time (each is copied with its taps, below)."""
        import numpy as np

        n_out = self._n_out
        if end - n_out <= _BLOCK:
            out = self._polyphase_block(n_out, end)
        else:
            out = np.concatenate(
                [self._polyphase_block(n, min(end, n + _BLOCK)) for n in range(n_out, end, _BLOCK)]
            )
        self._n_out = end
        return out

    def _polyphase_block(self, n_out: int, end: int) -> npt.NDArray[np.float64]:
        import numpy as np

        table = self._table
        assert table is not None
        f, t = self._f, self._t
        count = end - n_out
        buf = self._buf  # contiguous float64 (a view of _store, see _append)
        taps = self._taps
        item = buf.itemsize
        first = self._first_tap - self._buf_start  # buffer index of tap 0 at base 0
        # The windows overlap (a row starts ``f`` samples after the previous one), which
        # is not a BLAS layout: numpy would multiply them in a plain loop. A contiguous
        # copy of the rows goes through BLAS and costs less than half of that.
        if t == 1:
            # Decimation (e.g. 24 -> 8 kHz): one phase, one product.
            offset = (n_out * f + first) * item
            rows = np.ndarray((count, taps), np.float64, buf, offset, (f * item, item))
            y: npt.NDArray[np.float64] = np.ascontiguousarray(rows) @ table[0]
            return y
        out = np.empty(count, dtype=np.float64)
        for r in range(min(t, count)):
            base, phase = divmod((n_out + r) * f, t)
            k = (count - r + t - 1) // t  # outputs of this phase
            offset = (base + first) * item
            rows = np.ndarray((k, taps), np.float64, buf, offset, (f * item, item))
            out[r::t] = np.ascontiguousarray(rows) @ table[phase]
        return out

    def _trim(self) -> None:
        first = (self._n_out * self._f) // self._t - self._half + 1
        drop = min(max(first - self._buf_start, 0), len(self._buf))
        if drop:
            self._buf = self._buf[drop:]
            self._lo += drop
            self._buf_start += drop

    def _process(self, raw: bytes | bytearray | memoryview) -> npt.NDArray[np.float64] | None:
        """Take a chunk; the outputs it completes (unrounded; None when there are none)."""
        import numpy as np

        x = np.frombuffer(raw, dtype="<i2")
        n = len(x)
        if not n:
            return None
        self._append(x)
        self._n_in += n
        ready = self._n_in - self._half  # outputs whose right-most tap has arrived
        n_out = self._n_out
        f = self._f
        end = max(n_out, -(-ready * self._t // f)) if ready > 0 else n_out
        decimate = self._decimate
        count = end - n_out
        if decimate is not None and 0 < count <= _BLOCK:
            # _polyphase_block's decimation, inline (a phone call's 24 -> 8 kHz chunk).
            buf = self._buf
            offset = (n_out * f + self._first_tap - self._buf_start) * 8
            rows = np.ndarray((count, self._taps), np.float64, buf, offset, (f * 8, 8))
            out: npt.NDArray[np.float64] | None = np.ascontiguousarray(rows) @ decimate
            self._n_out = end
        else:
            out = self._emit(end)
        self._trim()
        return out

    def process(self, raw: bytes | bytearray | memoryview) -> bytes:
        out = self._process(raw)
        return b"" if out is None else _round_to_pcm16_inplace(out)

    def process_g711(self, raw: bytes | bytearray | memoryview, table: bytes) -> bytes:
        """:func:`_g711_encode` of :meth:`process`'s output with ``table`` (the same
        bytes), without the PCM16 bytes in between."""
        out = self._process(raw)
        return b"" if out is None else _round_to_g711_inplace(out, table)

    def flush(self) -> bytes:
        import numpy as np

        self._append(np.zeros(self._half, dtype=np.int16))
        out = self._emit(-(-self._n_in * self._t // self._f))
        self.reset()
        return b"" if out is None else _round_to_pcm16_inplace(out)


class _LinearStream:
    """Streaming linear interpolator on ``array('h')``; the last sample is held at the end."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        g = math.gcd(from_rate, to_rate)
        self._f = from_rate // g
        self._t = to_rate // g
        self.reset()

    def reset(self) -> None:
        self._buf: list[int] = []
        self._buf_start = 0
        self._n_in = 0
        self._n_out = 0
        self._last = 0

    def _emit(self, end: int) -> bytes:
        f, t, half_t = self._f, self._t, self._t // 2
        buf, start = self._buf, self._buf_start
        out = array("h")
        append = out.append
        for n in range(self._n_out, end):
            base, r = divmod(n * f, t)
            i = base - start
            append((buf[i] * (t - r) + buf[i + 1] * r + half_t) // t)
        self._n_out = max(self._n_out, end)
        return _from_samples(out)

    def process(self, raw: bytes | bytearray | memoryview) -> bytes:
        samples = _to_samples(raw)
        if not samples:
            return b""
        self._buf.extend(samples)
        self._n_in += len(samples)
        self._last = samples[-1]
        out = self._emit(-(-(self._n_in - 1) * self._t // self._f))
        first = (self._n_out * self._f) // self._t
        drop = min(max(first - self._buf_start, 0), len(self._buf))
        if drop:
            del self._buf[:drop]
            self._buf_start += drop
        return out

    def flush(self) -> bytes:
        self._buf.append(self._last)
        out = self._emit(-(-self._n_in * self._t // self._f))
        self.reset()
        return out


def resample(
    pcm: object,
    from_rate: int,
    to_rate: int,
    *,
    quality: Quality = "HQ",
    backend: ResampleBackend = "auto",
) -> bytes:
    """Resample mono PCM16 in one go.

    Args:
        pcm: Anything :func:`as_pcm16` accepts.
        from_rate: Rate of ``pcm`` (any positive rate, e.g. a 44.1 kHz file).
        to_rate: Wanted rate.
        quality: ``QQ``/``LQ``/``MQ``/``HQ``/``VHQ``; passed to soxr, or sets the sinc
            filter length of the numpy backend. The python backend ignores it.
        backend: ``auto`` (soxr, else numpy, else python) or one of them explicitly.

    Returns:
        PCM16 bytes; about ``len * to_rate / from_rate`` long.

    Raises:
        AudioFormatError: Bad audio or rates.
        ImportError: The requested backend is not installed.
    """
    raw = as_pcm16(pcm)
    from_rate = _positive_rate(from_rate, "from_rate")
    to_rate = _positive_rate(to_rate, "to_rate")
    q = _check_quality(quality)
    chosen = _pick_backend(backend)
    if from_rate == to_rate:
        return bytes(raw)
    if chosen == "soxr":
        import numpy as np
        import soxr

        x = np.frombuffer(raw, dtype="<i2").astype(np.float32)
        return _round_to_pcm16(soxr.resample(x, from_rate, to_rate, quality=q))
    stream: _SincStream | _LinearStream
    if chosen == "numpy":
        stream = _SincStream(from_rate, to_rate, _ZERO_CROSSINGS[q])
    else:
        stream = _LinearStream(from_rate, to_rate)
    return stream.process(raw) + stream.flush()


class Resampler:
    """Streaming mono PCM16 resampler; feed chunks, then :meth:`flush` at the end.

    State is carried across chunks so boundaries do not click. After :meth:`flush`
    (or :meth:`reset`) the resampler starts a fresh stream.

    Attributes:
        from_rate: Input rate.
        to_rate: Output rate.
        backend: The backend in use (``soxr``, ``numpy`` or ``python``).
    """

    def __init__(
        self,
        from_rate: int,
        to_rate: int,
        *,
        quality: Quality = "HQ",
        backend: ResampleBackend = "auto",
    ) -> None:
        self.from_rate = _positive_rate(from_rate, "from_rate")
        self.to_rate = _positive_rate(to_rate, "to_rate")
        self._quality = _check_quality(quality)
        self.backend = _pick_backend(backend)
        self._soxr: Any = None
        self._stream: _SincStream | _LinearStream | None = None
        self.reset()

    def __repr__(self) -> str:
        return f"Resampler({self.from_rate} -> {self.to_rate}, backend={self.backend!r})"

    def reset(self) -> None:
        """Drop buffered state without producing output (e.g. after a barge-in)."""
        if self.from_rate == self.to_rate:
            return
        if self.backend == "soxr":
            import soxr

            self._soxr = soxr.ResampleStream(
                self.from_rate, self.to_rate, 1, dtype="float32", quality=self._quality
            )
        elif self.backend == "numpy":
            self._stream = _SincStream(self.from_rate, self.to_rate, _ZERO_CROSSINGS[self._quality])
        else:
            self._stream = _LinearStream(self.from_rate, self.to_rate)

    def _soxr_chunk(self, raw: bytes | bytearray | memoryview, last: bool) -> bytes:
        import numpy as np

        x = np.frombuffer(raw, dtype="<i2").astype(np.float32)
        return _round_to_pcm16(self._soxr.resample_chunk(x, last=last))

    def process(self, chunk: object) -> bytes:
        """Resample one chunk; may return less (or more) than its share while buffering.

        Raises:
            AudioFormatError: See :func:`as_pcm16`.
        """
        raw = as_pcm16(chunk)
        if self.from_rate == self.to_rate:
            return bytes(raw)
        if self._stream is not None:
            return self._stream.process(raw)
        return self._soxr_chunk(raw, False)

    def process_g711(self, chunk: object, law: Literal["ulaw", "alaw"] = "ulaw") -> bytes:
        """:meth:`process` and G.711 encoding in one step: the same bytes as
        ``pcm16_to_ulaw(self.process(chunk))`` (or ``pcm16_to_alaw``), for the numpy
        backend without the PCM16 bytes in between (a phone bridge's per-chunk path).

        Raises:
            AudioFormatError: See :func:`as_pcm16`.
            ConfigError: ``law`` is not ``"ulaw"`` or ``"alaw"``.
        """
        if law == "ulaw":
            table = _ulaw_encode_table()
        elif law == "alaw":
            table = _alaw_encode_table()
        else:
            raise ConfigError(f"law must be 'ulaw' or 'alaw', got {law!r}")
        stream = self._stream
        if type(stream) is _SincStream:
            return stream.process_g711(as_pcm16(chunk), table)
        return _g711_encode(self.process(chunk), table)

    def flush(self) -> bytes:
        """Return the audio still held back and start a fresh stream."""
        if self.from_rate == self.to_rate:
            return b""
        if self._stream is not None:
            return self._stream.flush()
        out = self._soxr_chunk(b"", True)
        self.reset()
        return out


#: Outputs per row of :class:`_Decimator`'s product: one row of input serves this many
#: outputs (a window per output made the copy that gives BLAS its matrix ~16x larger).
_DECIMATE_BLOCK: Final = 16
#: Rows of :class:`_Decimator`'s product kept in a reused buffer (1,024 outputs: a
#: chunk of up to 128 ms at 8 kHz); a larger chunk's product gets its own array.
_DECIMATE_ROWS: Final = 64


@functools.cache
def _decimate_matrix(factor: int, zero_crossings: int) -> tuple[Any, int] | None:
    """The numpy sinc stream's filter for a decimation by ``factor`` (the same taps, as
    float32), one column per output of a row of :class:`_Decimator`'s product: column
    ``b`` holds the taps ``b * factor`` samples on. Returns the matrix and the filter's
    half length, or None when an output could leave the range :func:`_g711_wide_table`
    covers (the sum of the taps' magnitudes must stay below 2)."""
    import numpy as np

    h = _SincStream(factor, 1, zero_crossings)._decimate
    if h is None or float(np.abs(h).sum()) >= 1.99:
        return None
    taps = len(h)
    block = _DECIMATE_BLOCK
    matrix = np.zeros((taps + factor * (block - 1), block), dtype=np.float32)
    for b in range(block):
        matrix[factor * b : factor * b + taps, b] = h
    matrix.flags.writeable = False
    return matrix, taps // 2


def _most_rows(span: int) -> int:
    """Rows of one decimator product of ``span`` inputs per row that stay on one
    BLAS thread (:data:`_BLAS_ONE_THREAD`)."""
    return max(1, _BLAS_ONE_THREAD // (span * _DECIMATE_BLOCK))


def _dot_rows(windows: Any, matrix: Any, most: int, out: Any = None) -> Any:
    """``np.dot(windows, matrix, out=out)`` in slices of at most ``most`` rows (each on
    one BLAS thread; the same sums, row by row)."""
    import numpy as np

    rows = len(windows)
    if rows <= most:
        return np.dot(windows, matrix) if out is None else np.dot(windows, matrix, out=out)
    if out is None:
        out = np.empty((rows, matrix.shape[1]), np.float32)
    for r in range(0, rows, most):
        np.dot(windows[r : r + most], matrix, out=out[r : r + most])
    return out


@functools.cache
def _g711_wide_table(law: str) -> Any:
    """G.711 codes by the low 17 bits of a rounded sample ``r`` in ``[-65536, 65535]``
    (two's complement): the code of ``r`` clipped to PCM16, as :func:`_g711_encode`
    gives for the clipped sample."""
    import numpy as np

    table = _ulaw_encode_table() if law == "ulaw" else _alaw_encode_table()
    r = np.arange(1 << 17, dtype=np.int64)
    r[r >= 1 << 16] -= 1 << 17
    clipped = np.clip(r, -32768, 32767).astype(np.int16).view(np.uint16)
    wide = np.frombuffer(table, dtype=np.uint8)[clipped]
    wide.flags.writeable = False
    return wide


#: float32 1.5 * 2**23: added to a float32 of magnitude below 2**22, it leaves the value
#: rounded half to even (as ``np.rint``) in the low bits of the sum's int32 view.
_ROUND_F32: Final = 12582912.0
#: The largest float32 matrix product (rows x columns x inner length) the decimators
#: hand to BLAS at once. numpy's OpenBLAS runs a product from ~1 M of those on several
#: threads, whose workers then spin ~2 ms after each (measured: +2.2 ms of CPU per
#: product, and on a process pinned to one CPU the spinning worker and the waiting
#: caller share it); half that keeps every product on the caller's thread.
_BLAS_ONE_THREAD: Final = 1 << 19
#: :func:`_g711_wide_table` by law, once built.
_WIDE_TABLES: dict[str, Any] = {}
#: numpy, its int16 (little-endian) and int32 dtypes and ``_ROUND_F32`` as a float32
#: (made once: a dtype string is parsed on every call).
_DECIMATE_NP: tuple[Any, Any, Any, Any, Any] | None = None


def _wide_table(law: str) -> Any:
    """:func:`_g711_wide_table` of ``law``, kept in :data:`_WIDE_TABLES`.

    Raises:
        ConfigError: ``law`` is not ``"ulaw"`` or ``"alaw"``.
    """
    if law != "ulaw" and law != "alaw":
        raise ConfigError(f"law must be 'ulaw' or 'alaw', got {law!r}")
    table = _WIDE_TABLES[law] = _g711_wide_table(law)
    return table


def _decimate_np() -> tuple[Any, Any, Any, Any, Any]:
    global _DECIMATE_NP
    import numpy as np

    # The index mask as an int32 scalar: a Python int is converted on every call.
    mask = np.int32(0x1FFFF)
    _DECIMATE_NP = (np, np.dtype("<i2"), np.dtype(np.int32), np.float32(_ROUND_F32), mask)
    return _DECIMATE_NP


class _Decimator:
    """A phone bridge's model audio (24 kHz, or another whole multiple of the phone's
    rate) down to G.711 at 8 kHz: the numpy sinc stream's filter and timing (the same
    taps, the same outputs per chunk, each once ``half`` inputs to its right arrived),
    computed in float32 with :data:`_DECIMATE_BLOCK` outputs per row of one BLAS
    product, and rounded and encoded by one table lookup. Its samples differ from the
    float64 stream's by float32 rounding (now and then one step of PCM16 before G.711)."""

    __slots__ = (
        "_f",
        "_first",
        "_half",
        "_hi",
        "_ints",
        "_lo",
        "_matrix",
        "_most",
        "_n_in",
        "_n_out",
        "_out",
        "_room",
        "_span",
        "_start",
        "_starts",
        "_store",
        "_views",
        "from_rate",
        "to_rate",
    )

    def __init__(self, from_rate: int, to_rate: int, matrix: Any, half: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._f = from_rate // to_rate
        self._matrix = matrix
        self._half = half
        self._first = 1 - half  # the first tap's offset from an output's position
        self._span = matrix.shape[0]  # the input one row of the product reads
        self._most = _most_rows(self._span)  # rows of one product on one BLAS thread
        # What a row may read past the last input (outputs of the last row not ready
        # yet: their results are dropped) and more.
        self._room = self._f * _DECIMATE_BLOCK
        import numpy as np

        # The product's rows, and their bits as int32 (the G.711 lookup's index).
        self._out = np.empty((_DECIMATE_ROWS, _DECIMATE_BLOCK), np.float32)
        self._ints = self._out.reshape(-1).view(np.int32)
        # The last call's row and index views of those (count, rows, indices): the same
        # count (a steady stream's 40 ms chunks) takes them again, not two new slices.
        self._views: tuple[int, Any, Any] = (0, None, None)
        self._store = np.zeros(max(_STORE_MIN, 4 * (self._span + self._room)), np.float32)
        self._starts = self._windows_view(self._store)
        self.reset()

    @classmethod
    def create(cls, from_rate: int, to_rate: int) -> _Decimator | None:
        """A decimator for these rates, or None (not a whole factor, no numpy)."""
        if from_rate <= to_rate or from_rate % to_rate or not _has_numpy():
            return None
        spec = _decimate_matrix(from_rate // to_rate, _ZERO_CROSSINGS["HQ"])
        if spec is None:
            return None
        return cls(from_rate, to_rate, *spec)

    def __repr__(self) -> str:
        return f"_Decimator({self.from_rate} -> {self.to_rate})"

    def reset(self) -> None:
        """Drop buffered state without producing output (e.g. after a barge-in)."""
        # Input before the start counts as zero: ``half`` zeros before input 0 (what
        # lies after them is overwritten before it is read, or only read by outputs
        # that are dropped).
        self._store[: self._half] = 0.0
        self._lo = 0  # store index of input self._start
        self._hi = self._half  # store index after the last input
        self._start = -self._half
        self._n_in = 0
        self._n_out = 0

    def _windows_view(self, store: Any) -> Any:
        """Every window of ``span`` inputs of ``store``, one row per start (stride one
        sample): a row slice of it with step ``f * _DECIMATE_BLOCK`` is the product's
        rows (one slice, cheaper than building the strided view each call)."""
        import numpy as np

        return np.ndarray((len(store) - self._span + 1, self._span), np.float32, store, 0, (4, 4))

    def _append(self, x: Any) -> None:
        n = len(x)
        hi = self._hi
        store = self._store
        if hi + n + self._room > len(store):
            import numpy as np

            lo = self._lo
            keep = hi - lo
            size = max(len(store), 2 * (keep + n + self._room))
            if size > len(store):
                fresh = np.zeros(size, np.float32)
                fresh[:keep] = store[lo:hi]
                self._store = store = fresh
                self._starts = self._windows_view(fresh)
            else:
                store[:keep] = store[lo:hi]  # numpy copies an overlapping move safely
            self._lo = 0
            self._hi = hi = keep
        store[hi : hi + n] = x
        self._hi = hi + n
        self._n_in += n

    def _outputs(self, end: int) -> Any:
        """The unrounded outputs from ``_n_out`` to ``end`` (float32, a whole number of
        rows: the first ``end - _n_out`` are the ones asked for); forgets the input no
        later output needs."""
        import numpy as np

        n_out = self._n_out
        f = self._f
        rows = -(-(end - n_out) // _DECIMATE_BLOCK)
        lo = self._lo
        at = lo + n_out * f + self._first - self._start  # store index of the first tap
        windows = np.ndarray(
            (rows, self._span), np.float32, self._store, at * 4, (f * _DECIMATE_BLOCK * 4, 4)
        )
        y = _dot_rows(windows, self._matrix, self._most).reshape(-1)
        self._n_out = end
        # The first input the next output needs.
        drop = end * f + self._first - self._start
        self._lo = lo + drop
        self._start += drop
        return y

    def process_g711(self, chunk: object, law: Literal["ulaw", "alaw"] = "ulaw") -> bytes:
        """The G.711 codes of the outputs this chunk completes (as
        :meth:`Resampler.process_g711`).

        Raises:
            AudioFormatError: See :func:`as_pcm16`.
            ConfigError: ``law`` is not ``"ulaw"`` or ``"alaw"``.
        """
        table = _WIDE_TABLES.get(law)
        if table is None:
            table = _wide_table(law)
        raw = chunk if type(chunk) is bytes and not len(chunk) & 1 else as_pcm16(chunk)
        np, i16, i32, round_f32, mask = _DECIMATE_NP or _decimate_np()
        step = self._take(np.frombuffer(raw, i16))
        if step is None:
            return b""
        windows, rows, count = step
        # np.dot copies the overlapping windows into one matrix itself (cheaper than
        # ascontiguousarray and @).
        if rows <= _DECIMATE_ROWS and rows <= self._most:
            views = self._views
            if views[0] != count:
                views = self._views = (count, self._out[:rows], self._ints[:count])
            y = np.dot(windows, self._matrix, out=views[1])
            y += round_f32
            index = views[2]
            np.bitwise_and(index, mask, out=index)
        else:
            y = _dot_rows(windows, self._matrix, self._most)
            y += round_f32
            index = np.bitwise_and(y.reshape(-1).view(i32)[:count], mask)
        codes: bytes = table.take(index).tobytes()
        return codes

    def _take(self, x: Any) -> tuple[Any, int, int] | None:
        """Append the samples ``x`` (int16) and hand out what the outputs they complete
        read: the product's rows of input (a view of the store, valid until the next
        call), their number and the outputs wanted (the first ``count`` of ``rows *
        _DECIMATE_BLOCK``); None when no output is complete. The outputs count as made:
        the caller computes them before it appends again."""
        n = len(x)
        if not n:
            return None
        # _append, inline (room after the last input: the usual case).
        hi = self._hi
        if hi + n + self._room > len(self._store):
            self._append(x)
        else:
            self._store[hi : hi + n] = x
            self._hi = hi + n
            self._n_in += n
        ready = self._n_in - self._half  # inputs past the last output's right-most tap
        f = self._f
        end = -(-ready // f) if ready > 0 else 0
        n_out = self._n_out
        count = end - n_out
        if count <= 0:
            return None
        # _outputs, inline.
        lo = self._lo
        at = lo + n_out * f + self._first - self._start  # store index of the first tap
        rows = -(-count // _DECIMATE_BLOCK)
        step = f * _DECIMATE_BLOCK
        # The rows' windows (np.ndarray((rows, span), float32, store, at * 4, (step * 4,
        # 4)), the same view, by one slice of every window's view).
        windows = self._starts[at : at + rows * step : step]
        if len(windows) != rows:  # (never: the store keeps room) the view's own error
            import numpy as np

            windows = np.ndarray((rows, self._span), np.float32, self._store, at * 4, (step * 4, 4))
        self._n_out = end
        drop = end * f + self._first - self._start
        self._lo = lo + drop
        self._start += drop
        return windows, rows, count

    def process(self, chunk: object) -> bytes:
        """The outputs this chunk completes as PCM16 (the samples :meth:`process_g711`
        encodes).

        Raises:
            AudioFormatError: See :func:`as_pcm16`.
        """
        import numpy as np

        x = np.frombuffer(as_pcm16(chunk), dtype="<i2")
        if not len(x):
            return b""
        self._append(x)
        ready = self._n_in - self._half
        end = -(-ready // self._f) if ready > 0 else 0
        count = end - self._n_out
        if count <= 0:
            return b""
        return _round_f32_to_pcm16(self._outputs(end)[:count])

    def flush(self) -> bytes:
        """The outputs still held back, as PCM16 (input after the end counts as zero),
        and a fresh stream."""
        import numpy as np

        end = -(-self._n_in // self._f)
        count = end - self._n_out
        if count <= 0:
            self.reset()
            return b""
        self._append(np.zeros(self._half, np.float32))
        y = self._outputs(end)[:count]
        self.reset()
        return _round_f32_to_pcm16(y)


class _DecimateBatch:
    """Several phone calls' model audio through :class:`_Decimator` s with one BLAS
    product: each job's codes are those of its decimator's ``process_g711`` (the same
    rows of input, the same matrix, the same rounding and lookup), while numpy's call
    overheads and BLAS's set-up are paid once per batch rather than once per chunk (at
    hundreds of calls most of a chunk's cost). Sans-I/O: the caller gathers the chunks
    (a phone bridge: those that arrive in one event-loop iteration). The workspace (the
    product's input rows and outputs) is this object's: one per thread at most."""

    __slots__ = ("_a", "_ints", "_y")

    def __init__(self) -> None:
        self._a: Any = None  # rows of input, (rows, span) float32, grown as needed
        self._y: Any = None  # the product, (rows, _DECIMATE_BLOCK) float32
        self._ints: Any = None  # the product's bits as int32 (the lookup's index)

    def process_g711(
        self, jobs: Sequence[tuple[_Decimator, bytes]], law: Literal["ulaw", "alaw"] = "ulaw"
    ) -> list[bytes]:
        """Each job's ``decimator.process_g711(chunk, law)``, in order. A decimator
        appears at most once; ``chunk`` is whole PCM16 samples (bytes). Decimators of
        different factors go in separate products.

        Raises:
            AudioFormatError: A chunk is not whole PCM16 samples (nothing of the batch
                is consumed then).
            ConfigError: ``law`` is not ``"ulaw"`` or ``"alaw"``.
        """
        table = _WIDE_TABLES.get(law)
        if table is None:
            table = _wide_table(law)
        for _, chunk in jobs:
            if type(chunk) is not bytes or len(chunk) & 1:
                as_pcm16(chunk)  # its typed error (or a bytes-like it accepts)
                raise AudioFormatError("a batch's chunks must be bytes of whole PCM16 samples")
        out: list[bytes] = [b""] * len(jobs)
        if not jobs:
            return out
        np, i16, _, _, _ = _DECIMATE_NP or _decimate_np()
        # Per factor (the matrix): (job, rows of input, their number, outputs wanted).
        taken: dict[int, list[tuple[int, Any, int, int]]] = {}
        matrices: dict[int, Any] = {}
        for k, (dec, chunk) in enumerate(jobs):
            step = dec._take(np.frombuffer(chunk, i16))
            if step is not None:
                f = dec._f
                if f not in matrices:
                    matrices[f] = dec._matrix
                    taken[f] = []
                taken[f].append((k, *step))
        # Products that stay on one BLAS thread (a job with more rows: alone, in
        # slices); each decimator's view stays valid until its next append.
        for f, jobs_f in taken.items():
            matrix = matrices[f]
            most = _most_rows(matrix.shape[0])
            group: list[tuple[int, Any, int, int]] = []
            total = 0
            for job in jobs_f:
                rows = job[2]
                if group and total + rows > most:
                    self._product(group, total, matrix, table, out)
                    group = []
                    total = 0
                group.append(job)
                total += rows
            if group:
                self._product(group, total, matrix, table, out)
        return out

    def _product(
        self,
        group: list[tuple[int, Any, int, int]],
        total: int,
        matrix: Any,
        table: Any,
        out: list[bytes],
    ) -> None:
        """One product for ``group``'s jobs (``total`` rows), their codes into ``out``."""
        np, _, _, round_f32, mask = _DECIMATE_NP or _decimate_np()
        span = matrix.shape[0]
        a = self._a
        if a is None or len(a) < total or a.shape[1] != span:
            size = max(total, _most_rows(span))
            a = self._a = np.empty((size, span), np.float32)
            self._y = np.empty((size, _DECIMATE_BLOCK), np.float32)
            self._ints = self._y.reshape(-1).view(np.int32)
        # Each job's rows of input into one matrix (what np.dot copies for one chunk).
        r = 0
        for _, windows, rows, _ in group:
            a[r : r + rows] = windows
            r += rows
        y = _dot_rows(a[:total], matrix, _most_rows(span), self._y[:total])
        y += round_f32
        index = self._ints[: total * _DECIMATE_BLOCK]
        np.bitwise_and(index, mask, out=index)
        codes: bytes = table.take(index).tobytes()
        r = 0
        for k, _, rows, count in group:
            at = r * _DECIMATE_BLOCK
            out[k] = codes[at : at + count]
            r += rows


def _round_f32_to_pcm16(y: Any) -> bytes:
    """float32 samples rounded half to even and clipped to PCM16 (the samples whose
    codes :meth:`_Decimator.process_g711` looks up)."""
    import numpy as np

    np.rint(y, out=y)
    np.minimum(y, 32767.0, out=y)
    np.maximum(y, -32768.0, out=y)
    out: bytes = y.astype("<i2").tobytes()
    return out


# --------------------------------------------------------------------------------------
# WAV files
# --------------------------------------------------------------------------------------

_WavSource = str | os.PathLike[str] | IO[bytes]


@dataclass(frozen=True, slots=True)
class WavAudio:
    """Decoded WAV contents: interleaved little-endian PCM16 plus its format."""

    pcm: bytes
    rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / (2 * self.rate * self.channels) if self.rate else 0.0

    def __repr__(self) -> str:
        return (
            f"WavAudio({self.duration:.3f} s, {self.rate} Hz, {self.channels} channel(s),"
            f" {len(self.pcm)} bytes)"
        )


def _byteswap(data: bytes, width: int) -> bytes:
    out = bytearray(len(data))
    for i in range(width):
        out[i::width] = data[width - 1 - i :: width]
    return bytes(out)


_SIGN_FLIP: Final = bytes(b ^ 0x80 for b in range(256))


def _widen_to_pcm16(frames: bytes, width: int) -> bytes:
    """Convert little-endian integer PCM of ``width`` bytes per sample to PCM16 (truncating)."""
    if width == 2:
        return frames
    n = len(frames) // width
    out = bytearray(2 * n)
    if width == 1:  # unsigned 8-bit: flip the sign bit, use it as the high byte
        out[1::2] = frames.translate(_SIGN_FLIP)
    elif width in (3, 4):  # keep the two most significant bytes
        out[0::2] = frames[width - 2 :: width]
        out[1::2] = frames[width - 1 :: width]
    else:
        raise AudioFormatError(f"unsupported WAV sample width: {width * 8} bits")
    return bytes(out)


def _wav_target(path_or_file: _WavSource) -> str | IO[bytes]:
    if isinstance(path_or_file, os.PathLike):
        return os.fspath(path_or_file)
    return path_or_file


_WAVE_FORMAT_PCM: Final = 0x0001
_WAVE_FORMAT_IEEE_FLOAT: Final = 0x0003
_WAVE_FORMAT_ALAW: Final = 0x0006
_WAVE_FORMAT_MULAW: Final = 0x0007
_WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE
_WAV_FORMAT_NAMES: Final = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
    0x00FF: "AAC",
    0xF1AC: "FLAC",
}
_WAV_SUPPORTED: Final = "PCM 8/16/24/32-bit, float 32/64-bit, μ-law or A-law"


def _wav_error(reason: str) -> AudioFormatError:
    return AudioFormatError(f"cannot read WAV: {reason}")


def _read_all(path_or_file: _WavSource) -> bytes:
    target = _wav_target(path_or_file)
    if isinstance(target, str):
        with open(target, "rb") as fh:
            return fh.read()
    data = target.read()
    if not isinstance(data, bytes | bytearray):
        raise _wav_error("the file object must be opened in binary mode")
    return bytes(data)


@dataclass(frozen=True, slots=True)
class _WavFormat:
    tag: int
    channels: int
    rate: int
    bits: int
    block_align: int


def _parse_fmt(body: bytes) -> _WavFormat:
    if len(body) < 16:
        raise _wav_error(f"the 'fmt ' chunk is too short ({len(body)} bytes)")
    tag = int.from_bytes(body[0:2], "little")
    channels = int.from_bytes(body[2:4], "little")
    rate = int.from_bytes(body[4:8], "little")
    block_align = int.from_bytes(body[12:14], "little")
    bits = int.from_bytes(body[14:16], "little")
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        # WAVEFORMATEXTENSIBLE: cbSize (2), valid bits (2), channel mask (4), then the
        # sub-format GUID whose first two bytes are the real format tag.
        if len(body) < 40:
            raise _wav_error("WAVE_FORMAT_EXTENSIBLE header is too short")
        tag = int.from_bytes(body[24:26], "little")
    return _WavFormat(tag, channels, rate, bits, block_align)


def _check_format(fmt: _WavFormat) -> int:
    """Validate the format; returns the bytes per sample."""
    if fmt.tag not in (
        _WAVE_FORMAT_PCM,
        _WAVE_FORMAT_IEEE_FLOAT,
        _WAVE_FORMAT_ALAW,
        _WAVE_FORMAT_MULAW,
    ):
        name = _WAV_FORMAT_NAMES.get(fmt.tag, "an unknown encoding")
        raise _wav_error(
            f"{name} (format tag 0x{fmt.tag:04x}) is not supported; convert it to {_WAV_SUPPORTED}"
        )
    if fmt.channels < 1:
        raise _wav_error("the header says 0 channels")
    if fmt.rate < 1:
        raise _wav_error("the header says a sample rate of 0 Hz")
    width = {8: 1, 16: 2, 24: 3, 32: 4, 64: 8}.get(fmt.bits)
    allowed = {
        _WAVE_FORMAT_PCM: (1, 2, 3, 4),
        _WAVE_FORMAT_IEEE_FLOAT: (4, 8),
        _WAVE_FORMAT_ALAW: (1,),
        _WAVE_FORMAT_MULAW: (1,),
    }[fmt.tag]
    if width is None or width not in allowed:
        kind = {
            _WAVE_FORMAT_PCM: "integer PCM",
            _WAVE_FORMAT_IEEE_FLOAT: "float",
            _WAVE_FORMAT_ALAW: "A-law",
            _WAVE_FORMAT_MULAW: "μ-law",
        }[fmt.tag]
        raise _wav_error(f"{fmt.bits}-bit {kind} is not supported; use {_WAV_SUPPORTED}")
    # Some writers put a larger container size in block_align; trust it when it fits.
    return max(width, fmt.block_align // fmt.channels) if fmt.block_align else width


def _float_to_pcm16(frames: bytes, width: int) -> bytes:
    code = "f" if width == 4 else "d"
    if _has_numpy():
        import numpy as np

        x = np.frombuffer(frames, dtype=f"<f{width}").astype(np.float64)
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        return np.rint(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    values = array(code)
    values.frombytes(frames)
    if _BIG_ENDIAN:
        values.byteswap()
    out = array(
        "h",
        (
            0 if v != v else round(min(1.0, max(-1.0, v)) * 32767)  # NaN -> 0
            for v in values
        ),
    )
    return _from_samples(out)


def _to_pcm16(frames: bytes, fmt: _WavFormat, width: int) -> bytes:
    if fmt.tag == _WAVE_FORMAT_MULAW:
        return ulaw_to_pcm16(frames)
    if fmt.tag == _WAVE_FORMAT_ALAW:
        return alaw_to_pcm16(frames)
    if fmt.tag == _WAVE_FORMAT_IEEE_FLOAT:
        if width != fmt.bits // 8:
            frames = b"".join(frames[i : i + fmt.bits // 8] for i in range(0, len(frames), width))
        return _float_to_pcm16(frames, fmt.bits // 8)
    return _widen_to_pcm16(frames, width)


def read_wav(path_or_file: _WavSource) -> WavAudio:
    """Read a WAV file as interleaved little-endian PCM16, whatever its encoding.

    Reads integer PCM (8-bit unsigned, 16, 24 and 32-bit), IEEE float (32 and 64-bit,
    clipped to ±1.0), G.711 μ-law and A-law, plain or ``WAVE_FORMAT_EXTENSIBLE``, with any
    number of channels (kept interleaved; :func:`to_mono` downmixes). Samples wider than
    16 bits are truncated to their top 16 bits. A data chunk longer than the file (a
    recording that was cut off) is read up to the last whole frame.

    Args:
        path_or_file: A path or a binary file object (read to its end, left open).

    Raises:
        AudioFormatError: Empty, not a RIFF/WAVE file, or an encoding not listed above;
            the message says which.
        OSError: The file cannot be opened or read.
    """
    raw = _read_all(path_or_file)
    if not raw:
        raise _wav_error("the file is empty (0 bytes)")
    if len(raw) < 12 or raw[0:4] not in (b"RIFF", b"RF64") or raw[8:12] != b"WAVE":
        head = raw[:4].decode("latin-1")
        raise _wav_error(f"not a RIFF/WAVE file (it starts with {head!r}, {len(raw)} bytes)")
    fmt: _WavFormat | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        size = int.from_bytes(raw[pos + 4 : pos + 8], "little")
        body = raw[pos + 8 : pos + 8 + size]  # shorter when the file was cut off
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(body)
        elif chunk_id == b"data":
            if fmt is None:
                raise _wav_error("the 'data' chunk comes before the 'fmt ' chunk")
            data = body
            break
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    if fmt is None:
        raise _wav_error("no 'fmt ' chunk (the header is incomplete)")
    width = _check_format(fmt)
    if data is None:
        raise _wav_error("no 'data' chunk (the file holds a header but no audio)")
    frame = width * fmt.channels
    data = data[: len(data) - len(data) % frame]
    return WavAudio(_to_pcm16(data, fmt, width), fmt.rate, fmt.channels)


def write_wav(path_or_file: _WavSource, pcm: object, rate: int, channels: int = 1) -> None:
    """Write little-endian PCM16 to a WAV file.

    Args:
        path_or_file: A path or a writable binary file object (left open).
        pcm: Anything :func:`as_pcm16` accepts; interleaved when ``channels`` > 1.
        rate: Sample rate.
        channels: Channel count.

    Raises:
        AudioFormatError: Bad audio, rate, or a partial frame.
    """
    import wave

    raw = bytes(as_pcm16(pcm))
    rate = _positive_rate(rate)
    channels = _as_int(channels, "channel count")
    if channels < 1 or len(raw) % (2 * channels):
        raise AudioFormatError(f"{len(raw)} bytes is not whole {channels}-channel PCM16 frames")
    if _BIG_ENDIAN:  # wave swaps native samples to LE on big-endian hosts
        raw = _byteswap(raw, 2)
    target = _wav_target(path_or_file)
    if isinstance(target, str):
        # Open the file ourselves: when wave.open() fails to open a path, Python 3.11's
        # Wave_write.__del__ prints a spurious AttributeError after the real OSError.
        with open(target, "wb") as fh:
            _write_wav_frames(wave, fh, raw, rate, channels)
    else:
        _write_wav_frames(wave, target, raw, rate, channels)


def _write_wav_frames(wave: Any, fh: IO[bytes], raw: bytes, rate: int, channels: int) -> None:
    with wave.open(fh, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(raw)


def load_wav_for_live(
    path: _WavSource, rate: int = INPUT_RATE, *, backend: ResampleBackend = "auto"
) -> bytes:
    """Read a WAV file and return it as mono PCM16 at ``rate`` (16 kHz by default).

    Raises:
        AudioFormatError: Unreadable WAV or a rate the Live API does not accept.
    """
    rate = check_rate(rate)
    wav = read_wav(path)
    mono = to_mono(wav.pcm, wav.channels)
    return resample(mono, wav.rate, rate, backend=backend)


# --------------------------------------------------------------------------------------
# G.711 (mu-law / A-law), ITU-T G.711; tables are built on first use
# --------------------------------------------------------------------------------------


def _ulaw_decode_value(code: int) -> int:
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return -magnitude if code & 0x80 else magnitude


def _alaw_decode_value(code: int) -> int:
    code ^= 0x55
    exponent = (code >> 4) & 0x07
    magnitude = ((code & 0x0F) << 4) + 8
    if exponent:
        magnitude = (magnitude + 0x100) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


def _split_table(values: list[int]) -> tuple[bytes, bytes]:
    return bytes(v & 0xFF for v in values), bytes((v >> 8) & 0xFF for v in values)


@functools.cache
def _ulaw_decode_tables() -> tuple[bytes, bytes]:
    return _split_table([_ulaw_decode_value(c) for c in range(256)])


@functools.cache
def _alaw_decode_tables() -> tuple[bytes, bytes]:
    return _split_table([_alaw_decode_value(c) for c in range(256)])


@functools.cache
def _ulaw_encode_table() -> bytes:
    """Code for every 16-bit sample, indexed by the sample read as unsigned."""
    # Segment/step code for each magnitude 0..32768 (bias 0x84, clip at 32635).
    raw = bytearray(32769)
    for m in range(32769):
        v = (m if m < 32635 else 32635) + 0x84
        e = (v >> 7).bit_length() - 1
        raw[m] = (e << 4) | ((v >> (e + 3)) & 0x0F)
    positive = bytes(raw[:32768]).translate(bytes(~c & 0xFF for c in range(256)))
    negative = bytes(raw[32768:0:-1]).translate(bytes(~(c | 0x80) & 0xFF for c in range(256)))
    return positive + negative


@functools.cache
def _alaw_encode_table() -> bytes:
    """Code for every 16-bit sample, indexed by the sample read as unsigned."""
    # A-law only looks at the top 13 bits, so build those and repeat each 8 times.
    top = bytearray(8192)
    for u in range(8192):
        v = u - 8192 if u >= 4096 else u
        if v >= 0:
            mask = 0xD5
        else:
            mask = 0x55
            v = -v - 1
        seg = max(v.bit_length() - 5, 0)
        top[u] = ((seg << 4) | ((v >> max(seg, 1)) & 0x0F)) ^ mask
    table = bytearray(65536)
    for r in range(8):
        table[r::8] = top
    return bytes(table)


@functools.cache
def _np_table(table: bytes) -> Any:
    import numpy as np

    return np.frombuffer(table, dtype=np.uint8)


def _g711_encode(pcm: object, table: bytes) -> bytes:
    raw = as_pcm16(pcm)
    if len(raw) >= 64 and "numpy" in sys.modules:
        # One table lookup for the whole chunk instead of one Python call per sample.
        import numpy as np

        return bytes(_np_table(table)[np.frombuffer(raw, dtype="<u2")].data)
    samples = array("H")
    samples.frombytes(raw)
    if _BIG_ENDIAN:
        samples.byteswap()
    return bytes(map(table.__getitem__, samples))


# The decode tables once built (a phone bridge decodes every 20 ms frame of every call).
_ULAW_DECODE: tuple[bytes, bytes] | None = None
_ALAW_DECODE: tuple[bytes, bytes] | None = None


def ulaw_to_pcm16(data: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 mu-law (one byte per sample) to PCM16."""
    global _ULAW_DECODE
    tables = _ULAW_DECODE
    if tables is None:
        tables = _ULAW_DECODE = _ulaw_decode_tables()
    # Written out in each decoder (one Python call per 20 ms frame of a phone call). A
    # bytearray's translate gives a bytearray, which the stepped slice assignment takes
    # as it is (it copies anything else first): one copy of ``data`` (none for a
    # bytearray) instead of two of each half, ~30 % of a 20 ms frame's decode.
    src = data if type(data) is bytearray else bytearray(data)
    out = bytearray(2 * len(src))
    out[0::2] = src.translate(tables[0])
    out[1::2] = src.translate(tables[1])
    return bytes(out)


def alaw_to_pcm16(data: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 A-law (one byte per sample) to PCM16."""
    global _ALAW_DECODE
    tables = _ALAW_DECODE
    if tables is None:
        tables = _ALAW_DECODE = _alaw_decode_tables()
    # As ulaw_to_pcm16, with the A-law tables.
    src = data if type(data) is bytearray else bytearray(data)
    out = bytearray(2 * len(src))
    out[0::2] = src.translate(tables[0])
    out[1::2] = src.translate(tables[1])
    return bytes(out)


def pcm16_to_ulaw(pcm: object) -> bytes:
    """Encode PCM16 as G.711 mu-law (the table is built on the first call)."""
    return _g711_encode(pcm, _ulaw_encode_table())


def pcm16_to_alaw(pcm: object) -> bytes:
    """Encode PCM16 as G.711 A-law (the table is built on the first call)."""
    return _g711_encode(pcm, _alaw_encode_table())


# --------------------------------------------------------------------------------------
# Playback
# --------------------------------------------------------------------------------------


class PlaybackBuffer:
    """A bounded, paced queue for model audio on its way to a speaker.

    No asyncio and no threads: time comes from ``clock``, so tests can drive it.

    * :meth:`push` queues audio. Over ``max_seconds`` the *oldest* audio is dropped
      (counted in :attr:`dropped_bytes`) so the newest speech survives.
    * :meth:`read_frame` hands out one ``frame_ms`` frame when it is due. Frame *n* of a
      run is due at ``start + n * frame_ms``; a run starts when audio arrives while the
      buffer is empty (never before the slot after the previous run's last frame) and
      ends when the buffer drains. The final frame of a reply is zero-padded.
    * :meth:`pop` serves pull-style sound-card callbacks instead (the card is the clock).
    * :meth:`flush` is for barge-in: call it as soon as a server frame says
      ``interrupted``, before queueing any audio from that same frame. It empties the
      queue and starts a new :attr:`generation`; chunks pushed later with an older
      generation id are dropped and counted.
    * :meth:`mark_reply` marks where the next reply starts in the stream (call it when an
      interaction ends, e.g. ``TurnComplete.interaction_done``), so
      :attr:`heard_before_flush` and :attr:`reply_played_seconds` count only the reply
      being played, not earlier ones that were heard in full.

    Not thread-safe; guard it with a lock if a sound-card thread calls :meth:`pop`.
    """

    __slots__ = (
        "_buf",
        "_clock",
        "_dropped",
        "_frame_s",
        "_frames",
        "_generation",
        "_heard_at_flush",
        "_max_bytes",
        "_played",
        "_played_total",
        "_reply_start",
        "_running",
        "_start",
        "frame_bytes",
        "frame_ms",
        "rate",
    )

    def __init__(
        self,
        rate: int = OUTPUT_RATE,
        *,
        max_seconds: float = 30.0,
        frame_ms: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = _positive_rate(rate)
        self.frame_ms = _as_int(frame_ms, "frame_ms")
        self.frame_bytes = self.rate * self.frame_ms // 1000 * 2
        if self.frame_bytes <= 0:
            raise ConfigError(f"frame_ms={frame_ms} holds no samples at {self.rate} Hz")
        if not max_seconds > 0:
            raise ConfigError(f"max_seconds must be positive, got {max_seconds}")
        self._max_bytes = max(int(max_seconds * self.rate) * 2, self.frame_bytes)
        self._frame_s = self.frame_ms / 1000.0
        self._clock = clock
        self._buf = bytearray()
        self._generation = 0
        self._dropped = 0
        self._played = 0
        self._played_total = 0
        # Where the current reply starts, in bytes of the played stream (compared with
        # _played_total; beyond it while the reply's audio is still queued).
        self._reply_start = 0
        self._heard_at_flush: float | None = None
        self._running = False
        self._start = -math.inf
        self._frames = 0

    def __repr__(self) -> str:
        return (
            f"PlaybackBuffer(rate={self.rate}, queued={self.queued_seconds:.3f}s, "
            f"generation={self._generation})"
        )

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def generation(self) -> int:
        """Current generation id; :meth:`flush` increments it."""
        return self._generation

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting to be played."""
        return len(self._buf)

    @property
    def queued_seconds(self) -> float:
        """Seconds of audio waiting to be played."""
        return len(self._buf) / (2 * self.rate)

    @property
    def dropped_bytes(self) -> int:
        """Bytes discarded so far: overflow, flushes and stale generations."""
        return self._dropped

    @property
    def played_seconds(self) -> float:
        """Seconds of real audio handed out since the last flush (padding excluded).

        Read it *before* :meth:`flush` to learn how much of an interrupted reply was heard.
        """
        return self._played / (2 * self.rate)

    @property
    def total_played_seconds(self) -> float:
        """Seconds of real audio handed out over the buffer's lifetime."""
        return self._played_total / (2 * self.rate)

    @property
    def reply_played_seconds(self) -> float:
        """Seconds of the current reply handed out so far: audio played since the later of
        the last :meth:`flush` and the point :meth:`mark_reply` marked (0 while earlier
        replies queued before the mark are still playing)."""
        return max(0, self._played_total - self._reply_start) / (2 * self.rate)

    @property
    def heard_before_flush(self) -> float | None:
        """How much of the interrupted reply was heard before the last :meth:`flush` (the
        barge-in): :attr:`reply_played_seconds` just before it (``None`` until the first
        flush).

        Without :meth:`mark_reply` a "reply" is everything since the previous flush, so
        earlier replies that were not interrupted count too; call :meth:`mark_reply` at
        the end of each interaction to count only the interrupted one. Audio handed to
        the sound card but still in its own buffer counts as heard; add the device
        latency if it matters.
        """
        return self._heard_at_flush

    def mark_reply(self) -> None:
        """Audio pushed from now on belongs to a new reply.

        The mark is a position in the stream, not a moment: audio of the previous reply
        that is still queued plays out and is not counted for the new one. Call it when
        the model's interaction ends (``TurnComplete`` with ``interaction_done``, or
        ``InteractionTimeout``); marking twice before new audio arrives changes nothing.
        """
        self._reply_start = self._played_total + len(self._buf)

    def push(self, pcm: object, *, generation: int | None = None) -> None:
        """Queue PCM16 audio.

        Args:
            pcm: Anything :func:`as_pcm16` accepts.
            generation: The generation the audio belongs to; when given and not the
                current one the chunk is dropped (it belongs to an interrupted reply).

        Raises:
            AudioFormatError: See :func:`as_pcm16`.
        """
        raw = as_pcm16(pcm)
        n = len(raw) if not isinstance(raw, memoryview) else raw.nbytes
        if generation is not None and generation != self._generation:
            self._dropped += n
            return
        if not n:
            return
        if not self._buf and not self._running:
            now = self._clock()
            self._start = max(now, self._start + self._frames * self._frame_s)
            self._frames = 0
            self._running = True
        self._buf += raw
        excess = len(self._buf) - self._max_bytes
        if excess > 0:
            del self._buf[:excess]
            self._dropped += excess
            # Dropped audio never plays: a reply mark inside the queue moves up with it.
            if self._reply_start > self._played_total:
                self._reply_start = max(self._played_total, self._reply_start - excess)

    def flush(self) -> int:
        """Drop all queued audio and start a new generation.

        Returns:
            The number of bytes dropped.
        """
        dropped = len(self._buf)
        self._buf.clear()
        self._dropped += dropped
        self._generation += 1
        self._heard_at_flush = self.reply_played_seconds
        self._played = 0
        self._reply_start = self._played_total
        self._stop()
        return dropped

    def _stop(self) -> None:
        # Remember where the next slot would have been so a new run cannot start earlier.
        if self._running:
            self._start += self._frames * self._frame_s
            self._frames = 0
            self._running = False

    def _take(self, n: int) -> bytes:
        buf = self._buf
        if len(buf) >= n:
            out = bytes(buf[:n])
            del buf[:n]
            real = n
        else:
            real = len(buf)
            out = bytes(buf) + bytes(n - real)
            buf.clear()
        self._played += real
        self._played_total += real
        return out

    def read_frame(self) -> bytes | None:
        """Return the next frame if it is due, else ``None``.

        Call it in a loop (e.g. every few milliseconds) until it returns ``None``; after
        a stall, it returns the overdue frames one per call.
        """
        if not self._running:
            return None
        if self._clock() < self._start + self._frames * self._frame_s - 1e-9:
            return None
        frame = self._take(self.frame_bytes)
        self._frames += 1
        if not self._buf:
            self._stop()
        return frame

    def pop(self, n_bytes: int) -> bytes:
        """Take exactly ``n_bytes`` for a sound-card callback, padding with silence.

        Raises:
            ValueError: ``n_bytes`` is negative or odd.
        """
        if n_bytes < 0 or n_bytes & 1:
            raise ValueError(f"n_bytes must be a non-negative even number, got {n_bytes}")
        out = self._take(n_bytes)
        if not self._buf:
            self._running = False
            self._frames = 0
            self._start = -math.inf
        return out
