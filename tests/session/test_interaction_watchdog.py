"""The session runs the interaction watchdog's timer (every backend)."""

from __future__ import annotations

import gemini_live as gl
from gemini_live import events as ev
from gemini_live.testing import FakeLiveServer
from gemini_live.types import ServerContent, ServerMessage

from .conftest import config_for
from .test_session import collect_until


async def test_an_interaction_stuck_in_progress_ends_with_a_timeout(backend_name: str) -> None:
    async with FakeLiveServer(auto_reply=False) as server:
        cfg = config_for(server, backend_name, interaction_timeout=0.2)
        async with gl.connect(cfg) as session:
            await session.send_text("think hard")
            await server.wait_for_messages(2)
            await server.send(
                ServerMessage(
                    server_content=ServerContent(
                        turn_complete=True, interaction_status="IN_PROGRESS"
                    )
                )
            )
            got = await collect_until(session, lambda e: isinstance(e, ev.InteractionTimeout))
    turn_ends = [e for e in got if isinstance(e, ev.TurnComplete)]
    assert len(turn_ends) == 1 and not turn_ends[0].interaction_done
    timeout = got[-1]
    assert isinstance(timeout, ev.InteractionTimeout) and timeout.seconds >= 0.2


async def test_an_interaction_that_ends_disarms_the_watchdog(backend_name: str) -> None:
    async with FakeLiveServer(auto_reply=False) as server:
        cfg = config_for(server, backend_name, interaction_timeout=0.2)
        async with gl.connect(cfg) as session:
            await session.send_text("think hard")
            await server.wait_for_messages(2)
            for status in ("IN_PROGRESS", "IDLE"):
                await server.send(
                    ServerMessage(
                        server_content=ServerContent(turn_complete=True, interaction_status=status)
                    )
                )
            await collect_until(
                session, lambda e: isinstance(e, ev.TurnComplete) and e.interaction_done
            )
            # IDLE ended the interaction: the watchdog has no deadline any more.
            assert session._watchdog.deadline() is None
