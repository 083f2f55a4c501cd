"""Plain ``uvicorn --workers 2`` (no ``web.serve``): SIGTERM to uvicorn's parent process
drains every worker through the app's lifespan hook. Readiness fails first, the answer in
flight ends, the conversation is saved and the browser is closed 4012 (not uvicorn's
1012); another worker on the same store goes on with the conversation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gemini_live.testing import FakeLiveServer

from .test_sigterm import HEADERS, SECRET, _said, _turn, worker
from .topology import free_port, http_status, until

HERE = Path(__file__).parent


@asynccontextmanager
async def uvicorn_workers(
    service: str, store: str, workers: int
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    port = free_port()
    env = dict(
        os.environ,
        GL_SERVICE=service,
        GL_STORE=store,
        WORKER_SECRET=SECRET,
    )
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "uvicorn", "uvicorn_app:app", "--app-dir", str(HERE)),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
        *("--log-level", "warning"),
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        await until(lambda: http_status(f"http://127.0.0.1:{port}/readyz") == 200, 30, "ready")
        yield proc, port
    finally:
        if proc.returncode is None:
            proc.kill()
        async with asyncio.timeout(10):
            await proc.wait()


@pytest.mark.timeout(90)
async def test_sigterm_to_plain_uvicorn_workers_drains(tmp_path: Path) -> None:
    store = str(tmp_path / "conversations.db")
    # Replies take ~1 s: the SIGTERM lands while the answer is in flight.
    async with FakeLiveServer(reply_chunks=20, chunk_interval=0.05) as server:
        async with uvicorn_workers(server.url, store, workers=2) as (proc, port):
            url = f"ws://127.0.0.1:{port}/live"
            async with connect(url, additional_headers=HEADERS) as ws:
                ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
                cid = ready["conversation"]
                await ws.send(json.dumps({"type": "text", "text": "my name is Ada"}))
                got: list[dict[str, object]] = []
                async with asyncio.timeout(10):
                    while not any(m["type"] == "output_transcript" for m in got):
                        msg = await ws.recv()
                        if isinstance(msg, str):
                            got.append(json.loads(msg))
                proc.send_signal(signal.SIGTERM)
                # Readiness fails while the answer is still being sent.
                await until(
                    lambda: http_status(f"http://127.0.0.1:{port}/readyz") == 503, 10, "503"
                )
                async with asyncio.timeout(20):
                    with pytest.raises(ConnectionClosed) as closed:
                        while True:
                            msg = await ws.recv()
                            if isinstance(msg, str):
                                got.append(json.loads(msg))
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                    4012,
                    "moved: reconnect",
                )
                # Moved at its clean point: the answer ended first.
                assert got[-1]["type"] == "turn_complete", got[-3:]
                assert "my name is Ada" in _said(got)
            async with asyncio.timeout(30):
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
