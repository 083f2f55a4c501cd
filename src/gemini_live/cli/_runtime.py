"""What every CLI command shares: where to connect, the timeline, the event consumer."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import gemini_live as gl
from gemini_live import events as ev
from gemini_live._pcm import OUTPUT_RATE
from gemini_live.config import with_client_activity
from gemini_live.errors import ConfigError, redact
from gemini_live.metrics import (
    LatencyTracker,
    TurnLatency,
    TurnUsage,
    UsageMeter,
    format_ms,
)
from gemini_live.models import adapt_setup
from gemini_live.transport.base import Backend
from gemini_live.types import GenerationConfig, ThinkingConfig

if TYPE_CHECKING:
    from gemini_live.cli._record import WireRecorder
    from gemini_live.store import ConversationStore
    from gemini_live.testing import FakeLiveServer
    from gemini_live.tools import ToolRegistry

__all__ = [
    "Conversation",
    "OutputClosed",
    "Target",
    "Timeline",
    "TurnResult",
    "UsageError",
    "open_target",
]

Mode = Literal["fake", "google", "vertex", "custom"]

#: The word that makes the embedded fake server call get_weather.
WEATHER_TRIGGER = "weather"


class UsageError(Exception):
    """A command-line mistake or a missing prerequisite: message to stderr, exit 2."""


class OutputClosed(Exception):
    """Whoever read our stdout went away (``gemini-live demo | head -3``): stop quietly."""


def emit(line: str, out: IO[str]) -> None:
    """Print one line; a closed pipe becomes :class:`OutputClosed`."""
    try:
        print(line, file=out, flush=True)
    except BrokenPipeError:
        raise OutputClosed from None


class Timeline:
    """Prints ``[  0.012s] message`` lines relative to its start."""

    def __init__(
        self, out: IO[str] | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._out = out
        self.clock = clock
        self.t0 = clock()

    @property
    def out(self) -> IO[str]:
        return self._out if self._out is not None else sys.stdout

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def log(self, message: str) -> None:
        emit(f"[{self.elapsed():7.3f}s] {message}", self.out)

    def plain(self, message: str = "") -> None:
        emit(message, self.out)


# --------------------------------------------------------------------------- targets


def api_key_from(args: argparse.Namespace) -> str | None:
    key: str | None = args.api_key or os.environ.get("GEMINI_API_KEY") or None
    return key.strip() if key else None


def resolve_mode(args: argparse.Namespace) -> Mode:
    """Pick fake / Google / Vertex / custom from the options and the environment."""
    key = api_key_from(args)
    if args.fake is True:
        if args.vertex or args.url:
            raise UsageError("--fake cannot be combined with --vertex or --url")
        return "fake"
    if args.vertex:
        return "vertex"
    if args.url:
        return "custom"
    if key:
        return "google"
    if args.fake is False:
        raise UsageError(
            "no API key: set GEMINI_API_KEY or pass --api-key "
            "(or leave out --no-fake to use the embedded offline fake server)"
        )
    return "fake"


@dataclass
class Target:
    """An open session plus what it is connected to."""

    session: gl.Session
    mode: Mode
    fake: FakeLiveServer | None = None
    recorder: WireRecorder | None = None

    @property
    def offline(self) -> bool:
        return self.mode == "fake"

    def describe(self) -> str:
        if self.mode == "fake":
            return "embedded fake server (offline)"
        if self.mode == "vertex":
            return "Vertex AI"
        if self.mode == "custom":
            return "custom endpoint"
        return "Google Gemini API"


def weather_tools() -> ToolRegistry:
    """The demo's tool: get_weather(city)."""
    from gemini_live.tools import ToolRegistry

    registry = ToolRegistry()

    @registry.tool
    async def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city.

        Args:
            city: City name, e.g. "Paris".
        """
        # Deterministic, offline: a real tool would call a weather service here.
        temp = 12 + sum(map(ord, city.lower())) % 15
        return {"city": city, "temperature_c": temp, "conditions": "partly cloudy"}

    return registry


def _backend(args: argparse.Namespace, recorder: WireRecorder | None) -> str | Backend:
    name: str = args.backend
    if recorder is None:
        return name
    from gemini_live.cli._record import RecordingBackend
    from gemini_live.transport import get_backend

    inner: Backend = get_backend(name)
    return RecordingBackend(inner, recorder)


@contextlib.asynccontextmanager
async def open_target(
    args: argparse.Namespace,
    *,
    tools: ToolRegistry | None = None,
    timeline: Timeline | None = None,
    response_modalities: tuple[str, ...] = ("AUDIO",),
    client_activity: bool = False,
) -> AsyncIterator[Target]:
    """Start the fake server if needed, connect a Session, and clean both up.

    With ``args.conversation`` the session continues that stored conversation
    (``args.store``, or the default SQLite file in the user's data directory).

    ``client_activity``: turn the service's automatic activity detection off (the command
    brackets speech with ``activityStart`` / ``activityEnd`` itself).
    """
    mode = resolve_mode(args)
    recorder: WireRecorder | None = None
    if args.record:
        from gemini_live.cli._record import WireRecorder

        try:
            recorder = WireRecorder(args.record)
        except OSError as exc:
            raise UsageError(f"cannot write {args.record}: {exc.strerror or exc}") from exc
    try:
        async with contextlib.AsyncExitStack() as stack:
            fake: FakeLiveServer | None = None
            kwargs: dict[str, Any] = {}
            if mode == "fake":
                from gemini_live.testing import FakeLiveServer, ToolScript

                fake = FakeLiveServer(
                    tool_triggers={
                        WEATHER_TRIGGER: ToolScript("get_weather", {"city": "Paris"}),
                    },
                )
                await stack.enter_async_context(fake)
                kwargs["endpoint"] = gl.Endpoint.custom(fake.url)
                kwargs["auth"] = gl.Auth.none()
            elif mode == "vertex":
                project = args.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
                if not project:
                    raise UsageError("--vertex needs --project (or GOOGLE_CLOUD_PROJECT)")
                location = (
                    args.location or os.environ.get("GOOGLE_CLOUD_LOCATION") or ("us-central1")
                )
                kwargs["endpoint"] = gl.Endpoint.vertex(location=location, project=project)
                try:
                    kwargs["auth"] = gl.Auth.google_default()
                except ConfigError as exc:
                    raise UsageError(str(exc)) from exc
                except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError
                    raise UsageError(f"no Google credentials: {redact(str(exc))}") from exc
            elif mode == "custom":
                kwargs["endpoint"] = gl.Endpoint.custom(args.url)
                key = api_key_from(args)
                kwargs["auth"] = gl.Auth.api_key(key) if key else gl.Auth.none()
            else:
                key = api_key_from(args)
                assert key is not None
                kwargs["auth"] = gl.Auth.api_key(key)
            config = gl.build_config(
                model=args.model,
                backend=_backend(args, recorder),
                response_modalities=response_modalities,
                system_instruction=args.system,
                voice=args.voice,
                tools=tools.tools() if tools is not None and len(tools) else None,
                input_audio_transcription=True,
                output_audio_transcription=True,
                **kwargs,
            )
            config = model_aware(config, args, vertex=mode == "vertex")
            name = getattr(args, "conversation", None)
            if name is not None:
                store = open_conversation_store(getattr(args, "store", None))
                stack.push_async_callback(store.aclose)  # after the session's close
                config = dataclasses.replace(config, conversation=name, store=store)
            elif getattr(args, "store", None) is not None:
                raise UsageError("--store needs --conversation NAME")
            if client_activity:
                config = with_client_activity(config)
            if timeline is not None:
                where = fake.url if fake is not None else config.transport.endpoint.url
                what = describe_mode(mode, forced=args.fake is True)
                timeline.log(f"connecting to {what}: {redact(where)}")
            session = await gl.Session.connect(config)
            stack.push_async_callback(session.close)
            yield Target(session, mode, fake, recorder)
    finally:
        if recorder is not None:
            recorder.close()


def default_store_path() -> Path:
    """Where ``--conversation`` is stored by default: the user's data directory."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "gemini-live" / "conversations.db"


