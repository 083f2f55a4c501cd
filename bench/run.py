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
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from bench.common import median, uvloop_available
from bench.modes import ALL_MODES, BASELINE_GENAI, MODES
from bench.procs import PY, ROOT, ServerProc, run_client, run_json

RESULTS = ROOT / "bench" / "results"
PLOT = ROOT / "docs" / "performance-w2.png"
WORKLOADS = ("w1", "w2", "w3", "micro", "profile")
DEFAULT_WORKLOADS = ("w1", "w2", "w3", "micro")
MODE_ORDER = list(MODES)
IMPORTS = ("gemini_live", "google.genai", "websockets", "picows")
#: W2 series also run on uvloop by default (when selected).
UVLOOP_W2_MODES = ("gemini-live-picows", "hand-written")


@dataclass
class Config:
    smoke: bool = False
    workloads: tuple[str, ...] = DEFAULT_WORKLOADS
    modes: list[str] = field(default_factory=lambda: list(MODE_ORDER))
    w1_loops: list[str] = field(default_factory=lambda: ["asyncio", "uvloop"])
    rounds: int = 5
    chunks: int = 3000
    w1_timeout: float = 120.0
    w2_ns: list[int] = field(default_factory=lambda: [100, 250, 500, 1000, 2000])
    #: (mode, loop) series for W2.
    w2_series: list[tuple[str, str]] = field(default_factory=list)
    w2_warmup: float = 1.5
    w2_window: float = 6.0
    w2_ramp_timeout: float = 45.0
    w3_connects: int = 50
    w3_idle: int = 200
    w3_resumes: int = 10
    import_repeats: int = 5
    profile_chunks: int = 100000
    profile_modes: list[str] = field(default_factory=lambda: ["gemini-live-picows"])
    #: Added to W2/W3 subprocess timeouts; micro's timeout.
    slack: float = 30.0
    micro_timeout: float = 600.0

    @classmethod
    def smoke_config(cls) -> Config:
        return cls(
            smoke=True,
            w1_loops=["asyncio"],
            rounds=1,
            chunks=200,
            w1_timeout=30.0,
            w2_ns=[20],
            w2_warmup=0.3,
            w2_window=0.6,
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
    with ServerProc() as server:
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
                            "--chunks",
                            str(cfg.chunks),
                            "--timeout",
                            str(cfg.w1_timeout / 2),
                        ],
                        cfg.w1_timeout,
                    )
                    res.update(mode=mode, loop=loop, round=rnd)
                    runs.append(res)
                    _log(f"w1 round {rnd + 1}/{cfg.rounds} {loop} {mode}: {_brief(res)}")
        server_impl = server.impl
    return {"runs": runs, "summary": summarise_w1(runs, cfg), "server": server_impl}


def _brief(res: dict[str, Any]) -> str:
    if "error" in res:
        return "failed: " + str(res["error"])
    if "cpu_us_per_chunk" in res:
        return f"{res['cpu_us_per_chunk']:.1f} µs/chunk, wall {res['wall_s'] * 1000:.0f} ms"
    if "cpu_pct" in res:
        return (
            f"cpu {res['cpu_pct']:.0f}%, p99 {res['latency_ms_p99']:.1f} ms, "
            f"send {res['send_rate'] * 100:.0f}%, recv {res['recv_rate'] * 100:.0f}%"
        )
    return "ok"


def summarise_w1(runs: list[dict[str, Any]], cfg: Config) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for loop in cfg.w1_loops:
        for mode in cfg.modes:
            mine = [r for r in runs if r["mode"] == mode and r["loop"] == loop]
            ok = [r for r in mine if "error" not in r]
            row: dict[str, Any] = {"mode": mode, "loop": loop, "runs": len(mine), "ok": len(ok)}
            if not ok:
                errs = [str(r["error"]) for r in mine]
                row["error"] = errs[0] if errs else "not run"
            else:
                cpu = [r["cpu_us_per_chunk"] for r in ok]
                wall = [r["wall_s"] * 1000 for r in ok]
                row.update(
                    cpu_us_median=median(cpu),
                    cpu_us_min=min(cpu),
                    wall_ms_median=median(wall),
                    wall_ms_min=min(wall),
                    peak_rss_mib=median([r["peak_rss_mib"] for r in ok]),
                    connect_ms=median([r["connect_ms"] for r in ok]),
                )
                if len(ok) < len(mine):
                    row["error"] = next(str(r["error"]) for r in mine if "error" in r)
            rows.append(row)
        by_mode = {r["mode"]: r for r in rows if r["loop"] == loop}
        for row in (r for r in rows if r["loop"] == loop):
            for base, key in ((BASELINE_GENAI, "x_vs_genai"), ("hand-written", "x_vs_raw")):
                b = by_mode.get(base, {})
                if "cpu_us_median" in row and "cpu_us_median" in b:
                    row[key] = b["cpu_us_median"] / row["cpu_us_median"]
    return rows


