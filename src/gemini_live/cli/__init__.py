"""The ``gemini-live`` command line (also ``python -m gemini_live``).

Commands: ``demo`` (the guided tour; offline with the embedded fake server when no API key
is set), ``chat`` (interactive text), ``stream FILE.wav`` (one audio turn from a file),
``talk`` (microphone and speaker) and ``version``. Run ``gemini-live COMMAND --help``.

Exit status: 0 success, 1 a session or service error, 2 a usage error or missing
prerequisite (no API key with ``--no-fake``, no sounddevice for ``talk``), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from gemini_live._version import __version__

__all__ = ["build_parser", "main"]

DEFAULT_MODEL = "models/gemini-3.8-live"

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
        "--turn-timeout",
        type=float,
        default=d(60.0),
        metavar="SECONDS",
        help="longest wait for one model turn (default: 60)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gemini-live",
        description="Talk to the Gemini Live API: a demo, text chat, WAV streaming, voice.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"gemini-live {__version__}")
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
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
    p = command(
        "stream",
        "send a WAV file as one audio turn and save the spoken reply",
        "Read FILE.wav (any rate, any channels; converted to 16 kHz mono PCM16), stream it\n"
        "in 20 ms chunks followed by audioStreamEnd, wait for the reply, write it as a\n"
        "24 kHz mono WAV and print the transcripts.",
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
        "--chunk-ms", type=int, default=20, metavar="MS", help="chunk length (default: 20)"
    )
    p = command(
        "talk",
        "live microphone -> model -> speaker with barge-in (needs sounddevice)",
        "Talk with the model: the microphone streams at 16 kHz, the reply plays at 24 kHz,\n"
        "and speaking over the model interrupts it (playback is flushed at once). Needs\n"
        "pip install 'gemini-live[audio]' and the PortAudio library. Use headphones.\n"
        "A pause of 0.6 s after speech sends audioStreamEnd (offline, the fake server\n"
        "answers each pause).",
    )
    p.add_argument(
        "--max-turns",
        type=int,
        default=None,
        metavar="N",
        help="stop after N model replies (default: until Ctrl-C)",
    )
    from gemini_live.cli._web import add_web_command

    add_web_command(command)
    command("version", "print the version", "Print the gemini-live version.")
    return parser


def _normalise(args: argparse.Namespace) -> None:
    defaults = {
        "model": None,
        "api_key": None,
        "voice": None,
        "system": None,
        "url": None,
        "vertex": False,
        "project": None,
        "location": None,
        "backend": "picows",
        "log_level": "WARNING",
        "record": None,
        "fake": None,
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _normalise(args)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "version":
        print(f"gemini-live {__version__}")
        return 0
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from gemini_live.cli._runtime import UsageError
    from gemini_live.errors import ConfigError, GeminiLiveError, redact

    try:
        if args.command == "talk":
            # Check the audio stack before connecting anywhere.
            from gemini_live.cli._talk import import_sounddevice

            import_sounddevice()
        return asyncio.run(_runner(args.command)(args))
    except UsageError as exc:
        print(f"gemini-live {args.command}: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:  # a bad setting, refused before anything was sent
        print(f"gemini-live {args.command}: {exc}", file=sys.stderr)
        return 2
    except GeminiLiveError as exc:
        print(f"gemini-live {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except TimeoutError as exc:
        print(f"gemini-live {args.command}: timed out: {redact(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:  # files (--record, --out, /save) and devices
        print(f"gemini-live {args.command}: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
