"""The interface every conversation store implements."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable

from gemini_live.errors import ConfigError, ConversationBusy, StaleFenceError, StoreSealError
from gemini_live.store._cipher import Cipher, is_sealed
from gemini_live.store._record import (
    ConversationRecord,
    Lease,
    check_id,
    check_ttl,
    decode_record,
    encode_record,
)

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

    ``cipher`` (a :class:`~gemini_live.store.Cipher`, e.g.
    :class:`~gemini_live.store.AesGcmCipher`) seals every record before it is written
    and opens it when it is loaded, with the conversation id as associated data:
    encryption at rest. A record that does not open raises
    :class:`~gemini_live.errors.StoreSealError`.

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
        cipher: Cipher | None = None,
    ) -> None:
        self.lease_ttl: float = check_ttl("lease_ttl", lease_ttl)  # type: ignore[assignment]
        self.record_ttl = check_ttl("record_ttl", record_ttl, optional=True)
        if self.record_ttl is not None and self.record_ttl <= self.lease_ttl:
            raise ConfigError("record_ttl must be longer than lease_ttl")
        if not callable(clock):
            raise ConfigError("clock must be a callable returning Unix seconds")
        #: Wall clock (Unix seconds); stores whose server keeps time ignore it for leases.
        self.clock = clock
        if cipher is not None and not isinstance(cipher, Cipher):
            raise ConfigError("cipher must have seal(data, *, associated) and open(...) methods")
        #: Seals records at rest (None: stored as encoded).
        self.cipher = cipher

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

    # -- the stored bytes ---------------------------------------------------------------

    def _pack(self, record: ConversationRecord) -> bytes:
        """The bytes stored for ``record``: encoded, then sealed if there is a cipher."""
        data = encode_record(record)
        if self.cipher is None:
            return data
        return bytes(self.cipher.seal(data, associated=record.conversation.encode()))

    def _unpack(self, data: bytes, conversation: str, where: str) -> ConversationRecord:
        """The record stored as ``data`` under ``conversation``: opened, then decoded;
        a typed error (never a half-read record) when either fails."""
        cipher = self.cipher
        if cipher is None:
            if is_sealed(data):
                raise StoreSealError(
                    f"{where}: the stored record is sealed (encrypted) and this store has no cipher"
                )
        else:
            try:
                data = cipher.open(data, associated=conversation.encode())
            except StoreSealError as exc:
                raise StoreSealError(f"{where}: {exc}") from None
            except Exception as exc:  # a plugged-in cipher's own failure
                raise StoreSealError(
                    f"{where}: the cipher could not open the record ({type(exc).__name__})"
                ) from None
        record = decode_record(data, where=where)
        if record.conversation != conversation:
            raise StoreSealError(f"{where}: the stored record belongs to another conversation")
        return record

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
