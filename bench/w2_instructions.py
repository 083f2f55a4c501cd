"""Instructions per message in the W2 shape, counted by callgrind.

``python -m bench.w2_instructions`` runs, for every client and event loop, one W2 process
(``--sessions`` paced sessions in one event loop, one audio clock for all of them, the
server sending each session 25 stamped audio replies per second) under ``valgrind
--tool=callgrind`` and prints the user-space instructions (Ir) per **message** (a chunk
sent or an audio reply received, as ``CPU µs / msg`` counts them in the wall-clock W2).

Under callgrind a client runs some 30-100× slower, so the W2 clocks are stretched by
``--slowdown`` (default 100): the client's audio clock sends each session a chunk every
20 ms × slowdown (in 4 phases), and the server's reply clock (``--pace-scale``) sends
25 / slowdown replies per second per session. The window is a fixed number of clock
periods (``--periods``) after a warm-up (``--warmup-periods``, then ``gc.collect()``);
it is cut out as in ``bench.instructions``: ``os.getppid()`` before the window's first
tick, ``os.getpgrp()`` after its last one, callgrind run with ``--zero-before=getppid
--dump-before=getpgrp``.

What the stretched clocks change: the work per message is the same, but fewer messages
arrive per loop wake-up than in real time (the client idles between phases and picks up
replies in smaller batches), so the loop's fixed cost per wake-up weighs more: the
pessimistic side for every client alike. The clock must keep up (every tick on time
within one phase); the result says when it did not (``late_ticks``).

Not part of the CI gate and without budgets: a measurement to read as ratios.

``--cache-sim`` (alias ``--cachegrind``) also has callgrind simulate the caches
(``--cache-sim=yes``, this VM's per-core caches: 32 KiB first-level instruction and data
caches and the 1 MiB second level as the last level, see ``CACHES``) in the same window, and
adds a table of misses per message and cachegrind's rough cycle estimate (Ir + 10 × L1
misses + 100 × LL misses), the part of the wall clock instruction counts do not see: with
hundreds of sessions taking turns, each cache line of a session a message touches is
usually a miss. With ``GL_CALLGRIND_KEEP=DIR`` the dumps (``cachesim.w2.*.out``) show the
misses per function: ``callgrind_annotate --show=DLmr,DLmw,D1mr,D1mw,I1mr --sort=DLmw``.

To see where a client's instructions go by Python function, run one child without
valgrind under cProfile, the profiler on for the same window (its numbers are times, not
instructions, and cProfile's overhead per call inflates call-heavy code; the call counts
per message are exact)::

    python -m bench.server --pace-scale 10 &   # prints PORT <n>
    python -m bench.w2_instructions --child gemini-live-picows-cb --port <n> \
        --slowdown 10 --cprofile w2.prof
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.common import (
    PCM_IN,
    W2_FILL,
    W2_REPLY_HZ,
    W2_SEND_HZ,
    W2_TURN_EVERY,
    Frames,
    live_url,
    run_loop,
)
from bench.instructions import (
    LOOPS,
    GateError,
    callgrind,
    callgrind_command,
    run_child,
    valgrind,
)

#: Clients (``bench.modes`` keys) in table order, with their labels in the table.
CLIENTS: Final = {
    "floor": "transport floor (picows, no JSON, no events)",
    "ideal-cb": "ideal client, callback",
    "gemini-live-picows-cb": "gemini-live `on_event`",
    "ideal-queue": "ideal client, asyncio.Queue consumer",
    "gemini-live-picows": "gemini-live `async for`",
}
DEFAULT_CLIENTS: Final = ("floor", "ideal-cb", "gemini-live-picows-cb")
IDEAL_OF: Final = {"gemini-live-picows-cb": "ideal-cb", "gemini-live-picows": "ideal-queue"}
SESSIONS: Final = 300
SLOWDOWN: Final = 100.0
WARMUP_PERIODS: Final = 4
#: One whole turn of every session: 50 periods of 20 ms are 1 s, the server's 25 replies
#: of a turn (W2_TURN_EVERY at W2_REPLY_HZ), so each session's turn end (spread over the
#: turn, see bench.server) falls in the window once, whatever the window's phase (a
#: shorter window counts anywhere from none to all of some sessions' turn ends).
PERIODS: Final = W2_TURN_EVERY * W2_SEND_HZ // W2_REPLY_HZ
#: Phases of the audio clock (as ``bench.client``'s W2 clock).
PHASES: Final = 4
CONNECT_CONCURRENCY: Final = 50
CHILD_TIMEOUT: Final = 900.0

#: The caches simulated with ``--cache-sim``: this VM's per-core first-level caches and its
#: per-core second level as the "last level" (valgrind's own detection reported a 256 MiB
#: direct-mapped LL here, which nothing misses; the shared 32 MiB L3 is shared with the
#: other processes on the host too). A miss in this LL costs the trip to L3 or memory.
CACHES: Final = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64")

#: The marker functions (libc) that bound the measured window (as ``bench.instructions``).
START_MARK: Final = "getppid"
STOP_MARK: Final = "getpgrp"


# -- the measured process (runs under valgrind) ---------------------------------------------


async def run_window(
    mode_key: str,
    port: int,
    *,
    sessions: int,
    slowdown: float,
    warmup_periods: int,
    periods: int,
    limit: float,
    marks: tuple[Callable[[], object], Callable[[], object]] = (os.getppid, os.getpgrp),
    fill: int = 0,
) -> dict[str, Any]:
    """Open ``sessions``, run the stretched W2 clock, count the window's messages.

    First every session sends ``fill`` chunks (:func:`bench.client.fill_windows`): what a
    client keeps per chunk sent (a re-send window) is at its steady state when the clock
    starts. The measured window is ``periods`` × ``PHASES`` ticks of the audio clock,
    between the two ``marks`` calls (callgrind's markers; a profiler's enable/disable).
    Every wait is bounded by ``limit`` seconds in all.
    """
    start_mark, stop_mark = marks
    from bench.client import W2Recorder, _bounded_close, fill_windows
    from bench.modes import ALL_MODES, Conn

    mode = ALL_MODES[mode_key]()
    mode.frames = Frames("service")
    await mode.prepare()
    rec = W2Recorder()
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one() -> Conn:
        async with sem:
            return await mode.open(live_url(port, "w2"), rec)

    conns: list[Conn] = []
    try:
        async with asyncio.timeout(limit):
            t = time.perf_counter()
            conns = list(await asyncio.gather(*(open_one() for _ in range(sessions))))
            ramp_s = time.perf_counter() - t
            random.Random(sessions).shuffle(conns)
            await fill_windows(conns, fill)
            step = slowdown / W2_SEND_HZ / PHASES
            buckets = [conns[i::PHASES] for i in range(PHASES)]
            pcm = PCM_IN
            warm = warmup_periods * PHASES
            total = warm + periods * PHASES
            sent = late = 0
            worst = 0.0
            sched = loop.time() + step
            # The same work per tick as bench.client's W2 clock, for a fixed number of ticks.
            for k in range(total):
                if k == warm:
                    gc.collect()
                    rec.on = True
                    start_mark()  # START_MARK: callgrind zeroes its counters here
                delay = sched - loop.time()
                await asyncio.sleep(delay if delay > 0 else 0)
                bucket = buckets[k % PHASES]
                for c in bucket:
                    await c.send_audio(pcm)
                done = loop.time()
                rec.ticks.append((sched, done, len(bucket)))
                if k >= warm:
                    sent += len(bucket)
                    lag = done - sched
                    worst = max(worst, lag)
                    late += lag > step
                sched += step
            stop_mark()  # STOP_MARK: callgrind dumps the window here
            rec.on = False
    finally:
        await _bounded_close(conns)
    return {
        "sessions": sessions,
        "slowdown": slowdown,
        "periods": periods,
        "sent": sent,
        "replies": rec.replies,
        "turns": rec.turns,
        "messages": sent + rec.replies,
        "late_ticks": late,
        "worst_lag_steps": worst / step,
        "ramp_s": ramp_s,
    }


def child_main(args: argparse.Namespace) -> int:
    marks: tuple[Callable[[], object], Callable[[], object]] = (os.getppid, os.getpgrp)
    profiler = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        marks = (profiler.enable, profiler.disable)

    async def go() -> dict[str, Any]:
        return await run_window(
            args.child,
            args.port,
            sessions=args.sessions,
            slowdown=args.slowdown,
            warmup_periods=args.warmup_periods,
            periods=args.periods,
            limit=args.timeout,
            marks=marks,
            fill=args.fill,
        )

    data = run_loop(go, args.loop)
    if profiler is not None:
        profiler.dump_stats(args.cprofile)
    sys.stdout.write("RESULT " + json.dumps(data) + "\n")
    sys.stdout.flush()
    # Hundreds of sockets need no orderly interpreter teardown.
    os._exit(0)


# -- the harness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class W2Count:
    client: str
    loop: str
    instructions: int
    messages: int
    sent: int
    replies: int
    late_ticks: int
    #: With ``--cache-sim``: the window's simulated cache events (callgrind's names:
    #: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw), else empty.
    events: dict[str, int] = field(default_factory=dict)

    @property
    def per_message(self) -> float:
        return self.instructions / self.messages

    def event_per_message(self, name: str) -> float:
        return self.events.get(name, 0) / self.messages

    @property
    def l1_misses(self) -> int:
        """First-level misses, instruction and data."""
        return sum(self.events.get(k, 0) for k in ("I1mr", "D1mr", "D1mw"))

    @property
    def ll_misses(self) -> int:
        """Last-level misses, instruction and data."""
        return sum(self.events.get(k, 0) for k in ("ILmr", "DLmr", "DLmw"))

    @property
    def cycle_estimate(self) -> int:
        """cachegrind's rough cycle estimate: Ir + 10 × L1 misses + 100 × LL misses."""
        return self.instructions + 10 * self.l1_misses + 100 * self.ll_misses


