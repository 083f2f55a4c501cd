"""``gemini-live fake-server``: the test kit's fake Live API server, in the foreground.

Any client (a browser app, another language, the official SDKs) can talk to it on
``127.0.0.1``. It prints its URL, logs one line per connection event, and stops cleanly on
Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser", "run_fake_server"]

_DESCRIPTION = """\
Run the fake Gemini Live API server on 127.0.0.1 until Ctrl-C. It speaks the server side
of the protocol (binary frames, real close codes, goAway, resumption handles, tool calls,
voice activity detection and barge-in), so any client can be tested without a key.

  --script FILE     scripted turns (JSON, see gemini_live.testing.script)
  --cassette FILE   replay a recorded session (written with --record or a Recorder)

Point a client at the printed URL, e.g.
  gemini-live --url ws://127.0.0.1:PORT/ws/...BidiGenerateContent stream question.wav
"""


def add_parser(sub: Any) -> None:
    """Register the ``fake-server`` subcommand on the CLI's subparsers."""
    p = sub.add_parser(
        "fake-server",
        help="run the offline fake Live API server (for any client, any language)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=0, metavar="N", help="port (default: any free)")
    p.add_argument("--script", default=None, metavar="FILE", help="JSON script of turns")
    p.add_argument("--cassette", default=None, metavar="FILE", help="cassette to replay")
    p.add_argument(
        "--require-api-key",
        default=None,
        metavar="KEY",
        help="accept only this API key (x-goog-api-key header or ?key=)",
    )
    p.add_argument(
        "--latency", type=float, default=0.0, metavar="MS", help="delay before every frame"
    )
    p.add_argument(
        "--record-frames",
        type=int,
        default=0,
        metavar="N",
        help="keep the last N frames per direction and connection, and the input audio"
        " (default 0: keep nothing, so memory stays flat however long clients stream)",
    )
    p.add_argument(
        "--assumed-playback",
        action="store_true",
        help="hold turnComplete until the reply's audio would have played (barge-in then"
        " interrupts it, as on the service)",
    )


def run_fake_server(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status."""
    from gemini_live.testing import FakeLiveServer
    from gemini_live.testing.cassette import Cassette, CassetteError
    from gemini_live.testing.script import Script, ScriptError

    if args.script and args.cassette:
        print(
            "gemini-live fake-server: --script and --cassette exclude each other", file=sys.stderr
        )
        return 2
    if args.latency < 0 or not 0 <= args.port <= 65535 or args.record_frames < 0:
        print(
            "gemini-live fake-server: --latency, --port and --record-frames must be >= 0",
            file=sys.stderr,
        )
        return 2
    options: dict[str, Any] = {
        "require_api_key": args.require_api_key,
        "latency": args.latency / 1000.0,
        "port": args.port,
        "assumed_playback": args.assumed_playback,
        # A long-running server keeps no frames or audio unless asked.
        "record_frames": args.record_frames > 0,
        # Payloads stay in the frame ring only (when asked), never in decoded messages.
        "keep_audio_payloads": False,
        "max_recorded_audio": 0,
    }
    if args.record_frames > 0:
        options["max_recorded_frames"] = args.record_frames
        options.pop("max_recorded_audio")
    for flag, given in (("--cassette", args.cassette), ("--script", args.script)):
        # A missing file is a usage error (2); a file that is there but corrupt is 1.
        if given and not os.path.isfile(given):
            print(
                f"gemini-live fake-server: {flag}: cannot read {given}: no such file",
                file=sys.stderr,
            )
            return 2
    try:
        if args.cassette:
            server = FakeLiveServer.replay(Cassette.load(args.cassette), **options)
        else:
            script = Script.load(args.script) if args.script else None
            server = FakeLiveServer(script=script, **options)
    except (ScriptError, CassetteError, OSError) as exc:
        # One line, exit 1: a corrupt file is an error of the input, not a crash.
        message = " ".join(str(exc).split())
        print(f"gemini-live fake-server: {message}", file=sys.stderr)
        return 1
    handler = _StdoutHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log = logging.getLogger("gemini_live.testing")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        from gemini_live.cli import run_loop

        return run_loop(_serve(server, args, handler))
    except BrokenPipeError:
        from gemini_live.cli import _stdout_closed

        return _stdout_closed()
    except OSError as exc:
        print(f"gemini-live fake-server: cannot listen: {exc}", file=sys.stderr)
        return 1
    finally:
        log.removeHandler(handler)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines on stdout; when the reader goes away (``| head -1``) the server stops
    quietly instead of printing a logging traceback per line."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.on_closed: Callable[[], object] | None = None

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            if self.on_closed is not None:
                self.on_closed()
            return
        super().handleError(record)


async def _serve(server: Any, args: argparse.Namespace, handler: _StdoutHandler) -> int:
    stop = asyncio.Event()
    closed = False
    loop = asyncio.get_running_loop()

    def stdout_closed() -> None:
        nonlocal closed
        closed = True
        stop.set()

    handler.on_closed = stdout_closed
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    unwatch = _watch_stdout(loop, stdout_closed)
    try:
        await _run_server(server, args, stop, lambda: closed)
    except BrokenPipeError:
        closed = True
    finally:
        handler.on_closed = None
        if unwatch is not None:
            unwatch()
    if closed:
        raise BrokenPipeError
    return 0 if not server.divergences else 1


def _watch_stdout(
    loop: asyncio.AbstractEventLoop, on_closed: Callable[[], None]
) -> Callable[[], None] | None:
    """When stdout is a pipe, call ``on_closed`` as soon as its reader goes away.

    The write end of a pipe turns readable (an error condition) once the other end is
    closed: ``gemini-live fake-server | head -1`` then stops at once rather than when the
    next log line fails to be written.
    """
    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
        loop.add_reader(fd, on_closed)
    except (OSError, ValueError, AttributeError, NotImplementedError):
        return None

    def unwatch() -> None:
        loop.remove_reader(fd)

    return unwatch


async def _run_server(
    server: Any, args: argparse.Namespace, stop: asyncio.Event, closed: Callable[[], bool]
) -> None:
    await server.start()
    try:
        what = f"replaying {args.cassette}" if args.cassette else "playing a voice model"
        print(f"fake Live API server {what}, listening on {server.base_url}", flush=True)
        print(f"URL: {server.url}", flush=True)
        if args.require_api_key:
            print("API key required (x-goog-api-key header or ?key=)", flush=True)
        print("Ctrl-C stops it.", flush=True)
        await stop.wait()
        if closed():
            return
        print("stopping", flush=True)
    finally:
        await server.stop()
    for line in list(server.divergences):
        print(f"divergence: {line}", flush=True)
    print("stopped", flush=True)
