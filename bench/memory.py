"""Memory per active session above the transport floor, from one run.

``python -m bench.memory`` starts the fake Live server (:class:`gemini_live.testing.
FakeLiveServer`) in its own process, then, for each N in ``--sessions``:

1. the *floor*: N bare picows connections that wrote a setup and got ``setupComplete``;
2. gemini-live: N sessions (picows, ``on_event``, the default config) in a spoken
   conversation: each turn the user streams ``--chunks`` 20 ms chunks of 16 kHz PCM16,
   then ``audioStreamEnd``; the fake answers, ends the turn and issues a resumable handle
   (a handle every turn). Each chunk is a new ``bytes`` object, as from a microphone.

Memory is read twice per turn: *mid-turn* (every session has streamed its chunks, none
answered: the re-send window holds the whole user turn) and *after the handle* (the
handle covered the turn). Reported per session, above the floor: the Python heap
(tracemalloc, which sees every object and buffer Python allocates) and the RSS. The
numbers are differences against the same process before the connections opened.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from typing import Any, Final

from bench.common import current_rss_bytes, raise_fd_limit

#: 20 ms of 16 kHz PCM16, not silent.
CHUNK: Final = (b"\x10\x27\xf0\xd8" * 160)[:640]
LIMIT: Final = 120.0


def serve() -> int:
    """The fake server's process: prints ``URL <url>`` and runs until stdin closes."""
    from gemini_live.testing import FakeLiveServer

    async def main() -> None:
        async with FakeLiveServer(reply_chunks=2, vad=False) as server:
            sys.stdout.write(f"URL {server.url}\n")
            sys.stdout.flush()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    return 0


def _heap() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _floor(url: str, n: int) -> list[Any]:
    """N bare picows connections past the setup (what any client holds at least)."""
    from picows import WSListener, WSMsgType, ws_connect

    class Bare(WSListener):
        def __init__(self) -> None:
            self.ready = asyncio.get_running_loop().create_future()

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if not self.ready.done():
                self.ready.set_result(None)

    setup = json.dumps({"setup": {"model": "models/gemini-3.8-live"}}).encode()
    conns: list[tuple[Any, Bare]] = []
    for _ in range(n):
        transport, listener = await ws_connect(Bare, url, read_buffer_init_size=4096)
        assert isinstance(listener, Bare)
        transport.send(WSMsgType.TEXT, setup)
        conns.append((transport, listener))
    async with asyncio.timeout(LIMIT):
        await asyncio.gather(*(listener.ready for _, listener in conns))
    return conns


async def _sessions(url: str, n: int) -> list[Any]:
    import gemini_live as gl

    out = []
    for _ in range(n):
        config = gl.build_config(url=url, model="gemini-3.8-live", main_stream=False)
        out.append(await asyncio.wait_for(gl.Session.connect(config), 10.0))
    return out


async def _turn(sessions: list[Any], chunks: int) -> tuple[int, int, int]:
    """One turn of every session; (heap mid-turn, rss mid-turn, window records mid-turn)."""
    from gemini_live import events as ev

    loop = asyncio.get_running_loop()
    handled = [loop.create_future() for _ in sessions]
    removers = []
    for s, fut in zip(sessions, handled, strict=True):

        def on_event(event: ev.Event, fut: asyncio.Future[None] = fut) -> None:
            if type(event) is ev.SessionResumptionUpdate and event.resumable and not fut.done():
                fut.set_result(None)

        removers.append(s.on_event(on_event))
    source = bytearray(CHUNK)
    for _ in range(chunks):
        for s in sessions:
            # A new bytes object per chunk, as a microphone delivers them: the re-send
            # window may keep the caller's (immutable) chunk instead of a copy, so one
            # shared object would hide what a real session holds.
            await s.send_audio(bytes(source))
        await asyncio.sleep(0)
    heap, rss = _heap(), current_rss_bytes()
    records = sum(s.protocol.unacknowledged for s in sessions)
    for s in sessions:
        await s.send_audio_stream_end()
    async with asyncio.timeout(LIMIT):
        await asyncio.gather(*handled)
    for remove in removers:
        remove()
    return heap, rss, records