def dump_events(path: Path, name: str) -> dict[str, int]:
    """A callgrind dump's totals by event name (its ``events:`` and ``summary:`` lines)."""
    names: list[str] = []
    values: list[int] = []
    with path.open() as f:
        for ln in f:
            if ln.startswith("events:"):
                names = ln.split()[1:]
            elif ln.startswith("summary:"):
                values = [int(v) for v in ln.split()[1:]]
    if not names or len(values) != len(names):
        raise GateError(f"{name}: no events/summary lines in the dump")
    return dict(zip(names, values, strict=True))


def cache_sim(
    module: str,
    args: list[str],
    name: str,
    *,
    keep_as: str,
    valgrind_bin: str,
    timeout: float,
) -> tuple[dict[str, int], dict[str, Any]]:
    """``python -m module *args`` under callgrind with its cache simulation
    (``--cache-sim=yes``, the caches of :data:`CACHES`), counted in the
    same marker window as :func:`bench.instructions.callgrind`: the window's events by name
    and the process's RESULT. ``GL_CALLGRIND_KEEP=DIR`` keeps the dump (``callgrind_annotate
    --show=D1mr,DLmr ...`` shows the misses per function)."""
    with tempfile.TemporaryDirectory(prefix="gl-cachesim-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            *callgrind_command(valgrind_bin, out),
            "--cache-sim=yes",
            *CACHES,
            sys.executable,
            "-m",
            module,
            *args,
        ]
        data = run_child(cmd, name, timeout)
        dumps = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name + "."))
        if dumps != [out.name + ".1"]:
            raise GateError(f"{name}: expected one window dump, got {dumps}")
        dump = out.parent / dumps[0]
        keep = os.environ.get("GL_CALLGRIND_KEEP")
        if keep:
            shutil.copy(dump, Path(keep) / keep_as)
        return dump_events(dump, name), data


