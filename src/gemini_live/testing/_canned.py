"""Canned service facts the fake server reproduces: close reasons, paths, reply audio, usage.

Nothing here holds state; :mod:`gemini_live.testing._core` composes these pieces.
"""

from __future__ import annotations

import array
import math
import re
import sys
from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec
import pybase64

from gemini_live.types import ModalityTokenCount, Transcription, UsageMetadata

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
    "parse_path",
]

# Close reasons, worded as the real service words them (see docs/protocol.md § close codes).
#: Close reason with 1007: a frame or setup the service cannot use.
INVALID_ARGUMENT: Final = "Request contains an invalid argument."
#: Close reason with 1007: a wrong API key.
API_KEY_INVALID: Final = "API key not valid. Please pass a valid API key."
#: Close reason with 1007: a missing or malformed ephemeral token.
TOKEN_INVALID: Final = (
    "Missing or malformed auth token. Please pass it in an access_token query parameter."
)
#: Close reason with 1008: a call that names no API key (e.g. a token sent where a key belongs).
UNREGISTERED_CALLER: Final = (
    "Method doesn't allow unregistered callers (callers without established identity)."
    " Please use API Key or other form of API consumer identity to call this API."
)
#: Close reason with 1007: a rejected OAuth bearer token.
BEARER_INVALID: Final = "Request had invalid authentication credentials."
#: Close reason with 1008: a resumption handle the service no longer knows.
SESSION_NOT_FOUND: Final = "BidiGenerateContent session not found"
#: Close reason with 1008: a tool response for an unknown or already answered call id.
ENTITY_NOT_FOUND: Final = "Requested entity was not found."
#: Close reason with 1000 when the goAway deadline runs out (the fake's default).
CANCELLED: Final = "The operation was cancelled."
#: Close reason after the goAway deadline (with code 1011).
DEADLINE_EXPIRED: Final = "Deadline expired before operation could complete."
#: Close reason with 1011: a server-side failure (retryable).
INTERNAL_ERROR: Final = "Internal error encountered."
#: Close reason (1007) for TEXT responses on a model that only speaks (which models do is
#: read from :mod:`gemini_live.models`, see ``testing/_families.py``).
TEXT_NOT_SUPPORTED: Final = (
    "The requested combination of response modalities (TEXT) is not supported by the model"
)

EndpointKind = Literal["gemini", "constrained", "vertex"]

# The paths themselves live in gemini_live.auth (one home); the parser below accepts them.

_GEMINI_PATH: Final = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\."
    r"(BidiGenerateContent|BidiGenerateContentConstrained)$"
)
_VERTEX_PATH: Final = re.compile(
    r"^/ws/google\.cloud\.aiplatform\.(v1|v1beta1)\.LlmBidiService/BidiGenerateContent$"
)


def parse_path(path: str) -> tuple[EndpointKind, str] | None:
    """Return ``(kind, api_version)`` for a Live API path, or None for an unknown path.

    A leading double slash (``//ws/...``, as the official SDK sends it) is tolerated.
    """
    path = "/" + path.split("?", 1)[0].lstrip("/")
    m = _GEMINI_PATH.match(path)
    if m:
        kind: EndpointKind = "constrained" if m.group(2).endswith("Constrained") else "gemini"
        return kind, m.group(1)
    m = _VERTEX_PATH.match(path)
    if m:
        return "vertex", m.group(1)
    return None


def header_credentials(
    headers: Mapping[str, str], query: Mapping[str, str]
) -> tuple[str | None, str | None, str | None]:
    """Return ``(api_key, token, bearer)`` presented by a request."""
    key = headers.get("x-goog-api-key") or query.get("key")
    scheme, _, cred = headers.get("authorization", "").strip().partition(" ")
    scheme = scheme.lower()
    token = cred.strip() if scheme == "token" else query.get("access_token")
    bearer = cred.strip() if scheme == "bearer" else None
    return key, token, bearer


# --------------------------------------------------------------------------- audio

# The fake's audio facts are written here on purpose, NOT imported from
# gemini_live._pcm: the fake stands for the service, so it states what the service does
# (from the API reference), independently of what the client believes. Were the client's
# OUTPUT_RATE wrong, a fake sharing it would send audio at the wrong rate too and every test
# would pass; an independent fake makes the client's mistake fail the tests.
# tests/testing/test_kit_layout.py checks that the two agree today.

#: The rate the service speaks at (Hz), and the MIME type it labels its audio with.
OUTPUT_RATE: Final = 24000
OUTPUT_MIME: Final = "audio/pcm;rate=24000"
#: The rate the service assumes for input audio whose MIME type names none (Hz). Not
#: gemini_live._pcm.parse_pcm_rate's default (24000), which reads the *service's* frames.
INPUT_DEFAULT_RATE: Final = 16000
CHUNK_MS: Final = 40


