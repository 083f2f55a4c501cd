"""Cassettes: record a Live session once (against Google or anything else), replay it forever.

A cassette is a JSONL file, one record per line, written as the session runs::

    {"t": 0.0, "wall": "...", "conn": 0, "dir": "meta", "event": "cassette", "version": 1, ...}
    {"t": 0.0012, "wall": "...", "conn": 1, "dir": "meta", "event": "connect", "url": "..."}
    {"t": 0.0031, "wall": "...", "conn": 1, "dir": "client", "kind": "setup", "bytes": 412,
     "frame": {...}}
    {"t": 0.0456, "wall": "...", "conn": 1, "dir": "server", "bytes": 2661, "frame": {...}}
    {"t": 1.2, "wall": "...", "conn": 1, "dir": "meta", "event": "close", "code": 1000,
     "reason": "", "by": "client"}

``t`` is seconds since recording started (monotonic), ``wall`` the UTC time. Both directions
are kept. Secrets never reach the file: request headers and query strings are not recorded,
and every line passes through :func:`gemini_live.errors.redact`. Audio and video payloads
are replaced by ``"<base64 redacted: N chars>"`` unless ``keep_audio=True``; a replay sends
silence of the same length in their place.

Write one with a :class:`Recorder` (a transport backend wrapping another) or a
:class:`RecordingProxy` (a local WebSocket server forwarding to the real service), or with
the CLI's ``--record FILE``. Play the server side back with
``FakeLiveServer.replay(cassette)``; :func:`gemini_live.testing.use_cassette` does either in
three lines of a test.
"""

from __future__ import annotations

from typing import Any

from gemini_live.errors import CassetteError
from gemini_live.testing._cassette_file import (
    CASSETTE_VERSION,
    CassetteWriter,
    client_kind,
    scrub_frame,
)
from gemini_live.testing._cassette_file import (
    MAX_BLOB_BYTES as MAX_BLOB_BYTES,
)
from gemini_live.testing._cassette_file import (
    MAX_LINE_CHARS as MAX_LINE_CHARS,
)
from gemini_live.testing._cassette_read import Cassette
from gemini_live.testing._cassette_record import Recorder, RecordingProxy
from gemini_live.testing._cassette_record import upstream_base as upstream_base

__all__ = [
    "CASSETTE_VERSION",
    "Cassette",
    "CassetteError",
    "CassetteWriter",
    "Recorder",
    "RecordingProxy",
    "client_kind",
    "scrub_frame",
]


def __getattr__(name: str) -> Any:
    # Deprecated path, kept for one release: use_cassette lives beside the server it
    # starts (gemini_live.testing._server), so this module need not import the server.
    if name == "use_cassette":
        import warnings

        from gemini_live.testing._server import use_cassette

        warnings.warn(
            "import use_cassette from gemini_live.testing, not gemini_live.testing.cassette",
            DeprecationWarning,
            stacklevel=2,
        )
        return use_cassette
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
