"""The scale-out topology on real engines, for the deployment tests: ``gemini-live
fake-server`` as the service, a real ``redis-server`` (the store), Debian's ``haproxy``
(round robin, WebSocket tunnels, health checks on ``/readyz``) and relay worker
processes (``worker.py``), all on free 127.0.0.1 ports; plus synthetic browsers that
speak the page's protocol (text turns, paced audio, reconnect with ``?conversation=``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

WORKER = Path(__file__).with_name("worker.py")
SECRET = "scale-out-secret"
#: 20 ms of 16 kHz PCM16 silence (the relay forwards it; its VAD hears no speech).
FRAME = bytes(640)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _read_url(proc: asyncio.subprocess.Process, marker: bytes) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"process exited before printing {marker!r}")
            if marker in line:
                return line[line.index(marker) :].decode().split()[0]


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


async def until(predicate: object, within: float, what: str) -> None:
    """Poll an outside process's state (no event to wait on) at a bounded pace."""
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def fake_service() -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gemini_live",
        "fake-server",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError("fake-server exited")
                if line.startswith(b"URL: "):
                    break
        drain = asyncio.create_task(_discard(proc.stdout))
        yield line[5:].decode().strip()
        drain.cancel()
    finally:
        await _stop(proc)


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    async with asyncio.timeout(10):
        await proc.wait()


@dataclass
class Worker:
    port: int
    service: str
    store: str | None
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        args = [sys.executable, str(WORKER), "--port", str(self.port), "--service", self.service]
        if self.store:
            args += ["--store", self.store]
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=dict(os.environ, WORKER_SECRET=SECRET, PYTHONUNBUFFERED="1"),
        )
        await _read_url(self.proc, b"http://")

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/readyz"

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            await self.proc.wait()

    async def terminate(self, within: float = 30) -> None:
        """SIGTERM: the worker drains, then exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(within):
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None:
            await _stop(self.proc)


HAPROXY_CONFIG = """\
global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # An upgraded WebSocket is a tunnel: its idle limit, not the HTTP ones.
    timeout tunnel 1h
    timeout client-fin 5s
    retries 3
    option redispatch
frontend browsers
    bind 127.0.0.1:{port}
    default_backend relays
