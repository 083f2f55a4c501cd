"""Tests for gemini_live.audio: formats, base64, resampling, WAV, G.711 and playback."""

from __future__ import annotations

import base64
import io
import itertools
import pickle
import struct
import subprocess
import sys
import textwrap
import wave
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_live import audio
from gemini_live.audio import (
    INPUT_RATE,
    MAX_RATE,
    MIN_RATE,
    OUTPUT_RATE,
    AudioEncoder,
    PlaybackBuffer,
    Resampler,
    WavAudio,
    alaw_to_pcm16,
    as_pcm16,
    check_rate,
    chunk_pcm,
    decode_audio,
    duration_seconds,
    load_wav_for_live,
    parse_pcm_rate,
    pcm16_to_alaw,
    pcm16_to_float32,
    pcm16_to_ulaw,
    pcm_mime,
    read_wav,
    resample,
    to_mono,
    ulaw_to_pcm16,
    write_wav,
)
from gemini_live.errors import AudioFormatError, ConfigError

try:
    import soxr  # noqa: F401

    HAVE_SOXR = True
except ImportError:  # pragma: no cover - soxr is a test dependency
    HAVE_SOXR = False

BACKENDS = [
    pytest.param("soxr", marks=pytest.mark.skipif(not HAVE_SOXR, reason="soxr is not installed")),
    "numpy",
    "python",
]
STREAM_EXACT_BACKENDS = ["numpy", "python"]


def le16(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples_of(pcm: bytes | bytearray | memoryview) -> list[int]:
    return list(np.frombuffer(pcm, dtype="<i2").astype(int))


def sine(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> bytes:
    t = np.arange(round(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype("<i2").tobytes()


def peak_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x**2)))


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------
# Rates and MIME types
# ---------------------------------------------------------------------------------------


def test_constants() -> None:
    assert (INPUT_RATE, OUTPUT_RATE, MIN_RATE, MAX_RATE) == (16000, 24000, 8000, 48000)


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 24000, 44100, 48000])
def test_check_rate_accepts(rate: int) -> None:
    assert check_rate(rate) == rate


def test_check_rate_accepts_index_types() -> None:
    result = check_rate(np.int64(16000))  # type: ignore[arg-type]
    assert result == 16000
    assert type(result) is int


@pytest.mark.parametrize("rate", [0, -16000, 7999, 48001, 96000, True, 16000.0, "16000", None])
def test_check_rate_rejects(rate: Any) -> None:
    with pytest.raises(AudioFormatError):
        check_rate(rate)


def test_pcm_mime() -> None:
    assert pcm_mime(16000) == "audio/pcm;rate=16000"
    assert pcm_mime(8000) == "audio/pcm;rate=8000"
    with pytest.raises(AudioFormatError, match="8000"):
        pcm_mime(96000)


@pytest.mark.parametrize(
    ("mime", "expected"),
    [
        ("audio/pcm;rate=24000", 24000),
        ("audio/pcm;rate=16000", 16000),
        ("audio/L16; rate=16000", 16000),
        ("AUDIO/PCM; RATE = 22050 ", 22050),
        ('audio/pcm; rate="8000"', 8000),
        ("audio/pcm;channels=1;rate=44100", 44100),
        ("audio/pcm", 24000),
        ("audio/pcm;", 24000),
        ("", 24000),
        ("audio/pcm;rate=", 24000),
        ("audio/pcm;rate=abc", 24000),
        ("audio/pcm;rate=0", 24000),
        ("audio/pcm;rate=-5", 24000),
        ("audio/pcm;rate=²", 24000),
        ("audio/pcm;samplerate=16000", 24000),
        ("audio/pcm;rate=96000", 96000),
        ("audio/pcm;rate=1000001", 24000),
        ("audio/pcm;rate=" + "1" * 5000, 24000),
        ("audio/pcm;rate=0000016000", 24000),
    ],
)
def test_parse_pcm_rate(mime: str, expected: int) -> None:
    assert parse_pcm_rate(mime) == expected


def test_parse_pcm_rate_custom_default() -> None:
    assert parse_pcm_rate("audio/pcm", default=16000) == 16000
    assert parse_pcm_rate("audio/pcm;rate=24000", default=16000) == 24000


def test_duration_seconds() -> None:
    assert duration_seconds(32000, 16000) == 1.0
    assert duration_seconds(960, 24000) == pytest.approx(0.02)
    assert duration_seconds(0, 8000) == 0.0
    with pytest.raises(AudioFormatError):
        duration_seconds(100, 0)


# ---------------------------------------------------------------------------------------
# as_pcm16: every accepted input
# ---------------------------------------------------------------------------------------


def test_as_pcm16_bytes_passthrough() -> None:
    data = le16(1, -2, 3)
    assert as_pcm16(data) is data


def test_as_pcm16_bytearray_passthrough() -> None:
    data = bytearray(le16(1, -2))
    assert as_pcm16(data) is data


def test_as_pcm16_empty() -> None:
    assert as_pcm16(b"") == b""


def test_as_pcm16_memoryview_passthrough() -> None:
    mv = memoryview(le16(5, 6))
    assert as_pcm16(mv) is mv


@pytest.mark.parametrize("signed", [True, False])
def test_as_pcm16_memoryview_signed_or_char_bytes(signed: bool) -> None:
    data = le16(-7, 300)
    view = memoryview(data).cast("b") if signed else memoryview(data).cast("c")
    out = as_pcm16(view)
    assert isinstance(out, memoryview)
    assert out.format == "B"
    assert bytes(out) == data


def test_as_pcm16_memoryview_2d_contiguous() -> None:
    data = le16(1, 2, 3, 4)
    out = as_pcm16(memoryview(data).cast("B", (2, 4)))
    assert isinstance(out, memoryview)
    assert out.ndim == 1
    assert bytes(out) == data


def test_as_pcm16_memoryview_does_not_copy() -> None:
    buf = bytearray(le16(1, 2))
    out = as_pcm16(memoryview(buf))
    buf[0] = 9
    assert bytes(out)[0] == 9


def test_as_pcm16_other_buffer_objects() -> None:
    data = le16(1, -1)
    assert bytes(as_pcm16(pickle.PickleBuffer(data))) == data


def test_as_pcm16_array_h() -> None:
    arr = array("h", [0, 1, -1, 32767, -32768])
    out = as_pcm16(arr)
    assert bytes(out) == le16(0, 1, -1, 32767, -32768)
    if sys.byteorder == "little":
        assert isinstance(out, memoryview)  # zero-copy view


def test_as_pcm16_numpy_int16() -> None:
    arr = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert bytes(as_pcm16(arr)) == le16(0, 1, -1, 32767, -32768)


def test_as_pcm16_numpy_int16_is_zero_copy() -> None:
    arr = np.array([1, 2], dtype="<i2")
    out = as_pcm16(arr)
    arr[0] = 3
    assert bytes(out) == le16(3, 2)


def test_as_pcm16_numpy_column_vector() -> None:
    arr = np.array([[10], [20], [-30]], dtype=np.int16)
    assert bytes(as_pcm16(arr)) == le16(10, 20, -30)


def test_as_pcm16_numpy_big_endian() -> None:
    arr = np.array([1, -2, 258], dtype=">i2")
    assert bytes(as_pcm16(arr)) == le16(1, -2, 258)


