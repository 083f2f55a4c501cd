"""Every exception gemini-live raises, under one root.

Tree::

    GeminiLiveError
    ├── ConfigError                 local: a setting or argument is wrong (nothing was sent)
    │   ├── AudioFormatError        local: PCM/rate/dtype the Live API cannot take
    │   ├── CassetteError           local: a cassette file that cannot be read (test kit)
    │   │   └── CassetteDivergence  the app departed from a replayed cassette (also a
    │   │                           ServiceError: the replay closes 1007 with the sentence)
    │   └── ScriptError             local: a fake-server script that cannot be understood
    ├── SessionClosedError          local: the session is closed (or closing)
    ├── ProtocolStateError          local: this message is not allowed in the current state
    ├── QueueFullError              local: the offline send buffer is full (nothing dropped)
    ├── ConcurrencyError            local: a second task iterates a stream already iterated
    ├── MalformedMessage            remote: a server frame is not valid Live API JSON
    └── TransportError              network / service failures (``ConnectionError_`` is a
        │                           deprecated alias)
        ├── ConnectError            the WebSocket could not be opened
        ├── TransportClosed         a write found the connection closed: retryable
        ├── SetupTimeout            no setupComplete in time
        └── ServiceError            the service closed the socket (code + reason + phase)
            ├── InvalidConfig       1007 during setup, bad argument: fatal for this config
            ├── AuthError           key/token rejected or location unsupported: fatal
            ├── ModelNotFound       1008 "... not found ...": fatal
            ├── SessionNotFound     stale resumption handle: start a fresh session
            ├── PolicyViolation     other 1008 closes: fatal
            ├── ContextExhausted    context too large: resuming the same context fails again
            ├── QuotaExceeded       RESOURCE_EXHAUSTED / overloaded: retry with backoff
            ├── ServerError         1011 internal / unavailable / deadline, 1006: retryable
            └── ConnectionDropped   abnormal or normal close mid-stream (1000 after goAway, 1001,
                                    1006): retryable

Every :class:`ServiceError` carries ``code``, ``reason``, ``phase`` (``"connect"``, ``"setup"``
or ``"stream"``), ``session_id`` (when the service told us one) and ``retryable``.
Secrets never appear in messages: :func:`redact` scrubs anything that looks like an API key
or token before it is put in a message. Messages are bounded: at most
``GeminiLiveError.max_message_chars`` characters (300 for :class:`MalformedMessage`) are
kept, redacted and shown, whatever the size of the value that caused the error.

Not in this tree, on purpose: :class:`gemini_live.tools.ToolError`. The library never raises
it to you; your tool raises it to tell the *model* what went wrong.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections import OrderedDict
from typing import Final, Literal, Protocol

__all__ = [
    "AudioFormatError",
    "AuthError",
    "CassetteDivergence",
    "CassetteError",
    "ConcurrencyError",
    "ConfigError",
    "ConnectError",
    "ConnectionDropped",
    "ContextExhausted",
    "ConversationBusy",
    "ConversationError",
    "GeminiLiveError",
    "InvalidConfig",
    "InvalidMessageError",
    "MalformedMessage",
    "MessageTooLargeError",
    "ModelNotFound",
    "Phase",
    "PolicyViolation",
    "ProtocolStateError",
    "QueueFullError",
    "QuotaExceeded",
    "ScriptError",
    "ServerError",
    "ServiceError",
    "SessionClosedError",
    "SessionNotFound",
    "SetupTimeout",
    "StaleFenceError",
    "StoreError",
    "StoreFormatError",
    "StoreSealError",
    "TransportClosed",
    "TransportError",
    "UnknownToolCallError",
    "classify_close",
    "excerpt",
    "forget_secret",
    "redact",
    "register_secret",
    "secret_registry",
]

#: Where a connection failed: opening it, during the setup exchange, or once streaming.
Phase = Literal["connect", "setup", "stream"]

# Google API keys start with "AIza"; ephemeral tokens are "auth_tokens/..."; OAuth access
# tokens start with "ya29.". Query parameters key= / access_token= are scrubbed whatever
# their value looks like.
_SECRET_PATTERNS: Final = (
    re.compile(r"AIza[0-9A-Za-z_\-]{10,}"),
    re.compile(r"auth_tokens/[0-9A-Za-z_\-.]+"),
    re.compile(r"ya29\.[0-9A-Za-z_\-.]+"),
    re.compile(r"(?i)((?:key|access_token|token)=)[^&\s\"']+"),
    # Authorization header values: "Bearer <tok>", "Token <tok>" (token-shaped words only,
    # so prose like "token count" stays readable).
    re.compile(r"(?i)(authorization\s*[:=]\s*(?:bearer|token)?\s*)[^\s,;\"']+"),
    re.compile(r"((?:Bearer|Token)\s+)[A-Za-z0-9._~+/=-]{12,}"),
)
#: The patterns that find a secret wherever it stands (no context needed): a registered
#: secret they already cover entirely is not stored (minted tokens are, by the thousand).
_SELF_EVIDENT: Final = _SECRET_PATTERNS[:3]


class SecretRegistry:
    """The credentials :func:`redact` removes, bounded so that registering never grows
    memory or slows :func:`redact` without limit.

    Two tiers, both bounded:

    * ``permanent`` (at most ``max_permanent``): long-lived credentials such as API keys
      and credential headers of a session config. When full, the oldest permanent secret
      moves to the recent tier (it is not forgotten at once).
    * recent (at most ``max_recent``, least recently registered first out): everything
      else, such as short-lived tokens. Registering a secret again makes it recent again.

    A secret that the built-in patterns already find wherever it appears (``AIza...``
    keys, ``auth_tokens/...`` ephemeral tokens, ``ya29.`` OAuth tokens) is not stored at
    all: it is redacted anyway. :attr:`evicted` counts secrets pushed out by the bounds.
    :func:`redact` walks a cached tuple of the kept secrets, longest first (so a secret
    that contains another is removed whole), rebuilt only when the set changes.
    Changes take a lock: tokens may be registered from worker threads.
    """

    #: Shorter secrets are ignored: they would mangle ordinary text.
    min_length: Final = 4

    def __init__(self, *, max_recent: int = 256, max_permanent: int = 64) -> None:
        if max_recent < 1 or max_permanent < 0:
            raise ConfigError("max_recent must be >= 1 and max_permanent >= 0")
        self.max_recent = max_recent
        self.max_permanent = max_permanent
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._permanent: OrderedDict[str, None] = OrderedDict()
        self._sorted: tuple[str, ...] | None = ()
        self._lock = threading.Lock()
        #: Secrets pushed out of the registry by its bounds since it was created.
        self.evicted = 0
        #: Registrations not stored because the built-in patterns cover them.
        self.covered = 0

    def __len__(self) -> int:
        return len(self._recent) + len(self._permanent)

    def __contains__(self, secret: object) -> bool:
        return secret in self._permanent or secret in self._recent

    def __repr__(self) -> str:
        # Never the secrets themselves.
        return (
            f"SecretRegistry(permanent={len(self._permanent)}/{self.max_permanent}, "
            f"recent={len(self._recent)}/{self.max_recent}, evicted={self.evicted})"
        )

    def register(self, secret: str, *, permanent: bool = False) -> None:
        """Remember ``secret`` (see the class docstring for the tiers)."""
        if not isinstance(secret, str) or len(secret) < self.min_length:
            return
        with self._lock:
            self._register(secret, permanent)

    def _register(self, secret: str, permanent: bool) -> None:
        if secret in self._permanent:
            self._permanent.move_to_end(secret)
            return
        if _covered(secret):
            self.covered += 1
            return
        if permanent and self.max_permanent:
            self._recent.pop(secret, None)
            self._permanent[secret] = None
            self._sorted = None
            while len(self._permanent) > self.max_permanent:
                old, _ = self._permanent.popitem(last=False)
                self._add_recent(old)
            return
        if secret in self._recent:
            self._recent.move_to_end(secret)
            return
        self._add_recent(secret)

    def _add_recent(self, secret: str) -> None:
        self._recent[secret] = None
        self._sorted = None
        while len(self._recent) > self.max_recent:
            self._recent.popitem(last=False)
            self.evicted += 1

    def forget(self, secret: str) -> None:
        """Stop redacting ``secret`` (e.g. a token that has expired)."""
        with self._lock:
            if secret in self._permanent:
                del self._permanent[secret]
                self._sorted = None
            elif secret in self._recent:
                del self._recent[secret]
                self._sorted = None

    def clear(self) -> None:
        """Forget every registered secret."""
        with self._lock:
            self._recent.clear()
            self._permanent.clear()
            self._sorted = ()

    def secrets(self) -> tuple[str, ...]:
        """The kept secrets, longest first (the order :func:`redact` replaces them in)."""
        kept = self._sorted
        if kept is None:
            with self._lock:
                kept = self._sorted = tuple(
                    sorted((*self._permanent, *self._recent), key=len, reverse=True)
                )
        return kept

    def scrub(self, text: str) -> str:
        """``text`` with every kept secret replaced by ``***``."""
        for secret in self.secrets():
            if secret in text:
                text = text.replace(secret, "***")
        return text


def _covered(secret: str) -> bool:
    """True when the context-free patterns alone turn ``secret`` into ``***``."""
    return any(pattern.fullmatch(secret) for pattern in _SELF_EVIDENT)


#: The process-wide registry :func:`register_secret` feeds and :func:`redact` reads.
secret_registry: Final = SecretRegistry()


def register_secret(secret: str, *, permanent: bool = False) -> None:
    """Remember a credential so :func:`redact` removes it wherever it appears.

    Called by :mod:`gemini_live.auth` for every key or token it is given and by
    :class:`gemini_live.config.TransportConfig` for credential headers, so even a
    credential with an unusual shape is never echoed back. ``permanent=True`` is for
    long-lived credentials (API keys); others are kept while they are among the most
    recently registered (see :class:`SecretRegistry`; the registry is bounded).
    """
    secret_registry.register(secret, permanent=permanent)


def forget_secret(secret: str) -> None:
    """Stop redacting a registered ``secret`` (a token past its expiry)."""
    secret_registry.forget(secret)


def redact(text: str) -> str:
    """Return ``text`` with API keys, tokens and registered secrets replaced by ``***``."""
    text = secret_registry.scrub(text)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + "***", text)
        else:
            text = pattern.sub("***", text)
    return text


#: A cut message gets this suffix; the total length is given so nothing is hidden silently.
_CUT_SUFFIX: Final = " \u2026 [cut; {n} characters in all]"
#: What may precede a cut: a partial word at the cut could be a partial secret.
_PARTIAL_WORD: Final = re.compile(r"[A-Za-z0-9_\-.~+/=]+$")


def _bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, then redacted (only the kept part is scanned).

    A word cut in two is dropped, so the visible prefix of a long token can never survive
    the cut; ``redact`` then sees a short string however large the original was.
    """
    if len(text) <= limit:
        return redact(text)
    # Redact a window a little larger than the limit (a secret that straddles the limit is
    # still recognised whole), then cut again.
    window = _PARTIAL_WORD.sub("", text[: limit + 128])
    kept = _PARTIAL_WORD.sub("", redact(window)[:limit])
    return kept + _CUT_SUFFIX.format(n=len(text))


