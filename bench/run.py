"""The orchestrator behind ``python -m bench``.

Starts the benchmark server(s), runs every client in a fresh subprocess (interleaved
round-robin across modes), summarises, prints markdown tables, writes JSON (and the W2
plot). Every subprocess has a timeout and is killed when it expires.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from bench.common import FRAMINGS, W2_FILL, fill_spread, median, uvloop_available
from bench.modes import ALL_MODES, BASELINE_GENAI, MODES
from bench.procs import PY, ROOT, ServerProc, run_client, run_json

RESULTS = ROOT / "bench" / "results"
PLOT = ROOT / "docs" / "performance-w2.png"
WORKLOADS = ("w1", "w2", "w3", "micro", "scale", "profile")
DEFAULT_WORKLOADS = ("w1", "w2", "w3", "micro", "scale")
MODE_ORDER = list(MODES)
IMPORTS = ("gemini_live", "google.genai", "websockets", "picows")
REGIMES = ("pipelined", "ping-pong", "paced")
FLOOR = "floor"
#: W2 series also run on uvloop by default (when selected).
UVLOOP_W2_MODES = ("gemini-live-picows", "floor")
#: Reference modes left out of W2 by default (``--loop`` runs them too).
W1_ONLY_MODES = ("floor-b64",)
#: Scale-out: these modes, with the sessions split over several client processes.
SCALE_MODES = ("gemini-live-picows", "floor")


@dataclass
class Config:
    smoke: bool = False
    workloads: tuple[str, ...] = DEFAULT_WORKLOADS
    modes: list[str] = field(default_factory=lambda: list(MODE_ORDER))
    w1_loops: list[str] = field(default_factory=lambda: ["asyncio", "uvloop"])
    framing: str = "service"
    rounds: int = 5
    chunks: int = 3000
    ping_pong: int = 1000
    paced: int = 150
    regimes: list[str] = field(default_factory=lambda: list(REGIMES))
    w1_timeout: float = 120.0
    w2_ns: list[int] = field(
        default_factory=lambda: [100, 200, 300, 400, 500, 600, 800, 1000, 1300, 1600]
    )
    #: (mode, loop) series for W2.
    w2_series: list[tuple[str, str]] = field(default_factory=list)
    #: W2 rounds per N: every series once per round, round-robin (interleaved).
    w2_rounds: int = 1
    w2_warmup: float = 1.0
    w2_window: float = 4.0
    #: Chunks each session sends before its clock starts (``bench.common.W2_FILL``).
    w2_fill: int = W2_FILL
    #: The sessions' fills are spread (``bench.common.fill_spread``): runs before it
    #: sent the same count per session (their pages say so).
    w2_fill_spread: bool = True
    w2_ramp_timeout: float = 45.0
    #: Scale-out: client processes, and total session counts split over them.
    scale_procs: int = field(default_factory=lambda: max(2, os.cpu_count() or 1))
    scale_ns: list[int] = field(default_factory=lambda: [500, 800, 1200])
    w3_connects: int = 50
    w3_idle: int = 200
    w3_resumes: int = 10
    import_repeats: int = 5
    profile_chunks: int = 30000
    profile_modes: list[str] = field(default_factory=lambda: ["gemini-live-picows"])
    profile_regime: str = "pipelined"
    #: Added to W2/W3 subprocess timeouts; micro's timeout.
    slack: float = 30.0
    micro_timeout: float = 600.0

    @classmethod
    def smoke_config(cls) -> Config:
        return cls(
            smoke=True,
            w1_loops=["asyncio"],
            rounds=1,
            chunks=100,
            ping_pong=50,
            paced=50,
            w1_timeout=30.0,
            w2_ns=[20],
            scale_ns=[20],
            w2_warmup=0.3,
            w2_window=0.6,
            w2_fill=3,
            w2_ramp_timeout=10.0,
            w3_connects=3,
            w3_idle=5,
            w3_resumes=1,
            import_repeats=1,
            profile_chunks=500,
            slack=10.0,
            micro_timeout=60.0,
        )


# -- machine ------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for pkg in (
        "gemini-live",
        "picows",
        "aiofastnet",
        "websockets",
        "msgspec",
        "pybase64",
        "uvloop",
        "google-genai",
        "pydantic",
        "pydantic-core",
        "numpy",
        "matplotlib",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
        "commit": commit or None,
        "loadavg_start": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- W1 -------------------------------------------------------------------------------------


def run_w1(cfg: Config) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    with ServerProc(framing=cfg.framing) as server:
        for rnd in range(cfg.rounds):
            for loop in cfg.w1_loops:
                for mode in cfg.modes:
                    res = run_client(
                        [
                            "w1",
                            "--mode",
                            mode,
                            "--port",
                            str(server.port),
                            "--loop",
                            loop,
                            "--framing",
                            server.framing,
                            "--chunks",
                            str(cfg.chunks),
                            "--ping-pong",
                            str(cfg.ping_pong),
                            "--paced",
                            str(cfg.paced),
                            "--regimes",
                            ",".join(cfg.regimes),
                            "--timeout",
                            str(cfg.w1_timeout / 2),
                        ],
                        cfg.w1_timeout,
                    )
                    res.update(mode=mode, loop=loop, round=rnd)
                    runs.append(res)
                    _log(f"w1 round {rnd + 1}/{cfg.rounds} {loop} {mode}: {_brief(res)}")
        server_impl = server.impl
    return {
        "runs": runs,
        "summary": summarise_w1(runs, cfg),
        "server": server_impl,
        "framing": cfg.framing,
    }


def _brief(res: dict[str, Any]) -> str:
    if "error" in res:
        return "failed: " + str(res["error"])
    if "regimes" in res:
        return ", ".join(
            f"{k} {v['cpu_us_per_chunk']:.1f} µs/chunk" for k, v in res["regimes"].items()
        )
    if "cpu_pct" in res:
        return (
            f"cpu {res['cpu_pct']:.0f}%, p99 {res['latency_ms_p99']:.1f} ms, "
            f"send {res['send_rate'] * 100:.0f}%, recv {res['recv_rate'] * 100:.0f}%"
        )
    return "ok"


def summarise_w1(runs: list[dict[str, Any]], cfg: Config) -> list[dict[str, Any]]:
    """One row per (regime, loop, mode): medians over rounds and ratios to the baselines."""
    rows: list[dict[str, Any]] = []
    for regime in cfg.regimes:
        for loop in cfg.w1_loops:
            group: list[dict[str, Any]] = []
            for mode in cfg.modes:
                mine = [r for r in runs if r["mode"] == mode and r["loop"] == loop]
                ok = [r["regimes"][regime] for r in mine if regime in r.get("regimes", {})]
                row: dict[str, Any] = {
                    "regime": regime,
                    "mode": mode,
                    "loop": loop,
                    "runs": len(mine),
                    "ok": len(ok),
                }
                if not ok:
                    errs = [str(r["error"]) for r in mine if "error" in r]
                    row["error"] = errs[0] if errs else "not run"
                else:
                    cpu = [r["cpu_us_per_chunk"] for r in ok]
                    wall = [r["wall_us_per_chunk"] for r in ok]
                    row.update(
                        cpu_us_median=median(cpu),
                        cpu_us_min=min(cpu),
                        wall_us_median=median(wall),
                        wall_us_min=min(wall),
                    )
                group.append(row)
            by_mode = {r["mode"]: r for r in group}
            for row in group:
                if "cpu_us_median" not in row:
                    continue
                floor = by_mode.get(FLOOR, {})
                genai = by_mode.get(BASELINE_GENAI, {})
                if "cpu_us_median" in floor:
                    row["x_floor"] = row["cpu_us_median"] / floor["cpu_us_median"]
                if "cpu_us_median" in genai:
                    row["x_vs_genai"] = genai["cpu_us_median"] / row["cpu_us_median"]
            rows += group
    return rows


# -- W2 -------------------------------------------------------------------------------------


#: W2's real time: delivery p99 and send lag p99 under one 20 ms audio frame.
REAL_TIME_P99_MS = 20.0


def real_time(res: dict[str, Any]) -> bool:
    return (
        "error" not in res
        and res["send_rate"] >= 0.98
        and res["recv_rate"] >= 0.98
        and res["latency_ms_p99"] < REAL_TIME_P99_MS
        and res["send_lag_ms_p99"] < REAL_TIME_P99_MS
    )


def _w2_args(cfg: Config, mode: str, loop: str, n: int, server: ServerProc) -> list[str]:
    return [
        "w2",
        "--mode",
        mode,
        "--port",
        str(server.port),
        "--loop",
        loop,
        "--framing",
        server.framing,
        "--sessions",
        str(n),
        "--warmup",
        str(cfg.w2_warmup),
        "--window",
        str(cfg.w2_window),
        "--fill",
        str(cfg.w2_fill),
        "--ramp-timeout",
        str(cfg.w2_ramp_timeout),
        "--server-pid",
        str(server.pid),
        "--timeout",
        str(cfg.w2_ramp_timeout),
    ]


def run_w2(cfg: Config) -> dict[str, Any]:
    """Paced sessions in one process, N growing until a series loses real time.

    With ``w2_rounds`` > 1 every series runs once per round at each N, the series
    interleaved (round-robin), so the rounds of all series share the machine's conditions;
    a series stops after an N where it failed in a round or kept real time in none.
    """
    runs: list[dict[str, Any]] = []
    stopped: dict[tuple[str, str], str] = {}
    rounds = max(1, cfg.w2_rounds)
    for n in cfg.w2_ns:
        kept: dict[tuple[str, str], bool] = {}
        failed: set[tuple[str, str]] = set()
        for rnd in range(rounds):
            for mode, loop in cfg.w2_series:
                key = (mode, loop)
                if key in stopped:
                    if rnd == 0:
                        runs.append(
                            {"mode": mode, "loop": loop, "sessions": n, "skipped": stopped[key]}
                        )
                    continue
                timeout = cfg.w2_ramp_timeout + cfg.w2_warmup + cfg.w2_window + cfg.slack
                with ServerProc(framing=cfg.framing) as server:
                    res = run_client(_w2_args(cfg, mode, loop, n, server), timeout)
                    res["server"] = server.stats()
                res.update(mode=mode, loop=loop, sessions=n, round=rnd)
                res["real_time"] = real_time(res)
                runs.append(res)
                tag = f" round {rnd + 1}/{rounds}" if rounds > 1 else ""
                _log(f"w2 N={n}{tag} {mode} ({loop}): {_brief(res)}, real time: {res['real_time']}")
                if "error" in res:
                    failed.add(key)
                kept[key] = kept.get(key, False) or res["real_time"]
        for key, ok in kept.items():
            if key in failed:
                stopped[key] = f"failed at N={n}"
            elif not ok:
                stopped[key] = f"fell behind at N={n}"
    return {"runs": runs, "series": [list(s) for s in cfg.w2_series], "rounds": rounds}


def run_scale(cfg: Config) -> dict[str, Any]:
    """W2 with the sessions split over ``scale_procs`` client processes (one loop each).

    All processes talk to one server process and measure the same wall-clock window (they
    start their audio clocks at a common time after their ramp-up).
    """
    from concurrent.futures import ThreadPoolExecutor

    procs = cfg.scale_procs
    runs: list[dict[str, Any]] = []
    modes = [m for m in SCALE_MODES if m in cfg.modes]
    loop = "uvloop" if uvloop_available() else "asyncio"
    for n in cfg.scale_ns:
        for mode in modes:
            per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
            timeout = cfg.w2_ramp_timeout + cfg.w2_warmup + cfg.w2_window + cfg.slack
            # Time to start, connect and fill every session (~10 µs per chunk sent, the
            # server's reading included) before the processes' clocks start together.
            start_at = time.time() + 2.0 + n / 250 + sum(fill_spread(cfg.w2_fill, n)) * 10e-6
            with ServerProc(framing=cfg.framing) as server, ThreadPoolExecutor(procs) as pool:
                futures = [
                    pool.submit(
                        run_client,
                        [*_w2_args(cfg, mode, loop, k, server), "--start-at", f"{start_at:.3f}"],
                        timeout,
                    )
                    for k in per
                ]
                parts = [f.result() for f in futures]
                server_stats = server.stats()
            ok = [p for p in parts if "error" not in p]
            res: dict[str, Any] = {
                "mode": mode,
                "loop": loop,
                "sessions": n,
                "procs": procs,
                "parts": parts,
                "server": server_stats,
            }
            if len(ok) < len(parts):
                res["error"] = next(str(p["error"]) for p in parts if "error" in p)
            else:
                res.update(
                    cpu_pct=sum(p["cpu_pct"] for p in ok),
                    server_cpu_pct=ok[0].get("server_cpu_pct"),
                    send_rate=min(p["send_rate"] for p in ok),
                    recv_rate=min(p["recv_rate"] for p in ok),
                    latency_ms_p50=max(p["latency_ms_p50"] for p in ok),
                    latency_ms_p99=max(p["latency_ms_p99"] for p in ok),
                    send_lag_ms_p99=max(p["send_lag_ms_p99"] for p in ok),
                    rss_mib=sum(p["rss_mib"] for p in ok),
                    loadavg_1m=os.getloadavg()[0],
                )
            res["real_time"] = real_time(res)
            runs.append(res)
            _log(f"scale N={n} x{procs} {mode}: {_brief(res)}, real time: {res['real_time']}")
    return {"runs": runs, "procs": procs}


# -- W3 -------------------------------------------------------------------------------------


def import_time(module: str, pycache: str) -> dict[str, Any]:
    """One ``import module`` in a fresh interpreter, its bytecode cached under ``pycache``.

    Every module is loaded from cached bytecode, as after ``pip install`` (which compiles
    it): with ``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__`` next to a source tree
    (as for this checkout's ``src``) the import would compile each module from source
    every time, ~80 ms of gemini_live's ~200 ms on 2026-12-07, while the site-packages
    libraries it is compared with came with their ``.pyc``. A first untimed import per
    module writes the cache (see :func:`run_w3`).
    """
    code = (
        "import sys; sys.dont_write_bytecode = False; "
        "import time, json; t = time.perf_counter(); import "
        + module
        + "; print('RESULT ' + json.dumps({'s': time.perf_counter() - t}))"
    )
    return run_json([PY, "-X", f"pycache_prefix={pycache}", "-c", code], 60)


def run_w3(cfg: Config) -> dict[str, Any]:
    times: dict[str, list[float]] = {m: [] for m in IMPORTS}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache:
        for module in IMPORTS:
            import_time(module, pycache)  # untimed: writes the bytecode cache
        # The modules' runs interleaved, so that they share the machine's moments.
        for _ in range(cfg.import_repeats):
            for module in IMPORTS:
                if module in errors:
                    continue
                res = import_time(module, pycache)
                if "error" in res:
                    errors[module] = res["error"]
                else:
                    times[module].append(res["s"] * 1000)
    imports: list[dict[str, Any]] = []
    for module in IMPORTS:
        row: dict[str, Any] = {"module": module}
        if times[module]:
            row.update(median_ms=median(times[module]), min_ms=min(times[module]))
        if module in errors:
            row["error"] = errors[module]
        imports.append(row)
        _log(f"w3 import {module}: {row}")
    modes: list[dict[str, Any]] = []
    with ServerProc(framing=cfg.framing) as server:
        for mode in cfg.modes:
            before = server.stats().get("resumed", 0)
            res = run_client(
                [
                    "w3",
                    "--mode",
                    mode,
                    "--port",
                    str(server.port),
                    "--connects",
                    str(cfg.w3_connects),
                    "--idle",
                    str(cfg.w3_idle),
                    "--resumes",
                    str(cfg.w3_resumes),
                    "--timeout",
                    str(cfg.slack),
                ],
                cfg.slack * 3 + cfg.w3_connects * 0.5 + cfg.w3_idle * 0.1,
            )
            after = server.stats().get("resumed", 0)
            res.update(mode=mode, server_resumed=after - before)
            modes.append(res)
            _log(f"w3 {mode}: {'failed: ' + res['error'] if 'error' in res else 'ok'}")
    return {"imports": imports, "modes": modes}


# -- micro / profile ------------------------------------------------------------------------


def run_micro(cfg: Config) -> dict[str, Any]:
    args = [PY, "-m", "bench.micro", "--json"] + (["--smoke"] if cfg.smoke else [])
    res = run_json(args, cfg.micro_timeout)
    _log("micro: " + ("failed: " + res["error"] if "error" in res else "ok"))
    return res


def run_profile(cfg: Config) -> dict[str, Any]:
    from bench import profile

    out: dict[str, Any] = {}
    with ServerProc(framing=cfg.framing) as server:
        for mode in cfg.profile_modes:
            out[mode] = profile.profile_w1(
                mode,
                server.port,
                cfg.profile_chunks,
                RESULTS,
                cfg.profile_regime,
                server.framing,
            )
            _log(f"profile {mode}: {out[mode].get('tool', out[mode].get('error'))}")
    return out


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    ap = argparse.ArgumentParser(
        prog="python -m bench", description="gemini-live benchmarks (see docs/performance.md)"
    )
    ap.add_argument("--smoke", action="store_true", help="tiny version of every workload")
    ap.add_argument("--only", default="", help=f"comma list of {', '.join(WORKLOADS)}")
    ap.add_argument("--modes", default="", help=f"comma list of {', '.join(MODE_ORDER)}")
    ap.add_argument("--uvloop", action="store_true", help="run every client on uvloop only")
    ap.add_argument(
        "--loop",
        choices=("asyncio", "uvloop", "both"),
        default=None,
        help="event loop(s) for the clients (default: W1 both, W2 asyncio + uvloop series)",
    )
    ap.add_argument(
        "--framing",
        choices=FRAMINGS,
        default="service",
        help="server frames: the Live API's indented JSON (default) or compact JSON",
    )
    ap.add_argument("--rounds", type=int, default=None, help="W1 rounds (default 5)")
    ap.add_argument("--chunks", type=int, default=None, help="W1 pipelined chunks (3000)")
    ap.add_argument("--ping-pong", type=int, default=None, help="W1 ping-pong chunks (1000)")
    ap.add_argument("--paced", type=int, default=None, help="W1 paced chunks (150 = 3 s)")
    ap.add_argument("--regimes", default="", help=f"W1 regimes: comma list of {REGIMES}")
    ap.add_argument("--scale-n", default="", help="scale-out total session counts")
    ap.add_argument("--scale-procs", type=int, default=None, help="scale-out client processes")
    ap.add_argument("--profile-regime", choices=REGIMES, default=None, help="W1 regime to profile")
    ap.add_argument("--w2-n", default="", help="W2 session counts, e.g. 100,250,500")
    ap.add_argument("--w2-window", type=float, default=None, help="W2 measured seconds")
    ap.add_argument(
        "--w2-fill",
        type=int,
        default=None,
        help=f"W2 chunks per session before the clock, at the least ({W2_FILL}: 2 re-send windows)",
    )
    ap.add_argument(
        "--w2-rounds", type=int, default=None, help="W2 runs per series and N, interleaved (1)"
    )
    ap.add_argument("--out", default="", help="JSON output path")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--note", default="", help="label stored with the results and on the plot")
    args = ap.parse_args(argv)
    cfg = Config.smoke_config() if args.smoke else Config()
    if args.only:
        wl = tuple(w.strip() for w in args.only.split(",") if w.strip())
        bad = [w for w in wl if w not in WORKLOADS]
        if bad:
            ap.error(f"unknown workload(s) {bad}; choose from {WORKLOADS}")
        cfg.workloads = wl
    if args.modes:
        ms = [m.strip() for m in args.modes.split(",") if m.strip()]
        bad = [m for m in ms if m not in ALL_MODES]
        if bad:
            ap.error(f"unknown mode(s) {bad}; choose from {list(ALL_MODES)}")
        cfg.modes = ms
        cfg.profile_modes = ms
    loop = "uvloop" if args.uvloop else args.loop
    if loop in ("uvloop", "both") and not uvloop_available():
        ap.error("uvloop is not installed")
    if not uvloop_available():
        cfg.w1_loops = ["asyncio"]
    if loop == "both":
        cfg.w1_loops = ["asyncio", "uvloop"]
        cfg.w2_series = [(m, lp) for m in cfg.modes for lp in ("asyncio", "uvloop")]
    elif loop is not None:
        cfg.w1_loops = [loop]
        cfg.w2_series = [(m, loop) for m in cfg.modes]
    else:
        cfg.w2_series = [(m, "asyncio") for m in cfg.modes if m not in W1_ONLY_MODES]
        if not cfg.smoke and uvloop_available():
            cfg.w2_series += [(m, "uvloop") for m in UVLOOP_W2_MODES if m in cfg.modes]
    cfg.framing = args.framing
    if args.rounds is not None:
        cfg.rounds = args.rounds
    if args.chunks is not None:
        cfg.chunks = args.chunks
    if args.ping_pong is not None:
        cfg.ping_pong = args.ping_pong
    if args.paced is not None:
        cfg.paced = args.paced
    if args.regimes:
        rs = [r.strip() for r in args.regimes.split(",") if r.strip()]
        if any(r not in REGIMES for r in rs):
            ap.error(f"--regimes: choose from {REGIMES}")
        cfg.regimes = rs
    if args.scale_n:
        cfg.scale_ns = [int(x) for x in args.scale_n.split(",") if x.strip()]
    if args.scale_procs is not None:
        cfg.scale_procs = args.scale_procs
    if args.profile_regime is not None:
        cfg.profile_regime = args.profile_regime
    if args.w2_n:
        cfg.w2_ns = [int(x) for x in args.w2_n.split(",") if x.strip()]
    if args.w2_window is not None:
        cfg.w2_window = args.w2_window
    if args.w2_fill is not None:
        if args.w2_fill < 0:
            ap.error("--w2-fill must not be negative")
        cfg.w2_fill = args.w2_fill
    if args.w2_rounds is not None:
        if args.w2_rounds < 1:
            ap.error("--w2-rounds must be at least 1")
        cfg.w2_rounds = args.w2_rounds
    return cfg, args


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    t0 = time.perf_counter()
    results: dict[str, Any] = {"meta": machine_info(), "config": asdict(cfg)}
    if args.note:
        results["meta"]["note"] = args.note
    runners = {
        "w1": run_w1,
        "w3": run_w3,
        "w2": run_w2,
        "scale": run_scale,
        "micro": run_micro,
        "profile": run_profile,
    }
    for name in ("w1", "w3", "w2", "scale", "micro", "profile"):
        if name in cfg.workloads:
            _log(f"== {name}")
            try:
                results[name] = runners[name](cfg)
            except Exception as exc:  # a broken workload must not hide the others
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                _log(f"{name} failed: {exc}")
    results["meta"]["loadavg_end"] = list(os.getloadavg())
    results["elapsed_s"] = time.perf_counter() - t0
    if args.out:
        out = Path(args.out)
    elif cfg.smoke:
        out = RESULTS / "smoke.json"
    elif set(cfg.workloads) >= set(DEFAULT_WORKLOADS):
        out = RESULTS / "latest.json"
    else:
        out = RESULTS / f"only-{'-'.join(cfg.workloads)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md = report.markdown(results)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    if "w2" in results and "runs" in results["w2"] and not args.no_plot:
        plot_path = RESULTS / "smoke-w2.png" if cfg.smoke else PLOT
        try:
            report.plot_w2(results, plot_path)
            print(f"\nW2 plot: {plot_path.relative_to(ROOT)}")
        except Exception as exc:
            print(f"\nW2 plot not written: {type(exc).__name__}: {exc}")
    print(f"results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    print(f"elapsed: {results['elapsed_s']:.1f} s")
    broken = [n for n in cfg.workloads if "error" in results.get(n, {})]
    if broken:
        print(f"workloads that could not run: {', '.join(broken)}")
        return 1
    return 0
