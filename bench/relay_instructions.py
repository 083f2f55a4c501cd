"""Instructions per browser round trip through the relay, counted by callgrind.

``python -m bench.relay_instructions`` serves the browser relay (``gemini_live.web``:
uvicorn, the relay's VAD turn detection, one upstream session to the benchmark server in
its W1 mode) in a process that runs under ``valgrind --tool=callgrind``, and drives it
from this process with one synthetic browser in lock step: send one PCM frame of what the
page sends (40 ms; ``--page-ms 20`` for older pages), speech so the VAD forwards it, wait
for the binary audio message the model's reply becomes, repeat. One round trip is one
inbound WebSocket message through uvicorn, the VAD (one level per 20 ms of it), one
upstream ``send_audio`` (the relay forwards a message's audio as one chunk), one upstream
reply frame through the session, and one outbound WebSocket message (plus the turns'
transcripts and ``turn_complete`` as JSON messages: the window holds whole turns). Lock
step means one message per read and per write: the dearest case, with no batching a
loaded loop would find.

``--paced SECONDS`` counts the density workload instead (``bench.density``'s browser):
the page's frames on the microphone's clock, the server's W2 replies (25 a second, each
with its transcript) read as they come, both clocks ``--slowdown`` times slower (the
process runs under valgrind), and prints instructions per **browser-second**: for 40 ms
frames 25 messages up and 25 replies (50 messages) down, for 20 ms ones 50 up.

The window is cut as in :mod:`bench.instructions`: the measured process calls
``os.getppid()`` when told the warm-up is over and ``os.getpgrp()`` at the end (over its
stdin), and callgrind zeroes at the first and dumps at the second. ``PYTHONHASHSEED=0``.

Compare with ``python -m bench.instructions --clients gemini-live-picows-cb``: a bare
session's W1 round trip (one chunk up, one reply down) on the same server.

``--idle`` counts the same wall-clock window with no browser at all: what the process
spends whoever is connected (uvicorn's 10 Hz tick, the loop's own timers). Under
``--paced`` that window is ``--slowdown`` times longer than the browser-seconds it
stands for, so a fixed cost weighs ``slowdown`` times more per browser-second here than
in a process that serves hundreds of browsers in real time; ``--paced`` with
``--idle`` prints the count net of it as well.

``--turn-detection server`` leaves the VAD out (the audio goes up as it comes), which
prices the VAD by difference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
#: Round trips in the measured window (whole W1 turns of 50).
ROUND_TRIPS: Final = 200
#: Round trips before the window (the session open, one whole turn and more).
WARM_UP: Final = 60
MAX_ROUND_TRIPS: Final = 500
TIMEOUT: Final = 600.0
#: What the page (mic-worklet.js) posts: 40 ms of 16 kHz PCM16 (older pages: 20 ms).
PAGE_MS: Final = 40
#: Frames of one utterance before the energy VAD's noise floor, creeping up during a
#: steady tone, would end it (no more replies).
MAX_VAD_FRAMES: Final = 800
#: ``--paced``: how many times slower than real time both clocks run (the browser's
#: microphone and the server's replies), and the browser-seconds before the window.
SLOWDOWN: Final = 10.0
PACED_WARM_UP: Final = 2.0


def speech_frame(ms: int = PAGE_MS) -> bytes:
    """``ms`` of a loud voiced-like tone: the energy VAD calls it speech."""
    out = [
        int(12000 * sum(math.sin(2 * math.pi * 180 * k * i / 16000) / k for k in (1, 2, 3)))
        for i in range(16 * ms)
    ]
    return struct.pack(f"<{len(out)}h", *out)


# -- the measured process (runs under valgrind) ---------------------------------------------


async def _child(
    upstream: str,
    turn_detection: Any,
    numpy: bool,
    no_numpy: bool,
    endpoint: str = "relay",
    upstream_ms: int | None = None,
) -> None:
    if numpy:  # as in a process that resamples (the VAD's level then uses it)
        import numpy as np  # noqa: F401
    if no_numpy:  # as where numpy is not installed
        sys.modules["numpy"] = None  # type: ignore[assignment]

    import gemini_live as gl
    from gemini_live.web import Relay, RelayLimits, create_app, running

    def config(_c: Any) -> gl.SessionConfig:
        return gl.build_config(url=upstream, output_audio_transcription=True)

    # Lock step runs faster than real time: no rate limit may drop a frame (its reply
    # would never come).
    limits = RelayLimits(
        max_connections_per_address=None,
        turns_per_minute=None,
        messages_per_second=1e9,
        message_burst=10**9,
        audio_bytes_per_second=1e12,
        audio_burst_bytes=10**12,
    )
    app: Any
    options: dict[str, Any] = {} if upstream_ms is None else {"upstream_ms": upstream_ms}
    if endpoint == "twilio":
        from bench.density import AUTH_TOKEN
        from gemini_live.telephony import TwilioBridge

        app = TwilioBridge(
            config,
            auth_token=AUTH_TOKEN,
            turn_detection=turn_detection,
            max_calls=10_000,
            max_calls_per_address=None,
            **options,
        )
        path = "/twilio"
    else:
        relay = Relay(
            config, authorize=Relay.ALLOW_ANYONE, limits=limits, turn_detection=turn_detection
        )
        app = create_app(relay)
        path = "/live"
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async with running(app) as base:
        say("URL " + base.replace("http://", "ws://") + path)
        profile_to = os.environ.get("GL_RELAY_PROFILE")
        profile: Any = None
        if profile_to:
            import cProfile

            profile = cProfile.Profile()
        while line := (await reader.readline()).strip():
            if line == b"S":
                gc.collect()
                if profile is not None:
                    profile.enable()
                os.getppid()  # START_MARK: callgrind zeroes its counters here
                say("started")
            elif line == b"E":
                os.getpgrp()  # STOP_MARK: callgrind dumps the window here
                if profile is not None:
                    profile.disable()
                    profile.dump_stats(profile_to)
                say("stopped")
            elif line == b"Q":
                break


def child_main(args: argparse.Namespace) -> int:
    from bench.common import run_loop

    async def go() -> None:
        await _child(
            args.upstream,
            args.turn_detection,
            args.numpy,
            args.no_numpy,
            args.endpoint,
            args.upstream_ms,
        )

    run_loop(go, args.loop)
    return 0


# -- the harness (drives the browser) -------------------------------------------------------


async def _send_paced(ws: Any, frames: list[Any], period: float, phase: float) -> None:
    """Send ``frames`` round and round, one every ``period`` seconds from ``phase``
    seconds on: a microphone's or a carrier's (slowed) clock."""
    loop = asyncio.get_running_loop()
    start = loop.time() + phase
    k = 0
    while True:
        delay = start + k * period - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the (slowed) clock
        await ws.send(frames[k % len(frames)])
        k += 1


async def _window(
    tasks: list[asyncio.Task[None]],
    tell: Callable[[bytes, bytes], Awaitable[None]],
    seconds: float,
    slowdown: float,
    warm_up: float,
) -> None:
    """Let ``tasks`` (the clients) run ``warm_up`` then ``seconds`` (slowed) seconds, the
    measured window between the two marks; a client that failed in the warm-up says why."""
    try:
        await asyncio.sleep(warm_up * slowdown)  # the sessions open, whole turns
        for t in tasks:
            if t.done():
                t.result()
        await tell(b"S", b"started")
        await asyncio.sleep(seconds * slowdown)
        await tell(b"E", b"stopped")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _paced_window(
    sockets: list[Any],
    tell: Callable[[bytes, bytes], Awaitable[None]],
    seconds: float,
    page_ms: int,
    slowdown: float,
    warm_up: float = PACED_WARM_UP,
) -> None:
    """The density workload's browser on a clock ``slowdown`` times slower: the density
    bench's utterance (100 ms of speech, 200 ms of silence) in ``page_ms`` frames, every
    reply read; the window is ``seconds`` browser-seconds after a warm-up. Several
    browsers (``sockets``) send with their frames' phases spread over one frame."""
    from bench.density import UTTERANCE

    step = 32 * page_ms
    frames = [UTTERANCE[i : i + step] for i in range(0, len(UTTERANCE), step)]
    period = page_ms / 1000 * slowdown

    async def reader(ws: Any) -> None:
        async for _ in ws:
            pass

    tasks = [asyncio.create_task(reader(ws)) for ws in sockets]
    tasks += [
        asyncio.create_task(_send_paced(ws, frames, period, i / len(sockets) * period))
        for i, ws in enumerate(sockets)
    ]
    await _window(tasks, tell, seconds, slowdown, warm_up)