def excerpt(value: object, limit: int = 100) -> str:
    """A short ``repr`` of ``value`` for an error message, never longer than about ``limit``.

    Strings and bytes are sliced *before* ``repr``, so a 16 MiB value is never copied.
    """
    if isinstance(value, str | bytes | bytearray | memoryview):
        size = len(value)
        head = bytes(value[:limit]) if isinstance(value, memoryview) else value[:limit]
        text = repr(head)
        return text if size <= limit else f"{text}\u2026 ({size} in all)"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "\u2026"


class GeminiLiveError(Exception):
    """Root of every exception raised by gemini-live."""

    retryable: bool = False
    #: Messages are cut to this many characters before they are redacted and stored.
    max_message_chars: int = 1000

    def __init__(self, message: str = "") -> None:
        super().__init__(_bounded(message, self.max_message_chars))


class ConfigError(GeminiLiveError, ValueError):
    """A setting or argument is invalid; raised before anything is sent."""


class AudioFormatError(ConfigError):
    """Audio the Live API cannot take: odd byte count, wrong dtype, rate outside 8–48 kHz."""


class CassetteError(ConfigError):
    """A cassette file (:mod:`gemini_live.testing.cassette`) that cannot be read.

    The message is one line: the file, the line number and what is wrong, never a dump of
    the line itself beyond a short excerpt.
    """


