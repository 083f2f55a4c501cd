"""A conversation store in this process's memory (the default)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gemini_live.store._base import (
    DEFAULT_LEASE_TTL,
    DEFAULT_RECORD_TTL,
    ConversationStore,
    busy,
    save_refused,
    taken_over,
)
from gemini_live.store._cipher import Cipher
from gemini_live.store._record import (
    ConversationRecord,
    Lease,
    check_id,
)

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Row:
    """A conversation's lease state: the latest token (kept after a release or delete,
    so tokens never repeat) and the live holder, if any."""

    seq: int = 0
    owner: str | None = None
    fence: int = 0
    expires_at: float = 0.0


class MemoryStore(ConversationStore):
    """Conversations kept in this process (lost when it exits).

    For a session object that is dropped and a new one that continues the conversation
    in the same process (a browser reload on a one-process relay), and for tests.
    Records are stored encoded, as the other stores do, so what :meth:`load` returns is
    never shared with a live session. Expired records are purged on every save.
    """

    def __init__(
        self,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        record_ttl: float | None = DEFAULT_RECORD_TTL,
        clock: Callable[[], float] = time.time,
        cipher: Cipher | None = None,
    ) -> None:
        super().__init__(lease_ttl=lease_ttl, record_ttl=record_ttl, clock=clock, cipher=cipher)
        self._records: dict[str, tuple[bytes, float | None]] = {}
        self._leases: dict[str, _Row] = {}

    def __repr__(self) -> str:
        return f"<MemoryStore conversations={len(self._records)}>"

    async def load(self, conversation: str) -> ConversationRecord | None:
        check_id(conversation)
        item = self._records.get(conversation)
        if item is None:
            return None
        data, expires = item
        if expires is not None and expires <= self.clock():
            del self._records[conversation]
            return None
        return self._unpack(data, conversation, "memory store")

    async def save(self, record: ConversationRecord, *, fence: int) -> None:
        record = self._check_record(record)
        cid = record.conversation
        row = self._leases.get(cid)
        if row is None or row.owner is None or row.fence != fence:
            raise save_refused(cid, fence)
        now = self.clock()
        ttl = self.record_ttl
        self._records[cid] = (self._pack(record), None if ttl is None else now + ttl)
        self._purge(now)

    async def acquire(self, conversation: str, owner: str, *, ttl: float | None = None) -> Lease:
        cid = check_id(conversation)
        owner = self._check_owner(owner)
        span = self._lease_ttl(ttl)
        now = self.clock()
        row = self._leases.setdefault(cid, _Row())
        if row.owner is not None and row.owner != owner and row.expires_at > now:
            left = row.expires_at - now
            raise busy(cid, left)
        row.seq += 1
        row.owner, row.fence, row.expires_at = owner, row.seq, now + span
        return Lease(cid, owner, row.fence, span, row.expires_at)

    async def renew(self, lease: Lease) -> Lease:
        lease = self._check_lease(lease)
        row = self._leases.get(lease.conversation)
        if row is None or row.owner is None or row.fence != lease.fence:
            raise taken_over(lease)
        row.expires_at = self.clock() + lease.ttl
        return Lease(lease.conversation, lease.owner, lease.fence, lease.ttl, row.expires_at)

    async def release(self, lease: Lease) -> None:
        lease = self._check_lease(lease)
        row = self._leases.get(lease.conversation)
        if row is not None and row.fence == lease.fence:
            row.expires_at = 0.0

    async def delete(self, conversation: str) -> None:
        cid = check_id(conversation)
        self._records.pop(cid, None)
        row = self._leases.get(cid)
        if row is not None:
            row.owner, row.fence, row.expires_at = None, 0, 0.0

    def _purge(self, now: float) -> None:
        gone = [k for k, (_, exp) in self._records.items() if exp is not None and exp <= now]
        for key in gone:
            del self._records[key]
            row = self._leases.get(key)
            if row is not None and row.expires_at <= now:
                del self._leases[key]
