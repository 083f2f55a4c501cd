"""``FakeLiveServer``: the scripted Live API core behind a real WebSocket server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Unpack

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gemini_live.auth import GEMINI_PATH_FMT, VERTEX_PATH_FMT
from gemini_live.errors import CASSETTE_DIVERGED, CassetteDivergence, CassetteError
from gemini_live.testing._canned import parse_path
from gemini_live.testing._cassette_file import GOOGLE_BASE
from gemini_live.testing._cassette_read import Cassette
from gemini_live.testing._cassette_record import RecordingProxy
from gemini_live.testing._connection import ServerConn, ServerConnectionClosed
from gemini_live.testing._core import LiveServerCore, _ConnectionLogic
from gemini_live.testing._memory import MemoryBackend
from gemini_live.testing._records import ConnectionRecord, ServerOptions, ServerOptionsKw
from gemini_live.testing._replay import _ReplayLogic
from gemini_live.transport import _library_logger

__all__ = [
    "CASSETTE_MODES",
    "CassetteMode",
    "FakeLiveServer",
    "Missing",
    "set_cassette_mode",
    "use_cassette",
]


class _WsServerConn:
    """The server end of a ``websockets`` connection (implements ``ServerConn``)."""

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data)  # bytes -> a binary frame, as the real service sends
        except ConnectionClosed:
            raise ServerConnectionClosed from None

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)

    def abort(self) -> None:
        self._ws.transport.abort()  # no close frame: the client sees 1006


class FakeLiveServer(LiveServerCore):
    """A local Gemini Live API server for tests, scripted and deterministic.

    It listens on ``127.0.0.1`` on a free port and speaks the *server* side of the
    protocol, every frame a binary WebSocket frame as the real service sends them::

        async with FakeLiveServer(require_api_key="k") as server:
            ...connect a client to server.url with header x-goog-api-key: k...
            await server.wait_for_messages(2)
            server.received          # every decoded client message, per connection

    The same scripted behaviour is also reachable without sockets through
    :meth:`memory_backend`.

    Options:

    * ``require_api_key``: Gemini API key, accepted from the ``x-goog-api-key`` header or a
      ``?key=`` query parameter. A wrong or missing key closes 1007 "API key not valid...";
      an ephemeral token on the plain method closes 1008 "Method doesn't allow unregistered
      callers...".
    * ``require_token``: ephemeral token for the ``BidiGenerateContentConstrained`` path,
      from ``Authorization: Token <t>`` or ``?access_token=``; bad -> 1007 "Missing or
      malformed auth token...".
    * ``require_bearer``: OAuth token for the Vertex path (``Authorization: Bearer <t>``);
      bad -> 1007 "Request had invalid authentication credentials." (``require_api_key``
      also opens the Vertex path, as express mode does.) With no ``require_*`` at all,
      every client is accepted.
    * ``auth_on_connect``: check credentials right after the upgrade instead of when the
      setup frame arrives (default: on setup, which is deterministic for clients).
    * ``resumable``: ``sessionResumptionUpdate`` says ``resumable: true`` with a new handle
      (default) or ``resumable: false`` without one. Updates are sent only when the setup
      had ``sessionResumption``: ``resumable: false`` when the model starts a reply (and
      while a reply is generated or a blocking tool call is pending), ``resumable: true``
      with a fresh handle at every turn end. A handle stands for the session state at the
      moment it was issued: resuming from it restores exactly that state, and every client
      message consumed after it is forgotten (history, user texts, audio, pending calls;
      see :meth:`conversation` and ``ConnectionRecord.consumed``). So a client that
      resumes from an old handle and does not re-send what it wrote since visibly loses it.
    * ``transparent``: honour ``setup.sessionResumption.transparent``: updates then carry
      ``lastConsumedClientMessageIndex`` (setup = 0, then 1, 2, ... per connection), as a
      JSON string like the real int64 (``int64_as_string=False`` sends a number). One is
      sent right after ``setupComplete`` and after every ``ack_every``-th client message
      (default: every message), each with a fresh handle unless the model is generating.
    * ``setup_delay``: seconds before ``setupComplete``; ``send_setup_complete=False``
      never answers the setup; ``reject_setup=(code, reason)`` closes instead.
    * ``reply_chunks``: audio frames per reply turn, each 40 ms of a 24 kHz PCM16 tone
      (:data:`~gemini_live.testing.TONE_PCM`), carrying one ``outputTranscription``
      fragment when the setup enabled output transcription.
    * ``chunk_interval``: seconds between two reply audio chunks. With ``chunk_interval > 0``
      replies are generated in the background, in order, so client messages (and goAway,
      barge-in, drops) are handled while a reply is still being sent.
    * ``paced_by_input``: replies to spoken turns play out in the client's audio time: the
      first chunk goes at once, each further 40 ms chunk once the client has streamed 40 ms
      more (as a microphone that keeps running does); after ``audioStreamEnd`` the rest
      goes at once. Deterministic barge-in tests, as fast as the client streams.
    * ``assumed_playback``: as the real service does, hold ``turnComplete`` after
      ``generationComplete`` until the reply's audio would have played at real time (wall
      clock, from the first chunk). Speech, ``activityStart`` or a new user text in that
      gap interrupts the turn (``interrupted: true``, ``turnComplete``) like one still
      being generated; the reply stays in the history (all of it was sent). For clients
      that play audio in real time (a browser page, a telephony bridge).
    * ``vad`` (default on): activity detection on the incoming PCM16, on audio time (sample
      counts, never wall time), honouring ``realtimeInputConfig``:
      ``automaticActivityDetection`` (``disabled`` -> only ``activityStart``/``activityEnd``
      delimit turns; ``startOfSpeechSensitivity`` HIGH/LOW -> 10 ms frame RMS above
      300/1000; ``prefixPaddingMs`` (default 30/100) of speech starts an utterance;
      ``silenceDurationMs`` (default 300, 800 for ``END_SENSITIVITY_LOW``) of silence ends
      it), ``activityHandling`` (``NO_INTERRUPTION`` turns barge-in off) and
      ``turnCoverage`` (``TURN_INCLUDES_ONLY_ACTIVITY``: the utterance is the speech;
      otherwise all audio since the previous turn). Each end of speech is one user turn:
      ``inputTranscription`` "<n> ms of audio" when enabled, then the reply. A stream in
      which no end of speech was detected is one utterance at ``audioStreamEnd``.
    * Barge-in: speech starting (or ``activityStart``, or a new user text turn) while the
      model is generating or has tool calls of its current response pending (unless
      ``activityHandling`` is ``NO_INTERRUPTION``): the reply stops, then
      ``interrupted: true``, ``toolCallCancellation`` for those calls, ``turnComplete``;
      only the part already sent stays in the history.
    * ``voice_activity``: send ``voiceActivity`` ACTIVITY_START / ACTIVITY_END with their
      ``audioOffset``; ``setup.explicitVadSignal`` gets ``voiceActivityDetectionSignal``
      SOS / EOS.
    * ``script``: a :class:`~gemini_live.testing.script.Script` of triggers (text, n-th
      utterance, audio length, turn number, tool result) and actions (reply with a tone or
      WAV, tool calls, wait, goAway, drop, close, usage, any frame, ``interactionStatus``);
      tried before ``tool_triggers``, which are one case of it.
    * ``responseModalities: ["TEXT"]`` replies with text parts. Model families are read
      from the capability table (:mod:`gemini_live.models`), and the setup is refused as
      the service refuses it even where the library's ``adapt_setup`` would have fixed
      it: a modality the family does not produce closes 1007 "The requested combination
      of response modalities (TEXT) is not supported by the model" (all speaking
      families); the wrong thinking knob, a missing required ``thinkingLevel`` (3.8
      Extended Thinking), a tool ``behavior`` the family does not accept
      (``NON_BLOCKING`` on 3.1, ``BLOCKING`` on Extended Thinking) and
      ``proactiveAudio: false`` on 3.8 close 1007 "Request contains an invalid
      argument.". After the setup, ``clientContent`` other than initial history (3.1),
      ``contextUpdate`` (2.5, 3.1), ``mediaChunks`` (3.1) and a function response with
      ``scheduling`` or ``willContinue`` (3.1; unverified: the service's answer is not
      documented) close 1007 the same way.
      Facts the table marks unverified are never refused; unknown models never are.
    * ``cassette`` / :meth:`replay`: play a recorded session back (``replay_timing`` keeps
      the recorded gaps, capped at 2 s).
    * ``port``: listen on this port instead of a free one.
    * ``go_away_after_messages`` (client messages after setup; 0 = right after
      ``setupComplete``) / ``go_away_after_seconds``: send ``goAway`` with
      ``timeLeft = go_away_time_left``. As the service does, the connection keeps being
      served after the ``goAway`` (replies, handles) until ``timeLeft`` runs out; if the
      client is still there then, it is closed with ``go_away_close``: 1000 "The operation
      was cancelled." (default) or e.g. ``(1011, DEADLINE_EXPIRED)`` ("Deadline expired
      before operation could complete.").
    * ``reject_resume_while_open``: a resume while another connection of the same session
      is still open is closed 1011 "Internal error encountered." (reported of the service;
      the exact reason text is unverified). Off by default.
    * ``latency``: seconds added before every server frame.
    * ``tool_triggers``: word (case-insensitive) in user text -> :class:`ToolScript`.
    * ``auto_reply``: answer user turns (text, ``clientContent`` with ``turnComplete``,
      audio ended by ``audioStreamEnd`` / ``activityEnd``) and tool results. With
      ``setup.historyConfig.initialHistoryInClientContent`` the first ``clientContent``
      messages up to the one with ``turnComplete`` are history only (no reply).
    * ``validate_frames``: check every outgoing frame with the official SDK's
      ``LiveServerMessage`` (test-only, needs ``google-genai``); failures are raised as
      ``AssertionError`` when the server exits (and by :meth:`check`).
    * ``record_frames`` (default on): keep raw client frames and sent frames on the
      records, at most ``max_recorded_frames`` per direction per connection (the oldest
      go first; ``record.frames_dropped`` counts them). The decoded input audio on
      ``record.audio`` is bounded by ``max_recorded_audio`` bytes (``audio_dropped``).
      ``keep_audio_payloads=False``: audio-only messages in ``received`` keep no payload.
      ``gemini-live fake-server`` keeps none of these unless ``--record-frames N``, so a
      server streamed to for hours holds only a few dozen bytes per message.
    * :meth:`reject_next_setups` closes the next n setups instead of answering them.
    * ``compression``: negotiate permessage-deflate (off by default); ``max_size``: the
      largest client frame accepted.

    Options can also be given as one :class:`~gemini_live.testing.ServerOptions`
    (``FakeLiveServer(opts, latency=0.05)`` overrides single fields); ``server.options``
    holds the effective ones.

    Reading what the model holds: :meth:`conversation` returns a
    :class:`~gemini_live.testing.Conversation` (user texts, milliseconds of input audio,
    answers, history and client messages of the current logical session, restored state
    included); :meth:`wait_for_conversation` waits until it satisfies a predicate.

    A question containing "what did I say" is answered from the session's history
    ("Earlier you said: <the previous user text>", or "nothing"): that is how a test sees
    whether a fresh session was seeded with the conversation.

    Reply turn (text "hi" -> reply text "You said: hi"): ``reply_chunks`` audio frames,
    then ``{"serverContent": {"generationComplete": true}}``, then ``turnComplete`` with
    cumulative ``usageMetadata`` in the same frame, then a ``sessionResumptionUpdate``.
    Audio turns first send ``inputTranscription`` "<n> ms of audio" (when enabled) and
    reply "I heard <n> ms of audio.". Tool results are spoken as
    ``"<name> returned <JSON of response.output>"``.

    Undecodable frames, a first frame that is not ``setup`` and a second ``setup`` close
    1007 "Request contains an invalid argument."; a ``toolResponse`` for an unknown id
    closes 1008 "Requested entity was not found."; resuming with an unknown or expired
    handle closes 1008 "BidiGenerateContent session not found". Client frames may use
    camelCase or snake_case keys and either base64 alphabet.
    """

    def __init__(
        self, options: ServerOptions | None = None, /, **overrides: Unpack[ServerOptionsKw]
    ) -> None:
        opts = options or ServerOptions()
        if overrides:
            opts = dataclasses.replace(opts, **overrides)
        super().__init__(opts)
        self._server: Server | None = None
        self._port: int | None = None
        self._memory: MemoryBackend | None = None

    @classmethod
    def replay(
        cls, cassette: Cassette | str | Path, /, **overrides: Unpack[ServerOptionsKw]
    ) -> FakeLiveServer:
        """A server that plays the server side of a recorded session back.

        Connection *n* replays the cassette's connection *n*. Client messages are matched
        loosely (kind and order; a run of audio chunks is one step whatever its chunking,
        and server frames recorded inside it are sent once as much audio has arrived).
        A client that departs from the recording is closed with 1007 "cassette replay
        diverged", and :attr:`divergences` (raised by :meth:`check`, so when the
        ``async with`` block exits) says where and how.
        """
        loaded = cassette if isinstance(cassette, Cassette) else Cassette.load(cassette)
        return cls(ServerOptions(cassette=loaded), **overrides)

    def _new_logic(self, conn: ServerConn, record: ConnectionRecord) -> _ConnectionLogic:
        if self.options.cassette is not None:
            return _ReplayLogic(self, conn, record, self.options.cassette)
        return super()._new_logic(conn, record)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeLiveServer:
        """Start listening (``async with`` does this)."""
        if self._server is not None:
            return self
        if self.validate_frames:
            from gemini_live.testing._oracle import _live_server_message

            _live_server_message()  # import google-genai now, not in the middle of a test
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            self.options.port,
            process_request=self._process_request,
            compression="deflate" if self.options.compression else None,
            ping_interval=None,
            max_size=self.options.max_size,
            close_timeout=2,
            # websockets logs request headers (credentials) at DEBUG: keep those out.
            logger=_library_logger("websockets.server"),
        )
        sockets = list(self._server.sockets)
        self._port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Close every connection (1001), stop listening and all timers. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        await self.shutdown_connections()
        if self._server is not None:
            self._server.close()
            async with asyncio.timeout(5):
                await self._server.wait_closed()
        if self._memory is not None:
            await self._memory.wait_idle()

    async def __aenter__(self) -> FakeLiveServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if exc_type is None:
            self.check()

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeLiveServer is not started (use `async with`)")
        return self._port

    @property
    def base_url(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Gemini API (v1beta) ``BidiGenerateContent`` URL."""
        return self.url_for()

    def url_for(
        self,
        kind: Literal["gemini", "constrained", "vertex"] = "gemini",
        version: str | None = None,
    ) -> str:
        """The URL of one endpoint kind; ``version`` defaults to v1beta (v1beta1 on Vertex)."""
        if kind == "vertex":
            return self.base_url + VERTEX_PATH_FMT.format(v=version or "v1beta1")
        path = GEMINI_PATH_FMT.format(v=version or "v1beta")
        if kind == "constrained":
            path += "Constrained"
        return self.base_url + path

    def memory_backend(self) -> MemoryBackend:
        """A transport backend (``name="memory"``) connecting in-process to this server."""
        if self._memory is None:
            self._memory = MemoryBackend(self)
        return self._memory

    # ------------------------------------------------------------------ websockets adapter

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if parse_path(request.path) is None:
            return connection.respond(404, "Not Found\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        # Not urlsplit: a path starting with "//" would be read as a network location.
        path, _, query_string = request.path.partition("?")
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        query = dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True))
        logic = self.open_connection(
            _WsServerConn(ws), transport="websocket", path=path, headers=headers, query=query
        )
        try:
            await logic.opened()
            while not logic.finished:
                data = await ws.recv(decode=False)
                await logic.on_frame(data)
        except ConnectionClosed:
            pass
        finally:
            if not logic.finished:
                # Connection ended by the client (or the network); make sure it is down.
                with contextlib.suppress(Exception):
                    await ws.wait_closed()
            code = ws.close_code if ws.close_code is not None else 1006
            logic.on_closed(code, ws.close_reason or "")