async def _paced_calls(
    url: str,
    tell: Callable[[bytes, bytes], Awaitable[None]],
    seconds: float,
    slowdown: float,
    warm_up: float,
    calls: int,
) -> None:
    """The density workload's phone calls on a clock ``slowdown`` times slower: each a
    Twilio media stream (signed upgrade, ``start``, then the utterance's 20 ms ``media``
    messages, the bridge's marks echoed at once), their phases spread over one frame;
    the window is ``seconds`` call-seconds after a warm-up."""
    import websockets

    from bench.density import SID, _call_start, _loadgen_signed, _media_messages

    media: list[Any] = list(_media_messages())
    period = 0.020 * slowdown

    async def call(i: int) -> None:
        full = f"{url}?c={i}"
        async with websockets.connect(
            full, additional_headers=_loadgen_signed(full), max_size=None
        ) as ws:
            await ws.send(_call_start(i))

            async def reader() -> None:
                async for msg in ws:
                    if isinstance(msg, str) and '"mark"' in msg[:20]:
                        mark = json.loads(msg)["mark"]
                        await ws.send(json.dumps({"event": "mark", "streamSid": SID, "mark": mark}))

            read = asyncio.create_task(reader())
            try:
                await _send_paced(ws, media, period, i / calls * period)
            finally:
                read.cancel()

    await _window(
        [asyncio.create_task(call(i)) for i in range(calls)], tell, seconds, slowdown, warm_up
    )


