"""Shared by the server, the clients and the micro-benchmarks: payloads, frames, helpers.

Every server frame the benchmarks use is built here once, so the clients, the server and
``bench.micro`` all see byte-identical JSON.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: Client audio: 20 ms of 16 kHz mono PCM16.
IN_RATE: Final = 16000
IN_CHUNK_BYTES: Final = IN_RATE // 50 * 2  # 640
IN_MIME: Final = "audio/pcm;rate=16000"
#: Server audio: 40 ms of 24 kHz mono PCM16.
OUT_RATE: Final = 24000
OUT_CHUNK_BYTES: Final = OUT_RATE // 25 * 2  # 1920
OUT_MIME: Final = "audio/pcm;rate=24000"

#: W1: the server sends turnComplete + usageMetadata after every this many audio replies.
W1_TURN_EVERY: Final = 50
#: W2: replies per second per session, and turnComplete after every this many.
W2_REPLY_HZ: Final = 25
W2_TURN_EVERY: Final = 25
W2_SEND_HZ: Final = 50
#: Chunks each W2 session sends back to back before its clock starts, at the least (the
#: harnesses' ``--fill``; ``bench.client.fill_windows``): 10 s of 20 ms chunks, twice
#: gemini-live's default 5 s re-send window, so what is measured is the steady state of a
#: long conversation without handles (each chunk written also drops the oldest from a
#: full window, and what a client keeps per chunk has been through its housekeeping
#: cycle once), not a session's first seconds, where a client that keeps chunks only
#: adds to what it keeps. The sessions' fills are spread (see :func:`fill_spread`).
W2_FILL: Final = 500


def fill_spread(chunks: int, sessions: int) -> list[int]:
    """How many chunks each of ``sessions`` sends before the W2 clock: ``chunks`` for the
    first, up to half as many again for the last, evenly spread. Sessions of a real
    gateway started at different times; sessions that all sent the same count would do
    any periodic work of a client (compacting what it keeps, a list growing its storage)
    in the same 20 ms periods, and a window of a few periods would count it for every
    session or for none."""
    return [chunks + chunks // 2 * i // sessions for i in range(sessions)]


#: Text a client sends (as realtimeInput.text) to make the server answer with goAway.
GOAWAY_TRIGGER: Final = "bench:goaway"
GOAWAY_TIME_LEFT: Final = "1s"

#: Fixed-width format for the server send time (``time.monotonic()``) in W2 replies.
STAMP_FMT: Final = b"%017.6f"
STAMP_WIDTH: Final = 17

_rng = random.Random(20251124)
#: One 20 ms input chunk (noise: base64 size and cost do not depend on content).
PCM_IN: Final = _rng.randbytes(IN_CHUNK_BYTES)
#: The 40 ms reply audio.
PCM_OUT: Final = _rng.randbytes(OUT_CHUNK_BYTES)
_B64_OUT: Final = base64.b64encode(PCM_OUT).decode()


#: How the server formats its frames. The Live API sends 2-space indented JSON with a
#: trailing newline (the raw bytes of recorded frames show it); ``compact`` is what
#: ``json.dumps(separators=(",", ":"))`` and most fake servers produce.
FRAMINGS: Final = ("service", "compact")
DEFAULT_FRAMING: Final = "service"


def dumps(obj: object, framing: str = DEFAULT_FRAMING) -> bytes:
    """One server frame in the given framing."""
    if framing == "compact":
        return json.dumps(obj, separators=(",", ":")).encode()
    if framing == "service":
        return (json.dumps(obj, indent=2) + "\n").encode()
    raise ValueError(f"unknown framing {framing!r}")


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


_AUDIO_PART: Final = {"inlineData": {"mimeType": OUT_MIME, "data": _B64_OUT}}

USAGE: Final = {
    "promptTokenCount": 1234,
    "responseTokenCount": 567,
    "totalTokenCount": 1801,
    "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 1234}],
    "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 567}],
}

#: The words of the reply transcript, one fragment per transcript frame (W1).
W1_WORDS: Final = ("Sure", ",", " the", " forecast", " for", " Paris", " is", " sunny", ".", " ")
#: W1: every this many audio replies carries an outputTranscription fragment.
W1_TRANSCRIPT_EVERY: Final = 5

_STAMP: Final = "@@STAMP@@"


class Frames:
    """Every server frame the benchmarks send, pre-serialized in one framing.

    The mix per W1 turn of 50 chunks: an ``inputTranscription`` (the user's words) with
    the first reply, audio alone, audio + ``outputTranscription`` on every 5th reply, and
    ``turnComplete`` + ``usageMetadata`` after the 50th. W2 replies are audio + a stamped
    ``outputTranscription`` (the transcript first, so the stamp sits at a fixed offset).
    """

    def __init__(self, framing: str = DEFAULT_FRAMING) -> None:
        self.framing = framing
        d = functools.partial(dumps, framing=framing)
        self.setup_complete = d({"setupComplete": {}})
        self.audio = d({"serverContent": {"modelTurn": {"parts": [_AUDIO_PART]}}})
        self.audio_transcript = tuple(
            d(
                {
                    "serverContent": {
                        "modelTurn": {"parts": [_AUDIO_PART]},
                        "outputTranscription": {"text": word},
                    }
                }
            )
            for word in W1_WORDS
        )
        self.input_transcript = d(
            {"serverContent": {"inputTranscription": {"text": "What is the weather in Paris?"}}}
        )
        self.turn = d({"serverContent": {"turnComplete": True}, "usageMetadata": USAGE})
        self.go_away = d({"goAway": {"timeLeft": GOAWAY_TIME_LEFT}})
        w2 = d(
            {
                "serverContent": {
                    "outputTranscription": {"text": "t=" + _STAMP},
                    "modelTurn": {"parts": [_AUDIO_PART]},
                }
            }
        )
        self.w2_prefix, self.w2_suffix = w2.split(_STAMP.encode())
        #: Where the stamp starts inside a W2 frame (used by the codec-free floor client).
        self.w2_stamp_offset = len(self.w2_prefix)

    def w1_replies(self, k: int) -> tuple[bytes, ...]:
        """The frames answering the ``k``-th audio chunk (1-based) of a W1 run."""
        i = (k - 1) % W1_TURN_EVERY
        audio = (
            self.audio_transcript[(i // W1_TRANSCRIPT_EVERY) % len(W1_WORDS)]
            if i % W1_TRANSCRIPT_EVERY == W1_TRANSCRIPT_EVERY - 1
            else self.audio
        )
        if i == 0:
            return (self.input_transcript, audio)
        if i == W1_TURN_EVERY - 1:
            return (audio, self.turn)
        return (audio,)

    def w2_frame(self, now: float) -> bytes:
        return b"".join((self.w2_prefix, STAMP_FMT % now, self.w2_suffix))

    def resumption_update(self, handle: str) -> bytes:
        return dumps(
            {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}, self.framing
        )


#: The frames in the service's framing (what the micro-benchmarks use).
SERVICE: Final = Frames("service")
COMPACT: Final = Frames("compact")

SETUP_COMPLETE: Final = COMPACT.setup_complete
AUDIO_REPLY: Final = COMPACT.audio
TURN_REPLY: Final = COMPACT.turn


def parse_stamp(text: str) -> float:
    """Server send time from an outputTranscription text ``t=<monotonic>``."""
    return float(text[2:])


# Micro-benchmark frames (server -> client).
TEXT_REPLY: Final = dumps(
    {
        "serverContent": {
            "modelTurn": {
                "parts": [
                    {
                        "text": "Sure! The forecast for Paris tomorrow is mostly sunny with a "
                        "high of 21 degrees and a light breeze from the west. Expect a few "
                        "clouds in the late afternoon, but no rain. It is a good day for a "
                        "walk along the Seine or a picnic in the Luxembourg Gardens."
                    }
                ]
            }
        }
    }
)
TOOL_CALL_REPLY: Final = dumps(
    {
        "toolCall": {
            "functionCalls": [
                {
                    "id": "function-call-14467427",
                    "name": "get_weather",
                    "args": {"city": "Paris", "unit": "celsius", "days": 2},
                }
            ]
        }
    }
)

# Client frames prebuilt for the codec-free floor client (camelCase, as the API documents).
FLOOR_AUDIO_FRAME: Final = _dumps(
    {"realtimeInput": {"audio": {"mimeType": IN_MIME, "data": base64.b64encode(PCM_IN).decode()}}}
)
FLOOR_GOAWAY_FRAME: Final = _dumps({"realtimeInput": {"text": GOAWAY_TRIGGER}})


def setup_frame(model: str, handle: str | None) -> bytes:
    sr: dict[str, Any] = {} if handle is None else {"handle": handle}
    return _dumps(
        {
            "setup": {
                "model": model,
                "generationConfig": {"responseModalities": ["AUDIO"]},
                "sessionResumption": sr,
            }
        }
    )


MODEL: Final = "models/bench-live"


def live_url(port: int, workload: str) -> str:
    """Benchmark URL; the server reads the workload from the path."""
    return f"ws://127.0.0.1:{port}/bench/{workload}"


# -- process measurements ---------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def current_rss_bytes() -> int:
    """Current resident set size (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return int(peak_rss_mib() * 1024 * 1024)


def proc_cpu_seconds(pid: int) -> float | None:
    """user+sys CPU seconds of another process (Linux /proc), None if unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def raise_fd_limit() -> None:
    """Allow thousands of sockets (W2)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 65536 if hard == resource.RLIM_INFINITY else hard
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass


def run_loop(main: Callable[[], Coroutine[Any, Any, T]], loop: str) -> T:
    """Run ``main()`` on the stock asyncio loop or on uvloop."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    with asyncio.Runner() as runner:
        return runner.run(main())


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# -- statistics -------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in [0, 100])."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def now() -> float:
    return time.monotonic()
