"""Audio on time under packet loss: WebRTC vs the WebSocket relay, in network namespaces.

    sudo python -m bench.netloss [--seconds 10] [--delay-ms 40] [--losses 0,2,5] [--json]

Needs root, ``ip netns``, iptables and ``/dev/net/tun`` (Linux). What it does:

1. Creates two network namespaces with unique names, the browser's and the relay's (both
   deleted at the end, also on failure or timeout, after killing what still runs in
   them), with ``lo`` up in each.
2. Joins them with the wire (``bench._netloss_node wire``): a TUN device in each,
   10.77.0.1 (browser) and 10.77.0.2 (relay) at its ends, and every IP packet copied
   across ``--delay-ms`` later, each way. The kernel has no netem; this puts the delay
   where netem would, so TCP and ICE see the real round trip and no address is
   rewritten.
3. In the relay's namespace: the fake Live service and the relay's ASGI app (uvicorn,
   WebRTC enabled), one process; over its ``lo`` the relay talks to the fake service,
   with no loss and no delay. In the browser's: the synthetic browser (this process).
4. Loss, per cell: ``iptables -A INPUT -i <link device> -m statistic --mode random
   --probability P -j DROP`` in both namespaces, so both directions of the browser-relay
   link lose packets (TCP for the WebSocket relay, UDP for WebRTC: the only traffic on
   the link besides the harness's two HTTP calls between cells).
5. Per cell (mode x loss): connect, stream 0.5 s of speech-like audio in 20 ms frames
   with no loss (the warm-up: ICE, DTLS and the Live session settle, and the first frame
   maps the relay's pts to the browser's frame index), switch the loss on, stream
   ``--seconds`` of measured frames and one more second (so late frames can still come
   and a jitter buffer keeps being fed), switch the loss off.

Measured at the relay process: for each measured 20 ms frame, its arrival minus its
capture (the time the browser's pacer produced it: a microphone delivers on time, so a
late sender counts against the path). WebSocket: the n-th binary message the relay app
received is frame n. WebRTC: the pts of each decoded chunk the WebRTC end hands to the
relay (``_RtcLink._on_inbound_audio``; 48 kHz clock, 960 per frame); silence filling a lost
frame is not counted as its arrival. A frame that never arrives counts as late.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench._netloss_node import BROWSER_HOST, HOST

ROOT = Path(__file__).resolve().parent.parent
FRAME_S = 0.020
WARMUP_FRAMES = 25
GRACE_FRAMES = 50
ON_TIME_S = 0.150
RATE_WS = 16000
RATE_RTC = 48000
MODES = ("webrtc", "websocket")
BROWSER_DEV = "nlbrowser"
RELAY_DEV = "nlrelay"
#: A comparison the CLI adds: WebRTC through aiortc's own audio jitter buffer (16 packets,
#: a frame released once 4 more are there), the path before the play-out buffer.
JB_MODE = "webrtc-aiortc-jb"


class NamespaceUnavailable(RuntimeError):
    """No network namespace here (not root, no ``ip``/``iptables``, or the kernel refuses)."""


@dataclass
class Cell:
    """One mode at one loss rate."""

    mode: str
    loss_pct: float
    frames: int
    on_time: float
    lost: int
    p50_ms: float
    p99_ms: float
    #: Packets the loss rule dropped during the cell (both directions of the browser's leg).
    dropped: int = 0
    #: The relay's end of this path: the WebSocket relay or ``gemini_live.webrtc``.
    server: str = "gemini_live.web"

    @property
    def row(self) -> str:
        def ms(v: float) -> str:
            return "lost" if math.isinf(v) else f"{v:.0f}"

        return (
            f"| {self.mode} ({self.server}) | {self.loss_pct:g} % | {self.on_time * 100:.1f} % | "
            f"{ms(self.p50_ms)} | {ms(self.p99_ms)} | {self.lost} / {self.frames} | "
            f"{self.dropped} |"
        )


# -- speech-like audio ------------------------------------------------------------------


def speech_frame(k: int, rate: int) -> bytes:
    """Frame ``k`` (20 ms, s16le mono) of a voiced sound with a 4 Hz syllable envelope."""
    import numpy as np

    n = int(rate * FRAME_S)
    t = (k * n + np.arange(n)) / rate
    envelope = 0.2 + 0.8 * np.abs(np.sin(2 * math.pi * 2.0 * t))
    pitch = 140.0 + 20.0 * np.sin(2 * math.pi * 0.5 * t)
    phase = 2 * math.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(h * phase) / h for h in (1, 2, 3, 4, 5))
    pcm = (0.25 * 32767 / 1.6) * envelope * voice
    return bytes(pcm.astype("<i2").tobytes())


# -- measurement ------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def score(
    mode: str,
    loss: float,
    captured: dict[int, float],
    arrived: dict[int, float],
    n: int,
    server: str = "gemini_live.web",
) -> Cell:
    """Score the measured frames ``WARMUP_FRAMES .. WARMUP_FRAMES + n``."""
    latencies: list[float] = []
    for k in range(WARMUP_FRAMES, WARMUP_FRAMES + n):
        at = arrived.get(k)
        latencies.append(math.inf if at is None else at - captured[k])
    return Cell(
        mode=mode,
        loss_pct=loss,
        frames=n,
        on_time=sum(v <= ON_TIME_S for v in latencies) / n,
        lost=sum(math.isinf(v) for v in latencies),
        p50_ms=pct(latencies, 0.50) * 1000,
        p99_ms=pct(latencies, 0.99) * 1000,
        server=server,
    )


# -- inside the namespace ---------------------------------------------------------------


async def _line(proc: asyncio.subprocess.Process, within: float = 20.0) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        line = (await proc.stdout.readline()).decode().strip()
    if not line:
        raise RuntimeError("a netloss helper process exited early")
    return line


class _Link:
    """The loss rules on the link: one per namespace, on its end of the TUN pair."""

    def __init__(self, browser_ns: str, relay_ns: str, loss: float) -> None:
        self.ends = ((browser_ns, BROWSER_DEV), (relay_ns, RELAY_DEV))
        self.loss = loss

    def _rule(self, action: str, ns: str, dev: str) -> list[str]:
        return [
            "ip", "netns", "exec", ns, "iptables", action, "INPUT", "-i", dev,
            "-m", "statistic", "--mode", "random", "--probability", f"{self.loss / 100:.4f}",
            "-j", "DROP",
        ]  # fmt: skip

    async def _each(self, action: str) -> None:
        if self.loss <= 0:
            return
        for ns, dev in self.ends:
            proc = await asyncio.create_subprocess_exec(*self._rule(action, ns, dev))
            async with asyncio.timeout(10):
                if await proc.wait() != 0:
                    raise RuntimeError(f"iptables {action} in {ns} failed")

    async def lossy(self) -> None:
        await self._each("-A")

    async def clean(self) -> None:
        await self._each("-D")

    async def dropped(self) -> int:
        """Packets dropped so far by the loss rules (their iptables counters)."""
        total = 0
        for ns, _ in self.ends:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns, "iptables", "-L", "INPUT", "-v", "-x", "-n",
                stdout=subprocess.PIPE,
            )  # fmt: skip
            async with asyncio.timeout(10):
                out, _ = await proc.communicate()
            total += sum(
                int(line.split()[0])
                for line in out.decode().splitlines()
                if "DROP" in line and "statistic" in line
            )
        return total


async def _http_get(port: int, path: str) -> Any:
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
        raw = await reader.read()
        writer.close()
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


class _Pacer:
    """Frame ``k`` is captured at ``t0 + k * 20 ms``; switches the loss on after warm-up."""

    def __init__(self, total: int, link: _Link) -> None:
        self.total = total
        self.t0: float | None = None
        self.captured: dict[int, float] = {}
        self.link = link
        self.loss_task: asyncio.Task[None] | None = None
        self.dropped = 0

    async def next(self, k: int) -> float:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        due = self.t0 + k * FRAME_S
        if due > now:
            await asyncio.sleep(due - now)  # pacing: a microphone's clock
        if k == WARMUP_FRAMES - 3:
            self.loss_task = asyncio.get_running_loop().create_task(self.link.lossy())
        self.captured[k] = due
        return due


async def _browser_ws(port: int, pacer: _Pacer) -> dict[int, float]:
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    frames = [speech_frame(k, RATE_WS) for k in range(pacer.total)]
    base = f"http://{HOST}:{port}"
    async with (
        asyncio.timeout(30 + pacer.total * FRAME_S * 3),
        connect(base.replace("http", "ws") + "/live", origin=Origin(base)) as ws,
    ):
        while json.loads(await ws.recv())["type"] != "ready":
            pass

        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.get_running_loop().create_task(drain())
        for k in range(pacer.total):
            await pacer.next(k)
            await ws.send(frames[k])
        reader.cancel()
    pacer.dropped = await pacer.link.dropped()
    await pacer.link.clean()
    took = await _http_get(port, "/netloss/take")
    return dict(enumerate(took["ws"]))


async def _browser_rtc(port: int, pacer: _Pacer) -> dict[int, float]:
    import av
    from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

    frames = [speech_frame(k, RATE_RTC) for k in range(pacer.total)]
    done = asyncio.Event()

    class Mic(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.k = 0

        async def recv(self) -> av.AudioFrame:
            k = self.k
            if k >= pacer.total:
                done.set()  # the cell is over; keep the sender fed until the peer closes
            await pacer.next(k)
            self.k += 1
            frame = av.AudioFrame(format="s16", layout="mono", samples=960)
            frame.planes[0].update(frames[min(k, pacer.total - 1)])
            frame.sample_rate = RATE_RTC
            frame.pts = k * 960
            frame.time_base = Fraction(1, RATE_RTC)
            return frame

    pc = RTCPeerConnection()
    pc.createDataChannel("events")  # the page's messages travel on it
    pc.addTrack(Mic())
    sinks: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def sink() -> None:
            with contextlib.suppress(Exception):
                while True:
                    await track.recv()

        sinks.append(asyncio.get_running_loop().create_task(sink()))

    try:
        async with asyncio.timeout(30 + pacer.total * FRAME_S * 3):
            await pc.setLocalDescription(await pc.createOffer())
            offer = {"type": "offer", "sdp": pc.localDescription.sdp}
            answer = await _post_offer(port, offer)
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            await done.wait()
    finally:
        for task in sinks:
            task.cancel()
        await pc.close()
    pacer.dropped = await pacer.link.dropped()
    await pacer.link.clean()
    took = await _http_get(port, "/netloss/take")
    arrived: dict[int, float] = {}
    for pts, at in took["rtc"]:
        arrived.setdefault(round(pts / 960), at)
    return arrived


async def _post_offer(port: int, offer: dict[str, str]) -> Any:
    body = json.dumps(offer).encode()
    async with asyncio.timeout(20):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(
            f"POST /live/webrtc/offer HTTP/1.0\r\nHost: {HOST}:{port}\r\n"
            f"Origin: http://{HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        raw = await reader.read()
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"offer refused: {head.splitlines()[0]!r} {payload[:200]!r}")
    return json.loads(payload)


async def inside(
    browser_ns: str, relay_ns: str, seconds: float, losses: list[float], modes: list[str]
) -> list[Cell]:
    """Run every cell; called in the browser's namespace (``--inside``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    pipe = subprocess.PIPE
    service = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", relay_ns, sys.executable, "-m", "bench._netloss_node", "service",
        env=env, cwd=ROOT, stdin=pipe, stdout=pipe,
    )  # fmt: skip
    try:
        ready = json.loads((await _line(service, 60)).removeprefix("READY "))
        url, webrtc_end = ready["url"], ready["webrtc"]
        port = int(url.rsplit(":", 1)[1])
        n = round(seconds / FRAME_S)
        total = WARMUP_FRAMES + n + GRACE_FRAMES
        cells = []
        for loss in losses:
            for mode in modes:
                pacer = _Pacer(total, _Link(browser_ns, relay_ns, loss))
                jitter = "aiortc" if mode == JB_MODE else ""
                await _http_get(port, f"/netloss/jitter?{jitter}")
                if mode == "websocket":
                    arrived = await _browser_ws(port, pacer)
                else:
                    arrived = await _browser_rtc(port, pacer)
                server = "gemini_live.web" if mode == "websocket" else webrtc_end
                cell = score(mode, loss, pacer.captured, arrived, n, server)
                cell.dropped = pacer.dropped
                cells.append(cell)
        return cells
    finally:
        assert service.stdin is not None
        service.stdin.close()
        try:
            async with asyncio.timeout(10):
                await service.wait()
        except TimeoutError:
            service.kill()
            await service.wait()