async def _browser(
    url: str,
    child: asyncio.subprocess.Process,
    round_trips: int,
    turn_detection: str,
    page_ms: int = PAGE_MS,
    paced: float = 0.0,
    slowdown: float = 1.0,
    idle: bool = False,
    warm_up: float = PACED_WARM_UP,
    browsers: int = 1,
) -> None:
    import websockets

    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout
    frame = speech_frame(page_ms)

    async def tell(cmd: bytes, answer: bytes) -> None:
        stdin.write(cmd + b"\n")
        await stdin.drain()
        got = (await stdout.readline()).strip()
        if got != answer:
            raise RuntimeError(f"the measured process said {got!r}, expected {answer!r}")

    if idle:  # no browser: the process's fixed cost over the same wall-clock window
        await asyncio.sleep(warm_up * slowdown)
        await tell(b"S", b"started")
        await asyncio.sleep((paced or 1.0) * slowdown)
        await tell(b"E", b"stopped")
        stdin.write(b"Q\n")
        await stdin.drain()
        return
    if url.endswith("/twilio"):  # phone calls (--endpoint twilio; --paced only)
        await _paced_calls(url, tell, paced, slowdown, warm_up, browsers)
        stdin.write(b"Q\n")
        await stdin.drain()
        return
    origin = url.replace("ws://", "http://").rsplit("/", 1)[0]  # the page's own origin
    async with websockets.connect(url + "?c=0", max_size=None, origin=origin) as ws:  # type: ignore[arg-type]

        async def audio_reply() -> None:
            while isinstance(await ws.recv(), str):
                pass  # the JSON messages (state, vad, transcripts, turn_complete)

        async def lock_step(n: int) -> None:
            for _ in range(n):
                await ws.send(frame)
                await audio_reply()

        # The VAD starts an utterance after three 20 ms frames of speech: with 20 ms
        # messages one reply for the pre-roll, with 40 ms ones one for the pre-roll (the
        # first three) and one for the fourth; from then on (and without the VAD from the
        # first) every message gets one reply.
        if turn_detection != "vad":
            sends, replies = 1, 1
        else:
            sends, replies = (3, 1) if page_ms == 20 else (2, 2)
        if paced:
            async with contextlib.AsyncExitStack() as more:
                sockets = [ws]
                for i in range(1, browsers):
                    other = websockets.connect(f"{url}?c={i}", max_size=None, origin=origin)  # type: ignore[arg-type]
                    sockets.append(await more.enter_async_context(other))
                await _paced_window(sockets, tell, paced, page_ms, slowdown, warm_up)
            stdin.write(b"Q\n")
            await stdin.drain()
            return
        for _ in range(sends):
            await ws.send(frame)
        for _ in range(replies):
            await audio_reply()
        await lock_step(WARM_UP)
        await tell(b"S", b"started")
        await lock_step(round_trips)
        await tell(b"E", b"stopped")
        stdin.write(b"Q\n")
        await stdin.drain()


