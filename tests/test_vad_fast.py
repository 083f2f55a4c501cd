"""The lone-frame VAD path (one 20 ms frame per call, as a phone sends) decides exactly
as the general path: the same level, the same probability, the same actions."""

from __future__ import annotations

import math
import random
import struct
from typing import Any, Final

import pytest

from gemini_live.audio import ulaw_to_pcm16
from gemini_live.vad import ActivityDetector, EnergyVad, VadAction, _level_dbfs, _levels_dbfs

np = pytest.importorskip("numpy")


def _reference_level(pcm: bytes) -> float:
    """The level from the exact integer sum of squares (Python ints), as rms_dbfs says."""
    n = len(pcm) // 2
    if n == 0:
        return -100.0
    total = sum(s * s for (s,) in struct.iter_unpack("<h", pcm))
    if total == 0:
        return -100.0
    return max(-100.0, 10.0 * math.log10(total / n / (32768.0 * 32768.0)))


def _reference_decide(vad: EnergyVad, floor: float, db: float) -> tuple[float, float]:
    """The decision as written before (builtin max/min): (probability, new floor)."""
    decision = max(vad.threshold_db, floor + vad.margin_db)
    p = min(1.0, max(0.0, 0.5 + (db - decision) / vad.ramp_db))
    if db < floor:
        floor = db
    else:
        floor += (db - floor) * (vad.floor_rise if p < 0.5 else vad.floor_rise_speech)
    return p, floor


def _frame(rng: random.Random, samples: int) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(2 * samples)  # digital silence
    if kind == 1:  # full scale, both signs
        return struct.pack(f"<{samples}h", *(rng.choice((-32768, 32767)) for _ in range(samples)))
    if kind == 2:  # mu-law decoded, as the phone bridge feeds it
        return ulaw_to_pcm16(bytes(rng.randrange(256) for _ in range(samples)))
    amp = rng.choice((1, 3, 30, 300, 3000, 32767))
    return struct.pack(f"<{samples}h", *(rng.randint(-amp, amp) for _ in range(samples)))


def _assert_same_state(fast: ActivityDetector, general: ActivityDetector) -> None:
    """The two detectors' turn state, pre-roll and noise floor are equal."""
    assert (fast.speaking, fast._speech_run, fast._silence_run) == (
        general.speaking,
        general._speech_run,
        general._silence_run,
    )
    assert fast._frames_in_utterance == general._frames_in_utterance
    assert list(fast._ring) == list(general._ring)
    assert fast.vad.noise_floor_db == general.vad.noise_floor_db  # type: ignore[attr-defined]


def test_lone_frame_level_is_the_exact_level() -> None:
    rng = random.Random(24)
    for samples in (1, 2, 80, 160, 320, 800, 1600, 2048, 2049, 4000):
        for _ in range(30):
            pcm = _frame(rng, samples)
            level = _level_dbfs(pcm)
            assert level == _reference_level(pcm)
            assert level == _levels_dbfs(pcm, 1)[0]
            assert type(level) is float
    assert _level_dbfs(b"") == -100.0


def test_decide_matches_the_builtin_min_max_formula() -> None:
    rng = random.Random(7)
    for _ in range(20):
        vad = EnergyVad(
            threshold_db=rng.uniform(-70, -30),
            margin_db=rng.uniform(0, 20),
            ramp_db=rng.uniform(0.5, 10),
            floor_rise=rng.uniform(0.001, 1.0),
            floor_rise_speech=rng.uniform(0.0, 0.1),
        )
        floor = vad.noise_floor_db
        for _ in range(300):
            db = rng.choice((-100.0, 0.0, rng.uniform(-100.0, 0.0)))
            expected, floor = _reference_decide(vad, floor, db)
            assert vad._decide(db) == expected
            assert vad.noise_floor_db == floor


class _GeneralEnergyVad(EnergyVad):
    """An EnergyVad the detector does not recognise: it takes the general path (one
    speech_probability per frame, rms_dbfs's int64 level)."""

    __slots__ = ()


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("emit_silence", [False, True])
def test_lone_frames_give_the_general_paths_actions(rate: int, emit_silence: bool) -> None:
    rng = random.Random(rate + emit_silence)
    fast = ActivityDetector(sample_rate=rate, emit_silence=emit_silence, end_ms=200)
    general = ActivityDetector(
        _GeneralEnergyVad(), sample_rate=rate, emit_silence=emit_silence, end_ms=200
    )
    samples = rate // 50
    got: list[VadAction] = []
    want: list[VadAction] = []
    loud = False
    for _ in range(1500):
        if rng.random() < 0.08:
            loud = not loud
        frame = _frame(rng, samples) if loud else bytes(2 * samples)
        if not loud and rng.random() < 0.3:
            frame = _frame(rng, samples)
        got += fast.process(frame)
        want += general.process(frame)
    assert got == want
    assert fast.utterances == general.utterances > 3
    assert fast.vad.noise_floor_db == general.vad.noise_floor_db  # type: ignore[attr-defined]