backend relays
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 1 rise 1
{servers}
"""


@contextlib.asynccontextmanager
async def haproxy(binary: str, workers: list[Worker], tmp: Path) -> AsyncIterator[str]:
    port = free_port()
    servers = "\n".join(f"    server w{i} 127.0.0.1:{w.port} check" for i, w in enumerate(workers))
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(HAPROXY_CONFIG.format(port=port, servers=servers))
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-db",
        "-f",
        str(cfg),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        await until(lambda: http_status(f"http://127.0.0.1:{port}/readyz") == 200, 15, "haproxy up")
        yield f"ws://127.0.0.1:{port}/live"
    finally:
        await _stop(proc)


@dataclass
class Browser:
    """One synthetic browser: the page's protocol, its reconnect and re-send rules."""

    index: int
    url: str
    turns: int
    conversation: str | None = None
    sent: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    pending: list[str] = field(default_factory=list)
    #: Texts not acknowledged by a relay yet, by id: re-sent after a reconnect (the
    #: page's rule). A relay acknowledges a re-sent text it already has without sending it.
    unacked: dict[str, str] = field(default_factory=dict)
    duplicates_acked: int = 0
    closes: list[int] = field(default_factory=list)
    #: Seconds from a close to the next ``ready``, and to the next answered turn.
    rejoin_s: list[float] = field(default_factory=list)
    resume_s: list[float] = field(default_factory=list)
    connections: int = 0
    #: Acknowledged texts whose turn end has not arrived, by id (oldest first): named in
    #: ``await_turns`` after a reconnect (the page's rule), so a turn end that died with
    #: its worker is sent again from the stored record.
    awaiting: dict[str, str] = field(default_factory=dict)
    #: Turn ends sent again that way, and ids a relay had no record of.
    replayed: int = 0
    unknown: list[str] = field(default_factory=list)

    async def run(self, within: float) -> None:
        headers = {"Authorization": f"Bearer user{self.index}:{SECRET}"}
        attempt = 0
        closed_at: float | None = None
        async with asyncio.timeout(within):
            while len(self.sent) < self.turns or self.pending:
                url = self.url + (f"?conversation={self.conversation}" if self.conversation else "")
                try:
                    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
                        ready = json.loads(await ws.recv())
                        assert ready["type"] == "ready", ready
                        self.connections += 1
                        attempt = 0
                        self.conversation = ready["conversation"]
                        if closed_at is not None:
                            self.rejoin_s.append(time.monotonic() - closed_at)
                        if ready.get("await_turns") and self.awaiting:
                            ids = list(self.awaiting)
                            await ws.send(json.dumps({"type": "await_turns", "ids": ids}))
                        for tid, text in self.unacked.items():  # the page re-sends
                            await ws.send(json.dumps({"type": "text", "text": text, "id": tid}))
                        closed_at = await self._talk(ws, closed_at)
                        if closed_at is None:
                            return
                except ConnectionClosed as exc:
                    self.closes.append(exc.rcvd.code if exc.rcvd else 1006)
                except (InvalidStatus, OSError, TimeoutError):
                    self.closes.append(0)  # the load balancer had no worker for it
                closed_at = closed_at or time.monotonic()
                attempt += 1
                # Backoff: the page's pacing (0.1 s doubling, jittered).
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))

    async def _talk(self, ws: object, closed_at: float | None) -> float | None:
        from websockets.asyncio.client import ClientConnection

        assert isinstance(ws, ClientConnection)
        said = ""
        while True:
            if not self.pending and len(self.sent) < self.turns:
                for _ in range(5):  # some paced audio first (100 ms)
                    await ws.send(FRAME)
                    await asyncio.sleep(0.02)  # real-time pacing, not synchronization
                text = f"turn {len(self.sent)} of browser {self.index}"
                tid = f"b{self.index}-t{len(self.sent)}"
                self.sent.append(text)
                self.pending.append(text)
                self.unacked[tid] = text
                await ws.send(json.dumps({"type": "text", "text": text, "id": tid}))
            elif not self.pending:
                await ws.close()
                return None
            try:
                msg = await ws.recv()
            except ConnectionClosed as exc:
                self.closes.append(exc.rcvd.code if exc.rcvd else 1006)
                return time.monotonic()
            if not isinstance(msg, str):
                continue
            m = json.loads(msg)
            if m["type"] == "text_ack":
                acked = self.unacked.pop(m["id"], None)
                self.duplicates_acked += bool(m.get("duplicate"))
                if acked is not None and acked in self.pending:
                    self.awaiting[m["id"]] = acked
                    if m.get("duplicate"):  # taken before: its turn may be over already
                        await ws.send(json.dumps({"type": "await_turns", "ids": [m["id"]]}))
            elif m["type"] == "turn_status":
                if m["state"] == "unknown":
                    self.unknown.append(m["id"])
            elif m["type"] == "turn_complete" and m.get("replayed"):
                # The turn end its dead worker could not write, from the stored record.
                ended = self.awaiting.pop(m["id"], None)
                self.replayed += 1
                if ended is not None and ended in self.pending:
                    self.pending.remove(ended)
                    self.answers[ended] += 1
                    if closed_at is not None:
                        self.resume_s.append(time.monotonic() - closed_at)
                        closed_at = None
            elif m["type"] == "output_transcript":
                said += m["text"]
            elif m["type"] == "turn_complete":
                for text in list(self.pending):
                    if text in said:
                        self.answers[text] += 1
                        self.pending.remove(text)
                        for tid in [k for k, v in self.awaiting.items() if v == text]:
                            del self.awaiting[tid]
                        break
                else:
                    for text in self.sent:
                        if text in said:
                            self.answers[text] += 1  # an answer again: counted
                            break
                if closed_at is not None:
                    self.resume_s.append(time.monotonic() - closed_at)
                    closed_at = None
                said = ""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
