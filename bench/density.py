"""Density and latency under load: bare sessions, the browser relay, the Twilio bridge.

    python -m bench.density                       # both parts, default sizes
    python -m bench.density --levels 100,200,300 --load ""   # density only
    python -m bench.density --levels "" --load 10,50,80      # latency under load only

Three processes per measurement: the benchmark server (``bench.server``, its paced ``w2``
path: from the first audio chunk on, 25 replies of 40 ms of 24 kHz audio per second per
session, each stamped ``t=<time.monotonic() at send>`` in its ``outputTranscription``,
``turnComplete`` after every 25), the process measured (this one: the sessions, the
relay or the bridge) and, for the relay and the bridge, a child process of clients.

* ``floor``: N bare sessions (``session.on_event``) in the measured process, one clock
  sending each a 20 ms chunk of 16 kHz PCM every 20 ms (speech and silence).
* ``relay``: the browser relay (default VAD turn detection) with N synthetic browsers
  speaking the page's protocol: 40 ms PCM frames in real time as the page sends them
  (``--page-ms 20``: older pages' 20 ms frames), an utterance every 300 ms, model audio
  and transcripts back.
* ``relay-20``: the same relay with browsers sending 20 ms frames whatever
  ``--page-ms`` says (older pages): ``--interleave`` compares the two shapes.
* ``relay-asgi``: the same relay with the server's inline receive
  (``gemini_live.on_message``) taken out of the scope, so every inbound frame goes
  through uvicorn's queue and the relay's task, as under another server (and as before
  the inline path): run both with ``--interleave`` to compare them in one run.
* ``bridge``: the Twilio bridge (default VAD) with N synthetic calls: 20 ms mu-law media
  messages in real time; the bridge paces the model's audio out as 20 ms media frames,
  the caller echoes the marks.
* ``bridge-asgi``: the same bridge with the server's inline receive taken out of the
  scope (every carrier message through uvicorn's queue and the bridge's task, as under
  another server and as before the inline path): ``--interleave`` compares the two.
* ``bridge-up20``: the bridge writing each 20 ms carrier frame upstream at once
  (``upstream_ms=20``, the behaviour before larger writes became the default):
  ``--interleave`` with ``bridge`` compares the two.
* ``bridge-fast``: the bridge against the server's ``w2f`` workload: the model's audio
  in turns delivered 4x faster than real time (as the Live API sends it), with ``w2t``'s
  pauses, instead of ``w2``'s real-time 40 ms chunks (the worst case for batching):
  ``--interleave`` with ``bridge`` compares the two regimes. The calls' turns are spread
  over the turn cycle, as independent calls' are.
* ``bridge-fast-aligned``: ``bridge-fast`` with every call's turns starting in the same
  40 ms (the server's ``w2fa``): all bursts at once, the worst case.

**Density**: for each kind, N grows over ``--levels`` (with ``--interleave`` level by
level, every kind at each, so slow drifts of a shared machine hit all alike) until the
measured process falls out of real time: its event-loop lag p99 (a 5 ms sleeper) reaches
20 ms, or the clients get under 90 % of the audio due (or the floor's sessions
under 90 % of their replies), or a level fails. One process uses one core, so the
largest N in real time is "per core". Every level is one line of JSON.

Each window also says why a level fails (cheap, always on): the garbage collections in it
per generation (count, longest and total pause; ``gc.callbacks``), the loop-lag tail
(p99.9, max, the largest ten, the samples over 20 ms and how many of those overlap a
collection over 5 ms), what the full collection before the window took and how many
objects it walked (``gc_tracked``: per connection by difference between levels), the
machine's busy share (every core) and the benchmark server's and the clients' CPU (a
starved peer sends in bursts). ``--loop uvloop`` runs the measured process on uvloop.

**Latency under load**: ``--load-n`` connections of each kind with a CPU burner task on
the measured loop (every 10 ms it spins ``U`` % of the period; the table shows the share
it really took). Per kind, p50/p99 of

* *frame -> event*: the server's send stamp to the app's ``on_event`` callback (for the
  relay and the bridge, a listener their ``on_session`` hook adds), every frame;
* *first audio -> socket*: the stamp of the first frame of each reply to the moment the
  endpoint writes that reply's first audio to the browser's (binary message) or the
  phone's (``media`` message) socket, measured in the ASGI ``send`` the server passes.
  The bridge is timed against the server's ``w2t`` workload (turn by turn: a 400 ms
  pause after each ``turnComplete``), so a reply never waits behind the
  real-time playout of the previous one: the figure is what the bridge adds (decode,
  resample, encode, the pacer's wake-up), not the length of the audio queued ahead.

The clock is ``time.monotonic`` in both processes (one system clock on Linux).

**The clients and the placement.** The synthetic browsers and calls are
:mod:`bench.loadgen`'s (``--clients loadgen``, the default): raw protocol connections,
frames masked once and reused, one timer per time slot for all the connections in it;
``--clients websockets`` runs the previous clients (the ``websockets`` client, a task and
a sleep per connection and frame) for comparison. The clients run on uvloop where it is
installed (``--clients-loop``). ``--pin`` (the default with two CPUs
or more; ``--no-pin`` turns it off) puts the measured process alone on the last CPU
(``os.sched_setaffinity``, every thread) and the benchmark server and the clients on
the others: "per core" means what one core holds when the browsers, the phones and the
model are elsewhere, as in a deployment, and not what is left of a core that the load
generator shares. Each row records its ``placement`` (pinned or not, the CPUs of the
measured process and of its peers), the server's and the clients' CPU % (100 = one
core), their sum (``peers_cpu_pct``) and ``peers_starved`` (pinned, and the peers used
90 % or more of their CPUs: they sent late, the level says little).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import math
import multiprocessing
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping, Sequence
from pathlib import Path
from typing import Any, Final

import gemini_live as gl
from bench.common import W2_TURN_EVERY, live_url, parse_stamp, uvloop_available
from bench.procs import ServerProc
from bench.server import W2T_PAUSE
from gemini_live import events as ev
from gemini_live._bridge import ON_MESSAGE_EXTENSION, SEND_NOWAIT_EXTENSION
from gemini_live.audio import pcm16_to_ulaw, resample

KINDS: Final = (
    "floor",
    "relay",
    "relay-20",
    "relay-asgi",
    "bridge",
    "bridge-asgi",
    "bridge-up20",
    "bridge-fast",
    "bridge-fast-aligned",
)
RATE: Final = 16000
FRAME_MS: Final = 20
#: The synthetic clients (``--clients``) and the CPU placement (``--pin``) of a run.
RUN_OPTIONS: Final[dict[str, Any]] = {"clients": "loadgen", "pin": False, "clients_loop": "asyncio"}
#: The frames the relay's synthetic browsers send (``--page-ms``): the page's 40 ms.
RELAY_OPTIONS: Final[dict[str, int]] = {"page_ms": 40}
LAG_LIMIT_MS: Final = 20.0
#: Seconds between the collection before a window and the window: a full collection over
#: hundreds of connections stops the loop for tens of milliseconds, and the clocks it
#: delayed catch up over the next ones; a window opened at once counted that as lag.
SETTLE_S: Final = 0.5
#: Audio messages per second a client gets: the relay forwards the server's 25 replies;
#: the bridge re-frames them as 50 frames of 20 ms.
AUDIO_HZ: Final = {
    "relay": 25.0,
    "relay-20": 25.0,
    "relay-asgi": 25.0,
    "bridge": 50.0,
    "bridge-asgi": 50.0,
    "bridge-up20": 50.0,
    "bridge-fast": 50.0,
    "bridge-fast-aligned": 50.0,
    "floor": 25.0,
}
AUTH_TOKEN: Final = "bench-auth-token"  # the bridge's upgrade is signed as Twilio signs it
SID: Final = "MZ" + "0" * 32


def _speech(ms: int) -> bytes:
    n = RATE * ms // 1000
    return b"".join(
        struct.pack(
            "<h", int(6000 * sum(math.sin(2 * math.pi * 180 * k * i / RATE) / k for k in (1, 2, 3)))
        )
        for i in range(n)
    )


#: 100 ms of speech and 200 ms of silence: the VAD ends an utterance every 300 ms.
UTTERANCE: Final = _speech(100) + bytes(RATE * 200 // 1000 * 2)
FRAMES: Final = [UTTERANCE[i : i + 640] for i in range(0, len(UTTERANCE), 640)]
_ULAW = pcm16_to_ulaw(resample(UTTERANCE, RATE, 8000))
ULAW_FRAMES: Final = [_ULAW[i : i + 160] for i in range(0, len(_ULAW), 160)]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# -- what the measured process records ---------------------------------------------------


class Probe:
    """Latencies of one measurement (recorded while :attr:`on`)."""

    def __init__(self) -> None:
        self.on = False
        self.event_ms: list[float] = []
        self.socket_ms: list[float] = []
        self.audio_events = 0
        self.tracks: dict[str, Track] = {}

    def track(self, key: str) -> Track:
        t = self.tracks.get(key)
        if t is None:
            t = self.tracks[key] = Track(self)
        return t


class Track:
    """One connection: the reply starts seen as events, paired in order with the first
    audio the endpoint wrote for each reply."""

    __slots__ = ("new_reply", "probe", "sends", "sock_new_reply", "stamps")

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.new_reply = True
        self.sock_new_reply = True
        self.stamps: deque[float] = deque(maxlen=64)
        self.sends: deque[float] = deque(maxlen=64)

    def on_event(self, event: ev.Event) -> None:
        now = time.monotonic()
        probe = self.probe
        t = type(event)
        if isinstance(event, ev.OutputTranscription):
            stamp = parse_stamp(event.text)
            if probe.on:
                probe.event_ms.append((now - stamp) * 1000)
            if self.new_reply:
                self.new_reply = False
                self.stamps.append(stamp)
                self._pair()
        elif t is ev.ModelAudio:
            probe.audio_events += 1
        elif t is ev.TurnComplete:
            self.new_reply = True

    def first_audio_sent(self) -> None:
        self.sends.append(time.monotonic())
        self._pair()

    def _pair(self) -> None:
        stamps, sends = self.stamps, self.sends
        while stamps and sends:
            stamp, sent = stamps.popleft(), sends.popleft()
            if self.probe.on:
                self.probe.socket_ms.append((sent - stamp) * 1000)


def _warmup(n: int) -> float:
    return 1.0 + n * 0.004


def _relay_seen(track: Track, data: bytes | str | None, text: str | None) -> None:
    if data is not None:
        if track.sock_new_reply:
            track.sock_new_reply = False
            track.first_audio_sent()
    elif '"turn_complete"' in (text or ""):
        track.sock_new_reply = True


def _relay_send(track: Track, send: Callable[[Any], Awaitable[None]]) -> Any:
    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message.get("type") == "websocket.send":
            _relay_seen(track, message.get("bytes"), message.get("text"))
        await send(message)

    return wrapped


def _relay_nowait(track: Track, nowait: Callable[[bytes | str], bool]) -> Any:
    """The same observation on the server's no-wait send (the relay's usual path)."""

    def wrapped(data: bytes | str) -> bool:
        if not nowait(data):
            return False
        if isinstance(data, str):
            _relay_seen(track, None, data)
        else:
            _relay_seen(track, data, None)
        return True

    return wrapped


def _bridge_seen(track: Track, info: Callable[[], Any], started: list[int], text: Any) -> None:
    if isinstance(text, str) and text.startswith('{"event":"media"'):
        call = info()
        nxt = started[0] + 1
        if call is not None and call.sent_ms.get(nxt) == 0:
            started[0] = nxt  # the first frame of reply nxt
            track.first_audio_sent()


def _bridge_send(
    track: Track, info: Callable[[], Any], send: Any, started: list[int] | None = None
) -> Any:
    started = [0] if started is None else started

    async def wrapped(message: MutableMapping[str, Any]) -> None:
        _bridge_seen(track, info, started, message.get("text"))
        await send(message)

    return wrapped


def _bridge_nowait(
    track: Track, info: Callable[[], Any], nowait: Callable[[bytes | str], bool], started: list[int]
) -> Any:
    """The same observation on the server's no-wait send (the bridge's usual path)."""

    def wrapped(data: bytes | str) -> bool:
        if not nowait(data):
            return False
        _bridge_seen(track, info, started, data)
        return True

    return wrapped


#: Extra ``TwilioBridge`` arguments (``--bridge-media-ms``).
BRIDGE_OPTIONS: dict[str, Any] = {}


class Burner:
    """Keeps the loop busy ``share`` of the time: spins that part of every 10 ms."""

    def __init__(self, share: float, period: float = 0.010) -> None:
        self.share = share
        self.period = period
        self.busy = 0.0
        self._start = time.perf_counter()

    async def run(self) -> None:
        """Wake every ``period``; spin until the busy time since the start reaches
        ``share`` of the time elapsed (so the share holds on average, whatever the
        timer's overshoot and the other work on the loop)."""
        if self.share <= 0:
            return
        self.reset()
        while True:
            t0 = time.perf_counter()
            owed = min(self.share * (t0 - self._start) - self.busy, 2 * self.period)
            while time.perf_counter() - t0 < owed:
                pass
            self.busy += time.perf_counter() - t0
            await asyncio.sleep(self.period * (1 - self.share))  # the burner's pacing

    def reset(self) -> None:
        """Count from now (the measurement window)."""
        self._start = time.perf_counter()
        self.busy = 0.0


#: When each loop-lag sample ended (``time.monotonic``), beside its lag in ``lags``.
_LAG_ENDS: list[float] = []


async def _loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    ends = _LAG_ENDS
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.005)  # the probe itself: how late a 5 ms timer fires
        now = loop.time()
        lags.append((now - t - 0.005) * 1000)
        ends.append(time.monotonic())


