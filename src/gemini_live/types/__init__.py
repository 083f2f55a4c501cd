"""Typed wire messages of the Gemini Live API (msgspec Structs, camelCase on the wire).

A field left at ``UNSET`` (msgspec's marker, of type ``UnsetType``) is not sent at all;
that differs from ``None`` or an empty value, which are sent.
"""

from gemini_live.types._base import (
    UNSET,
    JSONObject,
    UnsetType,
    WireStruct,
    format_duration,
    parse_duration,
)
from gemini_live.types.client import *  # noqa: F403
from gemini_live.types.client import __all__ as _client_all
from gemini_live.types.config import *  # noqa: F403
from gemini_live.types.config import __all__ as _config_all
from gemini_live.types.content import *  # noqa: F403
from gemini_live.types.content import __all__ as _content_all
from gemini_live.types.enums import *  # noqa: F403
from gemini_live.types.enums import __all__ as _enums_all
from gemini_live.types.server import *  # noqa: F403
from gemini_live.types.server import __all__ as _server_all

__all__ = [
    "UNSET",
    "JSONObject",
    "UnsetType",
    "WireStruct",
    "format_duration",
    "parse_duration",
    *_client_all,
    *_config_all,
    *_content_all,
    *_enums_all,
    *_server_all,
]