def test_as_pcm16_numpy_non_contiguous() -> None:
    arr = np.arange(10, dtype=np.int16)[::2]
    assert bytes(as_pcm16(arr)) == le16(0, 2, 4, 6, 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_as_pcm16_numpy_float(dtype: type[np.floating[Any]]) -> None:
    arr = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, np.inf, -np.inf], dtype=dtype)
    assert samples_of(as_pcm16(arr)) == [
        0,
        16384,
        -16384,
        32767,
        -32768,
        32767,
        -32768,
        32767,
        -32768,
    ]


def test_as_pcm16_numpy_float_column_vector() -> None:
    arr = np.array([[0.25], [-0.25]], dtype=np.float32)
    assert samples_of(as_pcm16(arr)) == [8192, -8192]


def test_float_round_trip_is_exact_for_every_int16() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    floats = pcm16_to_float32(every.tobytes())
    assert floats.dtype == np.float32
    assert floats.min() == -1.0
    assert floats.max() < 1.0
    assert bytes(as_pcm16(floats)) == every.tobytes()


# ---------------------------------------------------------------------------------------
# as_pcm16: every rejected input
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"\x00", bytearray(b"\x00\x01\x02"), memoryview(b"abc")],
    ids=["bytes", "bytearray", "memoryview"],
)
def test_as_pcm16_rejects_odd_byte_count(data: object) -> None:
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        as_pcm16(data)


def test_as_pcm16_rejects_non_byte_memoryview() -> None:
    with pytest.raises(AudioFormatError, match="format 'h'"):
        as_pcm16(memoryview(array("h", [1, 2])))


def test_as_pcm16_rejects_non_contiguous_memoryview() -> None:
    with pytest.raises(AudioFormatError, match="contiguous"):
        as_pcm16(memoryview(bytes(8))[::2])


@pytest.mark.parametrize("typecode", ["i", "H", "b", "B", "f", "l"])
def test_as_pcm16_rejects_other_arrays(typecode: str) -> None:
    with pytest.raises(AudioFormatError, match="array\\('h'\\)"):
        as_pcm16(array(typecode, [1, 2]))


@pytest.mark.parametrize(
    "dtype", [np.int32, np.int64, np.uint8, np.int8, np.uint16, np.complex64, np.bool_]
)
def test_as_pcm16_rejects_numpy_dtypes(dtype: type[np.generic]) -> None:
    arr = np.zeros(4, dtype=dtype)
    with pytest.raises(AudioFormatError, match=f"dtype {np.dtype(dtype)}.*int16"):
        as_pcm16(arr)


@pytest.mark.parametrize("shape", [(10, 2), (4, 6), (1, 3)])
def test_as_pcm16_rejects_multichannel_numpy(shape: tuple[int, int]) -> None:
    with pytest.raises(AudioFormatError, match="downmix"):
        as_pcm16(np.zeros(shape, dtype=np.int16))


@pytest.mark.parametrize("shape", [(), (2, 2, 1)])
def test_as_pcm16_rejects_other_numpy_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(AudioFormatError, match="1-D"):
        as_pcm16(np.zeros(shape, dtype=np.int16))


def test_as_pcm16_rejects_nan() -> None:
    with pytest.raises(AudioFormatError, match="NaN"):
        as_pcm16(np.array([0.0, np.nan], dtype=np.float32))


@pytest.mark.parametrize("data", ["AAAA", 5, None, [1, 2], 1.0])
def test_as_pcm16_rejects_non_audio(data: object) -> None:
    with pytest.raises(AudioFormatError):
        as_pcm16(data)


def test_audio_format_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        as_pcm16(b"\x00")


# ---------------------------------------------------------------------------------------
# base64
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: array("h", samples_of(b)),
        lambda b: np.frombuffer(b, dtype="<i2").copy(),
    ],
    ids=["bytes", "bytearray", "memoryview", "array", "numpy"],
)
def test_encoder_matches_stdlib_base64(make: Any) -> None:
    pcm = bytes(range(256)) * 5  # 1280 bytes, exercises every base64 digit
    enc = AudioEncoder()
    out = enc.encode(make(pcm))
    assert type(out) is bytes
    assert out == base64.b64encode(pcm)


def test_encoder_attributes() -> None:
    enc = AudioEncoder()
    assert enc.rate == 16000
    assert enc.mime_type == "audio/pcm;rate=16000"
    enc8 = AudioEncoder(8000)
    assert enc8.mime_type == "audio/pcm;rate=8000"
    assert "8000" in repr(enc8)


def test_encoder_validates() -> None:
    with pytest.raises(AudioFormatError):
        AudioEncoder(7000)
    enc = AudioEncoder()
    with pytest.raises(AudioFormatError):
        enc.encode(b"\x00\x01\x02")
    with pytest.raises(AudioFormatError):
        enc.encode(np.zeros(4, dtype=np.int32))
    assert enc.encode(b"") == b""


def test_encoder_float_input() -> None:
    enc = AudioEncoder(24000)
    floats = np.array([0.5, -0.5], dtype=np.float32)
    assert enc.encode(floats) == base64.b64encode(le16(16384, -16384))


@pytest.mark.parametrize("as_str", [True, False])
def test_decode_audio_both_alphabets(as_str: bool) -> None:
    data = bytes([0xFB, 0xFF, 0xBF, 0x00, 0x10, 0x83]) * 3
    std = base64.b64encode(data)
    url = base64.urlsafe_b64encode(data)
    assert b"+" in std
    assert b"/" in std
    assert std != url
    for encoded in (std, url):
        arg: str | bytes = encoded.decode() if as_str else encoded
        assert decode_audio(arg) == data


def test_decode_audio_tolerates_missing_padding_and_whitespace() -> None:
    assert decode_audio("AAE") == b"\x00\x01"
    assert decode_audio("AA") == b"\x00"
    assert decode_audio("AAEC\nAAEC\r\n") == b"\x00\x01\x02" * 2
    assert decode_audio("") == b""


@pytest.mark.parametrize("garbage", ["@@@@", "A", "AAAAA", "é", "AA==AA==x", "not base64!"])
def test_decode_audio_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError):
        decode_audio(garbage)


@given(st.binary(max_size=300))
def test_decode_audio_round_trip(data: bytes) -> None:
    assert decode_audio(base64.b64encode(data).decode()) == data
    assert decode_audio(base64.urlsafe_b64encode(data)) == data


# ---------------------------------------------------------------------------------------
# pcm16_to_float32
# ---------------------------------------------------------------------------------------


def test_pcm16_to_float32_values() -> None:
    out = pcm16_to_float32(le16(0, 16384, -32768, 32767))
    assert out.dtype == np.float32
    assert list(out) == [0.0, 0.5, -1.0, pytest.approx(32767 / 32768)]


def test_pcm16_to_float32_rejects_odd() -> None:
    with pytest.raises(AudioFormatError):
        pcm16_to_float32(b"\x00")


def test_pcm16_to_float32_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(ImportError, match=r"gemini-live\[audio\]"):
        pcm16_to_float32(b"\x00\x00")


# ---------------------------------------------------------------------------------------
# chunk_pcm
# ---------------------------------------------------------------------------------------


