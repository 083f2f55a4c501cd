"""The replies room of a fake-server connection: what the model answers, and how it is sent.

A user turn is answered by a matching script rule, a tool trigger, or an echo
(``_scripted``); the actions run inline when instant, else one response after the other in
the background (``_generate``, ``_perform``); a reply turn is audio (or text) chunks, paced
by the client's audio clock or the chunk interval, then ``generationComplete`` and
``turnComplete`` with usage (``_reply_turn``, ``_end_turn``).
"""

from __future__ import annotations

import asyncio
import functools
import wave
from collections.abc import Sequence
from typing import Any

import msgspec

from gemini_live.codec import encode_server
from gemini_live.testing._canned import (
    CHUNK_MS,
    OUTPUT_MIME,
    OUTPUT_RATE,
    TONE_PCM,
    audio_frame,
    make_tone,
    output_mime,
    pcm_rate,
    split_fragments,
    usage,
)
from gemini_live.testing._connection import ConnectionBase, EndTurn
from gemini_live.testing._records import ToolScript
from gemini_live.testing.script import (
    Action,
    Call,
    CallTools,
    Close,
    Drop,
    Reply,
    Send,
    Usage,
    Wait,
)
from gemini_live.testing.script import GoAway as ScriptGoAway
from gemini_live.types import UNSET, Content, Part, ServerContent, ServerMessage, Transcription

__all__ = ["RepliesRoom", "reply_mime"]


