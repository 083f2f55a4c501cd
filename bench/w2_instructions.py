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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bench.common import PCM_IN, W2_SEND_HZ, Frames, live_url, run_loop
from bench.instructions import LOOPS, GateError, callgrind, valgrind

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
PERIODS: Final = 10
#: Phases of the audio clock (as ``bench.client``'s W2 clock).
PHASES: Final = 4
CONNECT_CONCURRENCY: Final = 50
CHILD_TIMEOUT: Final = 900.0

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
) -> dict[str, Any]:
    """Open ``sessions``, run the stretched W2 clock, count the window's messages.

    The measured window is ``periods`` × ``PHASES`` ticks of the audio clock, between the
    two ``marks`` calls (callgrind's markers; a profiler's enable/disable). Every wait is
    bounded by ``limit`` seconds in all.
    """
    start_mark, stop_mark = marks
    from bench.client import W2Recorder, _bounded_close
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

    @property
    def per_message(self) -> float:
        return self.instructions / self.messages


def measure_one(
    client: str,
    loop: str,
    *,
    sessions: int = SESSIONS,
    slowdown: float = SLOWDOWN,
    warmup_periods: int = WARMUP_PERIODS,
    periods: int = PERIODS,
    valgrind_bin: str = "",
) -> W2Count:
    """One W2 client process under callgrind against its own server (clock stretched alike)."""
    from bench.procs import ServerProc

    with ServerProc(framing="service", pace_scale=slowdown) as server:
        instructions, data = callgrind(
            "bench.w2_instructions",
            [
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
                "--timeout",
                str(CHILD_TIMEOUT * 0.9),
            ],
            f"W2 {client} ({loop})",
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.w2_instructions", description=__doc__)
    ap.add_argument("--clients", default=",".join(DEFAULT_CLIENTS), help="comma-separated")
    ap.add_argument("--loops", default=",".join(LOOPS), help="comma-separated")
    ap.add_argument("--sessions", type=int, default=SESSIONS)
    ap.add_argument("--slowdown", type=float, default=SLOWDOWN, help="clock stretch factor")
    ap.add_argument("--warmup-periods", type=int, default=WARMUP_PERIODS)
    ap.add_argument("--periods", type=int, default=PERIODS, help="20 ms periods measured")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--json", help="also write the counts here")
    # The measured process (internal).
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=CHILD_TIMEOUT, help=argparse.SUPPRESS)
    ap.add_argument("--cprofile", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.sessions < 1 or args.periods < 1 or args.warmup_periods < 0:
        ap.error("--sessions and --periods must be positive, --warmup-periods not negative")
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
        )
    except GateError as exc:
        print(f"W2 instructions: {exc}", file=sys.stderr)
        return 2
    print(f"\n{len(counts)} runs in {time.monotonic() - t0:.0f} s\n")
    print(table(counts))
    if args.json:
        rows = [c.__dict__ | {"per_message": c.per_message} for c in counts]
        with open(args.json, "w") as f:
            f.write(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
