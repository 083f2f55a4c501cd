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
import math
import operator
import os
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final, Literal, SupportsIndex

import pybase64

from gemini_live.errors import AudioFormatError, ConfigError

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

INPUT_RATE: Final = 16000
"""Sample rate we send microphone audio at by default (Hz)."""
OUTPUT_RATE: Final = 24000
"""Sample rate of the model's audio (Hz)."""
MIN_RATE: Final = 8000
"""Lowest input rate the Live API accepts (Hz)."""
MAX_RATE: Final = 48000
"""Highest input rate the Live API accepts (Hz)."""
INPUT_MIME: Final = "audio/pcm;rate=16000"
OUTPUT_MIME: Final = "audio/pcm;rate=24000"

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
ResampleBackend = Literal["auto", "soxr", "numpy", "python"]

_BIG_ENDIAN: Final = sys.byteorder == "big"
_b64encode: Final = pybase64.b64encode
_b64decode: Final = pybase64.b64decode
_AUDIO_EXTRA_HINT: Final = "install the audio extra: pip install 'gemini-live[audio]'"


def _odd(nbytes: int) -> AudioFormatError:
    return AudioFormatError(
        f"PCM16 audio must have an even number of bytes, got {nbytes} (a sample was cut in half)"
    )


# --------------------------------------------------------------------------------------
# Rates and MIME types
# --------------------------------------------------------------------------------------


