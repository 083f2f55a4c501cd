"""Client modes: the same workloads driven through different client stacks.

A mode opens connections (:meth:`Mode.open`) that push what the application would see to
a :class:`Sink`, each through its library's normal receive API:

* ``gemini-live``: :func:`gemini_live.connect`, ``async for event in session``,
  ``await session.send_audio(pcm)``; picows or websockets backend.
* ``google-genai``: the unmodified SDK pointed at ``ws://`` with the two-attribute recipe,
  ``send_realtime_input(audio=Blob)`` and ``receive()`` re-entered after each turnComplete.
* ``hand-written``: websockets + ``json`` + ``base64``, what a careful developer writes
  by hand against the documented JSON.
* ``transport floor``: picows native callbacks, pre-built frames, no codec at all (frames
  are classified by their first bytes): the cost of the transport alone.
* ``floor + pybase64``: the floor plus base64 both ways (a template around
  ``pybase64.b64encode`` on send, ``bytes.find`` + ``pybase64.b64decode`` on receive): the
  least any client that hands the app audio bytes can do.
* ``ideal-cb`` / ``ideal-queue`` (not run by default): the ideal pure-Python clients of
  ``bench.ideal`` (picows + msgspec into small Structs + pybase64, one event per frame),
  delivering to a callback or through an ``asyncio.Queue`` to a consumer task.

Adding a client = one more :class:`Mode` subclass in :data:`MODES`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Final

import pybase64

from bench.common import (
    DEFAULT_FRAMING,
    FLOOR_AUDIO_FRAME,
    FLOOR_GOAWAY_FRAME,
    GOAWAY_TRIGGER,
    IN_MIME,
    MODEL,
    PCM_OUT,
    STAMP_WIDTH,
    Frames,
    parse_stamp,
    setup_frame,
)

OPEN_TIMEOUT: Final = 15.0


class Sink:
    """What the application does with received events (override what you need)."""

    def on_setup_complete(self) -> None:
        pass

    def on_audio(self, pcm: bytes) -> None:
        pass

    def on_transcript(self, text: str) -> None:
        self.on_stamp(parse_stamp(text))

    def on_stamp(self, sent_at: float) -> None:
        pass

    def on_turn_complete(self) -> None:
        pass

    def on_handle(self, handle: str) -> None:
        pass

    def on_go_away(self) -> None:
        pass

    def on_closed(self) -> None:
        pass


class Conn(ABC):
    """One open session of some mode."""

    #: Latest resumption handle seen on this session.
    handle: str | None = None

    @abstractmethod
    async def send_audio(self, pcm: bytes) -> None: ...

    @abstractmethod
    async def send_go_away_trigger(self) -> None:
        """Ask the benchmark server for a goAway on this connection."""

    async def resume(self) -> None:
        """After goAway: reconnect with the latest handle and wait for setupComplete.

        Modes whose library resumes by itself (``Mode.auto_resume``) never get this call.
        """
        raise NotImplementedError

    @abstractmethod
    async def close(self) -> None: ...


class Mode(ABC):
    key: ClassVar[str]
    label: ClassVar[str]
    #: The library rotates the connection on goAway by itself.
    auto_resume: ClassVar[bool] = False
    #: The server's frames (the codec-free floor client needs their layout).
    frames: Frames = Frames(DEFAULT_FRAMING)

    async def prepare(self) -> None:
        """Per-process setup (imports, client objects); not timed."""
        self.prepared = True

    @abstractmethod
    async def open(self, url: str, sink: Sink, handle: str | None = None) -> Conn: ...


# -- gemini-live --------------------------------------------------------------------------


class GeminiLiveMode(Mode):
    auto_resume = True
    backend: ClassVar[str] = "picows"

    def _backend(self) -> Any:
        """``backend=`` for build_config: a name, or a Backend object (a subclass may)."""
        return self.backend

    async def prepare(self) -> None:
        import gemini_live

        self._gl = gemini_live

    async def _connect(self, url: str, handle: str | None, **options: Any) -> Any:
        gl = self._gl
        setup = gl.types.Setup(
            model=MODEL,
            generation_config=gl.types.GenerationConfig(response_modalities=["AUDIO"]),
            session_resumption=gl.types.SessionResumptionConfig(handle=handle)
            if handle
            else gl.types.UNSET,
        )
        config = gl.build_config(setup=setup, url=url, backend=self._backend(), **options)
        return await asyncio.wait_for(gl.Session.connect(config), OPEN_TIMEOUT)

    async def open(self, url: str, sink: Sink, handle: str | None = None) -> Conn:
        return _GeminiLiveConn(await self._connect(url, handle), sink)


class GeminiLivePicows(GeminiLiveMode):
    key = "gemini-live-picows"
    label = "gemini-live (picows)"
    backend = "picows"


class GeminiLivePicowsCallbacks(GeminiLiveMode):
    """Same client, consuming events with ``session.on_event`` (no task wake-up per event)."""

    key = "gemini-live-picows-cb"
    label = "gemini-live (picows, on_event)"
    backend = "picows"

    async def open(self, url: str, sink: Sink, handle: str | None = None) -> Conn:
        session = await self._connect(url, handle, main_stream=False)
        return _GeminiLiveCallbackConn(session, sink)


class GeminiLiveWebsockets(GeminiLiveMode):
    key = "gemini-live-websockets"
    label = "gemini-live (websockets)"
    backend = "websockets"


class _GeminiLiveConnBase(Conn):
    def __init__(self, session: Any, sink: Sink) -> None:
        self.session = session
        self.sink = sink
        # The app's own call: ``await session.send_audio(pcm)``, not a coroutine of this
        # adapter around it (the other clients' ``send_audio`` is their whole send path).
        self.send_audio = session.send_audio  # type: ignore[method-assign]

    def _dispatcher(self, close_sink: bool = False) -> Callable[[Any], bool]:
        """One event -> the sink; returns True for the session's last event (Closed), and
        with ``close_sink`` also tells the sink (an ``on_event`` app's one handler)."""
        from gemini_live import events as ev

        audio_t, text_t, turn_t = ev.ModelAudio, ev.OutputTranscription, ev.TurnComplete
        sru_t, goaway_t, setup_t = ev.SessionResumptionUpdate, ev.GoAway, ev.SetupComplete
        closed_t = ev.Closed
        sink = self.sink

        def dispatch(event: Any) -> bool:
            t = type(event)
            if t is audio_t:
                sink.on_audio(event.data)
            elif t is text_t:
                sink.on_transcript(event.text)
            elif t is turn_t:
                sink.on_turn_complete()
            elif t is sru_t:
                if event.handle:
                    self.handle = event.handle
                    sink.on_handle(event.handle)
            elif t is goaway_t:
                sink.on_go_away()
            elif t is setup_t:
                sink.on_setup_complete()
            elif t is closed_t:
                if close_sink:
                    sink.on_closed()
                return True
            return False

        return dispatch

    async def send_audio(self, pcm: bytes) -> None:
        await self.session.send_audio(pcm)

    async def send_go_away_trigger(self) -> None:
        await self.session.send_text(GOAWAY_TRIGGER)

    async def close(self) -> None:
        await self.session.close()


class _GeminiLiveConn(_GeminiLiveConnBase):
    """Consumes events with ``async for event in session`` in a task."""

    def __init__(self, session: Any, sink: Sink) -> None:
        super().__init__(session, sink)
        self._task = asyncio.get_running_loop().create_task(self._receive())

    async def _receive(self) -> None:
        dispatch = self._dispatcher()
        try:
            async for event in self.session:
                if dispatch(event):
                    break
        finally:
            self.sink.on_closed()

    async def close(self) -> None:
        await super().close()
        self._task.cancel()


class _GeminiLiveCallbackConn(_GeminiLiveConnBase):
    """Consumes events with ``session.on_event`` (runs inside the frame callback)."""

    def __init__(self, session: Any, sink: Sink) -> None:
        super().__init__(session, sink)
        # The app's one handler, registered as it is (no wrapper around it).
        session.on_event(self._dispatcher(close_sink=True))
        # Events of the connect itself (setupComplete, a handle right after it) came before
        # this callback existed: replay what the session already knows.
        sink.on_setup_complete()
        if session.resume_handle:
            self.handle = session.resume_handle
            sink.on_handle(session.resume_handle)


# -- google-genai ---------------------------------------------------------------------------


class GoogleGenaiMode(Mode):
    key = "google-genai"
    label = "google-genai"

    async def prepare(self) -> None:
        from google import genai
        from google.genai import types

        self._types = types
        self._url = ""
        self.client = genai.Client(api_key="bench-not-a-key")
        api = self.client._api_client
        # peer-google-genai.md §2: the only plain ws:// recipe (the SDK forces wss://).
        setattr(api, "_websocket_base_url", lambda http_options=None: self._url)  # noqa: B010
        api._websocket_ssl_ctx = {}

    async def open(self, url: str, sink: Sink, handle: str | None = None) -> Conn:
        types = self._types
        self._url = url  # the SDK appends /ws/google.ai....BidiGenerateContent
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            session_resumption=types.SessionResumptionConfig(handle=handle),
        )
        cm = self.client.aio.live.connect(model=MODEL, config=config)
        session = await asyncio.wait_for(cm.__aenter__(), OPEN_TIMEOUT)
        conn = _GenaiConn(self, url, cm, session, sink)
        sink.on_setup_complete()
        return conn


