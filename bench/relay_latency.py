"""Latency added by the browser relay and the telephony bridge; relay connections held.

    python -m bench.relay_latency [--turns 200] [--levels 25,50,100,200] [--seconds 8]

Everything runs on loopback against :class:`gemini_live.testing.FakeLiveServer`, which
answers a turn at once, so the numbers are the client side's own cost:

* ``direct``: a Session sends ``activityEnd`` -> first reply audio event (the baseline).
* ``relay manual``: a browser client sends ``activity_end`` to the relay -> first binary
  audio frame from the relay.
* ``relay vad``: a browser client sends an utterance (100 ms speech + the VAD's 200 ms
  hangover of silence, all at once) -> first audio frame; the relay's VAD ends the turn.
* ``bridge``: a scripted Twilio client sends the same utterance as 20 ms mu-law media
  messages -> first ``media`` message back (VAD, resampling, mu-law, pacing included).

"Added" is each path's p50/p99 minus the direct path's. Then ``levels``: N browser
clients (in a child process) each stream 20 ms frames at real-time pace through one relay
process (the fake server runs in a third process), each finishing an utterance every
300 ms (a busy worst case: everyone talks all the time). The relay process holds N in
real time when its event-loop lag p99 stays under 20 ms (one frame) and every client's
replies keep coming.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import multiprocessing
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.audio import pcm16_to_ulaw, resample
from gemini_live.testing import FakeLiveServer
from gemini_live.vad import ActivityDetector
from gemini_live.web import Relay, RelayLimits, create_app, running

RATE = 16000
END_MS = 200
REPLY_CHUNKS = 2
REPLY_S = REPLY_CHUNKS * 0.040


def _speech(ms: int) -> bytes:
    n = RATE * ms // 1000
    return b"".join(
        struct.pack(
            "<h", int(6000 * sum(math.sin(2 * math.pi * 180 * k * i / RATE) / k for k in (1, 2, 3)))
        )
        for i in range(n)
    )


SPEECH = _speech(100)
UTTERANCE = SPEECH + bytes(RATE * END_MS // 1000 * 2)
FRAMES = [UTTERANCE[i : i + 640] for i in range(0, len(UTTERANCE), 640)]
ULAW = pcm16_to_ulaw(resample(UTTERANCE, RATE, 8000))
ULAW_FRAMES = [ULAW[i : i + 160] for i in range(0, len(ULAW), 160)]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summary(name: str, ms: list[float], base: list[float] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "path": name,
        "turns": len(ms),
        "p50_ms": round(pct(ms, 0.50), 3),
        "p99_ms": round(pct(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }
    if base is not None:
        row["added_p50_ms"] = round(pct(ms, 0.50) - pct(base, 0.50), 3)
        row["added_p99_ms"] = round(pct(ms, 0.99) - pct(base, 0.99), 3)
    return row


def _detector() -> ActivityDetector:
    return ActivityDetector(start_ms=40, end_ms=END_MS, pre_roll_ms=100)


def _config(server: FakeLiveServer) -> Callable[[Any], gl.SessionConfig]:
    def config(_c: Any) -> gl.SessionConfig:
        return gl.build_config(url=server.url)

    return config


async def bench_direct(server: FakeLiveServer, turns: int) -> list[float]:
    from gemini_live.web import with_client_activity

    out: list[float] = []
    async with gl.connect(config=with_client_activity(gl.build_config(url=server.url))) as s:
        for _ in range(turns):
            await s.send_activity_start()
            await s.send_audio(SPEECH)
            t0 = time.perf_counter()
            await s.send_activity_end()
            first = None
            async for event in s:
                if first is None and isinstance(event, ev.ModelAudio):
                    first = time.perf_counter()
                if isinstance(event, ev.TurnComplete):
                    break
            assert first is not None
            out.append((first - t0) * 1000)
    return out


async def bench_relay(server: FakeLiveServer, turns: int, mode: str) -> list[float]:
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    relay = Relay(
        _config(server),
        authorize=Relay.ALLOW_ANYONE,  # a local benchmark
        turn_detection="manual" if mode == "manual" else "vad",
        detector=_detector,
        limits=RelayLimits(
            audio_bytes_per_second=1e9,
            audio_burst_bytes=10**9,
            messages_per_second=1e9,
            message_burst=10**9,
            turns_per_minute=None,
        ),
    )
    out: list[float] = []
    async with running(create_app(relay, page=False)) as base:
        url = base.replace("http", "ws") + "/live"
        async with connect(url, origin=Origin(base)) as ws:
            while json.loads(await ws.recv())["type"] != "ready":
                pass
            for _ in range(turns):
                if mode == "manual":
                    await ws.send('{"type":"activity_start"}')
                    await ws.send(SPEECH)
                    t0 = time.perf_counter()
                    await ws.send('{"type":"activity_end"}')
                else:
                    for f in FRAMES[:-1]:
                        await ws.send(f)
                    t0 = time.perf_counter()
                    await ws.send(FRAMES[-1])
                first = None
                while True:
                    msg = await ws.recv()
                    if isinstance(msg, bytes):
                        if first is None:
                            first = time.perf_counter()
                    elif json.loads(msg)["type"] == "turn_complete":
                        break
                assert first is not None
                out.append((first - t0) * 1000)
    return out


async def bench_bridge(server: FakeLiveServer, turns: int) -> list[float]:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from websockets.asyncio.client import connect

    from gemini_live.telephony import TwilioBridge, twilio_signature

    auth_token = "bench-auth-token"  # the upgrade is signed as Twilio signs it

    def signed(url: str) -> dict[str, str]:
        return {"X-Twilio-Signature": twilio_signature(auth_token, url)}

    bridge = TwilioBridge(_config(server), detector=_detector, auth_token=auth_token)
    app = Starlette(routes=[WebSocketRoute("/twilio", bridge)])
    sid = "MZ" + "0" * 32
    out: list[float] = []
    media = [
        json.dumps(
            {"event": "media", "streamSid": sid, "media": {"payload": base64.b64encode(f).decode()}}
        )
        for f in ULAW_FRAMES
    ]
    async with (
        running(app) as base,
        connect(
            base.replace("http", "ws") + "/twilio",
            additional_headers=signed(base.replace("http", "ws") + "/twilio"),
        ) as ws,
    ):
        fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "streamSid": sid,
                    "start": {"streamSid": sid, "mediaFormat": fmt},
                }
            )
        )
        # The 8 -> 16 kHz resampler holds back a few ms of input: a live line keeps
        # sending silence, so three more quiet frames follow the utterance.
        tail = json.dumps(
            {
                "event": "media",
                "streamSid": sid,
                "media": {"payload": base64.b64encode(b"\xff" * 160).decode()},
            }
        )
        for _ in range(turns):
            for m in media[:-1]:
                await ws.send(m)
            t0 = time.perf_counter()
            await ws.send(media[-1])
            for _ in range(3):
                await ws.send(tail)
            first = None
            while True:
                msg = json.loads(await ws.recv())
                if msg["event"] == "media" and first is None:
                    first = time.perf_counter()
                elif msg["event"] == "mark":
                    await ws.send(
                        json.dumps({"event": "mark", "streamSid": sid, "mark": msg["mark"]})
                    )
                    if first is not None:
                        break
            assert first is not None
            out.append((first - t0) * 1000)
            # The caller hears the reply in real time; the next turn starts after it.
            rest = first + REPLY_S - time.perf_counter()
            if rest > 0:
                await asyncio.sleep(rest)
    return out


# -- connections held ------------------------------------------------------------------------


def _clients(url: str, origin: str, n: int, seconds: float, result: Any) -> None:
    """Child process: n browser clients streaming 20 ms frames in real time."""

    async def one(i: int, stats: dict[str, float]) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Origin

        async with connect(url, origin=Origin(origin), max_queue=None) as ws:
            while json.loads(await ws.recv())["type"] != "ready":
                pass

            async def reader() -> None:
                async for msg in ws:
                    if isinstance(msg, str) and json.loads(msg)["type"] == "turn_complete":
                        stats["turns"] += 1

            rt = asyncio.create_task(reader())
            loop = asyncio.get_running_loop()
            start = loop.time() + (i % 50) * 0.0004
            k = 0
            while loop.time() - start < seconds:
                frame = FRAMES[k % len(FRAMES)]
                due = start + k * 0.02
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    stats["late_frames"] += delay < -0.02
                await ws.send(frame)
                k += 1
            stats["frames"] += k
            rt.cancel()

    async def main() -> None:
        stats = {"turns": 0.0, "frames": 0.0, "late_frames": 0.0}
        await asyncio.gather(*(one(i, stats) for i in range(n)))
        result.update(stats)

    asyncio.run(main())


async def _loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.005)
        lags.append((loop.time() - t - 0.005) * 1000)


def _fake_process(urls: Any, stop: Any) -> None:
    """Child process: the fake Live API server, so it does not share the relay's CPU."""

    async def main() -> None:
        async with FakeLiveServer(reply_chunks=REPLY_CHUNKS, record_frames=False) as server:
            urls.put(server.url)
            await asyncio.to_thread(stop.wait)

    asyncio.run(main())


