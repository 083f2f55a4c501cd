"""The deterministic instruction gate (``python -m bench.instructions``) and its ideal clients.

``test_instructions_per_round_trip_within_budget`` runs every client on both loops under
callgrind (about two minutes on two cores) and fails when a count leaves its budget in
``bench/instruction_budgets.json`` by more than ±2 %. It needs valgrind: in CI (``CI``
set) a missing valgrind is a failure, elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import ideal, instructions  # noqa: E402
from bench.common import SERVICE, Frames  # noqa: E402
from bench.instructions import CLIENTS, LOOPS, Count  # noqa: E402
from bench.procs import ServerProc, run_client  # noqa: E402


def _budgets(value: int = 100_000) -> dict[str, object]:
    return {
        "round_trips": 200,
        "tolerance": 0.02,
        "environment": instructions.environment(),
        "budgets": {"floor": {"asyncio": value}},
    }


def _count(per_round_trip: float) -> Count:
    return Count("floor", "asyncio", 200, round(per_round_trip * 200))


def test_compare_keeps_counts_within_two_percent() -> None:
    for value in (98_100, 100_000, 101_900):
        assert instructions.compare([_count(value)], _budgets()) == []


def test_compare_fails_a_regression_beyond_two_percent() -> None:
    [problem] = instructions.compare([_count(102_100)], _budgets())
    assert "floor (asyncio)" in problem
    assert "+2.1% over the budget of 100,000" in problem
    assert "regression" in problem


def test_compare_fails_an_improvement_beyond_two_percent_and_asks_to_lower_the_budget() -> None:
    [problem] = instructions.compare([_count(97_000)], _budgets())
    assert "-3.0% under the budget" in problem
    assert "python -m bench.instructions --update" in problem


def test_compare_fails_a_count_without_budget_and_names_changed_versions() -> None:
    budgets = _budgets()
    budgets["environment"] = {**instructions.environment(), "msgspec": "0.0.1"}
    problems = instructions.compare([Count("ideal-cb", "uvloop", 200, 20_000_000)], budgets)
    assert "ideal-cb (uvloop)" in problems[0]
    assert "no budget" in problems[0]
    assert "msgspec '0.0.1' ->" in problems[1]


def test_budget_file_has_one_number_per_client_and_loop() -> None:
    data = instructions.load_budgets()
    assert data["tolerance"] == 0.02
    assert data["round_trips"] % 50 == 0
    table = data["budgets"]
    assert set(table) == set(CLIENTS)
    for client in CLIENTS:
        assert set(table[client]) == set(LOOPS)
        assert all(isinstance(v, int) and v > 10_000 for v in table[client].values())


def test_ideal_codec_decodes_every_w1_frame_kind() -> None:
    frames = Frames("service")
    audio = ideal.to_event(memoryview(frames.audio))
    assert audio.audio is not None and len(audio.audio) == 1920
    words = ideal.to_event(frames.audio_transcript[1])
    assert words.output_text == "," and words.audio == audio.audio
    assert ideal.to_event(frames.input_transcript).input_text == "What is the weather in Paris?"
    turn = ideal.to_event(frames.turn)
    assert turn.turn_complete and turn.usage is not None and turn.usage.total_token_count == 1801
    assert ideal.to_event(frames.setup_complete).setup_complete
    assert ideal.to_event(frames.go_away).go_away
    assert ideal.to_event(frames.resumption_update("h-1")).handle == "h-1"


def test_ideal_codec_sends_the_documented_audio_message() -> None:
    import json

    from bench.common import FLOOR_AUDIO_FRAME, PCM_IN

    assert json.loads(ideal.audio_frame(PCM_IN)) == json.loads(FLOOR_AUDIO_FRAME)
    assert json.loads(ideal.setup_frame("h-2"))["setup"]["sessionResumption"] == {"handle": "h-2"}


def test_ideal_codec_rejects_bad_frames() -> None:
    import msgspec

    with pytest.raises(msgspec.DecodeError):
        ideal.to_event(b'{"serverContent": ')
    with pytest.raises(msgspec.ValidationError):
        ideal.to_event(b'{"serverContent": {"turnComplete": "yes"}}')
    bad_b64 = SERVICE.audio.replace(b'"data": "', b'"data": "!!')
    with pytest.raises(ValueError):
        ideal.to_event(bad_b64)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["ideal-cb", "ideal-queue"])
def test_ideal_clients_run_w1_and_w3(mode: str) -> None:
    with ServerProc(framing="service") as server:
        port = ["--port", str(server.port), "--timeout", "30"]
        w1 = run_client(
            ["w1", "--mode", mode, *port, "--chunks", "100", "--ping-pong", "50", "--paced", "50"],
            60,
        )
        assert "error" not in w1, w1
        assert set(w1["regimes"]) == {"pipelined", "ping-pong", "paced"}
        w3 = run_client(
            ["w3", "--mode", mode, *port, "--connects", "2", "--idle", "2", "--resumes", "1"],
            60,
        )
        assert "error" not in w3, w3
        assert len(w3["resume_ms"]) == 1


@pytest.mark.perf_gate
@pytest.mark.timeout(900)
def test_instructions_per_round_trip_within_budget() -> None:
    if instructions.valgrind() is None:
        reason = "valgrind is not installed (Debian: apt-get install valgrind)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/install-perf-tools installs it in CI")
        pytest.skip(f"{reason}; the instruction gate runs in CI")
    budgets = instructions.load_budgets()
    counts = instructions.measure(
        list(CLIENTS), list(LOOPS), round_trips=int(budgets["round_trips"]), jobs=2
    )
    problems = instructions.compare(counts, budgets)
    assert not problems, "\n".join([*problems, "", instructions.table(counts)])
