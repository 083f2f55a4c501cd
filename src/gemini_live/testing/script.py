"""Scripted turns: what the fake "model" does, per trigger, in Python or in a JSON file.

A :class:`Script` is a list of rules (:class:`On`), each a trigger and the actions the model
takes when it fires. Rules are tried in order; the first that matches a user turn wins.
A rule fires ``times`` times (``None``: every time). Turns no rule matches get the default
echo reply ("You said: ..." / "I heard N ms of audio.").

Python::

    from gemini_live.testing import script as s

    demo = s.Script([
        s.On(s.Text("weather"), [s.CallTools([s.Call("get_weather", {"city": "Paris"})])]),
        s.On(s.Utterance(2), [s.Reply("Second thing you said."), s.GoAway(5.0)]),
        s.On(s.ToolResult("get_weather"), [s.Reply("Sunny.")]),
    ])

The equivalent JSON file (``Script.load(path)`` / ``gemini-live fake-server --script``)::

    {"version": 1, "rules": [
      {"when": {"text": "weather"},
       "do": [{"call": [{"name": "get_weather", "args": {"city": "Paris"}}]}]},
      {"when": {"utterance": 2}, "do": [{"reply": "Second thing you said."}, {"goAway": 5.0}]},
      {"when": {"toolResult": "get_weather"}, "do": [{"reply": "Sunny."}]}
    ]}

Triggers: ``{"text": "word"}`` (case-insensitive substring of a user text turn),
``{"utterance": n}`` (the n-th audio utterance of the session, 1-based),
``{"audioMs": [min, max]}`` (an audio utterance at least ``min`` and, when given, at most
``max`` ms long), ``{"turn": n}`` (the n-th user turn of any kind), ``{"toolResult": name}``
(the results of a call batch that included ``name`` came back), ``{"any": true}``.

Actions: ``{"reply": text, "chunks": n, "toneHz": f, "wav": path, "interactionStatus": s,
"usage": true}``, ``{"call": [{"name", "args", "id"}], "blocking": true, "cancelAfter":
false}``, ``{"wait": seconds}``, ``{"goAway": seconds, "close": [code, reason]}``,
``{"drop": true}``, ``{"close": [code, reason]}``, ``{"usage": {"promptTokenCount": n,
...}}``, ``{"send": {...any server frame...}}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from gemini_live.errors import ScriptError, excerpt
from gemini_live.transport._common import sendable

#: Largest script file :meth:`Script.load` reads.
MAX_SCRIPT_BYTES: Final = 4 * 1024 * 1024
#: Bounds on numbers a JSON script may hold: a reply of at most this many chunks, a
#: ``wait`` / ``goAway`` of at most this many seconds.
MAX_CHUNKS: Final = 10_000
MAX_SECONDS: Final = 3600.0

__all__ = [
    "MAX_SCRIPT_BYTES",
    "Action",
    "AnyTurn",
    "AudioLength",
    "Call",
    "CallTools",
    "Close",
    "Drop",
    "GoAway",
    "On",
    "Reply",
    "Script",
    "ScriptError",
    "Send",
    "Text",
    "ToolResult",
    "Trigger",
    "TurnNumber",
    "Usage",
    "Utterance",
    "Wait",
]


# --------------------------------------------------------------------------- triggers


@dataclass(frozen=True, slots=True)
class Text:
    """A user text turn containing ``contains`` (case-insensitive)."""

    contains: str


@dataclass(frozen=True, slots=True)
class Utterance:
    """The ``n``-th audio utterance of the session (1-based)."""

    n: int


@dataclass(frozen=True, slots=True)
class AudioLength:
    """An audio utterance at least ``min_ms`` (and at most ``max_ms``) long."""

    min_ms: float = 0.0
    max_ms: float | None = None


@dataclass(frozen=True, slots=True)
class TurnNumber:
    """The ``n``-th user turn of the session, text or audio (1-based)."""

    n: int


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The results of a call batch that included a call to ``name`` came back."""

    name: str


@dataclass(frozen=True, slots=True)
class AnyTurn:
    """Every user turn."""


#: Anything that decides when an ``On`` rule fires.
Trigger: TypeAlias = Text | Utterance | AudioLength | TurnNumber | ToolResult | AnyTurn


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Reply:
    """One model turn saying ``text``: audio chunks (a tone, or ``wav``) + transcript.

    With TEXT response modality the text is sent as text parts instead. ``chunks``
    defaults to the server's ``reply_chunks``. ``interaction_status`` goes with
    ``turnComplete`` (``"IN_PROGRESS"`` for a filler, ``"IDLE"`` when done);
    ``usage=False`` leaves ``usageMetadata`` out.
    """

    text: str = ""
    chunks: int | None = None
    tone_hz: float = 440.0
    wav: str | None = None
    interaction_status: str | None = None
    usage: bool = True