class _GenaiConn(Conn):
    def __init__(self, mode: GoogleGenaiMode, url: str, cm: Any, session: Any, sink: Sink) -> None:
        self.mode = mode
        self.url = url
        self.cm = cm
        self.session = session
        self.sink = sink
        self._types = mode._types
        self._task = asyncio.get_running_loop().create_task(self._receive(session))

    async def _receive(self, session: Any) -> None:
        sink = self.sink
        try:
            while True:
                async for msg in session.receive():
                    sc = msg.server_content
                    if sc is not None:
                        turn = sc.model_turn
                        if turn is not None and turn.parts:
                            for part in turn.parts:
                                blob = part.inline_data
                                if blob is not None and blob.data is not None:
                                    sink.on_audio(blob.data)
                        ot = sc.output_transcription
                        if ot is not None and ot.text:
                            sink.on_transcript(ot.text)
                        if sc.turn_complete:
                            sink.on_turn_complete()
                    sru = msg.session_resumption_update
                    if sru is not None and sru.new_handle:
                        self.handle = sru.new_handle
                        sink.on_handle(sru.new_handle)
                    if msg.go_away is not None:
                        sink.on_go_away()
        except Exception:  # APIError on close: the session is over
            sink.on_closed()

    async def send_audio(self, pcm: bytes) -> None:
        await self.session.send_realtime_input(audio=self._types.Blob(data=pcm, mime_type=IN_MIME))

    async def send_go_away_trigger(self) -> None:
        await self.session.send_realtime_input(text=GOAWAY_TRIGGER)

    async def resume(self) -> None:
        await self.close()
        new = await self.mode.open(self.url, self.sink, self.handle)
        assert isinstance(new, _GenaiConn)
        self.cm, self.session, self._task = new.cm, new.session, new._task

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(Exception):
            await self.cm.__aexit__(None, None, None)


