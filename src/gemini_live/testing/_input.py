"""The input room of a fake-server connection: what the user says, and when a turn ends.

Realtime input (audio through the server VAD or manual ``activityStart``/``activityEnd``,
``audioStreamEnd``, text), ``clientContent`` turns (and the initial-history phase), and
barge-in: speech or a new user turn interrupts the model's response.
"""

from __future__ import annotations

import asyncio
import math

from gemini_live.testing._canned import pcm_rate
from gemini_live.testing._connection import ConnectionBase
from gemini_live.testing._vad import VadEvent
from gemini_live.testing.script import Reply
from gemini_live.types import (
    UNSET,
    Blob,
    ClientContent,
    RealtimeInput,
    ServerContent,
    ServerMessage,
    Transcription,
    UnsetType,
    VoiceActivity,
    VoiceActivityDetectionSignal,
    format_duration,
)

__all__ = ["InputRoom"]


class InputRoom(ConnectionBase):
    """Input and turn detection (a room of ``_ConnectionLogic``)."""

    async def _realtime_input(self, ri: RealtimeInput, audio: bytes) -> None:
        session = self.session
        assert session is not None
        self.seeding = False
        if ri.activity_start is not UNSET:
            self.manual_active = True
            if self.vad_settings.only_activity:
                session.pending_audio_ms = 0.0
            await self._speech_started()
        if audio:
            self.record.add_audio(audio, self.audio_limit)
            if isinstance(ri.audio, Blob):
                mime: object = ri.audio.mime_type
            else:
                chunks = [] if isinstance(ri.media_chunks, UnsetType) else ri.media_chunks
                mime = next((c.mime_type for c in chunks if isinstance(c.mime_type, str)), None)
            rate = pcm_rate(mime)
            ms = len(audio) / 2 / rate * 1000
            session.audio_ms += ms
            if (
                not self.vad_settings.disabled
                or self.manual_active
                or not self.vad_settings.only_activity
            ):
                session.pending_audio_ms += ms
            self.stream_open = True
            if self.opts.vad and not self.vad_settings.disabled:
                for event in self.detector.feed(audio, rate):
                    await self._vad_event(event)
                    if self.finished:
                        return
            self._advance_clock(ms)
        if isinstance(ri.text, str):
            await self._user_text(ri.text)
        if ri.activity_end is not UNSET:
            self.manual_active = False
            if session.pending_audio_ms > 0:
                await self._audio_turn(session.pending_audio_ms)
        if ri.audio_stream_end is True:
            await self._stream_ended()

    def _advance_clock(self, ms: float) -> None:
        self.clock_ms += ms
        event, self._clock_event = self._clock_event, asyncio.Event()
        event.set()

    async def _stream_ended(self) -> None:
        """``audioStreamEnd``: the end of speech, if any, is now; paced replies run free."""
        session = self.session
        assert session is not None
        self.stream_open = False
        self._advance_clock(0.0)
        vad_on = self.opts.vad and not self.vad_settings.disabled
        if vad_on and self.detector.speaking:
            await self._vad_event(self.detector.end())
        elif session.pending_audio_ms > 0 and not self.vad_turn_in_stream:
            # No end of speech was detected in this stream: what came is one utterance.
            await self._audio_turn(session.pending_audio_ms)
        self.vad_turn_in_stream = False
        if vad_on:
            self.detector.end()  # a new stream starts a new turn
        session.pending_audio_ms = 0.0

    async def _vad_event(self, event: VadEvent) -> None:
        session = self.session
        assert session is not None
        start = event.kind == "start"
        if self.opts.voice_activity:
            await self._send(
                ServerMessage(
                    voice_activity=VoiceActivity(
                        voice_activity_type="ACTIVITY_START" if start else "ACTIVITY_END",
                        audio_offset=format_duration(event.offset_ms / 1000),
                    )
                )
            )
        if self.vad_signals:
            await self._send(
                ServerMessage(
                    voice_activity_detection_signal=VoiceActivityDetectionSignal(
                        vad_signal_type="VAD_SIGNAL_TYPE_SOS" if start else "VAD_SIGNAL_TYPE_EOS"
                    )
                )
            )
        if start:
            await self._speech_started()
            return
        self.vad_turn_in_stream = True
        ms = event.activity_ms if self.vad_settings.only_activity else event.since_turn_ms
        await self._audio_turn(ms, at_ms=event.offset_ms)

    async def _speech_started(self) -> None:
        """The user started speaking: barge in on the model's turn unless told not to."""
        if not self.vad_settings.interrupts:
            return
        session = self.session
        assert session is not None
        pending = [i for i in self.turn_calls if i in session.pending_calls]
        if self._generation is None and not pending:
            return
        await self._interrupt(pending)

    async def _interrupt(self, pending_calls: list[str]) -> None:
        session = self.session
        assert session is not None
        tasks = list(self._generations)
        self._generation = None
        self._generations.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self.reply_sent is not None:
            # Only what was already sent stays in the history.
            said = "".join(self.reply_sent)
            session.history.append(("model", said))
            session.answers.append(said)
            session.generated.append(self.reply_text)
            self.reply_sent = None
        elif self.playing is not None:
            # Generated and sent, but the client was still playing it: the user heard
            # the fragments whose audio had started by now, not the whole sentence.
            index, fragments, audio_s, started = self.playing
            elapsed = asyncio.get_running_loop().time() - started
            heard = min(len(fragments), math.ceil(elapsed / audio_s * len(fragments)))
            said = "".join(fragments[:heard])
            whole = session.answers[index]
            session.answers[index] = said
            for i in range(len(session.history) - 1, -1, -1):
                if session.history[i] == ("model", whole):
                    session.history[i] = ("model", said)
                    break
        self.playing = None
        self.interruptions += 1
        await self._send(ServerMessage(server_content=ServerContent(interrupted=True)))
        if pending_calls:
            await self.cancel_calls(pending_calls, finish=False)
        session.turns += 1
        await self._send(ServerMessage(server_content=ServerContent(turn_complete=True)))
        await self._send_resumption_update()

    async def _client_content(self, cc: ClientContent) -> None:
        session = self.session
        assert session is not None
        texts: list[str] = []
        if cc.turns is not UNSET:
            for turn in cc.turns:
                role = turn.role if isinstance(turn.role, str) else "user"
                parts = [] if turn.parts is UNSET else turn.parts
                text = "".join(p.text for p in parts if isinstance(p.text, str))
                session.history.append((role, text))
                if role == "user":
                    session.prompt_tokens += max(1, len(text) // 4)
                    session.user_texts.append(text)
                    texts.append(text)
        if self.seeding:
            # Initial history (historyConfig): ingested without generating, up to and
            # including the clientContent with turnComplete.
            if cc.turn_complete is True:
                self.seeding = False
            return
        if cc.turn_complete is True:
            await self._respond(" ".join(t for t in texts if t))

    async def _user_text(self, text: str) -> None:
        session = self.session
        assert session is not None
        session.history.append(("user", text))
        session.user_texts.append(text)
        session.prompt_tokens += max(1, len(text) // 4)
        await self._respond(text)

    async def _respond(self, text: str) -> None:
        """Answer a complete user text turn: a scripted rule, a tool trigger, or an echo."""
        session = self.session
        assert session is not None
        session.user_turns += 1
        if not self.opts.auto_reply:
            return
        # A new user turn cuts the model's response, as speech does.
        await self._speech_started()
        actions = self._scripted(text=text)
        if actions is None:
            actions = [Reply(self._echo(text))]
        await self._generate(actions)

    def _echo(self, text: str) -> str:
        """The default answer: an echo; "what did I say?" is answered from the history
        (so a test sees whether a fresh session was seeded with the conversation)."""
        session = self.session
        assert session is not None
        if "what did i say" in text.lower():
            earlier = [t for role, t in session.history[:-1] if role == "user"]
            return f"Earlier you said: {earlier[-1] if earlier else 'nothing'}"
        return f"You said: {text}"

    async def _audio_turn(self, ms_heard: float, *, at_ms: float | None = None) -> None:
        session = self.session
        assert session is not None
        ms = round(ms_heard)
        session.pending_audio_ms = 0.0
        session.utterances += 1
        session.user_turns += 1
        session.history.append(("user", f"[{ms} ms of audio]"))
        session.prompt_tokens += max(1, ms * 25 // 1000)
        if not self.opts.auto_reply:
            return
        if self.setup is not None and self.setup.input_audio_transcription is not UNSET:
            await self._send(
                ServerMessage(
                    server_content=ServerContent(
                        input_transcription=Transcription(text=f"{ms} ms of audio")
                    )
                )
            )
        actions = self._scripted(audio_ms=float(ms))
        if actions is None:
            actions = [Reply(f"I heard {ms} ms of audio.")]
        paced = self.opts.paced_by_input and self.stream_open
        await self._generate(actions, paced=paced, start_ms=at_ms)
