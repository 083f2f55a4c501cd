"""Codec micro-benchmarks: one message encoded or decoded, no I/O.

``python -m bench.micro`` prints markdown tables; ``--json`` prints ``RESULT <json>``.

Every variant is a zero-argument callable timed with :mod:`timeit` (GC off while timing):
``number`` is calibrated so one repeat takes about ``--target`` seconds, and the table
shows the median and the best of ``--repeats`` repeats, in ns per message. Before timing,
every variant's output is checked against the reference (same audio bytes, text, call).

SEND: PCM chunk -> ``realtimeInput.audio`` frame.
RECV: server frame -> what the application uses (events / parsed message with audio bytes).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any

import msgspec

from bench.common import (
    COMPACT,
    IN_MIME,
    PCM_IN,
    PCM_OUT,
    SERVICE,
    TEXT_REPLY,
    TOOL_CALL_REPLY,
)

Fn = Callable[[], object]


def measure(fn: Fn, *, target: float, repeats: int) -> dict[str, float]:
    timer = timeit.Timer(fn)
    number = 1
    while True:
        t = timer.timeit(number)
        if t >= target / 5 or number >= 1 << 22:
            break
        number *= 4
    number = max(1, int(number * target / max(t, 1e-9)))
    per_op = [timer.timeit(number) / number * 1e9 for _ in range(repeats)]
    return {"median_ns": statistics.median(per_op), "min_ns": min(per_op), "number": number}


# -- SEND variants ---------------------------------------------------------------------------


class _MsBlob(msgspec.Struct, rename="camel"):
    mime_type: str
    data: bytes


class _MsAudioInput(msgspec.Struct):
    audio: _MsBlob


class _MsClientMessage(msgspec.Struct, rename="camel"):
    realtime_input: _MsAudioInput


class _FakeWS:
    """Stands in for the websockets connection under google-genai's AsyncSession."""

    def __init__(self) -> None:
        self.sent: Any = None
        self.frame: bytes = b""

    async def send(self, data: Any) -> None:
        self.sent = data

    async def recv(self, decode: bool | None = None) -> bytes:
        return self.frame