# -- hand-written websockets + json + base64 -------------------------------------------------


class HandWrittenMode(Mode):
    key = "hand-written"
    label = "hand-written websockets + json + base64"

    async def prepare(self) -> None:
        from websockets.asyncio.client import connect

        self._connect = connect

    async def open(self, url: str, sink: Sink, handle: str | None = None) -> Conn:
        conn = _HandWrittenConn(self, url, sink)
        await asyncio.wait_for(conn.connect(handle), OPEN_TIMEOUT)
        return conn


class _HandWrittenConn(Conn):
    def __init__(self, mode: HandWrittenMode, url: str, sink: Sink) -> None:
        self.mode = mode
        self.url = url
        self.sink = sink
        self.ws: Any = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, handle: str | None) -> None:
        ws = await self.mode._connect(self.url)
        resumption: dict[str, str] = {"handle": handle} if handle else {}
        setup = {
            "setup": {
                "model": MODEL,
                "generationConfig": {"responseModalities": ["AUDIO"]},
                "sessionResumption": resumption,
            }
        }
        await ws.send(json.dumps(setup))
        first = json.loads(await ws.recv())
        if "setupComplete" not in first:
            raise RuntimeError(f"expected setupComplete, got {first!r:.200}")
        self.ws = ws
        self.sink.on_setup_complete()
        self._task = asyncio.get_running_loop().create_task(self._receive(ws))

    async def _receive(self, ws: Any) -> None:
        sink = self.sink
        loads, b64decode = json.loads, base64.b64decode
        try:
            async for raw in ws:
                msg = loads(raw)
                sc = msg.get("serverContent")
                if sc is not None:
                    turn = sc.get("modelTurn")
                    if turn is not None:
                        for part in turn.get("parts", ()):
                            blob = part.get("inlineData")
                            if blob is not None:
                                sink.on_audio(b64decode(blob["data"]))
                    ot = sc.get("outputTranscription")
                    if ot is not None:
                        sink.on_transcript(ot.get("text", ""))
                    if sc.get("turnComplete"):
                        sink.on_turn_complete()
                sru = msg.get("sessionResumptionUpdate")
                if sru is not None and sru.get("resumable") and sru.get("newHandle"):
                    self.handle = sru["newHandle"]
                    sink.on_handle(sru["newHandle"])
                if "goAway" in msg:
                    sink.on_go_away()
        except Exception:  # ConnectionClosed: the session is over
            pass
        sink.on_closed()

    async def send_audio(self, pcm: bytes) -> None:
        data = base64.b64encode(pcm).decode("ascii")
        await self.ws.send(
            json.dumps({"realtimeInput": {"audio": {"data": data, "mimeType": IN_MIME}}})
        )

    async def send_go_away_trigger(self) -> None:
        await self.ws.send(json.dumps({"realtimeInput": {"text": GOAWAY_TRIGGER}}))

    async def resume(self) -> None:
        await self.close()
        await asyncio.wait_for(self.connect(self.handle), OPEN_TIMEOUT)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5.0)