def output_mime(rate: int) -> str:
    """The MIME type the fake labels its PCM16 output at ``rate`` with (any rate: a WAV
    reply plays at its file's rate, which need not be one the service takes as input)."""
    return f"audio/pcm;rate={rate}"


def make_tone(ms: int = CHUNK_MS, rate: int = OUTPUT_RATE, freq: float = 440.0) -> bytes:
    """``ms`` of a sine tone, mono PCM16 little-endian."""
    n = rate * ms // 1000
    samples = array.array(
        "h", (int(6000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


#: One reply chunk: 40 ms of a 440 Hz tone, 24 kHz mono PCM16 little-endian (1920 bytes).
TONE_PCM: Final = make_tone()
_TONE_B64: Final = pybase64.b64encode(TONE_PCM)
_AUDIO_PREFIX: Final = (
    b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"'
    + OUTPUT_MIME.encode()
    + b'","data":"'
    + _TONE_B64
    + b'"}}]}'
)
#: The pre-serialized audio-only reply frame.
AUDIO_FRAME: Final = _AUDIO_PREFIX + b"}}"
_encoder: Final = msgspec.json.Encoder()


def audio_frame(fragment: str | None, pcm: bytes | None = None, mime: str = OUTPUT_MIME) -> bytes:
    """One ``modelTurn`` audio frame (the canned tone unless ``pcm``), + a transcript fragment."""
    if pcm is None:
        if not fragment:
            return AUDIO_FRAME
        prefix = _AUDIO_PREFIX
    else:
        prefix = (
            b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":'
            + _encoder.encode(mime)
            + b',"data":"'
            + pybase64.b64encode(pcm)
            + b'"}}]}'
        )
    if not fragment:
        return prefix + b"}}"
    return b"".join(
        (prefix, b',"outputTranscription":', _encoder.encode(Transcription(text=fragment)), b"}}")
    )


#: The highest input sample rate the fake accepts (Hz).
MAX_INPUT_RATE: Final = 192_000


def pcm_rate(mime: object) -> int:
    """The sample rate named in an input ``audio/pcm;rate=N`` MIME type
    (:data:`INPUT_DEFAULT_RATE` when absent).

    The fake's own reading of the client's MIME type, kept apart from
    gemini_live._pcm.parse_pcm_rate (the client's reading of the service's) so that a
    client writing a MIME type only its own parser understands is caught here.
    """
    if isinstance(mime, str):
        m = re.search(r"rate=(\d{1,7})(?!\d)", mime)
        if m and 0 < int(m.group(1)) <= MAX_INPUT_RATE:
            return int(m.group(1))
    return INPUT_DEFAULT_RATE


def bad_input_rate(mime: object) -> str | None:
    """Why the fake refuses an input audio MIME type's ``rate`` (None: usable or absent).

    A rate of zero, beyond :data:`MAX_INPUT_RATE` or not a number of at most seven digits
    is an invalid argument (1007) here. Unverified against the service, which documents
    only that it resamples whatever rate is named.
    """
    if not isinstance(mime, str) or "rate=" not in mime:
        return None
    m = re.search(r"rate=(\d{1,7})(?![\d])", mime)
    if m is None or not 0 < int(m.group(1)) <= MAX_INPUT_RATE:
        return f"unusable sample rate in {mime[:80]!r}"
    return None


def split_fragments(text: str, n: int) -> list[str]:
    """Split ``text`` into ``n`` word-aligned fragments that concatenate back to ``text``."""
    if n <= 1:
        return [text]
    words = re.findall(r"\s+|\S+\s*", text)
    size = max(1, math.ceil(len(words) / n))
    return ["".join(words[i * size : (i + 1) * size]) for i in range(n)]


# --------------------------------------------------------------------------- usage


def usage(
    prompt_tokens: int,
    response_tokens: int,
    turn_response: int,
    *,
    vertex: bool,
    modality: str = "AUDIO",
) -> UsageMetadata:
    """Usage of one turn, as the service bills it: the prompt is the whole context so far
    (user input and earlier model output), the response is this turn's output only.
    """
    prompt = prompt_tokens + response_tokens - turn_response
    total = prompt + turn_response
    details = [ModalityTokenCount(modality=modality, token_count=turn_response)]
    if vertex:
        return UsageMetadata(
            prompt_token_count=prompt,
            candidates_token_count=turn_response,
            total_token_count=total,
            candidates_tokens_details=details,
            traffic_type="ON_DEMAND",
        )
    return UsageMetadata(
        prompt_token_count=prompt,
        response_token_count=turn_response,
        total_token_count=total,
        response_tokens_details=details,
    )


def result_json(response: Any) -> str:
    """How a tool result is spoken back: the JSON of ``response.output`` (or all of it)."""
    output = response.get("output", response) if isinstance(response, dict) else response
    return msgspec.json.encode(output).decode()