def test_chunk_pcm_default_20ms_at_16k() -> None:
    pcm = bytes(range(256)) * 125  # 32000 bytes = 1 s at 16 kHz
    chunks = list(chunk_pcm(pcm))
    assert len(chunks) == 50
    assert {len(c) for c in chunks} == {640}
    assert b"".join(chunks) == pcm


def test_chunk_pcm_yields_last_partial_chunk() -> None:
    pcm = bytes(640 * 3 + 100)
    chunks = list(chunk_pcm(pcm))
    assert [len(c) for c in chunks] == [640, 640, 640, 100]


@pytest.mark.parametrize(
    ("rate", "ms", "size"), [(8000, 30, 480), (24000, 100, 4800), (11025, 20, 440)]
)
def test_chunk_pcm_sizes_on_sample_boundaries(rate: int, ms: int, size: int) -> None:
    pcm = bytes(size * 4 + 2)
    chunks = list(chunk_pcm(pcm, rate=rate, ms=ms))
    assert [len(c) for c in chunks] == [size] * 4 + [2]
    assert all(len(c) % 2 == 0 for c in chunks)


def test_chunk_pcm_accepts_numpy() -> None:
    arr = np.arange(640, dtype=np.int16)
    chunks = list(chunk_pcm(arr, rate=16000, ms=20))
    assert len(chunks) == 2
    assert all(type(c) is bytes for c in chunks)
    assert b"".join(chunks) == arr.tobytes()


def test_chunk_pcm_validates_eagerly() -> None:
    with pytest.raises(AudioFormatError):
        chunk_pcm(b"\x00")
    with pytest.raises(AudioFormatError):
        chunk_pcm(b"", rate=100)
    with pytest.raises(AudioFormatError):
        chunk_pcm(b"", ms=0)


# ---------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (44100, 16000), (16000, 24000)])
def test_resample_keeps_frequency_and_length(backend: Any, src: int, dst: int) -> None:
    out = resample(sine(440, src), src, dst, backend=backend)
    n_out = len(out) // 2
    assert n_out == pytest.approx(dst, rel=0.01)
    assert abs(peak_hz(out, dst) - 440) <= 2


@pytest.mark.parametrize("backend", ["soxr", "numpy"])
def test_resample_keeps_amplitude(backend: str) -> None:
    if backend == "soxr" and not HAVE_SOXR:
        pytest.skip("soxr is not installed")
    src = sine(440, 48000)
    out = resample(src, 48000, 16000, backend=backend)  # type: ignore[arg-type]
    assert rms(out) == pytest.approx(rms(src), rel=0.01)


@pytest.mark.parametrize("backend", ["soxr", "numpy"])
def test_resample_filters_aliases(backend: str) -> None:
    """A 10 kHz tone cannot exist at 16 kHz; the filter must remove it, not fold it to 6 kHz."""
    if backend == "soxr" and not HAVE_SOXR:
        pytest.skip("soxr is not installed")
    src = sine(10000, 48000)
    out = resample(src, 48000, 16000, backend=backend)  # type: ignore[arg-type]
    assert rms(out) < 0.01 * rms(src)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resample_edge_cases(backend: Any) -> None:
    assert resample(b"", 48000, 16000, backend=backend) == b""
    pcm = le16(1, 2, 3)
    assert resample(pcm, 16000, 16000, backend=backend) == pcm
    assert resample(bytearray(pcm), 16000, 16000, backend=backend) == pcm
    with pytest.raises(AudioFormatError):
        resample(b"\x00", 48000, 16000, backend=backend)
    with pytest.raises(AudioFormatError):
        resample(pcm, 0, 16000, backend=backend)


def test_resample_validates_options() -> None:
    with pytest.raises(ConfigError, match="quality"):
        resample(b"", 48000, 16000, quality="best")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="backend"):
        resample(b"", 48000, 16000, backend="scipy")  # type: ignore[arg-type]


def test_resample_falls_back_when_soxr_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    src = sine(440, 48000, 0.2)
    monkeypatch.setattr(audio, "_has_soxr", lambda: False)
    assert Resampler(48000, 16000).backend == "numpy"
    assert resample(src, 48000, 16000) == resample(src, 48000, 16000, backend="numpy")
    with pytest.raises(ImportError, match=r"gemini-live\[audio\]"):
        resample(src, 48000, 16000, backend="soxr")


def test_resample_falls_back_to_python_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    src = sine(440, 48000, 0.2)
    monkeypatch.setattr(audio, "_has_soxr", lambda: False)
    monkeypatch.setattr(audio, "_has_numpy", lambda: False)
    assert Resampler(48000, 16000).backend == "python"
    assert resample(src, 48000, 16000) == resample(src, 48000, 16000, backend="python")
    with pytest.raises(ImportError):
        Resampler(48000, 16000, backend="numpy")


@pytest.mark.skipif(not HAVE_SOXR, reason="soxr is not installed")
def test_auto_prefers_soxr() -> None:
    assert Resampler(48000, 16000).backend == "soxr"


def _stream(r: Resampler, pcm: bytes, chunk: int) -> bytes:
    parts = [r.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    return b"".join(parts) + r.flush()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (44100, 16000), (16000, 24000)])
def test_streaming_matches_one_shot_length(backend: Any, src: int, dst: int) -> None:
    pcm = sine(440, src)
    one_shot = resample(pcm, src, dst, backend=backend)
    chunk = src * 20 // 1000 * 2  # 20 ms
    streamed = _stream(Resampler(src, dst, backend=backend), pcm, chunk)
    assert abs(len(streamed) - len(one_shot)) <= 2 * 4
    assert abs(peak_hz(streamed, dst) - 440) <= 2


@pytest.mark.parametrize("backend", STREAM_EXACT_BACKENDS)
def test_streaming_is_identical_to_one_shot(backend: Any) -> None:
    """The fallbacks carry state across chunks, so boundaries leave no trace."""
    pcm = sine(440, 48000, 0.5) + sine(1000, 48000, 0.5)
    one_shot = resample(pcm, 48000, 16000, backend=backend)
    assert _stream(Resampler(48000, 16000, backend=backend), pcm, 1920) == one_shot