# -- transport floor: picows callbacks, pre-built frames, no codec ------------------------


class FloorMode(Mode):
    key = "floor"
    label = "transport floor (picows callbacks, no codec)"
    #: Also base64-encode each chunk and base64-decode each reply's audio (pybase64).
    base64: ClassVar[bool] = False

    async def prepare(self) -> None:
        import picows

        self._picows = picows

    async def open(self, url: str, sink: Sink, handle: str | None = None) -> Conn:
        conn = _FloorConn(self._picows, url, sink, self.frames, self.base64)
        await asyncio.wait_for(conn.connect(handle), OPEN_TIMEOUT)
        return conn


class FloorBase64Mode(FloorMode):
    """The floor plus the cheapest possible codec: pybase64 both ways, no JSON parser.

    A reference for how much of a client's cost above the floor is base64 (which every
    client must do) and how much is the rest. Run in W1 and W3, not in W2.
    """

    key = "floor-b64"
    label = "transport floor + pybase64 (no JSON parser)"
    base64 = True


_FLOOR_PREFIX, _FLOOR_SUFFIX = FLOOR_AUDIO_FRAME.split(
    FLOOR_AUDIO_FRAME[FLOOR_AUDIO_FRAME.index(b'"data":"') + 8 : -4]
)


_b64encode: Final = pybase64.b64encode


# The floor classifies frames by the keys in their first bytes (any framing).
_HEAD_BYTES: Final = 80
_K_STAMPED: Final = b'"outputTranscription"'
_K_AUDIO: Final = b'"modelTurn"'
_K_INPUT: Final = b'"inputTranscription"'
_K_TURN: Final = b'"turnComplete"'
_K_SETUP: Final = b'"setupComplete"'
_K_HANDLE: Final = b'"sessionResumptionUpdate"'
_K_GOAWAY: Final = b'"goAway"'


def _audio_payload(mv: memoryview) -> bytes:
    """The base64 audio of a bench reply, decoded (the floor-b64 client)."""
    data = bytes(mv)
    start = data.index(b'"', data.index(b":", data.index(b'"data"') + 6)) + 1
    return pybase64.b64decode(data[start : data.index(b'"', start)], validate=True)


