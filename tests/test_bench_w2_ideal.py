"""W2 against the ideal callback client: the interleaved wall-clock rounds, the ratio table,
and the W2 instruction workload (``python -m bench.w2_instructions``) in a tiny run without
valgrind. Speed is never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report, run, w2_instructions  # noqa: E402
from bench.common import W2_FILL  # noqa: E402
from bench.instructions import GateError  # noqa: E402
from bench.procs import PY, ServerProc  # noqa: E402
from bench.server import BenchServer  # noqa: E402

pytestmark = [pytest.mark.bench, pytest.mark.timeout(120)]


def _run_with_server(
    args: list[str], **server: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``python -m <args>`` against its own bench server (port appended); the process and
    the server's counters once it ended."""
    with ServerProc(framing="service", **server) as srv:
        proc = subprocess.run(
            [PY, "-m", *args, "--port", str(srv.port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return proc, srv.stats()


@pytest.mark.parametrize("client", ["ideal-cb", "gemini-live-picows-cb", "floor"])
def test_w2_instruction_workload_runs_a_fixed_number_of_ticks_end_to_end(client: str) -> None:
    periods, sessions, fill = 6, 3, 9
    proc, stats = _run_with_server(
        [
            *("bench.w2_instructions", "--child", client, "--sessions", str(sessions)),
            *("--slowdown", "1", "--warmup-periods", "2", "--periods", str(periods)),
            *("--fill", str(fill), "--timeout", "30"),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    data: dict[str, Any] = json.loads(line[len("RESULT ") :])
    # Every session got one chunk per period inside the window, none outside it counted.
    assert data["sent"] == sessions * periods
    assert data["messages"] == data["sent"] + data["replies"]
    assert data["replies"] > 0
    assert stats["setups"] == sessions
    # The fill's and the warm-up's chunks went out too (before the window), and every
    # chunk reached the server: the setup, the fill, 2 warm-up periods, the window.
    assert stats["frames_in"] >= sessions * (1 + fill + 2 + periods)


def test_w2_instruction_child_can_profile_the_same_window(tmp_path: Path) -> None:
    import pstats

    out = tmp_path / "w2.prof"
    with ServerProc(framing="service", pace_scale=2.0) as server:
        proc = subprocess.run(
            [
                PY,
                "-m",
                "bench.w2_instructions",
                "--child",
                "ideal-cb",
                "--port",
                str(server.port),
                "--sessions",
                "2",
                "--slowdown",
                "2",
                "--warmup-periods",
                "1",
                "--periods",
                "3",
                "--timeout",
                "30",
                "--cprofile",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    sends = [v[1] for (_, _, name), v in stats.items() if name == "send_audio"]
    # The profiler ran for the window only: exactly its 3 periods x 2 sessions of chunks.
    assert sends == [6]


def test_server_pace_scale_stretches_the_reply_clock_and_rejects_nonsense() -> None:
    assert BenchServer().tick_s == pytest.approx(0.005)
    assert BenchServer(pace_scale=100).tick_s == pytest.approx(0.5)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="pace_scale"):
            BenchServer(pace_scale=bad)


def test_w2_instruction_options_are_checked() -> None:
    for bad in (["--sessions", "0"], ["--slowdown", "0"], ["--clients", "nope"], ["--fill", "-1"]):
        with pytest.raises(SystemExit):
            w2_instructions.main(bad)


def test_w2_instruction_table_compares_each_consumer_with_its_ideal_client() -> None:
    counts = [
        w2_instructions.W2Count("ideal-cb", "asyncio", 40_000_000, 1000, 600, 400, 0),
        w2_instructions.W2Count("gemini-live-picows-cb", "asyncio", 50_000_000, 1000, 600, 400, 0),
        w2_instructions.W2Count("floor", "asyncio", 30_000_000, 1000, 600, 400, 2),
    ]
    table = w2_instructions.table(counts)
    assert "| gemini-live `on_event` | 50.0 k | 1.25× | 1,000 | 0 |" in table
    assert "| transport floor (picows, no JSON, no events) | 30.0 k |  | 1,000 | 2 |" in table


def test_w2_cache_sim_reads_the_dump_and_tables_misses_per_message(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text(
        "version: 1\nevents: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"
        "summary: 40000000 1 2 600000 300000 100000 1000 30000 20000\n"
    )
    events = w2_instructions.dump_events(dump, "x")
    assert events["Ir"] == 40_000_000 and events["DLmw"] == 20_000
    ideal = w2_instructions.W2Count("ideal-cb", "uvloop", 40_000_000, 1000, 600, 400, 0, events)
    mine = w2_instructions.W2Count(
        "gemini-live-picows-cb",
        "uvloop",
        44_000_000,
        1000,
        600,
        400,
        0,
        events | {"Ir": 44_000_000},
    )
    assert ideal.l1_misses == 1_000_000 and ideal.ll_misses == 51_000
    # Ir + 10 x L1 + 100 x LL, per message: 40,000 + 10,000 + 5,100.
    assert ideal.cycle_estimate / ideal.messages == 55_100
    table = w2_instructions.cache_table([ideal, mine])
    assert "| ideal client, callback | uvloop | 40,000.0 | 300.0 | 100.0 | 600.0 |" in table
    assert table.splitlines()[-1].endswith("| 1.07× |")
    (tmp_path / "empty").write_text("version: 1\n")
    with pytest.raises(GateError):
        w2_instructions.dump_events(tmp_path / "empty", "x")


def _w2_run(mode: str, loop: str, rnd: int, cpu: float) -> dict[str, Any]:
    return {
        "mode": mode,
        "loop": loop,
        "sessions": 300,
        "round": rnd,
        "cpu_us_per_msg": cpu,
        "sys_us_per_msg": cpu / 4,
        "cpu_pct": 30.0,
        "send_rate": 1.0,
        "recv_rate": 1.0,
        "latency_ms_p50": 1.0,
        "latency_ms_p99": 5.0,
        "send_lag_ms_p99": 5.0,
        "real_time": True,
    }


def test_w2_vs_ideal_gives_medians_and_per_round_ratios() -> None:
    runs = [
        _w2_run("ideal-cb", "asyncio", 0, 10.0),
        _w2_run("gemini-live-picows-cb", "asyncio", 0, 13.0),
        _w2_run("ideal-cb", "asyncio", 1, 20.0),
        _w2_run("gemini-live-picows-cb", "asyncio", 1, 24.0),
        _w2_run("ideal-cb", "asyncio", 2, 12.0),
        _w2_run("gemini-live-picows-cb", "asyncio", 2, 15.0),
        {**_w2_run("floor", "asyncio", 0, 1.0), "error": "boom"},
        _w2_run("floor", "uvloop", 0, 8.0),  # no ideal-cb on uvloop: no row
    ]
    rows = {r["mode"]: r for r in report.w2_vs_ideal({"runs": runs})}
    assert set(rows) == {"ideal-cb", "gemini-live-picows-cb"}
    gl = rows["gemini-live-picows-cb"]
    assert gl["rounds"] == 3 and gl["cpu_us_per_msg"] == 15.0
    assert gl["x_ideal"] == pytest.approx(15.0 / 12.0)
    assert gl["x_ideal_rounds"] == pytest.approx(1.25)  # median of 1.3, 1.2, 1.25
    assert gl["sys_us_per_msg"] == pytest.approx(15.0 / 4)
    md = report.markdown({"meta": {}, "config": {}, "w2": {"runs": runs}})
    assert "### W2: CPU per message against the ideal callback client" in md
    assert (
        "| 300 | asyncio | gemini-live (picows, on_event) | 3 | 15.0 | 13.0 | 3.8 | 1.25× |" in md
    )


def test_w2_rounds_interleave_series_and_stop_only_when_no_round_kept_real_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, int]] = []

    class FakeServer:
        port, pid, framing = 1, 1, "service"

        def __init__(self, **kwargs: object) -> None:
            pass

        def __enter__(self) -> FakeServer:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def stats(self) -> dict[str, Any]:
            return {}

    def fake_client(args: list[str], timeout: float) -> dict[str, Any]:
        mode, n = args[args.index("--mode") + 1], int(args[args.index("--sessions") + 1])
        calls.append((mode, n))
        # "a" keeps real time in its second round only at N = 1; "b" never does.
        ok = mode == "a" and n == 1 and sum(1 for c in calls if c == ("a", 1)) == 2
        p99 = 5.0 if ok else 50.0
        return {
            "send_rate": 1.0,
            "recv_rate": 1.0,
            "latency_ms_p99": p99,
            "send_lag_ms_p99": 1.0,
            "cpu_pct": 1.0,
        }

    monkeypatch.setattr(run, "ServerProc", FakeServer)
    monkeypatch.setattr(run, "run_client", fake_client)
    cfg = run.Config(w2_ns=[1, 2], w2_rounds=2, w2_series=[("a", "asyncio"), ("b", "asyncio")])
    out = run.run_w2(cfg)
    assert calls == [("a", 1), ("b", 1), ("a", 1), ("b", 1), ("a", 2), ("a", 2)]
    assert out["rounds"] == 2
    skipped = [r for r in out["runs"] if "skipped" in r]
    assert skipped == [
        {"mode": "b", "loop": "asyncio", "sessions": 2, "skipped": "fell behind at N=1"}
    ]


def test_w2_rounds_option() -> None:
    cfg, _ = run.parse_args(["--only", "w2", "--w2-rounds", "3", "--modes", "ideal-cb"])
    assert cfg.w2_rounds == 3
    with pytest.raises(SystemExit):
        run.parse_args(["--w2-rounds", "0"])


def test_w2_fill_option_defaults_to_a_full_window_and_refuses_negative() -> None:
    cfg, _ = run.parse_args(["--only", "w2", "--modes", "ideal-cb"])
    assert cfg.w2_fill == W2_FILL
    cfg, _ = run.parse_args(["--only", "w2", "--w2-fill", "7", "--modes", "ideal-cb"])
    assert cfg.w2_fill == 7
    with pytest.raises(SystemExit):
        run.parse_args(["--w2-fill", "-1"])


def test_wall_clock_w2_sends_the_fill_before_its_clock() -> None:
    sessions, fill = 2, 60
    proc, stats = _run_with_server(
        [
            *("bench.client", "w2", "--mode", "ideal-cb", "--sessions", str(sessions)),
            *("--warmup", "0.1", "--window", "0.2", "--settle", "0"),
            *("--fill", str(fill), "--timeout", "30"),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The clock sends ~50 chunks per second per session for the 0.3 s it runs (~15); the
    # fill's 60 per session come on top, before it: the setup, the fill, the clock's.
    assert stats["frames_in"] >= sessions * (1 + fill)
