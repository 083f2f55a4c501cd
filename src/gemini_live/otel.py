"""OpenTelemetry traces and metrics for Live sessions (``pip install 'gemini-live[otel]'``).

Nothing here runs, and :mod:`opentelemetry` is not even imported, unless you import this
module: the session core knows nothing about it. Telemetry attaches to a session through
its public ``session.on_event(callback)`` hook and reads ``session.stats``,
``session.usage`` and ``session.latency``::

    import gemini_live as gl
    from gemini_live.otel import LiveTelemetry

    telemetry = LiveTelemetry()          # the global tracer and meter providers by default
    async with telemetry.connect(model="gemini-3.8-live") as session:
        ...                              # spans and metrics flow while the session runs

or, for a session opened elsewhere, ``telemetry.instrument(session)``.

Spans (``gen_ai.*`` semantic-convention attributes where they exist):

* ``connect {model}``: opening the WebSocket and the setup handshake (only with
  :meth:`LiveTelemetry.connect`);
* ``live_session {model}``: the whole session, parent of the others
  (``gen_ai.conversation.id`` is the session id);
* ``chat {model}``: one model turn, from the end of the user's input (when the session
  keeps metrics) to ``turnComplete``; attributes ``gemini_live.turn.time_to_first_audio``
  / ``..._text`` (seconds), ``gemini_live.turn.interrupted``, token usage;
* ``execute_tool {name}``: from the model's call to the answer (pass
  :meth:`SessionTelemetry.on_tool_result` as ``run_tools(..., on_result=...)`` for the
  exact end; otherwise it ends when the model continues), or its cancellation;
* ``reconnect``: from ``Reconnecting`` to ``Resumed`` (or the end), with the cause.

Metrics: ``gen_ai.client.token.usage`` (histogram per turn, by ``gen_ai.token.type`` and
``gemini_live.modality``), ``gen_ai.client.operation.duration`` (turn latency to
``turnComplete``), ``gen_ai.client.operation.time_to_first_chunk`` (first audio or text,
``gemini_live.output``), ``gemini_live.sessions.active``, ``gemini_live.reconnects``
(by ``gemini_live.reconnect.cause``: ``go_away`` or ``connection_lost``),
``gemini_live.frames_at_risk``, ``gemini_live.tool_calls``; with
:meth:`LiveTelemetry.instrument_loop`, ``gemini_live.loop.stalls`` and
``gemini_live.loop.stall.duration``.

Content (text, audio, tool arguments and results) is never recorded: only sizes, counts,
names and timings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

import gemini_live as gl
from gemini_live import events as ev
from gemini_live._version import __version__

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from gemini_live.loopmon import LoopMonitor, LoopStall
    from gemini_live.types import FunctionCall, FunctionResponse

__all__ = ["LiveTelemetry", "SessionTelemetry"]

SCOPE = "gemini_live"

# gen_ai semantic conventions (attribute and metric names)
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
CONVERSATION_ID = "gen_ai.conversation.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"

_MODEL_ACTIVITY = (ev.ModelAudio, ev.ModelText, ev.OutputTranscription, ev.ModelPart)
_TURN_ACTIVITY = (*_MODEL_ACTIVITY, ev.ToolCall, ev.Interrupted, ev.GenerationComplete)


def _provider(session: gl.Session) -> str:
    api = session.config.transport.endpoint.api
    return "gcp.vertex_ai" if api == "vertex" else "gcp.gemini"


def _model(session: gl.Session) -> str:
    return session.setup.model.rsplit("/", 1)[-1]


def _ns_at(monotonic_t: float) -> int:
    """A ``time.monotonic()`` instant as wall-clock nanoseconds (span timestamps)."""
    return time.time_ns() - int((time.monotonic() - monotonic_t) * 1e9)


def _cause_kind(cause: str) -> str:
    return "go_away" if cause.startswith("goAway") else "connection_lost"


class LiveTelemetry:
    """Creates the tracer and the instruments once; instruments any number of sessions.

    Args:
        tracer_provider: Default: the global one (``opentelemetry.trace``).
        meter_provider: Default: the global one (``opentelemetry.metrics``).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.meter = meter
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per turn"
        )
        self.turn_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="From the end of the user's input to turnComplete",
        )
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="From the end of the user's input to the first audio or text",
        )
        self.active_sessions = meter.create_up_down_counter(
            "gemini_live.sessions.active", unit="{session}", description="Open sessions"
        )
        self.reconnects = meter.create_counter(
            "gemini_live.reconnects", unit="{reconnect}", description="Connections replaced"
        )
        self.frames_at_risk = meter.create_counter(
            "gemini_live.frames_at_risk",
            unit="{frame}",
            description="Frames sent on connections that were then cut (may be lost)",
        )
        self.tool_calls = meter.create_counter(
            "gemini_live.tool_calls", unit="{call}", description="Tool calls from the model"
        )
        self._loop_stalls: metrics.Counter | None = None
        self._loop_stall_duration: metrics.Histogram | None = None

    def __repr__(self) -> str:
        return f"<LiveTelemetry scope={SCOPE!r} version={__version__}>"

    def instrument(self, session: gl.Session) -> SessionTelemetry:
        """Start recording ``session`` (call right after it connected)."""
        return SessionTelemetry(self, session)

    def connect(
        self, config: object = None, **options: Unpack[gl.ConnectOptions]
    ) -> _TracedConnect:
        """Like :func:`gemini_live.connect` (same arguments), inside a ``connect`` span,
        then instrumented."""
        return _TracedConnect(self, config, **options)

    def instrument_loop(self, monitor: LoopMonitor) -> Callable[[], None]:
        """Export a :class:`~gemini_live.loopmon.LoopMonitor`'s stalls; returns an undo."""
        if self._loop_stalls is None or self._loop_stall_duration is None:
            self._loop_stalls = self.meter.create_counter(
                "gemini_live.loop.stalls", unit="{stall}", description="Event-loop stalls"
            )
            self._loop_stall_duration = self.meter.create_histogram(
                "gemini_live.loop.stall.duration",
                unit="s",
                description="How long the event loop was blocked",
            )
        stalls, duration = self._loop_stalls, self._loop_stall_duration

        def on_stall(stall: LoopStall) -> None:
            stalls.add(1)
            duration.record(stall.lag)

        return monitor.add_listener(on_stall)


