"""Scale-out on real engines (see topology.py): three relay workers behind haproxy with
their conversations in Redis. Kill -9 one worker mid-turn: its browsers resume on the
others. Restart all three one at a time (SIGTERM: drain): no turn lost, none answered
twice. Prints the measured figures (resume time, Redis operations and bytes per turn).

``GEMINI_LIVE_SCALEOUT_BROWSERS`` sets how many browsers (default 30)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from store.conftest import redis_url  # noqa: F401  (the fixture: a real redis-server)

from .topology import (
    Browser,
    Worker,
    fake_service,
    free_port,
    haproxy,
    http_status,
    percentile,
    until,
)

BROWSERS = int(os.environ.get("GEMINI_LIVE_SCALEOUT_BROWSERS", "30"))
TURNS = 6


def _haproxy() -> str:
    binary = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    )
    if binary is None:
        reason = "haproxy is not installed (apt-get install haproxy; .ci/install-services)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the scale-out tests")
        pytest.skip(reason)
    return binary


@dataclass
class Topology:
    workers: list[Worker]
    lb: str
    redis: Any


@asynccontextmanager
async def topology(url: str, tmp: Path) -> AsyncIterator[Topology]:
    import redis

    binary = _haproxy()
    client = redis.Redis.from_url(url)
    client.flushdb()
    async with AsyncExitStack() as stack:
        service = await stack.enter_async_context(fake_service())
        workers = [Worker(free_port(), service, url) for _ in range(3)]
        for w in workers:
            stack.push_async_callback(w.stop)
        await asyncio.gather(*(w.start() for w in workers))
        lb = await stack.enter_async_context(haproxy(binary, workers, tmp))
        yield Topology(workers, lb, client)


def _redis_counters(client: Any) -> tuple[int, int]:
    info = client.info("stats")
    return int(info["total_commands_processed"]), int(info["total_net_input_bytes"])


def _check_no_loss(browsers: list[Browser], *, exact: bool) -> int:
    """Every text answered (none lost) and its turn ended (a turn end that died with its
    worker is sent again after the page names the text in ``await_turns``); returns how
    many were answered more than once."""
    twice = 0
    for b in browsers:
        assert not b.pending, (b.index, b.pending, b.closes)
        assert not b.awaiting and not b.unknown, (b.index, b.awaiting, b.unknown, b.closes)
        for text in b.sent:
            assert b.answers[text] >= 1, (b.index, text, b.closes)
            twice += b.answers[text] > 1
    if exact:
        assert twice == 0
    return twice


def _report(name: str, browsers: list[Browser], ops: int, nbytes: int) -> None:
    turns = sum(len(b.sent) for b in browsers)
    rejoin = [s for b in browsers for s in b.rejoin_s]
    resume = [s for b in browsers for s in b.resume_s]
    print(
        f"\n[{name}] browsers={len(browsers)} turns={turns}"
        f" moved_or_dropped={sum(1 for b in browsers if b.closes)}"
        f" rejoin_s p50={percentile(rejoin, 0.5):.2f} max={max(rejoin, default=0):.2f}"
        f" resume_s p50={percentile(resume, 0.5):.2f} max={max(resume, default=0):.2f}"
        f" redis ops/turn={ops / max(turns, 1):.1f} bytes/turn={nbytes / max(turns, 1):.0f}"
        f" ops/conversation={ops / len(browsers):.1f}"
        f" bytes/conversation={nbytes / len(browsers):.0f}"
        f" turn ends sent again after a rejoin={sum(b.replayed for b in browsers)}"
    )


@pytest.mark.timeout(120)
async def test_kill_9_one_worker_mid_turn(redis_url: str, tmp_path: Path) -> None:  # noqa: F811
    async with topology(redis_url, tmp_path) as topo:
        ops0, bytes0 = _redis_counters(topo.redis)
        browsers = [Browser(i, topo.lb, TURNS) for i in range(BROWSERS)]
        runs = [asyncio.create_task(b.run(within=90)) for b in browsers]
        # Mid-conversation: a third of the turns answered, the rest in flight or to come.
        await until(
            lambda: sum(sum(b.answers.values()) for b in browsers) >= BROWSERS * TURNS // 3,
            60,
            "a third of the turns answered",
        )
        await topo.workers[0].kill()
        await asyncio.gather(*runs)
        ops1, bytes1 = _redis_counters(topo.redis)
    dropped = [b for b in browsers if 1006 in b.closes]
    assert dropped, "the killed worker served nobody"
    # Exactly once: a text in flight when its worker died is re-sent by the store (what
    # its handle did not cover) or by the page (what was not acknowledged), never both:
    # the record keeps the ids of the texts it accepted.
    _check_no_loss(browsers, exact=True)
    _report("kill -9", browsers, ops1 - ops0, bytes1 - bytes0)
    print(
        f"[kill -9] re-sent texts the relay already had={sum(b.duplicates_acked for b in browsers)}"
        f" of {sum(len(b.sent) for b in browsers)}"
    )


@pytest.mark.timeout(120)
async def test_rolling_restart_loses_nothing(redis_url: str, tmp_path: Path) -> None:  # noqa: F811
    async with topology(redis_url, tmp_path) as topo:
        ops0, bytes0 = _redis_counters(topo.redis)
        # The browsers talk on until the restart is over, then two turns more each.
        browsers = [Browser(i, topo.lb, 10_000) for i in range(BROWSERS)]
        runs = [asyncio.create_task(b.run(within=100)) for b in browsers]
        await until(
            lambda: sum(sum(b.answers.values()) for b in browsers) >= BROWSERS,
            60,
            "every browser talking",
        )
        for w in topo.workers:
            await w.terminate(within=30)  # drains: 4012 to each of its browsers
            await w.start()
            await until(lambda w=w: http_status(w.ready_url) == 200, 15, "worker ready")
        for b in browsers:
            b.turns = len(b.sent) + 2
        await asyncio.gather(*runs)
        ops1, bytes1 = _redis_counters(topo.redis)
    # Every browser was on one of the three workers: each was moved at least once.
    assert all(4012 in b.closes for b in browsers), [b.closes for b in browsers]
    _check_no_loss(browsers, exact=True)
    _report("rolling restart", browsers, ops1 - ops0, bytes1 - bytes0)
