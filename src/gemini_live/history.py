"""A bounded, readable conversation history that can seed a fresh session. Pure: no asyncio.

When a session cannot be resumed (no handle yet, handle expired after 2 h, resume
rejected) the service starts a fresh session that knows nothing of the conversation.
:class:`History` keeps what was said so it can be sent again:

* fed by the session's events (:meth:`History.observe`: final user transcripts, model
  transcripts / text, tool calls) and by what the app sent (:meth:`History.add_user_text`,
  :meth:`History.add_tool_result`); audio is kept as its transcript only;
* bounded (``max_entries``, ``max_chars``): the oldest entries go first, optionally
  folded into a summary by a ``summarizer`` hook; one entry longer than ``max_chars``
  keeps only its last ``max_chars`` characters (behind a ``[... N characters cut]``
  marker), and text still being transcribed (no ``turnComplete`` yet) is held to
  ``max_chars`` per speaker the same way, so a seed is never larger than ``max_chars``
  (:attr:`History.truncated` and :attr:`History.cut_chars` count what was cut);
* readable (:attr:`History.entries`, :meth:`History.render`);
* turned into the seed for a fresh session (:meth:`History.seed`): ``clientContent``
  messages with ``turnComplete: false`` to send right after ``setupComplete`` and before
  any other input, plus whether the setup needs
  ``historyConfig.initialHistoryInClientContent: true``, following the model family's
  quirks in :mod:`gemini_live.models` (2.5: no historyConfig, last seed turn must be a
  user turn; 3.x: historyConfig).

Sketch of the session side::

    seed = history.seed(setup.model, vertex=False)
    setup = seed.apply(setup)                 # historyConfig when the family needs it
    ... send setup, wait for setupComplete ...
    for message in seed.messages:             # before anything queued
        send(message)
"""

from __future__ import annotations

import copy
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from gemini_live import events as ev
from gemini_live.errors import ConfigError
from gemini_live.models import family_of
from gemini_live.types import (
    ClientContent,
    ClientMessage,
    Content,
    FunctionCall,
    FunctionResponse,
    HistoryConfig,
    Part,
    Setup,
    UnsetType,
)

__all__ = ["History", "HistoryEntry", "Seed", "Summarizer"]

Role = Literal["user", "model"]
Kind = Literal["text", "transcript", "tool_call", "tool_result", "summary"]

#: Called with the entries about to be dropped (oldest first; a previous summary, if any,
#: is the first of them); returns the text of the summary that replaces them.
Summarizer = Callable[[Sequence["HistoryEntry"]], str]

_TOOL_CHARS = 1000  # longest tool argument / result JSON kept in a rendered entry


def _compact(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _TOOL_CHARS else text[: _TOOL_CHARS - 3] + "..."


class HistoryEntry(msgspec.Struct, frozen=True, gc=False):
    """One thing said or done in the conversation (untracked by the garbage collector:
    only strings inside, and a long conversation keeps many)."""

    role: Role
    kind: Kind
    #: The text (for tool entries: the rendered call / result, see :meth:`render`).
    text: str
    #: Tool entries: the function name and call id.
    name: str | None = None
    call_id: str | None = None

    def render(self) -> str:
        """The entry as it is sent in a seed and shown by :meth:`History.render`."""
        if self.kind == "summary":
            return f"(Summary of the earlier conversation) {self.text}"
        return self.text

    @property
    def size(self) -> int:
        return len(self.text)


@dataclass(frozen=True, slots=True)
class Seed:
    """What to send to a fresh session so it knows the conversation."""

    #: Set ``historyConfig.initialHistoryInClientContent: true`` in the setup.
    history_config: bool
    #: ``clientContent`` frames, in order, right after ``setupComplete``, before any input.
    messages: tuple[ClientMessage, ...]
    #: Number of turns (``Content`` objects) the messages hold.
    turns: int

    def apply(self, setup: Setup) -> Setup:
        """``setup`` with ``historyConfig`` set when needed (a copy; ``setup`` is untouched)."""
        if not self.history_config or not self.messages:
            return setup
        out = copy.deepcopy(setup)
        out.history_config = HistoryConfig(initial_history_in_client_content=True)
        return out


@dataclass
class _Text:
    """Fragments of one speaker's text not yet made an entry, at most ``limit`` chars."""

    #: Empty ``()`` while there is no text (no container per session for the garbage
    #: collector to walk), a list from the first fragment until the first cut, then a
    #: deque (drops from the front in O(1)): an empty deque is ~0.7 KiB and every
    #: session holds two of these.
    parts: list[str] | deque[str] | tuple[()] = ()
    chars: int = 0
    #: Characters dropped from the front to keep within the limit.
    cut: int = 0

    def add(self, text: str, limit: int) -> int:
        """Append ``text``; drop the oldest characters beyond ``limit``; return how many."""
        parts = self.parts
        if parts:
            parts.append(text)
        else:
            self.parts = [text]
        self.chars += len(text)
        return 0 if self.chars <= limit else self._cut(limit)

    def _cut(self, limit: int) -> int:
        parts = self.parts
        if not isinstance(parts, deque):
            parts = self.parts = deque(parts)
        dropped = 0
        while self.chars > limit:
            head = parts[0]
            over = self.chars - limit
            if len(head) <= over:
                parts.popleft()
                n = len(head)
            else:
                parts[0] = head[over:]
                n = over
            self.chars -= n
            dropped += n
        self.cut += dropped
        return dropped

    def take(self) -> tuple[str, int]:
        """The text so far and how many characters were cut from it; empties it."""
        text, cut = "".join(self.parts), self.cut
        self.parts = ()
        self.chars = self.cut = 0
        return text, cut

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.parts)