@dataclass(frozen=True, slots=True)
class Call:
    """One function call (``id`` defaults to ``call-<n>``)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class CallTools:
    """One ``toolCall`` frame with ``calls`` (several = parallel calls).

    ``blocking``: the model waits for every answer (resumption updates say not resumable
    meanwhile), then speaks the results (or runs a :class:`ToolResult` rule).
    ``cancel_after``: send ``toolCallCancellation`` for them right away.
    """

    calls: Sequence[Call]
    blocking: bool = True
    cancel_after: bool = False


@dataclass(frozen=True, slots=True)
class Wait:
    """Pause the scripted model for ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class GoAway:
    """Send ``goAway``; the connection is served until ``time_left``, then closed."""

    time_left: float = 1.0
    close: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """Drop the connection without a close frame (the client sees 1006)."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code`` and ``reason``."""

    code: int = 1011
    reason: str = "Internal error encountered."


@dataclass(frozen=True, slots=True)
class Usage:
    """A frame carrying only ``usageMetadata`` (camelCase fields, as on the wire)."""

    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Send:
    """Send any server frame as is (a JSON object, camelCase keys)."""

    frame: Mapping[str, Any]


#: Anything an ``On`` rule does.
Action: TypeAlias = Reply | CallTools | Wait | GoAway | Drop | Close | Usage | Send


@dataclass(frozen=True, slots=True)
class On:
    """When ``when`` fires, the model does ``do`` in order; ``times=None``: every time."""

    when: Trigger
    do: Sequence[Action]
    times: int | None = 1


