"""The relay app as plain ``uvicorn`` serves it (used by test_uvicorn_drain.py):

    uvicorn uvicorn_app:app --app-dir tests/deploy --workers 2

reads ``GL_SERVICE`` (the Live API URL), ``GL_STORE`` (an SQLite file) and
``WORKER_SECRET`` from the environment. No ``web.serve``: the drain on SIGTERM comes
from the app's lifespan."""

from __future__ import annotations

import hmac
import os

import gemini_live as gl
from gemini_live.store import SqliteStore
from gemini_live.web import ConnectionInfo, Relay, RelayLimits, create_app

SECRET = os.environ["WORKER_SECRET"]


def _authorize(conn: ConnectionInfo) -> str | None:
    """``Authorization: Bearer USER:SECRET`` (the test's stand-in for a session check)."""
    user, _, given = conn.headers.get("authorization", "").removeprefix("Bearer ").partition(":")
    return user if user and hmac.compare_digest(given.encode(), SECRET.encode()) else None


def _config(_conn: ConnectionInfo) -> gl.SessionConfig:
    return gl.build_config(url=os.environ["GL_SERVICE"], output_audio_transcription=True)


app = create_app(
    Relay(
        _config,
        authorize=_authorize,
        allow_no_origin=True,
        store=SqliteStore(os.environ["GL_STORE"]),
        limits=RelayLimits(max_connections_per_address=None, turns_per_minute=None),
    ),
    page=False,
    drain_timeout=20.0,
)