class _TracedConnect(gl.connect):
    """``await telemetry.connect(...)`` or ``async with telemetry.connect(...)``: the same as
    :func:`gemini_live.connect`, inside a ``connect {model}`` span, then instrumented."""

    def __init__(
        self, telemetry: LiveTelemetry, config: object = None, **options: Unpack[gl.ConnectOptions]
    ) -> None:
        super().__init__(config, **options)
        self._telemetry = telemetry
        #: The session's recorder once connected (e.g. for ``recorder.on_tool_result``).
        self.recorder: SessionTelemetry | None = None

    async def _open(self) -> gl.Session:
        config = self._config
        model = config.setup.model.rsplit("/", 1)[-1]
        api = config.transport.endpoint.api
        attributes = {
            OPERATION: "connect",
            PROVIDER: "gcp.vertex_ai" if api == "vertex" else "gcp.gemini",
            REQUEST_MODEL: model,
        }
        with self._telemetry.tracer.start_as_current_span(
            f"connect {model}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            try:
                session = await super()._open()
            except gl.GeminiLiveError as exc:
                span.set_attribute(ERROR_TYPE, type(exc).__name__)
                raise
            if session.session_id:
                span.set_attribute(CONVERSATION_ID, session.session_id)
        self.recorder = self._telemetry.instrument(session)
        return session


class SessionTelemetry:
    """The spans and metrics of one session; created by :meth:`LiveTelemetry.instrument`."""

    def __init__(self, telemetry: LiveTelemetry, session: gl.Session) -> None:
        self.telemetry = telemetry
        self.session = session
        self.model = _model(session)
        self._base = {PROVIDER: _provider(session), REQUEST_MODEL: self.model}
        attributes: dict[str, str] = {**self._base, OPERATION: "chat"}
        if session.session_id:
            attributes[CONVERSATION_ID] = session.session_id
        self.span = telemetry.tracer.start_span(
            f"live_session {self.model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        self._context = trace.set_span_in_context(self.span)
        self._turn: Span | None = None
        self._turn_audio = 0
        self._turn_interrupted = False
        self._turn_usage: ev.Usage | None = None
        self._turn_index: int | None = None
        self._finishing = False
        self._tools: dict[str, Span] = {}
        self._reconnect: Span | None = None
        self._frames_at_risk = session.stats.frames_at_risk
        self._ended = False
        telemetry.active_sessions.add(1, self._base)
        self._remove = session.on_event(self._on_event)

    def __repr__(self) -> str:
        state = "ended" if self._ended else "recording"
        return f"<SessionTelemetry {state} model={self.model!r}>"

    def detach(self) -> None:
        """Stop recording: open spans end now, the session no longer counts as active."""
        self._end("detached")

    # -- events -----------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ModelAudio):  # the hot path: one check, two additions
            if self._turn is None or self._finishing:
                self._start_turn()
            self._turn_audio += len(event.data)
            if self._tools:
                self._end_tools("model continued")
            return
        if isinstance(event, _TURN_ACTIVITY):
            if self._turn is None or self._finishing:
                self._start_turn()
            if isinstance(event, ev.ToolCall):
                self._start_tools(event)
            elif isinstance(event, ev.Interrupted):
                self._turn_interrupted = True
            elif self._tools:
                self._end_tools("model continued")
        elif isinstance(event, ev.TurnComplete):
            if self._turn is None:
                self._start_turn()
            if event.reason and self._turn is not None:
                self._turn.set_attribute(FINISH_REASONS, [event.reason])
            if not self._finishing and self._turn is not None:
                # Usage follows turnComplete in the same frame: finish after the frame.
                self._finishing = True
                asyncio.get_running_loop().call_soon(self._finish_turn, self._turn)
        elif isinstance(event, ev.Usage):
            self._turn_usage = event
        elif isinstance(event, ev.ToolCallCancellation):
            for call_id in event.ids:
                span = self._tools.pop(call_id, None)
                if span is not None:
                    span.set_attribute("gemini_live.tool.cancelled", True)
                    span.set_status(Status(StatusCode.ERROR, "cancelled by the server"))
                    span.end()
        elif isinstance(event, ev.Reconnecting):
            self._on_reconnecting(event)
        elif isinstance(event, ev.Resumed):
            self._on_resumed(event)
        elif isinstance(event, ev.Closed):
            self._end("closed", event)

    # -- turns ------------------------------------------------------------------------

    def _start_turn(self) -> None:
        if self._finishing and self._turn is not None:
            self._finish_turn(self._turn)  # the next frame came before the loop turned
        start: int | None = None
        tracker = self.session.latency
        pending = tracker.pending if tracker is not None else None
        self._turn_index = pending.index if pending is not None else None
        if pending is not None and pending.input_end is not None:
            start = _ns_at(pending.input_end)
        self._turn = self.telemetry.tracer.start_span(
            f"chat {self.model}",
            context=self._context,
            kind=SpanKind.CLIENT,
            attributes={**self._base, OPERATION: "chat"},
            start_time=start,
        )
        self._turn_audio = 0
        self._turn_interrupted = False
        self._turn_usage = None

    def _finish_turn(self, span: Span) -> None:
        if span is not self._turn:
            return  # already finished
        self._finishing = False
        self._turn = None
        t = self.telemetry
        span.set_attribute("gemini_live.turn.interrupted", self._turn_interrupted)
        span.set_attribute("gemini_live.turn.audio_bytes", self._turn_audio)
        attrs = {**self._base, OPERATION: "chat"}
        tracker = self.session.latency
        lat = tracker.last_turn if tracker is not None else None
        if lat is not None and lat.index == self._turn_index and lat.turn_complete is not None:
            for name, value, output in (
                ("gemini_live.turn.time_to_first_audio", lat.time_to_first_audio, "audio"),
                ("gemini_live.turn.time_to_first_text", lat.time_to_first_text, "text"),
            ):
                if value is not None:
                    span.set_attribute(name, value)
                    t.time_to_first_chunk.record(value, {**attrs, "gemini_live.output": output})
            done = lat.time_to_turn_complete
            if done is not None:
                span.set_attribute("gemini_live.turn.time_to_turn_complete", done)
                t.turn_duration.record(done, attrs)
        self._record_tokens(span, attrs)
        if self._tools:
            self._end_tools("turn complete")
        span.end()

    def _record_tokens(self, span: Span, attrs: dict[str, str]) -> None:
        meter = self.session.usage
        usage = meter.last_turn if meter is not None else None
        histogram = self.telemetry.token_usage
        if usage is not None:
            tokens = usage.tokens
            span.set_attribute(INPUT_TOKENS, tokens.prompt)
            span.set_attribute(OUTPUT_TOKENS, tokens.response)
            for kind, total, by in (
                ("input", tokens.prompt, tokens.prompt_by_modality),
                ("output", tokens.response, tokens.response_by_modality),
            ):
                if by:
                    for modality, n in by.items():
                        histogram.record(
                            n, {**attrs, TOKEN_TYPE: kind, "gemini_live.modality": modality}
                        )
                elif total:
                    histogram.record(total, {**attrs, TOKEN_TYPE: kind})
        elif self._turn_usage is not None:
            m = self._turn_usage.metadata
            prompt = m.prompt_token_count if isinstance(m.prompt_token_count, int) else 0
            response = m.response_tokens() or 0
            span.set_attribute(INPUT_TOKENS, prompt)
            span.set_attribute(OUTPUT_TOKENS, response)
            histogram.record(prompt, {**attrs, TOKEN_TYPE: "input"})
            histogram.record(response, {**attrs, TOKEN_TYPE: "output"})

    # -- tools ------------------------------------------------------------------------

    def _start_tools(self, event: ev.ToolCall) -> None:
        parent = trace.set_span_in_context(self._turn) if self._turn else self._context
        for call in event.calls:
            name = call.name if isinstance(call.name, str) else "?"
            attributes = {**self._base, OPERATION: "execute_tool", TOOL_NAME: name}
            attributes[TOOL_TYPE] = "function"
            if isinstance(call.id, str):
                attributes[TOOL_CALL_ID] = call.id
            span = self.telemetry.tracer.start_span(
                f"execute_tool {name}",
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
            )
            self.telemetry.tool_calls.add(1, {**self._base, TOOL_NAME: name})
            key = call.id if isinstance(call.id, str) else f"{name}#{len(self._tools)}"
            self._tools[key] = span

    def on_tool_result(
        self, call: FunctionCall, response: FunctionResponse, elapsed: float
    ) -> None:
        """End a tool span when its answer is sent: ``run_tools(..., on_result=this)``."""
        key = call.id if isinstance(call.id, str) else None
        span = self._tools.pop(key, None) if key is not None else None
        if span is None:
            return
        span.set_attribute("gemini_live.tool.elapsed", elapsed)
        result = response.response
        if isinstance(result, dict) and "error" in result:
            span.set_status(Status(StatusCode.ERROR, "the tool reported an error"))
            span.set_attribute(ERROR_TYPE, "tool_error")
        span.end()

    def _end_tools(self, why: str) -> None:
        for span in self._tools.values():
            span.set_attribute("gemini_live.tool.ended_by", why)
            span.end()
        self._tools.clear()

    # -- reconnects and the end -------------------------------------------------------

    def _book_frames_at_risk(self) -> None:
        now = self.session.stats.frames_at_risk
        if now > self._frames_at_risk:
            self.telemetry.frames_at_risk.add(now - self._frames_at_risk, self._base)
            if self._reconnect is not None:
                self._reconnect.set_attribute(
                    "gemini_live.frames_at_risk", now - self._frames_at_risk
                )
        self._frames_at_risk = now

    def _on_reconnecting(self, event: ev.Reconnecting) -> None:
        kind = _cause_kind(event.cause)
        if self._reconnect is None:
            self._reconnect = self.telemetry.tracer.start_span(
                "reconnect",
                context=self._context,
                kind=SpanKind.INTERNAL,
                attributes={
                    **self._base,
                    "gemini_live.reconnect.cause": kind,
                    "gemini_live.reconnect.reason": event.cause,
                },
            )
            self.telemetry.reconnects.add(1, {**self._base, "gemini_live.reconnect.cause": kind})
        self._reconnect.add_event(
            "attempt", {"gemini_live.reconnect.attempt": event.attempt, "delay_s": event.delay}
        )
        self._reconnect.set_attribute("gemini_live.reconnect.attempts", event.attempt)

    def _on_resumed(self, event: ev.Resumed) -> None:
        span = self._reconnect
        self._book_frames_at_risk()
        if span is not None:
            span.set_attribute("gemini_live.reconnect.state_restored", event.state_restored)
            span.end()
            self._reconnect = None

    def _end(self, why: str, closed: ev.Closed | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._remove()
        self._book_frames_at_risk()
        if self._tools:
            self._end_tools(why)
        if self._turn is not None and self._finishing:
            self._finish_turn(self._turn)  # complete; only its end was still scheduled
        if self._turn is not None:
            self._turn.set_attribute("gemini_live.turn.incomplete", True)
            self._turn.set_attribute("gemini_live.turn.interrupted", self._turn_interrupted)
            self._turn.set_attribute("gemini_live.turn.audio_bytes", self._turn_audio)
            self._turn.end()
            self._turn = None
        if self._reconnect is not None:
            self._reconnect.set_status(Status(StatusCode.ERROR, "the session ended"))
            self._reconnect.end()
            self._reconnect = None
        if closed is not None and closed.code is not None:
            self.span.set_attribute("gemini_live.close.code", closed.code)
        error = self.session.error
        if error is not None:
            self.span.set_attribute(ERROR_TYPE, type(error).__name__)
            self.span.set_status(Status(StatusCode.ERROR, str(error)))
        stats = self.session.stats
        self.span.set_attribute("gemini_live.connects", stats.connects)
        self.span.set_attribute("gemini_live.reconnects", stats.reconnects)
        self.span.end()
        self.telemetry.active_sessions.add(-1, self._base)