def open_conversation_store(url: str | None) -> ConversationStore:
    """The store of ``--store URL`` (default: SQLite in the user's data directory)."""
    from gemini_live.store import SqliteStore, open_store

    if url is None:
        return SqliteStore(default_store_path())
    if url == "memory:":
        raise UsageError("--store memory: would forget the conversation at exit")
    try:
        return open_store(url)
    except ConfigError as exc:
        raise UsageError(f"--store: {exc}") from None


def thinking_config(value: str) -> ThinkingConfig:
    """``--thinking``: an integer is a budget (2.5), a word is a level (3.x)."""
    text = value.strip()
    try:
        return ThinkingConfig(thinking_budget=int(text))
    except ValueError:
        pass
    level = text.upper()
    if level not in ("MINIMAL", "LOW", "MEDIUM", "HIGH"):
        raise UsageError(
            f"--thinking takes minimal, low, medium, high or a token budget, got {value!r}"
        )
    return ThinkingConfig(thinking_level=level)


def model_aware(
    config: gl.SessionConfig, args: argparse.Namespace, *, vertex: bool
) -> gl.SessionConfig:
    """Apply ``--thinking`` and the model family's rules (``gemini_live.models``).

    A setting the model cannot take is a :class:`ConfigError` (exit 2) naming the model
    and the field; safe fixes are logged as warnings.
    """
    setup = config.setup
    thinking = getattr(args, "thinking", None)
    if thinking:
        setup = copy.deepcopy(setup)
        gen = setup.generation_config
        if not isinstance(gen, GenerationConfig):
            gen = setup.generation_config = GenerationConfig()
        gen.thinking_config = thinking_config(thinking)
    adapted = adapt_setup(setup, vertex=vertex)
    if adapted is config.setup:
        return config
    return dataclasses.replace(config, setup=adapted)


