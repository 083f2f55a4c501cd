"""Decide when an interaction stuck ``IN_PROGRESS`` is over. Pure: no asyncio, no clock.

On 3.8 Live Extended Thinking the model answers in several turns: fillers, each closed
by ``turnComplete`` with ``interactionStatus: IN_PROGRESS``, then the final answer closed
with ``IDLE``. If ``IDLE`` never comes, every consumer waiting for the end of the answer
waits forever. :class:`InteractionWatchdog` tracks that state from the event stream; the
owner of a timer (the session) asks it for the :meth:`~InteractionWatchdog.deadline` and,
when that passes, calls :meth:`~InteractionWatchdog.expired` to get the
:class:`~gemini_live.events.InteractionTimeout` event to emit::

    dog = InteractionWatchdog(timeout=30.0)
    dog.observe(event, loop.time())          # every event
    when = dog.deadline()                    # None = nothing to watch
    ...
    if (timeout := dog.expired(loop.time())) is not None:
        emit(timeout)
"""

from __future__ import annotations

from gemini_live import events as ev

__all__ = ["DEFAULT_INTERACTION_TIMEOUT", "InteractionWatchdog"]

#: Seconds an interaction may stay IN_PROGRESS without any progress (pipecat uses 30 s).
DEFAULT_INTERACTION_TIMEOUT = 30.0

#: Server events that show the interaction is still making progress.
_PROGRESS = (
    ev.ModelAudio,
    ev.ModelText,
    ev.ModelPart,
    ev.OutputTranscription,
    ev.ToolCall,
    ev.GenerationComplete,
)


class InteractionWatchdog:
    """Arms at a ``TurnComplete`` with ``IN_PROGRESS``, disarms when the interaction ends.

    * armed by ``TurnComplete(interaction_status="IN_PROGRESS")`` (deadline = now + timeout);
    * while armed, model output (audio, text, transcript, tool call, generationComplete)
      and further IN_PROGRESS turn ends push the deadline out again;
    * disarmed by a ``TurnComplete`` that ends the interaction (``IDLE`` or no status),
      by ``Closed``, by a fresh session (``Resumed(state_restored=False)``: the
      interaction is gone) and by :meth:`expired` firing.

    ``timeout=None`` (or <= 0) turns the watchdog off.
    """

    __slots__ = ("_deadline", "_last", "_since", "timeout")

    def __init__(self, timeout: float | None = DEFAULT_INTERACTION_TIMEOUT) -> None:
        self.timeout = timeout if timeout is not None and timeout > 0 else None
        self._deadline: float | None = None
        self._since: float | None = None
        self._last: float | None = None

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    def observe(self, event: ev.Event, now: float) -> None:
        """Feed one event (``now``: the same monotonic clock the deadline is read with)."""
        if self.timeout is None:
            return
        if isinstance(event, ev.TurnComplete):
            if event.interaction_done:
                self._disarm()
            else:
                if self._since is None:
                    self._since = now
                self._progress(now)
        elif isinstance(event, _PROGRESS):
            if self._deadline is not None:
                self._progress(now)
        elif isinstance(event, ev.Closed | ev.InteractionTimeout) or (
            isinstance(event, ev.Resumed) and not event.state_restored
        ):
            self._disarm()

    def deadline(self) -> float | None:
        """When to call :meth:`expired` next (None: the watchdog is not armed)."""
        return self._deadline

    def expired(self, now: float) -> ev.InteractionTimeout | None:
        """The timeout event if the deadline has passed (then the watchdog disarms)."""
        if self._deadline is None or now < self._deadline:
            return None
        last = self._last if self._last is not None else now
        self._disarm()
        return ev.InteractionTimeout(seconds=max(0.0, now - last))

    def _progress(self, now: float) -> None:
        assert self.timeout is not None
        self._last = now
        self._deadline = now + self.timeout

    def _disarm(self) -> None:
        self._deadline = self._since = self._last = None