# -- outside: the namespace -------------------------------------------------------------


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise NamespaceUnavailable(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")


def check_available() -> None:
    """Raise :class:`NamespaceUnavailable` (with the reason) when this host cannot run it."""
    if sys.platform != "linux":
        raise NamespaceUnavailable("network namespaces need Linux")
    if os.geteuid() != 0:
        raise NamespaceUnavailable("needs root (ip netns add, iptables)")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise NamespaceUnavailable(f"{tool!r} is not installed")
    if not os.path.exists("/dev/net/tun"):
        raise NamespaceUnavailable("no /dev/net/tun (the link between the namespaces)")


def _delete(name: str) -> None:
    pids = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in pids:  # only what this run started lives in its namespaces
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


@contextlib.contextmanager
def link(delay_ms: float = 40.0) -> Iterator[tuple[str, str]]:
    """Two fresh namespaces, the browser's and the relay's, joined by the wire (a TUN
    device in each, ``delay_ms`` each way); both deleted afterwards, whatever happens."""
    check_available()
    base = f"glnetloss-{os.getpid()}-{secrets.token_hex(3)}"
    browser, relay = f"{base}-b", f"{base}-r"
    made: list[str] = []
    wire: subprocess.Popen[bytes] | None = None
    try:
        for name in (browser, relay):
            _run("ip", "netns", "add", name)
            made.append(name)
            _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
            _run("ip", "netns", "exec", name, "iptables", "-S")
        wire = subprocess.Popen(
            [
                "ip", "netns", "exec", browser, sys.executable, "-m", "bench._netloss_node",
                "wire", "--relay-ns", relay, "--delay-ms", str(delay_ms),
                "--browser-dev", BROWSER_DEV, "--relay-dev", RELAY_DEV,
            ],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env(), cwd=ROOT,
        )  # fmt: skip
        assert wire.stdout is not None
        up, _, _ = select.select([wire.stdout], [], [], 30)
        if not up or not wire.stdout.readline().startswith(b"READY"):
            raise NamespaceUnavailable("the TUN link between the namespaces did not come up")
        for ns, dev, me, peer in (
            (browser, BROWSER_DEV, BROWSER_HOST, HOST),
            (relay, RELAY_DEV, HOST, BROWSER_HOST),
        ):
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", me, "peer", peer, "dev", dev)
            _run("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
        yield browser, relay
    finally:
        if wire is not None:
            assert wire.stdin is not None and wire.stdout is not None
            wire.stdin.close()
            try:
                wire.wait(timeout=10)
            except subprocess.TimeoutExpired:
                wire.kill()
                wire.wait(timeout=10)
            wire.stdout.close()
        for name in made:
            _delete(name)


def run(
    seconds: float = 10.0,
    delay_ms: float = 40.0,
    losses: tuple[float, ...] = (0, 2, 5),
    modes: tuple[str, ...] = MODES,
) -> list[Cell]:
    """Every cell, side by side, in one fresh pair of namespaces."""
    with link(delay_ms) as (browser, relay), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cells.json"
        cmd = [
            "ip", "netns", "exec", browser, sys.executable, "-m", "bench.netloss", "--inside",
            "--browser-ns", browser, "--relay-ns", relay, "--seconds", str(seconds),
            "--losses", ",".join(f"{v:g}" for v in losses), "--out", str(out),
            "--modes", ",".join(modes),
        ]  # fmt: skip
        budget = 60 + len(losses) * len(modes) * (seconds + 8)
        done = subprocess.run(cmd, cwd=ROOT, env=_env(), timeout=budget, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the run inside the namespace failed ({done.returncode})")
        return [Cell(**c) for c in json.loads(out.read_text())]


def table(cells: list[Cell], delay_ms: float) -> str:
    head = (
        f"one-way delay {delay_ms:g} ms each way; on time = reached the relay within "
        f"{ON_TIME_S * 1000:.0f} ms of capture\n\n"
        "| path | loss | on time | added p50 ms | added p99 ms | never arrived | "
        "packets dropped |\n"
        "|---|---|---|---|---|---|---|"
    )
    return "\n".join([head, *(c.row for c in cells)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.netloss", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--delay-ms", type=float, default=40.0)
    parser.add_argument("--losses", default="0,2,5")
    parser.add_argument(
        "--modes",
        default=",".join((*MODES, JB_MODE)),
        help=f"of {', '.join((*MODES, JB_MODE))}",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--relay-ns", help=argparse.SUPPRESS)
    parser.add_argument("--browser-ns", help=argparse.SUPPRESS)
    args = parser.parse_args()
    losses = tuple(float(v) for v in args.losses.split(","))
    modes = tuple(args.modes.split(","))
    if unknown := set(modes) - {*MODES, JB_MODE}:
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    if args.inside:
        cells = asyncio.run(
            inside(args.browser_ns, args.relay_ns, args.seconds, list(losses), list(modes))
        )
        Path(args.out).write_text(json.dumps([asdict(c) for c in cells]))
        return
    try:
        cells = run(args.seconds, args.delay_ms, losses, modes)
    except NamespaceUnavailable as exc:
        sys.exit(f"netloss: cannot create a network namespace here: {exc}")
    if args.json:
        rows = [
            {k: None if isinstance(v, float) and math.isinf(v) else v for k, v in asdict(c).items()}
            for c in cells
        ]
        print(json.dumps(rows, indent=2))  # null: more than 1 % of the frames never came
    else:
        print(table(cells, args.delay_ms))


if __name__ == "__main__":
    main()
