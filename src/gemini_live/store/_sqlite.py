"""A conversation store in an SQLite file: one machine, survives a process restart."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gemini_live.errors import StoreError
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

if TYPE_CHECKING:  # imported when a store opens: `import gemini_live` stays lighter
    import sqlite3

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gl_records (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    expires_at REAL
);
CREATE TABLE IF NOT EXISTS gl_leases (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    owner TEXT,
    fence INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
"""


class SqliteStore(ConversationStore):
    """Conversations in an SQLite database file (stdlib :mod:`sqlite3`, WAL mode).

    Several processes of one machine may share the file: each lease change is one
    ``BEGIN IMMEDIATE`` transaction, so of two racing owners exactly one wins. Every
    call runs in a worker thread (:func:`asyncio.to_thread`), never on the event loop.
    The file holds conversation text: keep it where only its user can read it (it is
    created with mode 0600).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        record_ttl: float | None = DEFAULT_RECORD_TTL,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
        cipher: Cipher | None = None,
    ) -> None:
        super().__init__(lease_ttl=lease_ttl, record_ttl=record_ttl, clock=clock, cipher=cipher)
        self.path = Path(path)
        self._busy_ms = int(busy_timeout * 1000)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SqliteStore {str(self.path)!r}>"

    # -- plumbing -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        import sqlite3

        try:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
                os.close(fd)
            db = sqlite3.connect(
                self.path,
                timeout=self._busy_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            # Switching a new file to WAL can fail at once with "database is locked" while
            # other connections open it too (the busy handler does not cover it): retry
            # within the busy timeout.
            deadline = time.monotonic() + self._busy_ms / 1000
            while True:
                try:
                    db.execute("PRAGMA journal_mode = WAL")
                    db.execute("PRAGMA synchronous = NORMAL")
                    db.executescript(_SCHEMA)
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        db.close()
                        raise
                    time.sleep(0.01)  # a worker thread; the event loop is not blocked
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"sqlite store {str(self.path)!r}: cannot open ({exc})") from None
        self._db = db
        return db

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        import sqlite3

        def call() -> _T:
            with self._lock:
                db = self._connect()
                try:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(db)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                    return result
                except sqlite3.Error as exc:
                    raise StoreError(
                        f"sqlite store {str(self.path)!r}: {what} failed ({exc})"
                    ) from None

        return await asyncio.to_thread(call)

    @staticmethod
    def _lease_row(db: sqlite3.Connection, cid: str) -> Any:
        return db.execute(
            "SELECT seq, owner, fence, expires_at FROM gl_leases WHERE id = ?", (cid,)
        ).fetchone()

    # -- the interface ------------------------------------------------------------------

    async def load(self, conversation: str) -> ConversationRecord | None:
        cid = check_id(conversation)
        now = self.clock()

        def op(db: sqlite3.Connection) -> bytes | None:
            row = db.execute(
                "SELECT data, expires_at FROM gl_records WHERE id = ?", (cid,)
            ).fetchone()
            if row is None:
                return None
            if row[1] is not None and row[1] <= now:
                db.execute("DELETE FROM gl_records WHERE id = ?", (cid,))
                return None
            return bytes(row[0])

        data = await self._run("load", op)
        return None if data is None else self._unpack(data, cid, f"sqlite store {cid!r}")

    async def save(self, record: ConversationRecord, *, fence: int) -> None:
        record = self._check_record(record)
        cid = record.conversation
        data = self._pack(record)
        now = self.clock()
        expires = None if self.record_ttl is None else now + self.record_ttl

        def op(db: sqlite3.Connection) -> bool:
            row = self._lease_row(db, cid)
            if row is None or row[1] is None or row[2] != fence:
                return False
            db.execute(
                "INSERT INTO gl_records (id, data, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET data = excluded.data, "
                "expires_at = excluded.expires_at",
                (cid, data, expires),
            )
            db.execute(
                "DELETE FROM gl_records WHERE expires_at IS NOT NULL AND expires_at <= ?",
                (now,),
            )
            return True

        if not await self._run("save", op):
            raise save_refused(cid, fence)

    async def acquire(self, conversation: str, owner: str, *, ttl: float | None = None) -> Lease:
        cid = check_id(conversation)
        owner = self._check_owner(owner)
        span = self._lease_ttl(ttl)
        now = self.clock()

        def op(db: sqlite3.Connection) -> tuple[int, float]:
            row = self._lease_row(db, cid)
            if row is not None and row[1] is not None and row[1] != owner and row[3] > now:
                return 0, row[3] - now
            seq = (row[0] if row is not None else 0) + 1
            db.execute(
                "INSERT INTO gl_leases (id, seq, owner, fence, expires_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, owner = excluded.owner, "
                "fence = excluded.fence, expires_at = excluded.expires_at",
                (cid, seq, owner, seq, now + span),
            )
            return seq, now + span

        fence, at = await self._run("acquire", op)
        if fence == 0:
            raise busy(cid, at)
        return Lease(cid, owner, fence, span, at)

    async def renew(self, lease: Lease) -> Lease:
        lease = self._check_lease(lease)
        at = self.clock() + lease.ttl

        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE gl_leases SET expires_at = ? "
                "WHERE id = ? AND owner IS NOT NULL AND fence = ?",
                (at, lease.conversation, lease.fence),
            )
            return cur.rowcount == 1

        if not await self._run("renew", op):
            raise taken_over(lease)
        return Lease(lease.conversation, lease.owner, lease.fence, lease.ttl, at)

    async def release(self, lease: Lease) -> None:
        lease = self._check_lease(lease)

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE gl_leases SET expires_at = 0 WHERE id = ? AND fence = ?",
                (lease.conversation, lease.fence),
            )

        await self._run("release", op)

    async def delete(self, conversation: str) -> None:
        cid = check_id(conversation)

        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM gl_records WHERE id = ?", (cid,))
            db.execute(
                "UPDATE gl_leases SET owner = NULL, fence = 0, expires_at = 0 WHERE id = ?",
                (cid,),
            )

        await self._run("delete", op)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await asyncio.to_thread(close)