async def run(url: str, n: int, turns: int, chunks: int) -> dict[str, Any]:
    gc.collect()
    heap0, rss0 = _heap(), current_rss_bytes()
    floor = await _floor(url, n)
    heap_floor, rss_floor = _heap() - heap0, current_rss_bytes() - rss0
    for transport, _ in floor:
        transport.disconnect()
    del floor
    await asyncio.sleep(0.5)  # let the sockets close (not a synchronisation)
    gc.collect()
    heap0, rss0 = _heap(), current_rss_bytes()
    sessions = await _sessions(url, n)
    mid: list[tuple[int, int, int]] = []
    after: list[tuple[int, int]] = []
    for _ in range(turns):
        mid.append(await _turn(sessions, chunks))
        after.append((_heap(), current_rss_bytes()))
    result = {
        "sessions": n,
        "turns": turns,
        "chunks_per_turn": chunks,
        "floor_heap_kib": heap_floor / n / 1024,
        "floor_rss_kib": rss_floor / n / 1024,
        "mid_turn_heap_kib": (mid[-1][0] - heap0) / n / 1024 - heap_floor / n / 1024,
        "mid_turn_rss_kib": (mid[-1][1] - rss0) / n / 1024 - rss_floor / n / 1024,
        "mid_turn_window_records": mid[-1][2] / n,
        "after_handle_heap_kib": (after[-1][0] - heap0) / n / 1024 - heap_floor / n / 1024,
        "after_handle_rss_kib": (after[-1][1] - rss0) / n / 1024 - rss_floor / n / 1024,
        "after_handle_window_records": sum(s.protocol.unacknowledged for s in sessions) / n,
    }
    async with asyncio.timeout(LIMIT):
        await asyncio.gather(*(s.close() for s in sessions))
    return result


class _NullSink:
    """The app of the ``--tracked`` clients: receives and drops every event."""

    def __getattr__(self, name: str) -> Any:
        return _ignore


def _ignore(*args: Any) -> None:
    pass


def _census() -> dict[str, int]:
    """GC-tracked objects by type name (after a full collection)."""
    gc.collect()
    out: dict[str, int] = {}
    for obj in gc.get_objects():
        t = type(obj)
        name = f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__name__
        out[name] = out.get(name, 0) + 1
    return out


