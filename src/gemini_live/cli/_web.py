"""``gemini-live web``: serve the voice page and the browser relay.

Without an API key (or with ``--fake``) the relay talks to the embedded fake server, so
the page works offline: speak, and the fake answers each utterance with a tone and a
transcript.

Closed by default, as local notebook servers are: only loopback host names (plus
``--allowed-host``) are answered, which stops DNS rebinding, and the printed URL carries
a random per-launch access token (the page trades it for a cookie). ``--authorize
module:function`` replaces the token with the app's own identity check.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gemini_live as gl

__all__ = ["add_web_command", "run_web"]


def add_web_command(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = command(
        "web",
        "serve a voice web page with the browser relay (needs the web extra)",
        "Serve a web page that talks to the model through this process: microphone in the\n"
        "browser, playback with barge-in, live transcripts. The API key stays here; the\n"
        "browser talks only to this server (protocol: docs/web-relay.md). Without an API\n"
        "key it runs against the embedded fake server. Needs pip install 'gemini-live[web]'.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 = any free)")
    p.add_argument(
        "--turn-detection",
        choices=("vad", "server", "manual"),
        default="vad",
        help="who ends a turn: the relay's VAD (default), the service's VAD, or push-to-talk",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another origin allowed to connect (repeatable; default: this page's own)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name to answer besides localhost, 127.0.0.1 and [::1] "
        "(repeatable; needed to reach it by a LAN name or through a proxy)",
    )
    p.add_argument(
        "--webrtc",
        action="store_true",
        help="also offer WebRTC (Opus over UDP; the page prefers it and falls back to the "
        "WebSocket; needs pip install 'gemini-live[webrtc]'; docs/guide/webrtc.md)",
    )
    p.add_argument(
        "--authorize",
        metavar="MODULE:FUNCTION",
        help="the relay's identity check, authorize(conn) -> identity or None (replaces "
        "the per-launch access token; the module is imported from the current directory)",
    )


def _import_web() -> Any:
    from gemini_live.cli._runtime import UsageError

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            "the web command needs the web extra: pip install 'gemini-live[web]'"
        ) from exc
    import gemini_live.web as web

    return web


def _load_hook(spec: str) -> Callable[..., object]:
    from gemini_live.cli._runtime import UsageError

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--authorize wants MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--authorize: cannot import {module_name!r}: {exc}") from None
    hook = module
    for part in attr.split("."):
        hook = getattr(hook, part, None)  # type: ignore[assignment]
        if hook is None:
            raise UsageError(f"--authorize: {module_name!r} has no {attr!r}")
    if not callable(hook):
        raise UsageError(f"--authorize: {spec} is not callable")
    return hook


async def run_web(args: argparse.Namespace) -> int:
    # Imported here: building the parser must stay cheap.
    import gemini_live as gl
    from gemini_live.cli._runtime import UsageError, api_key_from, resolve_mode

    web = _import_web()
    mode = resolve_mode(args)
    if mode == "vertex":
        raise UsageError("the web command supports the Gemini API, --url and --fake")
    async with contextlib.AsyncExitStack() as stack:
        if mode == "fake":
            from gemini_live.testing import FakeLiveServer

            # 25 chunks of 40 ms: a one-second answer, long enough to barge in on.
            fake = await stack.enter_async_context(
                FakeLiveServer(reply_chunks=25, assumed_playback=True)  # barge-in works
            )
            url: str | None = fake.url
            key: str | None = None
        else:
            url = args.url
            key = api_key_from(args)

        def config(_conn: Any) -> gl.SessionConfig:
            return gl.build_config(
                model=args.model,
                url=url,
                api_key=key,
                voice=args.voice,
                system_instruction=args.system,
                backend=args.backend,
                input_audio_transcription=True,
                output_audio_transcription=True,
            )

        config(None)  # fail on bad options now, not at the first browser
        token = None if args.authorize else web.AccessToken()
        authorize = token.authorize if token is not None else _load_hook(args.authorize)
        relay = web.Relay(
            config,
            authorize=authorize,
            turn_detection=args.turn_detection,
            allowed_origins=args.allow_origin or None,
        )
        hosts = [*web.LOOPBACK_HOSTS, *args.allowed_host]
        where = "the offline fake server" if mode == "fake" else "the Gemini API"

        def ready(base: str) -> None:
            url = token.url(base) if token is not None else f"{base}/"
            print(f"gemini-live web: open {url} (relay at /live, talking to {where})")
            if args.host not in ("127.0.0.1", "localhost", "::1") and not args.allowed_host:
                print(
                    "note: only loopback host names are answered; add --allowed-host NAME "
                    "to reach it by another name"
                )
            print("press Ctrl-C to stop", flush=True)

        if args.port < 0 or args.port > 65535:
            raise UsageError(f"bad port {args.port}")
        if args.webrtc:
            try:
                import aiortc  # noqa: F401
            except ImportError as exc:
                raise UsageError(
                    "--webrtc needs the webrtc extra: pip install 'gemini-live[webrtc]'"
                ) from exc
        app = web.create_app(
            relay, allowed_hosts=hosts, access_token=token, webrtc=bool(args.webrtc)
        )
        await web.serve(app, host=args.host, port=args.port, ready=ready)
    return 0
