"""Encryption at rest: a store seals each encoded record before writing it.

A :class:`Cipher` turns the record's bytes into sealed bytes and back, with the
conversation id as associated data (a sealed record copied under another id does not
open). :class:`AesGcmCipher` is the one shipped: AES-256-GCM from ``cryptography``, a
random 96-bit nonce per seal, and the key id in the sealed header so records sealed
with an older key still open after a rotation. A key service (KMS) plugs in as any
object with the two methods.

Sealed layout (version 1)::

    b"GLS1" | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext+tag

The header (magic and key id) is authenticated too: it is part of the associated data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol, runtime_checkable

from gemini_live.errors import ConfigError, StoreSealError

__all__ = ["SEALED_MAGIC", "AesGcmCipher", "Cipher", "is_sealed"]

#: The first bytes of a sealed record (an encoded record never starts with them).
SEALED_MAGIC: Final = b"GLS1"

_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_NONCE = 12


@runtime_checkable
class Cipher(Protocol):
    """Seals and opens a store's record bytes (encryption at rest).

    ``associated`` is the conversation id (UTF-8): :meth:`open` must fail for bytes
    sealed with other associated data. Both methods are called on the event loop, once
    per save or load: keep them fast (a KMS cipher caches its data keys). :meth:`open`
    raises :class:`~gemini_live.errors.StoreSealError` for anything it cannot open.
    """

    def seal(self, data: bytes, *, associated: bytes) -> bytes: ...

    def open(self, data: bytes, *, associated: bytes) -> bytes: ...


def is_sealed(data: bytes) -> bool:
    """``data`` looks like a sealed record (it starts with :data:`SEALED_MAGIC`)."""
    return data[: len(SEALED_MAGIC)] == SEALED_MAGIC


class AesGcmCipher:
    """AES-256-GCM with key ids, for :class:`~gemini_live.store.ConversationStore`'s
    ``cipher=`` (needs ``cryptography``: the ``crypto`` extra).

    ``keys`` maps a key id (1-64 characters of letters, digits and ``._:-``) to a
    32-byte key; ``current`` names the key new records are sealed with. To rotate, add a
    new key, make it ``current``, and keep the old ones until every record sealed with
    them was saved again or expired. The keys never appear in a repr or an error.
    """

    __slots__ = ("_aead", "_current", "_header")

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigError(
                "AesGcmCipher needs the cryptography package: pip install 'gemini-live[crypto]'"
            ) from None
        if not isinstance(keys, Mapping) or not keys:
            raise ConfigError("keys must be a non-empty mapping of key id -> 32-byte key")
        aead: dict[str, Any] = {}
        for kid, key in keys.items():
            if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
                raise ConfigError("each key id must be 1-64 characters of letters, digits and ._:-")
            if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
                raise ConfigError(f"key {kid!r} must be 32 bytes (AES-256)")
            aead[kid] = AESGCM(bytes(key))
        if current not in aead:
            raise ConfigError("current must be one of the key ids in keys")
        self._aead = aead
        self._current = current
        self._header = SEALED_MAGIC + bytes([len(current)]) + current.encode("ascii")

    def __repr__(self) -> str:
        return f"AesGcmCipher(key_ids={sorted(self._aead)!r}, current={self._current!r})"

    @property
    def current(self) -> str:
        """The id of the key new records are sealed with."""
        return self._current

    def seal(self, data: bytes, *, associated: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        header = self._header
        body = self._aead[self._current].encrypt(nonce, bytes(data), header + associated)
        sealed: bytes = header + nonce + body
        return sealed

    def open(self, data: bytes, *, associated: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        data = bytes(data)
        if not is_sealed(data) or len(data) < len(SEALED_MAGIC) + 1:
            raise StoreSealError("the stored record is not sealed (it was written unencrypted)")
        size = data[len(SEALED_MAGIC)]
        start = len(SEALED_MAGIC) + 1
        header = data[: start + size]
        try:
            kid = data[start : start + size].decode("ascii")
        except UnicodeDecodeError:
            raise StoreSealError("the sealed record's header is damaged") from None
        if len(data) < start + size + _NONCE + 16 or not _KEY_ID.fullmatch(kid):
            raise StoreSealError("the sealed record's header is damaged")
        aead = self._aead.get(kid)
        if aead is None:
            raise StoreSealError(
                f"the record was sealed with key id {kid!r}, which this cipher does not have "
                "(add the old key to keys= to read it)"
            )
        nonce = data[start + size : start + size + _NONCE]
        try:
            opened: bytes = aead.decrypt(nonce, data[start + size + _NONCE :], header + associated)
        except InvalidTag:
            raise StoreSealError(
                f"the sealed record does not open with key id {kid!r}: a wrong key, a changed "
                "record, or a record moved from another conversation id"
            ) from None
        return opened
