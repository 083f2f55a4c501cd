"""``--record FILE.jsonl``: write a cassette of every frame (both directions, timing).

The file is a :mod:`gemini_live.testing.cassette` (version 1): one JSON object per line::

    {"t": 0.0, "conn": 0, "dir": "meta", "event": "cassette", "version": 1, ...}
    {"t": 0.0123, "conn": 1, "dir": "client", "kind": "setup", "bytes": 412, "frame": {...}}
    {"t": 0.0456, "conn": 1, "dir": "server", "bytes": 2661, "frame": {...}}
    {"t": 1.2000, "conn": 1, "dir": "meta", "event": "close", "code": 1000, ...}

``t`` is seconds since the recorder started (monotonic), ``wall`` the UTC time. Base64
payloads (``inlineData`` / ``audio`` / ``video`` blobs) are replaced by a short
placeholder and every line passes through :func:`gemini_live.errors.redact`, so API keys
and tokens never reach the file (headers and query strings are not recorded at all).
``gemini-live fake-server --cassette FILE`` (or ``FakeLiveServer.replay(FILE)``) plays
the server side back.
"""

from __future__ import annotations

from gemini_live.testing.cassette import CassetteWriter, Recorder, scrub_frame
from gemini_live.transport.base import Backend

__all__ = ["RecordingBackend", "WireRecorder", "scrub_frame"]

#: The ``--record`` writer is the cassette writer.
WireRecorder = CassetteWriter


class RecordingBackend(Recorder):
    """A :class:`~gemini_live.transport.base.Backend` that records every frame of ``inner``."""

    def __init__(self, inner: Backend, recorder: CassetteWriter) -> None:
        super().__init__(recorder, inner)
