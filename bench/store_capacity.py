"""Conversations one relay worker carries in real time, with the Redis store on and off.

``PYTHONPATH=src python -m bench.store_capacity [--browsers 20] [--seconds 10]``

One worker process (tests/deploy/worker.py) in front of ``gemini-live fake-server``;
N browsers stream paced 16 kHz audio (20 ms frames) and send a text turn every 2 s. The
worker's CPU seconds over the window (``/proc/PID/stat``) give the capacity of one core:
conversation-seconds per CPU second. Prints both and their ratio (store on / off), and
the Redis commands and bytes per turn. Needs redis-server (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from deploy.topology import FRAME, SECRET, Worker, fake_service, free_port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _browser(url: str, index: int, seconds: float) -> int:
    headers = {"Authorization": f"Bearer user{index}:{SECRET}"}
    turns = 0
    async with connect(url, additional_headers=headers) as ws:
        await ws.recv()  # ready

        async def read(ws: ClientConnection) -> None:
            nonlocal turns
            async for msg in ws:
                if isinstance(msg, str) and json.loads(msg)["type"] == "turn_complete":
                    turns += 1

        reader = asyncio.create_task(read(ws))
        start = time.monotonic()
        n = 0
        while (elapsed := time.monotonic() - start) < seconds:
            await ws.send(FRAME)
            n += 1
            if n % 100 == 0:
                await ws.send(json.dumps({"type": "text", "text": f"turn {n // 100}"}))
            await asyncio.sleep(max(0.0, n * 0.02 - elapsed))  # real-time pacing
        await ws.close()
        reader.cancel()
    return turns


async def _run(store: str | None, browsers: int, seconds: float) -> tuple[float, int]:
    async with fake_service() as service:
        w = Worker(free_port(), service, store)
        await w.start()
        try:
            assert w.proc is not None
            url = f"ws://127.0.0.1:{w.port}/live"
            cpu0 = _cpu_seconds(w.proc.pid)
            turns = await asyncio.gather(*(_browser(url, i, seconds) for i in range(browsers)))
            cpu = _cpu_seconds(w.proc.pid) - cpu0
        finally:
            await w.stop()
    return cpu, sum(turns)


def _redis_stats(port: int) -> tuple[int, int]:
    import redis

    info = redis.Redis(port=port).info("stats")
    return int(info["total_commands_processed"]), int(info["total_net_input_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browsers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed")
    port = free_port()
    redis_proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # a bench, not a test: let redis-server start
        conv_s = args.browsers * args.seconds
        off_cpu, _off_turns = asyncio.run(_run(None, args.browsers, args.seconds))
        ops0, bytes0 = _redis_stats(port)
        on_cpu, on_turns = asyncio.run(
            _run(f"redis://127.0.0.1:{port}/0", args.browsers, args.seconds)
        )
        ops1, bytes1 = _redis_stats(port)
    finally:
        redis_proc.kill()
        redis_proc.wait()
    off, on = conv_s / off_cpu, conv_s / on_cpu
    print(f"browsers={args.browsers} seconds={args.seconds}")
    print(f"store off: {off_cpu:.2f} CPU s, {off:.1f} real-time conversations per core")
    print(f"store on:  {on_cpu:.2f} CPU s, {on:.1f} real-time conversations per core")
    print(f"ratio on/off: {on / off:.2f}")
    print(
        f"redis: {(ops1 - ops0) / max(on_turns, 1):.1f} commands and"
        f" {(bytes1 - bytes0) / max(on_turns, 1):.0f} bytes per turn ({on_turns} turns);"
        f" {(ops1 - ops0) / args.browsers:.0f} commands per conversation"
    )


if __name__ == "__main__":
    main()
