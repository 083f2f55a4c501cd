"""``gemini-live chat``: interactive text chat; the reply streams while you type."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from gemini_live import events as ev
from gemini_live.audio import OUTPUT_RATE, resample, write_wav
from gemini_live.cli._runtime import (
    WEATHER_TRIGGER,
    Conversation,
    OutputClosed,
    Target,
    Timeline,
    format_call,
    format_json,
    ms,
    open_target,
    weather_tools,
)
from gemini_live.errors import GeminiLiveError
from gemini_live.tools import ToolRegistry
from gemini_live.types import FunctionCall, FunctionResponse

__all__ = ["run_chat"]

PROMPT = "you> "

HELP = """\
commands:
  /status          connection, reconnects, latency and usage of the last turn
  /usage           token usage (last turn and session)
  /tools           the tools the model can call
  /audio on|off    keep the reply audio (for /save); on by default
  /save FILE.wav   save the last reply's audio (24 kHz mono)
  /help            this list
  /quit            leave (Ctrl-D works too)"""


class LineSource(Protocol):
    async def read(self) -> str | None:
        """The next line without its newline; None at end of input."""


class _Console:
    """stdout for the chat. In plain terminal mode it keeps the prompt visible: output
    clears the prompt line first and, once a line is complete, shows the prompt again."""

    def __init__(self) -> None:
        self.redraw = False
        self.waiting = False
        self._prompt_shown = False

    def show_prompt(self) -> None:
        self.waiting = True
        if self.redraw:
            sys.stdout.write(PROMPT)
            sys.stdout.flush()
            self._prompt_shown = True

    def input_taken(self) -> None:
        self.waiting = False
        self._prompt_shown = False

    def write(self, text: str, end: str) -> None:
        if self._prompt_shown:
            sys.stdout.write("\r\x1b[K")
            self._prompt_shown = False
        try:
            print(text, end=end, flush=True)
        except BrokenPipeError:
            raise OutputClosed from None
        if self.redraw and self.waiting and end == "\n":
            self.show_prompt()


class _ThreadLines:
    """Lines from stdin, read by a daemon thread (works for TTYs, pipes and files)."""

    def __init__(self, console: _Console) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._console = console
        self._thread = threading.Thread(target=self._reader, name="chat-stdin", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        try:
            for line in sys.stdin:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    async def read(self) -> str | None:
        self._console.show_prompt()
        try:
            return await self._queue.get()
        finally:
            self._console.input_taken()


class _PromptToolkitLines:
    """prompt_toolkit's PromptSession: the prompt stays usable while output is printed."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def read(self) -> str | None:
        try:
            line: str = await self._session.prompt_async(PROMPT)
        except (EOFError, KeyboardInterrupt):
            return None
        return line