class GcWatch:
    """The garbage collections of a window (``gc.callbacks``): per generation how many
    ran, the longest and the total pause, and when each long one ran (to tell a loop-lag
    spike a collection caused from a loop that is simply full). Two clock reads and a
    list append per collection: always on."""

    #: Collections longer than this (ms) are kept with their time, for the lag tail.
    LONG_MS: Final = 5.0

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.longest_ms = [0.0, 0.0, 0.0]
        self.total_ms = [0.0, 0.0, 0.0]
        #: (start, end, generation) of the collections over LONG_MS (bounded).
        self.long: deque[tuple[float, float, int]] = deque(maxlen=1000)
        self._start = 0.0
        self.on = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._start = time.monotonic()
            return
        end = time.monotonic()
        gen = info["generation"]
        ms = (end - self._start) * 1000
        self.count[gen] += 1
        self.total_ms[gen] += ms
        if ms > self.longest_ms[gen]:
            self.longest_ms[gen] = ms
        if ms > self.LONG_MS:
            self.long.append((self._start, end, gen))

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.longest_ms = [0.0, 0.0, 0.0]
        self.total_ms = [0.0, 0.0, 0.0]
        self.long.clear()

    def report(self, lags: list[float], ends: list[float], wall: float) -> dict[str, Any]:
        """The window's collections, and the loop-lag tail: samples over the 20 ms limit,
        and how many of them overlap a collection over ``LONG_MS`` (the sample spans
        ``end - 5 ms - lag`` to ``end``)."""
        over = [(lag, end) for lag, end in zip(lags, ends, strict=False) if lag >= LAG_LIMIT_MS]
        by_gc = 0
        for lag, end in over:
            start = end - (lag + 5.0) / 1000
            if any(s < end and e > start for s, e, _g in self.long):
                by_gc += 1
        ordered = sorted(lags)
        return {
            "gc_collections": list(self.count),
            "gc_longest_ms": [round(x, 2) for x in self.longest_ms],
            "gc_total_ms": [round(x, 1) for x in self.total_ms],
            "gc_pause_pct": round(sum(self.total_ms) / max(wall, 1e-9) / 10, 2),
            "gc_long": len(self.long),
            "loop_lag_p999_ms": round(pct(lags, 0.999), 2),
            "loop_lag_max_ms": round(ordered[-1], 2) if ordered else float("nan"),
            "loop_lag_samples": len(lags),
            "loop_lag_over_limit": len(over),
            "loop_lag_over_limit_in_gc": by_gc,
            # The largest ten lags (ms): a few spikes, or a loop late all the time?
            "loop_lag_top": [round(x, 1) for x in ordered[-10:][::-1]],
        }


