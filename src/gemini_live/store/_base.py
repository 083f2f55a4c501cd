"""The interface every conversation store implements."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable

from gemini_live.errors import ConfigError, ConversationBusy, StaleFenceError
from gemini_live.store._record import ConversationRecord, Lease, check_id, check_ttl

__all__ = ["DEFAULT_LEASE_TTL", "DEFAULT_RECORD_TTL", "ConversationStore"]

#: Seconds a lease lasts unless renewed (a session renews it every third of that).
DEFAULT_LEASE_TTL = 15.0
#: Seconds a record is kept after its last save (7 days).
DEFAULT_RECORD_TTL = 7 * 24 * 3600.0


# The three refusals every store gives, in one wording.


def save_refused(conversation: str, fence: int) -> StaleFenceError:
    return StaleFenceError(
        f"conversation {conversation!r}: save refused, fencing token {fence} is not the latest"
    )


def busy(conversation: str, expires_in: float) -> ConversationBusy:
    return ConversationBusy(
        f"conversation {conversation!r} is driven by another owner (its lease runs out in "
        f"{expires_in:.1f} s unless renewed)",
        expires_in=expires_in,
    )


def taken_over(lease: Lease) -> StaleFenceError:
    return StaleFenceError(
        f"conversation {lease.conversation!r}: lease {lease.fence} was taken over"
    )


class ConversationStore(abc.ABC):
    """Where conversations outlive their process: records and leases.

    Every operation is a coroutine. A conversation is driven by one owner at a time:
    :meth:`acquire` gives a :class:`Lease` with a fencing token, :meth:`save` is refused
    (:class:`~gemini_live.errors.StaleFenceError`) unless its token is the conversation's
    latest, :meth:`renew` extends the lease, :meth:`release` ends it. A lease that is
    not renewed expires after ``lease_ttl`` seconds and another owner may take over (a
    crashed process). A record expires ``record_ttl`` seconds after its last save (None:
    never).

    Implementations: :class:`~gemini_live.store.MemoryStore` (one process),
    :class:`~gemini_live.store.SqliteStore` (one machine, survives a restart) and
    :class:`~gemini_live.store.RedisStore` (many machines).
    """

    def __init__(
        self,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        record_ttl: float | None = DEFAULT_RECORD_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lease_ttl: float = check_ttl("lease_ttl", lease_ttl)  # type: ignore[assignment]
        self.record_ttl = check_ttl("record_ttl", record_ttl, optional=True)
        if self.record_ttl is not None and self.record_ttl <= self.lease_ttl:
            raise ConfigError("record_ttl must be longer than lease_ttl")
        if not callable(clock):
            raise ConfigError("clock must be a callable returning Unix seconds")
        #: Wall clock (Unix seconds); stores whose server keeps time ignore it for leases.
        self.clock = clock

    # -- the interface ------------------------------------------------------------------

    @abc.abstractmethod
    async def load(self, conversation: str) -> ConversationRecord | None:
        """The conversation's record, or None (never saved, deleted or expired)."""

    @abc.abstractmethod
    async def save(self, record: ConversationRecord, *, fence: int) -> None:
        """Store ``record`` (under ``record.conversation``) if ``fence`` is the
        conversation's latest fencing token; otherwise raise
        :class:`~gemini_live.errors.StaleFenceError` and write nothing."""

    @abc.abstractmethod
    async def acquire(self, conversation: str, owner: str, *, ttl: float | None = None) -> Lease:
        """Lease the conversation for ``owner`` (``ttl`` defaults to ``lease_ttl``).

        Returns a lease with a new, larger fencing token; raises
        :class:`~gemini_live.errors.ConversationBusy` while another owner's lease is
        live. Of two racing owners exactly one wins.
        """

    @abc.abstractmethod
    async def renew(self, lease: Lease) -> Lease:
        """Extend ``lease`` by its ttl; :class:`~gemini_live.errors.StaleFenceError` if
        another owner acquired the conversation since (or it was deleted)."""

    @abc.abstractmethod
    async def release(self, lease: Lease) -> None:
        """End ``lease`` now (another owner may acquire at once); a lease that is no
        longer the latest is left alone."""

    @abc.abstractmethod
    async def delete(self, conversation: str) -> None:
        """Forget the conversation's record and lease (its current owner's saves are
        refused from now on)."""

    async def aclose(self) -> None:  # noqa: B027 - optional for stores that hold nothing
        """Release the store's connections (the stored data stays)."""

    # -- shared checks ------------------------------------------------------------------

    def _lease_ttl(self, ttl: float | None) -> float:
        if ttl is None:
            return self.lease_ttl
        return check_ttl("ttl", ttl)  # type: ignore[return-value]

    @staticmethod
    def _check_owner(owner: object) -> str:
        if not isinstance(owner, str) or not owner or len(owner) > 200:
            raise ConfigError("owner must be a non-empty string of at most 200 characters")
        return owner

    @staticmethod
    def _check_record(record: object) -> ConversationRecord:
        if not isinstance(record, ConversationRecord):
            raise ConfigError(f"expected a ConversationRecord, got {type(record).__name__}")
        check_id(record.conversation)
        return record

    @staticmethod
    def _check_lease(lease: object) -> Lease:
        if not isinstance(lease, Lease):
            raise ConfigError(f"expected a Lease, got {type(lease).__name__}")
        return lease

    async def __aenter__(self) -> ConversationStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