@contextlib.contextmanager
def _line_source(plain: bool, console: _Console) -> Iterator[tuple[LineSource, bool]]:
    """Yield (source, interactive)."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive and not plain:
        try:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.patch_stdout import patch_stdout
        except ImportError:
            pass
        else:
            with patch_stdout(raw=True):
                yield _PromptToolkitLines(PromptSession()), True
            return
    console.redraw = interactive
    yield _ThreadLines(console), interactive


class _ChatPrinter:
    """Streams the reply as it arrives and prints lifecycle events between lines."""

    def __init__(self, out: Callable[[str, str], None]) -> None:
        self._write = out
        self._open_line = False

    def _line(self, text: str) -> None:
        self.end_line()
        self._write(text, "\n")

    def end_line(self) -> None:
        if self._open_line:
            self._write("", "\n")
            self._open_line = False

    def __call__(self, event: ev.Event) -> None:
        match event:
            case ev.OutputTranscription(text=text) if text:
                if not self._open_line:
                    self._write("model> ", "")
                    self._open_line = True
                self._write(text, "")
            case ev.ModelText(text=text, thought=False) if text:
                if not self._open_line:
                    self._write("model> ", "")
                    self._open_line = True
                self._write(text, "")
            case ev.InputTranscription(text=text, interim=False) if text:
                self._line(f"(heard) {text}")
            case ev.ToolCall(calls=calls):
                for c in calls:
                    name = c.name if isinstance(c.name, str) else "?"
                    args = c.args if isinstance(c.args, dict) else {}
                    self._line(f"tool> {format_call(name, args)}")
            case ev.Interrupted():
                self._line("[interrupted]")
            case ev.TurnComplete(interaction_status="IN_PROGRESS"):
                self._line("[still working on it...]")
            case ev.InteractionTimeout(seconds=seconds):
                self._line(f"[no final answer: still in progress after {seconds:.0f} s]")
            case ev.TurnComplete() | ev.GenerationComplete():
                self.end_line()
            case ev.GoAway(time_left=left):
                self._line(f"[goAway: {left:.1f} s left, rotating the connection]")
            case ev.Reconnecting(attempt=n, delay=d, cause=cause):
                self._line(f"[reconnecting (attempt {n}, in {d:.2f} s): {cause}]")
            case ev.Resumed(state_restored=restored, reseeded=reseeded, turns=turns):
                where = "resumed from the store" if event.from_store else "resumed"
                if restored:
                    self._line(f"[{where}: state restored]")
                elif reseeded:
                    self._line(f"[{where}: FRESH session, reseeded with {turns} turns]")
                else:
                    self._line(f"[{where}: FRESH session]")
            case ev.Closed(code=code, reason=reason):
                self._line(f"[session closed: code={code} {reason}]".replace(" ]", "]"))
            case _:
                pass


class _Chat:
    def __init__(self, args: argparse.Namespace, target: Target, registry: ToolRegistry) -> None:
        self.args = args
        self.target = target
        self.session = target.session
        self.registry = registry
        self.timeline = Timeline()
        self.console = _Console()
        self.printer = _ChatPrinter(self.console.write)
        self.conv = Conversation(self.session, self.timeline, on_event=self.printer)
        self.pending: asyncio.Future[Any] | None = None

    def say(self, text: str) -> None:
        self.printer.end_line()
        self.console.write(text, "\n")

    # -- commands -----------------------------------------------------------------------

    def status(self) -> None:
        s = self.session
        st = s.stats
        self.say(
            f"connection: {s.status} · {self.target.describe()} · session {s.session_id}"
            f" · reconnects {st.reconnects} (goAway rotations {st.go_away_rotations},"
            f" resumed {st.resumed})"
        )
        lat = self.conv.tracker.last_turn
        if lat is None:
            self.say("last turn: —")
        else:
            self.say(
                f"last turn: first audio {ms(lat.time_to_first_audio)} · first text"
                f" {ms(lat.time_to_first_text)} · turn complete {ms(lat.time_to_turn_complete)}"
            )
        self.usage()

    def usage(self) -> None:
        for line in self.conv.usage_lines():
            self.say(line)

    def tools(self) -> None:
        if not len(self.registry):
            self.say("no tools")
        for spec in self.registry:
            decl = spec.declaration()
            desc = decl.description if isinstance(decl.description, str) else ""
            self.say(f"{spec.name}: {desc}".rstrip(": "))
        if self.target.offline:
            self.say(
                f"(offline: the fake server calls get_weather when you say {WEATHER_TRIGGER!r})"
            )

    def save(self, arg: str) -> None:
        if not arg:
            self.say("usage: /save FILE.wav")
            return
        last = self.conv.last
        if last is None or not last.audio:
            if last is not None and last.audio_bytes and not self.conv.keep_audio:
                self.say("reply audio is not kept: /audio on, then ask again")
            else:
                self.say("no reply audio to save yet")
            return
        audio = bytes(last.audio)
        if last.sample_rate != OUTPUT_RATE:
            audio = resample(audio, last.sample_rate, OUTPUT_RATE)
        path = Path(arg).expanduser()
        try:
            with path.open("wb") as f:  # open first: a bad path fails cleanly
                write_wav(f, audio, OUTPUT_RATE)
        except OSError as exc:
            self.say(f"cannot write {path}: {exc.strerror or exc}")
            return
        self.say(f"saved {path} ({len(audio) / 2 / OUTPUT_RATE:.3f} s, {OUTPUT_RATE} Hz mono)")

    def command(self, line: str) -> bool:
        """Run a slash command; False means quit."""
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        name = name.lower()
        if name in ("quit", "exit", "q"):
            return False
        if name == "status":
            self.status()
        elif name == "usage":
            self.usage()
        elif name == "tools":
            self.tools()
        elif name == "audio":
            if arg in ("on", "off"):
                self.conv.keep_audio = arg == "on"
                self.say(f"reply audio is {'kept' if self.conv.keep_audio else 'discarded'}")
            else:
                self.say(f"audio is {'on' if self.conv.keep_audio else 'off'}; /audio on|off")
        elif name == "save":
            self.save(arg)
        elif name in ("help", "?"):
            self.say(HELP)
        else:
            self.say(f"unknown command /{name}; /help lists them")
        return True

    # -- main loop ----------------------------------------------------------------------

    async def send(self, text: str) -> None:
        self.pending = self.conv.expect_turn()
        self.pending.add_done_callback(_consume)
        await self.session.send_text(text)

    async def wait_pending(self) -> None:
        fut = self.pending
        if fut is not None and not fut.done():
            with contextlib.suppress(TimeoutError, GeminiLiveError):
                await self.conv.wait(fut, self.args.turn_timeout)

    async def run(self) -> int:
        self.say(
            f"connected to {self.target.describe()}, session {self.session.session_id}."
            " Type a message; /help for commands, /quit to leave."
        )
        link = self.session.conversation
        if link is not None:
            r = link.resumed
            if r is None:
                how = "new, saved as you chat"
            elif r.state_restored:
                how = "continued, state restored"
            else:
                how = f"continued, FRESH session reseeded with {r.turns} turns"
            self.say(f"conversation {link.id}: {how} ({link.store!r})")
        with _line_source(self.args.plain, self.console) as (source, interactive):
            while True:
                read = asyncio.ensure_future(source.read())
                ended = asyncio.ensure_future(self.conv.ended.wait())
                done, _ = await asyncio.wait({read, ended}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await read
                    err = self.conv.error
                    if isinstance(err, OutputClosed):
                        raise err
                    if err is None:
                        self.say("the session ended")
                        return 0
                    print(f"gemini-live chat: error: {type(err).__name__}: {err}", file=sys.stderr)
                    return 1
                ended.cancel()
                line = read.result()
                if line is None:
                    await self.wait_pending()
                    break
                line = line.strip()
                if not line:
                    continue
                if line.startswith("/"):
                    if not self.command(line):
                        break
                    continue
                await self.send(line)
                if not interactive:
                    # Scripted input: answer each line before reading the next one.
                    await self.wait_pending()
        self.say("bye")
        return 0


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark retrieved: nobody may await it


async def run_chat(args: argparse.Namespace) -> int:
    registry = weather_tools()

    async with open_target(args, tools=registry) as target:
        chat = _Chat(args, target, registry)

        def on_result(call: FunctionCall, response: FunctionResponse, elapsed: float) -> None:
            name = call.name if isinstance(call.name, str) else "?"
            chat.say(f"tool< {name} -> {format_json(response.response)} ({elapsed * 1000:.1f} ms)")

        async with chat.conv, target.session.run_tools(registry, on_result=on_result):
            return await chat.run()
