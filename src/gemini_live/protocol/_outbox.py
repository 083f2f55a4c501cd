"""The outbox: what the client writes, in which order, and what it keeps to write again.

One :class:`Outbox` per session holds every client frame from the moment a ``send_*``
numbered it until a resumption handle covers it:

* the *queue* (``pending``): frames not yet handed out (the offline buffer while no
  connection is open, the re-sent window and the seed after a reconnect), bounded in
  bytes;
* the *handed-out* frames (``unconfirmed``, and ``last_direct`` for the frame a ``send_*``
  returned to be written at once) until the caller confirms or gives them back;
* the *re-send window* (ADR 11): every frame written since the latest handle that covers
  it. A handle covers a frame when the model already responded to the user turn that
  frame belongs to, or when the frame was known to have *left this host* (no longer in
  the transport's write buffer nor the kernel's send queue) at a moment at least the
  guard time before the handle arrived; transparent resumption (Vertex) uses the
  server's exact index instead. Audio beyond ``ResendWindow.audio_seconds`` (video beyond
  ``video_frames``, anything beyond the byte bound) is dropped oldest-first and counted in
  ``frames_at_risk``.

When a frame left is learnt lazily: each record carries its end offset in the bytes
handed out on its connection (one counter update per frame). When a handle arrives, the
I/O layer says how many written bytes the transport still holds (user-space buffer plus
kernel send queue); every frame ending at or before ``written - unsent`` has left, and
that moment is kept as a *probe point* ``(time, offset)``. A later handle covers the
frames up to the offset of the newest probe point at least one guard old. The guard is
the larger of :attr:`Outbox.handle_guard` and the latest *response lag* (from writing a
user turn's end to the model's first answer to it), since a service that answers late
also consumes late. Without a probe (the I/O layer set none) a frame leaves when it is
written; a probe that cannot tell makes frames written a guard time before the handle
covered by the clock alone, each counted in ``frames_at_risk``.

A model turn answers one user turn: the oldest one written on the current connection and
not answered yet (a late reply to one turn must not cover the next). A tool answer the
model replies to counts as a user turn (the reply shows the service read it, and every
frame before it); which answers get a reply is the tool ledger's call (``turn_end``: a
``willContinue`` answer, a ``SILENT`` one, the first answer of a call group answered in
pieces get none, and only the guard and probe rule covers them). Answers seen on a
lost connection are forgotten when the window is re-sent.

Records are plain tuples of bytes and numbers (ADR 31: the garbage collector does not
track them). The re-send window holds no record object per audio chunk: its numbers are
packed rows in one byte buffer (or, for chunks written one after another, only their
times) and its audio only the PCM, the frame rebuilt (the same bytes) when it is re-sent
or snapshotted (see :class:`_Window`); other records stay tuples. Records are matched by
submission number, never by identity. The tuples, rows and their index constants never
leave this file: :meth:`Outbox.snapshot` turns them into :class:`RecordState` Structs
and :meth:`Outbox.restore` back.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, MutableSequence
from dataclasses import dataclass
from typing import Final, TypeVar

import msgspec
import pybase64

from gemini_live._checks import non_negative, non_negative_int
from gemini_live._pcm import as_pcm16
from gemini_live.codec import AUDIO_FRAME_SUFFIX, AudioFrameEncoder
from gemini_live.errors import ConfigError, MessageTooLargeError, QueueFullError
from gemini_live.protocol._state import Connection, SessionStats, State

__all__ = ["Kind", "Outbox", "OutboxState", "RecordState", "ResendWindow"]

logger = logging.getLogger("gemini_live.protocol")


@dataclass(frozen=True, slots=True)
class ResendWindow:
    """What is kept to re-send after a reconnect (see docs/design.md, "re-send window").

    A resumption handle stands for the conversation as it was when the service issued
    it. Everything written after that point is kept and written again on the next
    connection. Text, client content, tool responses and activity markers are always
    kept; audio beyond ``audio_seconds`` (and video beyond ``video_frames``) is dropped
    oldest-first and counted in ``stats.frames_at_risk``.
    """

    audio_seconds: float = 5.0
    video_frames: int = 4
    #: Frames that left this host (written, and no longer in the transport's write
    #: buffer or the kernel's send queue) less than this many seconds before a handle
    #: arrived are not taken as covered by it (the handle may have been issued before
    #: the service read them). None: twice the slowest setup round trip seen, at least
    #: 0.2 s, at most 1 s. The latest response lag lengthens it when longer.
    handle_guard: float | None = None

    def __post_init__(self) -> None:
        non_negative("audio_seconds", self.audio_seconds)
        non_negative_int("video_frames", self.video_frames)
        if self.handle_guard is not None:
            non_negative("handle_guard", self.handle_guard)


class Kind(enum.IntEnum):
    """What a client frame carries (decides how the re-send window treats it)."""

    AUDIO = 1
    VIDEO = 2
    TEXT = 3
    ACTIVITY_START = 4
    ACTIVITY_END = 5
    AUDIO_STREAM_END = 6
    CLIENT_CONTENT = 7
    TOOL_RESPONSE = 8
    CONTEXT_UPDATE = 9
    #: History sent to a fresh session (never re-sent: a later fresh session gets a new one).
    SEED = 10


#: The kinds that end a user turn unless the message says otherwise.
TURN_END_KINDS: Final = frozenset(
    (Kind.TEXT, Kind.ACTIVITY_END, Kind.AUDIO_STREAM_END, Kind.TOOL_RESPONSE)
)

#: One client frame on its way out, kept until a handle covers it: a plain tuple of
#: bytes and numbers, so the garbage collector stops tracking it. Fields, by index:
_Rec = tuple[bytes, int, int, bool, float, tuple[str, ...], float, int, int]
_F: Final = 0  # the frame
_K: Final = 1  # int(Kind)
_SEQ: Final = 2  # submission order
_TE: Final = 3  # ends a user turn
_AS: Final = 4  # seconds of audio
_TI: Final = 5  # tool-call ids answered
_WA: Final = 6  # when it was handed out (caller's clock)
_IX: Final = 7  # index on its connection (transparent resumption)
_END: Final = 8  # end offset in the payload bytes handed out on its connection

# The kinds as plain ints, as the records hold them.
_AUDIO: Final = int(Kind.AUDIO)
_VIDEO: Final = int(Kind.VIDEO)
_TEXT: Final = int(Kind.TEXT)
_TOOL_RESPONSE: Final = int(Kind.TOOL_RESPONSE)
_SEED: Final = int(Kind.SEED)
_OPEN: Final = State.OPEN
_TAIL: Final = AUDIO_FRAME_SUFFIX
_join: Final = b"".join
_b64encode: Final = pybase64.b64encode
#: Unanswered user turn ends remembered per connection.
_MAX_UNANSWERED: Final = 1024
#: Probe points kept per connection (older ones only ever matter less).
_MAX_PROBES: Final = 64


#: One object per distinct value for what every session's fused writer binds (see
#: :func:`_shared`); bounded: values past the bound stay each session's own.
_SHARED: Final[dict[tuple[type, object], object]] = {}
_SHARED_MAX: Final = 256
_T = TypeVar("_T")


def _shared(value: _T) -> _T:
    """An object equal to ``value`` (an int, float or bytes), the same one for every
    caller that passes an equal value (up to ``_SHARED_MAX`` distinct values, then
    ``value`` itself).

    A function that binds values as its defaults takes a reference to every one at each
    call: with a writer per session, per-session objects of equal values are as many
    objects whose headers a chunk writes to, each a cache line of its own among hundreds
    of sessions. Shared, they stay in cache (issue 24: cache misses per W2 message).
    """
    # A float by its hex form: -0.0 and 0.0 (equal) stay apart, and so do NaNs.
    key = (type(value), value.hex() if type(value) is float else value)  # type: ignore[attr-defined]
    got = _SHARED.get(key)
    if got is None:
        if len(_SHARED) >= _SHARED_MAX:
            return value
        _SHARED[key] = got = value
    return got  # type: ignore[return-value]


#: The re-send window's rows: one per record, packed in one byte buffer (submission
#: number, time handed out, index and end offset on its connection, PCM bytes of a compact
#: audio record, its head number or -1 for a record kept as a tuple).
_ROW: Final = struct.Struct("<qdqqii")
_STRIDE: Final = _ROW.size
_pack_row: Final = _ROW.pack
_row_at: Final = _ROW.unpack_from
_R_WA: Final = 8
_R_IX: Final = 16
_R_END: Final = 24
_R_NB: Final = 32
_R_HID: Final = 36
_int_at: Final = struct.Struct("<q").unpack_from
_float_at: Final = struct.Struct("<d").unpack_from
_nb_hid_at: Final = struct.Struct("<ii").unpack_from
#: Frame heads (sample rates) a window can hold compactly; audio at further rates stays
#: in tuples (correct, only larger).
_MAX_HEADS: Final = 32
#: Dead rows at the front worth moving the live ones down for (when they are as many).
_TRIM_ROWS: Final = 64 * _STRIDE
#: ``_Window.rn`` when no run is open: no chunk's length (0 is the empty chunk's).
_CLOSED: Final = -1
#: Chunks dropped from the front of a run before the run moves down.
_TRIM_RUN: Final = 128
_DATA_KEY: Final = b'","data":"'
_AUDIO_START: Final = b'{"realtimeInput":{"audio":{"mimeType":"'
#: What :meth:`_Window.pop` returns about a record: (kind, frame size, seconds of audio).
_Meta = tuple[int, int, float]


class _Window:
    """The re-send window as compact data (issue 24: memory per active session).

    Each record is one packed row in :attr:`rows` (see ``_ROW``), oldest first from byte
    :attr:`lo`. An audio chunk written from PCM (the usual case) keeps only its raw PCM,
    an immutable ``bytes`` (the caller's own when it gave bytes: no copy), in :attr:`pcm`
    (from item :attr:`plo`) in row order: its frame is the head of its sample rate, the
    base64 of the PCM and the common tail, rebuilt byte for byte when it is re-sent or
    snapshotted, and its size and seconds follow from the PCM length. Every other record
    (and audio whose frame is not exactly that) stays a tuple in :attr:`others`, keyed
    by submission number; its row has head number -1. :attr:`mixed` counts the rows that
    are not compact audio at the input rate (head 0): while it is 0 the oldest record is
    such a chunk (the hot paths evict it without reading its row). Rows popped at the
    front are only skipped (their PCM released at once); rows and PCM move down once the
    dead front is as large as the live part, or once 128 chunks left a run's front.

    The newest chunks written by the fused writer one after another, all of one length
    (:attr:`rn` PCM bytes, frames of :attr:`rsize` bytes), are a *run* without rows yet:
    only their times in :attr:`rwa` (from item :attr:`rlo`) and the submission number,
    connection index and end offset of ``rwa[0]`` (:attr:`rseq`, :attr:`rix`,
    :attr:`rend`), from which every row follows (item ``j``: ``rseq + j``, ``rix + j``,
    ``rend + j * rsize``). Any other use of the window packs the run into rows first
    (:meth:`flush`), so the run is always its newest part.

    While a run is *open* (:attr:`rn` not ``_CLOSED``) the writer does not count its chunks
    in the outbox's submission number, the connection's index and offset (on :attr:`rconn`):
    those follow from the run when they are read. The chunks not counted yet are
    :meth:`owing`: ``rwa[rmark:]`` and :attr:`owed` (chunks of runs packed or cleared
    since); :meth:`Outbox._settle` counts them and closes the run, and everything that reads
    or takes those numbers settles first (issue 24: three counters fewer per chunk). A run
    is open only while its next chunk could be written at once: nothing queued
    (:meth:`Outbox._queue`, :meth:`Outbox._requeue`) or handed out unwritten
    (:meth:`Outbox._unconfirmed`), no rotation holding input (:attr:`Outbox.holding`), its
    connection (:attr:`rconn`) open (:meth:`Outbox.close_run`); each of these sets
    :attr:`rn` to ``_CLOSED`` (-1, a length no chunk has: an empty chunk after a run takes
    the checks and raises), so the writer checks a chunk of the run's length on the run's
    connection by that comparison alone.

    :attr:`aud` is a byte offset such that no row in ``[lo, aud)`` is audio: the records
    no audio bound ever drops (activity markers, texts, tool answers: a window that no
    handle covers collects one pair of markers per turn) are walked past once, not at
    every chunk that drops the oldest audio behind them (:meth:`drop_audio`).
    """

    # Not sorted: what the fused writer reads and writes per chunk first, next to the
    # object's header (fewer cache lines per chunk; see Outbox.__slots__).
    __slots__ = (  # noqa: RUF023
        "rn",
        "rconn",
        "rwa",
        "pcm",
        "mixed",
        "plo",
        "lo",
        "rows",
        "rlo",
        "rseq",
        "rix",
        "rend",
        "rsize",
        "rmark",
        "owed",
        "pmark",
        "aud",
        "bps",
        "heads",
        "hids",
        "others",
        "sizes",
    )

    def __init__(self) -> None:
        self.rows = bytearray()
        self.lo = 0
        self.aud = 0
        self.pcm: list[bytes] = []
        self.plo = 0
        self.pmark = 0
        self.mixed = 0
        self.others: dict[int, _Rec] = {}
        self.rwa: list[float] = []
        self.rlo = 0
        self.rn = _CLOSED
        self.rseq = 0
        self.rix = 0
        self.rend = 0
        self.rsize = 0
        self.rmark = 0
        self.owed = 0
        self.rconn: Connection | None = None
        #: Per head number: the head, its frame size without payload, PCM bytes a second.
        #: Tuples, rebuilt when a head is registered (rarely): a tuple of bytes or ints is
        #: left untracked by the garbage collector, a list is walked at every collection.
        self.heads: tuple[bytes, ...] = ()
        self.sizes: tuple[int, ...] = ()
        self.bps: tuple[int, ...] = ()
        self.hids: dict[bytes, int] = {}

    def register(self, head: bytes, rate: int) -> int:
        """The head number of ``head`` (PCM16 at ``rate``); -1 when the table is full."""
        hid = self.hids.get(head)
        if hid is None:
            if len(self.heads) >= _MAX_HEADS:
                return -1
            hid = self.hids[head] = len(self.heads)
            self.heads = (*self.heads, head)
            self.sizes = (*self.sizes, len(head) + len(_TAIL))
            self.bps = (*self.bps, 2 * rate)
        return hid

    def __len__(self) -> int:
        return (len(self.rows) - self.lo) // _STRIDE + len(self.rwa) - self.rlo

    def owing(self) -> int:
        """Chunks written that the outbox's and connection's counters do not count yet."""
        return self.owed + len(self.rwa) - self.rmark

    def dropped(self) -> int:
        """Chunks the fused writer dropped from a full window (``frames_at_risk`` counts
        them when read): every step of :attr:`plo` but those of :meth:`pop` and
        :meth:`drop_audio`, which move :attr:`pmark` along, and of :meth:`trim` and
        :meth:`clear`, which move it back as far."""
        return self.plo - self.pmark

    def start(
        self, raw: bytes, seq: int, wa: float, ix: int, end: int, size: int, conn: Connection
    ) -> None:
        """Begin a new open run with a chunk at the input rate (the fused writer's; its
        numbers counted already, as :meth:`Outbox._settle` left the rest)."""
        self.flush()
        self.rwa.append(wa)
        self.pcm.append(raw)
        self.rseq = seq
        self.rix = ix
        self.rend = end
        self.rsize = size
        self.rmark = 1
        self.rconn = conn
        self.rn = len(raw)

    def flush(self) -> None:
        """Pack the run into rows and close it (what it owes stays in :attr:`owed`)."""
        self.rn = _CLOSED  # the next chunk starts a new run
        rwa = self.rwa
        if not rwa:
            return
        self.owed += len(rwa) - self.rmark
        self.rmark = 0
        rlo = self.rlo
        m = len(rwa) - rlo
        if m > 0:
            pcm = self.pcm
            first = len(pcm) - m
            nb = len(pcm[first])  # a live chunk: every chunk of a run is as long
            seq = self.rseq + rlo
            ix = self.rix + rlo
            size = self.rsize
            end = self.rend + rlo * size
            rows = [
                _pack_row(seq + j, rwa[rlo + j], ix + j, end + j * size, nb, 0) for j in range(m)
            ]
            self.rows += _join(rows)
        self.rwa = []
        self.rlo = 0

    def add(self, out: _Rec) -> None:
        """Append a record (audio kept as PCM when its frame rebuilds exactly)."""
        self.flush()
        if out[_K] == _AUDIO:
            compact = self._compact(out)
            if compact is not None:
                raw, hid = compact
                self.add_pcm(raw, hid, out[_SEQ], out[_WA], out[_IX], out[_END])
                return
        self.rows += _pack_row(out[_SEQ], out[_WA], out[_IX], out[_END], 0, -1)
        self.others[out[_SEQ]] = out
        self.mixed += 1

    def add_pcm(self, raw: bytes, hid: int, seq: int, wa: float, ix: int, end: int) -> None:
        """Append a compact audio record (``raw``: immutable PCM, kept as it is)."""
        self.flush()
        self.rows += _pack_row(seq, wa, ix, end, len(raw), hid)
        self.pcm.append(raw)
        if hid:
            self.mixed += 1

    def _compact(self, out: _Rec) -> tuple[bytes, int] | None:
        """(PCM, head number) when ``out``'s frame is a head, base64 and tail that encode
        back to the same bytes and its seconds are the PCM's; else None."""
        frame = out[_F]
        if out[_TE] or out[_TI] or not frame.startswith(_AUDIO_START):
            return None
        if not frame.endswith(_TAIL):
            return None
        at = frame.find(_DATA_KEY)
        if at < 0:
            return None
        start = at + len(_DATA_KEY)
        hid = self.hids.get(frame[:start])
        if hid is None:
            return None
        payload = frame[start : len(frame) - len(_TAIL)]
        try:
            raw = pybase64.b64decode(payload, validate=True)
        except ValueError:
            return None
        if not raw or _b64encode(raw) != payload or out[_AS] != len(raw) / self.bps[hid]:
            return None
        return raw, hid

    def seq(self, p: int) -> int:
        """The submission number of the record whose row starts at byte ``p``."""
        return int(_int_at(self.rows, p)[0])

    def kind(self, p: int) -> int:
        """The kind of the record whose row starts at byte ``p``."""
        self.flush()
        if _nb_hid_at(self.rows, p + _R_NB)[1] >= 0:
            return _AUDIO
        return self.others[self.seq(p)][_K]

    def meta(self, p: int) -> _Meta:
        self.flush()
        nb, hid = _nb_hid_at(self.rows, p + _R_NB)
        if hid >= 0:
            return _AUDIO, self.sizes[hid] + (nb + 2) // 3 * 4, nb / self.bps[hid]
        out = self.others[self.seq(p)]
        return out[_K], len(out[_F]), out[_AS]

    def pop(self) -> _Meta:
        """Drop the oldest record."""
        self.flush()
        rows = self.rows
        lo = self.lo
        meta = self.meta(lo)
        hid = _nb_hid_at(rows, lo + _R_NB)[1]
        if hid >= 0:
            self.pcm[self.plo] = b""
            self.plo += 1
            self.pmark += 1  # not the writer's drop (see dropped)
        else:
            del self.others[self.seq(lo)]
        if hid:
            self.mixed -= 1
        self.lo = lo = lo + _STRIDE
        if lo >= len(rows):
            self.clear()
        elif lo >= _TRIM_ROWS and 2 * lo >= len(rows):
            self.trim()
        return meta

    def drop_audio(self) -> _Meta | None:
        """Drop the oldest audio record (the first row of kind audio, after the records of
        other kinds before it); None when the window holds no audio."""
        self.flush()
        rows = self.rows
        lo = self.lo
        n = len(rows)
        others = self.others
        p = self.aud
        if p < lo:
            p = lo
        while p < n:
            hid = _nb_hid_at(rows, p + _R_NB)[1]
            if hid >= 0 or others[_int_at(rows, p)[0]][_K] == _AUDIO:
                break
            p += _STRIDE
        else:
            self.aud = p
            return None
        if p == lo:
            return self.pop()
        # Only other kinds before it: a compact chunk's PCM is the first one held.
        meta: _Meta
        if hid >= 0:
            plo = self.plo
            nb = len(self.pcm[plo])
            meta = (_AUDIO, self.sizes[hid] + (nb + 2) // 3 * 4, nb / self.bps[hid])
            self.pcm[plo] = b""
            self.plo = plo + 1
            self.pmark += 1  # not the writer's drop (see dropped)
        else:
            out = others.pop(_int_at(rows, p)[0])
            meta = (_AUDIO, len(out[_F]), out[_AS])
        if hid:
            self.mixed -= 1
        # The rows before it move up one row (over it): the front grows dead, as pop's.
        rows[lo + _STRIDE : p + _STRIDE] = rows[lo:p]
        self.lo = lo = lo + _STRIDE
        self.aud = p + _STRIDE
        if lo >= _TRIM_ROWS and 2 * lo >= n:
            self.trim()
        return meta

    def trim(self) -> None:
        """Move the live rows, PCM and run to the front (the dead front is as large)."""
        self.aud = max(0, self.aud - self.lo)
        if self.lo >= len(self.rows):
            self.rows = bytearray()
        else:
            del self.rows[: self.lo]
        self.lo = 0
        del self.pcm[: self.plo]
        self.pmark -= self.plo  # the writer's drops stay owed (see dropped)
        self.plo = 0
        rlo = self.rlo
        if rlo:
            # The run's numbers are those of rwa[0]: they move on with it.
            del self.rwa[:rlo]
            self.rlo = 0
            self.rseq += rlo
            self.rix += rlo
            self.rend += rlo * self.rsize
            self.rmark -= rlo

    def remove(self, i: int) -> _Meta:
        """Drop the ``i``-th oldest record."""
        self.flush()
        if i == 0:
            return self.pop()
        rows = self.rows
        lo = self.lo
        p = lo + i * _STRIDE
        meta = self.meta(p)
        hid = _nb_hid_at(rows, p + _R_NB)[1]
        if hid >= 0:
            at = self.plo
            for q in range(lo, p, _STRIDE):
                if _nb_hid_at(rows, q + _R_NB)[1] >= 0:
                    at += 1
            del self.pcm[at]
        else:
            del self.others[self.seq(p)]
        if hid:
            self.mixed -= 1
        del rows[p : p + _STRIDE]
        if p < self.aud:
            self.aud -= _STRIDE  # the rows after it moved down
        return meta

    def clear(self) -> None:
        self.owed = self.owing()  # the chunks stay written: counted at the next settle
        self.rmark = 0
        self.rn = _CLOSED
        self.rows = bytearray()
        self.lo = 0
        self.aud = 0
        self.pcm = []
        self.pmark -= self.plo  # as trim
        self.plo = 0
        self.mixed = 0
        if self.others:
            self.others = {}
        self.rwa = []
        self.rlo = 0

    def positions(self) -> range:
        """Where the rows start, oldest first (after :meth:`flush`)."""
        self.flush()
        return range(self.lo, len(self.rows), _STRIDE)

    def seqs(self) -> list[int]:
        """The submission numbers, oldest first."""
        self.flush()
        rows = self.rows
        return [int(_int_at(rows, p)[0]) for p in self.positions()]

    def tuples(self) -> list[_Rec]:
        """The records kept as tuples, oldest first (every one that is not compact audio)."""
        self.flush()
        others = self.others
        rows = self.rows
        return [others[self.seq(p)] for p in self.positions() if _nb_hid_at(rows, p + _R_NB)[1] < 0]

    def __iter__(self) -> Iterator[_Rec]:
        """Every record as a tuple, oldest first (audio frames rebuilt)."""
        self.flush()
        rows = self.rows
        pcm = self.pcm
        at = self.plo
        for p in self.positions():
            seq, wa, ix, end, nb, hid = _row_at(rows, p)
            if hid < 0:
                yield self.others[seq]
                continue
            frame = _join((self.heads[hid], _b64encode(pcm[at]), _TAIL))
            at += 1
            yield (frame, _AUDIO, seq, False, nb / self.bps[hid], (), wa, ix, end)


class RecordState(msgspec.Struct, array_like=True):
    """One record as plain data (the snapshot form of the runtime tuple)."""

    frame: bytes
    kind: int
    seq: int
    turn_end: bool
    audio_s: float
    tool_ids: tuple[str, ...]
    written_at: float
    index: int
    end: int = 0


class OutboxState(msgspec.Struct, kw_only=True):
    """Everything an :class:`Outbox` holds, as plain data (see :meth:`Outbox.snapshot`)."""

    seq: int = 0
    pending: list[RecordState] = []
    unconfirmed: list[RecordState] = []
    last_direct: RecordState | None = None
    window: list[RecordState] = []
    seed: list[RecordState] = []
    #: Kept as summed at run time (a recomputed float sum could differ in the last bit).
    window_audio_s: float = 0.0
    #: Where each handed-out frame (and ``last_direct``) sits in ``window``, -1 if it is
    #: not there (matched by submission number: unwritten() requeues only those).
    unconfirmed_in_window: list[int] = []
    last_direct_in_window: int = -1
    #: User turn ends written on this connection and not answered yet: (seq, written at).
    unanswered: list[tuple[int, float]] = []
    responded_seq: int = 0
    max_setup_rtt: float = 0.0
    #: Probe points of the current connection: (time, payload offset known sent by then).
    probes: list[tuple[float, int]] = []
    response_lag: float = 0.0


def _state_of(out: _Rec) -> RecordState:
    return RecordState(*out)


def _rec_of(state: RecordState) -> _Rec:
    return (
        state.frame,
        state.kind,
        state.seq,
        state.turn_end,
        state.audio_s,
        tuple(state.tool_ids),
        state.written_at,
        state.index,
        state.end,
    )


class Outbox:
    """The queue, the handed-out frames and the re-send window of one session.

    The caller (the protocol facade) says whether a new frame may be written at once
    (``direct``: a synchronous writer, an open connection, no rotation holding input); the
    outbox adds its own condition (nothing queued or unconfirmed before it).
    """

    # Not sorted: the slots the fused writer reads and writes per chunk come first, next
    # to the object's header, so a chunk touches one or two cache lines of the outbox, not
    # four (issue 24: cache misses per W2 message, where hundreds of sessions take turns).
    __slots__ = (  # noqa: RUF023
        "input_at",
        "window_audio_s",
        "window_bytes",
        "pending",
        "unconfirmed",
        "_holding",
        "seq",
        "_audio",
        "_audio_by_rate",
        "_bytes_per_s",
        "_empty",
        "_head",
        "_win",
        "last_direct",
        "max_frame",
        "max_setup_rtt",
        "offline_limit",
        "pending_bytes",
        "probes",
        "resend",
        "responded_seq",
        "response_lag",
        "seed",
        "stats",
        "unanswered",
        "window_video",
    )

    def __init__(
        self,
        stats: SessionStats,
        *,
        input_rate: int,
        offline_buffer_bytes: int,
        max_frame_bytes: int,
        resend: ResendWindow,
    ) -> None:
        self._audio = AudioFrameEncoder(input_rate)
        self._audio_by_rate: dict[int, AudioFrameEncoder] = {input_rate: self._audio}
        #: The input rate's frame around the base64 and PCM16 bytes per second (the
        #: audio hot path, :meth:`write_audio`).
        self._head = self._audio.prefix
        self._bytes_per_s = 2 * input_rate
        self._empty = len(self._head) + len(_TAIL)
        self.offline_limit = offline_buffer_bytes
        self.max_frame = max_frame_bytes
        self.resend = resend
        self.seq = 0
        self._holding = False
        #: When the audio writer last took a chunk (None once the session's meters read
        #: it as their latest input: SessionRecord._take_input). Set on every call that
        #: does not raise, as the session set its own before.
        self.input_at: float | None = None
        # Lists, not deques: an empty deque holds a 760-byte block, and these are
        # short and mostly empty (taken whole, given back whole).
        #: ``()`` when empty, as the other lists here that are mostly empty: no list per
        #: session for the garbage collector to walk (see :meth:`_queue`).
        self.pending: list[_Rec] | tuple[()] = ()
        self.pending_bytes = 0
        self.unconfirmed: MutableSequence[_Rec] | tuple[()] = ()
        self.last_direct: _Rec | None = None
        #: The re-send window (compact: see :class:`_Window`; :attr:`window` for tuples).
        self._win = _Window()
        self._win.register(self._head, input_rate)  # head number 0: the input rate
        # frames_sent and frames_at_risk count the open run's chunks and the writer's
        # drops when read (SessionStats._owe_from): the same object, shared with
        # everything else that counts in it.
        stats._owe_from(self._win.owing, self._win.dropped)
        self.stats = stats
        self.window_audio_s = 0.0
        self.window_video = 0
        self.window_bytes = 0
        #: History frames for the next fresh session; ``()`` while there are none (no
        #: list per session for the garbage collector to walk).
        self.seed: list[_Rec] | tuple[()] = ()
        # Conversation tracking for coverage: which user turn the model answered.
        #: User turn ends written on this connection and not answered yet, oldest first:
        #: (seq, written at). A model turn answers the oldest (one per model turn).
        #: A list when not empty (an empty deque is 760 bytes), else ``()`` (no list per
        #: session for the garbage collector to walk).
        self.unanswered: list[tuple[int, float]] | tuple[()] = ()
        self.responded_seq = 0
        self.max_setup_rtt = 0.0
        #: Probe points of the current connection (see the module docstring), oldest first.
        self.probes: list[tuple[float, int]] | tuple[()] = ()  # () when none (as above)
        self.response_lag = 0.0

    # -- questions ------------------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """A rotation holds new input: kept equal to the protocol's rotation plan's flag
        (:meth:`RotationPlan.mirror_to`), so that the audio writer reads it from the
        object it touches anyway. Setting it closes the open run (see :class:`_Window`)."""
        return self._holding

    @holding.setter
    def holding(self, value: bool) -> None:
        self._holding = value
        if value:
            self._win.rn = _CLOSED

    def close_run(self) -> None:
        """The open run's connection stops being writable (it is closing or closed): the
        next chunk takes the writer's checks (see :class:`_Window`)."""
        self._win.rn = _CLOSED

    @property
    def window(self) -> deque[_Rec]:
        """The re-send window's records as tuples, oldest first (a copy, audio frames
        rebuilt: for inspection and tests; assigning one replaces the window)."""
        return deque(self._win)

    @window.setter
    def window(self, records: Iterable[_Rec]) -> None:
        win = self._win
        win.clear()
        for out in records:
            win.add(out)

    @property
    def unacknowledged(self) -> int:
        """Frames written and not yet covered by a handle (kept for re-sending)."""
        return len(self._win)

    @property
    def queued(self) -> int:
        """Frames waiting to be written (offline buffer and frames not yet handed out)."""
        return len(self.pending)

    @property
    def uncovered_input(self) -> bool:
        """A user turn end or tool answer written and not covered, or a write unconfirmed."""
        return bool(self.unconfirmed) or any(
            o[_TE] or o[_K] == _TOOL_RESPONSE for o in self._win.others.values()
        )

    def held_tool_ids(self) -> set[str]:
        """The calls whose answers the window still holds (written, not covered)."""
        return {i for o in self._win.others.values() if o[_K] == _TOOL_RESPONSE for i in o[_TI]}

    @property
    def handle_guard(self) -> float:
        guard = self.resend.handle_guard
        if guard is not None:
            return guard
        return min(1.0, max(0.2, 2.0 * self.max_setup_rtt))

    def resend_texts(self) -> list[str]:
        """Texts that the next connection writes again (window and queue), oldest first."""
        out = []
        for item in (*self._win.tuples(), *self.unconfirmed, *self.pending):
            if item[_K] == _TEXT:
                obj = msgspec.json.decode(item[_F])
                text = obj.get("realtimeInput", {}).get("text")
                if isinstance(text, str):
                    out.append(text)
        return out

    # -- taking frames --------------------------------------------------------------------

    def submit(
        self,
        frame: bytes,
        kind: Kind,
        now: float,
        conn: Connection | None,
        direct: bool,
        turn_end: bool | None = None,
        audio_s: float = 0.0,
        tool_ids: tuple[str, ...] = (),
    ) -> bytes | None:
        """Number a frame; return it when it is to be written now, else queue it."""
        if len(frame) > self.max_frame:
            raise MessageTooLargeError(
                f"a {kind.name.lower()} message of {len(frame)} bytes is above the "
                f"{self.max_frame}-byte message limit; nothing was sent"
            )
        self._settle()
        self.seq += 1
        out: _Rec = (
            frame,
            int(kind),
            self.seq,
            kind in TURN_END_KINDS if turn_end is None else turn_end,
            audio_s,
            tool_ids,
            0.0,
            0,
            0,
        )
        if conn is not None and direct and not self.pending and not self.unconfirmed:
            # Written synchronously by the caller right now; direct_failed() if it was not.
            self._hand_out(conn, out, now, direct=True)
            return frame
        size = len(frame)
        if self.pending_bytes + size > self.offline_limit:
            self.seq -= 1
            raise QueueFullError(
                f"offline send buffer full ({self.pending_bytes} of {self.offline_limit} "
                "bytes) while reconnecting; message not queued"
            )
        self._queue(out)
        self.pending_bytes += size
        if conn is None or conn.state is not _OPEN:
            self.stats.frames_queued_offline += 1
        return None

    def send_audio(
        self,
        pcm: object,
        now: float,
        sample_rate: int | None,
        conn: Connection | None,
        direct: bool,
    ) -> bytes | None:
        """Encode one PCM16 chunk and take it (the audio hot path, inlined)."""
        if sample_rate is None:
            enc = self._audio
            hid = 0
        else:
            found = self._audio_by_rate.get(sample_rate)
            if found is None:
                found = AudioFrameEncoder(sample_rate)  # validates the rate
                self._audio_by_rate[sample_rate] = found
                self._win.register(found.prefix, sample_rate)
            enc = found
            hid = self._win.hids.get(enc.prefix, -1)
        # The encoder inlined (AudioFrameEncoder.encode), keeping the PCM for the window.
        raw = pcm if type(pcm) is bytes else as_pcm16(pcm)
        n = len(raw)
        if n & 1 or not n:
            as_pcm16(raw)  # raises for an odd byte count
            raise ConfigError("audio chunk is empty")
        frame = _join((enc.prefix, _b64encode(raw), _TAIL))
        seconds = n / (2 * enc.rate)  # PCM16: 2 bytes per sample
        size = len(frame)
        if (
            direct
            and conn is not None
            and size <= self.max_frame
            and not self.pending
            and not self.unconfirmed
        ):
            # The hot path (one chunk, open connection, nothing queued): submit, _hand_out
            # and _window_add inlined for audio.
            seq = self._take_seq()
            idx = conn.next_index
            conn.next_index = idx + 1
            end = conn.bytes_out = conn.bytes_out + size
            out: _Rec = (frame, _AUDIO, seq, False, seconds, (), now, idx, end)
            self.stats.frames_sent += 1
            self.last_direct = out
            win = self._win
            if hid >= 0:
                win.add_pcm(raw if type(raw) is bytes else bytes(raw), hid, seq, now, idx, end)
            else:
                win.add(out)
            self.window_bytes += size
            held = self.window_audio_s + seconds
            if held > self.resend.audio_seconds:
                held = self._evict_first_audio(held)
            self.window_audio_s = held
            if held > self.resend.audio_seconds:
                self._evict(_AUDIO)
            if self.window_bytes > self.offline_limit:
                self._evict(None)
            return frame
        return self.submit(frame, Kind.AUDIO, now, conn, False, audio_s=seconds)

    def write_audio(
        self,
        conn: Connection,
        write: Callable[[bytes], object],
        pcm: object,
        now: float,
    ) -> bool:
        """The audio hot path in one call: encode one PCM16 chunk at the input rate, write
        it with ``write`` (a synchronous writer that returns False when it cannot write
        now, anything else once written) and keep it in the re-send window. True:
        written. False: queued instead (``conn`` is not open, a rotation holds input,
        something is queued or unconfirmed before it, or ``write`` refused it); the caller
        flushes.

        The same checks, numbers, stats and window as :meth:`send_audio` followed by a
        successful write, without handing the frame out first: it is recorded only once
        written, so a refused write has nothing to undo (it goes to the head of the queue,
        as :meth:`direct_failed` would put it). Bad input raises before anything changes.
        The work is :meth:`audio_writer`'s (a writer made for this one call).
        """
        return self.audio_writer(conn, write)(pcm, now)

    def audio_writer(
        self,
        conn: Connection,
        write: Callable[..., object],
        kind: object = None,
    ) -> Callable[[object, float], bool]:
        """:meth:`write_audio` for one connection and ``write``, as a function
        ``writer(pcm, now)``: what stays the same for the outbox's whole life (the input
        rate's head and bytes per second, the bounds, the window object, the stats) is
        bound once, so a chunk pays no attribute load for it and no bound-method call.
        The outbox's changing state (queue, numbers, window sizes) is read from the outbox
        on every call, as before.

        What is bound is bound as the function's defaults, not as a closure: the defaults
        are one tuple, where a closure holds one cell per name, and every cell is an
        object the cyclic garbage collector walks for the session's whole life. Callers
        pass ``pcm`` and ``now`` only. The rare paths (queueing, a refused or failed
        write, eviction) call the outbox's methods, so no bound method is kept either.

        With ``kind`` (not None), a frame is written as ``write(kind, frame)``: the
        backend's own method and its first argument (a transport's ``direct_send``), not a
        wrapper around them (one object fewer, and its cache lines, per chunk).

        A chunk as long as the open run's, on the run's connection, is checked by that
        comparison alone: the run's first chunk passed every check (its length, its
        frame's size) and the run stays open only while a chunk could be written at once
        (see :class:`_Window`).
        """

        # Named as the method: profiles (bench.density) count the chunks written by name.
        def write_audio(
            pcm: object,
            now: float,
            self: Outbox = self,
            conn: Connection = conn,
            write: Callable[..., object] = write,
            head: bytes = _shared(self._head),
            bytes_per_s: int = _shared(self._bytes_per_s),
            offline_limit: int = _shared(self.offline_limit),
            limit: float = _shared(self.resend.audio_seconds),  # ResendWindow is frozen
            stats: SessionStats = self.stats,
            win: _Window = self._win,  # the same object for the outbox's life (see clear)
            kind: object = kind,
        ) -> bool:
            # The encoder inlined (AudioFrameEncoder.encode): bytes go straight to base64
            # and are kept as they are (immutable); other buffers are copied once.
            raw = pcm if type(pcm) is bytes else bytes(as_pcm16(pcm))
            n = len(raw)
            frame = _join((head, _b64encode(raw), _TAIL))
            if n == win.rn and conn is win.rconn:
                # The open run goes on (see _Window): the chunk is as long as the run's
                # first, which passed every check, and nothing was numbered, queued or
                # held since; its submission number, index and offset follow from the
                # run and are counted when read (_settle).
                try:
                    written = write(frame) if kind is None else write(kind, frame)
                except BaseException:
                    self._unwritten_audio(frame, n / bytes_per_s)
                    raise
                self.input_at = now
                if written is False:
                    self._unwritten_audio(frame, n / bytes_per_s)
                    return False
                if n == win.rn:  # still open (the write did not re-enter the outbox)
                    # Counted in frames_sent when read, as in the numbers (SessionStats).
                    win.rwa.append(now)
                    win.pcm.append(raw)
                else:
                    self._written_audio(raw, len(frame), now, conn, self._take_seq())
                    stats.frames_sent += 1
            else:
                if n & 1 or not n:
                    as_pcm16(raw)  # raises for an odd byte count
                    raise ConfigError("audio chunk is empty")
                size = len(frame)
                if (
                    conn.state is not _OPEN
                    or self._holding
                    or size > self.max_frame
                    or self.pending
                    or self.unconfirmed
                ):
                    self.submit(frame, Kind.AUDIO, now, conn, False, audio_s=n / bytes_per_s)
                    self.input_at = now
                    return False
                seq = self._take_seq()
                try:
                    written = write(frame) if kind is None else write(kind, frame)
                except BaseException:
                    self._unwritten_audio(frame, n / bytes_per_s, seq)
                    raise
                self.input_at = now
                if written is False:
                    self._unwritten_audio(frame, n / bytes_per_s, seq)
                    return False
                # A full mixed window: the eviction below packs any run into rows anyway,
                # so the chunk goes straight into a row (the same row).
                row = self.window_audio_s + n / bytes_per_s > limit and win.mixed > 0
                self._written_audio(raw, size, now, conn, seq, row=row)
                stats.frames_sent += 1
            seconds = n / bytes_per_s
            held = self.window_audio_s + seconds
            if held <= limit:  # the window has room (the usual case without handles)
                self.window_audio_s = held
                wb = self.window_bytes = self.window_bytes + len(frame)
                if wb > offline_limit:
                    self._evict(None)
                return True
            if not win.mixed:
                # The window is full and holds only chunks at the input rate: the
                # oldest goes (inlined; its PCM is released now, its row skipped).
                chunks = win.pcm
                plo = win.plo
                nb = len(chunks[plo])
                chunks[plo] = b""
                win.plo = plo + 1  # counted in frames_at_risk when read (_Window.dropped)
                rows = win.rows
                if rows and win.lo < len(rows):  # a row first
                    win.lo = lo = win.lo + _STRIDE
                    if lo >= _TRIM_ROWS and 2 * lo >= len(rows):
                        win.trim()
                else:  # the run's first
                    win.rlo = rlo = win.rlo + 1
                    if rlo >= _TRIM_RUN:
                        win.trim()
                if nb != n:  # else as long as the new chunk: the seconds and bytes held stay
                    self.window_audio_s = held = held - nb / bytes_per_s
                    self.window_bytes += len(frame) - self._empty - (nb + 2) // 3 * 4
                    if held > limit:
                        self._evict(_AUDIO)
            else:
                self.window_bytes += len(frame)
                self.window_audio_s = self._evict_mixed(held, limit)
            if self.window_bytes > offline_limit:
                self._evict(None)
            return True

        return write_audio

    def _evict_mixed(self, held: float, limit: float) -> float:
        """The window (holding records of other kinds or rates too) holds ``held``
        seconds of audio, more than ``limit``: what :meth:`_evict_first_audio` and then
        ``_evict(AUDIO)`` drop, in one pass; returns the seconds still held."""
        win = self._win
        win.flush()
        rows = win.rows
        lo = win.lo
        stats = self.stats
        if _nb_hid_at(rows, lo + _R_NB)[1] >= 0 or win.others[_int_at(rows, lo)[0]][_K] == _AUDIO:
            _, dropped, secs = win.pop()
            held -= secs
            self.window_bytes -= dropped
            stats.frames_at_risk += 1
            if held <= limit:
                return held
        meta = win.drop_audio()
        if meta is not None:
            held -= meta[2]
            self.window_bytes -= meta[1]
            stats.frames_at_risk += 1
        return held

    def _evict_first_audio(self, held: float) -> float:
        """The window holds more audio than its bound: the oldest record goes if it is
        audio (the hot paths' first step); returns the seconds still held."""
        win = self._win
        win.flush()
        if win.kind(win.lo) == _AUDIO:
            _, dropped, secs = win.pop()
            held -= secs
            self.window_bytes -= dropped
            self.stats.frames_at_risk += 1
        return held

    def _settle(self) -> None:
        """Count what the open run owes (see :class:`_Window`) in the submission number
        and the run's connection's index and offset, and close the run. Everything that
        reads or takes those numbers calls it first."""
        win = self._win
        win.rn = _CLOSED
        owing = win.owing()
        if owing:
            win.owed = 0
            win.rmark = len(win.rwa)
            self.stats._absorb(owing)
            self.seq += owing
            conn = win.rconn
            assert conn is not None, "a run is written on a connection"
            conn.next_index += owing
            conn.bytes_out += owing * win.rsize

    def _take_seq(self) -> int:
        """The next submission number, taken (after :meth:`_settle`)."""
        self._settle()
        seq = self.seq = self.seq + 1
        return seq

    def _written_audio(
        self, raw: bytes, size: int, now: float, conn: Connection, seq: int, row: bool = False
    ) -> None:
        """The writer's chunk number ``seq`` was written: numbered on ``conn``, it begins a
        new open run (``row``: it goes into a row of its own instead)."""
        idx = conn.next_index
        conn.next_index = idx + 1
        end = conn.bytes_out = conn.bytes_out + size
        if row:
            self._win.add_pcm(raw, 0, seq, now, idx, end)
        else:
            self._win.start(raw, seq, now, idx, end, size, conn)

    def _unwritten_audio(self, frame: bytes, seconds: float, seq: int | None = None) -> None:
        """A chunk :meth:`write_audio` could not write (refused, or the writer raised):
        first in the queue, like a direct frame given back; the next flush writes it.
        ``seq``: its number, if it took one before the write."""
        if seq is None:
            seq = self._take_seq()
        self._queue((frame, _AUDIO, seq, False, seconds, (), 0.0, 0, 0))
        self.pending_bytes += len(frame)

    def _queue(self, out: _Rec) -> None:
        """Append ``out`` to the queue (a new list when it was empty)."""
        self._win.rn = _CLOSED  # something waits: the open run ends (see _Window)
        pending = self.pending
        if isinstance(pending, list):
            pending.append(out)
        else:
            self.pending = [out]

    def _unconfirmed(self, out: _Rec) -> None:
        """Append ``out`` to the frames handed out and not written yet."""
        self._win.rn = _CLOSED  # something waits: the open run ends (see _Window)
        unconfirmed = self.unconfirmed
        if isinstance(unconfirmed, tuple):
            self.unconfirmed = [out]
        else:
            unconfirmed.append(out)

    def set_seed(self, frames: list[bytes]) -> None:
        """History frames for the next fresh session (numbered now, released at open)."""
        self._settle()
        seed: list[_Rec] = []
        for frame in frames:
            self.seq += 1
            seed.append((frame, _SEED, self.seq, False, 0.0, (), 0.0, 0, 0))
        self.seed = seed or ()

    def release_seed(self) -> bool:
        """The connection opened: the seed goes to the head of the queue. True if any."""
        seed, self.seed = self.seed, ()
        self._requeue(seed)
        return bool(seed)

    # -- handing out ----------------------------------------------------------------------

    def hand_out(self, conn: Connection, now: float) -> list[bytes]:
        """Every queued frame, in order (to be confirmed with :meth:`written`)."""
        frames: list[bytes] = []
        pending = self.pending
        if not pending:
            return frames
        self._settle()
        self.pending = ()
        for out in pending:
            self.pending_bytes -= len(out[_F])
            self._hand_out(conn, out, now)
            frames.append(out[_F])
        return frames

    def _hand_out(self, conn: Connection, out: _Rec, now: float, direct: bool = False) -> None:
        idx = conn.next_index
        conn.next_index = idx + 1
        end = conn.bytes_out = conn.bytes_out + len(out[0])
        out = (out[0], out[1], out[2], out[3], out[4], out[5], now, idx, end)
        self.stats.frames_sent += 1
        if direct:
            self.last_direct = out
        else:
            self._unconfirmed(out)
        if out[_TE]:
            unanswered = self.unanswered
            if not isinstance(unanswered, list):
                unanswered = self.unanswered = []
            unanswered.append((out[_SEQ], now))
            if len(unanswered) > _MAX_UNANSWERED:
                del unanswered[0]  # bounded; a session never has this many in flight
        self._window_add(out)

    def written(self, count: int = 1) -> None:
        """``count`` frames handed out (oldest first) were written to the socket."""
        unconfirmed = self.unconfirmed
        if count >= len(unconfirmed):
            self.unconfirmed = ()
            return
        assert not isinstance(unconfirmed, tuple)  # not empty
        for _ in range(count):
            del unconfirmed[0]

    def direct_failed(self, conn: Connection | None) -> None:
        """The frame a ``send_*`` returned was not written: back to the head of the queue."""
        out, self.last_direct = self.last_direct, None
        if out is None:
            return
        self._unconfirmed(out)
        self.unwritten(conn)

    def unwritten(self, conn: Connection | None) -> None:
        """Frames handed out but not written go back to the head of the queue, in order."""
        # The frame a send_* returned last is settled by now (written, or given back by
        # direct_failed just before): it must not be matched again later.
        self.last_direct = None
        unconfirmed = self.unconfirmed
        if not unconfirmed:
            return
        self._settle()
        handed = list(unconfirmed)
        self.unconfirmed = ()
        # A frame no longer in the window was acknowledged while its write was pending:
        # the service has it, so it is not written again. Records are matched by their
        # submission number (unique per session), never by object identity: a runtime
        # may copy a tuple.
        win = self._win
        in_window = set(win.seqs())
        back = [out for out in handed if out[_SEQ] in in_window]
        if back:
            seqs = {out[_SEQ] for out in back}
            for i in reversed([i for i, seq in enumerate(win.seqs()) if seq in seqs]):
                self._window_forget(win.remove(i))
        if conn is not None:
            # The requeued frames are the latest handed out: their indices are free again,
            # and none of the handed-out frames reached the transport.
            conn.next_index -= len(back)
            conn.bytes_out -= sum(len(out[_F]) for out in handed)
        self._requeue(back)
        self.stats.frames_sent -= len(back)

    def _requeue(self, records: list[_Rec] | tuple[()]) -> None:
        if not records:
            return
        self._win.rn = _CLOSED  # something waits: the open run ends (see _Window)
        queue = list(records)
        queue.extend(self.pending)
        self.pending = queue
        self.pending_bytes += sum(len(out[_F]) for out in records)

    def discard(self) -> int:
        """The session is over: forget what was never written; returns how many frames."""
        n = len(self.pending) + len(self.unconfirmed)
        self.pending = ()
        self.unconfirmed = ()
        self.pending_bytes = 0
        return n

    # -- the re-send window ---------------------------------------------------------------

    def _window_add(self, out: _Rec) -> None:
        kind = out[_K]
        if kind == _SEED:
            return
        self._win.add(out)
        self.window_bytes += len(out[_F])
        if kind == _AUDIO:
            self.window_audio_s += out[_AS]
            if self.window_audio_s > self.resend.audio_seconds:
                self._evict(_AUDIO)
        elif kind == _VIDEO:
            self.window_video += 1
            if self.window_video > self.resend.video_frames:
                self._evict(_VIDEO)
        if self.window_bytes > self.offline_limit:
            self._evict(None)

    def _window_forget(self, meta: _Meta) -> None:
        kind, size, seconds = meta
        self.window_bytes -= size
        if kind == _AUDIO:
            self.window_audio_s -= seconds
        elif kind == _VIDEO:
            self.window_video -= 1

    def _evict(self, kind: int | None) -> None:
        """Drop the oldest frames of ``kind`` (any kind if None) beyond the window's bound."""
        win = self._win
        if kind is None:
            while win and self.window_bytes > self.offline_limit:
                meta = win.pop()
                self._window_forget(meta)
                self.stats.frames_at_risk += 1
                logger.warning(
                    "re-send window over %d bytes: dropped a %s frame",
                    self.offline_limit,
                    Kind(meta[0]).name,
                )
            return
        if kind == _AUDIO:
            dropped = win.drop_audio()
            if dropped is not None:
                self._window_forget(dropped)
                self.stats.frames_at_risk += 1
            return
        for i, p in enumerate(win.positions()):
            if win.kind(p) == kind:
                self._window_forget(win.remove(i))
                self.stats.frames_at_risk += 1
                return

    def _cover(self, up_to_seq: int) -> None:
        win = self._win
        win.flush()
        while win and _int_at(win.rows, win.lo)[0] <= up_to_seq:
            self._window_forget(win.pop())

    def model_started(self, now: float | None = None) -> None:
        """A new model turn began: it answers the oldest user turn written and not yet
        answered, so the service read that turn (and the time it took, when ``now`` is
        given, is the latest response lag). One model turn answers one user turn: when
        the service answers several at once, the later ones wait for the next answer or
        a handle (never the other way round, which would cover a turn not yet read)."""
        unanswered = self.unanswered
        if unanswered:
            seq, written_at = unanswered.pop(0)
            if not unanswered:
                self.unanswered = ()
            self.responded_seq = seq
            if now is not None:
                self.response_lag = max(0.0, now - written_at)

    def reply_due(self, tool_ids: Collection[str]) -> None:
        """The server cancelled the last open calls of a batch: the model now replies to
        the answers written for it. The latest of them (naming one of ``tool_ids``, on
        this connection) awaits that reply, in its place among the unanswered turns."""
        for out in reversed(self._win.tuples()):
            if out[_K] == _TOOL_RESPONSE and any(i in tool_ids for i in out[_TI]):
                entry = (out[_SEQ], out[_WA])
                unanswered = self.unanswered
                if entry in unanswered or out[_SEQ] <= self.responded_seq:
                    return
                if not isinstance(unanswered, list):
                    unanswered = self.unanswered = []
                at = sum(1 for seq, _ in unanswered if seq < entry[0])
                unanswered.insert(at, entry)
                if len(unanswered) > _MAX_UNANSWERED:
                    del unanswered[0]
                return

    @property
    def coverage_guard(self) -> float:
        """How long before a handle a frame must have left to be covered by it."""
        return max(self.handle_guard, self.response_lag)

    def cover_by_handle(
        self, now: float, conn: Connection | None = None, unsent: int | None = None
    ) -> None:
        """A resumable handle arrived: drop what its checkpoint certainly holds.

        ``unsent`` is how many of the bytes written on ``conn`` the transport still held
        when the handle arrived (write buffer and kernel send queue). Without ``conn`` the
        caller vouches that a frame leaves when it is written: frames written a guard
        time before are covered. With ``conn`` and ``unsent`` None (the transport cannot
        tell) the same clock rule applies and each frame it covers is counted in
        ``frames_at_risk``.
        """
        self._settle()
        guard = self.coverage_guard
        cutoff = now - guard
        covered = self.responded_seq
        win = self._win
        win.flush()
        rows = win.rows
        if unsent is None:
            count = conn is not None
            for p in win.positions():
                if _float_at(rows, p + _R_WA)[0] <= cutoff:
                    seq = _int_at(rows, p)[0]
                    if seq > covered:
                        covered = seq
                        if count:
                            self.stats.frames_at_risk += 1
                else:
                    break
            self._cover(covered)
            return
        assert conn is not None, "unsent bytes count on a connection"
        held = sum(len(out[_F]) for out in self.unconfirmed)
        probes = self.probes
        if not isinstance(probes, list):
            probes = self.probes = []
        probes.append((now, conn.bytes_out - held - unsent))
        while len(probes) > 1 and probes[1][0] <= cutoff:
            del probes[0]
        if len(probes) > _MAX_PROBES:
            del probes[0]
        first_at, left = probes[0]
        if first_at <= cutoff:
            for p in win.positions():
                if _int_at(rows, p + _R_END)[0] <= left:
                    covered = max(covered, _int_at(rows, p)[0])
                else:
                    break
        self._cover(covered)

    def acknowledge_index(self, index: int) -> None:
        """Transparent resumption: the server consumed every frame up to ``index``."""
        win = self._win
        win.flush()
        while win and _int_at(win.rows, win.lo + _R_IX)[0] <= index:
            self._window_forget(win.pop())

    def opened(self, setup_rtt: float | None) -> None:
        """A connection opened: note its setup round trip; no response is awaited."""
        self._settle()  # the next chunk is numbered on the new connection
        if setup_rtt is not None:
            self.max_setup_rtt = max(self.max_setup_rtt, setup_rtt)
        self.unanswered = ()  # what is re-sent is written (and awaited) again
        self.probes = ()  # offsets count per connection

    def requeue_window(self, stale_tool_ids: Collection[str]) -> None:
        """Put every written, uncovered frame back in front of the queue (re-send); a tool
        answer whose calls are all stale is dropped and counted."""
        self._settle()
        resend: list[_Rec] = []
        for out in self._win:
            if (
                out[_K] == _TOOL_RESPONSE
                and out[_TI]
                and all(i in stale_tool_ids for i in out[_TI])
            ):
                self.stats.stale_tool_responses_dropped += 1
                continue
            resend.append(out)
        self._win.clear()
        # An answer seen on a lost connection is not in the state resumed from (the
        # handle did not cover its turn, still in the window): the re-sent turn is
        # covered once it is answered again, not before.
        self.responded_seq = 0
        self.window_audio_s = 0.0
        self.window_video = 0
        self.window_bytes = 0
        if not resend:
            return
        self.stats.replayed_frames += len(resend)
        self._requeue(resend)
        logger.info("re-sending %d frames written after the last acknowledged point", len(resend))

    # -- plain data -----------------------------------------------------------------------

    def snapshot(self) -> OutboxState:
        """Everything held, as plain data (records become :class:`RecordState`); the
        connection's counters are up to date after it (see :meth:`_settle`)."""
        self._settle()
        positions = {seq: i for i, seq in enumerate(self._win.seqs())}
        return OutboxState(
            seq=self.seq,
            pending=[_state_of(o) for o in self.pending],
            unconfirmed=[_state_of(o) for o in self.unconfirmed],
            last_direct=None if self.last_direct is None else _state_of(self.last_direct),
            window=[_state_of(o) for o in self._win],
            seed=[_state_of(o) for o in self.seed],
            window_audio_s=self.window_audio_s,
            unconfirmed_in_window=[positions.get(o[_SEQ], -1) for o in self.unconfirmed],
            last_direct_in_window=-1
            if self.last_direct is None
            else positions.get(self.last_direct[_SEQ], -1),
            unanswered=list(self.unanswered),
            responded_seq=self.responded_seq,
            max_setup_rtt=self.max_setup_rtt,
            probes=list(self.probes),
            response_lag=self.response_lag,
        )

    def restore(self, state: OutboxState) -> None:
        """Take over ``state`` (from :meth:`snapshot`)."""
        self.seq = state.seq
        self.pending = [_rec_of(s) for s in state.pending] or ()
        self.pending_bytes = sum(len(o[_F]) for o in self.pending)
        window = [_rec_of(s) for s in state.window]

        def shared(saved: RecordState, at: int) -> _Rec:
            return window[at] if 0 <= at < len(window) else _rec_of(saved)

        where = state.unconfirmed_in_window
        self.unconfirmed = [
            shared(s, where[i] if i < len(where) else -1) for i, s in enumerate(state.unconfirmed)
        ] or ()
        last = state.last_direct
        self.last_direct = None if last is None else shared(last, state.last_direct_in_window)
        self.window = window
        self.window_bytes = sum(len(o[_F]) for o in window)
        self.window_audio_s = state.window_audio_s
        self.window_video = sum(1 for o in window if o[_K] == _VIDEO)
        self.seed = [_rec_of(s) for s in state.seed] or ()
        self.unanswered = [(q, t) for q, t in state.unanswered] or ()
        self.responded_seq = state.responded_seq
        self.max_setup_rtt = state.max_setup_rtt
        self.probes = [(t, o) for t, o in state.probes] or ()
        self.response_lag = state.response_lag