async def bench_level(n: int, seconds: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    stop_fake = ctx.Event()
    urls = ctx.Queue()
    fake = ctx.Process(target=_fake_process, args=(urls, stop_fake))
    fake.start()
    fake_url = await asyncio.to_thread(urls.get, True, 60)
    try:
        return await _level(fake_url, n, seconds)
    finally:
        stop_fake.set()
        await asyncio.to_thread(fake.join, 30)


async def _level(fake_url: str, n: int, seconds: float) -> dict[str, Any]:
    def config(_c: Any) -> gl.SessionConfig:
        return gl.build_config(url=fake_url)

    # One client address for every simulated browser: no per-address or turn limits.
    limits = RelayLimits(
        max_connections=10_000, max_connections_per_address=None, turns_per_minute=None
    )
    relay = Relay(config, authorize=Relay.ALLOW_ANYONE, detector=_detector, limits=limits)
    lags: list[float] = []
    stop = asyncio.Event()
    ctx = multiprocessing.get_context("spawn")
    # Three processes: the fake server, the relay (this one, measured), the browsers.
    async with running(create_app(relay, page=False)) as base:
        mon = asyncio.create_task(_loop_lag(lags, stop))
        mgr = ctx.Manager()
        result = mgr.dict()
        proc = ctx.Process(
            target=_clients,
            args=(base.replace("http", "ws") + "/live", base, n, seconds, result),
        )
        proc.start()
        await asyncio.to_thread(proc.join, seconds + 60)
        stop.set()
        await mon
        res = dict(result)
        mgr.shutdown()
        await relay.wait_until(lambda: relay.stats.active == 0, within=30)
    expected_turns = n * int(seconds * 1000 // (len(FRAMES) * 20))
    row: dict[str, Any] = {
        "connections": n,
        "peak_active": relay.stats.peak_active,
        "loop_lag_p50_ms": round(pct(lags, 0.5), 2),
        "loop_lag_p99_ms": round(pct(lags, 0.99), 2),
        "turns": int(res.get("turns", 0)),
        "turns_expected": expected_turns,
        "late_client_frames": int(res.get("late_frames", 0)),
    }
    row["real_time"] = row["loop_lag_p99_ms"] < 20 and row["turns"] >= 0.9 * expected_turns
    print(json.dumps(row), flush=True)
    return row


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relay_latency")
    p.add_argument("--turns", type=int, default=200)
    p.add_argument("--levels", default="25,50,100,200")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    async with FakeLiveServer(reply_chunks=REPLY_CHUNKS, record_frames=False) as server:
        direct = await bench_direct(server, args.turns)
        rows = [summary("direct session", direct, None)]
        rows.append(
            summary("relay manual", await bench_relay(server, args.turns, "manual"), direct)
        )
        rows.append(summary("relay vad", await bench_relay(server, args.turns, "vad"), direct))
        rows.append(summary("bridge (twilio)", await bench_bridge(server, args.turns), direct))
        for row in rows:
            print(json.dumps(row), flush=True)
        results["latency"] = rows
        levels = [int(x) for x in args.levels.split(",") if x]
        if levels:
            results["levels"] = [await bench_level(n, args.seconds) for n in levels]
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
