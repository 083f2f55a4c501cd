"""The cassette file format: its constants, how frames are scrubbed and classified, and
:class:`CassetteWriter` (see :mod:`gemini_live.testing.cassette`)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from gemini_live.errors import excerpt, redact
from gemini_live.testing._canned import bad_input_rate, pcm_rate
from gemini_live.testing._normalize import normalize_keys

#: Version written in the cassette header; readers refuse newer ones.
CASSETTE_VERSION: Final = 1
#: Where :class:`RecordingProxy` forwards by default.
GOOGLE_BASE: Final = "wss://generativelanguage.googleapis.com"
_REDACTED_PREFIX: Final = "<base64 redacted: "
#: Client message kinds that stream: consecutive ones are one step of a replay.
STREAM_KINDS: Final = frozenset({"realtimeInput.audio", "realtimeInput.video"})
#: Longest cassette line read (characters); a longer one is a :class:`CassetteError`.
#: A recorded frame is at most 16 MiB, about 22 MiB as base64 JSON with ``keep_audio``.
MAX_LINE_CHARS: Final = 24 * 1024 * 1024
#: Largest blob a redacted payload may declare (bytes of silence a replay sends in its
#: place); the service's own frame limit.
MAX_BLOB_BYTES: Final = 16 * 1024 * 1024


# --------------------------------------------------------------------------- writing


def _scrub(obj: Any) -> Any:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        is_blob = "mimeType" in obj or "mime_type" in obj
        for k, v in obj.items():
            if is_blob and k == "data" and isinstance(v, str):
                out[k] = f"{_REDACTED_PREFIX}{len(v)} chars = {_decoded_len(v)} bytes>"
            else:
                out[k] = _scrub(v)
        return out
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


def scrub_frame(data: bytes, *, keep_audio: bool = False) -> dict[str, Any]:
    """The recordable form of one frame: ``{"frame": parsed JSON}`` (blob payloads replaced
    unless ``keep_audio``), or ``{"text": ...}`` / ``{"binary": true}`` for non-JSON."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        try:
            text = data.decode()
        except UnicodeDecodeError:
            return {"binary": True}
        return {"text": text[:500]}
    return {"frame": obj if keep_audio else _scrub(obj)}


def client_kind(frame: Any) -> str:
    """The kind of a client message, e.g. ``setup``, ``realtimeInput.audio``,
    ``realtimeInput.text``, ``clientContent``, ``toolResponse`` (either key style)."""
    if not isinstance(frame, dict) or not frame:
        return "unknown"
    obj = normalize_keys(frame)
    key = next(iter(obj))
    if key == "realtimeInput" and isinstance(obj[key], dict) and obj[key]:
        sub = next(iter(obj[key]))
        if sub == "mediaChunks":
            chunks = obj[key][sub] or [{}]
            mime = str(chunks[0].get("mimeType", "")) if isinstance(chunks[0], dict) else ""
            sub = "video" if mime.startswith("image/") else "audio"
        return f"realtimeInput.{sub}"
    return str(key)


def _blob(frame: dict[str, Any]) -> dict[str, Any] | None:
    ri = normalize_keys(frame).get("realtimeInput")
    if not isinstance(ri, dict):
        return None
    blob = ri.get("audio") or ri.get("video")
    if blob is None and isinstance(ri.get("mediaChunks"), list) and ri["mediaChunks"]:
        blob = ri["mediaChunks"][0]
    return blob if isinstance(blob, dict) else None


def _decoded_len(data: str) -> int:
    """Bytes a base64 string decodes to (either alphabet, padded or not)."""
    return len(data.rstrip("=")) * 3 // 4


def _b64_len(data: str) -> int:
    """Bytes a blob held: its base64 length, or the size a redacted blob declares.

    Raises:
        ValueError: a redacted blob whose declared size is not a number or is above
            :data:`MAX_BLOB_BYTES` (a replay would allocate that much silence).
    """
    if data.startswith(_REDACTED_PREFIX):
        words = data[len(_REDACTED_PREFIX) : len(_REDACTED_PREFIX) + 80].rstrip(">").split()
        try:
            if len(words) >= 4 and words[2] == "=":
                n = int(words[3].rstrip(">"))
            else:
                n = int(words[0]) * 3 // 4
        except (IndexError, ValueError):
            raise ValueError(f"unreadable redacted blob {excerpt(data, 60)}") from None
        if not 0 <= n <= MAX_BLOB_BYTES:
            raise ValueError(
                f"a redacted blob declares {n} bytes (at most {MAX_BLOB_BYTES} are allowed)"
            )
        return n
    return _decoded_len(data)


