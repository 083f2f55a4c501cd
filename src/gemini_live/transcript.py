"""Per-turn transcripts from the event stream, trimmed to what was actually heard.

:class:`Transcript` folds transcription events into :class:`TranscriptTurn` objects, each
with a user and a model :class:`Segment`:

* interim user transcripts (``interim=True``) replace each other; final fragments append;
* a segment closes on ``finished``, ``generationComplete`` (model), ``turnComplete`` or
  ``interrupted``; the turn itself ends at ``turnComplete`` (``interaction_done`` tells
  whether that also ended the whole interaction, see 3.8 Extended Thinking);
* after an interruption the model segment is trimmed to the audio that was played:
  model audio arrives faster than real time, so the transcript of audio that was
  received but flushed from the playback queue was never heard.

Trimming needs to know how much of the turn's audio was played. Pass the
:class:`~gemini_live.audio.PlaybackBuffer` that plays the audio (feed each event to the
transcript *before* pushing its audio into the buffer, and before flushing the buffer on
``Interrupted``), or call :meth:`Transcript.trim` with a played duration yourself.

Each output-transcript fragment is anchored to the turn's audio: by default to the audio
received up to and including its frame (the Gemini API sends the transcript with or
after its audio); with ``transcript_leads_audio=True`` (Vertex AI, whose transcript runs
ahead of the audio) to the end of the next audio chunk, and a fragment no audio followed
is dropped when trimming. Text spanning the played position is cut at a word boundary in
proportion.

Bounded: at most ``max_turns`` turns are kept, and a segment that grows past
``max_segment_chars`` (a model that talks for minutes without ``turnComplete``, a stuck
stream) loses its oldest text; :attr:`Segment.cut_chars` and :attr:`Transcript.cut_chars`
count what was cut.

Pure: no asyncio, no I/O::

    transcript = Transcript(playback=buffer)
    async for event in session:
        transcript.observe(event)
        ...
    for turn in transcript.turns:
        print(turn.user.text, "->", turn.model.text)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from gemini_live import events as ev
from gemini_live.errors import ConfigError

if TYPE_CHECKING:
    from gemini_live.audio import PlaybackBuffer

__all__ = ["Segment", "Transcript", "TranscriptTurn"]


@dataclass(slots=True)
class _Piece:
    text: str
    #: Seconds of the turn's audio at which this fragment ends; None: not known yet.
    anchor: float | None


@dataclass
class Segment:
    """One speaker's transcript within a turn."""

    role: Literal["user", "model"]
    #: Final text so far (for the model: trimmed to what was played after an interruption).
    text: str = ""
    #: The latest interim (revisable) user transcript, replaced by each new interim.
    interim: str = ""
    #: No more text is expected (finished / generationComplete / turnComplete / interrupted).
    closed: bool = False
    language_code: str | None = None
    speaker_label: str | None = None
    words: list[ev.TranscriptWord] = field(default_factory=list)
    #: Model only: seconds of audio received in this turn.
    audio_seconds: float = 0.0
    #: Model only: everything the service transcribed, before trimming.
    received_text: str = ""
    #: Model only: seconds of this turn's audio that were played (set by trimming).
    played_seconds: float | None = None
    #: Characters dropped from the front of the text to keep the segment within the
    #: transcript's ``max_segment_chars``.
    cut_chars: int = 0
    _pieces: list[_Piece] = field(default_factory=list, repr=False)
    #: Audio position (seconds) where the first kept piece starts (after a cut).
    _start: float = field(default=0.0, repr=False)

    @property
    def display(self) -> str:
        """The text to show now: finals plus the current interim."""
        return self.text + self.interim

    @property
    def trimmed(self) -> bool:
        return self.played_seconds is not None and self.text != self.received_text

    def _meta(self, e: ev.InputTranscription | ev.OutputTranscription) -> None:
        if e.language_code is not None:
            self.language_code = e.language_code
        if e.speaker_label is not None:
            self.speaker_label = e.speaker_label
        if e.words:
            self.words.extend(e.words)

    def _bound(self, limit: int) -> int:
        """Drop the oldest text beyond ``limit`` characters; return how many were cut.

        Cuts down to three quarters of ``limit`` at once, so a long stream of fragments
        copies the text rarely (not once per fragment).
        """
        over = len(self.received_text if self.role == "model" else self.text) - limit
        if over <= 0 and len(self.words) <= limit:
            return 0
        if len(self.words) > limit:
            del self.words[: len(self.words) - limit * 3 // 4]
        if over <= 0:
            return 0
        cut = over + limit // 4
        if self.role == "user":
            self.text = self.text[cut:]
        else:
            self.received_text = self.received_text[cut:]
            # The kept text: the same tail (trimming may have shortened it already).
            self.text = self.text[max(0, len(self.text) - len(self.received_text)) :]
            left, drop = cut, 0
            for piece in self._pieces:
                if left <= 0:
                    break
                if len(piece.text) <= left:
                    left -= len(piece.text)
                    drop += 1
                    if piece.anchor is not None:
                        self._start = piece.anchor
                else:
                    piece.text = piece.text[left:]
                    left = 0
            del self._pieces[:drop]
        self.cut_chars += cut
        return cut


@dataclass
class TranscriptTurn:
    """One turn: what the user said and what the model said."""

    index: int
    user: Segment = field(default_factory=lambda: Segment("user"))
    model: Segment = field(default_factory=lambda: Segment("model"))
    interrupted: bool = False
    complete: bool = False
    #: The turnComplete that closed this turn also ended the interaction (IDLE / no status).
    interaction_done: bool = False

    @property
    def empty(self) -> bool:
        return not (self.user.display or self.model.received_text or self.model.audio_seconds)


def _cut_words(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text``, cut back to a word boundary."""
    if fraction >= 1.0:
        return text
    if fraction <= 0.0:
        return ""
    n = int(len(text) * fraction)
    head = text[:n]
    if n < len(text) and not text[n].isspace():
        space = head.rfind(" ")
        head = head[: space + 1] if space >= 0 else ""
    return head


class Transcript:
    """Builds per-turn user and model transcripts from session events.

    Args:
        playback: The buffer that plays the model audio; when given, an interrupted
            model segment is trimmed to the audio it actually played.
        transcript_leads_audio: The output transcript arrives before its audio (Vertex).
        max_turns: Keep at most this many turns (oldest dropped); None keeps all.
        max_segment_chars: Keep at most this many characters of one speaker's text in one
            turn (the oldest are cut, counted in :attr:`cut_chars`).
    """

    def __init__(
        self,
        *,
        playback: PlaybackBuffer | None = None,
        transcript_leads_audio: bool = False,
        max_turns: int | None = 1000,
        max_segment_chars: int = 100_000,
    ) -> None:
        if isinstance(max_segment_chars, bool) or not (
            isinstance(max_segment_chars, int) and max_segment_chars >= 4
        ):
            raise ConfigError(f"max_segment_chars must be an int >= 4, got {max_segment_chars!r}")
        self.max_segment_chars = max_segment_chars
        #: Characters cut from segments that outgrew ``max_segment_chars``.
        self.cut_chars = 0
        self.playback = playback
        self.transcript_leads_audio = transcript_leads_audio
        self.turns: deque[TranscriptTurn] = deque(maxlen=max_turns)
        self._n = 0
        self._current: TranscriptTurn | None = None
        self._played_base: float | None = None  # playback position where this turn starts

    # -- reading ---------------------------------------------------------------------

    @property
    def current(self) -> TranscriptTurn | None:
        """The turn being built (None between turns)."""
        return self._current

    @property
    def last_turn(self) -> TranscriptTurn | None:
        """The most recent completed turn."""
        for turn in reversed(self.turns):
            if turn.complete:
                return turn
        return None

    def text(self) -> str:
        """The whole conversation as ``user: ...`` / ``model: ...`` lines."""
        lines: list[str] = []
        for turn in self.turns:
            if turn.user.display:
                lines.append(f"user: {turn.user.display.strip()}")
            if turn.model.text:
                cut = " [interrupted]" if turn.interrupted else ""
                lines.append(f"model: {turn.model.text.strip()}{cut}")
        return "\n".join(lines)

    # -- feeding ---------------------------------------------------------------------

    def _turn(self) -> TranscriptTurn:
        t = self._current
        if t is None:
            self._n += 1
            t = self._current = TranscriptTurn(self._n)
            self.turns.append(t)
            self._played_base = None
        return t

    def observe(self, event: ev.Event) -> TranscriptTurn | None:
        """Feed one event; returns the turn it completed, if any."""
        if isinstance(event, ev.InputTranscription):
            seg = self._turn().user
            seg._meta(event)
            if event.interim:
                seg.interim = event.text
            else:
                seg.text += event.text
                seg.interim = ""
                if event.finished:
                    seg.closed = True
                limit = self.max_segment_chars
                if len(seg.text) > limit or len(seg.words) > limit:
                    self.cut_chars += seg._bound(limit)
        elif isinstance(event, ev.OutputTranscription):
            seg = self._turn().model
            seg._meta(event)
            if event.text:
                anchor: float | None = None if self.transcript_leads_audio else seg.audio_seconds
                seg._pieces.append(_Piece(event.text, anchor))
                seg.received_text += event.text
                seg.text += event.text
                limit = self.max_segment_chars
                if len(seg.received_text) > limit or len(seg.words) > limit:
                    self.cut_chars += seg._bound(limit)
            if event.finished:
                seg.closed = True
        elif isinstance(event, ev.ModelAudio):
            turn = self._turn()
            seg = turn.model
            if self._played_base is None and self.playback is not None:
                pb = self.playback
                self._played_base = pb.total_played_seconds + pb.queued_seconds
            seg.audio_seconds += len(event.data) / 2 / event.sample_rate
            for piece in reversed(seg._pieces):
                if piece.anchor is not None:
                    break
                piece.anchor = seg.audio_seconds
        elif isinstance(event, ev.GenerationComplete):
            if self._current is not None:
                self._current.model.closed = True
        elif isinstance(event, ev.Interrupted):
            turn = self._turn()
            turn.interrupted = True
            if self.playback is not None:
                self.trim(self._played_in_turn())
            turn.model.closed = True
        elif isinstance(event, ev.TurnComplete):
            turn = self._turn()
            turn.user.closed = turn.model.closed = True
            turn.complete = True
            turn.interaction_done = event.interaction_done
            self._current = None
            return turn
        elif isinstance(event, ev.InteractionTimeout):
            last = self._current or (self.turns[-1] if self.turns else None)
            if last is not None:
                last.interaction_done = True
        return None

    def _played_in_turn(self) -> float:
        pb = self.playback
        assert pb is not None
        if self._played_base is None:
            return 0.0
        return max(0.0, pb.total_played_seconds - self._played_base)

    def trim(self, played_seconds: float) -> str:
        """Cut the current (else the last) turn's model text to ``played_seconds`` of audio.

        Returns the trimmed text. Without any audio in the turn nothing is cut (a text
        reply has no playback position).
        """
        turn = self._current or (self.turns[-1] if self.turns else None)
        if turn is None:
            return ""
        seg = turn.model
        seg.played_seconds = played_seconds
        if seg.audio_seconds <= 0.0:
            return seg.text
        out: list[str] = []
        start = seg._start
        for piece in seg._pieces if played_seconds > 0 else ():
            end = piece.anchor
            if end is None:
                break  # no audio followed this fragment: it was never spoken
            if end <= played_seconds:
                out.append(piece.text)
            else:
                span = end - start
                frac = (played_seconds - start) / span if span > 0 else 0.0
                out.append(_cut_words(piece.text, frac))
                break
            start = end
        seg.text = "".join(out)
        return seg.text