@pytest.mark.parametrize("emit_silence", [False, True])
@pytest.mark.parametrize("general_vad", [False, True])
def test_one_frame_at_a_time_gives_the_loops_actions(emit_silence: bool, general_vad: bool) -> None:
    """The lone-frame step (_one_frame) against the loop over a chunk's frames (the same
    audio in chunks of 2 to 5 frames, merge off): the same actions and state, with
    starts, ends by silence and ends by the utterance limit."""
    rng = random.Random(emit_silence * 2 + general_vad)

    def detector() -> ActivityDetector:
        return ActivityDetector(
            _GeneralEnergyVad() if general_vad else None,
            sample_rate=8000,
            emit_silence=emit_silence,
            start_ms=40,
            end_ms=100,
            pre_roll_ms=60,
            max_utterance_s=0.5,
        )

    lone, chunked = detector(), detector()
    taken = 0
    one_frame = lone._one_frame

    def counted(chunk: bytes, p: float, out: list[VadAction]) -> None:
        nonlocal taken
        taken += 1
        one_frame(chunk, p, out)

    lone._one_frame = counted  # type: ignore[method-assign]
    frames: list[bytes] = []
    loud = False
    for _ in range(3000):
        if rng.random() < 0.1:
            loud = not loud
        frames.append(_frame(rng, 160) if loud else bytes(320))
    got: list[VadAction] = []
    for f in frames:
        got += lone.process(f)
    want: list[VadAction] = []
    at = 0
    while at < len(frames):
        k = rng.randint(2, 5)
        want += chunked.process(b"".join(frames[at : at + k]))
        at += k
    assert got == want
    assert lone.utterances == chunked.utterances > 20
    assert [a.kind for a in got].count("end") > 20
    assert lone.speaking == chunked.speaking
    if general_vad:
        assert taken == len(frames)  # every lone frame took the one-frame step
    else:
        # process()'s steady step (no edge) takes the others without _one_frame.
        assert 0 < taken < len(frames)


def test_lone_frame_actions_are_plain_frozen_vad_actions() -> None:
    import dataclasses
    from typing import Literal

    from gemini_live.vad import _action

    kinds: tuple[Literal["audio", "silence"], ...] = ("audio", "silence")
    for kind in kinds:
        a = _action(kind, b"\x01\x02")
        assert type(a) is VadAction
        assert a == VadAction(kind, b"\x01\x02")
        assert hash(a) == hash(VadAction(kind, b"\x01\x02"))
        assert repr(a) == repr(VadAction(kind, b"\x01\x02"))
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.audio = b""  # type: ignore[misc]


def test_lone_frame_level_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    rng = random.Random(3)
    frames = [_frame(rng, 160) for _ in range(40)]
    with_numpy = [_level_dbfs(f) for f in frames]
    monkeypatch.setitem(sys.modules, "numpy", None)  # numpy not installed
    monkeypatch.setattr("gemini_live.vad._numpy_tried", False)
    without = [_level_dbfs(f) for f in frames]
    assert without == pytest.approx(with_numpy, abs=1e-9)
    assert [(w > -100.0) for w in without] == [(w > -100.0) for w in with_numpy]


#: The amplitude of a square wave whose level is some runs' absolute threshold, exactly.
_EDGE_AMP: Final = 150


def _edge_frame(rng: random.Random, samples: int) -> bytes:
    """A frame whose level is at or near a decision point: the absolute threshold
    (-50 dBFS, about 104, or exactly :data:`_EDGE_AMP`'s level), a learned floor plus
    the margin (a repeated level: exactly the floor with no margin), or the quietest
    level above digital silence."""
    kind = rng.randrange(4)
    if kind == 0:  # one sample of 1
        pcm = bytearray(2 * samples)
        pcm[0] = 1
        return bytes(pcm)
    amp = rng.choice((_EDGE_AMP, rng.randint(60, 180), rng.randint(1, 12), rng.randint(300, 1200)))
    return struct.pack(f"<{samples}h", *(amp if i & 1 else -amp for i in range(samples)))