# -- W2 -------------------------------------------------------------------------------------


def real_time(res: dict[str, Any]) -> bool:
    return (
        "error" not in res
        and res["send_rate"] >= 0.98
        and res["recv_rate"] >= 0.98
        and res["latency_ms_p99"] < 100.0
        and res["send_lag_ms_p99"] < 100.0
    )


def run_w2(cfg: Config) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    stopped: dict[tuple[str, str], str] = {}
    for n in cfg.w2_ns:
        for mode, loop in cfg.w2_series:
            key = (mode, loop)
            if key in stopped:
                runs.append({"mode": mode, "loop": loop, "sessions": n, "skipped": stopped[key]})
                continue
            timeout = cfg.w2_ramp_timeout + cfg.w2_warmup + cfg.w2_window + cfg.slack
            with ServerProc() as server:
                res = run_client(
                    [
                        "w2",
                        "--mode",
                        mode,
                        "--port",
                        str(server.port),
                        "--loop",
                        loop,
                        "--sessions",
                        str(n),
                        "--warmup",
                        str(cfg.w2_warmup),
                        "--window",
                        str(cfg.w2_window),
                        "--ramp-timeout",
                        str(cfg.w2_ramp_timeout),
                        "--server-pid",
                        str(server.pid),
                        "--timeout",
                        str(cfg.w2_ramp_timeout),
                    ],
                    timeout,
                )
                res["server"] = server.stats()
            res.update(mode=mode, loop=loop, sessions=n)
            res["real_time"] = real_time(res)
            runs.append(res)
            _log(f"w2 N={n} {mode} ({loop}): {_brief(res)}, real time: {res['real_time']}")
            if "error" in res:
                stopped[key] = f"failed at N={n}"
            elif mode == BASELINE_GENAI and not res["real_time"]:
                stopped[key] = f"fell behind at N={n}"
    return {"runs": runs, "series": [list(s) for s in cfg.w2_series]}


# -- W3 -------------------------------------------------------------------------------------


def import_time(module: str) -> dict[str, Any]:
    code = (
        "import time, json; t = time.perf_counter(); import "
        + module
        + "; print('RESULT ' + json.dumps({'s': time.perf_counter() - t}))"
    )
    return run_json([PY, "-c", code], 60)


def run_w3(cfg: Config) -> dict[str, Any]:
    imports: list[dict[str, Any]] = []
    for module in IMPORTS:
        times = []
        error = None
        for _ in range(cfg.import_repeats):
            res = import_time(module)
            if "error" in res:
                error = res["error"]
                break
            times.append(res["s"] * 1000)
        row: dict[str, Any] = {"module": module}
        if times:
            row.update(median_ms=median(times), min_ms=min(times))
        if error:
            row["error"] = error
        imports.append(row)
        _log(f"w3 import {module}: {row}")
    modes: list[dict[str, Any]] = []
    with ServerProc() as server:
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
    with ServerProc() as server:
        for mode in cfg.profile_modes:
            out[mode] = profile.profile_w1(mode, server.port, cfg.profile_chunks, RESULTS)
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
    ap.add_argument("--rounds", type=int, default=None, help="W1 rounds (default 5)")
    ap.add_argument("--chunks", type=int, default=None, help="W1 chunks (default 3000)")
    ap.add_argument("--w2-n", default="", help="W2 session counts, e.g. 100,250,500")
    ap.add_argument("--w2-window", type=float, default=None, help="W2 measured seconds")
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
        cfg.w2_series = [(m, "asyncio") for m in cfg.modes]
        if not cfg.smoke and uvloop_available():
            cfg.w2_series += [(m, "uvloop") for m in UVLOOP_W2_MODES if m in cfg.modes]
    if args.rounds is not None:
        cfg.rounds = args.rounds
    if args.chunks is not None:
        cfg.chunks = args.chunks
    if args.w2_n:
        cfg.w2_ns = [int(x) for x in args.w2_n.split(",") if x.strip()]
    if args.w2_window is not None:
        cfg.w2_window = args.w2_window
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
        "micro": run_micro,
        "profile": run_profile,
    }
    for name in ("w1", "w3", "w2", "micro", "profile"):
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
