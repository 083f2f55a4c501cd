"""Cassette replay: one recorded connection's server side, played against a live client.

Client messages are matched loosely, by kind and order: a run of audio (or video) chunks is
one step whatever its chunking, and the server frames recorded inside such a run are sent
once the live client has streamed as much audio as the recorded client had. Any other
mismatch is a *divergence*: reported on the server (``divergences``, raised by ``check()``)
and to the client as a close 1007 whose reason is "cassette replay diverged: " and the
sentence (the client raises :class:`~gemini_live.errors.CassetteDivergence`, not
retryable). With ``match="strict"`` the payload of every message that is not streamed
audio or video must equal the recorded one too (a readable diff says how it differs).
"""

from __future__ import annotations

import difflib
import json
import logging
from typing import Any

import msgspec

from gemini_live.errors import CASSETTE_DIVERGED
from gemini_live.testing._cassette_file import STREAM_KINDS, client_kind, scrub_frame, stream_units
from gemini_live.testing._cassette_read import Cassette, RecordedConnection
from gemini_live.testing._connection import ServerConn
from gemini_live.testing._core import LiveServerCore, _ConnectionLogic
from gemini_live.testing._normalize import normalize_keys
from gemini_live.testing._records import ConnectionRecord
from gemini_live.types import Setup

__all__ = ["DIVERGED"]

logger = logging.getLogger("gemini_live.testing")

DIVERGED = CASSETTE_DIVERGED
#: Longest close reason (bytes) a WebSocket close frame carries.
_MAX_REASON = 123
#: Lines of a strict-match diff kept in a divergence report.
_MAX_DIFF_LINES = 40


def close_reason(sentence: str) -> str:
    """The close reason for a divergence: the prefix and as much of the sentence as fits."""
    reason = f"{DIVERGED}: {sentence}"
    data = reason.encode()
    if len(data) <= _MAX_REASON:
        return reason
    return data[: _MAX_REASON - 3].decode(errors="ignore") + "..."


def payload_diff(recorded: Any, live: Any) -> list[str]:
    """A unified diff of two client payloads (keys normalized, sorted), bounded."""

    def lines(obj: Any) -> list[str]:
        return json.dumps(normalize_keys(obj), indent=1, sort_keys=True).splitlines()

    diff = list(
        difflib.unified_diff(lines(recorded), lines(live), "cassette", "app", n=1, lineterm="")
    )
    if len(diff) > _MAX_DIFF_LINES:
        diff = [*diff[:_MAX_DIFF_LINES], f"... ({len(diff) - _MAX_DIFF_LINES} more lines)"]
    return diff


class _ReplayLogic(_ConnectionLogic):
    """Serves one connection from a recorded connection of a cassette."""

    def __init__(
        self,
        core: LiveServerCore,
        conn: ServerConn,
        record: ConnectionRecord,
        cassette: Cassette,
    ) -> None:
        super().__init__(core, conn, record)
        self.cassette = cassette
        n = record.index
        self.recorded: RecordedConnection | None = (
            cassette.connections[n] if n < len(cassette.connections) else None
        )
        self.begun = 0  # client steps begun (matched) so far
        self.units = 0.0  # streamed units of the current step
        self.next_item = 0
        self.diverged = False
        self._last_t: float | None = None

    async def opened(self) -> None:
        await super().opened()
        if self.finished:
            return
        if self.recorded is None:
            await self._diverge(
                f"connection {self.record.index} is not in the cassette "
                f"(it holds {len(self.cassette.connections)})"
            )
            return
        await self._release()

    def on_closed(self, code: int, reason: str) -> None:
        rec = self.recorded
        if rec is not None and not self.diverged and self.begun < len(rec.steps):
            missing = rec.steps[self.begun]
            more = len(rec.steps) - self.begun - 1
            self._report(
                f"the client closed the connection ({code}) before sending {missing.kind}"
                f" (recorded at {missing.t:.3f} s)" + (f" and {more} more step(s)" if more else "")
            )
        super().on_closed(code, reason)

    def _report(self, text: str) -> None:
        where = self.cassette.path or "cassette"
        message = f"{where}, connection {self.record.index}: {text}"
        self.diverged = True
        self.core.divergences.append(message)
        logger.warning("fake server: %s", message)
        self.core.notify()

    async def _diverge(self, text: str, detail: str = "") -> None:
        self._report(text + detail)
        await self.close(1007, close_reason(text))

    async def _process(self, data: bytes) -> None:
        taken = await self._take(data)
        if taken is None:
            return
        msg, audio = taken
        if self.index == 0 and not self.opts.auth_on_connect and not await self._check_auth():
            return
        if isinstance(msg.setup, Setup):
            self.record.setup = msg.setup
        obj = msgspec.to_builtins(msg)
        kind = client_kind(obj)
        if self.opts.cassette_match == "strict" and kind not in STREAM_KINDS:
            recorded = rec_frame = None
            if self.recorded is not None and self.begun < len(self.recorded.steps):
                step = self.recorded.steps[self.begun]
                recorded, rec_frame = step.kind, step.frame
            if recorded == kind and rec_frame is not None:
                live = scrub_frame(data).get("frame")
                if normalize_keys(live) != normalize_keys(rec_frame):
                    diff = payload_diff(rec_frame, live)
                    await self._diverge(
                        f"client message {self.index} ({kind}) differs from the cassette",
                        " (match='strict'):\n" + "\n".join(diff),
                    )
                    return
        units = stream_units(kind, obj)
        if audio:
            self.record.add_audio(audio, self.audio_limit)
        rec = self.recorded
        assert rec is not None
        steps = rec.steps
        current = steps[self.begun - 1] if self.begun else None
        if kind in STREAM_KINDS and current is not None and current.kind == kind:
            self.units += units  # the same run of chunks goes on
        elif self.begun < len(steps) and steps[self.begun].kind == kind:
            self.begun += 1
            self.units = units
        elif kind in STREAM_KINDS:
            return  # extra streamed chunks where none were recorded: tolerated
        else:
            expected = (
                f"{steps[self.begun].kind} (recorded at {steps[self.begun].t:.3f} s)"
                if self.begun < len(steps)
                else "nothing more (the recorded client sent no more messages)"
            )
            await self._diverge(
                f"client message {self.index} is {kind}, the cassette expected {expected}"
            )
            return
        if self.begun == 1 and kind == "setup":
            self.record.setup_completed = True
        await self._release()

    def _due(self, steps: int, units: float) -> bool:
        if self.begun > steps:
            return True
        if self.begun < steps:
            return False
        rec = self.recorded
        assert rec is not None
        last = rec.steps[steps - 1] if steps else None
        return last is None or last.kind not in STREAM_KINDS or self.units >= units - 1e-6

    async def _release(self) -> None:
        """Send every recorded server item that the client's progress has made due."""
        rec = self.recorded
        assert rec is not None
        while self.next_item < len(rec.items) and not self.finished:
            item = rec.items[self.next_item]
            if not self._due(item.steps, item.units):
                return
            self.next_item += 1
            if self.opts.replay_timing and self._last_t is not None:
                gap = min(item.t - self._last_t, 2.0)
                if gap > 0 and not await self._sleep(gap):
                    return
            self._last_t = item.t
            if item.close is not None:
                code, reason = item.close
                if code == 1006:
                    self.abort()
                else:
                    await self.close(code, reason)
                return
            await self.send_frame(item.payload())
