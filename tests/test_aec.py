"""Echo cancellation, measured on a synthetic echo path with a fixed seed.

The far end (the model's reply, 24 kHz like the speaker) goes through a delayed, filtered,
attenuated path with a decaying reverberant tail into a 16 kHz microphone; the near end
(the user, another voice) talks over it for two seconds. Figures printed with ``-s``.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from gemini_live.audio import EchoCanceller

np = pytest.importorskip("numpy")
pytest.importorskip("livekit.rtc")
soxr = pytest.importorskip("soxr")

MIC = 16000
SPEAKER = 24000
SECONDS = 12
DOUBLE_TALK = (8, 10)  # seconds where the user talks over the reply
# (F1, F2, F3) of a few vowels, Hz.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480))


def _speech_like(n: int, rng: Any, f0: tuple[float, float], rms: float) -> Any:
    """Voiced syllables (harmonics shaped by vowel formants, gliding pitch) and gaps."""
    out = np.zeros(n)
    i = int(rng.uniform(0, 0.2) * MIC)
    while i < n:
        length = int(rng.uniform(0.08, 0.3) * MIC)
        t = np.arange(length) / MIC
        base = rng.uniform(*f0)
        phase = 2 * np.pi * np.cumsum(base * (1 + rng.uniform(-0.15, 0.15) * t / t[-1])) / MIC
        formants = _VOWELS[rng.integers(len(_VOWELS))]
        syllable = np.zeros(length)
        for k in range(1, int(3800 / base)):
            gain = 0.02 + sum(
                np.exp(-(((k * base - f) / 120.0) ** 2)) * 0.6**j for j, f in enumerate(formants)
            )
            syllable += gain * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        syllable *= np.abs(np.sin(np.pi * t / t[-1])) ** 0.7
        end = min(n, i + length)
        out[i:end] += syllable[: end - i]
        i = end + int(rng.uniform(0.03, 0.25) * MIC)
    return rms * out / np.sqrt(np.mean(out**2))


def _pcm(x: Any) -> bytes:
    data: bytes = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()
    return data


def _power(x: Any) -> float:
    return float(np.mean(np.asarray(x, dtype=float) ** 2))


def _envelope_corr(a: Any, b: Any, block: int = 320) -> float:
    """Correlation of 20 ms loudness envelopes: blind to the engine's phase changes."""
    m = min(len(a), len(b)) // block * block
    ea = np.sqrt(np.mean(a[:m].reshape(-1, block) ** 2, axis=1))
    eb = np.sqrt(np.mean(b[:m].reshape(-1, block) ** 2, axis=1))
    return float(np.corrcoef(ea, eb)[0, 1])


def test_echo_canceller_removes_the_echo_and_keeps_the_user() -> None:
    rng = np.random.default_rng(20261206)
    n = SECONDS * MIC
    far = _speech_like(n, rng, (100, 180), rms=0.15)
    # The echo path: 30 ms of delay, then a decaying, smoothed (low-passed) room response
    # with half the far end's amplitude in total.
    tail = rng.standard_normal(1600) * np.exp(-np.arange(1600) / 300.0)
    tail = np.convolve(tail, np.ones(4) / 4)[:1600]
    tail *= 0.5 / np.sqrt(np.sum(tail**2))
    echo = np.convolve(np.concatenate([np.zeros(int(0.030 * MIC)), far]), tail)[:n]
    near = np.zeros(n)
    dt = slice(DOUBLE_TALK[0] * MIC, DOUBLE_TALK[1] * MIC)
    near[dt] = _speech_like(n, rng, (170, 260), rms=0.1)[dt]
    mic = echo + near + 0.001 * rng.standard_normal(n)

    far_24k = _pcm(soxr.resample(far, MIC, SPEAKER))
    mic_16k = _pcm(mic)
    aec = EchoCanceller(MIC, far_rate=SPEAKER)
    out = bytearray()
    step_near, step_far = MIC // 50 * 2, SPEAKER // 50 * 2  # 20 ms chunks, like talk
    for i in range(n // (MIC // 50)):
        near_chunk = mic_16k[i * step_near : (i + 1) * step_near]
        far_chunk = far_24k[i * step_far : (i + 1) * step_far]
        out += aec.process(near_chunk, far_chunk)
    assert len(out) == len(mic_16k)
    cleaned = np.frombuffer(bytes(out), dtype="<i2").astype(float) / 32767

    def erle(start: int, end: int) -> float:
        span = slice(start * MIC, end * MIC)
        return float(10 * np.log10(_power(mic[span]) / _power(cleaned[span])))

    # Echo return loss enhancement, far end only: after convergence (the engine settles
    # its delay estimate within about 5 s) and once more after the double talk.
    settled = erle(5, DOUBLE_TALK[0])
    after = erle(DOUBLE_TALK[1] + 1, SECONDS)
    per_second = " ".join(f"{erle(s, s + 1):.0f}" for s in range(SECONDS))
    # The user's speech during double talk, the echo louder than the user.
    echo_over_near = 10 * np.log10(_power(echo[dt]) / _power(near[dt]))
    kept = _envelope_corr(cleaned[dt], near[dt])
    before = _envelope_corr(mic[dt], near[dt])
    level = np.sqrt(_power(cleaned[dt]) / _power(near[dt]))
    cpu_us = aec.cpu_per_frame * 1e6
    print(
        f"\nAEC: ERLE {settled:.1f} dB after convergence, {after:.1f} dB after double talk"
        f" (per second: {per_second}); double talk (echo {echo_over_near:+.1f}"
        f" dB over the user): user envelope correlation {kept:.2f} (mic {before:.2f}),"
        f" user level kept x{level:.2f}; CPU {cpu_us:.0f} us per 10 ms frame",
        file=sys.stderr,
    )
    assert echo_over_near > 0  # a hard case: the echo is louder than the user
    assert settled >= 20 and after >= 20, (settled, after)
    assert kept >= 0.7 and kept > before + 0.2, (kept, before)
    assert 0.5 <= level <= 1.5, level
    assert aec.dropped_reference_seconds == 0
    assert 0 < aec.cpu_per_frame < 0.005  # well under real time (10 ms)


def test_echo_canceller_passes_audio_through_without_a_reference() -> None:
    """No reference at all: chunk sizes kept, partial frames carried, nothing lost."""
    aec = EchoCanceller()
    assert aec.capture(bytes(100)) == b""  # less than 10 ms: waits
    assert len(aec.capture(bytes(540))) == 640  # 100 + 540 = 2 frames
    assert aec.frames == 2


def test_echo_canceller_reference_queue_is_bounded() -> None:
    aec = EchoCanceller(max_reference_seconds=0.05)  # 5 frames
    aec.playback(bytes(480 * 8 + 100))  # 8 frames of 24 kHz and a partial one
    assert aec.dropped_reference_seconds == pytest.approx(0.03)
    aec.capture(bytes(320))
    aec.playback(bytes(380))  # completes the partial frame
    assert aec.dropped_reference_seconds == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 16050}, "multiple of 100"),
        ({"far_rate": 22050}, "multiple of 100"),
        ({"max_reference_seconds": 0}, "positive"),
    ],
)
def test_echo_canceller_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EchoCanceller(**kwargs)


def test_echo_canceller_without_livekit_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "livekit", None)
    with pytest.raises(ImportError, match=r"gemini-live\[aec\]"):
        EchoCanceller()