class ScriptError(ConfigError):
    """A fake-server script (:mod:`gemini_live.testing.script`, Python or JSON) that cannot
    be understood. The message is one line naming the file or rule and what is wrong."""


class SessionClosedError(GeminiLiveError, RuntimeError):
    """The session is closed or closing; nothing was sent."""


class ProtocolStateError(GeminiLiveError, RuntimeError):
    """The message is not allowed in the protocol's current state; nothing was sent."""


class QueueFullError(GeminiLiveError):
    """The send buffer used while disconnected is full; the message was not queued."""


class InvalidMessageError(ConfigError, TypeError):
    """A message or argument has a value of the wrong type; nothing was sent."""


class MessageTooLargeError(ConfigError):
    """A message is above the service's size limit; nothing was sent."""


class UnknownToolCallError(ConfigError):
    """A tool response names a call id that is not pending (unknown or already answered)."""


class ConcurrencyError(GeminiLiveError, RuntimeError):
    """Raised when a second task iterates a stream that another task is already iterating.

    One stream has one reader; give each consumer its own ``session.events()`` iterator.
    """


class StoreError(GeminiLiveError):
    """A conversation store (:mod:`gemini_live.store`) failed: it cannot be reached, or
    it answered something unexpected. The message names the store and the operation,
    never a credential of its URL."""


