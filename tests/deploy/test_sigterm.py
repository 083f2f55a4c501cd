"""``web.serve`` drains on SIGTERM: a worker process mid-conversation gets SIGTERM, its
browser is closed 4012 ``moved`` after the answer in flight, and the next worker on the
same store goes on with the conversation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gemini_live.testing import FakeLiveServer

WORKER = Path(__file__).with_name("worker.py")
SECRET = "s3cret-for-tests"
HEADERS = {"Authorization": f"Bearer ada:{SECRET}"}


@asynccontextmanager
async def worker(service: str, store: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    env = dict(os.environ, WORKER_SECRET=SECRET, PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "--service",
        service,
        "--store",
        store,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        assert line.startswith(b"http://"), line
        yield proc, line.decode().strip().replace("http://", "ws://") + "/live"
    finally:
        if proc.returncode is None:
            proc.kill()
        async with asyncio.timeout(10):
            await proc.wait()


async def _turn(ws: ClientConnection, text: str) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "text", "text": text}))
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while not got or got[-1]["type"] != "turn_complete":
            msg = await ws.recv()
            if isinstance(msg, str):
                got.append(json.loads(msg))
    return got


def _said(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["text"] for m in msgs if m["type"] == "output_transcript")


@pytest.mark.timeout(90)
async def test_sigterm_drains_a_worker_and_the_next_one_goes_on(tmp_path: Path) -> None:
    store = str(tmp_path / "conversations.db")
    async with FakeLiveServer(reply_chunks=10) as server:
        async with worker(server.url, store) as (proc, url):
            async with connect(url, additional_headers=HEADERS) as ws:
                ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
                cid = ready["conversation"]
                assert "my name is Ada" in _said(await _turn(ws, "my name is Ada"))
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    with pytest.raises(ConnectionClosed) as closed:
                        while True:
                            await ws.recv()
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                    4012,
                    "moved: reconnect",
                )
            async with asyncio.timeout(20):
                await proc.wait()
        async with (
            worker(server.url, store) as (_proc, url),
            connect(url + f"?conversation={cid}", additional_headers=HEADERS) as ws,
        ):
            await asyncio.wait_for(ws.recv(), 10)
            msgs = await _turn(ws, "what did I say")
            assert "my name is Ada" in _said(msgs)
            assert any(m["type"] == "state" and m.get("from_store") for m in msgs), msgs
    texts = [t for s in server.sessions.values() for t in s.user_texts]
    assert texts.count("my name is Ada") == 1
