"""The ``gemini-live`` command line (also ``python -m gemini_live``).

Commands: ``demo`` (the guided tour; offline with the embedded fake server when no API key
is set), ``chat`` (interactive text), ``stream FILE.wav`` (the model answers a WAV file),
``talk`` (microphone and speaker) and ``version``. Run ``gemini-live COMMAND --help``.

Exit status: 0 success, 1 a session or service error, 2 a usage error or missing
prerequisite (no API key with ``--no-fake``, no sounddevice for ``talk``), 130 Ctrl-C,
141 stdout closed early (``gemini-live demo | head -3``). Every failure is one line on
stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from gemini_live._version import __version__
from gemini_live.config import DEFAULT_MODEL

__all__ = ["build_parser", "main"]


_EPILOG = """\
Without GEMINI_API_KEY (or --api-key) every command runs offline against an embedded
fake Live server; pass --no-fake to require a key instead. The key is sent only in the
x-goog-api-key header and is never printed or recorded.

examples:
  gemini-live demo
  gemini-live chat
  gemini-live stream question.wav --out reply.wav --realtime
  gemini-live --record wire.jsonl demo
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``gemini-live stream: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _add_common(p: argparse.ArgumentParser, *, top: bool) -> None:
    """Connection options; on sub-commands they default to SUPPRESS (top level wins)."""

    def d(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("connection options")
    g.add_argument(
        "--model",
        default=d(None),
        help=f"model id (default: $GEMINI_MODEL or {DEFAULT_MODEL})",
    )
    g.add_argument(
        "--api-key",
        default=d(None),
        metavar="KEY",
        help="Gemini API key (default: $GEMINI_API_KEY, preferred: argv is visible to"
        " other users); never printed",
    )
    g.add_argument("--voice", default=d(None), help="prebuilt voice name, e.g. Puck")
    g.add_argument(
        "--thinking",
        default=d(None),
        metavar="LEVEL|BUDGET",
        help="thinking: a level (minimal, low, medium, high) for 3.1 and 3.8 Extended"
        " Thinking, or a token budget (0 = off, -1 = dynamic) for 2.5; default: the"
        " model's own (3.8 Extended Thinking: low)",
    )
    g.add_argument("--system", default=d(None), metavar="TEXT", help="system instruction")
    g.add_argument("--url", default=d(None), help="custom ws:// or wss:// endpoint")
    g.add_argument(
        "--vertex",
        action="store_true",
        default=d(False),
        help="use Vertex AI with Application Default Credentials",
    )
    g.add_argument(
        "--project", default=d(None), help="Vertex project (default: $GOOGLE_CLOUD_PROJECT)"
    )
    g.add_argument(
        "--location",
        default=d(None),
        help="Vertex location (default: $GOOGLE_CLOUD_LOCATION or us-central1)",
    )
    g.add_argument(
        "--backend",
        choices=("picows", "websockets"),
        default=d("picows"),
        help="WebSocket library (default: picows)",
    )
    g.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        default=d("WARNING"),
        help="log level for the library's logs on stderr (default: WARNING)",
    )
    g.add_argument(
        "--record",
        metavar="FILE.jsonl",
        default=d(None),
        help="write every client and server frame to FILE.jsonl (audio and keys redacted)",
    )
    fake = g.add_mutually_exclusive_group()
    fake.add_argument(
        "--fake",
        dest="fake",
        action="store_const",
        const=True,
        default=d(None),
        help="use the embedded offline fake server even if an API key is set",
    )
    fake.add_argument(
        "--no-fake",
        dest="fake",
        action="store_const",
        const=False,
        default=d(None),
        help="never fall back to the fake server (no API key -> exit 2)",
    )
    g.add_argument(
        "--debug",
        action="store_true",
        default=d(False),
        help="show tracebacks for errors (and library logs at DEBUG level)",
    )
    g.add_argument(
        "--turn-timeout",
        type=_positive_float,
        default=d(60.0),
        metavar="SECONDS",
        help="longest wait for one model turn (default: 60)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``gemini-live`` command line: every subcommand and its options."""
    parser = _Parser(
        prog="gemini-live",
        description="Talk to the Gemini Live API: a demo, text chat, WAV streaming, voice.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"gemini-live {__version__}")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(
        name: str, help: str, description: str, *, connects: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if connects:
            _add_common(p, top=False)
        return p

    command(
        "demo",
        "text, audio, a tool call and a forced goAway + resume, with timings",
        "Run the guided tour: a text turn, an audio turn from a generated WAV, a tool call\n"
        "(get_weather), and a forced goAway with session resumption, then usage and latency.\n"
        "Without an API key it runs offline against the embedded fake server. Against Google\n"
        "the goAway step is skipped (it cannot be forced).",
    )
    p = command(
        "chat",
        "interactive text chat (the reply streams while you type)",
        "Interactive text chat. The reply (its transcript) streams as it arrives and you can\n"
        "keep typing. Slash commands: /status /usage /tools /audio on|off /save FILE.wav\n"
        "/help /quit. Reads plain lines when stdin is not a terminal (one reply per line).",
    )
    p.add_argument(
        "--plain",
        action="store_true",
        help="read plain lines even on a terminal (no prompt_toolkit)",
    )
    p.add_argument(
        "--conversation",
        metavar="NAME",
        default=None,
        help="continue the stored conversation NAME (a new name starts one); it is saved "
        "as you chat and holds the conversation's text",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="where --conversation is stored: sqlite:///path.db or redis://host:port/db "
        "(default: sqlite in $XDG_DATA_HOME/gemini-live, else ~/.local/share/gemini-live)",
    )
    p = command(
        "stream",
        "send a WAV file, print and save the model's spoken answer",
        "Read FILE.wav (any rate, any channels; converted to 16 kHz mono PCM16) and stream\n"
        "it in 20 ms chunks. By default the whole file is one turn (the service's activity\n"
        "detection is off; the audio goes between activityStart and activityEnd) and the\n"
        "one reply is written as a 24 kHz mono WAV. With --server-vad the service decides\n"
        "where turns end (a pause can make several replies): every reply is printed and\n"
        "saved, one after the other, until the reply after audioStreamEnd.",
    )
    p.add_argument("file", metavar="FILE.wav", help="input WAV file")
    p.add_argument(
        "--out", default="reply.wav", metavar="OUT.wav", help="reply WAV (default: reply.wav)"
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="pace chunks in real time")
    pace.add_argument(
        "--fast", dest="realtime", action="store_false", help="send as fast as possible (default)"
    )
    p.add_argument(
        "--server-vad",
        action="store_true",
        help="let the service's activity detection split the file into turns (every"
        " reply is printed and saved)",
    )
    p.add_argument(
        "--chunk-ms",
        type=_positive_int,
        default=20,
        metavar="MS",
        help="chunk length (default: 20)",
    )
    p = command(
        "talk",
        "live microphone -> model -> speaker with barge-in (needs sounddevice)",
        "Talk with the model: the microphone streams at 16 kHz, the reply plays at 24 kHz,\n"
        "and speaking over the model interrupts it (playback is flushed at once). Needs\n"
        "pip install 'gemini-live[audio]' and the PortAudio library. Echo cancellation\n"
        "(pip install 'gemini-live[aec]') removes the speaker from the microphone, so\n"
        "loudspeakers work; --no-aec turns it off (headphones need none).\n"
        "A pause of 0.6 s after speech sends audioStreamEnd (offline, the fake server\n"
        "answers each pause).",
    )
    p.add_argument(
        "--max-turns",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop after N model replies (default: until Ctrl-C)",
    )
    p.add_argument(
        "--no-aec",
        dest="aec",
        action="store_false",
        help="no echo cancellation (on by default when the aec extra is installed)",
    )
    from gemini_live.cli._web import add_web_command

    add_web_command(command)
    command("version", "print the version", "Print the gemini-live version.", connects=False)
    from gemini_live.cli._fake_server import add_parser as add_fake_server

    add_fake_server(sub)
    return parser


def _normalise(args: argparse.Namespace) -> None:
    defaults = {
        "model": None,
        "api_key": None,
        "voice": None,
        "thinking": None,
        "system": None,
        "url": None,
        "vertex": False,
        "project": None,
        "location": None,
        "backend": "picows",
        "log_level": "WARNING",
        "record": None,
        "fake": None,
        "debug": False,
        "turn_timeout": 60.0,
    }
    for k, v in defaults.items():
        if not hasattr(args, k):
            setattr(args, k, v)
    if not args.model:
        args.model = os.environ.get("GEMINI_MODEL") or DEFAULT_MODEL


def _runner(command: str) -> Callable[[argparse.Namespace], Coroutine[Any, Any, int]]:
    if command == "demo":
        from gemini_live.cli._demo import run_demo

        return run_demo
    if command == "chat":
        from gemini_live.cli._chat import run_chat

        return run_chat
    if command == "stream":
        from gemini_live.cli._stream import run_stream

        return run_stream
    if command == "web":
        from gemini_live.cli._web import run_web

        return run_web
    from gemini_live.cli._talk import run_talk

    return run_talk


class _OneLineFormatter(logging.Formatter):
    """Log lines without tracebacks: the exception becomes ``: Type: message``."""

    def format(self, record: logging.LogRecord) -> str:
        if not record.exc_info:
            return super().format(record)
        exc = record.exc_info[1]
        copy = logging.makeLogRecord(record.__dict__)
        copy.exc_info = None
        copy.exc_text = None
        copy.stack_info = None
        line = super().format(copy)
        return f"{line}: {type(exc).__name__}: {exc}" if exc is not None else line


def _said_once(record: logging.LogRecord) -> bool:
    """Drop the session's "session ended: <error>" line: the command ends with that
    error as its one-line failure, so the log would say it twice."""
    return not (
        record.name.startswith("gemini_live.session")
        and isinstance(record.msg, str)
        and _SESSION_ENDED.match(record.msg) is not None
    )


#: "session ended: ...", after the session's "[id] " prefix.
_SESSION_ENDED = re.compile(r"(\[[^\]]*\] )?session ended\b")


def _tolerant_streams() -> None:
    """Never crash on a character the terminal's encoding lacks (e.g. '—' in latin-1)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="replace")


def _stdout_closed() -> int:
    """The reader of our stdout went away (``| head``): stop quietly, no 'Broken pipe'."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the final flush at exit must not fail
    except (OSError, ValueError):
        pass
    return 141


def _fail(args: argparse.Namespace, message: str, status: int) -> int:
    """Print the one-line failure (and the traceback with --debug); return ``status``."""
    if getattr(args, "debug", False):
        traceback.print_exc(file=sys.stderr)
    print(f"gemini-live {args.command}: {message}", file=sys.stderr, flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    _tolerant_streams()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _normalise(args)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "version":
            print(f"gemini-live {__version__}", flush=True)
            return 0
        if args.command == "fake-server":
            from gemini_live.cli._fake_server import run_fake_server

            return run_fake_server(args)
        return _run(args)
    except BrokenPipeError:
        return _stdout_closed()


def _quiet_hooks() -> None:
    """Errors Python reports on its own (in ``__del__``, in threads): one line each."""

    def unraisable(info: Any) -> None:
        exc = info.exc_value
        print(f"gemini-live: ignored {type(exc).__name__}: {exc}", file=sys.stderr)

    def thread_error(info: Any) -> None:
        exc = info.exc_value
        name = info.thread.name if info.thread is not None else "?"
        print(f"gemini-live: thread {name}: {type(exc).__name__}: {exc}", file=sys.stderr)

    sys.unraisablehook = unraisable
    threading.excepthook = thread_error


def _run(args: argparse.Namespace) -> int:
    hooks = sys.unraisablehook, threading.excepthook
    if not args.debug:
        _quiet_hooks()
    try:
        return _run_command(args)
    finally:
        sys.unraisablehook, threading.excepthook = hooks


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run the CLI's event loop: uvloop when it is installed (cheaper per wake-up in the
    ping-pong and paced regimes, docs/performance.md), asyncio otherwise. The library
    itself never installs a loop policy."""
    try:
        import uvloop
    except ImportError:
        pass
    else:
        result: int = uvloop.run(main)
        return result
    # Outside the except clause: an error of the command is not chained to the ImportError.
    return asyncio.run(main)


def _run_command(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        (logging.Formatter if args.debug else _OneLineFormatter)(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    )
    if not args.debug:
        handler.addFilter(_said_once)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else getattr(logging, args.log_level),
        handlers=[handler],
    )
    from gemini_live.cli._runtime import OutputClosed, UsageError
    from gemini_live.errors import ConfigError, GeminiLiveError, redact

    try:
        if args.command == "talk":
            # Check the audio stack and the devices before connecting anywhere.
            from gemini_live.cli._talk import check_devices, import_sounddevice

            check_devices(import_sounddevice())
        return run_loop(_runner(args.command)(args))
    except (OutputClosed, BrokenPipeError):
        return _stdout_closed()
    except UsageError as exc:
        return _fail(args, str(exc), 2)
    except ConfigError as exc:  # a bad setting, refused before anything was sent
        return _fail(args, str(exc), 2)
    except GeminiLiveError as exc:
        return _fail(args, f"error: {type(exc).__name__}: {exc}", 1)
    except TimeoutError as exc:
        return _fail(args, f"timed out: {redact(str(exc))}", 1)
    except OSError as exc:  # files (--record, --out, /save) and devices
        return _fail(args, f"error: {redact(str(exc))}", 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        hint = "" if args.debug else " (run again with --debug for the traceback)"
        return _fail(args, f"internal error: {type(exc).__name__}: {redact(str(exc))}{hint}", 1)
