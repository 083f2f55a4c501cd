"""One client run in a fresh process: ``python -m bench.client WORKLOAD --mode KEY ...``.

Prints exactly one line ``RESULT <json>`` on stdout (with ``"error"`` set when the mode
failed) and exits. Every wait is bounded.

* ``w1``: connect, 50 untimed warm-up chunks (one turn), then the regimes in ``--regimes``
  one after the other on the same session, each starting after ``gc.collect()`` with every
  earlier reply received: ``pipelined`` (``--chunks`` 20 ms chunks back to back, ``await
  asyncio.sleep(0)`` after each, replies consumed as they come), ``ping-pong``
  (``--ping-pong`` chunks, each sent after the previous one's audio reply reached the
  app) and ``paced`` (``--paced`` chunks, one every 20 ms). CPU per chunk =
  ``time.process_time()`` delta of the regime (until every reply is in) / chunks.
* ``w2``: ``--sessions`` concurrent sessions; one audio clock task sends every session a
  chunk every 20 ms (4 phases of 5 ms), the server sends 25 stamped replies/s per session.
  After ``--warmup`` s, ``--window`` s are measured: CPU %, delivery latency (server send
  -> event in the app), achieved send/receive rates, send lag.
* ``w3``: connect+setup latency (cold, then ``--connects`` warm), memory per idle session
  (``--idle`` sessions), resume latency after goAway (``--resumes``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench.common import (
    DEFAULT_FRAMING,
    FRAMINGS,
    IN_CHUNK_BYTES,
    OUT_CHUNK_BYTES,
    PCM_IN,
    W1_TURN_EVERY,
    W2_REPLY_HZ,
    W2_SEND_HZ,
    Frames,
    current_rss_bytes,
    fill_spread,
    live_url,
    peak_rss_mib,
    percentile,
    proc_cpu_seconds,
    raise_fd_limit,
    run_loop,
)
from bench.modes import ALL_MODES, Conn, Mode, Sink

assert len(PCM_IN) == IN_CHUNK_BYTES


def _result(data: dict[str, Any]) -> None:
    sys.stdout.write("RESULT " + json.dumps(data) + "\n")
    sys.stdout.flush()


async def _bounded_close(conns: list[Conn], limit: float = 5.0) -> None:
    async def one(c: Conn) -> None:
        with contextlib.suppress(Exception):
            await c.close()

    if conns:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(one(c) for c in conns)), limit)


# -- W1 -------------------------------------------------------------------------------------


class W1Sink(Sink):
    __slots__ = (
        "audio",
        "audio_bytes",
        "done",
        "target_audio",
        "target_turns",
        "transcripts",
        "turns",
    )

    def __init__(self) -> None:
        self.audio = 0
        self.audio_bytes = 0
        self.transcripts = 0
        self.turns = 0
        self.target_audio = 0
        self.target_turns = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def expect_audio(self, audio: int) -> asyncio.Future[None]:
        """A future done once ``audio`` replies arrived (turns are not waited for)."""
        return self.expect(audio, 0)

    def expect(self, audio: int, turns: int) -> asyncio.Future[None]:
        self.target_audio, self.target_turns = audio, turns
        self.done = asyncio.get_running_loop().create_future()
        self._check()
        return self.done

    def _check(self) -> None:
        if (
            self.audio >= self.target_audio
            and self.turns >= self.target_turns
            and not self.done.done()
        ):
            self.done.set_result(None)

    def on_audio(self, pcm: bytes) -> None:
        self.audio += 1
        self.audio_bytes += len(pcm)
        if self.audio >= self.target_audio:
            self._check()

    def on_transcript(self, text: str) -> None:
        self.transcripts += 1

    def on_turn_complete(self) -> None:
        self.turns += 1
        if self.turns >= self.target_turns:
            self._check()

    def on_closed(self) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("connection closed during the run"))


async def _send_chunks(conn: Conn, n: int) -> None:
    sleep = asyncio.sleep
    pcm = PCM_IN
    for _ in range(n):
        await conn.send_audio(pcm)
        await sleep(0)


async def _pipelined(conn: Conn, sink: W1Sink, n: int) -> None:
    """Chunks back to back (one loop turn each); replies are consumed as they come."""
    await _send_chunks(conn, n)


async def _ping_pong(conn: Conn, sink: W1Sink, n: int) -> None:
    """One chunk in flight: send, wait for its audio reply, repeat (each frame wakes the loop)."""
    pcm = PCM_IN
    target = sink.audio
    for _ in range(n):
        target += 1
        done = sink.expect_audio(target)
        await conn.send_audio(pcm)
        await done


async def _paced(conn: Conn, sink: W1Sink, n: int) -> None:
    """One chunk every 20 ms, like a microphone: the live-conversation regime."""
    loop = asyncio.get_running_loop()
    pcm = PCM_IN
    sleep = asyncio.sleep
    period = 1.0 / W2_SEND_HZ
    due = loop.time()
    for _ in range(n):
        await conn.send_audio(pcm)
        due += period
        delay = due - loop.time()
        await sleep(delay if delay > 0 else 0)


REGIMES: dict[str, Callable[[Conn, W1Sink, int], Awaitable[None]]] = {
    "pipelined": _pipelined,
    "ping-pong": _ping_pong,
    "paced": _paced,
}


async def run_w1(mode: Mode, args: argparse.Namespace) -> dict[str, Any]:
    await mode.prepare()
    url = live_url(args.port, "w1")
    sink = W1Sink()
    t = time.perf_counter()
    conn = await mode.open(url, sink)
    connect_s = time.perf_counter() - t
    counts = {"pipelined": args.chunks, "ping-pong": args.ping_pong, "paced": args.paced}
    out: dict[str, Any] = {}
    total = W1_TURN_EVERY
    try:
        # Warm-up, identical for every client: one pipelined turn, untimed.
        done = sink.expect(total, total // W1_TURN_EVERY)
        await _send_chunks(conn, total)
        await asyncio.wait_for(done, args.timeout)
        for regime in args.regimes.split(","):
            n = counts[regime]
            total += n
            # Every regime starts from the same state: all replies in, a fresh GC.
            gc.collect()
            cpu0, t0 = time.process_time(), time.perf_counter()
            async with asyncio.timeout(args.timeout):
                await REGIMES[regime](conn, sink, n)
                await sink.expect(total, total // W1_TURN_EVERY)
            cpu1, t1 = time.process_time(), time.perf_counter()
            out[regime] = {
                "chunks": n,
                "cpu_s": cpu1 - cpu0,
                "cpu_us_per_chunk": (cpu1 - cpu0) / n * 1e6,
                "wall_s": t1 - t0,
                "wall_us_per_chunk": (t1 - t0) / n * 1e6,
            }
    finally:
        await _bounded_close([conn])
    if sink.audio_bytes != total * OUT_CHUNK_BYTES:
        raise AssertionError(
            f"received {sink.audio_bytes} audio bytes, expected {total * OUT_CHUNK_BYTES}"
        )
    return {
        "regimes": out,
        "peak_rss_mib": peak_rss_mib(),
        "connect_ms": connect_s * 1000,
        "loadavg_1m": os.getloadavg()[0],
    }


# -- W2 -------------------------------------------------------------------------------------


class W2Recorder(Sink):
    """Shared by all sessions of a run (counts only inside the measured window)."""

    __slots__ = ("latencies", "on", "replies", "ticks", "turns")

    def __init__(self) -> None:
        self.on = False
        self.replies = 0
        self.turns = 0
        self.latencies: list[float] = []
        #: (scheduled loop time, loop time when the last send of the tick returned, sends)
        self.ticks: list[tuple[float, float, int]] = []

    def on_stamp(self, sent_at: float) -> None:
        if self.on:
            self.latencies.append(time.monotonic() - sent_at)

    def on_audio(self, pcm: bytes) -> None:
        if self.on:
            self.replies += 1

    def on_turn_complete(self) -> None:
        if self.on:
            self.turns += 1


_PHASES = 4


async def _audio_clock(conns: list[Conn], rec: W2Recorder, stop: asyncio.Event) -> None:
    """Every 20 ms each session gets one chunk (sessions spread over 4 phases of 5 ms).

    One clock for all sessions, like an audio gateway feeding every call: a chunk that is
    late is sent as soon as possible (the backlog shows as send lag / a lower send rate).
    """
    loop = asyncio.get_running_loop()
    period = 1.0 / W2_SEND_HZ
    step = period / _PHASES
    buckets = [conns[i::_PHASES] for i in range(_PHASES)]
    pcm = PCM_IN
    sched = loop.time() + step
    k = 0
    while not stop.is_set():
        delay = sched - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)
        bucket = buckets[k % _PHASES]
        for c in bucket:
            await c.send_audio(pcm)
        rec.ticks.append((sched, loop.time(), len(bucket)))
        k += 1
        sched += step


async def fill_windows(conns: Sequence[Conn], chunks: int) -> None:
    """Every session sends its share of :func:`bench.common.fill_spread` (``chunks`` and
    up to half as many again), one round over the sessions at a time with a loop pass
    between rounds (so the writes drain and the server reads along)."""
    pcm = PCM_IN
    counts = fill_spread(chunks, len(conns))
    for r in range(max(counts, default=0)):
        for c, k in zip(conns, counts, strict=True):
            if r < k:
                await c.send_audio(pcm)
        await asyncio.sleep(0)


async def run_w2(mode: Mode, args: argparse.Namespace) -> dict[str, Any]:
    await mode.prepare()
    url = live_url(args.port, "w2")
    rec = W2Recorder()
    n = args.sessions
    sem = asyncio.Semaphore(args.connect_concurrency)

    async def open_one() -> Conn:
        async with sem:
            return await mode.open(url, rec)

    t = time.perf_counter()
    tasks = [asyncio.ensure_future(open_one()) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=args.ramp_timeout)
    for p in pending:
        p.cancel()
    conns = [d.result() for d in done if not d.cancelled() and d.exception() is None]
    errors = [d.exception() for d in done if not d.cancelled() and d.exception() is not None]
    ramp_s = time.perf_counter() - t
    if len(conns) < n:
        first = repr(errors[0]) if errors else f"ramp-up timeout after {args.ramp_timeout:g} s"
        os_exit_result(
            {"error": f"only {len(conns)}/{n} sessions opened: {first}", "ramp_s": ramp_s}
        )
    random.Random(n).shuffle(conns)
    await fill_windows(conns, args.fill)
    if args.start_at:
        # Several client processes (scale-out) start their clocks together.
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
    stop = asyncio.Event()
    clock = asyncio.get_running_loop().create_task(_audio_clock(conns, rec, stop))
    await asyncio.sleep(args.warmup)
    # A full collection before the window, so that none of the warm-up's garbage is
    # collected inside it. It stops the loop for as long as it walks every tracked
    # object of N sessions (tens of ms at N = 300): the clock falls behind and catches
    # up afterwards. The window starts once it has (``settle``), or a client's larger
    # heap would show as send lag that no app pays in steady state (it did until
    # 2026-12-07: gemini-live's 23-32 ms collection put its first window ticks 30-38 ms
    # late, the ideal client's 7-13 ms one did not reach the p99).
    t = time.perf_counter()
    gc.collect()
    collect_s = time.perf_counter() - t
    await asyncio.sleep(args.settle)
    loop = asyncio.get_running_loop()
    srv0 = proc_cpu_seconds(args.server_pid) if args.server_pid else None
    cpu0, t0, w0 = time.process_time(), time.perf_counter(), loop.time()
    times0 = os.times()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    pauses = GcPauses()
    rec.on = pauses.on = True
    await asyncio.sleep(args.window)
    rec.on = pauses.on = False
    cpu1, t1, w1 = time.process_time(), time.perf_counter(), loop.time()
    times1 = os.times()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    srv1 = proc_cpu_seconds(args.server_pid) if args.server_pid else None
    stop.set()
    wall = t1 - t0
    lat = sorted(rec.latencies)
    # Chunks due inside the window, and how many of them went out before it ended.
    due = [(s, d, c) for s, d, c in rec.ticks if w0 <= s < w1]
    sent = sum(c for _, d, c in due if d <= w1)
    # How late the sends that went out during the window were.
    done_in_window = [(s, d, c) for s, d, c in rec.ticks if w0 <= d <= w1]
    lags = sorted(d - s for s, d, _ in done_in_window)
    handled = sum(c for _, _, c in done_in_window) + rec.replies
    out: dict[str, Any] = {
        "sessions": n,
        "ramp_s": ramp_s,
        "window_s": wall,
        "cpu_pct": (cpu1 - cpu0) / wall * 100,
        "server_cpu_pct": (srv1 - srv0) / wall * 100 if srv0 is not None and srv1 else None,
        "send_rate": sent / (n * (w1 - w0) * W2_SEND_HZ),
        "recv_rate": rec.replies / (n * wall * W2_REPLY_HZ),
        "latency_ms_p50": percentile(lat, 50) * 1000,
        "latency_ms_p99": percentile(lat, 99) * 1000,
        "latency_ms_max": (lat[-1] * 1000) if lat else float("nan"),
        "send_lag_ms_p99": percentile(lags, 99) * 1000,
        "replies": rec.replies,
        "cpu_us_per_msg": (cpu1 - cpu0) / handled * 1e6 if handled else float("nan"),
        # The kernel's part (system calls): callgrind's instruction counts leave it out.
        "sys_us_per_msg": (times1.system - times0.system) / handled * 1e6
        if handled
        else float("nan"),
        # Per message: times the process gave the CPU up waiting (each one a loop
        # iteration that found nothing to do and slept) or was preempted, and page faults.
        "vol_switches_per_msg": (ru1.ru_nvcsw - ru0.ru_nvcsw) / handled if handled else None,
        "invol_switches_per_msg": (ru1.ru_nivcsw - ru0.ru_nivcsw) / handled if handled else None,
        "minflt_per_msg": (ru1.ru_minflt - ru0.ru_minflt) / handled if handled else None,
        "loadavg_1m": os.getloadavg()[0],
        "peak_rss_mib": peak_rss_mib(),
        "rss_mib": current_rss_bytes() / 2**20,
        **pauses.result(),
        # The full collection before the window (outside it): how long one takes over
        # N sessions' objects, and how many objects the collector tracks.
        "pre_collect_ms": collect_s * 1000,
        "gc_tracked": len(gc.get_objects()),
    }
    clock.cancel()
    return out


class GcPauses:
    """Collector pauses while on: count, total and longest, per generation."""

    def __init__(self) -> None:
        self.on = False
        self._t0 = 0.0
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self.on:
            g = info["generation"]
            d = time.perf_counter() - self._t0
            self.count[g] += 1
            self.total[g] += d
            self.longest[g] = max(self.longest[g], d)

    def result(self) -> dict[str, Any]:
        return {
            "gc_count": self.count,
            "gc_total_ms": [round(x * 1000, 2) for x in self.total],
            "gc_longest_ms": [round(x * 1000, 2) for x in self.longest],
        }


def os_exit_result(data: dict[str, Any]) -> None:
    """Report and leave at once (thousands of sockets need no orderly teardown)."""
    _result(data)
    os._exit(0)


# -- W3 -------------------------------------------------------------------------------------


class W3Sink(Sink):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.handle_seen: asyncio.Future[str] = loop.create_future()
        self.go_away_at: asyncio.Future[float] = loop.create_future()
        self.setup_after_go_away: asyncio.Future[float] = loop.create_future()

    def on_handle(self, handle: str) -> None:
        if not self.handle_seen.done():
            self.handle_seen.set_result(handle)

    def on_go_away(self) -> None:
        if not self.go_away_at.done():
            self.go_away_at.set_result(time.perf_counter())

    def on_setup_complete(self) -> None:
        if self.go_away_at.done() and not self.setup_after_go_away.done():
            self.setup_after_go_away.set_result(time.perf_counter())


async def run_w3(mode: Mode, args: argparse.Namespace) -> dict[str, Any]:
    await mode.prepare()
    url = live_url(args.port, "w3")
    null = Sink()
    timeout = args.timeout

    t = time.perf_counter()
    c = await mode.open(url, null)
    cold_ms = (time.perf_counter() - t) * 1000
    await _bounded_close([c])

    connect_ms: list[float] = []
    for _ in range(args.connects):
        t = time.perf_counter()
        c = await mode.open(url, null)
        connect_ms.append((time.perf_counter() - t) * 1000)
        await _bounded_close([c])

    # Memory per idle session.
    gc.collect()
    await asyncio.sleep(0.1)
    rss0 = current_rss_bytes()
    sem = asyncio.Semaphore(20)

    async def open_idle() -> Conn:
        async with sem:
            return await mode.open(url, Sink())

    idle = await asyncio.wait_for(asyncio.gather(*(open_idle() for _ in range(args.idle))), timeout)
    await asyncio.sleep(0.2)
    gc.collect()
    rss1 = current_rss_bytes()
    await _bounded_close(idle, 10.0)
    del idle

    # Resume latency: goAway seen in the app -> setupComplete (with the handle) seen in the app.
    resume_ms: list[float] = []
    for _ in range(args.resumes):
        sink = W3Sink()
        c = await mode.open(url, sink)
        try:
            await asyncio.wait_for(sink.handle_seen, timeout)
            await c.send_go_away_trigger()
            t_go = await asyncio.wait_for(sink.go_away_at, timeout)
            if mode.auto_resume:
                t_ready = await asyncio.wait_for(sink.setup_after_go_away, timeout)
            else:
                await asyncio.wait_for(c.resume(), timeout)
                t_ready = time.perf_counter()
            resume_ms.append((t_ready - t_go) * 1000)
        finally:
            await _bounded_close([c])
    return {
        "cold_connect_ms": cold_ms,
        "connect_ms": connect_ms,
        "idle_sessions": args.idle,
        "idle_kib_per_session": (rss1 - rss0) / args.idle / 1024,
        "resume_ms": resume_ms,
        "peak_rss_mib": peak_rss_mib(),
    }


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.client")
    ap.add_argument("workload", choices=("w1", "w2", "w3"))
    ap.add_argument("--mode", choices=sorted(ALL_MODES), required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--framing", choices=FRAMINGS, default=DEFAULT_FRAMING)
    ap.add_argument("--timeout", type=float, default=60.0, help="bound for every wait")
    ap.add_argument("--chunks", type=int, default=3000, help="W1 pipelined chunks")
    ap.add_argument("--ping-pong", type=int, default=1000, help="W1 ping-pong chunks")
    ap.add_argument("--paced", type=int, default=150, help="W1 paced (20 ms) chunks")
    ap.add_argument("--regimes", default="pipelined,ping-pong,paced")
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument(
        "--settle", type=float, default=0.5, help="W2: seconds after gc.collect() before the window"
    )
    ap.add_argument(
        "--fill",
        type=int,
        default=0,
        help="W2: chunks each session sends back to back before the clock starts",
    )
    ap.add_argument("--ramp-timeout", type=float, default=60.0)
    ap.add_argument("--connect-concurrency", type=int, default=50)
    ap.add_argument("--server-pid", type=int, default=0)
    ap.add_argument("--start-at", type=float, default=0.0, help="W2: wall time to start at")
    ap.add_argument("--connects", type=int, default=50)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--resumes", type=int, default=10)
    ap.add_argument("--cprofile", default="", help="write a cProfile of the run here")
    args = ap.parse_args(argv)
    if any(n % W1_TURN_EVERY for n in (args.chunks, args.ping_pong, args.paced)):
        ap.error(f"W1 chunk counts must be multiples of {W1_TURN_EVERY}")
    if args.fill < 0:
        ap.error("--fill must not be negative")
    if any(r not in REGIMES for r in args.regimes.split(",")):
        ap.error(f"--regimes: choose from {', '.join(REGIMES)}")
    raise_fd_limit()
    mode = ALL_MODES[args.mode]()
    mode.frames = Frames(args.framing)
    runner = {"w1": run_w1, "w2": run_w2, "w3": run_w3}[args.workload]

    async def go() -> dict[str, Any]:
        return await runner(mode, args)

    base = {"workload": args.workload, "mode": args.mode, "loop": args.loop}
    profiler = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        data = run_loop(go, args.loop)
    except BaseException as exc:  # report any failure as data, never hang
        tb = traceback.format_exception(exc)
        sys.stderr.write("".join(tb))
        reason = f"{type(exc).__name__}: {exc}".strip()
        os_exit_result({**base, "error": reason[:300]})
        return 1
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.cprofile)
    _result({**base, **data})
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