def _drive(coro: Any) -> Any:
    """Run a coroutine that never suspends, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("coroutine suspended")


def _genai_session() -> tuple[Any, _FakeWS, Any]:
    from google import genai
    from google.genai import live, types

    client = genai.Client(api_key="bench-not-a-key")
    ws = _FakeWS()
    session = live.AsyncSession(api_client=client._api_client, websocket=ws)  # type: ignore[arg-type]
    return session, ws, types


def send_variants(pcm: bytes) -> dict[str, tuple[Fn, Callable[[], bytes]]]:
    """name -> (fn, extract) where extract() returns the PCM found in the last output."""
    from gemini_live.codec import AudioFrameEncoder, encode_client
    from gemini_live.types import Blob, ClientMessage, RealtimeInput

    out: dict[str, Any] = {}
    enc = AudioFrameEncoder(16000)

    def ours() -> bytes:
        out["v"] = r = enc.encode(pcm)
        return r

    def ours_typed() -> bytes:
        msg = ClientMessage(realtime_input=RealtimeInput(audio=Blob.of(pcm, IN_MIME)))
        out["v"] = r = encode_client(msg)
        return r

    ms_enc = msgspec.json.Encoder()

    def ms_struct() -> bytes:
        msg = _MsClientMessage(_MsAudioInput(_MsBlob(IN_MIME, pcm)))
        out["v"] = r = ms_enc.encode(msg)
        return r

    def stdlib() -> str:
        data = base64.b64encode(pcm).decode("ascii")
        out["v"] = r = json.dumps({"realtimeInput": {"audio": {"data": data, "mimeType": IN_MIME}}})
        return r

    session, ws, types = _genai_session()

    def genai() -> None:
        blob = types.Blob(data=pcm, mime_type=IN_MIME)
        _drive(session.send_realtime_input(audio=blob))
        out["v"] = ws.sent

    def extract() -> bytes:
        msg = json.loads(out["v"])
        ri = msg.get("realtimeInput") or msg["realtime_input"]
        return base64.urlsafe_b64decode(ri["audio"]["data"].replace("+", "-").replace("/", "_"))

    return {
        "gemini-live AudioFrameEncoder (template + pybase64)": (ours, extract),
        "gemini-live encode_client(ClientMessage) (typed msgspec)": (ours_typed, extract),
        "msgspec Struct, bytes field (native base64)": (ms_struct, extract),
        "stdlib json.dumps + base64 (hand-written)": (stdlib, extract),
        "google-genai send_realtime_input body": (genai, extract),
    }


# -- RECV variants ---------------------------------------------------------------------------


def _stdlib_decode(frame: bytes) -> list[Any]:
    """What the hand-written client does: json + base64, plain dicts."""
    msg = json.loads(frame)
    out: list[Any] = []
    sc = msg.get("serverContent")
    if sc is not None:
        turn = sc.get("modelTurn")
        if turn is not None:
            for part in turn.get("parts", ()):
                blob = part.get("inlineData")
                if blob is not None:
                    out.append(base64.b64decode(blob["data"]))
                elif "text" in part:
                    out.append(part["text"])
        if sc.get("turnComplete"):
            out.append("turnComplete")
    tc = msg.get("toolCall")
    if tc is not None:
        out.extend(fc["name"] for fc in tc.get("functionCalls", ()))
    if "usageMetadata" in msg:
        out.append(msg["usageMetadata"])
    return out


def recv_variants(frame: bytes) -> dict[str, tuple[Fn, Callable[[], object]]]:
    """name -> (fn, summary) where summary() normalises the last output for checking."""
    from gemini_live.codec import decode_events, fast_events
    from gemini_live.events import ModelAudio, ModelText, ToolCall, TurnComplete

    out: dict[str, Any] = {}

    def ours() -> None:
        out["ours"] = fast_events(frame) or decode_events(frame)

    def general() -> None:
        out["ours"] = decode_events(frame)

    def ours_summary() -> object:
        res: list[object] = []
        for e in out["ours"]:
            if isinstance(e, ModelAudio):
                res.append(e.data)
            elif isinstance(e, ModelText):
                res.append(e.text)
            elif isinstance(e, ToolCall):
                res.extend(c.name for c in e.calls)
            elif isinstance(e, TurnComplete):
                res.append("turnComplete")
        return res

    def stdlib() -> None:
        out["stdlib"] = _stdlib_decode(frame)

    def stdlib_summary() -> object:
        return [x for x in out["stdlib"] if not isinstance(x, dict)]

    session, ws, types = _genai_session()
    ws.frame = frame
    model = types.LiveServerMessage

    def genai_summary(msg: Any) -> object:
        res: list[object] = []
        sc = msg.server_content
        if sc is not None:
            if sc.model_turn is not None:
                for p in sc.model_turn.parts or ():
                    if p.inline_data is not None:
                        res.append(p.inline_data.data)
                    elif p.text is not None:
                        res.append(p.text)
            if sc.turn_complete:
                res.append("turnComplete")
        if msg.tool_call is not None:
            res.extend(fc.name for fc in msg.tool_call.function_calls or ())
        return res

    def genai_validate() -> None:
        out["gv"] = model.model_validate_json(frame)

    def genai_receive() -> None:
        out["gr"] = _drive(session._receive())

    return {
        "gemini-live receive path (fast_events, else decode_events)": (ours, ours_summary),
        "gemini-live general path only (decode_events: msgspec + pybase64)": (
            general,
            ours_summary,
        ),
        "stdlib json.loads + base64 (hand-written)": (stdlib, stdlib_summary),
        "google-genai LiveServerMessage.model_validate_json": (
            genai_validate,
            lambda: genai_summary(out["gv"]),
        ),
        "google-genai receive() body (json + converter + _from_response)": (
            genai_receive,
            lambda: genai_summary(out["gr"]),
        ),
    }


RECV_FRAMES: dict[str, bytes] = {
    "audio 40 ms, service framing": SERVICE.audio,
    "audio + transcript, service": SERVICE.audio_transcript[1],
    "audio 40 ms, compact": COMPACT.audio,
    "inputTranscription, service": SERVICE.input_transcript,
    "turnComplete+usage, service": SERVICE.turn,
    "text, service": TEXT_REPLY,
    "toolCall, service": TOOL_CALL_REPLY,
}
_AUDIO_FRAMES = (SERVICE.audio, SERVICE.audio_transcript[1], COMPACT.audio)


def run(*, target: float, repeats: int) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")
    encode: list[dict[str, Any]] = []
    sizes = {"20 ms (640 B)": PCM_IN, "100 ms (3200 B)": (PCM_IN * 5)}
    for size_name, pcm in sizes.items():
        for name, (fn, extract) in send_variants(pcm).items():
            fn()
            if extract() != pcm:
                raise AssertionError(f"{name}: encoded audio does not round-trip")
            encode.append(
                {"variant": name, "size": size_name, **measure(fn, target=target, repeats=repeats)}
            )
    decode: list[dict[str, Any]] = []
    for frame_name, frame in RECV_FRAMES.items():
        variants = recv_variants(frame)
        reference: object = None
        for name, (fn, summary) in variants.items():
            fn()
            got = summary()
            if reference is None:
                reference = got
            elif got != reference:
                raise AssertionError(f"{name} on {frame_name}: {got!r:.80} != {reference!r:.80}")
            if frame in _AUDIO_FRAMES and got != [PCM_OUT]:
                raise AssertionError(f"{name}: decoded audio differs from what the server sent")
            decode.append(
                {
                    "variant": name,
                    "frame": frame_name,
                    "frame_bytes": len(frame),
                    **measure(fn, target=target, repeats=repeats),
                }
            )
    return {"encode": encode, "decode": decode, "target_s": target, "repeats": repeats}


def tables(res: dict[str, Any]) -> str:
    lines = ["### SEND: PCM chunk -> realtimeInput.audio frame (ns/message, median / best)", ""]
    sizes = list(dict.fromkeys(r["size"] for r in res["encode"]))
    lines.append(
        "| variant | " + " | ".join(sizes) + " | × vs stdlib (" + " / ".join(sizes) + ") |"
    )
    lines.append("|---|" + "---:|" * (len(sizes) + 1))
    variants = list(dict.fromkeys(r["variant"] for r in res["encode"]))
    std = {r["size"]: r["median_ns"] for r in res["encode"] if r["variant"].startswith("stdlib")}
    for v in variants:
        cells, ratios = [], []
        for s in sizes:
            r = next(x for x in res["encode"] if x["variant"] == v and x["size"] == s)
            cells.append(f"{r['median_ns']:,.0f} / {r['min_ns']:,.0f}")
            ratios.append(f"{std[s] / r['median_ns']:.2g}")
        lines.append(f"| {v} | " + " | ".join(cells) + " | " + " / ".join(ratios) + " |")
    lines += ["", "### RECV: server frame -> application objects (ns/message, median / best)", ""]
    frames = list(dict.fromkeys(r["frame"] for r in res["decode"]))
    fsize = {r["frame"]: r["frame_bytes"] for r in res["decode"]}
    lines.append("| variant | " + " | ".join(f"{f} ({fsize[f]:,} B)" for f in frames) + " |")
    lines.append("|---|" + "---:|" * len(frames))
    ours: dict[str, float] = {}
    for r in res["decode"]:
        if r["variant"].startswith("gemini-live"):
            ours.setdefault(r["frame"], r["median_ns"])
    for v in dict.fromkeys(r["variant"] for r in res["decode"]):
        cells = []
        for f in frames:
            r = next(x for x in res["decode"] if x["variant"] == v and x["frame"] == f)
            cells.append(
                f"{r['median_ns']:,.0f} / {r['min_ns']:,.0f} ({r['median_ns'] / ours[f]:.1f}×)"
            )
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "(×) = median cost relative to gemini-live's receive path (first row); frames in "
        "the service's framing (2-space indent, trailing newline) unless marked compact."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.micro")
    ap.add_argument("--json", action="store_true", help="print RESULT <json> instead of tables")
    ap.add_argument("--smoke", action="store_true", help="tiny run (checks only)")
    ap.add_argument("--target", type=float, default=0.05, help="seconds per repeat")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    target, repeats = (0.002, 3) if args.smoke else (args.target, args.repeats)
    res = run(target=target, repeats=repeats)
    if args.json:
        print("RESULT " + json.dumps(res), flush=True)
    else:
        print(tables(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