def _as_int(value: object, what: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise AudioFormatError(f"{what} must be an integer, got {value!r}")
    return operator.index(value)


def check_rate(rate: int) -> int:
    """Validate a Live API input sample rate.

    Args:
        rate: Samples per second.

    Returns:
        The rate as a plain ``int``.

    Raises:
        AudioFormatError: Not an integer, or outside 8000–48000 Hz.
    """
    rate = _as_int(rate, "sample rate")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError(
            f"sample rate {rate} Hz is outside the {MIN_RATE}–{MAX_RATE} Hz the Live API accepts"
        )
    return rate


def _positive_rate(rate: int, what: str = "sample rate") -> int:
    rate = _as_int(rate, what)
    if rate <= 0:
        raise AudioFormatError(f"{what} must be positive, got {rate}")
    return rate


def pcm_mime(rate: int) -> str:
    """Return the MIME type that declares PCM16 at ``rate``, e.g. ``audio/pcm;rate=16000``.

    Raises:
        AudioFormatError: The rate is not one the Live API accepts.
    """
    return f"audio/pcm;rate={check_rate(rate)}"


_MAX_DECLARED_RATE: Final = 1_000_000


@functools.lru_cache(maxsize=64)
def _parse_rate(mime: str, default: int) -> int:
    for param in mime.split(";")[1:]:
        key, sep, value = param.partition("=")
        if sep and key.strip().lower() == "rate":
            value = value.strip().strip('"').strip()
            # Length check first: int() of a huge digit string is slow or raises.
            if len(value) <= 7 and value.isascii() and value.isdigit():
                rate = int(value)
                if 0 < rate <= _MAX_DECLARED_RATE:
                    return rate
            return default
    return default


def parse_pcm_rate(mime: str, default: int = OUTPUT_RATE) -> int:
    """Read the sample rate out of a PCM MIME type.

    Spaces, letter case and quotes are tolerated (``audio/L16; Rate="16000"``). It never
    raises: a missing, malformed, zero or absurd (> 1 MHz) rate gives ``default``. The
    Live API input range is *not* enforced, since this reads what the service sends.

    Args:
        mime: A MIME type such as ``audio/pcm;rate=24000``.
        default: Returned when there is no usable ``rate`` parameter.

    Returns:
        The declared rate, or ``default``.
    """
    if mime == OUTPUT_MIME:
        return OUTPUT_RATE
    return _parse_rate(mime, default)


def duration_seconds(nbytes: int, rate: int) -> float:
    """Seconds of mono PCM16 audio in ``nbytes`` bytes at ``rate`` Hz."""
    return _as_int(nbytes, "byte count") / (2 * _positive_rate(rate))


# --------------------------------------------------------------------------------------
# Input normalisation
# --------------------------------------------------------------------------------------

_BYTE_FORMATS: Final = frozenset(("B", "b", "c", "@B", "@b", "@c", "<B", "=B", ">B"))


def _from_memoryview(mv: memoryview) -> memoryview:
    if mv.format not in _BYTE_FORMATS:
        raise AudioFormatError(
            f"memoryview format {mv.format!r} is not bytes; pass raw little-endian PCM16 "
            "bytes (e.g. view.cast('B')) or an array('h')"
        )
    if not mv.c_contiguous:
        raise AudioFormatError("memoryview must be C-contiguous; copy it with bytes(view)")
    if mv.nbytes & 1:
        raise _odd(mv.nbytes)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    return mv


def _from_numpy(arr: npt.NDArray[np.generic]) -> memoryview:
    import numpy as np

    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise AudioFormatError(
                f"audio array has shape {arr.shape}: the Live API takes mono; downmix "
                "first (e.g. arr.mean(axis=1) or gemini_live.audio.to_mono)"
            )
        arr = arr.reshape(-1)
    elif arr.ndim != 1:
        raise AudioFormatError(
            f"audio array must be 1-D or (n, 1), got {arr.ndim}-D shape {arr.shape}"
        )
    kind = arr.dtype.kind
    if kind == "i" and arr.dtype.itemsize == 2:
        out = arr.astype("<i2", copy=False)
    elif kind == "f":
        if arr.dtype.itemsize < 4:
            arr = arr.astype(np.float32)
        if np.isnan(arr).any():
            raise AudioFormatError("float audio contains NaN")
        scaled = np.rint(np.clip(arr, -1.0, 1.0) * 32768.0)
        out = np.minimum(scaled, 32767.0).astype("<i2")
    else:
        raise AudioFormatError(
            f"numpy dtype {arr.dtype} is not supported: pass int16 PCM or float32/float64 "
            "samples in [-1.0, 1.0]"
        )
    return np.ascontiguousarray(out).view(np.uint8).data


def as_pcm16(data: object) -> bytes | bytearray | memoryview:
    """Check audio and return it as little-endian PCM16 bytes, copying only when needed.

    Accepted inputs:

    * ``bytes``, ``bytearray``: returned unchanged (taken to be little-endian PCM16).
    * ``memoryview`` (and other buffer objects) with a byte format, C-contiguous:
      returned as a 1-D byte ``memoryview``.
    * ``array('h')``: a zero-copy byte view (copied and byte-swapped on big-endian hosts).
    * numpy ``int16`` arrays, 1-D or ``(n, 1)``, any byte order.
    * numpy float arrays in ``[-1.0, 1.0]``: clipped, scaled by 32768 and rounded.

    Args:
        data: The audio.

    Returns:
        The input itself (``bytes``/``bytearray``), a byte ``memoryview`` or new
        ``bytes``, holding little-endian PCM16.

    Raises:
        AudioFormatError: Odd byte count, a non-byte memoryview, an unsupported array
            type or dtype (``int32``, ``uint8``, ``array('i')``, ...), multi-channel
            arrays, NaN samples, or an object that is not audio at all.
    """
    if isinstance(data, (bytes, bytearray)):
        if len(data) & 1:
            raise _odd(len(data))
        return data
    if isinstance(data, memoryview):
        return _from_memoryview(data)
    if isinstance(data, array):
        if data.typecode != "h":
            raise AudioFormatError(
                f"array typecode {data.typecode!r} is not supported: use array('h') (int16)"
            )
        if _BIG_ENDIAN:
            swapped = array("h", data)
            swapped.byteswap()
            return swapped.tobytes()
        return memoryview(data).cast("B")
    np_mod = sys.modules.get("numpy")
    if np_mod is not None and isinstance(data, np_mod.ndarray):
        return _from_numpy(data)
    if isinstance(data, str):
        raise AudioFormatError("audio must be PCM16 bytes, not str (is it still base64?)")
    try:
        mv = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise AudioFormatError(
            f"cannot use {type(data).__name__} as audio: pass PCM16 bytes, array('h') or a numpy "
            "int16/float32 array"
        ) from None
    return _from_memoryview(mv)


class AudioEncoder:
    """Base64-encodes PCM16 chunks for ``realtimeInput.audio``; reuse one per stream.

    Attributes:
        rate: The declared sample rate.
        mime_type: ``audio/pcm;rate=<rate>``, ready to put in the message.
    """

    __slots__ = ("mime_type", "rate")

    def __init__(self, rate: int = INPUT_RATE) -> None:
        self.rate = check_rate(rate)
        self.mime_type = f"audio/pcm;rate={self.rate}"

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

    Raises:
        ValueError: The payload is not valid base64 (``binascii.Error`` is a subclass).
    """
    try:
        return _b64decode(b64, validate=True)
    except ValueError:
        pass
    return _decode_audio_lenient(b64)


def _decode_audio_lenient(b64: str | bytes) -> bytes:
    try:
        raw = b64.encode("ascii") if isinstance(b64, str) else bytes(b64)
    except (UnicodeEncodeError, TypeError):
        raise ValueError("audio payload is not valid base64") from None
    raw = b"".join(raw.split())  # line breaks / spaces
    altchars: bytes | None = None
    if b"-" in raw or b"_" in raw:
        altchars = b"-_"
    missing = -len(raw.rstrip(b"=")) % 4
    if missing == 3:
        raise ValueError("audio payload is not valid base64 (truncated)")
    raw = raw.rstrip(b"=") + b"=" * missing
    try:
        return _b64decode(raw, altchars=altchars, validate=True)
    except ValueError:
        raise ValueError("audio payload is not valid base64") from None


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


def _round_to_pcm16(y: npt.ArrayLike) -> bytes:
    import numpy as np

    return np.clip(np.rint(y), -32768.0, 32767.0).astype("<i2").tobytes()


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
        self._table: npt.NDArray[np.float64] | None = None
        if self._t <= _MAX_PHASE_TABLE:
            self._table = self._kernel(np.arange(self._t, dtype=np.float64) / self._t)
        self.reset()

    def reset(self) -> None:
        import numpy as np

        self._buf = np.zeros(self._half, dtype=np.float64)
        self._buf_start = -self._half  # input index of _buf[0]
        self._n_in = 0
        self._n_out = 0

    def _kernel(self, frac: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        import numpy as np

        x = frac[:, None] - self._offsets[None, :]  # distance from each tap, in inputs
        ratio = np.clip(1.0 - (x / self._half) ** 2, 0.0, None)
        window = np.i0(_KAISER_BETA * np.sqrt(ratio))
        w: npt.NDArray[np.float64] = np.sinc(self._cutoff * x) * window
        w /= w.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
        return w

    def _emit(self, end: int) -> bytes:
        import numpy as np

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
            return b""
        return _round_to_pcm16(parts[0] if len(parts) == 1 else np.concatenate(parts))

    def _trim(self) -> None:
        first = (self._n_out * self._f) // self._t - self._half + 1
        drop = min(max(first - self._buf_start, 0), len(self._buf))
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop

    def process(self, raw: bytes | bytearray | memoryview) -> bytes:
        import numpy as np

        x = np.frombuffer(raw, dtype="<i2")
        if not len(x):
            return b""
        self._buf = np.concatenate((self._buf, x.astype(np.float64)))
        self._n_in += len(x)
        ready = self._n_in - self._half  # outputs whose right-most tap has arrived
        end = max(self._n_out, -(-ready * self._t // self._f)) if ready > 0 else self._n_out
        out = self._emit(end)
        self._trim()
        return out

    def flush(self) -> bytes:
        import numpy as np

        self._buf = np.concatenate((self._buf, np.zeros(self._half, dtype=np.float64)))
        out = self._emit(-(-self._n_in * self._t // self._f))
        self.reset()
        return out


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

    def flush(self) -> bytes:
        """Return the audio still held back and start a fresh stream."""
        if self.from_rate == self.to_rate:
            return b""
        if self._stream is not None:
            return self._stream.flush()
        out = self._soxr_chunk(b"", True)
        self.reset()
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


def read_wav(path_or_file: _WavSource) -> WavAudio:
    """Read an integer PCM WAV file (8-bit unsigned, 16, 24 or 32-bit) as PCM16.

    Wider samples are truncated to their top 16 bits; channels stay interleaved.

    Args:
        path_or_file: A path or a binary file object (left open).

    Raises:
        AudioFormatError: Not a WAV file, or an unsupported encoding (e.g. float).
    """
    import wave

    try:
        with wave.open(_wav_target(path_or_file), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"cannot read WAV: {exc}") from None
    if _BIG_ENDIAN and width > 1:  # wave hands out native order there; we want LE
        frames = _byteswap(frames, width)
    frames = frames[: len(frames) - len(frames) % (width * channels)]
    return WavAudio(_widen_to_pcm16(frames, width), rate, channels)


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


def _g711_decode(data: bytes | bytearray | memoryview, tables: tuple[bytes, bytes]) -> bytes:
    src = data if type(data) is bytes else bytes(data)
    out = bytearray(2 * len(src))
    out[0::2] = src.translate(tables[0])
    out[1::2] = src.translate(tables[1])
    return bytes(out)


def _g711_encode(pcm: object, table: bytes) -> bytes:
    samples = array("H")
    samples.frombytes(as_pcm16(pcm))
    if _BIG_ENDIAN:
        samples.byteswap()
    return bytes(map(table.__getitem__, samples))


def ulaw_to_pcm16(data: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 mu-law (one byte per sample) to PCM16."""
    return _g711_decode(data, _ulaw_decode_tables())


def alaw_to_pcm16(data: bytes | bytearray | memoryview) -> bytes:
    """Decode G.711 A-law (one byte per sample) to PCM16."""
    return _g711_decode(data, _alaw_decode_tables())


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
    def heard_before_flush(self) -> float | None:
        """How much was heard before the last :meth:`flush` (the barge-in): the value of
        :attr:`played_seconds` just before it, i.e. the audio played since the flush
        before that (``None`` until the first flush).

        With one flush per interruption this is how much of the interrupted reply the
        user heard, plus any earlier uninterrupted replies since the previous flush (read
        :attr:`played_seconds` at ``turn_complete`` to separate them). Audio handed to
        the sound card but still in its own buffer counts as heard; add the device
        latency if it matters.
        """
        return self._heard_at_flush

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

    def flush(self) -> int:
        """Drop all queued audio and start a new generation.

        Returns:
            The number of bytes dropped.
        """
        dropped = len(self._buf)
        self._buf.clear()
        self._dropped += dropped
        self._generation += 1
        self._heard_at_flush = self.played_seconds
        self._played = 0
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