class RepliesRoom(ConnectionBase):
    """Reply generation (a room of ``_ConnectionLogic``)."""

    def _scripted(self, **turn: Any) -> list[Action | EndTurn] | None:
        """What the model does for a user turn: a matching script rule, else (text turns)
        a tool trigger, else None and the caller answers with its default."""
        session = self.session
        assert session is not None
        script = self.opts.script
        if script is not None:
            rule = script.match(
                session.fired, utterance=session.utterances, turn=session.user_turns, **turn
            )
            if rule is not None:
                return list(rule.do)
        text = turn.get("text")
        if text is not None:
            trigger = self.core.match_trigger(text)
            if trigger is not None:
                return _tool_script_actions(trigger)
        return None

    async def _generate(
        self,
        actions: Sequence[Action | EndTurn],
        *,
        paced: bool = False,
        start_ms: float | None = None,
    ) -> None:
        """Carry out one model response: inline when instant, else in the background.

        Background responses run one after the other, in order. A resumption update
        follows the response (``resumable: true`` unless a blocking call is pending).
        """
        self.turn_calls = []
        if (
            self.opts.chunk_interval <= 0
            and not paced
            and self._generation is None
            and not self.opts.assumed_playback
        ):
            self._inline_generating = True
            try:
                await self._perform(actions, paced=False)
            finally:
                self._inline_generating = False
            await self._send_resumption_update()
            return
        previous = self._generation
        task: asyncio.Task[None] | None = None

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self._perform(actions, paced=paced, start_ms=start_ms)
            if self._generation is task:
                self._generation = None
            if task is not None:
                self._generations.discard(task)
            if not self.finished:
                await self._send_resumption_update()

        task = self._spawn(run())
        self._generation = task
        self._generations.add(task)

    async def _perform(
        self,
        actions: Sequence[Action | EndTurn],
        *,
        paced: bool,
        start_ms: float | None = None,
    ) -> None:
        for action in actions:
            if self.finished:
                return
            if isinstance(action, Reply):
                await self._reply_turn(action, paced=paced, start_ms=start_ms)
                start_ms = None
            elif isinstance(action, CallTools):
                await self._call_tools(action)
            elif isinstance(action, Wait):
                await self._sleep(action.seconds)
            elif isinstance(action, ScriptGoAway):
                await self.go_away(action.time_left, close=action.close)
            elif isinstance(action, Drop):
                self.abort()
            elif isinstance(action, Close):
                await self.close(action.code, action.reason)
            elif isinstance(action, Usage):
                await self.send_frame(msgspec.json.encode({"usageMetadata": action.metadata}))
            elif isinstance(action, Send):
                await self.send_frame(msgspec.json.encode(action.frame))
            elif isinstance(action, EndTurn):
                await self._end_turn(0)

    async def _wait_clock(self, due_ms: float) -> bool:
        """Wait until the client streamed audio up to ``due_ms`` (or stopped streaming)."""
        while self.stream_open and self.clock_ms < due_ms and not self.finished:
            event = self._clock_event
            stopped = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait(
                    [asyncio.ensure_future(event.wait()), stopped],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopped.cancel()
        return not self.finished

    async def _reply_turn(
        self, reply: Reply, *, paced: bool, start_ms: float | None = None
    ) -> None:
        """One model turn: audio (+ transcript) or text chunks, generationComplete,
        turnComplete (+ usage, + interactionStatus)."""
        session = self.session
        assert session is not None and self.setup is not None
        # While the model generates, the session is not resumable.
        await self._send_resumption_update(generating=True)
        text = reply.text
        chunks = _reply_chunks(reply, self.opts.reply_chunks, self.text_mode)
        n = len(chunks)
        interval = self.opts.chunk_interval
        transcribe = self.setup.output_audio_transcription is not UNSET and not self.text_mode
        fragments = split_fragments(text, max(n, 1))
        self.reply_sent = []
        self.reply_text = text
        # Paced replies start where the user stopped speaking (in audio time).
        start = self.clock_ms if start_ms is None else start_ms
        loop = asyncio.get_running_loop()
        started = loop.time()
        rate = pcm_rate(reply_mime(reply))
        audio_s = 0.0 if self.text_mode else sum(len(c) for c in chunks) / 2 / rate
        for i, pcm in enumerate(chunks):
            if i and interval > 0 and not await self._sleep(interval):
                return
            if i and paced and not await self._wait_clock(start + i * CHUNK_MS):
                return
            if self.text_mode:
                frame = encode_server(
                    ServerMessage(
                        server_content=ServerContent(
                            model_turn=Content(role="model", parts=[Part(text=fragments[i])])
                        )
                    )
                )
            else:
                frame = audio_frame(fragments[i] if transcribe else None, pcm, reply_mime(reply))
            if not await self.send_frame(frame):
                return
            self.reply_sent.append(fragments[i] if i < len(fragments) else "")
        if n == 0 and transcribe and text:
            await self._send(
                ServerMessage(
                    server_content=ServerContent(output_transcription=Transcription(text=text))
                )
            )
        await self._send(ServerMessage(server_content=ServerContent(generation_complete=True)))
        self.reply_sent = None
        turn_response = max(n, 1)
        session.response_tokens += turn_response
        session.history.append(("model", text))
        session.answers.append(text)
        session.generated.append(text)
        if self.opts.assumed_playback and audio_s > 0:
            self.playing = (len(session.answers) - 1, fragments, audio_s, started)
            # The service holds the turn open while the client plays the audio it was
            # sent (at real time); speech in this gap still interrupts the turn.
            left = audio_s - (loop.time() - started)
            if left > 0 and not await self._sleep(left):
                return
            self.playing = None
        await self._end_turn(turn_response, reply.interaction_status, usage_too=reply.usage)

    async def _end_turn(
        self, turn_response: int, status: str | None = None, *, usage_too: bool = True
    ) -> None:
        session = self.session
        assert session is not None
        session.turns += 1
        sc = ServerContent(turn_complete=True)
        if status is not None:
            sc.interaction_status = status
        meta = (
            usage(
                session.prompt_tokens,
                session.response_tokens,
                turn_response,
                vertex=self.vertex,
                modality="TEXT" if self.text_mode else "AUDIO",
            )
            if usage_too
            else UNSET
        )
        await self._send(ServerMessage(server_content=sc, usage_metadata=meta))


def _tool_script_actions(script: ToolScript) -> list[Action | EndTurn]:
    """A ``tool_triggers`` entry as script actions."""
    call = CallTools(
        [Call(script.name, script.args) for _ in range(max(1, script.parallel))],
        blocking=not script.non_blocking,
        cancel_after=script.cancel_after,
    )
    if script.cancel_after:
        return [call, EndTurn()]
    if script.non_blocking:
        return [call, Reply(f"Calling {script.name}.")]
    return [call]


@functools.lru_cache(maxsize=32)
def _tone(hz: float) -> bytes:
    return make_tone(CHUNK_MS, OUTPUT_RATE, hz)


@functools.lru_cache(maxsize=32)
def _wav_chunks(path: str) -> tuple[int, tuple[bytes, ...]]:
    """A WAV file (PCM16 mono) as 40 ms chunks at its own rate."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: the fake server plays 16-bit mono WAV files only")
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    step = rate * CHUNK_MS // 1000 * 2
    return rate, tuple(pcm[i : i + step] for i in range(0, len(pcm), step))


def reply_mime(reply: Reply) -> str:
    if reply.wav is not None:
        return output_mime(_wav_chunks(reply.wav)[0])
    return OUTPUT_MIME


def _reply_chunks(reply: Reply, default_chunks: int, text_mode: bool) -> list[bytes]:
    if reply.wav is not None and not text_mode:
        return list(_wav_chunks(reply.wav)[1])
    n = default_chunks if reply.chunks is None else reply.chunks
    if text_mode:
        return [b""] * max(n, 1)
    tone = TONE_PCM if reply.tone_hz == 440.0 else _tone(reply.tone_hz)
    return [tone] * n
