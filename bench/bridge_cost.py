"""What one Twilio bridge call costs the process, independent of the machine's load.

    python -m bench.bridge_cost                      # CPU seconds per call-second
    python -m bench.bridge_cost --callgrind          # instructions per call-second (valgrind)
    python -m bench.bridge_cost --profile FILE       # cProfile of the window
    python -m bench.bridge_cost --input-rate 16000   # the 8 -> 16 kHz upstream path
    python -m bench.bridge_cost --media-ms 100       # up to 100 ms of audio per message
    python -m bench.bridge_cost --upstream-ms 20     # one upstream write per carrier frame
    python -m bench.bridge_cost --no-inline          # a server without gemini_live.on_message
    python -m bench.bridge_cost --model-speed 4      # each turn's audio at 4x real time
    python -m bench.bridge_cost --model-chunk-ms 120 # the model's audio in 120 ms chunks
    python -m bench.bridge_cost --shared-clock       # one timer per tick for all calls

``--calls`` calls of the real ``_Call`` (the bridge's per-call object) run on an event
loop with a **virtual clock**: the loop never blocks, it jumps to its next timer, so the
pacer's sleeps, the caller's 20 ms clock and the model's replies happen exactly as in
real time but as fast as the CPU goes, and the same run repeats to the instruction.
Per call and (virtual) second: 50 inbound ``media`` messages (mu-law 8 kHz, 100 ms of
speech then 200 ms of silence, as ``bench.density`` sends), 25 model replies of 40 ms of
24 kHz audio (``turnComplete`` after every 25), the bridge's 50 paced 20 ms frames (in
``media`` messages of up to ``media_ms``) and its marks, every mark echoed back by the
caller at once.

What is counted: the bridge's own work (JSON decode, base64, G.711, resampling, the
VAD, pacing, marks, the ASGI messages it builds) and the event loop's work for it. The
upstream session is a stub that takes the audio and activity signals (a bare session's
cost is ``bench.density``'s floor), and ``send``/``receive`` are in-memory queues (the
WebSocket server's cost is not the bridge's). The stub server offers the no-wait send
and, unless ``--no-inline``, the inbound extension (``gemini_live.on_message``) with the
library's server's rules, so the bridge's inline path is what is measured; the saving
the real server makes on top (no ASGI message dict, no queue) is not in these counts
(``bench.density`` measures through uvicorn's protocol).

The model is paced in real time by default (each 40 ms chunk when its audio would start
playing: the worst case for batching). The Live API sends its audio faster than real
time: ``--model-speed S`` delivers each turn's chunks ``S`` times faster than they play
(the turns still start a second apart, so a call gets the same audio per second) and
``--model-chunk-ms N`` makes the chunks ``N`` ms long (one turn is a second of audio).

``--shared-clock`` drives every call's carrier and model from one timer per tick (a
real server reads all its carriers on one loop) instead of a timer per call per frame
and per model chunk, which were about a quarter of a call-second's instructions and
are the bench's own cost, not the bridge's; the traffic is the same.

``--callgrind`` runs the measuring process under ``valgrind --tool=callgrind`` with the
same window markers as ``bench.instructions`` (``os.getppid()`` before the window,
``os.getpgrp()`` after it), so only the window's instructions are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import math
import os
import selectors
import struct
import sys
import time
import types
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Final

SID: Final = "MZ" + "0" * 32
FRAME_S: Final = 0.020
REPLY_S: Final = 0.040  # one model reply chunk
REPLIES_PER_TURN: Final = 25
TURN_S: Final = REPLY_S * REPLIES_PER_TURN  # one model turn's audio


# -- a loop with a virtual clock ------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


class _JumpingSelector(selectors.SelectSelector):
    """Never waits: a wait for ``timeout`` seconds moves the clock on by that much."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("virtual loop: nothing scheduled (a deadlock)")
        if timeout > 0:
            self._clock.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: _Clock) -> None:
        super().__init__(_JumpingSelector(clock))
        self._vclock = clock

    def time(self) -> float:
        return self._vclock.now


# -- the workload ----------------------------------------------------------------------------


def _tone(rate: int, ms: int, amp: int = 6000) -> bytes:
    n = rate * ms // 1000
    return b"".join(
        struct.pack(
            "<h", int(amp * sum(math.sin(2 * math.pi * 180 * k * i / rate) / k for k in (1, 2, 3)))
        )
        for i in range(n)
    )


