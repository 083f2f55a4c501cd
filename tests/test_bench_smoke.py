"""Smoke-run the benchmarks: every workload runs end to end. Speed is never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gemini_live import codec
from gemini_live import events as E
from gemini_live.testing._oracle import validate_server_frame

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import FRAMINGS, OUT_CHUNK_BYTES, PCM_OUT, Frames  # noqa: E402

pytestmark = [pytest.mark.bench, pytest.mark.timeout(120)]


def _bench(*args: str, timeout: float = 100) -> str:
    """``python -m <args>`` from the repository root; what it printed (it must exit 0
    within ``timeout`` seconds)."""
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def _bench_results(*args: str) -> list[dict[str, Any]]:
    """:func:`_bench`: the rows it printed as ``RESULT`` lines."""
    return [
        json.loads(x.removeprefix("RESULT "))
        for x in _bench(*args).splitlines()
        if x.startswith("RESULT ")
    ]


def test_bench_smoke_runs_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    stdout = _bench("bench", "--smoke", "--no-plot", "--out", str(out))
    for title in ("W1", "W2", "W3", "Scale-out"):
        assert title in stdout
    data = json.loads(out.read_text())
    rows = data["w1"]["summary"]
    # Every client ran every regime without failing (numbers are reported, never asserted).
    for regime in ("pipelined", "ping-pong", "paced"):
        ok = {r["mode"] for r in rows if r["regime"] == regime and r["ok"] == r["runs"] > 0}
        assert {
            "gemini-live-picows",
            "gemini-live-picows-cb",
            "google-genai",
            "floor",
            "floor-b64",
        } <= ok
    assert data["w2"]["runs"] and data["micro"]["encode"] and data["micro"]["decode"]
    # The full collection before each W2 window is reported (outside the window), with
    # the objects the collector tracks, and shown in the W2 table.
    for r in data["w2"]["runs"]:
        if "error" not in r and "skipped" not in r:
            assert r["pre_collect_ms"] >= 0 and r["gc_tracked"] > 0
            assert r["invol_switches_per_msg"] >= 0 and r["minflt_per_msg"] >= 0
    assert "full GC before ms" in stdout
    assert all("error" not in r for r in data["scale"]["runs"])


@pytest.mark.parametrize("framing", FRAMINGS)
def test_bench_frames_are_valid_server_frames(framing: str) -> None:
    frames = Frames(framing)
    every = [
        frames.setup_complete,
        frames.audio,
        *frames.audio_transcript,
        frames.input_transcript,
        frames.turn,
        frames.go_away,
        frames.w2_frame(12345.678),
        frames.resumption_update("h-1"),
    ]
    for frame in every:
        validate_server_frame(frame)
        codec.decode_events(frame)
        if framing == "service":
            assert frame.startswith(b"{\n  ") and frame.endswith(b"}\n")
    # The audio frames are the ones the codec's fast path exists for.
    for frame in (frames.audio, *frames.audio_transcript, frames.w2_frame(1.0)):
        assert codec.fast_events(frame) == codec.decode_events(frame)
        assert codec.decode_events(frame)[0] == E.ModelAudio(PCM_OUT, 24000)
    assert len(PCM_OUT) == OUT_CHUNK_BYTES


def test_bench_w1_turn_mixes_every_frame_kind() -> None:
    frames = Frames("service")
    turn = [f for k in range(1, 51) for f in frames.w1_replies(k)]
    audio = [f for f in turn if b'"modelTurn"' in f]
    assert len(audio) == 50  # one audio reply per chunk
    assert sum(b'"outputTranscription"' in f for f in audio) == 10
    assert turn[0] == frames.input_transcript and turn[-1] == frames.turn


def test_bench_density_and_latency_under_load_smoke(tmp_path: Path) -> None:
    """bench.density: a tiny density level of each kind and one loaded latency row each."""
    out = tmp_path / "density.json"
    stdout = _bench(
        "bench.density",
        "--levels",
        "3",
        "--bridge-levels",
        "2",
        "--load",
        "50",
        "--load-n",
        "2",
        # A turn of the bridge's loaded workload lasts ~1.4 s (25 replies, a 400 ms
        # pause): a 2 s window holds at least one reply start per call.
        "--seconds",
        "2",
        "--delivery",
        "2000",
        "--json",
        str(out),
        timeout=110,
    )
    assert "| kind | N |" in stdout and "frame -> event" in stdout
    data = json.loads(out.read_text())
    kinds = ("floor", "relay", "bridge")
    # Every kind ran and its events were timed (numbers are reported, never asserted).
    assert [r["kind"] for r in data["density"]] == list(kinds)
    assert all("error" not in r and r["events"] > 0 for r in data["density"])
    # Every window reports its collections per generation and its loop-lag tail.
    for r in data["density"]:
        assert len(r["gc_collections"]) == len(r["gc_longest_ms"]) == 3
        assert r["loop_lag_samples"] > 0 and r["loop_lag_max_ms"] >= r["loop_lag_p99_ms"]
        assert (
            r["gc_tracked"] > 0
            and r["gc_full_ms"] > 0
            and r["machine_busy_pct"] >= 0
            and r["server_cpu_pct"] >= 0
        )
    assert all(r["clients_cpu_pct"] >= 0 for r in data["density"] if r["kind"] != "floor")
    # bench.loadgen's clients by default; with two CPUs the measured process alone on one.
    pinned = len(os.sched_getaffinity(0)) >= 2
    for r in data["density"]:
        assert r["placement"]["pinned"] is pinned and r["peers_cpu_pct"] >= 0
        if pinned:
            assert r["placement"]["measured"] and r["placement"]["peers"]
            assert not set(r["placement"]["measured"]) & set(r["placement"]["peers"])
        if r["kind"] != "floor":
            assert r["clients"] == "loadgen" and r["client_errors"] == 0
            assert r["client_frames"] > 0 and r["clients_cpu_us_per_frame"] > 0
    assert next(r for r in data["density"] if r["kind"] == "bridge")["marks_echoed"] > 0
    assert "collections gen 0 / 1 / 2" in stdout and "Placement: " in stdout
    loaded = {r["kind"]: r for r in data["load"]}
    assert set(loaded) == set(kinds)
    assert all(r["events"] > 0 and r["burner_pct"] > 0 for r in loaded.values())
    # The relay and the bridge also timed the first audio of a reply to their socket.
    assert loaded["relay"]["replies_timed"] > 0 and loaded["bridge"]["replies_timed"] > 0
    assert data["delivery"]["pump_us"] > 0 and data["delivery"]["async_for_us"] > 0


def test_bench_density_runs_the_websockets_clients_unpinned_for_comparison(
    tmp_path: Path,
) -> None:
    """``--clients websockets --no-pin``: the previous clients, on any CPU, still run
    (here through the ASGI inbound path of both endpoints)."""
    out = tmp_path / "density.json"
    _bench(
        "bench.density",
        "--kinds",
        "relay-asgi,bridge-asgi",
        "--clients",
        "websockets",
        "--no-pin",
        "--levels",
        "2",
        "--bridge-levels",
        "2",
        "--load",
        "",
        "--seconds",
        "1",
        "--delivery",
        "0",
        "--json",
        str(out),
        timeout=110,
    )
    rows = json.loads(out.read_text())["density"]
    assert [r["kind"] for r in rows] == ["relay-asgi", "bridge-asgi"]
    for r in rows:
        assert "error" not in r and r["clients"] == "websockets" and r["client_errors"] == 0
        assert r["placement"]["pinned"] is False and r["audio_rate"] > 0


def test_bench_density_profile_counts_system_calls_per_browser_second(tmp_path: Path) -> None:
    """``--profile`` prints the system calls per connection-second; through the relay a
    reply's audio and transcript leave in one write and the socket is not paused and
    resumed around every inbound frame (numbers of one tiny run: bounds, not values)."""
    stdout = _bench(
        "bench.density",
        "--kinds",
        "relay",
        "--levels",
        "3",
        "--load",
        "",
        "--seconds",
        "2",
        "--delivery",
        "0",
        "--profile",
        str(tmp_path / "relay.prof"),
        timeout=110,
    )
    line = next(x for x in stdout.splitlines() if x.startswith('{"per_connection_second"'))
    counts = json.loads(line)["per_connection_second"]
    # 50 upstream chunks a second per browser; 25 replies of audio + transcript down.
    assert counts["upstream writes"] > 20 and counts["system calls"] > 0
    assert counts["socket.send"] < 40, counts  # two writes per reply would be ~50
    assert counts["epoll_ctl add"] + counts["epoll_ctl del"] < 10, counts  # was ~2 per frame


def test_w2_real_time_means_p99_under_one_frame() -> None:
    from bench.run import real_time

    ok = {"send_rate": 1.0, "recv_rate": 1.0, "latency_ms_p99": 19.0, "send_lag_ms_p99": 5.0}
    assert real_time(ok)
    assert not real_time({**ok, "latency_ms_p99": 25.0})
    assert not real_time({**ok, "send_lag_ms_p99": 21.0})


def test_w3_import_time_loads_cached_bytecode_whatever_the_environment(tmp_path: Path) -> None:
    # The import is timed as after an install (bytecode compiled once), even when the
    # environment says not to write bytecode and the source tree has no __pycache__.
    from bench.run import import_time

    first = import_time("bench.ideal", str(tmp_path))
    assert first["s"] > 0, first
    cached = [p.name for p in tmp_path.rglob("*.pyc")]
    assert f"ideal.{sys.implementation.cache_tag}.pyc" in cached
    assert import_time("bench.ideal", str(tmp_path))["s"] > 0


def test_bench_memory_runs_and_the_handle_empties_the_window() -> None:
    (row,) = _bench_results("bench.memory", "--sessions", "5", "--turns", "2", "--chunks", "10")
    assert row["sessions"] == 5
    assert row["mid_turn_window_records"] == 10  # the user turn, kept until a handle
    assert row["after_handle_window_records"] == 0  # the handle covered it


def test_bench_memory_tracked_counts_objects_per_session() -> None:
    rows = _bench_results("bench.memory", "--tracked", "--sessions", "4", "--chunks", "5")
    assert [r["client"] for r in rows] == ["gemini-live-picows-cb", "ideal-cb"]
    # One connection object per session, counted by its type.
    own = {
        "gemini-live-picows-cb": "gemini_live.session.Session",
        "ideal-cb": "bench.modes._IdealConn",
    }
    for r in rows:
        assert r["sessions"] == 4 and r["idle_per_session"] > 0
        assert r["idle_by_type"][own[r["client"]]] == 1
        assert r["gc_ms_idle"] >= 0 and r["gc_ms_mid_turn"] >= 0


def test_bench_memory_w2_gc_counts_collections_in_a_w2_window() -> None:
    (row,) = _bench_results(
        "bench.memory",
        "--w2-gc",
        "--sessions",
        "3",
        "--slowdown",
        "2",
        "--clients",
        "gemini-live-picows-cb",
    )
    assert row["client"] == "gemini-live-picows-cb" and row["sessions"] == 3
    assert row["messages"] > 0 and len(row["collections"]) == 3 and len(row["gc_ms"]) == 3


@pytest.mark.parametrize("rate", [8000, 16000])
def test_bench_bridge_cost_runs_whole_calls_on_a_virtual_clock(rate: int) -> None:
    """bench.bridge_cost: every call streams and is paced as in real time (50 media
    frames a second out, marks, the caller's audio upstream at the bridge's rate)."""
    from bench import bridge_cost

    res = bridge_cost.run(calls=2, seconds=2.0, warmup=0.5, input_rate=rate, profile=None)
    per = res["per_call_second"]
    assert res["input_rate"] == rate and res["cpu_s"] > 0
    assert 45 <= per["media_out"] <= 50  # 20 ms frames, paced (the first 100 ms is silent)
    assert 4 <= per["marks"] <= 6  # one every 200 ms and one per reply
    # Continuous speech (the VAD's hangover spans the pauses): 50 frames a second, in
    # 100 ms writes (upstream_ms with the VAD; a mark's echo may send what is held on its
    # own), every byte of it.
    assert 9 <= per["upstream_chunks"] <= 14
    assert per["upstream_bytes"] == pytest.approx(rate * 2, rel=0.05)


def test_bench_bridge_cost_shared_clock_sends_the_same_traffic() -> None:
    """--shared-clock: one timer per tick for all calls' carriers and model, the same
    frames, replies and marks per call-second as one timer per call."""
    from bench import bridge_cost

    own = bridge_cost.run(calls=3, seconds=2.0, warmup=0.5, input_rate=8000, profile=None)
    shared = bridge_cost.run(
        calls=3, seconds=2.0, warmup=0.5, input_rate=8000, profile=None, shared_clock=True
    )
    assert shared["shared_clock"] is True and own["shared_clock"] is False
    o, s = own["per_call_second"], shared["per_call_second"]
    for key in ("media_out", "media_messages", "marks", "inline"):
        assert s[key] == pytest.approx(o[key], rel=0.02), key
    assert s["upstream_bytes"] == pytest.approx(o["upstream_bytes"], rel=0.02)


def test_bench_density_gc_watch_counts_collections_and_the_lag_they_caused() -> None:
    """bench.density.GcWatch: a collection in the window is counted under its generation,
    and a loop-lag sample over the limit that overlaps a long one is attributed to it."""
    import gc

    from bench.density import GcWatch

    watch = GcWatch()
    gc.callbacks.append(watch)
    try:
        watch.on = True
        gc.collect(2)
        gc.collect(0)
        watch.on = False
        gc.collect(2)  # not counted: the window is over
    finally:
        gc.callbacks.remove(watch)
    assert watch.count[2] == 1 and watch.count[0] == 1
    assert watch.longest_ms[2] > 0
    watch.long.append((100.0, 100.040, 2))  # a 40 ms collection at t = 100 s
    # Samples (lag ms, end): one late across the collection, one late elsewhere, one fine.
    report = watch.report([42.0, 30.0, 0.1], [100.041, 200.0, 300.0], wall=1.0)
    assert report["loop_lag_over_limit"] == 2
    assert report["loop_lag_over_limit_in_gc"] == 1
    assert report["loop_lag_top"][:2] == [42.0, 30.0]


def test_bench_bridge_cost_model_faster_than_real_time() -> None:
    """--model-speed: each turn's audio arrives 4x faster than it plays (the Live API's
    way); the caller still gets every 20 ms frame in real time, in fuller messages."""
    from bench import bridge_cost

    paced = bridge_cost.run(calls=2, seconds=2.0, warmup=0.5, input_rate=8000, profile=None)
    fast = bridge_cost.run(
        calls=2, seconds=2.0, warmup=0.5, input_rate=8000, profile=None, model_speed=4.0
    )
    p, f = paced["per_call_second"], fast["per_call_second"]
    assert fast["model_speed"] == 4.0 and fast["model_chunk_ms"] == 40
    assert 45 <= f["media_out"] <= 50 and f["media_out"] == pytest.approx(p["media_out"], abs=2)
    assert 4 <= f["marks"] <= 6
    # Paced 40 ms chunks go out as they come (2 frames a message); bursts fill media_ms.
    assert p["media_messages"] >= 23 and f["media_messages"] <= 15
    for bad in (["--model-speed", "0.5"], ["--model-chunk-ms", "5"]):
        with pytest.raises(SystemExit):
            bridge_cost.main(bad)


async def test_bench_server_w2f_sends_each_turn_in_bursts_on_w2ts_cycle() -> None:
    """The ``w2f`` workload: a turn's 25 replies go W2F_SPEED per tick of the session's
    phase, then the session is quiet until the turn's ``w2t`` cycle (35 slots) ends."""
    import asyncio

    from bench.common import W2_TURN_EVERY
    from bench.server import W2F_PAUSE, W2F_SPEED, W2T_PAUSE, BenchServer, Conn, workload_of

    assert workload_of("/bench/w2f") == "w2f"
    server = BenchServer(pace_scale=0.2)  # 1 ms ticks
    audio_ticks: list[int] = []
    turn_ticks: list[int] = []
    done = asyncio.Event()

    def send(data: bytes) -> None:
        if data == server.frames.turn:
            turn_ticks.append(server.ticks)
            if len(turn_ticks) == 2:
                done.set()
        elif b'"inlineData"' in data:
            audio_ticks.append(server.ticks)

    conn = Conn(server, "w2f", send, lambda: None)
    conn.setup_done = True
    server.add_paced(conn)
    try:
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        server.remove_paced(conn)
        assert server._ticker is not None
        server._ticker.cancel()
    first = audio_ticks[:W2_TURN_EVERY]
    slots = sorted(set(first))
    assert len(slots) == -(-W2_TURN_EVERY // W2F_SPEED)  # 7 ticks of the phase
    assert all(first.count(t) <= W2F_SPEED for t in slots)
    # The next turn starts a whole w2t cycle (25 + 10 slots of 8 ticks) after the first.
    period = (W2_TURN_EVERY + W2T_PAUSE) * 8
    assert audio_ticks[W2_TURN_EVERY] - first[0] == period
    assert W2_TURN_EVERY + W2T_PAUSE - len(slots) == W2F_PAUSE


async def test_bench_server_w2f_spreads_the_sessions_turns_and_w2fa_aligns_them() -> None:
    """``w2f`` sessions wait a growing number of their phase's ticks before their first
    turn (independent calls' turns are spread over the cycle); ``w2fa`` sessions all start
    at once (the aligned worst case), with the same bursts."""
    from bench.server import _PHASES, W2F_CYCLE, BenchServer, Conn, workload_of

    assert workload_of("/bench/w2fa") == "w2fa"
    server = BenchServer()
    n = _PHASES * (W2F_CYCLE + 2)
    spread = [Conn(server, "w2f", lambda _d: None, lambda: None) for _ in range(n)]
    aligned = [Conn(server, "w2fa", lambda _d: None, lambda: None) for _ in range(_PHASES)]
    for conn in spread + aligned:
        server.add_paced(conn)  # before the ticker's first step: nothing was sent yet
    try:
        assert [c.quiet for c in spread] == [i // _PHASES % W2F_CYCLE for i in range(n)]
        assert sorted({c.quiet for c in spread}) == list(range(W2F_CYCLE))
        assert [c.quiet for c in aligned] == [0] * _PHASES
    finally:
        for conn in spread + aligned:
            server.remove_paced(conn)
        assert server._ticker is not None
        server._ticker.cancel()


async def test_bench_server_w2_spreads_the_sessions_turn_ends() -> None:
    """``w2`` sessions start a growing number of replies into their first turn (modulo a
    turn's 25), so their turn ends are spread over the turn as independent
    conversations' are; the first session still starts a turn with its first reply."""
    import asyncio

    from bench.common import W2_TURN_EVERY
    from bench.server import _PHASES, BenchServer, Conn

    server = BenchServer(pace_scale=0.2)  # 1 ms ticks
    n = _PHASES * (W2_TURN_EVERY + 2)
    turn_ends: list[int] = []  # per turn end: the session's place in the join order
    done = asyncio.Event()

    def sender(i: int) -> Callable[[bytes], None]:
        def send(data: bytes) -> None:
            if data == server.frames.turn:
                turn_ends.append(i)
                if len(turn_ends) >= n:
                    done.set()

        return send

    conns = [Conn(server, "w2", sender(i), lambda: None) for i in range(n)]
    for conn in conns:
        server.add_paced(conn)  # before the ticker's first step: nothing was sent yet
    assert [c.replies for c in conns] == [i // _PHASES % W2_TURN_EVERY for i in range(n)]
    try:
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        for conn in conns:
            server.remove_paced(conn)
        assert server._ticker is not None
        server._ticker.cancel()
    # The first turn ends come from the sessions furthest into their turn, in order: the
    # last 8 joined (24 replies in) first, then the 8 before them, ...
    first = turn_ends[:_PHASES]
    assert {i // _PHASES % W2_TURN_EVERY for i in first} == {W2_TURN_EVERY - 1}


def test_w2_fills_are_spread_over_half_a_fill_again() -> None:
    from bench.common import fill_spread

    counts = fill_spread(500, 300)
    assert counts[0] == 500 and max(counts) < 750 and counts == sorted(counts)
    assert len(set(counts)) > 200  # evenly spread, not a few steps
    assert fill_spread(0, 5) == [0] * 5 and fill_spread(3, 1) == [3]


def _paced_profile_calls(tmp_path: Path, *options: str) -> dict[str, int]:
    """``bench.relay_instructions --paced 1`` with two clients, a warm-up of its own and
    its cProfile (real time: no valgrind needed): calls per function name in the window."""
    import pstats

    out = tmp_path / "window.prof"
    printed = _bench(
        "bench.relay_instructions",
        *options,
        "--paced",
        "1",
        "--slowdown",
        "1",
        "--warm-up",
        "1",
        "--browsers",
        "2",
        "--profile",
        str(out),
    )
    assert "cProfile of the window" in printed
    calls: dict[str, int] = {}
    for (_f, _l, name), stat in pstats.Stats(str(out)).stats.items():  # type: ignore[attr-defined]
        calls[name] = calls.get(name, 0) + stat[1]
    return calls


def test_bench_relay_instructions_paced_browsers_profile(tmp_path: Path) -> None:
    """``bench.relay_instructions --paced`` with several browsers: every browser's
    frames go upstream."""
    calls = _paced_profile_calls(tmp_path)
    # Two browsers' 40 ms frames for a second, inline in the server's read callback.
    assert 40 <= calls.get("inline", 0) <= 60


def test_bench_relay_instructions_phone_calls_profile(tmp_path: Path) -> None:
    """``bench.relay_instructions --endpoint twilio --paced``: synthetic Twilio calls
    through the real server, bridge and session: every call's 20 ms media messages go
    inline and upstream, the model's audio goes back out paced."""
    calls = _paced_profile_calls(tmp_path, "--endpoint", "twilio")
    # Two calls' 20 ms media messages for a second (50 each) and their marks' echoes
    # (about 5 each), handled in the server's read callback.
    assert 90 <= calls.get("inline", 0) <= 130
    # The model's 25 replies a second per call, decimated to the phone's rate and sent.
    assert 30 <= calls.get("process_g711", 0) <= 70
    assert calls.get("_pacer", 0) >= 20
