"""Instructions per W1 ping-pong round trip, counted by callgrind: the deterministic gate.

``python -m bench.instructions`` runs, for every client and event loop, one short W1
ping-pong session (send a 20 ms chunk, wait until its audio reply reached the app,
repeat; the server's frames in the service's framing, one turn = 50 replies) under
``valgrind --tool=callgrind`` and prints the user-space instructions (Ir) per round trip
of the measured loop. The benchmark server runs in its own process, not under valgrind.

How the window is cut out of the run: the client process calls two marker functions
that nothing else in it calls, ``os.getppid()`` just before the measured loop and
``os.getpgrp()`` just after it, and callgrind runs with ``--zero-before=getppid
--dump-before=getpgrp``: the dump holds exactly the loop. Start-up, imports, connect,
the warm-up (one pipelined turn, one ping-pong turn, a ``gc.collect()``) and the close
are outside. ``PYTHONHASHSEED=0`` makes the runs repeat (to about 0.01 %).

* ``--check``: compare with the budgets in ``bench/instruction_budgets.json``; exit 1
  when a count is more than 2 % above its budget (a regression) or more than 2 % below
  (an improvement: lower the budget so that it is kept).
* ``--update``: write the measured counts as the new budgets.
* ``--repeat N``: run each configuration N times and show the spread (determinism).

The counts depend on the CPython build and the versions of picows, msgspec, pybase64
and uvloop; the budget file records them, and ``--check`` names any that differ.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from bench.common import OUT_CHUNK_BYTES, W1_TURN_EVERY, Frames, live_url, run_loop

ROOT: Final = Path(__file__).resolve().parent.parent
BUDGETS: Final = ROOT / "bench" / "instruction_budgets.json"

#: Clients (``bench.modes`` keys) in table order, with their labels in the table.
CLIENTS: Final = {
    "floor": "transport floor (picows, no JSON, no events)",
    "ideal-cb": "ideal client, callback",
    "ideal-queue": "ideal client, asyncio.Queue consumer",
    "gemini-live-picows-cb": "gemini-live `on_event`",
    "gemini-live-picows": "gemini-live `async for`",
}
LOOPS: Final = ("asyncio", "uvloop")
#: Each gemini-live consumer is compared with the ideal client that consumes the same way.
IDEAL_OF: Final = {"gemini-live-picows-cb": "ideal-cb", "gemini-live-picows": "ideal-queue"}
#: Round trips in the measured loop (whole turns, so every frame kind is in the mix).
ROUND_TRIPS: Final = 200
TOLERANCE: Final = 0.02
#: What the counts depend on besides the code (recorded with the budgets).
PACKAGES: Final = ("picows", "msgspec", "pybase64", "uvloop")

#: The marker functions (libc) that bound the measured window.
START_MARK: Final = "getppid"
STOP_MARK: Final = "getpgrp"
CHILD_TIMEOUT: Final = 300.0


# -- the measured process (runs under valgrind) ---------------------------------------------


async def _child(mode_key: str, port: int, round_trips: int, limit: float) -> dict[str, Any]:
    from bench.client import W1Sink, _ping_pong, _send_chunks
    from bench.modes import ALL_MODES

    mode = ALL_MODES[mode_key]()
    mode.frames = Frames("service")
    await mode.prepare()
    sink = W1Sink()
    conn = await mode.open(live_url(port, "w1"), sink)
    total = 0
    try:
        async with asyncio.timeout(limit):
            # Warm-up, outside the window: one pipelined turn, then one ping-pong turn.
            total += W1_TURN_EVERY
            done = sink.expect(total, total // W1_TURN_EVERY)
            await _send_chunks(conn, W1_TURN_EVERY)
            await done
            total += W1_TURN_EVERY
            await _ping_pong(conn, sink, W1_TURN_EVERY)
            await sink.expect(total, total // W1_TURN_EVERY)
            gc.collect()
            total += round_trips
            os.getppid()  # START_MARK: callgrind zeroes its counters here
            await _ping_pong(conn, sink, round_trips)
            await sink.expect(total, total // W1_TURN_EVERY)
            os.getpgrp()  # STOP_MARK: callgrind dumps the window here
    finally:
        await conn.close()
    if sink.audio_bytes != total * OUT_CHUNK_BYTES:
        raise AssertionError(f"{sink.audio_bytes} audio bytes, expected {total * OUT_CHUNK_BYTES}")
    return {"audio": sink.audio, "turns": sink.turns, "transcripts": sink.transcripts}


def child_main(args: argparse.Namespace) -> int:
    async def go() -> dict[str, Any]:
        return await _child(args.child, args.port, args.round_trips, args.timeout)

    data = run_loop(go, args.loop)
    sys.stdout.write("RESULT " + json.dumps(data) + "\n")
    sys.stdout.flush()
    return 0


# -- the harness ----------------------------------------------------------------------------


class GateError(RuntimeError):
    """The measurement itself failed (no valgrind, a client error, no dump)."""


@dataclass(frozen=True)
class Count:
    client: str
    loop: str
    round_trips: int
    instructions: int

    @property
    def per_round_trip(self) -> float:
        return self.instructions / self.round_trips


def valgrind() -> str | None:
    return shutil.which("valgrind")


def measure_one(
    client: str, loop: str, port: int, round_trips: int = ROUND_TRIPS, valgrind_bin: str = ""
) -> Count:
    """One client process under callgrind; the instructions of its measured loop."""
    child = ["--child", client, "--loop", loop, "--port", str(port)]
    instructions, _ = callgrind(
        "bench.instructions",
        [*child, "--round-trips", str(round_trips)],
        f"{client} ({loop})",
        keep_as=f"callgrind.{client}.{loop}.out",
        valgrind_bin=valgrind_bin,
    )
    return Count(client, loop, round_trips, instructions)


def callgrind(
    module: str,
    args: list[str],
    name: str,
    *,
    keep_as: str,
    valgrind_bin: str = "",
    timeout: float = CHILD_TIMEOUT,
) -> tuple[int, dict[str, Any]]:
    """``python -m module *args`` under callgrind: the Ir of its window and its RESULT.

    The process must call ``os.getppid()`` where the window starts and ``os.getpgrp()``
    where it ends (once each), and print one ``RESULT <json>`` line. With
    ``GL_CALLGRIND_KEEP=DIR`` the window's dump is copied to ``DIR/keep_as``.
    """
    vg = valgrind_bin or valgrind()
    if vg is None:
        raise GateError("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="gl-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [*callgrind_command(vg, out), sys.executable, "-m", module, *args]
        data = run_child(cmd, name, timeout)
        return window_count(out, name, keep_as), data


def run_child(cmd: list[str], name: str, timeout: float) -> dict[str, Any]:
    """Run ``cmd`` (a Python process under valgrind) from the repository's root with
    stable hashing and one BLAS thread, and return the object of its last ``RESULT <json>``
    line; a timeout, a non-zero exit or no RESULT raise :class:`GateError` with the end of
    its stderr (valgrind's own summary can hide the Python error above it)."""
    # One BLAS thread: OpenBLAS's workers spin through a slowed window and add counts that
    # do not repeat (a process that uses numpy, such as the bridge's).
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PYTHONDEVMODE", None)
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise GateError(f"{name}: no result in {timeout:g} s") from None
    if proc.returncode != 0 or "RESULT " not in proc.stdout:
        tail = "\n".join(proc.stderr.strip().splitlines()[-60:])
        raise GateError(f"{name} failed (exit {proc.returncode}):\n{tail}")
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("RESULT "))
    data: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return data