@pytest.mark.parametrize("backend", STREAM_EXACT_BACKENDS)
@settings(max_examples=40, deadline=None)
@given(
    n_samples=st.integers(0, 600),
    cuts=st.lists(st.integers(0, 600), max_size=8),
    rates=st.sampled_from([(48000, 16000), (16000, 24000), (44100, 16000), (8000, 48000)]),
)
def test_streaming_any_chunking(
    backend: Any, n_samples: int, cuts: list[int], rates: tuple[int, int]
) -> None:
    rng = np.random.default_rng(n_samples)
    pcm = rng.integers(-20000, 20000, n_samples, dtype=np.int16).astype("<i2").tobytes()
    bounds = sorted({0, n_samples, *(c for c in cuts if c < n_samples)})
    r = Resampler(*rates, backend=backend)
    streamed = b"".join(r.process(pcm[2 * a : 2 * b]) for a, b in itertools.pairwise(bounds)) + (
        r.flush()
    )
    assert streamed == resample(pcm, *rates, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resampler_restarts_after_flush(backend: Any) -> None:
    pcm = sine(440, 48000, 0.2)
    r = Resampler(48000, 16000, backend=backend)
    first = _stream(r, pcm, 1920)
    second = _stream(r, pcm, 1920)
    assert first == second


@pytest.mark.parametrize("backend", BACKENDS)
def test_resampler_reset_discards_state(backend: Any) -> None:
    pcm = sine(440, 48000, 0.2)
    fresh = _stream(Resampler(48000, 16000, backend=backend), pcm, 1920)
    r = Resampler(48000, 16000, backend=backend)
    r.process(sine(3000, 48000, 0.1))
    r.reset()
    assert _stream(r, pcm, 1920) == fresh


def test_resampler_same_rate_passthrough() -> None:
    r = Resampler(16000, 16000)
    assert r.process(np.array([1, 2], dtype=np.int16)) == le16(1, 2)
    assert r.flush() == b""
    assert "16000" in repr(r)


def test_resampler_rejects_odd_chunk() -> None:
    with pytest.raises(AudioFormatError):
        Resampler(48000, 16000, backend="numpy").process(b"\x00")


def test_numpy_backend_without_phase_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate pairs with many phases compute filter weights per block; results must agree."""
    pcm = sine(440, 44100, 0.3)
    with_table = resample(pcm, 44100, 16000, backend="numpy")
    monkeypatch.setattr(audio, "_MAX_PHASE_TABLE", 0)
    on_the_fly = resample(pcm, 44100, 16000, backend="numpy")
    diff = np.abs(
        np.frombuffer(with_table, "<i2").astype(int) - np.frombuffer(on_the_fly, "<i2").astype(int)
    )
    assert diff.max() <= 1
    odd = resample(sine(440, 44101), 44101, 16000, backend="numpy")  # 16000 phases
    assert abs(peak_hz(odd, 16000) - 440) <= 2


def test_python_backend_interpolates_linearly() -> None:
    out = resample(le16(0, 100, 200, 300), 8000, 16000, backend="python")
    assert samples_of(out) == [0, 50, 100, 150, 200, 250, 300, 300]


# ---------------------------------------------------------------------------------------
# to_mono
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_numpy", [True, False])
def test_to_mono_stereo(monkeypatch: pytest.MonkeyPatch, use_numpy: bool) -> None:
    monkeypatch.setattr(audio, "_has_numpy", lambda: use_numpy)
    stereo = le16(100, 300, -200, 0, 1, 2, 1, 0, -1, 0, 3, 0, 32767, 32767, -32768, -32768)
    assert samples_of(to_mono(stereo, 2)) == [200, -100, 2, 0, 0, 2, 32767, -32768]


@pytest.mark.parametrize("use_numpy", [True, False])
def test_to_mono_three_channels(monkeypatch: pytest.MonkeyPatch, use_numpy: bool) -> None:
    monkeypatch.setattr(audio, "_has_numpy", lambda: use_numpy)
    assert samples_of(to_mono(le16(3, 6, 9, -3, -3, 0), 3)) == [6, -2]


def test_to_mono_validation() -> None:
    mono = le16(1, 2, 3)
    assert to_mono(mono, 1) == mono
    with pytest.raises(AudioFormatError):
        to_mono(mono, 2)
    with pytest.raises(AudioFormatError):
        to_mono(mono, 0)


# ---------------------------------------------------------------------------------------
# WAV
# ---------------------------------------------------------------------------------------


def _raw_wav(frames: bytes, *, width: int, rate: int = 16000, channels: int = 1) -> io.BytesIO:
    f = io.BytesIO()
    with wave.open(f, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    f.seek(0)
    return f


def test_wav_round_trip_file_object() -> None:
    pcm = le16(0, 1, -1, 32767, -32768, 1234)
    f = io.BytesIO()
    write_wav(f, pcm, 22050, channels=2)
    f.seek(0)
    wav = read_wav(f)
    assert wav == WavAudio(pcm, 22050, 2)
    assert wav.duration == pytest.approx(3 / 22050)


def test_wav_round_trip_paths(tmp_path: Path) -> None:
    pcm = sine(440, 16000, 0.1)
    path = tmp_path / "a.wav"
    write_wav(path, pcm, 16000)
    assert read_wav(path) == WavAudio(pcm, 16000, 1)
    assert read_wav(str(path)).pcm == pcm


def test_write_wav_validates() -> None:
    with pytest.raises(AudioFormatError):
        write_wav(io.BytesIO(), le16(1, 2, 3), 16000, channels=2)
    with pytest.raises(AudioFormatError):
        write_wav(io.BytesIO(), b"\x00", 16000)
    with pytest.raises(AudioFormatError):
        write_wav(io.BytesIO(), b"", 0)


def test_read_wav_8bit_unsigned() -> None:
    wav = read_wav(_raw_wav(bytes([0, 128, 255, 64, 129]), width=1, rate=8000))
    assert (wav.rate, wav.channels) == (8000, 1)
    assert samples_of(wav.pcm) == [-32768, 0, 32512, -16384, 256]


def test_read_wav_24bit() -> None:
    values = [0, 1, 255, 256, -1, -256, 8388607, -8388608, 0x123456]
    frames = b"".join(v.to_bytes(3, "little", signed=True) for v in values)
    wav = read_wav(_raw_wav(frames, width=3, channels=1))
    assert samples_of(wav.pcm) == [v >> 8 for v in values]


def test_read_wav_32bit() -> None:
    values = [0, 65535, 65536, -1, -65536, 2**31 - 1, -(2**31), 0x12345678]
    frames = b"".join(v.to_bytes(4, "little", signed=True) for v in values)
    wav = read_wav(_raw_wav(frames, width=4, channels=2))
    assert wav.channels == 2
    assert samples_of(wav.pcm) == [v >> 16 for v in values]


def test_byteswap_helper() -> None:
    """Used on big-endian hosts, where wave works in native byte order."""
    assert audio._byteswap(b"\x01\x02\x03\x04", 2) == b"\x02\x01\x04\x03"
    assert audio._byteswap(b"\x01\x02\x03\x04\x05\x06", 3) == b"\x03\x02\x01\x06\x05\x04"


def test_read_wav_rejects_non_wav() -> None:
    with pytest.raises(AudioFormatError, match="WAV"):
        read_wav(io.BytesIO(b"this is not a wav file at all"))
    with pytest.raises(AudioFormatError):
        read_wav(io.BytesIO(b""))


def test_load_wav_for_live(tmp_path: Path) -> None:
    left = np.frombuffer(sine(440, 48000, 0.5), dtype="<i2")
    stereo = np.column_stack([left, left]).astype("<i2").tobytes()
    path = tmp_path / "stereo48k.wav"
    write_wav(path, stereo, 48000, channels=2)
    pcm = load_wav_for_live(path)
    assert len(pcm) // 2 == pytest.approx(8000, rel=0.01)
    assert abs(peak_hz(pcm, 16000) - 440) <= 2

    mono16 = sine(300, 16000, 0.1)
    path16 = tmp_path / "mono16k.wav"
    write_wav(path16, mono16, 16000)
    assert load_wav_for_live(path16) == mono16
    assert len(load_wav_for_live(path16, rate=8000)) == len(mono16) // 2
    with pytest.raises(AudioFormatError):
        load_wav_for_live(path16, rate=96000)


def test_load_wav_for_live_8bit(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    path.write_bytes(_raw_wav(bytes([128, 255, 0, 128]), width=1, rate=16000).getvalue())
    assert samples_of(load_wav_for_live(path)) == [0, 32512, -32768, 0]


# ---------------------------------------------------------------------------------------
# G.711
# ---------------------------------------------------------------------------------------

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int64)


@pytest.mark.parametrize(
    ("code", "value"), [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124), (0xFE, 8)]
)
def test_ulaw_known_values(code: int, value: int) -> None:
    assert samples_of(ulaw_to_pcm16(bytes([code]))) == [value]


@pytest.mark.parametrize(
    ("code", "value"), [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24)]
)
def test_alaw_known_values(code: int, value: int) -> None:
    assert samples_of(alaw_to_pcm16(bytes([code]))) == [value]


@pytest.mark.parametrize("decode", [ulaw_to_pcm16, alaw_to_pcm16])
def test_g711_decode_tables_are_symmetric(decode: Any) -> None:
    table = samples_of(decode(bytes(range(256))))
    assert all(table[c] == -table[c ^ 0x80] for c in range(256))
    assert len(set(table)) == (255 if decode is ulaw_to_pcm16 else 256)


def test_g711_encoders_known_values() -> None:
    assert pcm16_to_ulaw(le16(0, -1, 32767, -32768)) == bytes([0xFF, 0x7F, 0x80, 0x00])
    assert pcm16_to_alaw(le16(0, -1, 32767, -32768)) == bytes([0xD5, 0x55, 0xAA, 0x2A])


@pytest.mark.parametrize(
    ("encode", "decode"), [(pcm16_to_ulaw, ulaw_to_pcm16), (pcm16_to_alaw, alaw_to_pcm16)]
)
def test_g711_codes_are_fixed_points(encode: Any, decode: Any) -> None:
    levels = decode(bytes(range(256)))
    assert decode(encode(levels)) == levels


def test_ulaw_round_trip_within_quantisation_error() -> None:
    pcm = ALL_INT16.astype("<i2").tobytes()
    decoded = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(pcm)), dtype="<i2").astype(np.int64)
    err = np.abs(decoded - ALL_INT16)
    # Half a quantisation step: 1/32 of the biased magnitude (clipping above 32635 included).
    assert np.all(err <= (np.abs(ALL_INT16) + 132) / 32)
    assert err[np.abs(ALL_INT16) < 100].max() <= 4


def test_alaw_round_trip_within_quantisation_error() -> None:
    pcm = ALL_INT16.astype("<i2").tobytes()
    decoded = np.frombuffer(alaw_to_pcm16(pcm16_to_alaw(pcm)), dtype="<i2").astype(np.int64)
    err = np.abs(decoded - ALL_INT16)
    assert np.all(err <= np.abs(ALL_INT16) / 32 + 8)
    assert err[np.abs(ALL_INT16) < 100].max() <= 8


def test_g711_accepts_other_inputs() -> None:
    arr = np.array([0, -1], dtype=np.int16)
    assert pcm16_to_ulaw(arr) == bytes([0xFF, 0x7F])
    assert ulaw_to_pcm16(bytearray([0xFF])) == le16(0)
    assert alaw_to_pcm16(memoryview(bytes([0xD5]))) == le16(8)
    assert ulaw_to_pcm16(b"") == b""
    with pytest.raises(AudioFormatError):
        pcm16_to_alaw(b"\x00")


# ---------------------------------------------------------------------------------------
# PlaybackBuffer
# ---------------------------------------------------------------------------------------

FRAME = 960  # 20 ms at 24 kHz


def ms_of_audio(ms: int, value: int = 1000, rate: int = 24000) -> bytes:
    return le16(value) * (rate * ms // 1000)


def test_playback_nothing_before_audio() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(clock=clock)
    assert buf.frame_bytes == FRAME
    assert buf.read_frame() is None
    clock.now = 5.0
    assert buf.read_frame() is None


def test_playback_pacing_one_frame_per_20ms() -> None:
    clock = FakeClock(100.0)
    buf = PlaybackBuffer(clock=clock)
    buf.push(ms_of_audio(100))
    assert buf.queued_seconds == pytest.approx(0.1)

    frame = buf.read_frame()  # first frame is due as soon as the audio arrived
    assert frame is not None
    assert len(frame) == FRAME
    assert buf.read_frame() is None
    clock.now = 100.0199
    assert buf.read_frame() is None
    got = 1
    for step in range(1, 10):
        clock.now = 100.0 + step * 0.02
        frames = []
        while (f := buf.read_frame()) is not None:
            frames.append(f)
        assert len(frames) == (1 if got < 5 else 0)
        got += len(frames)
    assert got == 5
    assert buf.queued_seconds == 0
    assert buf.played_seconds == pytest.approx(0.1)


def test_playback_catches_up_after_a_stall() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(clock=clock)
    buf.push(ms_of_audio(200))
    clock.now = 0.061  # frames 0..3 are due
    frames = []
    while (f := buf.read_frame()) is not None:
        frames.append(f)
    assert len(frames) == 4


def test_playback_pads_last_frame_with_silence() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(clock=clock)
    buf.push(ms_of_audio(30, value=7))
    first = buf.read_frame()
    assert first == le16(7) * 480
    clock.now = 0.02
    second = buf.read_frame()
    assert second == le16(7) * 240 + bytes(480)
    assert buf.played_seconds == pytest.approx(0.03)  # padding is not counted
    clock.now = 1.0
    assert buf.read_frame() is None


def test_playback_new_run_starts_when_audio_arrives() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(clock=clock)
    buf.push(ms_of_audio(20))
    assert buf.read_frame() is not None
    clock.now = 10.0
    assert buf.read_frame() is None
    buf.push(ms_of_audio(40))
    assert buf.read_frame() is not None  # due immediately, no burst of "missed" frames
    assert buf.read_frame() is None
    clock.now = 10.02
    assert buf.read_frame() is not None


def test_playback_new_run_not_before_next_slot() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(clock=clock)
    buf.push(ms_of_audio(20))
    assert buf.read_frame() is not None
    clock.now = 0.005
    buf.push(ms_of_audio(20))
    assert buf.read_frame() is None
    clock.now = 0.02
    assert buf.read_frame() is not None


def test_playback_frame_ms_and_rate() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(16000, frame_ms=10, clock=clock)
    assert buf.frame_bytes == 320
    buf.push(bytes(640))
    assert buf.read_frame() is not None
    clock.now = 0.0099
    assert buf.read_frame() is None
    clock.now = 0.01
    assert buf.read_frame() is not None


def test_playback_flush_drops_queue_and_old_generation() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(clock=clock)
    assert buf.generation == 0
    buf.push(ms_of_audio(1000), generation=0)
    assert buf.read_frame() is not None
    heard = buf.played_seconds
    assert heard == pytest.approx(0.02)

    dropped = buf.flush()
    assert dropped == 48000 - FRAME
    assert buf.generation == 1
    assert buf.queued_seconds == 0
    assert buf.dropped_bytes == dropped
    assert buf.played_seconds == 0
    assert buf.total_played_seconds == pytest.approx(0.02)
    clock.now = 0.02
    assert buf.read_frame() is None

    late = ms_of_audio(20)
    buf.push(late, generation=0)  # a chunk of the interrupted reply arriving late
    assert buf.queued_seconds == 0
    assert buf.dropped_bytes == dropped + len(late)
    assert buf.read_frame() is None

    buf.push(ms_of_audio(20, value=5), generation=1)
    assert buf.read_frame() == le16(5) * 480
    buf.push(ms_of_audio(20, value=6))  # untagged audio is always accepted
    assert buf.queued_bytes == FRAME


def test_playback_flush_empty_returns_zero() -> None:
    buf = PlaybackBuffer(clock=FakeClock())
    assert buf.flush() == 0
    assert buf.flush() == 0
    assert buf.generation == 2


def test_playback_bounded_drops_oldest() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(24000, max_seconds=1.0, clock=clock)
    second = 48000
    ramp = np.arange(72000, dtype=np.int64) % 30000
    pcm = ramp.astype("<i2").tobytes()  # 1.5 s of distinct samples
    for i in range(0, len(pcm), 4800):
        buf.push(pcm[i : i + 4800])
    assert buf.queued_bytes == second
    assert buf.queued_seconds == pytest.approx(1.0)
    assert buf.dropped_bytes == len(pcm) - second
    frame = buf.read_frame()
    assert frame == pcm[len(pcm) - second : len(pcm) - second + FRAME]  # the newest audio is kept


def test_playback_pop_pads_with_silence() -> None:
    buf = PlaybackBuffer(clock=FakeClock())
    assert buf.pop(8) == bytes(8)
    buf.push(le16(1, 2, 3))
    assert buf.pop(4) == le16(1, 2)
    assert buf.pop(6) == le16(3) + bytes(4)
    assert buf.pop(0) == b""
    assert buf.played_seconds == pytest.approx(3 / 24000)
    assert buf.queued_bytes == 0
    with pytest.raises(ValueError):
        buf.pop(3)
    with pytest.raises(ValueError):
        buf.pop(-2)


def test_playback_pop_then_paced_reads() -> None:
    clock = FakeClock(3.0)
    buf = PlaybackBuffer(clock=clock)
    buf.push(ms_of_audio(20))
    buf.pop(FRAME)
    clock.now = 50.0
    buf.push(ms_of_audio(20))
    assert buf.read_frame() is not None


def test_playback_played_seconds_tracks_generation_and_total() -> None:
    clock = FakeClock()
    buf = PlaybackBuffer(clock=clock)
    buf.push(ms_of_audio(40))
    buf.read_frame()
    clock.now = 0.02
    buf.read_frame()
    assert buf.played_seconds == pytest.approx(0.04)
    buf.flush()
    buf.push(ms_of_audio(20))
    buf.pop(FRAME)
    assert buf.played_seconds == pytest.approx(0.02)
    assert buf.total_played_seconds == pytest.approx(0.06)


def test_playback_heard_counts_only_the_interrupted_reply() -> None:
    buf = PlaybackBuffer(clock=FakeClock())  # 24 kHz: FRAME = 20 ms
    buf.push(ms_of_audio(100))  # reply 1
    for _ in range(3):
        buf.pop(FRAME)  # 60 ms of reply 1 heard
    buf.mark_reply()  # its turn ended; 40 ms of it are still queued
    assert buf.reply_played_seconds == 0
    buf.push(ms_of_audio(200))  # reply 2
    for _ in range(3):
        buf.pop(FRAME)  # the rest of reply 1, then 20 ms of reply 2
    assert buf.reply_played_seconds == pytest.approx(0.02)
    assert buf.played_seconds == pytest.approx(0.12)  # since the last flush: both replies
    buf.flush()  # barge-in on reply 2
    assert buf.heard_before_flush == pytest.approx(0.02)
    assert buf.reply_played_seconds == 0
    # A new reply after the flush counts from the flush; marking twice changes nothing.
    buf.mark_reply()
    buf.mark_reply()
    buf.push(ms_of_audio(40))
    buf.pop(FRAME)
    buf.flush()
    assert buf.heard_before_flush == pytest.approx(0.02)


def test_playback_heard_without_marks_is_everything_since_the_flush() -> None:
    buf = PlaybackBuffer(clock=FakeClock())
    buf.push(ms_of_audio(40))
    buf.pop(2 * FRAME)  # reply 1, heard in full, never marked
    buf.push(ms_of_audio(40))
    buf.pop(FRAME)
    buf.flush()
    assert buf.heard_before_flush == pytest.approx(0.06)


def test_playback_reply_mark_moves_with_overflow() -> None:
    buf = PlaybackBuffer(24000, max_seconds=0.1, clock=FakeClock())  # holds 100 ms
    buf.push(ms_of_audio(60))  # reply 1
    buf.mark_reply()
    buf.push(ms_of_audio(80))  # reply 2: 40 ms of reply 1 are dropped from the front
    assert buf.queued_seconds == pytest.approx(0.1)
    buf.pop(FRAME)  # reply 1's last 20 ms
    assert buf.reply_played_seconds == 0
    buf.pop(FRAME)  # reply 2's first 20 ms
    assert buf.reply_played_seconds == pytest.approx(0.02)
    buf.push(ms_of_audio(200))  # overflow past the mark: nothing of reply 1 is left
    buf.pop(FRAME)
    assert buf.reply_played_seconds == pytest.approx(0.04)


def test_playback_push_validates_and_accepts_arrays() -> None:
    buf = PlaybackBuffer(clock=FakeClock())
    with pytest.raises(AudioFormatError):
        buf.push(b"\x00")
    buf.push(np.zeros(10, dtype=np.int16))
    buf.push(memoryview(bytes(4)))
    buf.push(b"")
    assert len(buf) == 24
    assert "PlaybackBuffer" in repr(buf)


@pytest.mark.parametrize(
    "kwargs", [{"max_seconds": 0.0}, {"max_seconds": -1.0}, {"frame_ms": 0}, {"rate": 0}]
)
def test_playback_validates_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PlaybackBuffer(**kwargs)


# ---------------------------------------------------------------------------------------
# Optional dependencies
# ---------------------------------------------------------------------------------------


def test_works_without_numpy_and_soxr() -> None:
    """audio.py must import and run its pure paths with only the stdlib and pybase64."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["numpy"] = None
        sys.modules["soxr"] = None
        from array import array
        from gemini_live import audio
        pcm = array("h", [0, 1000, -1000, 2000] * 120).tobytes()
        assert audio.as_pcm16(array("h", [1, 2])) is not None
        assert audio.AudioEncoder().encode(pcm)
        assert audio.Resampler(48000, 16000).backend == "python"
        assert len(audio.resample(pcm, 48000, 16000)) == len(pcm) // 3
        assert len(audio.to_mono(pcm, 2)) == len(pcm) // 2
        assert audio.ulaw_to_pcm16(audio.pcm16_to_ulaw(b"\\0\\0")) == b"\\0\\0"
        try:
            audio.pcm16_to_float32(pcm)
        except ImportError as exc:
            assert "gemini-live[audio]" in str(exc)
        else:
            raise AssertionError("expected ImportError")
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_numpy_arrays_typed_helper() -> None:
    """pcm16_to_float32 output feeds straight back into the encoder."""
    floats: npt.NDArray[np.float32] = pcm16_to_float32(le16(100, -100))
    assert AudioEncoder().encode(floats) == base64.b64encode(le16(100, -100))


@pytest.mark.parametrize(("from_rate", "to_rate"), [(24000, 8000), (8000, 16000), (16000, 24000)])
def test_polyphase_stream_equals_the_gathered_one(
    from_rate: int, to_rate: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The per-phase strided product (few phases: the phone bridge's steps) must give the
    # very samples the index-gathering path gives, however the input is chunked.
    import gemini_live.audio as audio_mod

    rng = np.random.default_rng(7)
    x = (np.sin(np.arange(from_rate) * 0.05) * 12000 + rng.normal(0, 2000, from_rate)).astype("<i2")
    cuts = np.sort(rng.choice(np.arange(1, len(x)), size=60, replace=False))
    chunks = [c.tobytes() for c in np.split(x, cuts)]

    def run() -> bytes:
        r = Resampler(from_rate, to_rate, backend="numpy")
        return b"".join([*(r.process(c) for c in chunks), r.flush()])

    fast = run()
    monkeypatch.setattr(audio_mod, "_POLYPHASE_MAX", 0)
    assert run() == fast


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("law", ["ulaw", "alaw"])
@pytest.mark.parametrize(("from_rate", "to_rate"), [(24000, 8000), (16000, 8000), (8000, 16000)])
def test_process_g711_is_process_then_encode(
    backend: Any, law: Any, from_rate: int, to_rate: int
) -> None:
    # The phone bridge's fused step gives the very bytes of process() + pcm16_to_ulaw /
    # pcm16_to_alaw, however the input is chunked, clipped peaks and reply resets included.
    rng = np.random.default_rng(11)
    n = from_rate  # one second
    x = np.sin(np.arange(n) * 0.05) * 30000 + rng.normal(0, 3000, n)
    x[n // 2 : n // 2 + 400] = 32767  # a clipped run: the filter overshoots the range
    pcm = np.clip(x, -32768, 32767).astype("<i2")
    cuts = np.sort(rng.choice(np.arange(1, n), size=40, replace=False))
    chunks = [c.tobytes() for c in np.split(pcm, cuts)]
    encode = pcm16_to_ulaw if law == "ulaw" else pcm16_to_alaw
    plain = Resampler(from_rate, to_rate, backend=backend)
    fused = Resampler(from_rate, to_rate, backend=backend)
    for k, chunk in enumerate(chunks):
        assert fused.process_g711(chunk, law) == encode(plain.process(chunk))
        if k == 20:  # a reply's end: flushed and started afresh
            assert plain.flush() == fused.flush()
    assert plain.flush() == fused.flush()


def test_process_g711_checks_the_law() -> None:
    with pytest.raises(ConfigError, match="law"):
        Resampler(24000, 8000, backend="numpy").process_g711(b"\x00\x00", "mulaw")  # type: ignore[arg-type]


# -- the phone bridge's decimator (float32, block product, G.711 by lookup) ------------------


def _decimator_chunks(seed: int, n: int, pieces: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(n) * 0.05) * 30000 + rng.normal(0, 3000, n)
    x[n // 2 : n // 2 + 400] = 32767  # a clipped run: the filter overshoots the range
    x[n // 3 : n // 3 + 400] = -32768
    pcm = np.clip(x, -32768, 32767).astype("<i2")
    cuts = np.sort(rng.choice(np.arange(1, n), size=pieces, replace=False))
    return [c.tobytes() for c in np.split(pcm, cuts)]


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
@pytest.mark.parametrize("from_rate", [24000, 16000, 48000])
def test_decimator_keeps_the_sinc_streams_timing_and_samples(law: Any, from_rate: int) -> None:
    # Per chunk the same number of outputs as the float64 sinc stream (the same filter,
    # so no added latency), however the input is chunked and with reply resets; the
    # samples the float32 product rounds may differ by one PCM16 step, rarely.
    encode = pcm16_to_ulaw if law == "ulaw" else pcm16_to_alaw
    decimator = audio._Decimator.create(from_rate, 8000)
    assert decimator is not None
    plain = Resampler(from_rate, 8000, backend="numpy")
    codes: list[bytes] = []
    expected: list[bytes] = []
    chunks = _decimator_chunks(5, from_rate, 60)
    chunks.append(b"".join(chunks))  # one chunk larger than the decimator's store
    for k, chunk in enumerate(chunks):
        mine = decimator.process_g711(chunk, law)
        pcm = plain.process(chunk)
        assert len(mine) == len(pcm) // 2
        codes.append(mine)
        expected.append(encode(pcm))
        if k in (20, 41, 60):  # a reply's end: flushed and started afresh
            tail = decimator.flush()
            plain_tail = plain.flush()
            assert len(tail) == len(plain_tail)
            codes.append(encode(tail))
            expected.append(encode(plain_tail))
    got, want = b"".join(codes), b"".join(expected)
    assert len(got) == len(want)
    assert sum(a != b for a, b in zip(got, want, strict=True)) <= len(want) // 1000


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decimate_batch_gives_each_decimators_own_codes(
    law: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several calls' chunks in one product: each job's codes are those of its
    # decimator's own process_g711 (the same rows, matrix, rounding and lookup),
    # whatever the chunk sizes (empty, too short for an output, more rows than one
    # product takes: alone), split over several products (~100 rows a job), with a
    # decimator of another factor in the batch (alone) and resets. Up to the BLAS
    # kernel: OpenBLAS picks its kernel by CPU and by the product's shape, and one
    # kernel may round a row's sum differently from another, so a sample on a
    # quantizer's boundary may land on the neighbouring code (seen once in 332 k A-law
    # codes on an AMD EPYC; none on the machines before). Only that is allowed.
    to_pcm = audio.ulaw_to_pcm16 if law == "ulaw" else audio.alaw_to_pcm16
    flips = 0

    def neighbours(a: int, b: int) -> bool:
        x, y = (int.from_bytes(to_pcm(bytes([c])), "little", signed=True) for c in (a, b))
        levels = sorted(
            {int.from_bytes(to_pcm(bytes([c])), "little", signed=True) for c in range(256)}
        )
        return abs(levels.index(x) - levels.index(y)) == 1

    rng = np.random.default_rng(3)
    rates = [24000] * 6 + [48000, 16000]
    solo = [audio._Decimator.create(r, 8000) for r in rates]
    mine = [audio._Decimator.create(r, 8000) for r in rates]
    assert all(d is not None for d in solo + mine)
    streams = [_decimator_chunks(k, 6 * r, 30) for k, r in enumerate(rates)]
    batch = audio._DecimateBatch()
    products: list[tuple[int, int, int]] = []  # (rows, jobs, most rows on one thread)
    product = audio._DecimateBatch._product

    def counted(
        self: audio._DecimateBatch, group: Any, total: int, matrix: Any, *rest: Any
    ) -> None:
        products.append((total, len(group), audio._most_rows(matrix.shape[0])))
        product(self, group, total, matrix, *rest)

    monkeypatch.setattr(audio._DecimateBatch, "_product", counted)
    for step in range(30):
        jobs = []
        for k, d in enumerate(mine):
            chunk = streams[k][step]
            if step % 7 == k % 7:
                chunk = b""
            elif step % 11 == k:
                chunk = chunk[:2]  # one sample: no output yet
            elif step == 17 and k == 0:
                chunk = b"".join(streams[0])  # more rows than the workspace holds
            jobs.append((d, chunk))
        jobs = [jobs[i] for i in rng.permutation(len(jobs))]
        want = [solo[mine.index(d)].process_g711(c, law) for d, c in jobs]  # type: ignore[union-attr]
        got = batch.process_g711(jobs, law)  # type: ignore[arg-type]
        assert [len(g) for g in got] == [len(w) for w in want]
        for g, w in zip(got, want, strict=True):
            for a, b in zip(g, w, strict=True):
                if a != b:
                    assert neighbours(a, b), (a, b)
                    flips += 1
        if step == 12:
            for d in solo + mine:
                assert d is not None
                d.reset()
    assert flips <= 3  # of ~332 k codes
    assert batch.process_g711([], law) == []
    # A group over one BLAS thread's rows holds one job (the big chunk among them,
    # multiplied in slices); several jobs share the others.
    assert max(rows for rows, _, _ in products) >= 3000
    assert all(rows <= most or n == 1 for rows, n, most in products)
    assert max(n for _, n, _ in products) > 1


def test_decimator_products_stay_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # numpy's OpenBLAS multiplies a float32 product from ~1 M multiply-adds on several
    # threads, whose workers then spin for milliseconds: every product the decimators
    # hand to np.dot stays below audio._BLAS_ONE_THREAD, however large the chunk or the
    # batch, with the very codes of small chunks.
    sizes: list[int] = []
    dot = np.dot

    def counted(a: Any, b: Any, out: Any = None) -> Any:
        sizes.append(a.shape[0] * a.shape[1] * b.shape[1])
        return dot(a, b) if out is None else dot(a, b, out=out)

    monkeypatch.setattr(np, "dot", counted)
    pcm = _decimator_chunks(2, 48000 * 3, 1)[0]
    for rate in (48000, 24000, 16000):
        big, small = audio._Decimator.create(rate, 8000), audio._Decimator.create(rate, 8000)
        assert big is not None and small is not None
        step = 2 * rate // 25  # 40 ms
        want = b"".join(small.process_g711(pcm[k : k + step]) for k in range(0, len(pcm), step))
        want += pcm16_to_ulaw(small.flush())
        assert big.process_g711(pcm) + pcm16_to_ulaw(big.flush()) == want
    calls = [audio._Decimator.create(24000, 8000) for _ in range(40)]
    jobs = [(d, pcm[: 2 * 960]) for d in calls if d is not None]
    codes = audio._DecimateBatch().process_g711(jobs)
    assert len(set(codes)) == 1 and len(codes[0]) > 300
    assert max(sizes) <= audio._BLAS_ONE_THREAD
    assert max(sizes) > audio._BLAS_ONE_THREAD // 2  # the big ones were cut to size


def test_decimate_batch_refuses_bad_chunks_before_consuming_any() -> None:
    good, other = audio._Decimator.create(24000, 8000), audio._Decimator.create(24000, 8000)
    twin = audio._Decimator.create(24000, 8000)
    assert good is not None and other is not None and twin is not None
    chunk = _decimator_chunks(4, 2400, 1)[0]
    batch = audio._DecimateBatch()
    for bad in (chunk[:-1], bytearray(chunk), "pcm"):
        with pytest.raises(AudioFormatError):
            batch.process_g711([(good, chunk), (other, bad)])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="law"):
        batch.process_g711([(good, chunk)], "mulaw")  # type: ignore[arg-type]
    # Nothing of the refused batches was consumed: good still matches a fresh twin.
    assert batch.process_g711([(good, chunk)]) == [twin.process_g711(chunk)]


def test_decimator_g711_is_its_pcm_encoded() -> None:
    # process_g711's lookup (rounding in the float32 sum's low bits, clipping in the
    # table) gives the codes of process()'s PCM16, clipped peaks included.
    for law, encode in (("ulaw", pcm16_to_ulaw), ("alaw", pcm16_to_alaw)):
        a = audio._Decimator.create(24000, 8000)
        b = audio._Decimator.create(24000, 8000)
        assert a is not None and b is not None
        for chunk in _decimator_chunks(9, 24000, 40):
            assert a.process_g711(chunk, law) == encode(b.process(chunk))  # type: ignore[arg-type]
        assert encode(a.flush()) == encode(b.flush())


def test_decimator_output_equals_the_float64_filter_closely() -> None:
    # Against the float64 stream's unrounded outputs: within float32 rounding.
    decimator = audio._Decimator.create(24000, 8000)
    assert decimator is not None
    chunks = _decimator_chunks(13, 24000, 30)
    ours = np.frombuffer(b"".join(decimator.process(c) for c in chunks), "<i2")
    stream = audio._SincStream(24000, 8000, 16)
    exact = np.concatenate([y for c in chunks if (y := stream._process(c)) is not None])
    assert len(ours) == len(exact)
    assert np.abs(ours - np.clip(np.rint(exact), -32768, 32767)).max() <= 1


def test_decimator_bad_input() -> None:
    decimator = audio._Decimator.create(24000, 8000)
    assert decimator is not None
    with pytest.raises(AudioFormatError):
        decimator.process_g711(b"\x00\x00\x00")
    with pytest.raises(ConfigError, match="law"):
        decimator.process_g711(b"\x00\x00", "mulaw")  # type: ignore[arg-type]
    assert decimator.process_g711(b"") == b""
    assert decimator.flush() == b""
    # Not a whole factor, or upsampling: no decimator (the bridge keeps the sinc stream).
    assert audio._Decimator.create(44100, 8000) is None
    assert audio._Decimator.create(8000, 16000) is None


def test_decimator_after_reset_is_a_fresh_one() -> None:
    # Barge-in resets mid-reply: what follows is exactly a new decimator's output (the
    # lead-in zeroed again; stale input left in the store is never used).
    chunks = _decimator_chunks(17, 24000, 50)
    used = audio._Decimator.create(24000, 8000)
    assert used is not None
    for chunk in chunks[:25]:
        used.process_g711(chunk)
    used.reset()
    fresh = audio._Decimator.create(24000, 8000)
    assert fresh is not None
    for chunk in chunks[25:]:
        assert used.process_g711(chunk) == fresh.process_g711(chunk)
    assert used.flush() == fresh.flush()


def test_decimator_g711_steady_chunks_reuse_their_views_with_the_same_codes() -> None:
    # A steady stream (the model's 40 ms chunks) takes the product's rows by one slice
    # of the store's every-window view and reuses the last call's output views; codes
    # equal process()'s (its strided view built per call) through size changes, store
    # moves and a reallocation (a chunk larger than the store).
    rng = np.random.default_rng(75)
    for law, encode in (("ulaw", pcm16_to_ulaw), ("alaw", pcm16_to_alaw)):
        a = audio._Decimator.create(24000, 8000)
        b = audio._Decimator.create(24000, 8000)
        assert a is not None and b is not None
        sizes = [960] * 40 + [int(s) for s in rng.integers(1, 3000, 30)] + [960] * 10
        sizes.insert(55, 24000 * 3)  # larger than the store: a new one
        for size in sizes:
            x = np.clip(rng.normal(0, 9000, size), -32768, 32767).astype("<i2").tobytes()
            assert a.process_g711(x, law) == encode(b.process(x))  # type: ignore[arg-type]
        assert a._views[0] == 320  # the steady 40 ms chunk's outputs: its views kept
        assert encode(a.flush()) == encode(b.flush())
