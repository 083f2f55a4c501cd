"""Proving that a phone stream comes from the carrier: pure functions, no I/O.

What each carrier signs (as of late 2026):

* **Twilio** signs every request it makes to your app, the Media Streams WebSocket
  upgrade included, with ``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed with the
  account's auth token, over the full URL Twilio requested (scheme, host, path, query)
  followed, for form posts only, by every POST parameter as ``name + value`` sorted by
  name. An upgrade is a GET, so it is the URL alone.
* **Telnyx** signs its webhooks (call control events) with Ed25519: the headers
  ``telnyx-signature-ed25519`` (base64 of the 64-byte signature) and ``telnyx-timestamp``
  (Unix seconds) over ``timestamp + "|" + raw body``, checked with the account's public
  key. Its media-stream WebSocket upgrade carries no signature, so the app's webhook
  hands Telnyx a stream URL holding a per-call token (:class:`StreamTokens`) that the
  bridge checks on upgrade.

Every comparison of a secret-derived value runs in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Final

from gemini_live.errors import ConfigError, register_secret

__all__ = [
    "STREAM_TOKEN_PARAM",
    "StreamTokens",
    "request_url",
    "twilio_signature",
    "twilio_signature_valid",
    "verify_telnyx_webhook",
]

#: The query parameter of a Telnyx stream URL that carries the per-call token.
STREAM_TOKEN_PARAM: Final = "stream_token"

_DEFAULT_PORTS: Final = {"https": 443, "wss": 443, "http": 80, "ws": 80}


# -- Twilio ----------------------------------------------------------------------------


def twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str | Sequence[str]] | None = None
) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for ``url`` (and form ``params``, if any).

    ``params`` are the POST form fields of a webhook; leave them out for a GET (a
    WebSocket upgrade). A field with several values contributes each, sorted.
    """
    data = url
    for name in sorted(params or {}):
        value = (params or {})[name]
        values = [value] if isinstance(value, str) else sorted(value)
        for v in values:
            data += name + v
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """``url`` as given, and with its default port written out or left out.

    Twilio has signed both spellings over time (``wss://h/x`` and ``wss://h:443/x``), so a
    check accepts either.
    """
    out = [url]
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return out
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    host = parts.hostname
    if default is None or host is None:
        return out
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None:
        out.append(urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{default}")))
    elif port == default:
        out.append(urllib.parse.urlunsplit(parts._replace(netloc=host)))
    return out


def twilio_signature_valid(
    auth_token: str,
    url: str,
    signature: str | None,
    params: Mapping[str, str | Sequence[str]] | None = None,
) -> bool:
    """Whether ``signature`` is Twilio's signature of ``url`` (and ``params``).

    Compared in constant time; ``url`` is also tried with its default port written out
    or left out. A missing or empty signature is never valid.
    """
    if not signature:
        return False
    given = signature.strip().encode("ascii", "replace")
    ok = False
    for candidate in _port_variants(url):
        expected = twilio_signature(auth_token, candidate, params).encode("ascii")
        ok |= hmac.compare_digest(expected, given)
    return ok


def request_url(
    scheme: str,
    host: str | None,
    path: str,
    query: str = "",
    *,
    public_url: str | None = None,
) -> str:
    """The URL a carrier requested, to check a signature over.

    Behind a proxy or TLS terminator the request's own scheme and ``Host`` are not what
    the carrier used: give ``public_url`` (the URL in the TwiML ``<Stream url>``, e.g.
    ``wss://voice.example.com/twilio``). The request's query string is appended when
    ``public_url`` has none. Without ``public_url`` the URL is rebuilt from the request:
    ``scheme://host/path?query``.
    """
    if public_url is not None:
        if query and "?" not in public_url:
            return f"{public_url}?{query}"
        return public_url
    if not host:
        raise ConfigError("the request has no Host header: set public_url")
    url = f"{scheme}://{host}{path}"
    return f"{url}?{query}" if query else url


def check_public_url(public_url: str) -> str:
    """``public_url`` if it is an absolute ``ws``/``wss``/``http``/``https`` URL."""
    try:
        parts = urllib.parse.urlsplit(public_url)
    except ValueError as exc:
        raise ConfigError(f"public_url does not parse: {exc}") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise ConfigError(
            f"public_url must be an absolute ws://, wss://, http:// or https:// URL,"
            f" got {public_url!r}"
        )
    return public_url


# -- Telnyx --------------------------------------------------------------------------------


def verify_telnyx_webhook(
    public_key: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether a Telnyx webhook (call control event) really comes from Telnyx.

    ``public_key`` is the account's base64 Ed25519 public key (Mission Control, "Keys &
    Credentials"); ``headers`` the request headers (names in any case); ``body`` the raw
    request body, exactly as received. A timestamp more than ``tolerance`` seconds away
    from ``now`` is refused (a replay). Needs the ``cryptography`` package.
    """
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "verify_telnyx_webhook needs the cryptography package: pip install cryptography"
        ) from exc
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get("telnyx-signature-ed25519", "")
    stamp = lowered.get("telnyx-timestamp", "")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
    except (binascii.Error, ValueError):
        raise ConfigError("public_key must be the base64 of a 32-byte Ed25519 key") from None
    try:
        sent_at = int(stamp)
        raw_signature = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        return False
    try:
        key.verify(raw_signature, stamp.encode() + b"|" + body)
    except InvalidSignature:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamTokens:
    """Per-call tokens for stream URLs: signed, expiring, bound to one call, used once.

    For carriers whose media-stream upgrade carries no signature (Telnyx). The app's
    call-control webhook (which it verifies, see :func:`verify_telnyx_webhook`) asks for
    a stream URL for the call; the bridge checks the token when the WebSocket arrives,
    and once the stream's ``start`` names the call, that it is the call the token was
    issued for::

        tokens = StreamTokens(os.environ["STREAM_SECRET"])
        url = tokens.stream_url("wss://voice.example.com/telnyx", call_control_id)
        # ... pass url as stream_url in the Telnyx "answer"/"streaming_start" command
        bridge = TelnyxBridge(config, stream_tokens=tokens)

    A token is ``call id . expiry . HMAC-SHA256`` (URL-safe base64), checked in constant
    time, valid for ``ttl`` seconds and accepted once (the bridge remembers used tokens
    until they expire, at most ``max_used`` of them).

    Args:
        secret: At least 32 characters (or bytes) of randomness, e.g.
            ``secrets.token_urlsafe(32)``; share it between the webhook and the bridge.
        ttl: Seconds between issuing a URL and the carrier opening it.
        max_used: Tokens remembered as used (oldest forgotten first).
    """

    def __init__(self, secret: str | bytes, *, ttl: float = 120.0, max_used: int = 10_000) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < 32:
            raise ConfigError("the stream token secret must be at least 32 bytes of randomness")
        if ttl <= 0:
            raise ConfigError("ttl must be positive")
        if max_used < 1:
            raise ConfigError("max_used must be at least 1")
        if isinstance(secret, str):
            register_secret(secret)
        self._key = key
        self.ttl = ttl
        self.max_used = max_used
        # token MAC -> expiry, oldest first.
        self._used: OrderedDict[bytes, float] = OrderedDict()

    def __repr__(self) -> str:
        return f"StreamTokens(secret='***', ttl={self.ttl})"

    def _mac(self, body: str) -> bytes:
        msg = b"gemini-live stream token v1\n" + body.encode()
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def issue(self, call_id: str, *, now: float | None = None) -> str:
        """A token for the stream of call ``call_id`` (Telnyx: its ``call_control_id``)."""
        if not call_id:
            raise ConfigError("call_id is empty")
        expires = int((time.time() if now is None else now) + self.ttl)
        # A random nonce keeps two tokens for the same call and second apart.
        body = f"{_b64(call_id.encode())}.{expires}.{_b64(secrets.token_bytes(9))}"
        return f"{body}.{_b64(self._mac(body))}"

    def stream_url(self, base_url: str, call_id: str, *, now: float | None = None) -> str:
        """``base_url`` with a fresh token for ``call_id`` in its query string."""
        token = self.issue(call_id, now=now)
        sep = "&" if "?" in base_url else "?"
        return f"{base_url}{sep}{STREAM_TOKEN_PARAM}={token}"

    def call_id(self, token: str) -> str | None:
        """The call a genuine token was issued for (expiry and use not checked)."""
        parsed = self._parse(token)
        return None if parsed is None else parsed[0]

    def _parse(self, token: str) -> tuple[str, int, bytes] | None:
        if len(token) > 1024:
            return None
        body, _, mac = token.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3:
            return None
        try:
            given = _unb64(mac)
        except (ValueError, binascii.Error):
            return None
        if not hmac.compare_digest(self._mac(body), given):
            return None
        try:
            call_id = _unb64(parts[0]).decode()
            expires = int(parts[1])
        except (ValueError, binascii.Error):
            return None
        return call_id, expires, given

    def verify(self, token: str | None, *, now: float | None = None) -> str | None:
        """Check ``token`` and use it up: the call id it was issued for, or ``None``
        (forged, expired or already used)."""
        if not token:
            return None
        parsed = self._parse(token)
        if parsed is None:
            return None
        call_id, expires, mac = parsed
        current = time.time() if now is None else now
        if expires < current:
            return None
        used = self._used
        while used and next(iter(used.values())) < current:
            used.popitem(last=False)
        if mac in used:
            return None
        used[mac] = expires
        while len(used) > self.max_used:
            used.popitem(last=False)
        return call_id