# --------------------------------------------------------------------------- test helper
# Here, not in cassette.py: it starts the server, and the cassette format sits below it.


#: What happens when a cassette file is missing.
Missing = Literal["skip", "fail", "record"]
#: ``--cassettes`` / ``GEMINI_LIVE_CASSETTES`` modes: what a missing cassette does, or
#: ``record-all`` (record every cassette again).
CassetteMode = Literal["replay-only", "skip-missing", "record-missing", "record-all"]
CASSETTE_MODES: tuple[CassetteMode, ...] = (
    "replay-only",
    "skip-missing",
    "record-missing",
    "record-all",
)
_MODE_MISSING: dict[str, Missing] = {
    "replay-only": "fail",
    "skip-missing": "skip",
    "record-missing": "record",
}
_mode: CassetteMode | None = None


def set_cassette_mode(mode: CassetteMode | None) -> None:
    """Set the default of every later :func:`use_cassette` (the pytest plugin's
    ``--cassettes`` option calls this); None goes back to the environment."""
    global _mode
    if mode is not None and mode not in CASSETTE_MODES:
        raise ValueError(f"cassette mode must be one of {', '.join(CASSETTE_MODES)}, got {mode!r}")
    _mode = mode


def _cassette_mode() -> tuple[CassetteMode | None, str]:
    if _mode is not None:
        return _mode, "--cassettes"
    env = os.environ.get("GEMINI_LIVE_CASSETTES", "").strip()
    if env:
        if env not in CASSETTE_MODES:
            raise ValueError(
                f"GEMINI_LIVE_CASSETTES must be one of {', '.join(CASSETTE_MODES)}, got {env!r}"
            )
        return env, "GEMINI_LIVE_CASSETTES"
    return None, ""


