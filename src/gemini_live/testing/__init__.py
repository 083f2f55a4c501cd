"""Test kit: a fake of the Gemini Live API server that plays a voice model.

:class:`FakeLiveServer` is a real WebSocket server on ``127.0.0.1`` that speaks the server
side of the Live protocol (binary frames, real close codes and reasons, goAway, resumption
handles, tool calls), listens like a voice model (activity detection on audio time,
barge-in), follows scripts (:mod:`gemini_live.testing.script`), replays cassettes
(:mod:`gemini_live.testing.cassette`), and accepts what the official SDK sends (snake_case
keys, URL-safe base64). :meth:`FakeLiveServer.memory_backend` runs the same logic
in-process; ``gemini-live fake-server`` runs it for clients in any language::

    from gemini_live.testing import FakeLiveServer, ToolScript

    async with FakeLiveServer(require_api_key="k") as server:
        ...  # connect to server.url with header x-goog-api-key: k
        await server.wait_for_messages(2)
        server.received               # every decoded client message, per connection
        server.conversation()         # what the model's session state holds
        await server.send_go_away(time_left=1.0)
        await server.drop()           # abrupt close, no close frame (client sees 1006)
        await server.close(1011, "Internal error encountered.")

:func:`validate_server_frame` checks a frame against the official SDK's
``LiveServerMessage`` model (test-only; needs ``google-genai``).

Scripts live in :mod:`gemini_live.testing.script`, cassettes (:class:`Cassette`,
:class:`Recorder`, :class:`RecordingProxy`) in :mod:`gemini_live.testing.cassette`;
:func:`use_cassette` (record or replay, in three lines of a test) is here; the close
reasons below are worded as the service words them. Everything else in the package (the
transport-agnostic core and its rooms, the frame normaliser, the in-process transport) is
internal and may change.
"""

from gemini_live.errors import CassetteDivergence, CassetteError, ScriptError
from gemini_live.testing._canned import (
    API_KEY_INVALID,
    BEARER_INVALID,
    CANCELLED,
    DEADLINE_EXPIRED,
    ENTITY_NOT_FOUND,
    INTERNAL_ERROR,
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    TEXT_NOT_SUPPORTED,
    TOKEN_INVALID,
    TONE_PCM,
    UNREGISTERED_CALLER,
)
from gemini_live.testing._memory import MemoryBackend
from gemini_live.testing._oracle import validate_server_frame
from gemini_live.testing._records import (
    ConnectionRecord,
    Conversation,
    ServerOptions,
    ToolScript,
)
from gemini_live.testing._server import FakeLiveServer, use_cassette
from gemini_live.testing.cassette import Cassette, Recorder, RecordingProxy
from gemini_live.testing.script import Script

__all__ = [
    "API_KEY_INVALID",
    "BEARER_INVALID",
    "CANCELLED",
    "DEADLINE_EXPIRED",
    "ENTITY_NOT_FOUND",
    "INTERNAL_ERROR",
    "INVALID_ARGUMENT",
    "SESSION_NOT_FOUND",
    "TEXT_NOT_SUPPORTED",
    "TOKEN_INVALID",
    "TONE_PCM",
    "UNREGISTERED_CALLER",
    "Cassette",
    "CassetteDivergence",
    "CassetteError",
    "ConnectionRecord",
    "Conversation",
    "FakeLiveServer",
    "MemoryBackend",
    "Recorder",
    "RecordingProxy",
    "Script",
    "ScriptError",
    "ServerOptions",
    "ToolScript",
    "use_cassette",
    "validate_server_frame",
]