@dataclass
class _Pending:
    user: _Text = field(default_factory=_Text)
    model: _Text = field(default_factory=_Text)
    model_kind: Kind = "transcript"


def _marker(cut: int) -> str:
    return f"[\u2026 {cut} characters cut] "


class History:
    """A bounded conversation history. See the module docstring.

    Args:
        max_entries: Keep at most this many entries.
        max_chars: Keep at most this many characters of entry text.
        summarizer: Optional hook that folds dropped entries into one summary entry.
    """

    def __init__(
        self,
        *,
        max_entries: int = 200,
        max_chars: int = 32_000,
        summarizer: Summarizer | None = None,
    ) -> None:
        if max_entries < 1 or max_chars < 1:
            raise ConfigError("max_entries and max_chars must be positive")
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.summarizer = summarizer
        self._entries: list[HistoryEntry] = []
        self._chars = 0
        self._pending = _Pending()
        #: Entries dropped by the bound so far (summarised or not).
        self.dropped = 0
        #: Entries longer than ``max_chars`` that kept only their end.
        self.truncated = 0
        #: Characters cut so far: from oversized entries and from text still being
        #: transcribed that outgrew ``max_chars`` before a turn ended.
        self.cut_chars = 0

    @classmethod
    def from_messages(
        cls, items: Iterable[HistoryEntry | Content | tuple[str, str]], **options: Any
    ) -> History:
        """Build a history from entries, ``Content`` turns or ``(role, text)`` pairs."""
        h = cls(**options)
        for item in items:
            if isinstance(item, HistoryEntry):
                h._append(item)
            elif isinstance(item, Content):
                role = item.role if isinstance(item.role, str) else "user"
                parts = [] if isinstance(item.parts, UnsetType) else item.parts
                text = "".join(p.text for p in parts if isinstance(p.text, str))
                h._append(HistoryEntry(_role(role), "text", text))
            else:
                role, text = item
                h._append(HistoryEntry(_role(role), "text", text))
        return h

    # -- reading ---------------------------------------------------------------------

    @property
    def entries(self) -> tuple[HistoryEntry, ...]:
        """Every kept entry, oldest first (text still being transcribed is not included)."""
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(tuple(self._entries))

    @property
    def chars(self) -> int:
        return self._chars

    def render(self) -> str:
        """``user: ...`` / ``model: ...`` lines, one per entry."""
        return "\n".join(f"{e.role}: {e.render()}" for e in self._entries)

    def contents(self) -> list[Content]:
        """The entries as ``Content`` turns: consecutive entries of one role share a turn."""
        out: list[Content] = []
        for e in self._entries:
            part = Part(text=e.render())
            if out and out[-1].role == e.role and isinstance(out[-1].parts, list):
                out[-1].parts.append(part)
            else:
                out.append(Content(parts=[part], role=e.role))
        return out

    # -- feeding ---------------------------------------------------------------------

    def add_user_text(self, text: str) -> None:
        """The user typed ``text`` (``send_text`` / ``send_client_content``)."""
        if text:
            self.flush()
            self._append(HistoryEntry("user", "text", text))

    def add_model_text(self, text: str) -> None:
        """Model text that did not come through :meth:`observe`."""
        if text:
            self.flush()
            self._append(HistoryEntry("model", "text", text))

    def add_tool_call(self, call: FunctionCall) -> None:
        name = call.name if isinstance(call.name, str) else "?"
        args = call.args if isinstance(call.args, dict) else {}
        cid = call.id if isinstance(call.id, str) else None
        self.flush()
        self._append(
            HistoryEntry("model", "tool_call", f"[called {name}({_compact(args)})]", name, cid)
        )

    def add_tool_result(self, response: FunctionResponse) -> None:
        """A tool result the app sent (``send_tool_response``)."""
        cid = response.id if isinstance(response.id, str) else None
        self.flush()
        self._append(
            HistoryEntry(
                "model",
                "tool_result",
                f"[{response.name} returned {_compact(response.response)}]",
                response.name,
                cid,
            )
        )

    def amend_last_model(self, text: str) -> None:
        """Replace the text of the last model transcript/text entry (e.g. with the part of
        an interrupted reply that was actually played, from :mod:`gemini_live.transcript`)."""
        self.flush()
        for i in range(len(self._entries) - 1, -1, -1):
            e = self._entries[i]
            if e.role == "model" and e.kind in ("transcript", "text"):
                text = self._fit(text)
                self._chars += len(text) - e.size
                if text:
                    self._entries[i] = HistoryEntry("model", e.kind, text)
                else:
                    del self._entries[i]
                if self._chars > self.max_chars:
                    self._shrink()
                return

    def observe_words(self, text: str) -> None:
        """:meth:`observe` for the text of an ``OutputTranscription`` (the receive hot
        path: most frames of a spoken reply carry a few words)."""
        model = self._pending.model
        parts = model.parts
        if parts:
            parts.append(text)  # an empty text adds nothing to the words
        elif text:
            model.parts = [text]
        else:
            return
        chars = model.chars = model.chars + len(text)
        if chars > self.max_chars:
            self.cut_chars += model._cut(self.max_chars)

    def observe(self, event: ev.Event) -> None:
        """Feed one session event."""
        p = self._pending
        if isinstance(event, ev.OutputTranscription):  # the most frequent first
            if event.text:
                self.cut_chars += p.model.add(event.text, self.max_chars)
        elif isinstance(event, ev.InputTranscription):
            if not event.interim and event.text:
                self.cut_chars += p.user.add(event.text, self.max_chars)
        elif isinstance(event, ev.ModelText):
            if not event.thought and event.text:
                self.cut_chars += p.model.add(event.text, self.max_chars)
                p.model_kind = "text"
        elif isinstance(event, ev.ToolCall):
            for call in event.calls:
                self.add_tool_call(call)
        elif isinstance(event, ev.ToolCallCancellation):
            ids = set(event.ids)
            self.flush()
            keep = [e for e in self._entries if not (e.kind == "tool_call" and e.call_id in ids)]
            self._chars -= sum(e.size for e in self._entries) - sum(e.size for e in keep)
            self._entries = keep
        elif isinstance(
            event, ev.TurnComplete | ev.GenerationComplete | ev.Interrupted | ev.Closed
        ):
            self.flush()

    def flush(self) -> None:
        """Turn text still being transcribed into entries (user first, then model)."""
        p = self._pending
        if p.user:
            text, cut = p.user.take()
            text = text.strip()
            if text:
                self._append(HistoryEntry("user", "transcript", self._fit(text, cut)))
        if p.model:
            text, cut = p.model.take()
            text = text.strip()
            kind = p.model_kind
            p.model_kind = "transcript"
            if text:
                self._append(HistoryEntry("model", kind, self._fit(text, cut)))

    def clear(self) -> None:
        self._entries.clear()
        self._chars = 0
        self._pending = _Pending()

    # -- bound -----------------------------------------------------------------------

    def _fit(self, text: str, cut: int = 0) -> str:
        """``text`` within ``max_chars``: its end behind a marker when too long (counted).

        ``cut``: characters already dropped from the front of ``text`` (pending text).
        """
        limit = self.max_chars
        if len(text) <= limit and not cut:
            return text
        # The widest marker this cut can need; the real one is never wider.
        keep = limit - len(_marker(cut + len(text)))
        if keep < 1:  # a limit too small for a marker: the end of the text only
            kept, marker = text[-limit:], ""
        else:
            kept = text[-keep:] if len(text) > keep else text
            marker = _marker(cut + len(text) - len(kept))
        self.truncated += 1
        self.cut_chars += len(text) - len(kept)
        return marker + kept

    def _append(self, entry: HistoryEntry) -> None:
        if entry.size > self.max_chars:
            entry = HistoryEntry(
                entry.role, entry.kind, self._fit(entry.text), entry.name, entry.call_id
            )
        self._entries.append(entry)
        self._chars += entry.size
        if len(self._entries) > self.max_entries or self._chars > self.max_chars:
            self._shrink()

    def _shrink(self) -> None:
        entries = self._entries
        if self.summarizer is None:
            while len(entries) > 1 and (
                len(entries) > self.max_entries or self._chars > self.max_chars
            ):
                self._chars -= entries.pop(0).size
                self.dropped += 1
            return
        # Summarise the oldest half (at least enough to get under the bounds), so the
        # hook runs rarely; the summary takes the first place.
        limit_n = max(1, self.max_entries // 2)
        limit_c = self.max_chars // 2
        cut = 0
        n, chars = len(entries), self._chars
        while cut < len(entries) - 1 and (n > limit_n or chars > limit_c):
            chars -= entries[cut].size
            n -= 1
            cut += 1
        if cut == 0:
            return
        old = entries[:cut]
        summary = self.summarizer(old)
        self.dropped += sum(1 for e in old if e.kind != "summary")
        del entries[:cut]
        self._chars -= sum(e.size for e in old)
        if summary:
            s = HistoryEntry("user", "summary", self._fit(summary))
            entries.insert(0, s)
            self._chars += s.size
        while len(entries) > 1 and (
            len(entries) > self.max_entries or self._chars > self.max_chars
        ):
            self._chars -= entries.pop(1 if entries[0].kind == "summary" else 0).size
            self.dropped += 1

    # -- seeding ---------------------------------------------------------------------

    def seed(self, model: str, *, vertex: bool, turns_per_message: int = 50) -> Seed:
        """The seed for a fresh session of ``model`` (see :class:`Seed`).

        Raises:
            ConfigError: the model family cannot take history (transcribe / translate).
        """
        self.flush()
        fam = family_of(model)
        if fam is not None and not fam.history.supported:
            if not self._entries:
                return Seed(False, (), 0)
            raise ConfigError(
                f"model {model!r} ({fam.title}) cannot be seeded with conversation history"
            )
        contents = self.contents()
        if not contents:
            return Seed(False, (), 0)
        history_config = True if fam is None else fam.uses_history_config(vertex=vertex)
        last_user = fam is not None and fam.history.last_turn_user
        turn_complete = fam is not None and fam.history.turn_complete
        if last_user and contents[-1].role != "user":
            # 2.5 wants the seed to end with a user turn (pipecat's "blank user turn").
            contents.append(Content(parts=[Part(text=" ")], role="user"))
        size = max(1, turns_per_message)
        chunks = [contents[i : i + size] for i in range(0, len(contents), size)]
        messages = tuple(
            ClientMessage(
                client_content=ClientContent(
                    turns=chunk, turn_complete=turn_complete and i == len(chunks) - 1
                )
            )
            for i, chunk in enumerate(chunks)
        )
        return Seed(history_config, messages, len(contents))


def _role(role: str) -> Role:
    if role == "user":
        return "user"
    if role in ("model", "assistant"):
        return "model"
    raise ConfigError(f"history role must be 'user' or 'model', got {role!r}")