class StoreFormatError(StoreError):
    """A stored conversation record cannot be read by this release: written by another
    record version (the message says which versions), or damaged."""


class StoreSealError(StoreFormatError):
    """A sealed (encrypted) record cannot be opened: a key the store's cipher lacks, the
    wrong key, a record that was changed or moved to another conversation id, or a
    record sealed where none was expected (or the other way round). Nothing of the
    record is returned, and the message never holds a key."""


class ConversationError(StoreError):
    """A stored conversation cannot be driven by this session (see the subclasses)."""


class ConversationBusy(ConversationError):
    """Another owner holds the conversation's lease and renews it. ``expires_in`` says
    when its current lease runs out (seconds) if it is not renewed."""

    def __init__(self, message: str, *, expires_in: float = 0.0) -> None:
        super().__init__(message)
        self.expires_in = expires_in


class StaleFenceError(ConversationError):
    """This owner lost the conversation: another owner took the lease over (its fencing
    token is newer), or the conversation was deleted. The save or renew was refused and
    nothing was written."""


class MalformedMessage(GeminiLiveError):
    """A frame from the server is not valid Live API JSON.

    The message names what was wrong with a bounded excerpt of the bad value (at most
    ``max_message_chars`` characters in all); :attr:`frame` keeps the first 200 bytes.
    """

    max_message_chars = 300

    def __init__(self, message: str, *, frame: bytes | None = None) -> None:
        super().__init__(message)
        #: The first bytes of the offending frame, for diagnostics.
        self.frame = frame[:200] if frame is not None else None


class TransportError(GeminiLiveError):
    """Base for network and service failures (formerly ``ConnectionError_``)."""


class _CloseDetails(Protocol):
    """How a connection ended, as :class:`gemini_live.transport.CloseInfo` records it."""

    @property
    def code(self) -> int:
        """The WebSocket close code (1006 when no close frame was received)."""

    @property
    def reason(self) -> str:
        """The close reason text."""

    @property
    def local(self) -> bool:
        """True when this side decided to close."""


class TransportClosed(TransportError):
    """Raised by a transport's ``send`` when the connection is already closed.

    Retryable: a write that finds the socket closed is a connection loss like any other,
    so the session reconnects (and re-sends what was not acknowledged) instead of ending.
    ``info`` says how the connection ended, when the transport knows.
    """

    retryable = True

    def __init__(self, info: _CloseDetails | None) -> None:
        self.info = info
        if info is None:
            super().__init__("transport is closed")
        else:
            super().__init__(f"transport is closed (code {info.code}: {info.reason})")


