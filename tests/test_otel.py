"""OpenTelemetry spans and metrics, asserted with the SDK's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.loopmon import LoopMonitor
from gemini_live.otel import LiveTelemetry
from gemini_live.testing import FakeLiveServer, ToolScript
from gemini_live.tools import ToolRegistry


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.telemetry = LiveTelemetry(
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
        )

    def finished(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith(prefix)]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) for every data point of metric ``name``."""
        data = self.reader.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
        return out


@pytest.fixture
def otel() -> Otel:
    return Otel()


async def until(stream: AsyncIterator[ev.Event], match: Callable[[ev.Event], bool]) -> None:
    async with asyncio.timeout(10):
        async for event in stream:
            if match(event):
                return
    raise AssertionError("the stream ended first")


async def test_connect_turns_and_token_metrics(otel: Otel) -> None:
    async with (
        FakeLiveServer() as server,
        otel.telemetry.connect(url=server.url, model="gemini-test-live") as session,
    ):
        stream = session.events()
        for text in ("hello", "again"):
            await session.send_text(text)
            await until(stream, lambda e: isinstance(e, ev.TurnComplete))
        await until(stream, lambda e: isinstance(e, ev.Usage))  # usage follows turnComplete
        await asyncio.sleep(0)  # one loop turn: the span ends after the frame (call_soon)
        assert len(otel.finished("chat ")) == 2
        assert otel.points("gemini_live.sessions.active")[0][1].value == 1

    [connect] = otel.finished("connect ")
    assert connect.name == "connect gemini-test-live"
    assert connect.attributes is not None
    assert connect.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert connect.attributes["gen_ai.request.model"] == "gemini-test-live"
    assert connect.attributes["gen_ai.conversation.id"] == session.session_id

    [live] = otel.finished("live_session ")
    turns = otel.finished("chat ")
    for turn in turns:
        assert turn.parent is not None and turn.parent.span_id == live.context.span_id
        a: dict[str, Any] = dict(turn.attributes or {})
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gemini_live.turn.interrupted"] is False
        assert a["gemini_live.turn.audio_bytes"] > 0
        assert 0 <= a["gemini_live.turn.time_to_first_audio"] <= 10
        assert (
            a["gemini_live.turn.time_to_first_audio"] <= a["gemini_live.turn.time_to_turn_complete"]
        )
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert live.attributes is not None and live.attributes["gemini_live.connects"] == 1

    tokens = otel.points("gen_ai.client.token.usage")
    kinds = {(attrs["gen_ai.token.type"], attrs.get("gemini_live.modality")) for attrs, _ in tokens}
    assert ("output", "AUDIO") in kinds, kinds  # by modality when the service details it
    assert ("input", None) in kinds, kinds  # the fake gives no prompt details: the total
    [(_, duration)] = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 2
    first = {
        a["gemini_live.output"]: p.count
        for a, p in otel.points("gen_ai.client.operation.time_to_first_chunk")
    }
    assert first["audio"] == 2
    assert otel.points("gemini_live.sessions.active")[0][1].value == 0


async def test_go_away_is_a_reconnect_span_with_its_cause(otel: Otel) -> None:
    async with FakeLiveServer() as server, gl.connect(url=server.url) as session:
        otel.telemetry.instrument(session)
        stream = session.events()
        await session.send_text("hi")  # a turn, so that the server hands out a handle
        await until(stream, lambda e: isinstance(e, ev.SessionResumptionUpdate) and e.resumable)
        await server.send_go_away(time_left=0.5)
        await until(stream, lambda e: isinstance(e, ev.Resumed))
    [span] = otel.finished("reconnect")
    assert span.attributes is not None
    assert span.attributes["gemini_live.reconnect.cause"] == "go_away"
    assert span.attributes["gemini_live.reconnect.state_restored"] is True
    assert span.events[0].name == "attempt"
    [(attrs, point)] = otel.points("gemini_live.reconnects")
    assert (attrs["gemini_live.reconnect.cause"], point.value) == ("go_away", 1)


async def test_an_abrupt_drop_is_a_reconnect_span(otel: Otel) -> None:
    async with FakeLiveServer(auto_reply=False) as server, gl.connect(url=server.url) as session:
        otel.telemetry.instrument(session)
        stream = session.events()
        await session.send_text("this frame has no answer yet")
        await server.wait_for_messages(2)  # setup + text
        await server.drop()
        await until(stream, lambda e: isinstance(e, ev.Resumed))
        await server.wait_for_messages(2, connection=1)  # the text is written again
    [span] = otel.finished("reconnect")
    assert span.attributes is not None
    assert span.attributes["gemini_live.reconnect.cause"] == "connection_lost"
    # nothing is at risk: the unanswered text was kept and re-sent
    assert session.stats.frames_at_risk == 0
    assert otel.points("gemini_live.frames_at_risk") == []


async def test_frames_dropped_from_the_resend_window_are_counted(otel: Otel) -> None:
    async with (
        FakeLiveServer(auto_reply=False) as server,
        gl.connect(url=server.url, resend=gl.ResendWindow(audio_seconds=0.04)) as session,
    ):
        otel.telemetry.instrument(session)
        stream = session.events()
        for _ in range(5):
            await session.send_audio(bytes(640))  # 20 ms each: 3 fall out of the window
        await server.wait_for_messages(6)
        await server.drop()
        await until(stream, lambda e: isinstance(e, ev.Resumed))
    [(_, risk)] = otel.points("gemini_live.frames_at_risk")
    assert risk.value == session.stats.frames_at_risk == 3


