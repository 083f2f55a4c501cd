"""Wire facts about PCM audio: rates, MIME types, and normalising input to PCM16.

The Live API takes raw 16-bit signed little-endian mono PCM (``audio/pcm;rate=16000``, any
rate from 8 to 48 kHz) and answers at 24 kHz. These few definitions are what the wire layer
(codec, events, protocol) needs; :mod:`gemini_live.audio` re-exports them beside its
toolbox (resampling, WAV, G.711, playback).
"""

from __future__ import annotations

import functools
import operator
import sys
from array import array
from typing import TYPE_CHECKING, Final, SupportsIndex

from gemini_live.errors import AudioFormatError

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
    "as_pcm16",
    "check_rate",
    "duration_seconds",
    "parse_pcm_rate",
    "pcm_mime",
]

_BIG_ENDIAN: Final = sys.byteorder == "big"


def _odd(nbytes: int) -> AudioFormatError:
    return AudioFormatError(
        f"PCM16 audio must have an even number of bytes, got {nbytes} (a sample was cut in half)"
    )


INPUT_RATE: Final = 16000
"""Sample rate we send microphone audio at by default (Hz)."""
OUTPUT_RATE: Final = 24000
"""Sample rate of the model's audio (Hz)."""
MIN_RATE: Final = 8000
"""Lowest input rate the Live API accepts (Hz)."""
MAX_RATE: Final = 48000
"""Highest input rate the Live API accepts (Hz)."""
#: MIME type of the microphone audio the client sends (16 kHz mono PCM16).
INPUT_MIME: Final = f"audio/pcm;rate={INPUT_RATE}"
#: MIME type of the model's spoken answers (24 kHz mono PCM16).
OUTPUT_MIME: Final = f"audio/pcm;rate={OUTPUT_RATE}"


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