def _missing_policy(missing: Missing | None) -> tuple[Missing, str]:
    """What to do about a missing cassette, and why (for the message)."""
    if missing is not None:
        if missing not in ("skip", "fail", "record"):
            raise ValueError(f"missing must be 'skip', 'fail' or 'record', got {missing!r}")
        return missing, f"missing={missing!r}"
    mode, source = _cassette_mode()
    if mode is not None and mode in _MODE_MISSING:
        return _MODE_MISSING[mode], f"{source}={mode}"
    ci = os.environ.get("CI", "").strip().lower()
    if ci and ci not in ("0", "false", "no"):
        return "fail", "CI is set"
    return "skip", "default"


def _divergence(server: FakeLiveServer) -> CassetteDivergence:
    return CassetteDivergence(1007, f"{CASSETTE_DIVERGED}: " + "\n".join(server.divergences))


@contextlib.asynccontextmanager
async def use_cassette(
    path: str | Path,
    *,
    record: bool | None = None,
    upstream: str | None = None,
    keep_audio: bool = False,
    missing: Missing | None = None,
    match: Literal["kind", "strict"] = "kind",
    **options: Any,
) -> AsyncIterator[FakeLiveServer | RecordingProxy]:
    """Record once against the real service, replay in CI forever::

        async def test_greeting() -> None:
            async with use_cassette("tests/cassettes/greeting.jsonl") as server:
                await my_app(url=server.url)

    Recording (``record=True``; default: ``GEMINI_LIVE_RECORD=1`` or the mode
    ``record-all``): a :class:`RecordingProxy` forwards to ``upstream`` (default:
    ``$GEMINI_LIVE_UPSTREAM``, else the Gemini API; a base ``wss://host`` or the full URL
    ``gemini-live fake-server`` prints) and writes ``path`` once the block ends cleanly.
    A block that raises, an upstream that could not be reached, or no connection at all
    leaves no file (a previous cassette stays as it was) and raises
    :class:`~gemini_live.errors.CassetteError` in the last two cases.

    Replaying: ``FakeLiveServer.replay(path)`` serves it. ``match="kind"`` compares the
    kind and order of client messages, ``"strict"`` their payloads too (streamed audio
    and video excepted). An app that departs from the recording sees the session close
    with :class:`~gemini_live.errors.CassetteDivergence` carrying the sentence ("client
    message 2 is realtimeInput.audioStreamEnd, the cassette expected
    realtimeInput.text"), and leaving the block raises it with the whole report.

    A missing cassette (``missing``): ``"fail"`` raises ``CassetteError``, ``"skip"``
    skips the test under pytest (``FileNotFoundError`` elsewhere), ``"record"`` records
    it. Default: the mode (``--cassettes`` of the pytest plugin, else
    ``$GEMINI_LIVE_CASSETTES``: ``replay-only``, ``skip-missing``, ``record-missing``,
    ``record-all``), else ``"fail"`` when the ``CI`` environment variable is set, else
    ``"skip"``.
    """
    if match not in ("kind", "strict"):
        raise ValueError(f"match must be 'kind' or 'strict', got {match!r}")
    if record is None:
        record = os.environ.get("GEMINI_LIVE_RECORD") == "1" or _cassette_mode()[0] == "record-all"
    if not record and not os.path.exists(path):  # noqa: ASYNC240 (one stat, before any I/O)
        policy, why = _missing_policy(missing)
        message = f"no cassette {path}: record it once with GEMINI_LIVE_RECORD=1 and a key"
        if policy == "fail":
            raise CassetteError(f"{message} (missing cassettes fail: {why})")
        if policy == "skip":
            try:
                import pytest
            except ImportError:
                raise FileNotFoundError(message) from None
            pytest.skip(message)
        record = True
    if record:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        target = upstream or os.environ.get("GEMINI_LIVE_UPSTREAM") or GOOGLE_BASE
        async with RecordingProxy(path, upstream=target, keep_audio=keep_audio) as proxy:
            yield proxy
            failures = proxy.writer.failures
            if failures:
                conn, error = failures[0]
                raise CassetteError(
                    f"recording {path} failed, nothing written: connection {conn} could not "
                    f"reach the upstream ({error})"
                )
            if proxy.connections == 0:
                raise CassetteError(
                    f"recording {path}: the app never connected to the proxy "
                    f"(point it at {proxy.url}); nothing written"
                )
        return
    server = FakeLiveServer.replay(path, cassette_match=match, **options)
    await server.start()
    try:
        yield server
    except Exception as exc:
        await server.stop()
        if server.divergences:
            raise _divergence(server) from exc
        raise
    except BaseException:
        await server.stop()
        raise
    await server.stop()
    if server.divergences:
        raise _divergence(server)
    server.check()