def measure_one(
    client: str,
    loop: str,
    *,
    sessions: int = SESSIONS,
    slowdown: float = SLOWDOWN,
    warmup_periods: int = WARMUP_PERIODS,
    periods: int = PERIODS,
    fill: int = W2_FILL,
    valgrind_bin: str = "",
    cache: bool = False,
) -> W2Count:
    """One W2 client process under callgrind against its own server (clock stretched alike);
    with ``cache`` callgrind also simulates the caches (:func:`cache_sim`)."""
    from bench.procs import ServerProc

    events: dict[str, int] = {}
    with ServerProc(framing="service", pace_scale=slowdown) as server:
        child = [
            "--child",
            client,
            "--loop",
            loop,
            "--port",
            str(server.port),
            "--sessions",
            str(sessions),
            "--slowdown",
            repr(slowdown),
            "--warmup-periods",
            str(warmup_periods),
            "--periods",
            str(periods),
            "--fill",
            str(fill),
            "--timeout",
            str(CHILD_TIMEOUT * 0.9),
        ]
        name = f"W2 {client} ({loop})"
        if cache:
            events, data = cache_sim(
                "bench.w2_instructions",
                child,
                name,
                keep_as=f"cachesim.w2.{client}.{loop}.out",
                valgrind_bin=valgrind_bin or valgrind() or "valgrind",
                timeout=CHILD_TIMEOUT * 2,
            )
            instructions = events["Ir"]
        else:
            instructions, data = callgrind(
                "bench.w2_instructions",
                child,
                name,
                keep_as=f"callgrind.w2.{client}.{loop}.out",
                valgrind_bin=valgrind_bin,
                timeout=CHILD_TIMEOUT,
            )
    if not data.get("messages"):
        raise GateError(f"W2 {client} ({loop}): no message in the window: {data}")
    return W2Count(
        client,
        loop,
        instructions,
        int(data["messages"]),
        int(data["sent"]),
        int(data["replies"]),
        int(data["late_ticks"]),
        events,
    )


def measure(
    clients: list[str],
    loops: list[str],
    *,
    jobs: int = 2,
    progress: bool = False,
    **options: Any,
) -> list[W2Count]:
    """Every (client, loop), ``jobs`` at a time (each with its own server)."""
    vg = valgrind()
    if vg is None:
        raise GateError("valgrind is not installed (Debian: apt-get install valgrind)")
    work = [(c, lp) for c in clients for lp in loops]
    results: list[W2Count] = []
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(measure_one, c, lp, valgrind_bin=vg, **options) for c, lp in work]
        for fut in futures:
            count = fut.result()
            if progress:
                print(
                    f"  {count.client:<24} {count.loop:<8} {count.per_message:>10,.0f} "
                    f"per message ({count.messages} messages, {count.late_ticks} late ticks)",
                    file=sys.stderr,
                    flush=True,
                )
            results.append(count)
    return results