async def test_tool_calls_are_spans_ended_by_the_answer(otel: Otel) -> None:
    registry = ToolRegistry()

    @registry.tool
    async def get_weather(city: str) -> dict[str, Any]:
        """Weather for a city."""
        return {"city": city, "temperature_c": 15}

    triggers = {"weather": ToolScript("get_weather", {"city": "Paris"})}
    async with FakeLiveServer(tool_triggers=triggers) as server:
        traced = otel.telemetry.connect(url=server.url, tools=registry.tools())
        async with traced as session:
            recorder = traced.recorder
            assert recorder is not None and recorder.session is session
            stream = session.events()
            async with session.run_tools(registry, on_result=recorder.on_tool_result):
                await session.send_text("what's the weather?")
                await until(stream, lambda e: isinstance(e, ev.ToolCall))
                await until(
                    stream,
                    lambda e: (
                        isinstance(e, ev.TurnComplete) and bool(otel.finished("execute_tool"))
                    ),
                )
    [tool] = otel.finished("execute_tool ")
    assert tool.name == "execute_tool get_weather"
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "get_weather"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert "gen_ai.tool.call.id" in tool.attributes
    assert "gemini_live.tool.elapsed" in tool.attributes  # ended by on_tool_result
    assert otel.points("gemini_live.tool_calls")[0][1].value == 1


async def test_an_interrupted_turn_is_flagged(otel: Otel) -> None:
    async with FakeLiveServer(auto_reply=False) as server, gl.connect(url=server.url) as session:
        otel.telemetry.instrument(session)
        stream = session.events()
        await session.send_text("talk for a long time")
        await server.wait_for_messages(2)
        await server.send(b'{"serverContent": {"interrupted": true}}')
        await server.send(b'{"serverContent": {"turnComplete": true}}')
        await until(stream, lambda e: isinstance(e, ev.TurnComplete))
        await asyncio.sleep(0)  # the span ends one loop turn after the frame
        [turn] = otel.finished("chat ")
    assert turn.attributes is not None and turn.attributes["gemini_live.turn.interrupted"] is True


async def test_a_failed_connect_is_an_error_span(otel: Otel) -> None:
    async with FakeLiveServer(reject_setup=(1008, "bad model")) as server:
        with pytest.raises(gl.GeminiLiveError):
            await otel.telemetry.connect(url=server.url)
    [span] = otel.finished("connect ")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and "error.type" in span.attributes
    assert otel.finished("live_session") == []


async def test_loop_stalls_become_metrics(otel: Otel) -> None:
    seen = asyncio.Event()
    async with LoopMonitor(interval=0.02, threshold=0.05, log=False) as monitor:
        otel.telemetry.instrument_loop(monitor)
        monitor.add_listener(lambda stall: seen.set())
        time.sleep(0.2)  # noqa: ASYNC251 - a deliberate stall of the loop
        async with asyncio.timeout(5):
            await seen.wait()
    [(_, stalls)] = otel.points("gemini_live.loop.stalls")
    [(_, duration)] = otel.points("gemini_live.loop.stall.duration")
    assert stalls.value == 1 and duration.count == 1 and duration.sum >= 0.1


def test_importing_the_library_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, gemini_live, gemini_live.cli, gemini_live.testing;"
        "sys.exit(1 if any(m.startswith('opentelemetry') for m in sys.modules) else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    assert r.returncode == 0, "opentelemetry was imported without gemini_live.otel"


async def test_a_turn_cut_short_by_close_is_marked_incomplete(otel: Otel) -> None:
    part = b'{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAAA"}}'
    audio = b'{"serverContent": {"modelTurn": {"parts": [' + part + b"]}}}"
    async with FakeLiveServer(auto_reply=False) as server, gl.connect(url=server.url) as session:
        recorder = otel.telemetry.instrument(session)
        stream = session.events()
        await session.send_text("start talking")
        await server.wait_for_messages(2)
        await server.send(audio)
        await until(stream, lambda e: isinstance(e, ev.ModelAudio))
        assert "recording" in repr(recorder)
    assert "ended" in repr(recorder)
    [turn] = otel.finished("chat ")
    assert turn.attributes is not None
    assert turn.attributes["gemini_live.turn.incomplete"] is True
    assert turn.attributes["gemini_live.turn.audio_bytes"] == 3
    [live] = otel.finished("live_session ")
    assert live.attributes is not None and live.attributes["gemini_live.connects"] == 1
    assert otel.points("gemini_live.sessions.active")[0][1].value == 0


async def test_detach_stops_recording(otel: Otel) -> None:
    async with FakeLiveServer() as server, gl.connect(url=server.url) as session:
        recorder = otel.telemetry.instrument(session)
        recorder.detach()
        recorder.detach()  # idempotent
        stream = session.events()
        await session.send_text("hi")
        await until(stream, lambda e: isinstance(e, ev.TurnComplete))
    assert otel.finished("chat ") == []
    assert len(otel.finished("live_session ")) == 1
    assert otel.points("gemini_live.sessions.active")[0][1].value == 0