def _make_floor_listener(picows: Any, frames: Frames, base64: bool) -> type:
    text_t, binary_t = picows.WSMsgType.TEXT, picows.WSMsgType.BINARY
    stamp_at = frames.w2_stamp_offset
    close_t = picows.WSMsgType.CLOSE

    class FloorListener(picows.WSListener):  # type: ignore[misc]
        def __init__(self, conn: _FloorConn) -> None:
            super().__init__()
            self.conn = conn

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            mt = frame.msg_type
            if mt != binary_t and mt != text_t:
                if mt == close_t:
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()
                return
            mv = frame.get_payload_as_memoryview()
            head = bytes(mv[:_HEAD_BYTES])
            sink = self.conn.sink
            if _K_STAMPED in head:  # W2: the stamped transcript comes first
                at = stamp_at
                sink.on_stamp(float(mv[at : at + STAMP_WIDTH]))
                sink.on_audio(_audio_payload(mv) if base64 else PCM_OUT)
            elif _K_AUDIO in head:
                # no JSON parser; without base64 a constant stands for the audio
                sink.on_audio(_audio_payload(mv) if base64 else PCM_OUT)
            elif _K_INPUT in head:
                pass
            elif _K_TURN in head:
                sink.on_turn_complete()
            elif _K_SETUP in head:
                self.conn.setup_done(None)
            elif _K_HANDLE in head:
                sru = json.loads(bytes(mv))["sessionResumptionUpdate"]
                if sru.get("newHandle"):
                    self.conn.handle = sru["newHandle"]
                    sink.on_handle(sru["newHandle"])
            elif _K_GOAWAY in head:
                sink.on_go_away()

        def on_ws_disconnected(self, transport: Any) -> None:
            self.conn.setup_done(ConnectionError("disconnected"))
            self.conn.sink.on_closed()

    return FloorListener


class _FloorConn(Conn):
    _listener_cls: ClassVar[dict[bool, type]] = {}

    def __init__(
        self, picows: Any, url: str, sink: Sink, frames: Frames, base64: bool = False
    ) -> None:
        self.picows = picows
        self.base64 = base64
        self.url = url
        self.sink = sink
        self.transport: Any = None
        self._ready: asyncio.Future[None] | None = None
        self._text = picows.WSMsgType.TEXT
        if base64 not in _FloorConn._listener_cls:
            _FloorConn._listener_cls[base64] = _make_floor_listener(picows, frames, base64)

    def setup_done(self, exc: BaseException | None) -> None:
        fut = self._ready
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
        elif exc is None:
            self.sink.on_setup_complete()

    async def connect(self, handle: str | None) -> None:
        cls = _FloorConn._listener_cls[self.base64]
        factory: Callable[[], Any] = lambda: cls(self)  # noqa: E731
        self._ready = asyncio.get_running_loop().create_future()
        transport, _ = await self.picows.ws_connect(factory, self.url, enable_auto_pong=True)
        self.transport = transport
        transport.send(self._text, setup_frame(MODEL, handle))
        await self._ready
        self._ready = None
        self.sink.on_setup_complete()

    async def send_audio(self, pcm: bytes) -> None:
        if self.base64:
            frame = b"".join((_FLOOR_PREFIX, _b64encode(pcm), _FLOOR_SUFFIX))
            self.transport.send(self._text, frame)
        else:
            self.transport.send(self._text, FLOOR_AUDIO_FRAME)

    async def send_go_away_trigger(self) -> None:
        self.transport.send(self._text, FLOOR_GOAWAY_FRAME)

    async def resume(self) -> None:
        await self.close()
        await asyncio.wait_for(self.connect(self.handle), OPEN_TIMEOUT)

    async def close(self) -> None:
        t = self.transport
        if t is not None and not t.is_disconnected:
            t.send_close(self.picows.WSCloseCode.OK)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(t.wait_disconnected(), 5.0)
            t.disconnect()


# -- the ideal pure-Python clients: picows + msgspec + pybase64, one event per frame ---------


class IdealMode(Mode):
    """The ideal callback client (``bench.ideal``): the event is handled in the frame callback."""

    key = "ideal-cb"
    label = "ideal client (callback)"
    #: Deliver through an ``asyncio.Queue`` to a consumer task instead.
    queue: ClassVar[bool] = False

    async def prepare(self) -> None:
        import picows

        from bench import ideal

        self._picows = picows
        self._ideal = ideal

    async def open(self, url: str, sink: Sink, handle: str | None = None) -> Conn:
        conn = _IdealConn(self._picows, self._ideal, url, sink, self.queue)
        await asyncio.wait_for(conn.connect(handle), OPEN_TIMEOUT)
        return conn


class IdealQueueMode(IdealMode):
    """The ideal queue client: the same events through an ``asyncio.Queue`` to a task."""

    key = "ideal-queue"
    label = "ideal client (asyncio.Queue)"
    queue = True


#: Events the ideal queue client holds for a slow consumer (then QueueFull is raised).
IDEAL_QUEUE_MAX: Final = 4096