def table(counts: list[W2Count]) -> str:
    """A markdown table: instructions per message and the ratio to the matching ideal client."""
    by = {(c.client, c.loop): c for c in counts}
    loops = [lp for lp in LOOPS if any(k[1] == lp for k in by)]
    head = ["client", *loops, *(f"× ideal ({lp})" for lp in loops), "messages", "late ticks"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for client in [c for c in CLIENTS if any(k[0] == c for k in by)]:
        row = [CLIENTS[client]]
        for lp in loops:
            c = by.get((client, lp))
            row.append("" if c is None else f"{c.per_message / 1000:,.1f} k")
        for lp in loops:
            c, ideal = by.get((client, lp)), IDEAL_OF.get(client)
            ref = by.get((ideal, lp)) if ideal else None
            row.append(f"{c.per_message / ref.per_message:.2f}×" if c and ref else "")
        mine = [by[(client, lp)] for lp in loops if (client, lp) in by]
        row.append(" / ".join(f"{c.messages:,}" for c in mine))
        row.append(" / ".join(str(c.late_ticks) for c in mine))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def cache_table(counts: list[W2Count]) -> str:
    """A markdown table of the simulated cache misses per message (and the ratio of
    gemini-live's to its ideal client's), one row per client and loop."""
    by = {(c.client, c.loop): c for c in counts}
    cols = ["Ir", "D1mr", "D1mw", "I1mr", "DLmr", "DLmw", "ILmr"]
    head = ["client", "loop", *cols, "L1 miss", "LL miss", "est. cycles", "× ideal (cycles)"]
    lines = ["| " + " | ".join(head) + " |", "|---|---" + "|---:" * (len(head) - 2) + "|"]
    for c in counts:
        ideal = IDEAL_OF.get(c.client)
        ref = by.get((ideal, c.loop)) if ideal else None
        row = [CLIENTS[c.client], c.loop]
        row += [f"{c.event_per_message(k):,.1f}" for k in cols]
        row += [f"{c.l1_misses / c.messages:,.1f}", f"{c.ll_misses / c.messages:,.2f}"]
        row.append(f"{c.cycle_estimate / c.messages:,.0f}")
        ratio = (c.cycle_estimate / c.messages) / (ref.cycle_estimate / ref.messages) if ref else 0
        row.append(f"{ratio:.2f}×" if ref else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.w2_instructions", description=__doc__)
    ap.add_argument("--clients", default=",".join(DEFAULT_CLIENTS), help="comma-separated")
    ap.add_argument("--loops", default=",".join(LOOPS), help="comma-separated")
    ap.add_argument("--sessions", type=int, default=SESSIONS)
    ap.add_argument("--slowdown", type=float, default=SLOWDOWN, help="clock stretch factor")
    ap.add_argument("--warmup-periods", type=int, default=WARMUP_PERIODS)
    ap.add_argument("--periods", type=int, default=PERIODS, help="20 ms periods measured")
    ap.add_argument(
        "--fill",
        type=int,
        default=W2_FILL,
        help="chunks each session sends before the clock starts (fills the re-send window)",
    )
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--json", help="also write the counts here")
    ap.add_argument(
        "--cache-sim",
        "--cachegrind",
        action="store_true",
        help="also simulate the caches (callgrind --cache-sim=yes): misses per message",
    )
    # The measured process (internal).
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=CHILD_TIMEOUT, help=argparse.SUPPRESS)
    ap.add_argument("--cprofile", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.sessions < 1 or args.periods < 1 or args.warmup_periods < 0 or args.fill < 0:
        ap.error("--sessions and --periods must be positive, --warmup-periods, --fill not negative")
    if not args.slowdown > 0:
        ap.error("--slowdown must be > 0")
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
            jobs=args.jobs,
            progress=True,
            sessions=args.sessions,
            slowdown=args.slowdown,
            warmup_periods=args.warmup_periods,
            periods=args.periods,
            fill=args.fill,
            cache=args.cache_sim,
        )
    except GateError as exc:
        print(f"W2 instructions: {exc}", file=sys.stderr)
        return 2
    print(f"\n{len(counts)} runs in {time.monotonic() - t0:.0f} s\n")
    print(table(counts))
    if args.cache_sim:
        print()
        print(cache_table(counts))
    if args.json:
        rows = [c.__dict__ | {"per_message": c.per_message} for c in counts]
        with open(args.json, "w") as f:
            f.write(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