class ConnectError(TransportError):
    """The WebSocket could not be opened (DNS, TCP, TLS, HTTP upgrade refused)."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        #: The HTTP status of a refused upgrade, when there was one.
        self.status = status
        if status is not None and status in (400, 401, 403, 404):
            self.retryable = False


class SetupTimeout(TransportError):
    """The service did not answer the setup with ``setupComplete`` in time."""

    retryable = True


class ServiceError(TransportError):
    """The service (or the network) closed the connection.

    Attributes are the WebSocket close ``code`` and ``reason``, the ``phase`` it happened
    in, the ``session_id`` from ``setupComplete`` when known, and whether it is
    ``retryable``.
    """

    retryable = False

    def __init__(
        self,
        code: int,
        reason: str,
        *,
        phase: Phase = "stream",
        session_id: str | None = None,
        local: bool = False,
    ) -> None:
        self.code = code
        self.reason = redact(reason)
        self.phase: Phase = phase
        self.session_id = session_id
        #: True when this side (not the service) produced the close, e.g. a keepalive timeout.
        self.local = local
        where = "locally " if local else ""
        text = f"connection closed {where}during {phase} with code {code}"
        if reason:
            text += f": {self.reason}"
        if session_id:
            text += f" (session {session_id})"
        super().__init__(text)


#: Start of the close reason a cassette replay sends when the app departed from the
#: recording (the rest is the divergence sentence).
CASSETTE_DIVERGED: Final = "cassette replay diverged"


class CassetteDivergence(ServiceError, CassetteError):
    """A replayed cassette and the app parted ways: the app sent something other than the
    recording holds (``client message 2 is realtimeInput.audioStreamEnd, the cassette
    expected realtimeInput.text``), or with ``match="strict"`` the same kind with a
    different payload. The message carries that sentence. The session sees it as the
    close error (the fake server closes 1007 with the sentence as reason), and
    ``use_cassette`` raises it with the whole report (file, connection, diff). Not
    retryable: a replay does not change its mind.
    """

    def __init__(
        self,
        code: int = 1007,
        reason: str = "",
        *,
        phase: Phase = "stream",
        session_id: str | None = None,
        local: bool = False,
    ) -> None:
        super().__init__(code, reason, phase=phase, session_id=session_id, local=local)
        detail = self.reason.removeprefix(CASSETTE_DIVERGED).lstrip(": ")
        GeminiLiveError.__init__(self, f"{CASSETTE_DIVERGED}: {detail or 'no details'}")


class InvalidConfig(ServiceError):
    """The service rejected the setup or a message as an invalid argument (1007)."""


class AuthError(ServiceError):
    """The key or token was rejected, expired, or the location is not supported."""


class ModelNotFound(ServiceError):
    """The model does not exist for this API version or does not support the Live API."""


class SessionNotFound(ServiceError):
    """The resumption handle is unknown or expired; a fresh session is needed."""


class PolicyViolation(ServiceError):
    """A 1008 close that is not "not found": the operation is not allowed."""


class ContextExhausted(ServiceError):
    """The conversation context is too large; resuming the same context fails again."""


class QuotaExceeded(ServiceError):
    """Quota, rate or concurrency limit reached; retry with backoff."""

    retryable = True


class ServerError(ServiceError):
    """A transient fault on the service side (1011 internal, unavailable, deadline)."""

    retryable = True


class ConnectionDropped(ServiceError):
    """The connection ended without an error report (1000/1001 after goAway, 1006)."""

    retryable = True


def _has(reason: str, *needles: str) -> bool:
    return any(n in reason for n in needles)


def classify_close(
    code: int,
    reason: str,
    *,
    phase: Phase = "stream",
    session_id: str | None = None,
    local: bool = False,
) -> ServiceError:
    """Map a close ``code`` + ``reason`` seen in ``phase`` to the most specific error.

    The rules follow the close-code table in ``docs/protocol.md`` (§ close codes): the
    reason text decides first, because the service reuses 1007/1008/1011 for very
    different failures; the code decides otherwise.
    """
    low = reason.lower()
    cls: type[ServiceError]
    if low.startswith(CASSETTE_DIVERGED):
        cls = CassetteDivergence
    elif _has(low, "resource_exhausted", "quota", "overloaded", "rate limit", "too many"):
        cls = QuotaExceeded
    elif _has(
        low,
        "api key",
        "auth token",
        "unregistered callers",
        "permission",
        "unauthenticated",
        "credential",
        "location is not supported",
        "api_key",
    ):
        cls = AuthError
    elif _has(low, "session not found"):
        cls = SessionNotFound
    elif _has(
        low, "context", "too long", "token limit", "token count", "number of tokens"
    ) and _has(low, "exhaust", "exceed", "too long", "limit"):
        cls = ContextExhausted
    elif _has(low, "operation was aborted") or (local and _has(low, "keepalive", "idle")):
        # Mid-conversation aborts and our own liveness timeouts: the connection is gone,
        # the session may well be fine.
        cls = ConnectionDropped
    elif code == 1007:
        cls = InvalidConfig
    elif code == 1008:
        cls = ModelNotFound if _has(low, "not found", "is not supported for") else PolicyViolation
        if cls is ModelNotFound and not _has(low, "model"):
            # "Requested entity was not found." also follows stale handles / tool ids.
            cls = SessionNotFound if phase == "setup" else PolicyViolation
    elif code == 1011 or code == 1013 or code == 1014:
        cls = ServerError
    elif code in (1000, 1001, 1006, 1012):
        cls = ConnectionDropped
    elif code == 1002 or code == 1003 or code == 1009:
        cls = PolicyViolation
    else:
        cls = ServerError if code >= 4000 else ConnectionDropped
    return cls(code, reason, phase=phase, session_id=session_id, local=local)


def __getattr__(name: str) -> object:
    # ``ConnectionError_`` was the name of ``TransportError`` in 0.1; kept as an alias.
    if name == "ConnectionError_":
        warnings.warn(
            "gemini_live.errors.ConnectionError_ is deprecated; use TransportError",
            DeprecationWarning,
            stacklevel=2,
        )
        return TransportError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
