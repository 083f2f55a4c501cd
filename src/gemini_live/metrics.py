"""Usage accounting and latency measurement for Live sessions. Pure: no asyncio, no I/O.

:class:`UsageMeter` turns the service's ``usageMetadata`` snapshots into per-turn and
session token totals. The service repeats usage on many frames and the values are
*cumulative* snapshots, so adding every frame over-counts. The meter keeps, per turn, the
field-wise maximum of that turn's snapshots (a repeated or stale snapshot changes nothing)
and the session total is the sum of the per-turn finals. Both backends' field names are
read (Gemini API ``responseTokenCount`` / Vertex ``candidatesTokenCount``).

:class:`LatencyTracker` measures, per turn, the time from the end of the user's input (the
last ``send_*`` before the reply) to the first model audio, the first model text or output
transcript, and ``turnComplete``.

Both count *interactions*: a ``turnComplete`` with ``interactionStatus: IN_PROGRESS``
(3.8 Extended Thinking fillers) does not end the turn; the one that ends the interaction
(``IDLE``, or no status on other models) does, and so does an
:class:`~gemini_live.events.InteractionTimeout` from the watchdog.

Both are fed from the event stream; :func:`observe` and :func:`observe_input` do the
routing::

    meter, tracker = UsageMeter(), LatencyTracker()
    observe_input(meter, tracker, time.monotonic())      # after each send_text/send_audio...
    async for event in session:
        observe(meter, tracker, event, time.monotonic())
    print(meter.session.total, tracker.last_turn.time_to_first_audio)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from gemini_live import events as ev
from gemini_live.types import UnsetType, UsageMetadata
from gemini_live.types.server import ModalityTokenCount

__all__ = [
    "LatencyTracker",
    "PriceTable",
    "TokenCounts",
    "TurnLatency",
    "TurnUsage",
    "UsageMeter",
    "format_ms",
    "observe",
    "observe_audio",
    "observe_input",
]

Clock = Callable[[], float]


# --------------------------------------------------------------------------- tokens


def _int(value: int | UnsetType) -> int:
    return value if isinstance(value, int) else 0


def _details(items: list[ModalityTokenCount] | UnsetType) -> dict[str, int]:
    out: dict[str, int] = {}
    if isinstance(items, UnsetType):
        return out
    for item in items:
        modality = item.modality if isinstance(item.modality, str) else "UNSPECIFIED"
        out[modality] = out.get(modality, 0) + _int(item.token_count)
    return out


def _max_map(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        if v > out.get(k, 0):
            out[k] = v
    return out


def _add_map(a: Mapping[str, int], b: Mapping[str, int], sign: int = 1) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        n = out.get(k, 0) + sign * v
        if n:
            out[k] = n
        else:
            out.pop(k, None)
    return out


class TokenCounts(msgspec.Struct, frozen=True, gc=False):
    """Token counts, normalised across backends. Modality maps are keyed TEXT/AUDIO/...

    Like every per-turn record here, a Struct the garbage collector does not track (its
    fields hold no objects that could refer back to it): a server keeps thousands of them
    and the collector's full passes would walk each one (ADR 31).
    """

    prompt: int = 0
    response: int = 0
    total: int = 0
    thoughts: int = 0
    tool_use_prompt: int = 0
    cached: int = 0
    prompt_by_modality: Mapping[str, int] = msgspec.field(default_factory=dict)
    response_by_modality: Mapping[str, int] = msgspec.field(default_factory=dict)
    cached_by_modality: Mapping[str, int] = msgspec.field(default_factory=dict)
    tool_use_by_modality: Mapping[str, int] = msgspec.field(default_factory=dict)

    @classmethod
    def from_usage(cls, usage: UsageMetadata) -> TokenCounts:
        """Read one ``usageMetadata`` snapshot (either backend's names)."""
        prompt = _int(usage.prompt_token_count)
        response = usage.response_tokens() or 0
        thoughts = _int(usage.thoughts_token_count)
        tool = _int(usage.tool_use_prompt_token_count)
        total = _int(usage.total_token_count) or (prompt + response + thoughts + tool)
        resp_details = (
            usage.response_tokens_details
            if not isinstance(usage.response_tokens_details, UnsetType)
            else usage.candidates_tokens_details
        )
        return cls(
            prompt=prompt,
            response=response,
            total=total,
            thoughts=thoughts,
            tool_use_prompt=tool,
            cached=_int(usage.cached_content_token_count),
            prompt_by_modality=_details(usage.prompt_tokens_details),
            response_by_modality=_details(resp_details),
            cached_by_modality=_details(usage.cache_tokens_details),
            tool_use_by_modality=_details(usage.tool_use_prompt_tokens_details),
        )

    def max(self, other: TokenCounts) -> TokenCounts:
        """Field-wise maximum (how two snapshots of the same turn combine)."""
        return TokenCounts(
            prompt=max(self.prompt, other.prompt),
            response=max(self.response, other.response),
            total=max(self.total, other.total),
            thoughts=max(self.thoughts, other.thoughts),
            tool_use_prompt=max(self.tool_use_prompt, other.tool_use_prompt),
            cached=max(self.cached, other.cached),
            prompt_by_modality=_max_map(self.prompt_by_modality, other.prompt_by_modality),
            response_by_modality=_max_map(self.response_by_modality, other.response_by_modality),
            cached_by_modality=_max_map(self.cached_by_modality, other.cached_by_modality),
            tool_use_by_modality=_max_map(self.tool_use_by_modality, other.tool_use_by_modality),
        )

    def _combine(self, other: TokenCounts, sign: int) -> TokenCounts:
        return TokenCounts(
            prompt=self.prompt + sign * other.prompt,
            response=self.response + sign * other.response,
            total=self.total + sign * other.total,
            thoughts=self.thoughts + sign * other.thoughts,
            tool_use_prompt=self.tool_use_prompt + sign * other.tool_use_prompt,
            cached=self.cached + sign * other.cached,
            prompt_by_modality=_add_map(self.prompt_by_modality, other.prompt_by_modality, sign),
            response_by_modality=_add_map(
                self.response_by_modality, other.response_by_modality, sign
            ),
            cached_by_modality=_add_map(self.cached_by_modality, other.cached_by_modality, sign),
            tool_use_by_modality=_add_map(
                self.tool_use_by_modality, other.tool_use_by_modality, sign
            ),
        )

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return self._combine(other, 1)

    def __sub__(self, other: TokenCounts) -> TokenCounts:
        return self._combine(other, -1)

    def dominates(self, other: TokenCounts) -> bool:
        """True when no headline count of ``self`` is below ``other``'s."""
        return (
            self.prompt >= other.prompt
            and self.response >= other.response
            and self.total >= other.total
            and self.thoughts >= other.thoughts
            and self.tool_use_prompt >= other.tool_use_prompt
        )

    def summary(self) -> str:
        """``prompt 120 (AUDIO 100, TEXT 20) · response 45 (AUDIO 45) · total 165``."""

        def part(name: str, n: int, by: Mapping[str, int]) -> str:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
            return f"{name} {n}" + (f" ({detail})" if detail else "")

        items = [
            part("prompt", self.prompt, self.prompt_by_modality),
            part("response", self.response, self.response_by_modality),
        ]
        if self.thoughts:
            items.append(f"thoughts {self.thoughts}")
        if self.tool_use_prompt:
            items.append(f"tool-use {self.tool_use_prompt}")
        if self.cached:
            items.append(f"cached {self.cached}")
        items.append(f"total {self.total}")
        return " · ".join(items)


ZERO = TokenCounts()


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices per 1,000,000 tokens, per modality (``"TEXT"``, ``"AUDIO"``, ``"IMAGE"``, ...).

    Tokens without a modality breakdown are priced at the ``"TEXT"`` rate (or
    ``default_*`` when given). Thinking tokens are priced as TEXT output; tool-use prompt
    tokens as TEXT input; cached tokens are not discounted. Fill it with your contract's
    prices; no prices ship with the library.
    """

    input: Mapping[str, float]
    output: Mapping[str, float]
    default_input: float | None = None
    default_output: float | None = None
    currency: str = "USD"

    def _rate(self, table: Mapping[str, float], modality: str, default: float | None) -> float:
        if modality in table:
            return table[modality]
        if default is not None:
            return default
        return table.get("TEXT", 0.0)

    def _side(
        self, total: int, by: Mapping[str, int], table: Mapping[str, float], default: float | None
    ) -> float:
        cost = 0.0
        rest = total
        for modality, n in by.items():
            cost += n * self._rate(table, modality, default)
            rest -= n
        if rest > 0:
            cost += rest * (default if default is not None else table.get("TEXT", 0.0))
        return cost

    def cost(self, tokens: TokenCounts) -> float:
        """Estimated cost of ``tokens`` in :attr:`currency`."""
        text_in = self._rate(self.input, "TEXT", self.default_input)
        text_out = self._rate(self.output, "TEXT", self.default_output)
        c = self._side(tokens.prompt, tokens.prompt_by_modality, self.input, self.default_input)
        c += self._side(
            tokens.response, tokens.response_by_modality, self.output, self.default_output
        )
        c += tokens.thoughts * text_out + tokens.tool_use_prompt * text_in
        return c / 1_000_000


class TurnUsage(msgspec.Struct, gc=False):
    """Usage of one turn: the field-wise maximum of its snapshots."""

    index: int
    tokens: TokenCounts = ZERO
    snapshots: int = 0
    complete: bool = False


def _max_turns(max_turns: int | None) -> int | None:
    """A meter's ``max_turns``, checked now (its deque is made at the first turn)."""
    if max_turns is not None:
        if not isinstance(max_turns, int):
            raise TypeError("max_turns must be an int or None")
        if max_turns < 0:
            raise ValueError("max_turns must be non-negative")
    return max_turns


def _first_turns(meter: UsageMeter | LatencyTracker) -> deque[Any]:
    """A meter's ``turns`` deque, made at its first use (bounded by ``max_turns``)."""
    turns: deque[Any] = deque(maxlen=meter._max_turns)
    meter._turns = turns
    return turns


class UsageMeter:
    """Per-turn and session token totals from cumulative ``usageMetadata`` snapshots.

    Feed it with :meth:`add` (a :class:`~gemini_live.events.Usage` or a
    :class:`~gemini_live.types.UsageMetadata`) and :meth:`turn_complete`; call
    :meth:`start_turn` when new activity (user input, model output) begins, so that a
    snapshot trailing ``turnComplete`` (it follows it in the same frame) is still counted
    for the turn it belongs to.

    ``cumulative="turn"`` (default): snapshots restart every turn; session = sum of the
    per-turn finals. ``cumulative="session"``: snapshots keep growing across turns; a turn's
    usage is the growth since the previous turn's final and the session total is the last
    snapshot.
    """

    def __init__(
        self,
        *,
        prices: PriceTable | None = None,
        cumulative: Literal["turn", "session"] = "turn",
        max_turns: int | None = 1000,
    ) -> None:
        if cumulative not in ("turn", "session"):
            raise ValueError("cumulative must be 'turn' or 'session'")
        self.prices = prices
        self.cumulative = cumulative
        self._max_turns = _max_turns(max_turns)
        self._turns: deque[TurnUsage] | None = None
        self._n = 0
        self._current: TurnUsage | None = None
        #: True between turnComplete and the next activity: trailing snapshots still count.
        self._grace = False
        self._session = ZERO
        self._base = ZERO  # session mode: the previous turn's final snapshot
        self._snapshot = ZERO  # session mode: the latest snapshot (max)
        self._last_meta: UsageMetadata | None = None  # the last snapshot counted
        #: (old, new) changes not yet folded into the session total; ``()`` while there
        #: are none (no list per session for the garbage collector to walk).
        self._session_changes: list[tuple[TokenCounts, TokenCounts]] | tuple[()] = ()
        self.snapshots = 0

    @property
    def turns(self) -> deque[TurnUsage]:
        """The last ``max_turns`` turns, oldest first (made at the first use: an idle
        session's meter holds no deque)."""
        turns = self._turns
        return turns if turns is not None else _first_turns(self)

    @turns.setter
    def turns(self, turns: deque[TurnUsage]) -> None:
        self._turns = turns  # assignable, as the attribute it was

    def __repr__(self) -> str:
        n = sum(1 for t in self.turns if t.complete)
        turns = "1 turn" if n == 1 else f"{n} turns"
        return f"<UsageMeter {turns}: {self.session.summary()}>"

    # -- feeding ---------------------------------------------------------------------

    def add(self, usage: ev.Usage | UsageMetadata) -> TurnUsage:
        """Record one snapshot; returns the turn it was counted for."""
        meta = usage.metadata if isinstance(usage, ev.Usage) else usage
        self.snapshots += 1
        turn = self._current
        if (
            turn is not None
            and turn.snapshots
            and meta == self._last_meta
            and (not turn.complete or (self._grace and self.cumulative == "session"))
        ):
            # The service repeats the same snapshot on many frames: the counts stay.
            turn.snapshots += 1
            return turn
        snap = TokenCounts.from_usage(meta)
        if turn is not None and turn.complete and self._grace:
            if self.cumulative == "turn" and turn.snapshots and not snap.dominates(turn.tokens):
                turn = None  # smaller than the closed turn: a new turn has started
        elif turn is not None and turn.complete:
            turn = None
        if turn is None:
            turn = self._open_turn()
        self._last_meta = meta
        if self.cumulative == "turn":
            new = turn.tokens.max(snap)
        else:
            self._snapshot = self._snapshot.max(snap)
            new = self._snapshot - self._base
        # The session total is folded when read (or every 64 changes), not per snapshot.
        pending = self._session_changes
        if pending:
            pending.append((turn.tokens, new))
            if len(pending) >= 64:
                self._fold_session()
        else:
            self._session_changes = [(turn.tokens, new)]
        turn.tokens = new
        turn.snapshots += 1
        return turn

    def turn_complete(self) -> TurnUsage:
        """Close the current turn (creating an empty one if no usage arrived for it)."""
        turn = self._current
        if turn is None or (turn.complete and not self._grace):
            turn = self._open_turn()
        turn.complete = True
        self._grace = True
        return turn

    def start_turn(self) -> None:
        """New activity began: later snapshots belong to a new turn once this one is done."""
        if self._current is not None and self._current.complete:
            self._grace = False
            if self.cumulative == "session":
                self._base = self._snapshot

    def _open_turn(self) -> TurnUsage:
        if self.cumulative == "session":
            self._base = self._snapshot
        self._n += 1
        turn = TurnUsage(self._n)
        self.turns.append(turn)
        self._current = turn
        self._grace = False
        return turn

    # -- reading ---------------------------------------------------------------------

    def _fold_session(self) -> None:
        total = self._session
        for old, new in self._session_changes:
            total = (total + new) if old is ZERO else (total - old + new)
        self._session = total
        self._session_changes = ()

    @property
    def session(self) -> TokenCounts:
        """Session totals: the sum of every turn's final counts."""
        if self._session_changes:
            self._fold_session()
        return self._session

    @property
    def current(self) -> TurnUsage | None:
        """The turn being counted now (may be complete, within its trailing window)."""
        return self._current

    @property
    def last_turn(self) -> TurnUsage | None:
        """The most recent completed turn."""
        for turn in reversed(self.turns):
            if turn.complete:
                return turn
        return None

    def cost(self, tokens: TokenCounts | TurnUsage | None = None) -> float | None:
        """Estimated cost of ``tokens`` (default: the session) with :attr:`prices`."""
        if self.prices is None:
            return None
        if tokens is None:
            tokens = self.session
        elif isinstance(tokens, TurnUsage):
            tokens = tokens.tokens
        return self.prices.cost(tokens)


# --------------------------------------------------------------------------- latency


def format_ms(seconds: float | None) -> str:
    """``"212 ms"``, ``"3.4 ms"`` below 10 ms, ``"—"`` for None."""
    if seconds is None:
        return "—"
    v = seconds * 1000
    return f"{v:.1f} ms" if v < 10 else f"{v:.0f} ms"


class TurnLatency(msgspec.Struct, gc=False):
    """Timestamps (monotonic seconds) of one turn and the derived latencies.

    ``input_end`` is None for a turn the model started on its own (for example the reply
    that follows a tool response); then every ``time_to_*`` is None.
    """

    index: int
    input_end: float | None = None
    activity_end: float | None = None
    first_input_transcription: float | None = None
    tool_call: float | None = None
    first_audio: float | None = None
    first_text: float | None = None
    turn_complete: float | None = None
    interrupted: bool = False
    audio_bytes: int = 0

    def _since_input(self, t: float | None) -> float | None:
        if t is None or self.input_end is None:
            return None
        return max(0.0, t - self.input_end)

    @property
    def responded(self) -> bool:
        return self.first_audio is not None or self.first_text is not None

    @property
    def time_to_first_audio(self) -> float | None:
        return self._since_input(self.first_audio)

    @property
    def time_to_first_text(self) -> float | None:
        return self._since_input(self.first_text)

    @property
    def time_to_first_response(self) -> float | None:
        times = [t for t in (self.first_audio, self.first_text) if t is not None]
        return self._since_input(min(times)) if times else None

    @property
    def time_to_tool_call(self) -> float | None:
        return self._since_input(self.tool_call)

    @property
    def time_to_activity_end(self) -> float | None:
        return self._since_input(self.activity_end)

    @property
    def time_to_input_transcription(self) -> float | None:
        return self._since_input(self.first_input_transcription)

    @property
    def time_to_turn_complete(self) -> float | None:
        return self._since_input(self.turn_complete)

    def summary(self) -> str:
        """``first audio 212 ms · first text 215 ms · turn complete 480 ms``."""

        ms = format_ms
        items = []
        if self.tool_call is not None:
            items.append(f"tool call {ms(self.time_to_tool_call)}")
        items += [
            f"first audio {ms(self.time_to_first_audio)}",
            f"first text {ms(self.time_to_first_text)}",
            f"turn complete {ms(self.time_to_turn_complete)}",
        ]
        if self.interrupted:
            items.append("interrupted")
        return " · ".join(items)


class LatencyTracker:
    """Per-turn latency from the end of user input to the first audio/text and turnComplete.

    Call :meth:`mark_user_input` after every user send (audio chunk, audioStreamEnd, text,
    clientContent); the last mark before the reply starts is the turn's reference. Feed
    events with :meth:`on_event`. ``now`` arguments are monotonic seconds; when omitted
    the injected ``clock`` is read.
    """

    def __init__(self, *, clock: Clock = time.monotonic, max_turns: int | None = 1000) -> None:
        self.clock = clock
        self._max_turns = _max_turns(max_turns)
        self._turns: deque[TurnLatency] | None = None
        self._n = 0
        self._pending: TurnLatency | None = None
        self._next_input: float | None = None

    @property
    def turns(self) -> deque[TurnLatency]:
        """The last ``max_turns`` turns, oldest first (made at the first use: an idle
        session's meter holds no deque)."""
        turns = self._turns
        return turns if turns is not None else _first_turns(self)

    @turns.setter
    def turns(self, turns: deque[TurnLatency]) -> None:
        self._turns = turns  # assignable, as the attribute it was

    def __repr__(self) -> str:
        n = len(self.turns)
        turns = "1 turn" if n == 1 else f"{n} turns"
        avg = self.averages()
        parts = [
            f"avg {label} {format_ms(avg[key])}"
            for key, label in (
                ("time_to_first_audio", "first audio"),
                ("time_to_first_text", "first text"),
                ("time_to_turn_complete", "turn complete"),
            )
            if key in avg
        ]
        detail = f": {' · '.join(parts)}" if parts else ""
        pending = ", 1 pending" if self._pending is not None else ""
        return f"<LatencyTracker {turns}{pending}{detail}>"

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    @property
    def pending(self) -> TurnLatency | None:
        """The turn being measured now, if any."""
        return self._pending

    @property
    def last_turn(self) -> TurnLatency | None:
        """The most recently completed turn."""
        return self.turns[-1] if self.turns else None

    def mark_user_input(self, now: float | None = None) -> None:
        """The user just sent input (the latest mark before the reply counts)."""
        t = self._now(now)
        p = self._pending
        if p is not None and not p.responded and p.turn_complete is not None:
            # A tool-only turn the server already closed: it is over, keep it as it is.
            self.turns.append(p)
            p = self._pending = None
        if p is None:
            self._n += 1
            self._pending = TurnLatency(self._n, input_end=t)
        elif not p.responded and p.tool_call is None:
            p.input_end = t
        else:
            # The model is already answering: this input starts the next turn.
            self._next_input = t

    def _turn(self) -> TurnLatency:
        p = self._pending
        if p is None:
            self._n += 1
            p = self._pending = TurnLatency(self._n)
        return p

    def on_event(self, event: ev.Event, now: float | None = None) -> TurnLatency | None:
        """Feed one event; returns the turn it completed, if any."""
        p: TurnLatency | None
        if isinstance(event, ev.ModelAudio):
            p = self._turn()
            if p.first_audio is None:
                p.first_audio = self._now(now)
            p.audio_bytes += len(event.data)
        elif isinstance(event, ev.OutputTranscription | ev.ModelText):
            if isinstance(event, ev.ModelText) and event.thought:
                return None
            if event.text:
                p = self._turn()
                if p.first_text is None:
                    p.first_text = self._now(now)
        elif isinstance(event, ev.InputTranscription):
            p = self._pending
            if p is not None and p.first_input_transcription is None and event.text:
                p.first_input_transcription = self._now(now)
        elif isinstance(event, ev.VoiceActivity):
            p = self._pending
            if p is not None and event.kind == "ACTIVITY_END" and p.activity_end is None:
                p.activity_end = self._now(now)
        elif isinstance(event, ev.ToolCall):
            p = self._turn()
            if p.tool_call is None:
                p.tool_call = self._now(now)
        elif isinstance(event, ev.Interrupted):
            if self._pending is not None:
                self._pending.interrupted = True
        elif isinstance(event, ev.TurnComplete):
            if event.interaction_done:
                return self._complete(self._now(now))
        elif isinstance(event, ev.InteractionTimeout):
            return self._complete(self._now(now))
        return None

    def _complete(self, t: float) -> TurnLatency | None:
        p = self._pending
        if p is None:
            return None
        if p.tool_call is not None and not p.responded and not p.interrupted:
            # A turn that only asked for a tool stays open until the model answers.
            p.turn_complete = t
            return None
        p.turn_complete = t
        self.turns.append(p)
        self._pending = None
        if self._next_input is not None:
            self._n += 1
            self._pending = TurnLatency(self._n, input_end=self._next_input)
            self._next_input = None
        return p

    def averages(self) -> dict[str, float]:
        """Mean time to first audio / text / turn complete over the recorded turns."""
        out: dict[str, float] = {}
        for name in ("time_to_first_audio", "time_to_first_text", "time_to_turn_complete"):
            values = [v for t in self.turns if (v := getattr(t, name)) is not None]
            if values:
                out[name] = sum(values) / len(values)
        return out


# --------------------------------------------------------------------------- adapters

_ACTIVITY = (
    ev.ModelAudio,
    ev.ModelText,
    ev.OutputTranscription,
    ev.InputTranscription,
    ev.ToolCall,
    ev.GenerationComplete,
    ev.Interrupted,
    ev.VoiceActivity,
)


def observe(
    meter: UsageMeter | None, tracker: LatencyTracker | None, event: ev.Event, now: float
) -> None:
    """Route one session event to a meter and/or a tracker (either may be None)."""
    if meter is not None:
        if isinstance(event, ev.Usage):
            meter.add(event)
        elif isinstance(event, ev.TurnComplete):
            if event.interaction_done:
                meter.turn_complete()
        elif isinstance(event, ev.InteractionTimeout):
            meter.turn_complete()
        elif isinstance(event, _ACTIVITY):
            meter.start_turn()
    if tracker is not None:
        tracker.on_event(event, now)


def observe_audio(
    meter: UsageMeter, tracker: LatencyTracker | None, event: ev.ModelAudio, now: float
) -> None:
    """:func:`observe` for a :class:`~gemini_live.events.ModelAudio` (the hot path).

    Runs for every audio frame, so the common case (a turn already answering) is one
    counter update; the turn bookkeeping runs once per turn.
    """
    current = meter._current
    if current is not None and current.complete and meter._grace:
        meter.start_turn()  # once per turn: later frames of the turn find nothing to do
    if tracker is not None:
        p = tracker._pending
        if p is not None and p.first_audio is not None:
            p.audio_bytes += len(event.data)
        else:
            tracker.on_event(event, now)


def observe_transcript(
    meter: UsageMeter, tracker: LatencyTracker | None, event: ev.OutputTranscription, now: float
) -> None:
    """:func:`observe` for an :class:`~gemini_live.events.OutputTranscription` (the words
    that come with the audio): like :func:`observe_audio`, the turn bookkeeping runs once
    per turn and the first text is stamped once."""
    current = meter._current
    if current is not None and current.complete and meter._grace:
        meter.start_turn()
    if tracker is not None and event.text:
        p = tracker._pending
        if p is None or p.first_text is None:
            tracker.on_event(event, now)


def observe_input(meter: UsageMeter | None, tracker: LatencyTracker | None, now: float) -> None:
    """Record that the user just sent input (call after each send_*).

    Runs once per input, so the common case of a streaming conversation (the meter's
    turn still open, the model already answering) is a few attribute reads, inlined.
    """
    if meter is not None:
        current = meter._current
        # start_turn() changes nothing once the completed turn left its grace window.
        if current is not None and current.complete and meter._grace:
            meter.start_turn()
    if tracker is not None:
        p = tracker._pending
        if p is not None and (p.first_audio is not None or p.first_text is not None):
            tracker._next_input = now  # the model is answering: this input starts the next turn
        else:
            tracker.mark_user_input(now)


def observe_all(
    meter: UsageMeter | None,
    tracker: LatencyTracker | None,
    events: Iterable[tuple[float, ev.Event]],
) -> None:
    """Feed a recorded ``(now, event)`` sequence."""
    for now, event in events:
        observe(meter, tracker, event, now)
