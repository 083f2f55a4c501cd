"""A session bound to a stored conversation: lease, load, restore, save, renew.

:class:`ConversationLink` is created by ``Session.connect`` / ``gl.connect`` when the
config names a ``conversation``. Before the session exists it leases the conversation
(waiting at most one lease TTL for a crashed owner's lease to run out) and loads its
record; :meth:`ConversationLink.prepare` turns the record into what the session is
built from (the restored core, or a fresh one seeded with the history). While the
session runs, one *saver* task writes the record whenever the session marks it dirty
(a handle update, a turn end, a tool call or answer, user text: never per audio chunk)
and one *renewer* task keeps the lease. A refused save or renew (another owner took
over) ends the session with :class:`~gemini_live.errors.StaleFenceError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal, Protocol

import msgspec

from gemini_live import events as ev
from gemini_live.errors import (
    ConfigError,
    ConversationBusy,
    GeminiLiveError,
    StaleFenceError,
    StoreError,
)
from gemini_live.protocol import ClientProtocol, ProtocolSnapshot, State
from gemini_live.store._base import ConversationStore
from gemini_live.store._memory import MemoryStore
from gemini_live.store._record import (
    MAX_TEXT_IDS,
    ConversationRecord,
    Lease,
    TaskRecord,
    check_id,
    setup_fingerprint,
)

if TYPE_CHECKING:
    from gemini_live.config import SessionConfig
    from gemini_live.history import History

__all__ = ["ConversationLink", "check_text_id", "default_store"]

logger = logging.getLogger("gemini_live.session")

#: Bound on one store call made by the session (a save, a renew).
_STORE_TIMEOUT = 10.0

_default: MemoryStore | None = None

#: A client text id: what a page gives each text it sends (1-64 characters).
TEXT_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def check_text_id(text_id: object) -> str:
    """``text_id`` if it is a usable client text id."""
    if not isinstance(text_id, str) or not TEXT_ID.fullmatch(text_id):
        raise ConfigError("text_id must be 1-64 characters of letters, digits and ._:-")
    return text_id


def default_store() -> MemoryStore:
    """The process-wide :class:`MemoryStore` used when ``conversation=`` has no store."""
    global _default
    if _default is None:
        _default = MemoryStore()
    return _default


class _Owner(Protocol):
    """What the link needs from its session."""

    protocol: ClientProtocol
    history: History | None

    def _fail(self, error: GeminiLiveError) -> None: ...


class ConversationLink:
    """One session's hold on one stored conversation (see the module docstring).

    Public through ``session.conversation``: ``id``, ``store``, ``fence``, ``saves``,
    ``save_errors``, ``saved_at``, ``from_store`` and :attr:`unsaved_frames`.
    """

    def __init__(self, store: ConversationStore, conversation: str) -> None:
        self.store = store
        self.id = conversation
        self.owner = f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(6)}"
        self.lease: Lease | None = None
        self.record: ConversationRecord | None = None
        self.fingerprint = ""
        #: The session started from a stored record (its first ``Resumed`` says so).
        self.from_store = False
        #: Saves done, saves that failed (store errors; retried at the next change).
        self.saves = 0
        self.save_errors = 0
        #: Wall-clock time of the latest save (None: not saved yet).
        self.saved_at: float | None = None
        #: Wall-clock time the latest handle arrived (None: unknown).
        self.handle_at: float | None = None
        #: The first ``Resumed`` event of a session that continued a stored conversation
        #: (None: a new conversation, or not connected yet).
        self.resumed: ev.Resumed | None = None
        #: Client ids of the user texts this conversation accepted (the latest
        #: :data:`~gemini_live.store._record.MAX_TEXT_IDS`), saved with the record.
        self.text_ids: deque[str] = deque(maxlen=MAX_TEXT_IDS)
        self._texts_accepted = 0
        self._texts_saved = 0
        #: Texts with an id in this conversation (the stored ones count), numbered from
        #: 0; of those, how many had their turn end (each turn end ends the oldest one
        #: not ended yet), how many of those a handle issued after the turn end covers,
        #: and how many of those are in a completed save.
        self._text_seq = 0
        self._texts_ended = 0
        self._texts_ended_covered = 0
        self._texts_ended_saved = 0
        #: Model turns ended in this session; of those, the ones a later handle covers,
        #: and the ones covered in a completed save.
        self.turn_ends = 0
        self._turns_covered = 0
        self._turns_covered_saved = 0
        self._frames_at_save = 0
        self._announce = False
        self._dirty = False
        self._lost = False
        self._session: _Owner | None = None
        self._wake: asyncio.Event | None = None
        self._saved: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: asyncio.Task[None] | None = None
        #: Where the long-running task records come from (set by a ToolRunner); without
        #: one the loaded record's tasks are kept as they were.
        self.tasks_source: Callable[[], list[TaskRecord]] | None = None

    def __repr__(self) -> str:
        return f"<Conversation {self.id!r} fence={self.fence} saves={self.saves}>"

    @property
    def fence(self) -> int | None:
        """The fencing token of this session's lease."""
        return None if self.lease is None else self.lease.fence

    @property
    def unsaved_frames(self) -> int:
        """Frames (mostly audio chunks) written since the latest save: what a crash of
        this process right now would lose beyond the saved re-send window."""
        if self._session is None:
            return 0
        return self._session.protocol.stats.frames_sent - self._frames_at_save

    # -- before the session exists ------------------------------------------------------

    @classmethod
    async def open(cls, config: SessionConfig) -> ConversationLink:
        """Lease the conversation named by ``config`` and load its record."""
        store = config.store if config.store is not None else default_store()
        link = cls(store, check_id(config.conversation))
        link.fingerprint = setup_fingerprint(config.setup)
        await link._acquire()
        try:
            async with asyncio.timeout(_STORE_TIMEOUT):
                link.record = await store.load(link.id)
        except BaseException:
            await link._release()
            raise
        return link

    async def _acquire(self) -> None:
        store = self.store
        deadline = time.monotonic() + store.lease_ttl + 1.0
        while True:
            try:
                async with asyncio.timeout(_STORE_TIMEOUT):
                    self.lease = await store.acquire(self.id, self.owner)
                return
            except ConversationBusy as exc:
                # A crashed owner's lease runs out within one TTL; a live one is renewed.
                left = deadline - time.monotonic()
                if left <= 0 or exc.expires_in + 0.05 > left:
                    raise
                logger.info(
                    "conversation %r is leased; waiting %.2f s for the lease to run out",
                    self.id,
                    exc.expires_in,
                )
                # Look again soon: an owner that closes releases its lease early.
                await asyncio.sleep(min(exc.expires_in + 0.05, 0.25))

    def prepare(self, config: SessionConfig) -> tuple[SessionConfig, ProtocolSnapshot | None]:
        """The config to build the session with and the core to restore (None: build a
        fresh one). Also decides what the first ``Resumed`` event reports."""
        record = self.record
        if record is None:
            return config, None
        self.from_store = True
        self._announce = True
        self.handle_at = record.handle_at
        # The texts are in the stored window or history either way: keep their ids.
        self.text_ids.extend(record.text_ids)
        self._text_seq = len(record.text_ids)
        ended = record.text_ids_ended
        self._texts_ended = self._texts_ended_covered = self._texts_ended_saved = ended
        config = dataclasses.replace(config, history=tuple(record.history))
        if record.setup_fingerprint != self.fingerprint:
            # Another setup: the stored handle resumes the old one. Start a fresh session
            # with the new setup, seeded with the stored history (ADR: durable
            # conversations).
            logger.warning(
                "conversation %r was stored with another setup: starting a fresh session "
                "seeded with its history",
                self.id,
            )
            self.handle_at = None
            return config, None
        return config, record.snapshot

    @staticmethod
    def restored(snapshot: ProtocolSnapshot, normalize: object) -> ClientProtocol:
        """The core of a stored conversation, ready for a new first connection."""
        try:
            protocol = ClientProtocol.restore(snapshot, normalize_model=normalize)  # type: ignore[arg-type]
        except GeminiLiveError as exc:
            raise StoreError(f"the stored conversation cannot be restored: {exc}") from None
        if protocol.state not in (State.IDLE, State.CLOSED):
            protocol.connection_lost(1006, "the previous owner ended", local=True)
        protocol.direct_writes = False
        protocol.expect_resume = True
        # The backoff and the fresh restarts in a row go on from the stored counters;
        # the first connection of this process is still a first one (a failure of it
        # ends the session unless the policy retries initial connects).
        protocol.reconnect.first = True
        return protocol

    # -- while the session runs ---------------------------------------------------------

    def attach(self, session: _Owner) -> None:
        """Start saving ``session`` and renewing the lease."""
        self._session = session
        self._frames_at_save = session.protocol.stats.frames_sent
        self._wake = asyncio.Event()
        self._saved = asyncio.Condition()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._saver(), name="gemini-live-conversation-saver"),
            loop.create_task(self._renewer(), name="gemini-live-conversation-lease"),
        ]

    def mark(self) -> None:
        """Something worth saving changed."""
        self._dirty = True
        if self._wake is not None:
            self._wake.set()

    def has_text(self, text_id: str) -> bool:
        """A text with this client id was accepted already (in this conversation's
        latest :data:`~gemini_live.store._record.MAX_TEXT_IDS`)."""
        return text_id in self.text_ids

    def accept_text(self, text_id: str) -> None:
        """Record that the text with ``text_id`` was just queued for the service (call it
        with no await between the queueing and this call: one save holds both)."""
        self.text_ids.append(check_text_id(text_id))
        self._texts_accepted += 1
        self._text_seq += 1
        self.mark()

    def text_state(self, text_id: str) -> Literal["ended", "open", "unknown"]:
        """Where the text with this client id stands in the latest completed save:
        ``"ended"`` (its turn ended before the saved handle: over, never answered
        again), ``"open"`` (accepted, its turn not over in that save) or ``"unknown"``
        (not among the latest :data:`~gemini_live.store._record.MAX_TEXT_IDS` accepted).
        A text accepted since the latest save is ``"open"``."""
        ids = self.text_ids
        try:
            at = ids.index(text_id)
        except ValueError:
            return "unknown"
        number = self._text_seq - len(ids) + at
        return "ended" if number < self._texts_ended_saved else "open"

    @property
    def texts_unsaved(self) -> int:
        """Accepted text ids not in a completed save yet."""
        return self._texts_accepted - self._texts_saved

    async def wait_texts_saved(self) -> None:
        """Wait until every text id accepted so far is in a completed save (the caller
        bounds the wait)."""
        target = self._texts_accepted
        await self.wait_saved(lambda: self._texts_saved >= target)

    def turn_ended(self) -> None:
        """A model turn completed (the session calls it as it reads the turn end)."""
        self.turn_ends += 1
        self._texts_ended = min(self._texts_ended + 1, self._text_seq)
        self.mark()

    async def wait_turn_covered(self, turns: int) -> None:
        """Wait until a completed save holds a handle issued after the first ``turns``
        model turns of this session ended: from then on a restore does not re-send the
        user turns they answered (the caller bounds the wait)."""
        await self.wait_saved(lambda: self._turns_covered_saved >= turns)

    def handle_arrived(self) -> None:
        self.handle_at = time.time()
        self._turns_covered = self.turn_ends
        self._texts_ended_covered = self._texts_ended
        self.mark()

    def annotate(self, event: ev.Resumed) -> ev.Resumed:
        """The ``Resumed`` event with ``from_store`` and ``handle_age`` filled in."""
        from_store = self._announce
        self._announce = False
        at = self.handle_at
        age = None if at is None else max(0.0, time.time() - at)
        event = msgspec.structs.replace(event, from_store=from_store, handle_age=age)
        if from_store:
            self.resumed = event
        return event

    def _record(self) -> ConversationRecord:
        session = self._session
        assert session is not None and self.lease is not None
        history = session.history
        return ConversationRecord(
            conversation=self.id,
            snapshot=session.protocol.snapshot(),
            history=list(history.entries) if history is not None else [],
            setup_fingerprint=self.fingerprint,
            owner=self.owner,
            epoch=self.lease.fence,
            saved_at=time.time(),
            handle_at=self.handle_at,
            text_ids=list(self.text_ids),
            text_ids_ended=self._ids_ended(self._texts_ended_covered),
            tasks=self._task_records(),
        )

    def _ids_ended(self, ended: int) -> int:
        """How many of the kept ``text_ids`` are among the first ``ended`` texts."""
        return max(0, ended - (self._text_seq - len(self.text_ids)))

    def _task_records(self) -> list[TaskRecord]:
        source = self.tasks_source
        if source is not None:
            return source()
        return list(self.record.tasks) if self.record is not None else []

    async def save_now(self) -> None:
        """Save the session's state now (refused: the session ends)."""
        if self._lost or self.lease is None or self._session is None:
            return
        frames = self._session.protocol.stats.frames_sent
        texts = self._texts_accepted
        covered = self._turns_covered
        ended = self._texts_ended_covered
        record = self._record()  # taken synchronously: one consistent state
        self._dirty = False
        try:
            async with asyncio.timeout(_STORE_TIMEOUT):
                await self.store.save(record, fence=self.lease.fence)
        except StaleFenceError as exc:
            self._lose(exc)
            return
        except (StoreError, TimeoutError) as exc:
            self._dirty = True
            self.save_errors += 1
            logger.warning(
                "conversation %r: save failed (%s); retried at the next change", self.id, exc
            )
            return
        self.saves += 1
        self.saved_at = record.saved_at
        self._frames_at_save = frames
        self._texts_saved = texts
        self._turns_covered_saved = covered
        self._texts_ended_saved = ended
        if self._saved is not None:
            async with self._saved:
                self._saved.notify_all()

    async def wait_saved(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds after a save (the caller bounds the wait)."""
        assert self._saved is not None, "the session is not started"
        async with self._saved:
            await self._saved.wait_for(predicate)

    def _lose(self, exc: StaleFenceError) -> None:
        self._lost = True
        logger.error("conversation %r: %s; ending this session", self.id, exc)
        if self._session is not None:
            self._session._fail(exc)

    async def _saver(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._lost:
            await wake.wait()
            wake.clear()
            await self.save_now()

    async def _renewer(self) -> None:
        while not self._lost and self.lease is not None:
            await asyncio.sleep(self.lease.ttl / 3)
            try:
                async with asyncio.timeout(min(_STORE_TIMEOUT, self.lease.ttl / 3)):
                    self.lease = await self.store.renew(self.lease)
            except StaleFenceError as exc:
                self._lose(exc)
                return
            except (StoreError, TimeoutError) as exc:
                logger.warning("conversation %r: lease renewal failed (%s)", self.id, exc)

    # -- the end ------------------------------------------------------------------------

    def close(self, *, save: bool = True) -> asyncio.Task[None]:
        """Stop the tasks, save a last time (unless ``save`` is false or the lease was
        lost) and release the lease. Idempotent: returns the one closing task."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(save))
        return self._closing

    async def _close(self, save: bool) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A conversation that never had anything worth saving is not written at the end
        # (a first connection that failed leaves the store as it was).
        if save and self._session is not None and (self._dirty or self.saves or self.record):
            with contextlib.suppress(Exception):
                await self.save_now()
        await self._release()

    async def _release(self) -> None:
        lease, self.lease = self.lease, None
        if lease is None or self._lost:
            return
        try:
            async with asyncio.timeout(_STORE_TIMEOUT):
                await self.store.release(lease)
        except (StoreError, TimeoutError) as exc:
            logger.warning("conversation %r: releasing the lease failed (%s)", self.id, exc)

    def abandon(self) -> None:
        """Drop everything without saving or releasing (a simulated crash, in tests)."""
        self._lost = True
        for task in self._tasks:
            task.cancel()