def _stream(rng: random.Random, samples: int, count: int) -> list[bytes]:
    """``count`` frames of speech, silence and edge levels, in runs."""
    frames: list[bytes] = []
    kind = 0
    for _ in range(count):
        if rng.random() < 0.12:
            kind = rng.randrange(3)
        if kind == 0:
            frames.append(bytes(2 * samples) if rng.random() < 0.8 else _frame(rng, samples))
        elif kind == 1:
            frames.append(_frame(rng, samples))
        else:
            frames.append(_edge_frame(rng, samples))
    return frames


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("emit_silence", [False, True])
@pytest.mark.parametrize("merge", [False, True])
def test_one_and_two_frame_chunks_give_the_general_paths_actions(
    rate: int, emit_silence: bool, merge: bool
) -> None:
    """process()'s one-call step for one or two whole frames (a phone's 20 ms, a page's
    40 ms) against the general path (a detector it does not recognise: one
    speech_probability per frame, the int64 level): every action, in order, and the
    state after each chunk, with starts, ends by silence and ends by the utterance
    limit. The fast detector never reaches the general probabilities."""
    rng = random.Random(rate * 4 + emit_silence * 2 + merge)

    def detector(general_vad: bool) -> ActivityDetector:
        edge = _reference_level(struct.pack("<2h", _EDGE_AMP, -_EDGE_AMP))
        vad = (_GeneralEnergyVad if general_vad else EnergyVad)(
            threshold_db=rng.choice((-50.0, edge)),
            margin_db=rng.choice((12.0, 6.0, 0.0)),
        )
        return ActivityDetector(
            vad,
            sample_rate=rate,
            emit_silence=emit_silence,
            merge=merge,
            start_ms=rng.choice((20, 40, 60)),
            end_ms=rng.choice((20, 40, 100, 200)),
            pre_roll_ms=rng.choice((0, 20, 100)),
            max_utterance_s=rng.choice((None, 0.06, 0.5)),
        )

    for _ in range(8):
        settings = rng.getstate()
        fast = detector(False)
        rng.setstate(settings)
        general = detector(True)

        def refused(chunk: bytes, frames: int) -> list[float]:
            raise AssertionError("the one-call step took the general probabilities")

        fast._probabilities = refused  # type: ignore[method-assign]
        samples = rate // 50
        frames = _stream(rng, samples, 1000)
        at = 0
        ends = 0
        while at < len(frames):
            k = rng.choice((1, 2, 2, 2))
            chunk = b"".join(frames[at : at + k])
            at += k
            got = fast.process(chunk)
            want = general.process(chunk)
            assert got == want
            assert all(type(a) is VadAction for a in got)
            ends += [a.kind for a in got].count("end")
            _assert_same_state(fast, general)
        assert fast.utterances == general.utterances > 5
        assert ends > 5
        assert fast.finish() == general.finish()


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("emit_silence", [False, True])
def test_lone_frames_steady_step_is_one_frames(rate: int, emit_silence: bool) -> None:
    """process()'s steady step for a lone frame (inside an utterance with no end, or
    silence before a start) against _one_frame on the same probability: the same
    actions and state after every frame, on random levels at and near the decision
    points and random detector settings; _one_frame runs only for the frames that
    start or end an utterance (or pass silence through)."""
    rng = random.Random(rate + 7 * emit_silence)
    edges = total = 0
    for _ in range(6):
        edge = _reference_level(struct.pack("<2h", _EDGE_AMP, -_EDGE_AMP))
        settings = {
            "threshold_db": rng.choice((-50.0, edge)),
            "margin_db": rng.choice((12.0, 6.0, 0.0)),
        }
        shape = {
            "sample_rate": rate,
            "emit_silence": emit_silence,
            "start_ms": rng.choice((20, 40, 60)),
            "end_ms": rng.choice((20, 40, 100, 200)),
            "pre_roll_ms": rng.choice((0, 20, 100)),
            "max_utterance_s": rng.choice((None, 0.06, 0.5)),
        }
        fast = ActivityDetector(EnergyVad(**settings), **shape)  # type: ignore[arg-type]
        general = ActivityDetector(_GeneralEnergyVad(**settings), **shape)  # type: ignore[arg-type]

        def counted(
            chunk: bytes,
            p: float,
            out: list[VadAction],
            det: ActivityDetector = fast,
            one_frame: Any = fast._one_frame,
        ) -> None:
            nonlocal edges
            before = (det.speaking, det.utterances)
            one_frame(chunk, p, out)
            # Only an edge, or emit_silence's pass-through before a start, gets here.
            assert (emit_silence and not before[0]) or (det.speaking, det.utterances) != before
            edges += 1

        fast._one_frame = counted  # type: ignore[method-assign]
        frames = _stream(rng, rate // 50, 800)
        for frame in frames:
            got = fast.process(frame)
            assert got == general.process(frame)
            assert all(type(a) is VadAction for a in got)
            _assert_same_state(fast, general)
        assert fast.utterances == general.utterances > 3
        total += len(frames)
    assert 0 < edges < total  # the others took the steady step