async def _measure(
    loop_name: str,
    round_trips: int,
    turn_detection: str,
    port: int,
    vg: str,
    profile: str | None = None,
    numpy: bool = False,
    page_ms: int = PAGE_MS,
    no_numpy: bool = False,
    paced: float = 0.0,
    slowdown: float = SLOWDOWN,
    idle: bool = False,
    warm_up: float = PACED_WARM_UP,
    browsers: int = 1,
    endpoint: str = "relay",
    upstream_ms: int | None = None,
) -> int:
    # The gate's runner pieces, imported here: the measured child does not load them.
    from bench.instructions import callgrind_command, window_count

    with tempfile.TemporaryDirectory(prefix="gl-relay-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        env.pop("PYTHONDEVMODE", None)
        # numpy's BLAS starts worker threads that spin idle for a while; valgrind's slow
        # clock makes that "while" the whole window, and their count does not repeat.
        # The relay makes no BLAS call: one thread (none started) counts what it does.
        env["OPENBLAS_NUM_THREADS"] = "1"
        tool = callgrind_command(vg, out)
        if profile:  # cProfile instead of callgrind (the same window, full speed)
            tool = []
            env["GL_RELAY_PROFILE"] = profile  # an absolute path (main)
        child = await asyncio.create_subprocess_exec(
            *tool,
            sys.executable,
            "-m",
            "bench.relay_instructions",
            "--child",
            "--loop",
            loop_name,
            "--turn-detection",
            turn_detection,
            "--endpoint",
            endpoint,
            *([] if upstream_ms is None else ["--upstream-ms", str(upstream_ms)]),
            *(["--numpy"] if numpy else []),
            *(["--no-numpy"] if no_numpy else []),
            "--upstream",
            f"ws://127.0.0.1:{port}/bench/{'w2' if paced else 'w1'}",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(TIMEOUT):
                assert child.stdout is not None
                line = (await child.stdout.readline()).decode().strip()
                if not line.startswith("URL "):
                    err = (await child.stderr.read()).decode() if child.stderr else ""
                    raise RuntimeError(f"the measured process did not start: {err[-2000:]}")
                await _browser(
                    line[4:],
                    child,
                    round_trips,
                    turn_detection,
                    page_ms,
                    paced,
                    slowdown,
                    idle,
                    warm_up,
                    browsers,
                )
                await child.wait()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        if profile:
            return 0
        return window_count(
            out, f"{endpoint} ({loop_name})", f"callgrind.{endpoint}.{loop_name}.out"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_instructions")
    parser.add_argument("--loops", default="asyncio", help="asyncio,uvloop")
    parser.add_argument("--round-trips", type=int, default=ROUND_TRIPS)
    parser.add_argument("--turn-detection", default="vad", choices=("vad", "server"))
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the window into FILE (no callgrind)"
    )
    parser.add_argument(
        "--numpy", action="store_true", help="import numpy in the relay's process first"
    )
    parser.add_argument("--no-numpy", action="store_true", help="as if numpy were not installed")
    parser.add_argument(
        "--page-ms",
        type=int,
        default=PAGE_MS,
        choices=(20, 40),
        help="the browser's frames: 40 ms (the page's) or 20 ms (older pages)",
    )
    parser.add_argument(
        "--paced",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="count SECONDS browser-seconds of the density workload (paced frames up, "
        "the server's 25 replies a second down) instead of lock-step round trips",
    )
    parser.add_argument(
        "--slowdown", type=float, default=SLOWDOWN, help="--paced: clocks this many times slower"
    )
    parser.add_argument(
        "--warm-up",
        type=float,
        default=PACED_WARM_UP,
        metavar="SECONDS",
        help="--paced: browser-seconds before the window (from about 5.5 the re-send "
        "window is full: every chunk written evicts the oldest, as in a long call "
        "whose service sends no handles)",
    )
    parser.add_argument(
        "--browsers",
        type=int,
        default=1,
        help="--paced: this many browsers at once (their frames' phases spread), the "
        "count divided among them: loop passes and the process's fixed cost shared as "
        "in a loaded process",
    )
    parser.add_argument(
        "--idle",
        action="store_true",
        help="--paced: also count the same wall-clock window with no browser (the "
        "process's fixed cost) and print the browser-second net of it",
    )
    parser.add_argument(
        "--endpoint",
        default="relay",
        choices=("relay", "twilio"),
        help="the endpoint measured: the browser relay, or the Twilio bridge with phone "
        "calls (--paced only; --browsers counts the calls)",
    )
    parser.add_argument(
        "--upstream-ms",
        type=int,
        default=None,
        help="--endpoint twilio: the bridge's upstream_ms (default: its own)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the counts here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    most = min(MAX_ROUND_TRIPS, MAX_VAD_FRAMES * 20 // args.page_ms - WARM_UP - 2)
    if not 0 < args.round_trips <= most:
        # One utterance of a steady tone: the energy VAD's noise floor creeps up during
        # speech and would end it (no more replies) after about 800 frames of 20 ms.
        parser.error(f"--round-trips must be 1-{most} with --page-ms {args.page_ms}")
    if args.browsers < 1:
        parser.error("--browsers must be at least 1")
    if args.child:
        return child_main(args)
    if args.endpoint == "twilio" and not args.paced:
        parser.error("--endpoint twilio needs --paced (calls are paced, never in lock step)")
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    vg = shutil.which("valgrind")
    if vg is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    from bench.procs import ServerProc

    pace = args.slowdown if args.paced else 1.0
    rows: list[dict[str, object]] = []
    with ServerProc(framing="service", pace_scale=pace) as server:
        for loop_name in args.loops.split(","):
            count = asyncio.run(
                _measure(
                    loop_name,
                    args.round_trips,
                    args.turn_detection,
                    server.port,
                    vg,
                    args.profile,
                    args.numpy,
                    args.page_ms,
                    args.no_numpy,
                    args.paced,
                    args.slowdown,
                    warm_up=args.warm_up,
                    browsers=args.browsers,
                    endpoint=args.endpoint,
                    upstream_ms=args.upstream_ms,
                )
            )
            if args.profile:
                print(f"cProfile of the window: {args.profile}")
                continue
            phone = args.endpoint == "twilio"
            who = "call" if phone else "browser"
            frames = "20 ms media" if phone else f"{args.page_ms} ms frames"
            label = (
                f"{frames}, {args.turn_detection}"
                f"{', numpy' if args.numpy else ''}{', no numpy' if args.no_numpy else ''}"
                f"{f', {args.browsers} {who}s' if args.browsers > 1 else ''}"
                f", {loop_name}"
            )
            row: dict[str, object] = {
                "endpoint": args.endpoint,
                "loop": loop_name,
                "page_ms": args.page_ms,
                "turn_detection": args.turn_detection,
                "browsers": args.browsers,
                "instructions": count,
            }
            rows.append(row)
            if args.paced:
                bs = args.paced * args.browsers  # browser-seconds in the window
                row |= {"paced": args.paced, "warm_up": args.warm_up}
                row["per_browser_second"] = count / bs
                print(
                    f"{args.endpoint} ({label}, paced): {count / bs:,.0f} instructions per "
                    f"{who}-second ({count:,} / {bs:g})"
                )
                if args.idle:
                    idle = asyncio.run(
                        _measure(
                            loop_name,
                            args.round_trips,
                            args.turn_detection,
                            server.port,
                            vg,
                            None,
                            args.numpy,
                            args.page_ms,
                            args.no_numpy,
                            args.paced,
                            args.slowdown,
                            idle=True,
                            warm_up=args.warm_up,
                            endpoint=args.endpoint,
                            upstream_ms=args.upstream_ms,
                        )
                    )
                    row["idle"] = idle
                    row["net_per_browser_second"] = (count - idle) / bs
                    print(
                        f"{args.endpoint} ({label}, idle): {idle:,} instructions in the "
                        f"same {args.paced * args.slowdown:g} s with no {who}; net "
                        f"{(count - idle) / bs:,.0f} per {who}-second"
                    )
                continue
            row |= {"round_trips": args.round_trips}
            row["per_round_trip"] = count / args.round_trips
            print(
                f"relay ({label}): {count / args.round_trips:,.0f} "
                f"instructions per browser round trip ({count:,} / {args.round_trips})"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
