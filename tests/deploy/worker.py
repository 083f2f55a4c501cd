"""One relay worker process, as a deployment runs it (used by the deployment tests).

``python tests/deploy/worker.py --port 0 --service URL [--store redis://... | PATH]``
prints its base URL once it listens; SIGTERM drains it (``web.serve``). Browsers sign in
with ``Authorization: Bearer USER:SECRET`` (``SECRET`` from ``$WORKER_SECRET``): the
test's stand-in for a real session check.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
from collections.abc import Callable

import gemini_live as gl
from gemini_live.store import ConversationStore, RedisStore, SqliteStore
from gemini_live.web import ConnectionInfo, Relay, RelayLimits, create_app, serve


def bearer_check(secret: str) -> Callable[[ConnectionInfo], str | None]:
    def authorize(conn: ConnectionInfo) -> str | None:
        header = conn.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        user, _, given = header[len("Bearer ") :].partition(":")
        ok = hmac.compare_digest(given.encode(), secret.encode())
        return user if ok and user else None

    return authorize


def build_store(where: str | None) -> ConversationStore | None:
    if not where:
        return None
    if where.startswith(("redis://", "rediss://")):
        return RedisStore(where, lease_ttl=3.0)
    return SqliteStore(where)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--service", required=True, help="the Live API (fake) URL")
    parser.add_argument("--store", default=None)
    parser.add_argument("--drain-timeout", type=float, default=10.0)
    args = parser.parse_args()
    service = args.service

    def config(_conn: ConnectionInfo) -> gl.SessionConfig:
        return gl.build_config(url=service, output_audio_transcription=True)

    relay = Relay(
        config,
        authorize=bearer_check(os.environ["WORKER_SECRET"]),
        allow_no_origin=True,
        store=build_store(args.store),
        limits=RelayLimits(max_connections_per_address=None, turns_per_minute=None),
    )
    app = create_app(relay, page=False)
    asyncio.run(
        serve(
            app,
            port=args.port,
            ready=lambda url: print(url, flush=True),
            drain_timeout=args.drain_timeout,
        )
    )


if __name__ == "__main__":
    main()
