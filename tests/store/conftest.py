"""Fixtures for the conversation stores: every contract test runs on each store.

Redis runs against a real ``redis-server`` started on a free loopback port. Without the
binary the Redis cases are skipped locally (with the reason) and fail in CI (``$CI``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gemini_live.store import ConversationStore, MemoryStore, RedisStore, SqliteStore

STORES = ["memory", "sqlite", "redis"]


class FakeClock:
    """A wall clock the test moves (memory and sqlite stores take one)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A fresh ``redis-server`` on a free loopback port (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Redis store tests (.ci/install-services)")
        pytest.skip(reason)
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10.0
        while not _ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer PING on port {port}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=10)


_prefixes = iter(range(1_000_000))


@pytest.fixture
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., ConversationStore]]:
    """``make_store(**options)``: a new store of the parametrised kind (the Redis stores
    of one test share the test's key prefix, the sqlite stores the test's file); all are
    closed after the test."""
    kind: str = request.param
    made: list[ConversationStore] = []
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""
    prefix = f"t{next(_prefixes)}-{os.getpid()}:"

    def make(**options: object) -> ConversationStore:
        store: ConversationStore
        if kind == "memory":
            store = MemoryStore(**options)  # type: ignore[arg-type]
        elif kind == "sqlite":
            store = SqliteStore(tmp_path / "conversations.db", **options)  # type: ignore[arg-type]
        else:
            options.pop("clock", None)
            store = RedisStore(url, prefix=prefix, **options)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        async with asyncio.timeout(5):
            await store.aclose()
