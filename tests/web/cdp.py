"""A tiny Chrome DevTools Protocol client over ``websockets``: launch, evaluate, screenshot.

Just enough to drive Debian's headless Chromium from a test: no driver downloads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(Exception):
    pass


class Page:
    """One page target, attached with a flat session."""

    def __init__(self, ws: ClientConnection, session_id: str) -> None:
        self._ws = ws
        self.session_id = session_id
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._ws:
            msg = json.loads(raw)
            fut = self._waiters.pop(msg.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif msg.get("method") == "Runtime.consoleAPICalled":
                args = msg["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("type"))) for a in args))
            elif msg.get("method") == "Runtime.exceptionThrown":
                details = msg["params"]["exceptionDetails"]
                self.console.append("exception: " + json.dumps(details)[:500])

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = True
    ) -> dict[str, Any]:
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session_id
        await self._ws.send(json.dumps(msg))
        async with asyncio.timeout(20):
            answer = await fut
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float = 20.0) -> Any:
        """Evaluate until truthy (polled: the page's own state has no push channel here).

        An expression that throws counts as "not yet": right after a navigation or a
        reload the page's scripts may not have defined their globals. The last error is
        reported if the time runs out.
        """
        last: CdpError | None = None
        try:
            async with asyncio.timeout(within):
                while True:
                    try:
                        value = await self.evaluate(expression)
                    except CdpError as exc:
                        last, value = exc, None
                    if value:
                        return value
                    await asyncio.sleep(0.05)
        except TimeoutError:
            if last is not None:
                raise CdpError(f"{expression}: still failing after {within} s: {last}") from None
            raise

    async def screenshot(self) -> bytes:
        """A PNG of the page as it is now."""
        result = await self.call("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(result["data"])

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


@contextlib.asynccontextmanager
async def chromium_page(url: str, profile: Path, flags: Sequence[str] = ()) -> AsyncIterator[Page]:
    """Launch headless Chromium, open ``url`` in a new page, yield it attached."""
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (run .ci/install-browser)")
    args = [
        exe,
        "--headless=new",
        "--no-sandbox" if os.geteuid() == 0 else "--enable-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--window-size=900,700",
        *flags,
        "about:blank",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    stderr_tail: list[bytes] = []
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(30):
            while True:
                line = await proc.stderr.readline()
                if not line:
                    raise RuntimeError(
                        "chromium exited: " + b"".join(stderr_tail[-20:]).decode(errors="replace")
                    )
                stderr_tail.append(line)
                m = _LISTENING.search(line)
                if m:
                    browser_ws = m.group(1).decode()
                    break
        drain = asyncio.create_task(_drain(proc.stderr))
        async with connect(browser_ws, max_size=64 * 1024 * 1024) as ws:
            page = Page(ws, "")
            target = await page.call("Target.createTarget", {"url": "about:blank"}, session=False)
            attached = await page.call(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
                session=False,
            )
            page.session_id = attached["sessionId"]
            await page.call("Runtime.enable")
            await page.call("Page.enable")
            await page.call("Page.navigate", {"url": url})
            try:
                yield page
            finally:
                await page.close()
        drain.cancel()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
