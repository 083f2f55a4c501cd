"""``read_wav``: one reader for every WAV encoding the CLI and apps meet (files built here)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from gemini_live.audio import (
    load_wav_for_live,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    read_wav,
    to_mono,
    write_wav,
)
from gemini_live.errors import AudioFormatError

SAMPLES = [0, 1000, -1000, 32767, -32768, 12345, -54, 256]
PCM = struct.pack(f"<{len(SAMPLES)}h", *SAMPLES)
EXTENSIBLE_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def wav_bytes(
    data: bytes,
    *,
    tag: int,
    bits: int,
    channels: int = 1,
    rate: int = 16000,
    extensible: bool = False,
    extra_chunks: bytes = b"",
    data_size: int | None = None,
) -> bytes:
    align = max(1, bits // 8) * channels
    fmt = struct.pack(
        "<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits
    )
    if extensible:
        fmt += struct.pack("<HHIH", 22, bits, 0, tag) + EXTENSIBLE_TAIL
    body = b"WAVE" + extra_chunks + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    size = len(data) if data_size is None else data_size
    body += b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def read(blob: bytes) -> tuple[list[int], int, int]:
    wav = read_wav(io.BytesIO(blob))
    n = len(wav.pcm) // 2
    return list(struct.unpack(f"<{n}h", wav.pcm)), wav.rate, wav.channels


@pytest.mark.parametrize("extensible", [False, True])
def test_pcm16(extensible: bool) -> None:
    assert read(wav_bytes(PCM, tag=1, bits=16, extensible=extensible)) == (SAMPLES, 16000, 1)


def test_pcm8_unsigned() -> None:
    data = bytes((s >> 8) + 128 for s in SAMPLES)
    got, _, _ = read(wav_bytes(data, tag=1, bits=8))
    assert got == [(s >> 8) << 8 for s in SAMPLES]


@pytest.mark.parametrize("extensible", [False, True])
def test_pcm24_keeps_the_top_16_bits(extensible: bool) -> None:
    data = b"".join(struct.pack("<i", s << 8)[:3] for s in SAMPLES)  # s * 256 as 24-bit
    assert read(wav_bytes(data, tag=1, bits=24, extensible=extensible))[0] == SAMPLES


def test_pcm32() -> None:
    data = b"".join(struct.pack("<i", (s << 16) + 0x1234) for s in SAMPLES)
    assert read(wav_bytes(data, tag=1, bits=32))[0] == SAMPLES


@pytest.mark.parametrize(("bits", "code"), [(32, "f"), (64, "d")])
@pytest.mark.parametrize("extensible", [False, True])
def test_float(bits: int, code: str, extensible: bool) -> None:
    values = [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, 0.25]
    data = struct.pack(f"<{len(values)}{code}", *values)
    got, _, _ = read(wav_bytes(data, tag=3, bits=bits, extensible=extensible))
    assert got == [0, 16384, -16384, 32767, -32767, 32767, -32767, 8192]  # clipped to ±1


def test_float_nan_becomes_silence() -> None:
    data = struct.pack("<2f", float("nan"), 0.5)
    assert read(wav_bytes(data, tag=3, bits=32))[0] == [0, 16384]


@pytest.mark.parametrize(
    ("tag", "encode"), [(7, pcm16_to_ulaw), (6, pcm16_to_alaw)], ids=["mulaw", "alaw"]
)
def test_g711(tag: int, encode: object) -> None:
    assert callable(encode)
    coded = encode(PCM)
    got, _, _ = read(wav_bytes(coded, tag=tag, bits=8))
    from gemini_live.audio import alaw_to_pcm16, ulaw_to_pcm16

    expect = (ulaw_to_pcm16 if tag == 7 else alaw_to_pcm16)(coded)
    assert struct.pack(f"<{len(got)}h", *got) == expect
    assert all(abs(a - b) <= 1024 for a, b in zip(got, SAMPLES, strict=True))


def test_many_channels_stay_interleaved_and_downmix(tmp_path: Path) -> None:
    frames = [(100, 200, 300), (-300, -600, 0)]
    data = b"".join(struct.pack("<3h", *f) for f in frames)
    got, rate, channels = read(wav_bytes(data, tag=1, bits=16, channels=3, rate=8000))
    assert (got, rate, channels) == ([100, 200, 300, -300, -600, 0], 8000, 3)
    assert to_mono(read_wav(io.BytesIO(wav_bytes(data, tag=1, bits=16, channels=3))).pcm, 3) == (
        struct.pack("<2h", 200, -300)
    )
    path = tmp_path / "three.wav"
    path.write_bytes(wav_bytes(data, tag=1, bits=16, channels=3, rate=16000))
    assert load_wav_for_live(path) == struct.pack("<2h", 200, -300)


def test_unknown_chunks_and_padding_are_skipped() -> None:
    junk = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\x00"  # odd size: one pad byte
    assert read(wav_bytes(PCM, tag=1, bits=16, extra_chunks=junk))[0] == SAMPLES


def test_a_cut_off_data_chunk_reads_whole_frames() -> None:
    blob = wav_bytes(PCM[:7], tag=1, bits=16, data_size=1_000_000)
    assert read(blob)[0] == SAMPLES[:3]


def test_round_trip_with_write_wav(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", PCM, 22050, channels=2)
    wav = read_wav(tmp_path / "a.wav")
    assert (wav.pcm, wav.rate, wav.channels) == (PCM, 22050, 2)
    assert wav.duration == pytest.approx(4 / 22050)
    assert repr(wav) == "WavAudio(0.000 s, 22050 Hz, 2 channel(s), 16 bytes)"  # no payload


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"", "cannot read WAV: the file is empty (0 bytes)"),
        (b"not a wav at all", "cannot read WAV: not a RIFF/WAVE file (it starts with 'not '"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no 'fmt ' chunk"),
        (
            wav_bytes(PCM, tag=0x55, bits=16),
            "MP3 (format tag 0x0055) is not supported; convert it to PCM 8/16/24/32-bit",
        ),
        (wav_bytes(PCM, tag=0x1234, bits=16), "an unknown encoding (format tag 0x1234)"),
        (wav_bytes(PCM, tag=1, bits=12), "12-bit integer PCM is not supported"),
        (wav_bytes(PCM, tag=3, bits=16), "16-bit float is not supported"),
        (wav_bytes(PCM, tag=7, bits=16), "16-bit μ-law is not supported"),
        (wav_bytes(PCM, tag=1, bits=16, channels=0), "the header says 0 channels"),
        (wav_bytes(PCM, tag=1, bits=16, rate=0), "a sample rate of 0 Hz"),
        (
            b"RIFF\x20\x00\x00\x00WAVE" + b"data\x00\x00\x00\x00",
            "the 'data' chunk comes before the 'fmt ' chunk",
        ),
        (wav_bytes(PCM, tag=1, bits=16)[:36], "no 'data' chunk"),
    ],
)
def test_clear_typed_errors(blob: bytes, reason: str) -> None:
    with pytest.raises(AudioFormatError) as info:
        read_wav(io.BytesIO(blob))
    assert reason in str(info.value)


def test_text_mode_file_object_is_refused() -> None:
    with pytest.raises(AudioFormatError, match="binary mode"):
        read_wav(io.StringIO("RIFF"))  # type: ignore[arg-type]


def test_float_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    import gemini_live.audio as audio

    monkeypatch.setattr(audio, "_has_numpy", lambda: False)
    data = struct.pack("<4f", 0.5, -2.0, float("nan"), 0.25)
    assert read(wav_bytes(data, tag=3, bits=32))[0] == [16384, -32767, 0, 8192]