@dataclass(frozen=True)
class Script:
    """An ordered list of :class:`On` rules (see the module docstring).

    How often each rule fired is part of the session state (so a resumption from an
    older handle can fire a rule again), not of the script.
    """

    rules: Sequence[On] = ()

    def match(
        self,
        fired: dict[int, int],
        *,
        text: str | None = None,
        audio_ms: float | None = None,
        utterance: int = 0,
        turn: int = 0,
        tool_names: Sequence[str] = (),
    ) -> On | None:
        """The first rule that fires for this turn (counted in ``fired``), or None."""
        for i, rule in enumerate(self.rules):
            if rule.times is not None and fired.get(i, 0) >= rule.times:
                continue
            if _fires(rule.when, text, audio_ms, utterance, turn, tool_names):
                fired[i] = fired.get(i, 0) + 1
                return rule
        return None

    def __add__(self, other: Script) -> Script:
        return Script([*self.rules, *other.rules])

    # ------------------------------------------------------------------ JSON

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Script:
        """Build a script from its JSON form (``{"version": 1, "rules": [...]}``)."""
        if not isinstance(obj, Mapping):
            raise ScriptError("a script is a JSON object with a 'rules' list")
        version = obj.get("version", 1)
        if version != 1:
            raise ScriptError(f"unsupported script version {version!r} (expected 1)")
        rules = obj.get("rules")
        if not isinstance(rules, list):
            raise ScriptError("'rules' must be a list")
        return cls([_rule(r, i) for i, r in enumerate(rules)])

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read a JSON script file (at most :data:`MAX_SCRIPT_BYTES`).

        Raises:
            ScriptError: the file cannot be read, is not UTF-8 JSON, or is not a script;
                the message is one line naming the file and the problem.
        """
        try:
            with Path(path).open("rb") as f:
                raw = f.read(MAX_SCRIPT_BYTES + 1)
        except OSError as exc:
            raise ScriptError(f"cannot read script {path}: {exc.strerror or exc}") from None
        if len(raw) > MAX_SCRIPT_BYTES:
            raise ScriptError(f"{path}: larger than {MAX_SCRIPT_BYTES} bytes")
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ScriptError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except RecursionError:
            raise ScriptError(f"{path}: JSON nested too deeply") from None
        except ValueError as exc:
            raise ScriptError(f"{path}: not JSON: {exc}") from None
        try:
            return cls.from_json(obj)
        except ScriptError as exc:
            raise ScriptError(f"{path}: {exc}") from None
        except RecursionError:
            raise ScriptError(f"{path}: nested too deeply") from None


def _fires(
    when: Trigger,
    text: str | None,
    audio_ms: float | None,
    utterance: int,
    turn: int,
    tool_names: Sequence[str],
) -> bool:
    if isinstance(when, ToolResult):
        return when.name in tool_names
    if tool_names:
        return False
    if isinstance(when, Text):
        return text is not None and when.contains.lower() in text.lower()
    if isinstance(when, Utterance):
        return audio_ms is not None and utterance == when.n
    if isinstance(when, AudioLength):
        return (
            audio_ms is not None
            and audio_ms >= when.min_ms
            and (when.max_ms is None or audio_ms <= when.max_ms)
        )
    if isinstance(when, TurnNumber):
        return turn == when.n
    return True  # AnyTurn


def _rule(obj: Any, i: int) -> On:
    where = f"rule {i}"
    if not isinstance(obj, Mapping) or "when" not in obj or "do" not in obj:
        raise ScriptError(f"{where}: needs 'when' and 'do'")
    do = obj["do"]
    if not isinstance(do, list):
        raise ScriptError(f"{where}: 'do' must be a list of actions")
    times = obj.get("times", 1)
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ScriptError(f"{where}: 'times' must be a positive integer or null")
    return On(_trigger(obj["when"], where), [_action(a, where) for a in do], times)


def _trigger(obj: Any, where: str) -> Trigger:
    if not isinstance(obj, Mapping) or len(obj) != 1:
        raise ScriptError(f"{where}: 'when' must be an object with one key")
    ((key, value),) = obj.items()
    try:
        if key == "text":
            return Text(str(value))
        if key == "utterance":
            return Utterance(int(value))
        if key == "turn":
            return TurnNumber(int(value))
        if key == "audioMs":
            lo, hi = (value, None) if not isinstance(value, list) else [*value, None][:2]
            return AudioLength(float(lo), None if hi is None else float(hi))
        if key == "toolResult":
            return ToolResult(str(value))
        if key == "any":
            return AnyTurn()
    except (TypeError, ValueError, OverflowError) as exc:
        raise ScriptError(f"{where}: bad trigger {excerpt(key, 40)}: {exc}") from None
    raise ScriptError(f"{where}: unknown trigger {excerpt(key, 40)}")


def _close(value: Any, where: str) -> tuple[int, str]:
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], str)
    ):
        code, reason = value
        if not sendable(code):  # 1006 is {"drop": true}
            raise ScriptError(f"{where}: close code {code} cannot be sent in a close frame")
        return code, reason  # a reason over 123 bytes is cut when sent, as the service does
    raise ScriptError(f"{where}: 'close' must be [code, reason]")


def _number(value: Any, what: str, low: float, high: float) -> float:
    """A finite number in ``[low, high]`` (a ``ValueError`` naming ``what`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {excerpt(value, 40)}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{what} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _call(c: Any) -> Call:
    if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
        raise ValueError("each call needs a 'name' string")
    args = c.get("args", {})
    if not isinstance(args, Mapping):
        raise ValueError("a call's 'args' must be an object")
    cid = c.get("id")
    if cid is not None and not isinstance(cid, str):
        raise ValueError("a call's 'id' must be a string")
    return Call(c["name"], dict(args), cid)


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what!r} must be a JSON object, got {excerpt(value, 40)}")
    return dict(value)


def _action(obj: Any, where: str) -> Action:
    if not isinstance(obj, Mapping) or not obj:
        raise ScriptError(f"{where}: an action must be a non-empty object")
    kind: Literal["reply", "call", "wait", "goAway", "drop", "close", "usage", "send"] | None
    kind = next(
        (k for k in ("reply", "call", "wait", "goAway", "drop", "close", "usage", "send")
         if k in obj),
        None,
    )  # fmt: skip
    try:
        if kind == "reply":
            chunks = obj.get("chunks")
            status = obj.get("interactionStatus")
            if status is not None and not isinstance(status, str):
                raise ValueError("'interactionStatus' must be a string")
            return Reply(
                text=str(obj["reply"]),
                chunks=None if chunks is None else int(_number(chunks, "chunks", 1, MAX_CHUNKS)),
                tone_hz=_number(obj.get("toneHz", 440.0), "toneHz", 1.0, 20_000.0),
                wav=None if obj.get("wav") is None else str(obj["wav"]),
                interaction_status=status,
                usage=bool(obj.get("usage", True)),
            )
        if kind == "call":
            calls = obj["call"]
            if not isinstance(calls, list) or not calls:
                raise ScriptError(f"{where}: 'call' must be a non-empty list")
            return CallTools(
                [_call(c) for c in calls],
                blocking=bool(obj.get("blocking", True)),
                cancel_after=bool(obj.get("cancelAfter", False)),
            )
        if kind == "wait":
            return Wait(_number(obj["wait"], "wait", 0.0, MAX_SECONDS))
        if kind == "goAway":
            close = None if obj.get("close") is None else _close(obj["close"], where)
            return GoAway(_number(obj["goAway"], "goAway", 0.0, MAX_SECONDS), close)
        if kind == "drop":
            return Drop()
        if kind == "close":
            return Close(*_close(obj["close"], where))
        if kind == "usage":
            return Usage(_mapping(obj["usage"], "usage"))
        if kind == "send":
            return Send(_mapping(obj["send"], "send"))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ScriptError(f"{where}: bad {kind or 'action'}: {exc}") from None
    raise ScriptError(f"{where}: unknown action {excerpt(dict(obj), 80)}")
