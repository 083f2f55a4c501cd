"""The loop-stall monitor catches a deliberate ``time.sleep`` on the loop, with its stack."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gemini_live.loopmon import LoopMonitor, LoopStall


def _block_the_loop_on_purpose(seconds: float) -> None:
    time.sleep(seconds)  # the bug being detected: a blocking call on the event loop


async def _next_beat(monitor: LoopMonitor) -> None:
    """Let the loop run past the next heartbeat's due time.

    Timers run in due order, so the heartbeat (due within one interval) has run when a
    sleep of two intervals returns; this is ordering, not a race.
    """
    await asyncio.sleep(monitor.interval * 2)


async def test_a_blocking_sleep_is_reported_with_its_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stalls: list[LoopStall] = []
    seen = asyncio.Event()

    def on_stall(stall: LoopStall) -> None:
        stalls.append(stall)
        seen.set()

    caplog.set_level(logging.WARNING, logger="gemini_live.loopmon")
    async with LoopMonitor(interval=0.02, threshold=0.1, on_stall=on_stall) as monitor:
        await _next_beat(monitor)
        _block_the_loop_on_purpose(0.5)
        async with asyncio.timeout(5):
            await seen.wait()
    assert not monitor.running
    assert len(stalls) == 1
    stall = stalls[0]
    assert stall.lag >= 0.3
    assert "_block_the_loop_on_purpose" in stall.stack
    assert "time.sleep(seconds)" in stall.stack
    assert "_block_the_loop_on_purpose" in repr(stall)
    assert monitor.stalls == 1 and monitor.max_lag >= 0.3 and monitor.last_stall is stall
    assert monitor.stalled_seconds == pytest.approx(stall.lag)
    [record] = [r for r in caplog.records if r.name == "gemini_live.loopmon"]
    assert record.levelno == logging.WARNING
    assert "event loop stalled for" in record.getMessage()
    assert "_block_the_loop_on_purpose" in record.getMessage()
    assert "stalls=1" in repr(monitor)


async def test_listeners_can_be_added_and_removed_and_may_raise() -> None:
    calls: list[str] = []
    seen = asyncio.Event()

    def bad(stall: LoopStall) -> None:
        calls.append("bad")
        raise RuntimeError("listener bug")

    def good(stall: LoopStall) -> None:
        calls.append("good")
        seen.set()

    monitor = LoopMonitor(interval=0.02, threshold=0.05, capture_stack=False, log=False)
    monitor.add_listener(bad)
    remove = monitor.add_listener(good)
    monitor.start()
    try:
        await _next_beat(monitor)
        _block_the_loop_on_purpose(0.2)
        async with asyncio.timeout(5):
            await seen.wait()
        assert calls == ["bad", "good"]
        assert monitor.last_stall is not None and monitor.last_stall.stack == ""
        remove()
        seen.clear()
        _block_the_loop_on_purpose(0.2)
        await _next_beat(monitor)
        assert calls == ["bad", "good", "bad"]
    finally:
        monitor.stop()
    monitor.stop()  # idempotent


async def test_a_healthy_loop_counts_beats_without_stalls() -> None:
    async with LoopMonitor(interval=0.01, threshold=5.0) as monitor:
        for _ in range(3):
            await _next_beat(monitor)
    assert monitor.beats >= 2 and monitor.stalls == 0 and monitor.last_stall is None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        LoopMonitor(interval=0)
    with pytest.raises(ValueError, match="threshold"):
        LoopMonitor(threshold=-1)