class _IdealConn(Conn):
    def __init__(self, picows: Any, ideal: Any, url: str, sink: Sink, queue: bool) -> None:
        self.picows = picows
        self.ideal = ideal
        self.url = url
        self.sink = sink
        self.queue: asyncio.Queue[Any] | None = asyncio.Queue(IDEAL_QUEUE_MAX) if queue else None
        self.transport: Any = None
        self._ready: asyncio.Future[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._text = picows.WSMsgType.TEXT

    def _dispatch(self, event: Any) -> None:
        """The app: one event -> the sink (what the gemini-live modes do per event)."""
        sink = self.sink
        if event.audio is not None:
            sink.on_audio(event.audio)
        if event.output_text is not None:
            sink.on_transcript(event.output_text)
        if event.turn_complete:
            sink.on_turn_complete()
        if event.handle:
            self.handle = event.handle
            sink.on_handle(event.handle)
        if event.go_away:
            sink.on_go_away()
        if event.setup_complete:
            sink.on_setup_complete()
        if event.closed:
            sink.on_closed()

    def _deliver(self) -> Callable[[Any], None]:
        """What the frame callback calls with each event once the session is set up."""
        if self.queue is None:
            return self._dispatch
        return self.queue.put_nowait  # QueueFull once the consumer is IDEAL_QUEUE_MAX behind

    async def _consume(self, queue: asyncio.Queue[Any]) -> None:
        dispatch, get = self._dispatch, queue.get
        while True:
            event = await get()
            dispatch(event)
            if event.closed:
                return

    def _during_setup(self, event: Any) -> None:
        fut = self._ready
        if fut is None or fut.done():
            self._deliver()(event)
        elif event.setup_complete:
            fut.set_result(None)
        elif event.closed:
            fut.set_exception(ConnectionError("disconnected during setup"))

    async def connect(self, handle: str | None) -> None:
        picows: Any = self.picows
        ideal: Any = self.ideal
        data_types = (picows.WSMsgType.BINARY, picows.WSMsgType.TEXT)
        close_t = picows.WSMsgType.CLOSE
        to_event, closed = ideal.to_event, ideal.CLOSED
        during_setup = self._during_setup

        class Listener(picows.WSListener):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.deliver: Callable[[Any], None] = during_setup

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                mt = frame.msg_type
                if mt in data_types:
                    self.deliver(to_event(frame.get_payload_as_memoryview()))
                elif mt == close_t:
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()

            def on_ws_disconnected(self, transport: Any) -> None:
                self.deliver(closed)

        self._ready = asyncio.get_running_loop().create_future()
        transport, listener = await picows.ws_connect(Listener, self.url, enable_auto_pong=True)
        self.transport = transport
        transport.send(self._text, ideal.setup_frame(handle))
        await self._ready
        self._ready = None
        # From here on the frame callback hands each event to the app (or its queue).
        listener.deliver = self._deliver()
        if self.queue is not None:
            self._consumer = asyncio.get_running_loop().create_task(self._consume(self.queue))
        self.sink.on_setup_complete()

    async def send_audio(self, pcm: bytes) -> None:
        self.transport.send(self._text, self.ideal.audio_frame(pcm))

    async def send_go_away_trigger(self) -> None:
        self.transport.send(self._text, self.ideal.text_frame(GOAWAY_TRIGGER))

    async def resume(self) -> None:
        await self.close()
        await asyncio.wait_for(self.connect(self.handle), OPEN_TIMEOUT)

    async def close(self) -> None:
        t = self.transport
        if t is not None and not t.is_disconnected:
            t.send_close(self.picows.WSCloseCode.OK)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(t.wait_disconnected(), 5.0)
            t.disconnect()
        if self._consumer is not None:
            self._consumer.cancel()


MODES: Final[dict[str, type[Mode]]] = {
    m.key: m
    for m in (
        GeminiLivePicows,
        GeminiLivePicowsCallbacks,
        HandWrittenMode,
        GoogleGenaiMode,
        FloorMode,
        FloorBase64Mode,
    )
}
#: Modes not run by default (to keep a full run near 10 minutes); ``--modes`` names them.
EXTRA_MODES: Final[dict[str, type[Mode]]] = {
    m.key: m for m in (GeminiLiveWebsockets, IdealMode, IdealQueueMode)
}
ALL_MODES: Final[dict[str, type[Mode]]] = {**MODES, **EXTRA_MODES}
BASELINE_GENAI: Final = GoogleGenaiMode.key
BASELINE_RAW: Final = HandWrittenMode.key


def label(key: str) -> str:
    return ALL_MODES[key].label