def stream_units(kind: str, frame: Any) -> float:
    """Milliseconds of audio in an audio message, 1 for a video frame, else 0."""
    if kind == "realtimeInput.video":
        return 1.0
    if kind != "realtimeInput.audio" or not isinstance(frame, dict):
        return 0.0
    blob = _blob(frame)
    if blob is None or not isinstance(blob.get("data"), str):
        return 0.0
    why = bad_input_rate(blob.get("mimeType"))
    if why is not None:
        raise ValueError(f"audio blob with an {why}")
    rate = pcm_rate(blob.get("mimeType"))
    return _b64_len(blob["data"]) / 2 / rate * 1000


class CassetteWriter:
    """Appends cassette records to a JSONL file (line-buffered; :meth:`close` ends it).

    With ``atomic=True`` the records go to ``PATH.partial`` beside ``path``;
    :meth:`close` renames it over ``path`` (a clean recording) and :meth:`discard`
    deletes it (a failed one), so ``path`` is either the previous cassette, untouched, or
    a whole new one, never half a recording.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        keep_audio: bool = False,
        clock: Callable[[], float] = time.monotonic,
        atomic: bool = False,
    ) -> None:
        self.path = Path(path)
        self.keep_audio = keep_audio
        self.atomic = atomic
        #: Where the records are written (``path``, or ``PATH.partial`` when atomic).
        self.partial = self.path.with_name(self.path.name + ".partial") if atomic else self.path
        #: Connections whose upstream could not be reached, as ``(conn, error)``.
        self.failures: list[tuple[int, str]] = []
        self._clock = clock
        self._t0 = clock()
        self._file: IO[str] | None = self.partial.open("w", encoding="utf-8")
        self._connections = 0
        self.records = 0
        self.write(0, "meta", event="cassette", version=CASSETTE_VERSION, keep_audio=keep_audio)

    def next_connection(self) -> int:
        self._connections += 1
        return self._connections

    def write(self, conn: int, direction: str, **fields: Any) -> None:
        f = self._file
        if f is None:
            return
        record: dict[str, Any] = {
            "t": round(self._clock() - self._t0, 6),
            "wall": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "conn": conn,
            "dir": direction,
            **fields,
        }
        f.write(redact(json.dumps(record, ensure_ascii=False, separators=(",", ":"))) + "\n")
        f.flush()
        self.records += 1

    def frame(self, conn: int, direction: str, data: bytes) -> None:
        fields = scrub_frame(data, keep_audio=self.keep_audio)
        if direction == "client" and "frame" in fields:
            fields = {"kind": client_kind(fields["frame"]), **fields}
        self.write(conn, direction, bytes=len(data), **fields)

    def connected(self, conn: int, url: str, **extra: Any) -> None:
        # Only scheme, host and path: a query string may hold a key or token.
        parts = urllib.parse.urlsplit(url)
        self.write(
            conn,
            "meta",
            event="connect",
            url=f"{parts.scheme}://{parts.netloc}{parts.path}",
            **extra,
        )

    def closed(self, conn: int, code: int, reason: str, by: str) -> None:
        self.write(conn, "meta", event="close", code=code, reason=reason, by=by)

    def close(self) -> None:
        """End the file (and, when atomic, put it in place of ``path``)."""
        f, self._file = self._file, None
        if f is not None:
            f.close()
            if self.atomic:
                self.partial.replace(self.path)

    def discard(self) -> None:
        """Drop a failed recording: an atomic writer deletes its partial file and leaves
        ``path`` as it was; a plain one only closes the file."""
        f, self._file = self._file, None
        if f is not None:
            f.close()
            if self.atomic:
                self.partial.unlink(missing_ok=True)

    def failed(self, conn: int, error: str) -> None:
        """Record that connection ``conn`` could not reach the upstream (bounded list)."""
        if len(self.failures) < 16:
            self.failures.append((conn, error))
        self.write(conn, "meta", event="connect_failed", error=error)
