"""A conversation store in Redis: many processes on many machines."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gemini_live.errors import ConfigError, StoreError
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

__all__ = ["RedisStore"]

_T = TypeVar("_T")

# Every lease change is one script, run atomically by the server on its own clock
# (TIME), so of two racing owners exactly one wins and client clocks do not matter.
# The lease hash keeps ``seq`` (the latest token) after a release or delete: tokens never
# repeat. KEYS[1] is the lease hash, KEYS[2] the record; both carry the same hash tag.

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'owner', 'exp')
if cur[1] and cur[1] ~= ARGV[1] and tonumber(cur[2]) > now then
  return {0, tonumber(cur[2]) - now}
end
local fence = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'fence', fence, 'exp', now + tonumber(ARGV[2]))
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {fence, tonumber(ARGV[2])}
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'owner', 'fence')
if not cur[1] or tonumber(cur[2]) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'exp', now + tonumber(ARGV[2]))
return 1
"""

_RELEASE = """
local f = redis.call('HGET', KEYS[1], 'fence')
if f and tonumber(f) == tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'exp', 0) end
return 1
"""

_SAVE = """
local cur = redis.call('HMGET', KEYS[1], 'owner', 'fence')
if not cur[1] or tonumber(cur[2]) ~= tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('PERSIST', KEYS[1])
end
return 1
"""

_DELETE = """
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], 'owner', 'fence', 'exp')
return 1
"""


class RedisStore(ConversationStore):
    """Conversations in Redis (the ``redis`` extra: redis-py's asyncio client; a server
    with Lua scripting, Redis 5 or later).

    ``url`` is a redis-py URL (``redis://[:password@]host:port/db``, ``rediss://`` for
    TLS); its password never appears in a repr, log line or error. Keys are
    ``{prefix}{<conversation>}:rec`` (the record, msgpack) and ``...:lease`` (a hash:
    owner, fencing token, expiry on the server's clock); the braces make them one hash
    slot, so a cluster works. Records and lease hashes expire ``record_ttl`` after the
    last save (the server does it). Lease changes and saves are Lua scripts: atomic.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "gemini-live:",
        lease_ttl: float = DEFAULT_LEASE_TTL,
        record_ttl: float | None = DEFAULT_RECORD_TTL,
        client: Any = None,
        cipher: Cipher | None = None,
    ) -> None:
        super().__init__(lease_ttl=lease_ttl, record_ttl=record_ttl, cipher=cipher)
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("url must be a redis://, rediss:// or unix:// URL")
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ConfigError("prefix must be a string without braces")
        parts = urlsplit(url)
        self._where = f"redis store {parts.scheme}://{parts.hostname or ''}" + (
            f":{parts.port}" if parts.port else ""
        )
        self._prefix = prefix
        if client is None:
            try:
                import redis.asyncio as aioredis
            except ImportError:  # pragma: no cover - depends on the install
                raise ConfigError(
                    "RedisStore needs the redis package: pip install 'gemini-live[redis]'"
                ) from None
            client = aioredis.Redis.from_url(url)
        self._client = client
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<RedisStore {self._where!r}>"

    def _keys(self, cid: str) -> list[str]:
        base = f"{self._prefix}{{{cid}}}"
        return [f"{base}:lease", f"{base}:rec"]

    def _ms(self, seconds: float | None) -> int:
        return 0 if seconds is None else max(1, int(seconds * 1000))

    async def _call(self, what: str, op: Callable[[], Awaitable[_T]]) -> _T:
        try:
            from redis.exceptions import RedisError
        except ImportError:  # pragma: no cover
            raise
        try:
            return await op()
        except RedisError as exc:
            raise StoreError(
                f"{self._where}: {what} failed ({type(exc).__name__}: {exc})"
            ) from None
        except OSError as exc:
            raise StoreError(f"{self._where}: {what} failed ({type(exc).__name__})") from None

    async def _script(self, name: str, source: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._client.register_script(source)
        return await self._call(name, lambda: script(keys=keys, args=args))

    # -- the interface ------------------------------------------------------------------

    async def load(self, conversation: str) -> ConversationRecord | None:
        cid = check_id(conversation)
        key = self._keys(cid)[1]
        data = await self._call("load", lambda: self._client.get(key))
        if data is None:
            return None
        return self._unpack(bytes(data), cid, f"{self._where} {cid!r}")

    async def save(self, record: ConversationRecord, *, fence: int) -> None:
        record = self._check_record(record)
        cid = record.conversation
        ok = await self._script(
            "save",
            _SAVE,
            self._keys(cid),
            [int(fence), self._pack(record), self._ms(self.record_ttl)],
        )
        if int(ok) != 1:
            raise save_refused(cid, fence)

    async def acquire(self, conversation: str, owner: str, *, ttl: float | None = None) -> Lease:
        cid = check_id(conversation)
        owner = self._check_owner(owner)
        span = self._lease_ttl(ttl)
        fence, value = await self._script(
            "acquire",
            _ACQUIRE,
            self._keys(cid),
            [owner, self._ms(span), self._ms(self.record_ttl)],
        )
        if int(fence) == 0:
            left = int(value) / 1000
            raise busy(cid, left)
        return Lease(cid, owner, int(fence), span, time.time() + span)

    async def renew(self, lease: Lease) -> Lease:
        lease = self._check_lease(lease)
        ok = await self._script(
            "renew",
            _RENEW,
            self._keys(lease.conversation),
            [lease.fence, self._ms(lease.ttl)],
        )
        if int(ok) != 1:
            raise taken_over(lease)
        return Lease(
            lease.conversation, lease.owner, lease.fence, lease.ttl, time.time() + lease.ttl
        )

    async def release(self, lease: Lease) -> None:
        lease = self._check_lease(lease)
        await self._script("release", _RELEASE, self._keys(lease.conversation), [lease.fence])

    async def delete(self, conversation: str) -> None:
        cid = check_id(conversation)
        await self._script("delete", _DELETE, self._keys(cid), [])

    async def aclose(self) -> None:
        close = getattr(self._client, "aclose", None) or self._client.close
        await self._call("close", close)