def _caller_frames() -> list[str]:
    from gemini_live.audio import pcm16_to_ulaw

    ulaw = pcm16_to_ulaw(_tone(8000, 100) + bytes(8000 * 200 // 1000 * 2))
    return [
        json.dumps(
            {
                "event": "media",
                "streamSid": SID,
                "media": {"payload": base64.b64encode(ulaw[i : i + 160]).decode()},
            }
        )
        for i in range(0, len(ulaw), 160)
    ]


class StubSession:
    """Takes what the bridge sends upstream; counts it."""

    def __init__(self) -> None:
        self.audio_bytes = 0
        self.chunks = 0
        self.activity = 0

    async def send_audio(self, pcm: object, *, sample_rate: int | None = None) -> None:
        self.send_audio_nowait(pcm, sample_rate=sample_rate)

    def send_audio_nowait(self, pcm: object, *, sample_rate: int | None = None) -> bool:
        assert isinstance(pcm, bytes | bytearray)
        self.audio_bytes += len(pcm)
        self.chunks += 1
        return True

    async def send_activity_start(self) -> None:
        self.activity += 1

    async def send_activity_end(self) -> None:
        self.activity += 1

    async def send_audio_stream_end(self) -> None:
        self.activity += 1


class Phone:
    """The carrier's side of one call: an inbox the bridge receives from, and a send
    that counts frames and echoes marks.

    It offers the inbound extension (``ON_MESSAGE_EXTENSION``) as the library's server
    does: while the bridge waits in ``receive()`` with nothing queued, a message goes to
    its handler at once (True: handled; False: queued as usual; an exception comes out
    of the next ``receive()``)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.media_out = 0
        self.media_messages = 0
        self.marks = 0
        self.inline = 0
        self._handler: Callable[[bytes | str], bool] | None = None
        self._waiting = False
        self._error: BaseException | None = None

    def set_handler(self, handler: Callable[[bytes | str], bool] | None) -> None:
        self._handler = handler

    def deliver(self, text: str) -> None:
        """One message from the carrier, as the server's read callback passes it on."""
        handler = self._handler
        if handler is not None and self._waiting and self.inbox.empty():
            try:
                if handler(text):
                    self.inline += 1
                    return
            except Exception as exc:
                self._handler = None
                self._error = exc
                self.inbox.put_nowait({"type": "error"})
                return
        self.inbox.put_nowait({"type": "websocket.receive", "text": text})

    async def receive(self) -> dict[str, Any]:
        self._waiting = True
        try:
            msg = await self.inbox.get()
        finally:
            self._waiting = False
        if msg["type"] == "error" and self._error is not None:
            error, self._error = self._error, None
            raise error
        return msg

    async def send(self, message: MutableMapping[str, Any]) -> None:
        text = message.get("text")
        if text is not None:
            self.send_nowait(text)

    def send_nowait(self, text: bytes | str) -> bool:
        """The server's no-wait send (``SEND_NOWAIT_EXTENSION``), as the library's
        server offers it: the bridge writes through it when it can."""
        if not isinstance(text, str):
            return True
        if text.startswith('{"event":"media"'):
            # 20 ms frames (a message may carry several), and messages.
            at = text.find('"payload":"') + 11
            self.media_out += round((text.find('"', at) - at) * 3 // 4 / 160)
            self.media_messages += 1
        elif text.startswith('{"event":"mark"'):
            self.marks += 1
            name = json.loads(text)["mark"]["name"]
            echo = {"event": "mark", "streamSid": SID, "mark": {"name": name}}
            self.deliver(json.dumps(echo))
        return True


class SharedClock:
    """``--shared-clock``: one timer per tick for every call of the process, as a server
    that reads all its carriers' sockets on one loop sees them (a frame per call per
    tick), instead of a timer per call per frame and per model chunk (the bench's own
    cost, not the bridge's: ~20 % of a call-second's instructions with 20 calls). The
    frames, chunks and their virtual times are the same."""

    def __init__(self) -> None:
        self.calls: list[tuple[Phone, Any]] = []

    async def caller(self, frames: list[str], seconds: float, start: float) -> None:
        loop = asyncio.get_running_loop()
        for k in range(int(seconds / FRAME_S)):
            delay = start + k * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the carriers' 20 ms clock (virtual time)
            frame = frames[k % len(frames)]
            for phone, _ in self.calls:
                phone.deliver(frame)
        for phone, _ in self.calls:
            phone.deliver('{"event":"stop"}')

    async def model(
        self, reply: bytes, seconds: float, start: float, model_speed: float, model_chunk_ms: int
    ) -> None:
        from gemini_live import events as ev

        loop = asyncio.get_running_loop()
        chunk = ev.ModelAudio(data=reply)
        done = ev.TurnComplete()
        for at, turn_end in _model_schedule(seconds, start, model_speed, model_chunk_ms):
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the model's replies (virtual time)
            for _, call in self.calls:
                await call._events(chunk)
                if turn_end:
                    await call._events(done)


def _model_schedule(
    seconds: float, start: float, model_speed: float, model_chunk_ms: int
) -> Iterator[tuple[float, bool]]:
    """When each model chunk is due, and whether it ends a turn: turns a second apart;
    within one, chunks ``model_speed`` times faster than they play (1: each when its
    audio would start playing)."""
    chunk_s = model_chunk_ms / 1000
    per_turn = max(1, round(TURN_S / chunk_s))
    for k in range(int(seconds / chunk_s)):
        turn, j = divmod(k, per_turn)
        yield (
            start + 0.1 + turn * per_turn * chunk_s + j * chunk_s / model_speed,
            (j == per_turn - 1),
        )


async def _one_call(
    bridge: Any,
    frames: list[str],
    reply: bytes,
    seconds: float,
    totals: dict[str, int],
    inline: bool = True,
    model_speed: float = 1.0,
    model_chunk_ms: int = 40,
    shared: SharedClock | None = None,
) -> None:
    from gemini_live import _bridge
    from gemini_live import events as ev
    from gemini_live._bridge import SEND_NOWAIT_EXTENSION, PeerClose
    from gemini_live.telephony import _twilio

    phone = Phone()
    extensions: dict[str, Any] = {SEND_NOWAIT_EXTENSION: phone.send_nowait}
    on_message = getattr(_bridge, "ON_MESSAGE_EXTENSION", None)
    if inline and on_message is not None:
        extensions[on_message] = phone.set_handler
    scope = {
        "type": "websocket",
        "headers": [],
        "query_string": b"",
        "client": ("10.0.0.1", 1),
        "extensions": extensions,
    }
    call = _twilio._Call(bridge, scope, phone.receive, phone.send)
    call.info.stream_sid = SID
    bridge.calls[call.info.id] = call.info  # admitted, as _Call.admit does: a bridge of N calls
    session = StubSession()
    call._setup_input(session)
    call.session = session  # type: ignore[assignment]
    # As _Call.serve does, when this tree's bridge takes messages inline.
    if type(call).inline is not getattr(_bridge.PeerSocket, "inline", None):
        call.receive_inline()
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def caller() -> None:
        for k in range(int(seconds / FRAME_S)):
            delay = start + k * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the caller's 20 ms clock (virtual time)
            phone.deliver(frames[k % len(frames)])
        phone.deliver('{"event":"stop"}')
        await asyncio.Event().wait()  # the bridge ends the call on the stop

    async def model() -> None:
        chunk = ev.ModelAudio(data=reply)
        done = ev.TurnComplete()
        for at, turn_end in _model_schedule(seconds, start, model_speed, model_chunk_ms):
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the model's replies (virtual time)
            await call._events(chunk)
            if turn_end:
                await call._events(done)

    if shared is not None:
        shared.calls.append((phone, call))
        try:
            await call.serve_tasks(
                ("twilio-in", call._inbound(session)),  # type: ignore[arg-type]
                ("twilio-pacer", call._pacer()),
            )
        except PeerClose:
            pass  # the caller's stop
    else:
        model_task = asyncio.create_task(model())
        try:
            await call.serve_tasks(
                ("twilio-in", call._inbound(session)),  # type: ignore[arg-type]
                ("twilio-pacer", call._pacer()),
                ("caller", caller()),
            )
        except PeerClose:
            pass  # the caller's stop
        model_task.cancel()
    totals["media_out"] += phone.media_out
    totals["media_messages"] += phone.media_messages
    totals["marks"] += phone.marks
    totals["upstream_bytes"] += session.audio_bytes
    totals["upstream_chunks"] += session.chunks
    totals["inline"] += phone.inline


async def workload(
    calls: int,
    seconds: float,
    warmup: float,
    input_rate: int,
    media_ms: int | None = None,
    inline: bool = True,
    upstream_ms: int | None = None,
    model_speed: float = 1.0,
    model_chunk_ms: int = 40,
    shared_clock: bool = False,
) -> dict[str, Any]:
    from gemini_live.audio import resample
    from gemini_live.telephony import TwilioBridge

    # Only when asked: the bench also runs on a tree without the option.
    extra: dict[str, Any] = {} if media_ms is None else {"media_ms": media_ms}
    if upstream_ms is not None:
        extra["upstream_ms"] = upstream_ms
    bridge = TwilioBridge(
        lambda _c: None,  # type: ignore[arg-type,return-value]  # no session is opened
        insecure_no_signature=True,
        input_rate=input_rate,
        max_calls=calls,
        max_calls_per_address=None,
        idle_timeout=None,
        max_call_seconds=None,
        **extra,
    )
    frames = _caller_frames()
    reply = resample(_tone(16000, model_chunk_ms), 16000, 24000)
    keys = ("media_out", "media_messages", "marks", "upstream_bytes", "upstream_chunks", "inline")
    totals = dict.fromkeys(keys, 0)
    loop = asyncio.get_running_loop()
    window: dict[str, float] = {}

    async def marks() -> None:
        await asyncio.sleep(warmup)  # virtual time
        gc.collect()
        window["cpu0"] = time.process_time()
        os.getppid()  # bench.instructions.START_MARK: callgrind zeroes its counters here
        await asyncio.sleep(seconds)  # the window (virtual time)
        os.getpgrp()  # bench.instructions.STOP_MARK: callgrind dumps the window here
        window["cpu"] = time.process_time() - window["cpu0"]

    t0 = loop.time()
    mark_task = asyncio.create_task(marks())
    shared = SharedClock() if shared_clock else None
    clocks: list[asyncio.Task[None]] = []
    if shared is not None:
        span = warmup + seconds + 0.5
        clocks.append(asyncio.create_task(shared.caller(frames, span, t0)))
        clocks.append(
            asyncio.create_task(shared.model(reply, span, t0, model_speed, model_chunk_ms))
        )
    await asyncio.gather(
        *(
            _one_call(
                bridge,
                frames,
                reply,
                warmup + seconds + 0.5,
                totals,
                inline,
                model_speed,
                model_chunk_ms,
                shared,
            )
            for _ in range(calls)
        )
    )
    for task in clocks:
        task.cancel()
    await asyncio.gather(*clocks, return_exceptions=True)
    await mark_task
    total_s = loop.time() - t0
    return {
        "calls": calls,
        "input_rate": input_rate,
        "media_ms": media_ms,
        "upstream_ms": upstream_ms,
        "model_speed": model_speed,
        "model_chunk_ms": model_chunk_ms,
        "shared_clock": shared_clock,
        "window_call_seconds": calls * seconds,
        "cpu_s": window["cpu"],
        "per_call_second": {k: round(v / (calls * total_s), 1) for k, v in totals.items()},
    }


def run(
    calls: int,
    seconds: float,
    warmup: float,
    input_rate: int,
    profile: str | None,
    media_ms: int | None = None,
    inline: bool = True,
    upstream_ms: int | None = None,
    model_speed: float = 1.0,
    model_chunk_ms: int = 40,
    shared_clock: bool = False,
) -> Any:
    from gemini_live import _bridge
    from gemini_live.telephony import _twilio

    clock = _Clock()
    # The bridge's own clock (the inbound rate meter, idle stamps) follows the loop's.
    fake_time = types.SimpleNamespace(monotonic=clock.time, time=time.time)
    modules = (_twilio, _bridge)
    real_time = time
    for m in modules:
        setattr(m, "time", fake_time)  # noqa: B010
    loop = VirtualLoop(clock)
    prof: Any = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    try:
        coro = workload(
            calls,
            seconds,
            warmup,
            input_rate,
            media_ms,
            inline,
            upstream_ms,
            model_speed,
            model_chunk_ms,
            shared_clock,
        )
        if prof is not None:
            prof.enable()
        result = loop.run_until_complete(coro)
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
    finally:
        loop.close()
        for m in modules:
            setattr(m, "time", real_time)  # noqa: B010
    result["cpu_pct_per_call"] = round(result["cpu_s"] / result["window_call_seconds"] * 100, 4)
    return result


def callgrind(
    calls: int,
    seconds: float,
    warmup: float,
    input_rate: int,
    media_ms: int | None = None,
    inline: bool = True,
    upstream_ms: int | None = None,
    model_speed: float = 1.0,
    model_chunk_ms: int = 40,
    shared_clock: bool = False,
) -> int:
    """Instructions of the window, counted by callgrind in a child process (the runner
    of the W1 gate, :func:`bench.instructions.callgrind`)."""
    from bench.instructions import GateError
    from bench.instructions import callgrind as run_callgrind

    args = ["--calls", str(calls), "--seconds", str(seconds), "--warmup", str(warmup)]
    args += ["--input-rate", str(input_rate), "--child"]
    if media_ms is not None:
        args += ["--media-ms", str(media_ms)]
    if not inline:
        args.append("--no-inline")
    if upstream_ms is not None:
        args += ["--upstream-ms", str(upstream_ms)]
    model = ""
    if model_speed != 1.0 or model_chunk_ms != 40:
        args += ["--model-speed", str(model_speed), "--model-chunk-ms", str(model_chunk_ms)]
        model = f".model{model_speed:g}x{model_chunk_ms}"
    if shared_clock:
        args.append("--shared-clock")
        model += ".shared"
    try:
        ir, _ = run_callgrind(
            "bench.bridge_cost",
            args,
            "bridge_cost",
            keep_as=(
                f"callgrind.bridge.{input_rate}.{media_ms or 'default'}.{int(inline)}"
                f".{upstream_ms or 'default'}{model}.out"
            ),
            timeout=1800,
        )
    except GateError as exc:
        raise SystemExit(str(exc)) from None
    return ir


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bridge_cost")
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0, help="window, virtual seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="virtual seconds before it")
    p.add_argument("--input-rate", type=int, default=None, help="the bridge's input_rate")
    p.add_argument("--media-ms", type=int, default=None, help="the bridge's media_ms")
    p.add_argument("--upstream-ms", type=int, default=None, help="the bridge's upstream_ms")
    p.add_argument(
        "--no-inline",
        action="store_true",
        help="a server without the inbound extension (every message the ASGI way)",
    )
    p.add_argument(
        "--model-speed",
        type=float,
        default=1.0,
        help="each turn's audio this many times faster than real time (default 1: paced)",
    )
    p.add_argument(
        "--model-chunk-ms", type=int, default=40, help="the model's audio chunks (ms, default 40)"
    )
    p.add_argument(
        "--shared-clock",
        action="store_true",
        help="one timer per tick for all calls' carriers and model (not one per call)",
    )
    p.add_argument("--callgrind", action="store_true", help="count instructions (valgrind)")
    p.add_argument("--profile", metavar="FILE", help="cProfile the run into FILE")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.model_speed >= 1.0:
        p.error("--model-speed must be at least 1 (real time)")
    if not 10 <= args.model_chunk_ms <= 1000:
        p.error("--model-chunk-ms must be between 10 and 1000")
    rate: int = args.input_rate if args.input_rate is not None else _default_input_rate()
    if args.callgrind:
        inline = not args.no_inline
        ir = callgrind(
            args.calls,
            args.seconds,
            args.warmup,
            rate,
            args.media_ms,
            inline,
            args.upstream_ms,
            args.model_speed,
            args.model_chunk_ms,
            args.shared_clock,
        )
        per = ir / (args.calls * args.seconds)
        out = {"input_rate": rate, "media_ms": args.media_ms, "inline": inline}
        out["upstream_ms"] = args.upstream_ms
        if args.model_speed != 1.0 or args.model_chunk_ms != 40:
            out |= {"model_speed": args.model_speed, "model_chunk_ms": args.model_chunk_ms}
        if args.shared_clock:
            out["shared_clock"] = True
        print(json.dumps(out | {"instructions_per_call_second": round(per)}))
        return 0
    result = run(
        args.calls,
        args.seconds,
        args.warmup,
        rate,
        args.profile,
        args.media_ms,
        not args.no_inline,
        args.upstream_ms,
        args.model_speed,
        args.model_chunk_ms,
        args.shared_clock,
    )
    print(("RESULT " if args.child else "") + json.dumps(result))
    return 0


def _default_input_rate() -> int:
    from gemini_live.telephony import TwilioBridge

    bridge = TwilioBridge(lambda _c: None, insecure_no_signature=True)  # type: ignore[arg-type,return-value]
    return bridge.input_rate


_: Callable[..., Any] = main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