def _collect_ms(repeat: int = 9) -> float:
    """The shortest of ``repeat`` full ``gc.collect()`` runs, in ms (the least disturbed)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[0]


def _diff(after: dict[str, int], before: dict[str, int], n: int) -> dict[str, float]:
    keys = set(after) | set(before)
    rows = {k: (after.get(k, 0) - before.get(k, 0)) / n for k in keys}
    return {k: v for k, v in sorted(rows.items(), key=lambda kv: -abs(kv[1])) if abs(v) >= 0.05}


async def tracked(url: str, key: str, n: int, chunks: int) -> dict[str, Any]:
    """Tracked objects per session of one client (``bench.modes`` key), idle and mid-turn."""
    from bench.modes import ALL_MODES

    mode = ALL_MODES[key]()
    await mode.prepare()
    sink: Any = _NullSink()
    # One connection opened and closed first: lazy imports and caches are not per session.
    warm = await mode.open(url, sink)
    for _ in range(3):
        await warm.send_audio(CHUNK)
    await warm.close()
    del warm
    gc.collect()
    await asyncio.sleep(0)
    empty_ms = _collect_ms()
    base = _census()
    conns = [await mode.open(url, sink) for _ in range(n)]
    await asyncio.sleep(0.2)  # let late setup frames land (not a synchronisation)
    idle = _census()
    idle_ms = _collect_ms()
    source = bytearray(CHUNK)
    for _ in range(chunks):
        for c in conns:
            await c.send_audio(bytes(source))
        await asyncio.sleep(0)
    mid = _census()
    mid_ms = _collect_ms()
    row = {
        "client": key,
        "sessions": n,
        "chunks": chunks,
        "idle_per_session": sum(idle.values()) / n - sum(base.values()) / n,
        "mid_turn_per_session": sum(mid.values()) / n - sum(base.values()) / n,
        "gc_ms_empty": round(empty_ms, 2),
        "gc_ms_idle": round(idle_ms, 2),
        "gc_ms_mid_turn": round(mid_ms, 2),
        "idle_by_type": _diff(idle, base, n),
        "mid_turn_by_type": _diff(mid, base, n),
    }
    async with asyncio.timeout(LIMIT):
        await asyncio.gather(*(c.close() for c in conns))
    return row


async def _gc_child(url: str, key: str, n: int, chunks: int) -> dict[str, Any]:
    """N sessions of one client mid-turn, then one full ``gc.collect()`` between the
    callgrind markers (``os.getppid()`` / ``os.getpgrp()``, as ``bench.instructions``)."""
    from bench.modes import ALL_MODES

    mode = ALL_MODES[key]()
    await mode.prepare()
    sink: Any = _NullSink()
    conns = [await mode.open(url, sink) for _ in range(n)]
    source = bytearray(CHUNK)
    for _ in range(chunks):
        for c in conns:
            await c.send_audio(bytes(source))
        await asyncio.sleep(0)
    gc.collect()
    gc.collect()
    tracked = len(gc.get_objects())
    os.getppid()
    gc.collect()
    os.getpgrp()
    return {"client": key, "sessions": n, "tracked": tracked}


def gc_callgrind_main(url: str, n: int, chunks: int, clients: list[str]) -> None:
    """The instructions of one full collection with N sessions open, per client."""
    from bench.instructions import callgrind

    rows = []
    for key in clients:
        instructions, data = callgrind(
            "bench.memory",
            ["--gc-child", f"{url},{key},{n},{chunks}"],
            f"gc.collect() {key}",
            keep_as=f"callgrind.gc.{key}.out",
            timeout=LIMIT * 10,
        )
        data["collect_instructions"] = instructions
        rows.append(data)
        print("RESULT " + json.dumps(data), flush=True)
    print()
    print("| client | N | tracked objects in the process | gc.collect() instructions |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['client']} | {r['sessions']} | {r['tracked']:,} "
            f"| {r['collect_instructions']:,} |"
        )


def tracked_main(url: str, sizes: list[int], chunks: int, clients: list[str]) -> None:
    rows = []
    for n in sizes:
        for key in clients:
            row = asyncio.run(tracked(url, key, n, chunks))
            rows.append(row)
            print("RESULT " + json.dumps(row), flush=True)
    print()
    print(
        "| client | N | tracked/session idle | tracked/session mid-turn "
        "| gc.collect() ms empty | idle | mid-turn |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['client']} | {r['sessions']} | {r['idle_per_session']:.1f} "
            f"| {r['mid_turn_per_session']:.1f} | {r['gc_ms_empty']:.2f} "
            f"| {r['gc_ms_idle']:.2f} | {r['gc_ms_mid_turn']:.2f} |"
        )
    for r in rows:
        print(f"\n{r['client']} N={r['sessions']} idle, per session by type:")
        for name, v in r["idle_by_type"].items():
            print(f"  {v:7.2f}  {name}")
        print(f"{r['client']} N={r['sessions']} mid-turn, per session by type:")
        for name, v in r["mid_turn_by_type"].items():
            print(f"  {v:7.2f}  {name}")


def _w2_gc_one(key: str, loop: str, n: int, slowdown: float, periods: int) -> dict[str, Any]:
    from bench.common import run_loop
    from bench.procs import ServerProc
    from bench.w2_instructions import run_window

    state: dict[str, Any] = {}
    pauses = [0.0, 0.0, 0.0]
    began = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses[info["generation"]] += time.perf_counter() - began[0]

    def start() -> None:
        state["census"] = _census()
        state["counts"] = [g["collections"] for g in gc.get_stats()]
        gc.callbacks.append(on_gc)

    def stop() -> None:
        gc.callbacks.remove(on_gc)
        state["counts"] = [
            b["collections"] - a for a, b in zip(state["counts"], gc.get_stats(), strict=True)
        ]
        state["left"] = _diff(_census(), state["census"], 1)

    with ServerProc(framing="service", pace_scale=slowdown) as server:

        async def go() -> dict[str, Any]:
            return await run_window(
                key,
                server.port,
                sessions=n,
                slowdown=slowdown,
                warmup_periods=20,
                periods=periods,
                limit=LIMIT * 3,
                marks=(start, stop),
            )

        data = run_loop(go, loop)
    messages = int(data["messages"])
    return {
        "client": key,
        "loop": loop,
        "sessions": n,
        "messages": messages,
        "collections": state["counts"],
        "gc_ms": [round(p * 1e3, 2) for p in pauses],
        "gc_us_per_message": round(sum(pauses) * 1e6 / max(1, messages), 4),
        "left_by_type": dict(list(state["left"].items())[:12]),
    }


def w2_gc_main(sizes: list[int], clients: list[str], loops: list[str], slowdown: float) -> None:
    rows = []
    for n in sizes:
        for loop in loops:
            for key in clients:
                # Its own process each: one client's leftovers do not feed another's counts.
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.memory",
                        "--w2-gc-child",
                        f"{key},{loop},{n},{slowdown}",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=LIMIT * 5,
                    check=False,
                )
                lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode != 0 or not lines:
                    print(proc.stdout[-2000:] + proc.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"{key} ({loop}) failed")
                row = json.loads(lines[-1].removeprefix("RESULT "))
                rows.append(row)
                print(lines[-1], flush=True)
    print()
    print("| client | loop | N | messages | collections gen 0/1/2 | GC ms | GC µs / message |")
    print("|---|---|---:|---:|---|---:|---:|")
    for r in rows:
        gens = "/".join(str(c) for c in r["collections"])
        print(
            f"| {r['client']} | {r['loop']} | {r['sessions']} | {r['messages']} | {gens} "
            f"| {sum(r['gc_ms']):.2f} | {r['gc_us_per_message']:.4f} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    ap.add_argument("--sessions", default="300,1000", help="comma-separated N")
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--chunks", type=int, default=100, help="20 ms chunks per user turn")
    ap.add_argument(
        "--tracked",
        action="store_true",
        help="count GC-tracked objects per session and time gc.collect() (see above)",
    )
    ap.add_argument(
        "--clients",
        default="gemini-live-picows-cb,ideal-cb",
        help="bench.modes keys for --tracked",
    )
    ap.add_argument(
        "--w2-gc",
        action="store_true",
        help="count the collector's runs in a W2 window (see above)",
    )
    ap.add_argument("--loops", default="asyncio", help="event loops for --w2-gc")
    ap.add_argument("--slowdown", type=float, default=10.0, help="W2 clock stretch for --w2-gc")
    ap.add_argument("--w2-gc-child", default="", help=argparse.SUPPRESS)
    ap.add_argument(
        "--gc-callgrind",
        action="store_true",
        help="callgrind the instructions of one gc.collect() with N sessions mid-turn",
    )
    ap.add_argument("--gc-child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve()
    if args.w2_gc_child or args.w2_gc:
        raise_fd_limit()
    if args.w2_gc_child:
        key, loop, n, slowdown = args.w2_gc_child.split(",")
        row = _w2_gc_one(key, loop, int(n), float(slowdown), periods=50)
        print("RESULT " + json.dumps(row), flush=True)
        os._exit(0)  # hundreds of sockets need no orderly teardown
    if args.gc_child:
        url, key, n, chunks = args.gc_child.split(",")
        raise_fd_limit()
        row = asyncio.run(_gc_child(url, key, int(n), int(chunks)))
        print("RESULT " + json.dumps(row), flush=True)
        os._exit(0)
    if args.w2_gc:
        sizes = [int(x) for x in args.sessions.split(",") if x]
        loops = [x for x in args.loops.split(",") if x]
        w2_gc_main(sizes, [c for c in args.clients.split(",") if c], loops, args.slowdown)
        return 0
    raise_fd_limit()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.memory", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("URL "):
            print("the fake server did not start", file=sys.stderr)
            return 2
        url = line.split()[1]
        if args.gc_callgrind:
            for n in (int(x) for x in args.sessions.split(",") if x):
                gc_callgrind_main(url, n, args.chunks, [c for c in args.clients.split(",") if c])
            return 0
        if args.tracked:
            sizes = [int(x) for x in args.sessions.split(",") if x]
            tracked_main(url, sizes, args.chunks, [c for c in args.clients.split(",") if c])
            return 0
        tracemalloc.start()
        rows = []
        for n in (int(x) for x in args.sessions.split(",") if x):
            t0 = time.monotonic()
            row = asyncio.run(run(url, n, args.turns, args.chunks))
            row["seconds"] = round(time.monotonic() - t0, 1)
            rows.append(row)
            print("RESULT " + json.dumps(row), flush=True)
        print()
        print(
            "| N | floor heap KiB | mid-turn heap KiB | mid-turn RSS KiB | records mid-turn "
            "| after handle heap KiB | after handle RSS KiB |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['sessions']} | {r['floor_heap_kib']:.1f} | {r['mid_turn_heap_kib']:.1f} "
                f"| {r['mid_turn_rss_kib']:.1f} | {r['mid_turn_window_records']:.0f} "
                f"| {r['after_handle_heap_kib']:.1f} | {r['after_handle_rss_kib']:.1f} |"
            )
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