_GC: Final = GcWatch()
gc.callbacks.append(_GC)


# -- clients (child process) --------------------------------------------------------------


#: The synthetic clients (``--clients``): ``loadgen`` (:mod:`bench.loadgen`, the default)
#: or ``websockets`` (a task per connection, as before: for comparison).
CLIENTS: Final = ("loadgen", "websockets")


def _call_start(i: int) -> str:
    """A synthetic call's Twilio ``start`` message."""
    fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    start = {"streamSid": SID, "mediaFormat": fmt, "callSid": f"CA{i:032d}"}
    return json.dumps({"event": "start", "streamSid": SID, "start": start})


def _media_messages() -> list[str]:
    """The calls' 20 ms ``media`` messages (the utterance in mu-law)."""
    return [
        json.dumps(
            {
                "event": "media",
                "streamSid": SID,
                "media": {"payload": base64.b64encode(f).decode()},
            }
        )
        for f in ULAW_FRAMES
    ]


def _page_frames(page_ms: int) -> list[bytes]:
    """The page's PCM frames of ``page_ms`` (the utterance)."""
    step = RATE * page_ms // 1000 * 2
    return [UTTERANCE[k : k + step] for k in range(0, len(UTTERANCE), step)]


def _clients(
    kind: str,
    url: str,
    origin: str,
    n: int,
    seconds: float,
    result: Any,
    window: Any,
    page_ms: int = FRAME_MS,
    impl: str = "loadgen",
    loop: str = "asyncio",
    ended: Any = None,
) -> None:
    """Child process: n browsers (``page_ms`` frames) or phone calls (20 ms frames)
    streaming in real time (``impl``: one of :data:`CLIENTS`; ``loop``: ``asyncio`` or
    ``uvloop``) until after the measured process's window (``ended``, which it sets:
    that window starts later than the clients' own, after a full collection and the
    settle, so connections closed at the end of the clients' window would close in
    it)."""
    from bench.common import run_loop

    if impl == "loadgen":
        result.update(_loadgen_clients(kind, url, origin, n, seconds, window, page_ms, loop, ended))
        return

    async def browser(i: int, stats: dict[str, float], stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect
        from websockets.typing import Origin

        async with connect(f"{url}?c={i}", origin=Origin(origin), max_queue=None) as ws:
            while json.loads(await ws.recv())["type"] != "ready":
                pass

            async def reader() -> None:
                async for msg in ws:
                    if isinstance(msg, bytes) and stats["on"]:
                        stats["audio"] += 1

            await _paced(ws, _page_frames(page_ms), i, stats, reader, stop, page_ms)

    async def call(i: int, stats: dict[str, float], stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        from gemini_live.telephony import twilio_signature

        full = f"{url}?c={i}"
        headers = {"X-Twilio-Signature": twilio_signature(AUTH_TOKEN, full)}
        async with connect(full, additional_headers=headers, max_queue=None) as ws:
            await ws.send(_call_start(i))
            media = _media_messages()

            async def reader() -> None:
                async for msg in ws:
                    assert isinstance(msg, str)  # the bridge sends JSON text
                    if '"media"' in msg[:20]:
                        if stats["on"]:  # 20 ms frames (a message may carry several)
                            at = msg.find('"payload":"') + 11
                            stats["audio"] += round((msg.find('"', at) - at) * 3 // 4 / 160)
                    elif '"mark"' in msg[:20]:
                        m = json.loads(msg)
                        await ws.send(
                            json.dumps({"event": "mark", "streamSid": SID, "mark": m["mark"]})
                        )

            await _paced(ws, media, i, stats, reader, stop)

    async def main() -> None:
        stats = {"on": 0.0, "audio": 0.0, "frames": 0.0, "late_frames": 0.0, "errors": 0.0}
        stop = asyncio.Event()
        one = browser if kind.startswith("relay") else call

        async def guarded(i: int) -> None:
            try:
                await one(i, stats, stop)
            except Exception as exc:
                stats["errors"] += 1
                if stats["errors"] == 1:
                    print(f"client {i}: {exc!r}", file=sys.stderr, flush=True)

        tasks = [asyncio.create_task(guarded(i)) for i in range(n)]
        await asyncio.sleep(_warmup(n))  # every connection open and talking
        window.set()  # the measured process starts its window too, after its settle
        await asyncio.sleep(SETTLE_S)
        stats["on"] = 1.0
        t0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.sleep(seconds)
        stats["on"] = 0.0
        stats["window_s"] = time.monotonic() - t0
        stats["cpu_s"] = time.process_time() - cpu0
        if ended is not None:
            from bench.loadgen import HOLD_S

            await asyncio.to_thread(ended.wait, HOLD_S)
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
        result.update(stats)

    run_loop(main, loop)


def _loadgen_signed(full: str) -> list[tuple[str, str]]:
    """A call's upgrade headers: the signature Twilio computes for ``full`` (its URL)."""
    from gemini_live.telephony import twilio_signature

    return [("X-Twilio-Signature", twilio_signature(AUTH_TOKEN, full))]


def _loadgen_clients(
    kind: str,
    url: str,
    origin: str,
    n: int,
    seconds: float,
    window: Any,
    page_ms: int,
    loop: str = "asyncio",
    ended: Any = None,
) -> dict[str, float]:
    """:func:`_clients` on :mod:`bench.loadgen`: the same connections, frames and
    statistics, at a fraction of the CPU."""
    from bench import loadgen
    from bench.common import run_loop

    if kind.startswith("relay"):
        plan = loadgen.Plan(
            url, n, _page_frames(page_ms), page_ms, browser=True, origin=origin, gc_freeze=True
        )
    else:
        media = [m.encode() for m in _media_messages()]
        plan = loadgen.Plan(
            url,
            n,
            media,
            FRAME_MS,
            browser=False,
            headers=_loadgen_signed,
            start=_call_start,
            sid=SID,
            gc_freeze=True,
        )

    async def main() -> loadgen.Stats:
        return await loadgen.run(plan, seconds, _warmup(n), SETTLE_S, window, ended)

    return loadgen.report(run_loop(main, loop))


async def _paced(
    ws: Any,
    frames: list[Any],
    i: int,
    stats: dict[str, float],
    reader: Callable[[], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
    period_ms: int = FRAME_MS,
) -> None:
    rt = asyncio.create_task(reader())
    loop = asyncio.get_running_loop()
    start = loop.time() + (i % 50) * 0.0004
    k = 0
    try:
        while not stop.is_set():
            due = start + k * period_ms / 1000
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # real-time pacing of the microphone
            elif stats["on"]:
                stats["late_frames"] += delay < -period_ms / 1000
            await ws.send(frames[k % len(frames)])
            if stats["on"]:
                stats["frames"] += 1
            k += 1
    finally:
        rt.cancel()


# -- the measured process ----------------------------------------------------------------


def _relay_app(upstream: str, probe: Probe, inline: bool = True) -> Any:
    from gemini_live.web import Relay, RelayLimits, create_app

    def config(_c: Any) -> gl.SessionConfig:
        return gl.build_config(url=upstream, output_audio_transcription=True)

    def on_session(session: gl.Session, conn: Any) -> None:
        session.on_event(probe.track(conn.query.get("c", "")).on_event)

    limits = RelayLimits(
        max_connections=10_000, max_connections_per_address=None, turns_per_minute=None
    )
    relay = Relay(config, authorize=Relay.ALLOW_ANYONE, on_session=on_session, limits=limits)
    app = create_app(relay, page=False)

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            key = _query_c(scope)
            track = probe.track(key)
            send = _relay_send(track, send)
            extensions = scope.get("extensions") or {}
            if not inline:  # relay-asgi: inbound frames the ASGI way only
                extensions.pop(ON_MESSAGE_EXTENSION, None)
            nowait = extensions.get(SEND_NOWAIT_EXTENSION)
            if nowait is not None:
                extensions[SEND_NOWAIT_EXTENSION] = _relay_nowait(track, nowait)
        await app(scope, receive, send)

    wrapped.state = app.state  # type: ignore[attr-defined]  # running() sizes uvicorn from it
    return wrapped


def _query_c(scope: Any) -> str:
    for part in scope.get("query_string", b"").decode().split("&"):
        if part.startswith("c="):
            return str(part[2:])
    return ""


def _bridge_app(
    upstream: str, probe: Probe, inline: bool = True, options: dict[str, Any] | None = None
) -> Any:
    from gemini_live.telephony import TwilioBridge

    def config(_c: Any) -> gl.SessionConfig:
        return gl.build_config(url=upstream, output_audio_transcription=True)

    calls: dict[str, Any] = {}

    def on_session(session: gl.Session, call: Any) -> None:
        key = call.query.get("c", "")
        calls[key] = call
        session.on_event(probe.track(key).on_event)

    bridge = TwilioBridge(
        config,
        auth_token=AUTH_TOKEN,
        on_session=on_session,
        max_calls=10_000,
        max_calls_per_address=None,
        **(BRIDGE_OPTIONS | (options or {})),
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            key = _query_c(scope)
            track = probe.track(key)
            started = [0]  # replies whose first frame was seen, both paths together

            def info() -> Any:
                return calls.get(key)

            send = _bridge_send(track, info, send, started)
            extensions = scope.get("extensions") or {}
            if not inline:  # bridge-asgi: carrier messages the ASGI way only
                extensions.pop(ON_MESSAGE_EXTENSION, None)
            nowait = extensions.get(SEND_NOWAIT_EXTENSION)
            if nowait is not None:
                extensions[SEND_NOWAIT_EXTENSION] = _bridge_nowait(track, info, nowait, started)
            await bridge(scope, receive, send)
            calls.pop(key, None)
        elif scope["type"] == "lifespan":
            return

    return app


async def _floor(upstream: str, n: int, probe: Probe, stop: asyncio.Event) -> int:
    """n bare sessions streaming paced audio from one clock; returns replies/s due."""
    sessions: list[gl.Session] = []
    for i in range(n):
        config = gl.build_config(url=upstream, output_audio_transcription=True, main_stream=False)
        session = gl.Session(config)
        session.on_event(probe.track(str(i)).on_event)
        async with asyncio.timeout(30):
            await session.__aenter__()
        sessions.append(session)
    loop = asyncio.get_running_loop()
    period = FRAME_MS / 1000
    phases = 4
    buckets = [sessions[i::phases] for i in range(phases)]
    sched = loop.time()
    k = 0
    try:
        while not stop.is_set():
            delay = sched - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the shared microphone clock
            frame = FRAMES[(k // phases) % len(FRAMES)]
            for s in buckets[k % phases]:
                await s.send_audio(frame, sample_rate=RATE)
            k += 1
            sched += period / phases
    finally:
        for s in sessions:
            async with asyncio.timeout(10):
                await s.close()
    return 0


async def measure(
    kind: str,
    n: int,
    seconds: float,
    load: float = 0.0,
    *,
    framing: str = "service",
    workload: str = "w2",
    clients: str | None = None,
) -> dict[str, Any]:
    """One measurement: n connections of ``kind`` for ``seconds`` (after 1 s warm-up);
    ``workload`` is the server's: ``w2`` (the model talks all the time) or ``w2t`` (turn
    by turn, a 400 ms pause after each); ``clients``: one of :data:`CLIENTS` (default
    ``RUN_OPTIONS["clients"]``)."""
    clients = clients or RUN_OPTIONS["clients"]
    from gemini_live.web import running

    probe = Probe()
    lags: list[float] = []
    stop = asyncio.Event()
    burner = Burner(load / 100)
    row: dict[str, Any] = {"kind": kind, "n": n, "workload": workload}
    if kind != "floor":
        row["clients"] = clients
        row["clients_loop"] = RUN_OPTIONS["clients_loop"]
    place = _placement(RUN_OPTIONS["pin"])
    row["placement"] = place
    with ServerProc(framing=framing) as server:
        _PEERS.clear()
        _PEERS["server"] = server.pid
        _pin(place, server=server.pid)
        upstream = live_url(server.port, workload)
        loop = asyncio.get_running_loop()
        lag_task = loop.create_task(_loop_lag(lags, asyncio.Event()))
        burn_task = loop.create_task(burner.run())
        try:
            if kind == "floor":
                work = loop.create_task(_floor(upstream, n, probe, stop))
                await asyncio.sleep(_warmup(n))
                window = await _window(probe, lags, burner, seconds)
                stop.set()
                async with asyncio.timeout(60):
                    await work
                due = n * 25.0 * window["window_s"]
                got = window["audio_events"]
            else:
                relay = kind.startswith("relay")
                page_ms = 20 if kind == "relay-20" else RELAY_OPTIONS["page_ms"]
                app = (
                    _relay_app(upstream, probe, inline=kind != "relay-asgi")
                    if relay
                    else _bridge_app(
                        upstream,
                        probe,
                        inline=kind != "bridge-asgi",
                        options={"upstream_ms": 20} if kind == "bridge-up20" else None,
                    )
                )
                async with running(app) as base:
                    path = "/live" if relay else "/twilio"
                    ctx = multiprocessing.get_context("spawn")
                    mgr = ctx.Manager()
                    result = mgr.dict()
                    url = base.replace("http", "ws") + path
                    started = ctx.Event()
                    ended = ctx.Event()  # set when this process's window is over
                    cloop = RUN_OPTIONS["clients_loop"]
                    proc = ctx.Process(
                        target=_clients,
                        args=(
                            kind,
                            url,
                            base,
                            n,
                            seconds,
                            result,
                            started,
                            page_ms,
                            clients,
                            cloop,
                            ended,
                        ),
                    )
                    proc.start()
                    # The clients and the manager holding their result (started here:
                    # they inherited this process's CPU).
                    children = multiprocessing.active_children()
                    _pin(place, clients=[c.pid for c in children if c.pid is not None])
                    window_task = loop.create_task(
                        _window_when(started, probe, lags, burner, seconds, ended)
                    )
                    await asyncio.to_thread(proc.join, seconds + 90)
                    if proc.is_alive():
                        proc.kill()
                    res = dict(result)
                    mgr.shutdown()
                    window = await window_task
                due = n * AUDIO_HZ[kind] * float(res.get("window_s", seconds))
                if workload in ("w2t", "w2f", "w2fa"):
                    due *= W2_TURN_EVERY / (W2_TURN_EVERY + W2T_PAUSE)  # the pauses
                got = res.get("audio", 0.0)
                row["late_client_frames"] = int(res.get("late_frames", 0))
                row["client_errors"] = int(res.get("errors", 0))
                # Frames a client could not write: the measured process stopped reading.
                row["blocked_client_frames"] = int(res.get("blocked_frames", 0))
                if "marks" in res:
                    row["marks_echoed"] = int(res["marks"])
                # The clients' process (its own window): starved, it sends in bursts.
                clients_s = float(res.get("window_s", 0.0))
                row["clients_cpu_pct"] = (
                    round(float(res.get("cpu_s", 0.0)) / clients_s * 100, 1)
                    if clients_s > 0
                    else float("nan")
                )
                if "sys_s" in res and clients_s > 0:  # the kernel's part (loadgen's)
                    row["clients_sys_pct"] = round(float(res["sys_s"]) / clients_s * 100, 1)
                # What the clients did in their window, and their CPU per frame (sent
                # or received): comparable between the two clients even when the
                # measured process falls behind and sends them less.
                row["client_frames"] = int(res.get("frames", 0))
                row["client_audio_frames"] = int(got)
                moved = row["client_frames"] + row["client_audio_frames"]
                row["clients_cpu_us_per_frame"] = (
                    round(float(res.get("cpu_s", 0.0)) / moved * 1e6, 2) if moved else float("nan")
                )
        finally:
            _PEERS.clear()
            lag_task.cancel()
            burn_task.cancel()
            _unpin(place)
    row.update({k: v for k, v in window.items() if k != "audio_events"})
    _PROFILED_CONN_S.append(n * float(window["window_s"]))
    row["audio_rate"] = round(got / due, 3) if due else float("nan")
    # CPU of one core per connection, and how many would fill a core at that cost
    # (without a burner: its spin is wall time, the process's CPU time is not).
    busy = row["cpu_pct"] if not load else float("nan")
    row["cpu_pct_per_conn"] = round(busy / n, 4)
    row["per_core_by_cpu"] = int(100 / (busy / n)) if busy > 0 else None
    row["real_time"] = (
        row["loop_lag_p99_ms"] < LAG_LIMIT_MS
        and row["audio_rate"] >= 0.9
        and not row.get("client_errors")
    )
    # The peers' CPU (the benchmark server and the clients, 100 = one core) against the
    # cores they had: near full, they were starved and sent in bursts.
    peers = float(row.get("server_cpu_pct", 0.0)) + float(row.get("clients_cpu_pct", 0.0))
    row["peers_cpu_pct"] = round(peers, 1)
    cores = len(place["peers"]) if place["pinned"] else len(_CPUS)
    row["peers_starved"] = bool(place["pinned"]) and peers >= 90.0 * cores
    return row


#: The CPUs this process may run on, as it started (``--pin`` narrows them per level).
_CPUS: Final = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _placement(pin: bool) -> dict[str, Any]:
    """Where a level runs: with ``pin`` and two CPUs or more, the measured process alone
    on the last CPU, the benchmark server and the clients on the others."""
    if not pin or len(_CPUS) < 2:
        return {"pinned": False, "cpus": len(_CPUS) or os.cpu_count()}
    return {"pinned": True, "measured": _CPUS[-1:], "peers": _CPUS[:-1]}


def _pin(place: dict[str, Any], *, server: int | None = None, clients: Sequence[int] = ()) -> None:
    """Apply ``place`` to this process (the measured one) and to the peers named."""
    if not place["pinned"]:
        return
    _affinity(os.getpid(), place["measured"])
    for pid in [*([server] if server is not None else []), *clients]:
        _affinity(pid, place["peers"])


def _unpin(place: dict[str, Any]) -> None:
    if place["pinned"]:
        _affinity(os.getpid(), _CPUS)


def _affinity(pid: int, cpus: Sequence[int]) -> None:
    """Every thread of process ``pid`` on ``cpus`` (an affinity is per thread: the
    threads a thread starts later inherit it)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.sched_setaffinity(tid, cpus)


async def _window_when(
    started: Any, probe: Probe, lags: list[float], burner: Burner, seconds: float, ended: Any
) -> Any:
    try:
        if not await asyncio.to_thread(started.wait, 120):
            raise RuntimeError("the clients did not start")
        return await _window(probe, lags, burner, seconds)
    finally:
        ended.set()  # the clients close their connections only now


#: A cProfile.Profile that ``--profile`` turns on for the measurement windows.
_PROFILE: list[Any] = []
#: Connection-seconds measured (for the counts per connection-second of ``--profile``).
_PROFILED_CONN_S: list[float] = []

#: The system calls counted by ``--profile`` (cProfile's name for the function).
_SYSCALLS: Final = {
    "socket.send": "<method 'send' of '_socket.socket' objects>",
    "socket.recv": "<method 'recv' of '_socket.socket' objects>",
    "epoll_ctl add": "<method 'register' of 'select.epoll' objects>",
    "epoll_ctl del": "<method 'unregister' of 'select.epoll' objects>",
    "epoll_ctl mod": "<method 'modify' of 'select.epoll' objects>",
    "upstream writes": "write_audio",  # the fused send path, one per chunk
}


def profile_counts(profile: Any, conn_seconds: float) -> dict[str, float]:
    """System calls (by the Python function making each) and all Python calls per
    connection-second of the profiled windows: call counts, so a shared machine
    changes them little (``epoll_wait`` is left out: it depends on the load)."""
    import pstats

    stats: Any = pstats.Stats(profile)
    counts = dict.fromkeys(_SYSCALLS, 0)
    for (_file, _line, name), (_cc, nc, *_rest) in stats.stats.items():
        for label, fn in _SYSCALLS.items():
            if name == fn:
                counts[label] += nc
    per = max(conn_seconds, 1e-9)
    out = {k: round(v / per, 1) for k, v in counts.items()}
    out["system calls"] = round(sum(counts.values()) / per, 1)
    out["python calls"] = round(stats.total_calls / per)
    return out


def _proc_ticks(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used (Linux ``/proc``; NaN else)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _machine_ticks() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, every core (``/proc/stat``)."""
    try:
        with open("/proc/stat", "rb") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan"), float("nan")
    hz = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values) - idle) / hz, sum(values) / hz


#: Processes besides the measured one whose CPU a window reports: the benchmark server's
#: (it shares the machine: starved, it sends in bursts; the clients report their own).
_PEERS: dict[str, int] = {}


async def _window(probe: Probe, lags: list[float], burner: Burner, seconds: float) -> Any:
    full = time.perf_counter()
    gc.collect()
    # What a full collection at this N stops the loop for (before the window, timed).
    full_ms = (time.perf_counter() - full) * 1000
    # Objects the collector tracks (what a full collection walks), from a level's rows:
    # per connection by difference.
    tracked = len(gc.get_objects())
    await asyncio.sleep(SETTLE_S)  # not a synchronisation: the measured process settles
    del lags[:]
    del _LAG_ENDS[:]
    _GC.reset()
    _GC.on = True
    probe.event_ms.clear()
    probe.socket_ms.clear()
    probe.audio_events = 0
    burner.reset()
    busy0 = burner.busy
    cpu0, t0, sys0 = time.process_time(), time.monotonic(), os.times().system
    peers0 = {name: _proc_ticks(pid) for name, pid in _PEERS.items()}
    mbusy0, mtotal0 = _machine_ticks()
    probe.on = True
    if _PROFILE:
        _PROFILE[0].enable()
    await asyncio.sleep(seconds)  # the measurement window
    if _PROFILE:
        _PROFILE[0].disable()
    probe.on = False
    _GC.on = False
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    kernel = os.times().system - sys0
    mbusy1, mtotal1 = _machine_ticks()
    # Every core's busy share during the window (100 = the whole machine), and each
    # peer process's CPU (100 = one core): a machine near 100 % starves someone.
    machine = {"machine_busy_pct": round((mbusy1 - mbusy0) / max(mtotal1 - mtotal0, 1e-9) * 100, 1)}
    for name, pid in _PEERS.items():
        machine[f"{name}_cpu_pct"] = round((_proc_ticks(pid) - peers0[name]) / wall * 100, 1)
    n_lags = len(lags)
    gc_report = _GC.report(lags[:n_lags], _LAG_ENDS[:n_lags], wall)
    return {
        "window_s": round(wall, 3),
        "cpu_pct": round(cpu / wall * 100, 1),
        # The kernel's part of cpu_pct (system calls: the sockets' sends and receives).
        "sys_pct": round(kernel / wall * 100, 1),
        "burner_pct": round((burner.busy - busy0) / wall * 100, 1),
        "loop_lag_p50_ms": round(pct(lags, 0.5), 2),
        "loop_lag_p99_ms": round(pct(lags, 0.99), 2),
        "event_p50_ms": round(pct(probe.event_ms, 0.5), 3),
        "event_p99_ms": round(pct(probe.event_ms, 0.99), 3),
        "socket_p50_ms": round(pct(probe.socket_ms, 0.5), 3),
        "socket_p99_ms": round(pct(probe.socket_ms, 0.99), 3),
        "events": len(probe.event_ms),
        "replies_timed": len(probe.socket_ms),
        "audio_events": probe.audio_events,
        "gc_tracked": tracked,
        "gc_full_ms": round(full_ms, 1),
        **machine,
        **gc_report,
    }


# -- event delivery, in one process --------------------------------------------------------


async def delivery(events: int = 20_000, rounds: int = 5) -> dict[str, Any]:
    """CPU per event from a session to an endpoint's async handler whose send does not
    wait: ``async for`` in a consumer task (what the relay and the bridge did) against
    the :class:`~gemini_live._bridge.EventPump` they use now. Events are emitted one per
    loop iteration, as frames arrive. Best of ``rounds`` (process CPU time)."""
    from gemini_live._bridge import EventPump

    sent = [0]

    async def handler(event: ev.Event) -> None:
        sent[0] += 1  # a send into a socket that is not paused completes at once

    audio = ev.ModelAudio(b"\x00" * 1920, 24000)

    async def one(path: str) -> float:
        session = gl.Session(gl.build_config(url="ws://127.0.0.1:9/", main_stream=path == "iter"))
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        sent[0] = 0
        if path == "iter":

            async def consume() -> None:
                async for event in session:
                    await handler(event)
                    if sent[0] == events:
                        done.set_result(None)

            task = loop.create_task(consume())
        else:
            pump = EventPump(handler, limit=4096)
            pump.attach(session)
            task = loop.create_task(pump.run())

            def check(_e: ev.Event) -> None:
                if sent[0] == events and not done.done():
                    done.set_result(None)

            session.on_event(check)
        await asyncio.sleep(0)
        left = [events]

        def emit() -> None:
            session._emit(audio)
            left[0] -= 1
            if left[0]:
                loop.call_soon(emit)

        cpu0 = time.process_time()
        loop.call_soon(emit)
        async with asyncio.timeout(60):
            await done
        cpu = time.process_time() - cpu0
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return cpu / events * 1e6

    best = {p: min([await one(p) for _ in range(rounds)]) for p in ("iter", "pump")}
    return {
        "events": events,
        "async_for_us": round(best["iter"], 3),
        "pump_us": round(best["pump"], 3),
        "ratio": round(best["iter"] / best["pump"], 2),
    }


# -- the runs ---------------------------------------------------------------------------

#: The server's workload for the kinds whose model sends turns faster than real time.
_FAST_WORKLOAD: Final = {"bridge-fast": "w2f", "bridge-fast-aligned": "w2fa"}


def _ramp_workload(kind: str) -> str:
    """The server's workload for a density level of ``kind``: ``w2`` (the model talks all
    the time, in real time), ``w2f`` for ``bridge-fast`` (turns 4x faster than real time),
    ``w2fa`` for ``bridge-fast-aligned`` (the same with every call's turns at once)."""
    return _FAST_WORKLOAD.get(kind, "w2")


async def density(
    kinds: list[str],
    levels: dict[str, list[int]],
    seconds: float,
    stop_lag: float = 100.0,
    *,
    interleave: bool = False,
) -> list[dict[str, Any]]:
    """Each kind over its levels (``interleave``: level by level, every kind at each);
    a kind stops once it is clearly overloaded (loop lag p99 over ``stop_lag``, audio
    under 90 %): on a shared machine a level may miss 20 ms because the process was
    descheduled, and the next ones still give CPU figures."""
    if interleave:
        steps = sorted(
            ((n, i, kind) for i, kind in enumerate(kinds) for n in levels[kind]),
        )
        order = [(kind, n) for n, _, kind in steps]
    else:
        order = [(kind, n) for kind in kinds for n in levels[kind]]
    rows: list[dict[str, Any]] = []
    stopped: set[str] = set()
    for kind, n in order:
        if kind in stopped:
            continue
        try:
            row = await measure(kind, n, seconds, workload=_ramp_workload(kind))
        except Exception as exc:  # a level that cannot even run is out of real time
            row = {"kind": kind, "n": n, "real_time": False, "error": repr(exc)[:200]}
        rows.append(row)
        print(json.dumps({"density": row}), flush=True)
        if "error" in row or row["loop_lag_p99_ms"] > stop_lag or row["audio_rate"] < 0.9:
            stopped.add(kind)  # clearly overloaded: larger N only take longer
    return rows


async def loaded(kinds: list[str], loads: list[float], n: int, seconds: float) -> Any:
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        # The bridge is timed turn by turn: with a model talking without a pause, every
        # reply would queue behind the previous one's real-time playout, which is the
        # bench's doing, not the bridge's.
        workload = _FAST_WORKLOAD.get(kind) or ("w2t" if kind.startswith("bridge") else "w2")
        for u in loads:
            row = await measure(kind, n, seconds, load=u, workload=workload)
            row["load_pct"] = u
            rows.append(row)
            print(json.dumps({"load": row}), flush=True)
    return rows


def per_core(rows: list[dict[str, Any]], kind: str) -> int:
    """The largest N of ``kind`` in real time (0 if none)."""
    ok = [r["n"] for r in rows if r["kind"] == kind and r.get("real_time")]
    return max(ok, default=0)


def tables(results: dict[str, Any]) -> str:
    out: list[str] = []
    dens = results.get("density") or []
    if dens:
        out += [
            "| kind | N | loop lag p50 / p99 (ms) | CPU % | CPU % per connection "
            "| N per core by CPU | audio delivered | real time |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in dens:
            if "error" in r:
                out.append(f"| {r['kind']} | {r['n']} | failed: {r['error'][:60]} | | | | | no |")
                continue
            out.append(
                f"| {r['kind']} | {r['n']} | {r['loop_lag_p50_ms']:.1f} / "
                f"{r['loop_lag_p99_ms']:.1f} | {r['cpu_pct']:.0f} | "
                f"{r['cpu_pct_per_conn']:.3f} | {r['per_core_by_cpu']} | "
                f"{r['audio_rate'] * 100:.0f} % | {'yes' if r['real_time'] else 'no'} |"
            )
        out.append("")
        kinds = list(dict.fromkeys(r["kind"] for r in dens))
        out.append(
            "Per core (largest N in real time, this run): "
            + ", ".join(f"{k} {per_core(dens, k)}" for k in kinds)
        )
        place = next((r["placement"] for r in dens if "placement" in r), None)
        if place is not None:
            out.append("")
            out.append(
                f"Placement: the measured process alone on CPU {place['measured']}, the "
                f"benchmark server and the clients on CPU {place['peers']}."
                if place["pinned"]
                else "Placement: not pinned (every process on any CPU)."
            )
        out += [
            "",
            "| kind | N | loop lag p99.9 / max (ms) | lag samples >= 20 ms (in a collection) "
            "| collections gen 0 / 1 / 2 (longest gen 2, ms) | a full one (ms) | machine busy % "
            "| server / clients CPU % |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in dens:
            if "error" in r:
                continue
            g = r["gc_collections"]
            out.append(
                f"| {r['kind']} | {r['n']} | {r['loop_lag_p999_ms']:.1f} / "
                f"{r['loop_lag_max_ms']:.1f} | {r['loop_lag_over_limit']} "
                f"({r['loop_lag_over_limit_in_gc']}) | {g[0]} / {g[1]} / {g[2]} "
                f"({r['gc_longest_ms'][2]:.1f}) | {r['gc_full_ms']:.1f} | "
                f"{r['machine_busy_pct']:.0f} | "
                f"{r.get('server_cpu_pct', float('nan')):.0f} / "
                f"{r.get('clients_cpu_pct', float('nan')):.0f} |"
            )
        out.append("")
    dl = results.get("delivery")
    if dl:
        out += [
            "| session -> endpoint handler, per event | CPU µs |",
            "|---|---:|",
            f"| `async for` in a consumer task (before) | {dl['async_for_us']:.2f} |",
            f"| `EventPump` (`on_event`, sent inline) | {dl['pump_us']:.2f} |",
            "",
            f"`async for` costs {dl['ratio']:.2f}x the pump per event "
            f"({dl['events']} events, best of 5).",
            "",
        ]
    load = results.get("load") or []
    if load:
        out += [
            "| path | loop busy (burner) | frame -> event p50 / p99 (ms) "
            "| first audio -> socket p50 / p99 (ms) | loop lag p99 (ms) |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in load:
            name = {
                "floor": "direct",
                "relay": "relay",
                "relay-20": "relay (20 ms frames)",
                "relay-asgi": "relay (ASGI inbound)",
                "bridge": "bridge (twilio)",
                "bridge-asgi": "bridge (twilio, ASGI inbound)",
                "bridge-up20": "bridge (twilio, 20 ms upstream writes)",
                "bridge-fast": "bridge (twilio, model 4x real time)",
                "bridge-fast-aligned": "bridge (twilio, model 4x real time, turns aligned)",
            }[r["kind"]]
            sock = (
                "n/a"
                if r["kind"] == "floor"
                else f"{r['socket_p50_ms']:.2f} / {r['socket_p99_ms']:.2f}"
            )
            out.append(
                f"| {name} | {r['load_pct']:.0f} % ({r['burner_pct']:.0f} %) | "
                f"{r['event_p50_ms']:.2f} / {r['event_p99_ms']:.2f} | {sock} | "
                f"{r['loop_lag_p99_ms']:.1f} |"
            )
    return "\n".join(out)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


async def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.density")
    p.add_argument("--kinds", default="floor,relay,bridge", help=",".join(KINDS))
    p.add_argument("--interleave", action="store_true", help="level by level, every kind at each")
    p.add_argument("--levels", default="100,200,300,400,500,600,800,1000", help="floor, relay")
    p.add_argument("--bridge-levels", default="10,20,30,40,60,80,100,150,200")
    p.add_argument(
        "--bridge-media-ms", type=int, default=None, help="the bridge's media_ms (default: its own)"
    )
    p.add_argument(
        "--page-ms",
        type=int,
        default=40,
        choices=(20, 40),
        help="the relay's browsers' frames: 40 ms (the page's) or 20 ms (older pages)",
    )
    p.add_argument("--seconds", type=float, default=5.0, help="measurement window")
    p.add_argument("--stop-lag", type=float, default=100.0, help="loop lag p99 ending a ramp")
    p.add_argument("--load", default="10,50,80", help="burner shares for the latency table")
    p.add_argument("--load-n", type=int, default=20, help="connections for the latency table")
    p.add_argument(
        "--delivery", type=int, default=20_000, help="events for the delivery part (0: skip)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    p.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the measured process alone on one CPU, the server and the clients on the "
        "others (default: on with 2 CPUs or more)",
    )
    p.add_argument(
        "--clients-loop",
        default=None,
        choices=("asyncio", "uvloop"),
        help="the clients' event loop (default: uvloop where installed: the cheaper)",
    )
    p.add_argument(
        "--clients",
        default="loadgen",
        choices=CLIENTS,
        help="the synthetic browsers and calls: bench.loadgen (cheap) or websockets (as before)",
    )
    p.add_argument(
        "--loop",
        default="asyncio",
        choices=("asyncio", "uvloop"),
        help="the measured process's event loop (the server's stays asyncio; the clients': "
        "--clients-loop)",
    )
    p.add_argument(
        "--profile", metavar="FILE", help="cProfile the measured process's windows into FILE"
    )
    args = p.parse_args(argv)
    RELAY_OPTIONS["page_ms"] = args.page_ms
    RUN_OPTIONS["clients"] = args.clients
    RUN_OPTIONS["clients_loop"] = args.clients_loop or (
        "uvloop" if uvloop_available() else "asyncio"
    )
    RUN_OPTIONS["pin"] = len(_CPUS) >= 2 if args.pin is None else args.pin
    if args.bridge_media_ms is not None:
        BRIDGE_OPTIONS["media_ms"] = args.bridge_media_ms
    if args.profile:
        import cProfile

        _PROFILE.append(cProfile.Profile())
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k not in KINDS:
            p.error(f"unknown kind {k!r} (one of {', '.join(KINDS)})")
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }
    levels = {k: _ints(args.levels) for k in ("floor", "relay", "relay-20", "relay-asgi")}
    for k in ("bridge", "bridge-asgi", "bridge-up20", "bridge-fast", "bridge-fast-aligned"):
        levels[k] = _ints(args.bridge_levels)
    if any(levels[k] for k in kinds):
        results["density"] = await density(
            kinds, levels, args.seconds, args.stop_lag, interleave=args.interleave
        )
    loads = [float(x) for x in args.load.split(",") if x.strip()]
    if loads:
        results["load"] = await loaded(kinds, loads, args.load_n, args.seconds)
    if args.delivery:
        results["delivery"] = await delivery(args.delivery)
        print(json.dumps({"delivery": results["delivery"]}), flush=True)
    print(tables(results), flush=True)
    if _PROFILE:
        _PROFILE[0].dump_stats(args.profile)
        counts = profile_counts(_PROFILE[0], sum(_PROFILED_CONN_S))
        print(json.dumps({"per_connection_second": counts}), flush=True)
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(results, indent=2))
    return 0


def _loop_of(argv: list[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--loop", default="asyncio")
    return str(pre.parse_known_args(argv)[0].loop)


if __name__ == "__main__":
    from bench.common import run_loop

    sys.exit(run_loop(lambda: main(sys.argv[1:]), _loop_of(sys.argv[1:])))