def describe_mode(mode: Mode, *, forced: bool = False) -> str:
    if mode == "fake" and forced:
        return "the embedded fake server (offline; --fake)"
    return {
        "fake": "the embedded fake server (offline; no GEMINI_API_KEY)",
        "google": "the Gemini API",
        "vertex": "Vertex AI",
        "custom": "a custom endpoint",
    }[mode]


# --------------------------------------------------------------------------- turns


@dataclass
class TurnResult:
    """What one model turn produced."""

    transcript: str = ""
    model_text: str = ""
    input_text: str = ""
    audio: bytearray = field(default_factory=bytearray)
    audio_bytes: int = 0
    audio_chunks: int = 0
    sample_rate: int = OUTPUT_RATE
    tool_calls: list[str] = field(default_factory=list)
    interrupted: bool = False
    latency: TurnLatency | None = None
    usage: TurnUsage | None = None

    @property
    def text(self) -> str:
        """The reply as text: the output transcript, else the model's text parts."""
        return self.transcript or self.model_text

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / 2 / self.sample_rate if self.sample_rate else 0.0


ms = format_ms


def format_json(value: Any) -> str:
    """Compact one-line JSON for the timeline (repr for anything JSON can't hold)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        return repr(value)


def format_call(name: str, args: Any) -> str:
    return f"{name}({format_json(args)})"


class Conversation:
    """Consumes a session's events: metrics, transcripts, audio, lifecycle, turn ends.

    ``on_event(event)`` is called for every event (after the bookkeeping) so a command
    can print what it wants; ``on_turn(turn)`` for every completed model turn.
    """

    def __init__(
        self,
        session: gl.Session,
        timeline: Timeline,
        *,
        keep_audio: bool = True,
        on_event: Callable[[ev.Event], None] | None = None,
        on_turn: Callable[[TurnResult], None] | None = None,
    ) -> None:
        if session.usage is None or session.latency is None:
            raise gl.ConfigError("the CLI needs a session with metrics=True")
        self.session = session
        self.timeline = timeline
        # The session keeps the meter and the tracker; the CLI only reads them.
        self.meter: UsageMeter = session.usage
        self.tracker: LatencyTracker = session.latency
        self.keep_audio = keep_audio
        self.on_event = on_event
        self.on_turn = on_turn
        self.current = TurnResult()
        self.last: TurnResult | None = None
        self.turns: list[TurnResult] = []
        self.resumed = asyncio.Event()
        self.go_aways = 0
        self.ended = asyncio.Event()
        self.error: BaseException | None = None
        self._waiters: list[asyncio.Future[TurnResult]] = []
        self._task: asyncio.Task[None] | None = None
        self._events = session.events()  # subscribe now: nothing can slip through

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Conversation:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cli-events")
        return self

    async def aclose(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Conversation:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self) -> None:
        try:
            async for event in self._events:
                self._handle(event)
        except Exception as exc:  # a session error, or a printer that failed (closed pipe)
            self.error = exc
        finally:
            self.ended.set()
            for w in self._waiters:
                if not w.done():
                    w.set_exception(self._ended_error())

    def _ended_error(self) -> BaseException:
        if self.error is not None:
            return self.error
        return gl.errors.SessionClosedError("the session ended")

    # -- input ----------------------------------------------------------------------------

    def expect_turn(self) -> asyncio.Future[TurnResult]:
        """A future for the next completed model turn (register it before sending)."""
        fut: asyncio.Future[TurnResult] = asyncio.get_running_loop().create_future()
        if self.ended.is_set():
            fut.set_exception(self._ended_error())
        else:
            self._waiters.append(fut)
        return fut

    async def wait(self, fut: asyncio.Future[TurnResult], seconds: float) -> TurnResult:
        """Wait (at most ``seconds``) for a turn registered with :meth:`expect_turn`."""
        try:
            async with asyncio.timeout(seconds):
                return await fut
        except TimeoutError:
            raise TimeoutError(f"no complete model turn within {seconds:g} s") from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    async def send_text(self, text: str, *, seconds: float) -> TurnResult:
        """Send ``text`` and wait for the model's complete answer."""
        fut = self.expect_turn()
        await self.session.send_text(text)
        return await self.wait(fut, seconds)

    # -- events ---------------------------------------------------------------------------

    def _handle(self, event: ev.Event) -> None:
        cur = self.current
        if isinstance(event, ev.ModelAudio):
            cur.audio_chunks += 1
            cur.audio_bytes += len(event.data)
            cur.sample_rate = event.sample_rate
            if self.keep_audio:
                cur.audio += event.data
        elif isinstance(event, ev.OutputTranscription):
            cur.transcript += event.text
        elif isinstance(event, ev.ModelText):
            if not event.thought:
                cur.model_text += event.text
        elif isinstance(event, ev.InputTranscription):
            if not event.interim:
                cur.input_text += event.text
        elif isinstance(event, ev.ToolCall):
            cur.tool_calls.extend(c.name for c in event.calls if isinstance(c.name, str))
        elif isinstance(event, ev.Interrupted):
            cur.interrupted = True
        elif isinstance(event, ev.GoAway):
            self.go_aways += 1
        elif isinstance(event, ev.Resumed):
            self.resumed.set()
        if self.on_event is not None:
            self.on_event(event)
        # A reply is a whole interaction: a turnComplete with IN_PROGRESS (3.8 Extended
        # Thinking fillers) is not its end; IDLE / no status / the watchdog's timeout is.
        if (isinstance(event, ev.TurnComplete) and event.interaction_done) or isinstance(
            event, ev.InteractionTimeout
        ):
            self._turn_complete()

    def _turn_complete(self) -> None:
        cur = self.current
        if cur.tool_calls and not (cur.audio_bytes or cur.text or cur.interrupted):
            return  # a turn that only asked for a tool: the answer comes later
        cur.latency = self.tracker.last_turn
        cur.usage = self.meter.last_turn  # updated in place by a trailing usage snapshot
        self.last = cur
        self.turns.append(cur)
        self.current = TurnResult()
        if self.on_turn is not None:
            self.on_turn(cur)
        for w in self._waiters:
            if not w.done():
                w.set_result(cur)

    def in_progress(self) -> bool:
        """The model has started a reply that is not complete yet."""
        cur = self.current
        return bool(cur.audio_bytes or cur.text or cur.tool_calls)

    # -- reports --------------------------------------------------------------------------

    def usage_lines(self) -> list[str]:
        last = self.meter.last_turn
        lines = []
        if last is not None:
            lines.append(f"usage, last turn: {last.tokens.summary()}")
        n = len(self.meter.turns)
        turns = "1 turn" if n == 1 else f"{n} turns"
        lines.append(f"usage, session ({turns}): {self.meter.session.summary()}")
        return lines

    def latency_lines(self) -> list[str]:
        return [f"turn {t.index}: {t.summary()}" for t in self.tracker.turns]