def callgrind_command(vg: str, out: Path) -> list[str]:
    """valgrind's arguments: callgrind writing to ``out``, counting only the window
    between the two markers (prefix the program to run with them)."""
    return [
        vg,
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        f"--zero-before={START_MARK}",
        f"--dump-before={STOP_MARK}",
    ]


def window_count(out: Path, name: str, keep_as: str) -> int:
    """The Ir of the one window dump next to ``out`` (a copy kept in
    ``$GL_CALLGRIND_KEEP/keep_as`` when that is set, for callgrind_annotate)."""
    dumps = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name + "."))
    if dumps != [out.name + ".1"]:
        raise GateError(f"{name}: expected one window dump, got {dumps}")
    keep = os.environ.get("GL_CALLGRIND_KEEP")
    if keep:
        shutil.copy(out.parent / dumps[0], Path(keep) / keep_as)
    return _summary(out.parent / dumps[0])


def _summary(path: Path) -> int:
    with path.open() as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise GateError(f"no summary line in {path.name}")


def measure(
    clients: list[str],
    loops: list[str],
    *,
    round_trips: int = ROUND_TRIPS,
    repeat: int = 1,
    jobs: int = 2,
    progress: bool = False,
) -> list[Count]:
    """Every (client, loop) ``repeat`` times, ``jobs`` at a time, against one server."""
    from bench.procs import ServerProc

    vg = valgrind()
    if vg is None:
        raise GateError("valgrind is not installed (Debian: apt-get install valgrind)")
    work = [(c, lp) for _ in range(repeat) for c in clients for lp in loops]
    results: list[Count] = []
    with (
        ServerProc(framing="service") as server,
        concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool,
    ):
        futures = [pool.submit(measure_one, c, lp, server.port, round_trips, vg) for c, lp in work]
        for fut in futures:
            count = fut.result()
            if progress:
                print(
                    f"  {count.client:<24} {count.loop:<8} {count.per_round_trip:>12,.0f}",
                    file=sys.stderr,
                    flush=True,
                )
            results.append(count)
    return results


