"""The benchmark server: a separate process on 127.0.0.1 with pre-serialized replies.

Run ``python -m bench.server``; it prints ``PORT <n>`` on stdout once it listens, then
reads commands on stdin, one per line:

* ``stats``: print one line ``STATS <json>`` (frames in/out, connections, pacing lag, ...)
* ``goaway``: send goAway to every open connection
* ``quit`` (or end of stdin, e.g. the parent died): exit

Behaviour per connection, chosen by the URL path (``/bench/w1``, ``/bench/w2``, ...; any
Live path is accepted and means ``w1``):

* The first message is the setup. It is answered with ``setupComplete`` (binary frame). A
  ``sessionResumption.handle`` in it is accepted (counted as ``resumed`` when the server
  issued it). In ``w3`` a ``sessionResumptionUpdate`` with a new handle follows at once.
* Frames are pre-serialized in the framing given by ``--framing``: ``service`` (default:
  2-space indented JSON with a trailing newline, as the Live API sends them) or
  ``compact``; always binary WebSocket frames.
* ``w1``/``w3``: every ``realtimeInput.audio`` gets one 40 ms 24 kHz audio reply; turns of
  50 replies mix audio alone, audio + ``outputTranscription`` (every 5th), one
  ``inputTranscription`` with the first reply and ``turnComplete`` + ``usageMetadata``
  after the last (:meth:`bench.common.Frames.w1_replies`).
* ``w2`` (paced): incoming audio is only counted; from the first audio chunk on, a ticker
  sends every session 25 audio replies per second (spread over 8 phases), each carrying
  ``outputTranscription.text = "t=<server time.monotonic() at send>"``, plus an
  ``inputTranscription`` at the start and ``turnComplete`` + usage after every 25. The
  sessions' turn ends are spread over the 25 replies (the k-th paced session of a phase
  starts k replies, modulo 25, into its first turn), as independent conversations'
  are: in lockstep, every session's turn would end in the same 40 ms, and a window of a
  few replies (``bench.w2_instructions``) would count a turn's end for all or for none.
  ``--pace-scale F`` stretches that clock F times (25/F replies per second per session:
  the W2 shape for a client slowed down F times, e.g. under valgrind).
* ``w2t`` (paced, turn by turn): ``w2`` with a pause of ``W2T_PAUSE`` reply slots
  (400 ms) after every ``turnComplete``, as a model answers a caller, so each reply starts
  with nothing of the previous one still being played out (what ``bench.density`` times
  the bridge with).
* ``w2f`` (turn by turn, faster than real time): ``w2t``'s turns, replies and pauses on
  the same 1.4 s cycle, but each turn's 25 replies go out ``W2F_SPEED`` (4) per tick of
  the session's phase (4x real time, as the Live API sends audio faster than it plays),
  then the session is quiet for the rest of the cycle: the same audio per second as
  ``w2t`` in bursts (``bench.density``'s ``bridge-fast`` kind). The sessions' turns are
  spread evenly over the cycle (the k-th paced session of a phase waits k ticks of the
  phase, modulo the cycle, before its first turn), as independent calls are: a server
  that starts every session's turn in the same 40 ms sends all their bursts at once.
* ``w2fa``: ``w2f`` with every session's first turn at once (all bursts aligned: the
  worst case, ``bench.density``'s ``bridge-fast-aligned`` kind).
* Any client ``realtimeInput.text`` equal to ``bench:goaway`` is answered with
  ``goAway{timeLeft: "1s"}``; the server closes that connection 1 s later if it is still
  open.

The server uses picows (+ uvloop when installed) and falls back to websockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from bench.common import (
    DEFAULT_FRAMING,
    FRAMINGS,
    GOAWAY_TRIGGER,
    W2_REPLY_HZ,
    W2_TURN_EVERY,
    Frames,
    raise_fd_limit,
    run_loop,
    uvloop_available,
)

_PHASES = 8
#: ``w2t``: reply slots of silence after each turn (10 x 40 ms).
W2T_PAUSE = 10
#: ``w2f``: replies per tick of a session's phase (times real time).
W2F_SPEED = 4
#: ``w2f``: quiet ticks after a turn, so a turn's cycle is as long as ``w2t``'s.
W2F_PAUSE = W2_TURN_EVERY + W2T_PAUSE - -(-W2_TURN_EVERY // W2F_SPEED)
#: ``w2f``: a turn's cycle in ticks of the session's phase (its burst and its pause).
W2F_CYCLE = -(-W2_TURN_EVERY // W2F_SPEED) + W2F_PAUSE
#: The workloads whose turns come faster than real time.
_FAST: Final = ("w2f", "w2fa")
_TICK = 1.0 / (W2_REPLY_HZ * _PHASES)  # 5 ms
_GOAWAY_BYTES = GOAWAY_TRIGGER.encode()
_handle_ids = itertools.count(1)


def workload_of(path: str | bytes) -> str:
    if isinstance(path, bytes):
        path = path.decode("latin-1")
    for part in path.split("/"):
        if part in ("w1", "w2", "w2t", "w2f", "w2fa", "w3"):
            return part
    return "w1"


def _setup_handle(data: bytes) -> str | None:
    try:
        msg = json.loads(data)
        setup = msg["setup"]
    except (ValueError, KeyError, TypeError):
        return None
    sr = setup.get("sessionResumption") or setup.get("session_resumption") or {}
    handle = sr.get("handle") if isinstance(sr, dict) else None
    return handle if isinstance(handle, str) and handle else None


class Conn:
    """Protocol logic for one connection, independent of the WebSocket library."""

    __slots__ = (
        "_close",
        "_send",
        "audio_in",
        "phase",
        "quiet",
        "replies",
        "server",
        "setup_done",
        "workload",
    )

    def __init__(
        self,
        server: BenchServer,
        workload: str,
        send: Callable[[bytes], object],
        close: Callable[[], None],
    ) -> None:
        self.server = server
        self.workload = workload
        self._send = send
        self._close = close
        self.setup_done = False
        self.audio_in = 0
        self.replies = 0
        self.phase = -1
        self.quiet = 0  # w2t: ticks of this connection's phase left in the pause

    def send(self, data: bytes) -> None:
        self.server.frames_out += 1
        self._send(data)

    def on_message(self, data: bytes | memoryview) -> None:
        srv = self.server
        srv.frames_in += 1
        if not self.setup_done:
            self._on_setup(bytes(data))
            return
        head = bytes(data[:48])
        if b'"audio"' in head:
            self.audio_in += 1
            if self.workload in ("w2", "w2t", "w2f", "w2fa"):
                if self.audio_in == 1:
                    srv.add_paced(self)  # the model starts talking once the user does
            else:
                send = self._send
                for frame in srv.frames.w1_replies(self.audio_in):
                    send(frame)
                    srv.frames_out += 1
        elif b'"text"' in head and _GOAWAY_BYTES in bytes(data):
            # As the service would: answer the text (the turn ends), issue a resumable
            # handle that covers it, then announce the end of the connection.
            frames = srv.frames
            self.send(frames.audio)
            self.send(frames.turn)
            if self.workload == "w3":
                new = f"bench-handle-{next(_handle_ids)}"
                srv.issued.add(new)
                self.send(frames.resumption_update(new))
            self.go_away()

    def _on_setup(self, data: bytes) -> None:
        srv = self.server
        self.setup_done = True
        srv.setups += 1
        handle = _setup_handle(data)
        if handle is not None:
            if handle in srv.issued:
                srv.resumed += 1
            else:
                srv.unknown_handles += 1
        self.send(srv.frames.setup_complete)
        if self.workload == "w3":
            new = f"bench-handle-{next(_handle_ids)}"
            srv.issued.add(new)
            self.send(srv.frames.resumption_update(new))

    def go_away(self) -> None:
        self.server.goaways += 1
        self.send(self.server.frames.go_away)
        asyncio.get_running_loop().call_later(1.0, self._close)

    def closed(self) -> None:
        self.server.remove_paced(self)


class BenchServer:
    def __init__(self, framing: str = DEFAULT_FRAMING, pace_scale: float = 1.0) -> None:
        if not pace_scale > 0:
            raise ValueError(f"pace_scale must be > 0, got {pace_scale!r}")
        self.frames = Frames(framing)
        #: The W2 ticker's step (5 ms, times ``pace_scale``).
        self.tick_s = _TICK * pace_scale
        self.pace_scale = pace_scale
        self.conns: set[Conn] = set()
        self.issued: set[str] = set()
        self.frames_in = 0
        self.frames_out = 0
        self.setups = 0
        self.resumed = 0
        self.unknown_handles = 0
        self.goaways = 0
        self.accepted = 0
        self._phases: list[dict[Conn, None]] = [{} for _ in range(_PHASES)]
        self._next_phase = 0
        self._fast_joined = 0  # w2f sessions paced so far (their turns' offsets)
        self._w2_joined = 0  # w2 sessions paced so far (their turn ends' offsets)
        self._ticker: asyncio.Task[None] | None = None
        self.ticks = 0
        self.late_ticks = 0
        self.max_tick_lag = 0.0
        self.resyncs = 0

    def connected(self, conn: Conn) -> None:
        self.accepted += 1
        self.conns.add(conn)

    def disconnected(self, conn: Conn) -> None:
        self.conns.discard(conn)
        conn.closed()

    # -- W2 pacing --------------------------------------------------------------------

    def add_paced(self, conn: Conn) -> None:
        if conn.workload == "w2f":  # turns spread over the cycle (see the module's doc)
            conn.quiet = self._fast_joined // _PHASES % W2F_CYCLE
            self._fast_joined += 1
        elif conn.workload == "w2":  # turn ends spread over a turn (the module's doc)
            conn.replies = self._w2_joined // _PHASES % W2_TURN_EVERY
            self._w2_joined += 1
        conn.phase = self._next_phase
        self._next_phase = (self._next_phase + 1) % _PHASES
        self._phases[conn.phase][conn] = None
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def remove_paced(self, conn: Conn) -> None:
        if conn.phase >= 0:
            self._phases[conn.phase].pop(conn, None)
            conn.phase = -1

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        monotonic = time.monotonic
        next_t = loop.time()
        tick = 0
        step, resync_after = self.tick_s, 0.25 * self.pace_scale
        while True:
            next_t += step
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag = -delay
                self.late_ticks += 1
                self.max_tick_lag = max(self.max_tick_lag, lag)
                if lag > resync_after:
                    # Far behind: resynchronise (the missed replies are lost: recv rate drops).
                    self.resyncs += 1
                    next_t = loop.time()
                await asyncio.sleep(0)
            self.ticks += 1
            bucket = self._phases[tick % _PHASES]
            tick += 1
            frames = self.frames
            for conn in list(bucket):
                if conn.quiet:
                    conn.quiet -= 1
                    continue
                for _ in range(W2F_SPEED if conn.workload in _FAST else 1):
                    conn.replies += 1
                    i = conn.replies % W2_TURN_EVERY
                    if i == 1:
                        conn.send(frames.input_transcript)
                    conn.send(frames.w2_frame(monotonic()))
                    if i == 0:
                        conn.send(frames.turn)
                        if conn.workload == "w2t":
                            conn.quiet = W2T_PAUSE  # the pause between turns
                        elif conn.workload in _FAST:
                            conn.quiet = W2F_PAUSE  # the rest of the turn's cycle
                        break

    # -- control ----------------------------------------------------------------------

    def broadcast_go_away(self) -> None:
        for conn in list(self.conns):
            if conn.setup_done:
                conn.go_away()

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.conns),
            "accepted": self.accepted,
            "setups": self.setups,
            "resumed": self.resumed,
            "unknown_handles": self.unknown_handles,
            "goaways": self.goaways,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "max_tick_lag_ms": round(self.max_tick_lag * 1000, 3),
            "resyncs": self.resyncs,
            "cpu_s": time.process_time(),
        }


# -- picows ----------------------------------------------------------------------------


async def _serve_picows(server: BenchServer) -> tuple[asyncio.AbstractServer, int]:
    import picows

    text, binary = picows.WSMsgType.TEXT, picows.WSMsgType.BINARY
    close_t, ping_t = picows.WSMsgType.CLOSE, picows.WSMsgType.PING

    class Listener(picows.WSListener):
        def __init__(self, workload: str) -> None:
            super().__init__()
            self.workload = workload
            self.conn: Conn | None = None

        def on_ws_connected(self, transport: Any) -> None:
            self.conn = Conn(
                server,
                self.workload,
                functools.partial(transport.send, binary),
                functools.partial(_picows_close, transport),
            )
            server.connected(self.conn)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            mt = frame.msg_type
            conn = self.conn
            if mt in (binary, text) and conn is not None:
                conn.on_message(frame.get_payload_as_memoryview())
            elif mt == close_t:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif mt == ping_t:
                transport.send_pong(frame.get_payload_as_bytes())

        def on_ws_disconnected(self, transport: Any) -> None:
            if self.conn is not None:
                server.disconnected(self.conn)

    def factory(request: Any) -> Listener:
        return Listener(workload_of(request.path))

    srv = await picows.ws_create_server(
        factory,
        "127.0.0.1",
        0,
        enable_auto_pong=False,
        max_frame_size=16 * 1024 * 1024,
        backlog=4096,
    )
    port = srv.sockets[0].getsockname()[1]
    return srv, port


def _picows_close(transport: Any) -> None:
    import picows

    if not transport.is_disconnected:
        with contextlib.suppress(Exception):
            transport.send_close(picows.WSCloseCode.GOING_AWAY)
        transport.disconnect()


# -- websockets fallback ---------------------------------------------------------------


async def _serve_websockets(server: BenchServer) -> tuple[Any, int]:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        path = ws.request.path if ws.request is not None else "/"

        def close() -> None:
            asyncio.get_running_loop().create_task(ws.close(1001))

        conn = Conn(server, workload_of(path), queue.put_nowait, close)
        server.connected(conn)

        async def writer() -> None:
            while True:
                await ws.send(await queue.get())

        wtask = asyncio.get_running_loop().create_task(writer())
        try:
            async for msg in ws:
                conn.on_message(msg.encode() if isinstance(msg, str) else msg)
        except Exception:  # any connection error just ends it
            pass
        finally:
            wtask.cancel()
            server.disconnected(conn)

    srv = await serve(handler, "127.0.0.1", 0, compression=None, max_size=None, backlog=4096)
    port = next(iter(srv.sockets)).getsockname()[1]
    return srv, port


# -- main --------------------------------------------------------------------------------


async def _main(impl: str, framing: str, pace_scale: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    server = BenchServer(framing, pace_scale)
    if impl == "auto":
        try:
            import picows  # noqa: F401

            impl = "picows"
        except ImportError:
            impl = "websockets"
    srv, port = await (_serve_picows(server) if impl == "picows" else _serve_websockets(server))
    print(f"PORT {port} {impl} {framing}", flush=True)
    done = loop.create_future()

    def command(line: str) -> None:
        cmd = line.strip()
        if cmd == "stats":
            print("STATS " + json.dumps(server.stats()), flush=True)
        elif cmd == "goaway":
            server.broadcast_go_away()
            print("OK goaway", flush=True)
        elif cmd in ("quit", "") and not done.done():
            done.set_result(None)

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(command, line)
            if line.strip() == "quit":
                return
        loop.call_soon_threadsafe(command, "")  # EOF: the parent is gone

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        await done
    finally:
        srv.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.server")
    ap.add_argument("--impl", choices=("auto", "picows", "websockets"), default="auto")
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    ap.add_argument("--framing", choices=FRAMINGS, default=DEFAULT_FRAMING)
    ap.add_argument(
        "--pace-scale", type=float, default=1.0, help="W2: stretch the reply clock this many times"
    )
    args = ap.parse_args(argv)
    if not args.pace_scale > 0:
        ap.error("--pace-scale must be > 0")
    raise_fd_limit()
    loop = args.loop
    if loop == "auto":
        loop = "uvloop" if uvloop_available() else "asyncio"
    run_loop(lambda: _main(args.impl, args.framing, args.pace_scale), loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