def per_config(counts: list[Count]) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for c in counts:
        out.setdefault((c.client, c.loop), []).append(c.per_round_trip)
    return out


def medians(counts: list[Count]) -> dict[tuple[str, str], float]:
    """(client, loop) -> the median per round trip over the repeats (the upper one of an
    even number)."""
    return {k: sorted(v)[len(v) // 2] for k, v in per_config(counts).items()}


def environment() -> dict[str, str]:
    """What the counts depend on besides the code."""
    env = {"python": platform.python_version(), "machine": platform.machine()}
    for name in PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "missing"
    vg = valgrind()
    if vg is not None:
        proc = subprocess.run([vg, "--version"], capture_output=True, text=True, check=False)
        env["valgrind"] = proc.stdout.strip()
    return env


# -- budgets --------------------------------------------------------------------------------


def load_budgets(path: Path = BUDGETS) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write_budgets(counts: list[Count], path: Path = BUDGETS) -> None:
    """The measured counts (the median of repeats) as the new budgets."""
    budgets: dict[str, dict[str, int]] = {}
    for (client, loop), value in medians(counts).items():
        budgets.setdefault(client, {})[loop] = round(value)
    data = {
        "about": (
            "User-space instructions (callgrind Ir) per W1 ping-pong round trip; "
            "regenerate with: python -m bench.instructions --update"
        ),
        "round_trips": counts[0].round_trips if counts else ROUND_TRIPS,
        "tolerance": TOLERANCE,
        "environment": environment(),
        "budgets": budgets,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def compare(
    counts: list[Count], budgets: dict[str, Any], tolerance: float | None = None
) -> list[str]:
    """One message per (client, loop) outside budget ± tolerance; empty when all are kept."""
    tol = float(budgets.get("tolerance", TOLERANCE)) if tolerance is None else tolerance
    table: dict[str, dict[str, int]] = budgets["budgets"]
    problems: list[str] = []
    for (client, loop), values in sorted(per_config(counts).items()):
        measured = sorted(values)[len(values) // 2]
        budget = table.get(client, {}).get(loop)
        name = f"{client} ({loop})"
        if budget is None:
            problems.append(
                f"{name}: {measured:,.0f} instructions per round trip and no budget; "
                "add one with `python -m bench.instructions --update`"
            )
            continue
        change = measured / budget - 1
        if change > tol:
            problems.append(
                f"{name}: {measured:,.0f} instructions per round trip, {change:+.1%} over "
                f"the budget of {budget:,} (limit {tol:+.0%}): a regression"
            )
        elif change < -tol:
            problems.append(
                f"{name}: {measured:,.0f} instructions per round trip, {change:+.1%} under "
                f"the budget of {budget:,}: an improvement; lower the budget with "
                "`python -m bench.instructions --update` and commit it"
            )
    if problems:
        recorded = budgets.get("environment", {})
        now = environment()
        differ = [
            f"{k} {recorded[k]!r} -> {now.get(k)!r}"
            for k in sorted(recorded)
            if recorded[k] != now.get(k)
        ]
        if differ:
            problems.append("the budgets were measured with other versions: " + "; ".join(differ))
    return problems


def table(counts: list[Count], budgets: dict[str, Any] | None = None) -> str:
    """A markdown table: per round trip, the ratio to the matching ideal client, the spread."""
    cfg = per_config(counts)
    loops = [lp for lp in LOOPS if any(k[1] == lp for k in cfg)]
    med = medians(counts)
    head = ["client", *(f"{lp}" for lp in loops), *(f"× ideal ({lp})" for lp in loops)]
    repeats = max((len(v) for v in cfg.values()), default=1)
    if repeats > 1:
        head.append("spread of repeats")
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    clients = [c for c in CLIENTS if any(k[0] == c for k in cfg)]
    for c in clients:
        row = [CLIENTS[c]]
        for lp in loops:
            v = med.get((c, lp))
            row.append("" if v is None else f"{v / 1000:,.1f} k")
        for lp in loops:
            ideal = IDEAL_OF.get(c)
            v, ref = med.get((c, lp)), med.get((ideal, lp)) if ideal else None
            row.append(f"{v / ref:.2f}×" if v and ref else "")
        if repeats > 1:
            spreads = [
                (max(cfg[(c, lp)]) - min(cfg[(c, lp)])) / min(cfg[(c, lp)])
                for lp in loops
                if (c, lp) in cfg
            ]
            row.append(f"≤ {max(spreads):.3%}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    ap.add_argument("--loops", default=",".join(LOOPS), help="comma-separated")
    ap.add_argument("--round-trips", type=int, default=ROUND_TRIPS)
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--check", action="store_true", help="compare with the budgets")
    ap.add_argument("--update", action="store_true", help="write the budgets")
    ap.add_argument("--json", type=Path, help="also write the counts here")
    # The measured process (internal).
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=CHILD_TIMEOUT / 2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.round_trips <= 0 or args.round_trips % W1_TURN_EVERY:
        ap.error(f"--round-trips must be a positive multiple of {W1_TURN_EVERY}")
    if args.child:
        return child_main(args)
    clients = [c for c in args.clients.split(",") if c]
    loops = [lp for lp in args.loops.split(",") if lp]
    if bad := [c for c in clients if c not in CLIENTS] + [lp for lp in loops if lp not in LOOPS]:
        ap.error(f"unknown: {bad}; clients {list(CLIENTS)}, loops {list(LOOPS)}")
    t0 = time.monotonic()
    try:
        counts = measure(
            clients,
            loops,
            round_trips=args.round_trips,
            repeat=args.repeat,
            jobs=args.jobs,
            progress=True,
        )
    except GateError as exc:
        print(f"instruction gate: {exc}", file=sys.stderr)
        return 2
    print(f"\n{len(counts)} runs in {time.monotonic() - t0:.0f} s\n")
    print(table(counts))
    if args.json:
        rows = [c.__dict__ | {"per_round_trip": c.per_round_trip} for c in counts]
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.update:
        write_budgets(counts)
        print(f"\nbudgets written to {BUDGETS.relative_to(ROOT)}")
        return 0
    if args.check:
        problems = compare(counts, load_budgets())
        for p in problems:
            print("FAIL " + p)
        if problems:
            return 1
        print("\nall counts within ±2 % of their budgets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
