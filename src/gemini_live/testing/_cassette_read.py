"""Reading a cassette back: :class:`Cassette` and its recorded connections (see
:mod:`gemini_live.testing.cassette`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pybase64

from gemini_live.errors import CassetteError, excerpt
from gemini_live.testing._cassette_file import (
    _REDACTED_PREFIX,
    CASSETTE_VERSION,
    MAX_BLOB_BYTES,
    MAX_LINE_CHARS,
    STREAM_KINDS,
    _b64_len,
    client_kind,
    stream_units,
)
from gemini_live.transport._common import sendable

# --------------------------------------------------------------------------- reading


@dataclass(slots=True)
class Step:
    """One client step of a recorded connection: a message, or a run of streamed chunks."""

    kind: str
    t: float
    units: float = 0.0
    messages: int = 1
    #: The recorded message (payloads scrubbed), for ``match="strict"``; None for streams.
    frame: dict[str, Any] | None = None


@dataclass(slots=True)
class ServerItem:
    """A recorded server frame (or close), due once the client reached its position."""

    t: float
    #: Client steps begun when it was recorded, and units of the last one if it streams.
    steps: int
    units: float
    frame: bytes | None = None
    close: tuple[int, str] | None = None
    #: A frame with redacted blobs: silence is put in their place when it is sent (so a
    #: cassette's silence is never all in memory at once).
    template: dict[str, Any] | None = None

    def payload(self) -> bytes:
        """The frame to send (redacted blobs replaced by silence of their length)."""
        if self.template is not None:
            return json.dumps(_restore_blobs(self.template), separators=(",", ":")).encode()
        assert self.frame is not None
        return self.frame


@dataclass(slots=True)
class RecordedConnection:
    index: int
    url: str = ""
    steps: list[Step] = field(default_factory=list)
    items: list[ServerItem] = field(default_factory=list)


def _restore_blobs(obj: Any) -> Any:
    """Redacted blob payloads -> silence (zero bytes) of the recorded length."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k == "data" and isinstance(v, str) and v.startswith(_REDACTED_PREFIX):
                n = _b64_len(v) // 2 * 2
                out[k] = pybase64.b64encode_as_string(bytes(n))
            else:
                out[k] = _restore_blobs(v)
        return out
    if isinstance(obj, list):
        return [_restore_blobs(v) for v in obj]
    return obj


def _declared_silence(obj: Any) -> int:
    """Bytes of silence the redacted blobs of a frame stand for (checked, not allocated)."""
    if isinstance(obj, dict):
        total = 0
        for k, v in obj.items():
            if k == "data" and isinstance(v, str) and v.startswith(_REDACTED_PREFIX):
                total += _b64_len(v) // 2 * 2
            else:
                total += _declared_silence(v)
        return total
    if isinstance(obj, list):
        return sum(_declared_silence(v) for v in obj)
    return 0


def _int(rec: dict[str, Any], key: str, default: int | None = None) -> int:
    value = rec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} must be an integer, got {excerpt(value, 40)}")
    return value


def _float(rec: dict[str, Any], key: str) -> float:
    value = rec.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key!r} must be a finite number, got {excerpt(value, 40)}")
    return float(value)


def _str(rec: dict[str, Any], key: str) -> str:
    value = rec.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {excerpt(value, 40)}")
    return value


def _read_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """The records of a cassette file with their line numbers (bounded line length)."""
    records: list[tuple[int, dict[str, Any]]] = []
    try:
        with Path(path).open(encoding="utf-8", newline="") as f:
            n = 0
            while True:
                line = f.readline(MAX_LINE_CHARS + 1)
                if not line:
                    break
                n += 1
                if len(line) > MAX_LINE_CHARS:
                    raise CassetteError(f"{path}:{n}: line longer than {MAX_LINE_CHARS} characters")
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except RecursionError:
                    raise CassetteError(f"{path}:{n}: JSON nested too deeply") from None
                except ValueError as exc:
                    raise CassetteError(f"{path}:{n}: not JSON: {exc}") from None
                if not isinstance(rec, dict) or "dir" not in rec or "conn" not in rec:
                    raise CassetteError(f"{path}:{n}: not a cassette record")
                records.append((n, rec))
    except UnicodeDecodeError as exc:
        raise CassetteError(
            f"{path}: not a cassette (not UTF-8 text at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise CassetteError(f"cannot read cassette {path}: {exc.strerror or exc}") from None
    if not records:
        raise CassetteError(f"{path}: empty cassette (no records)")
    return records


@dataclass
class Cassette:
    """A parsed cassette: per recorded connection, the client steps and server items.

    Loading is bounded: lines are at most :data:`MAX_LINE_CHARS` long, and the redacted
    blobs of one frame declare at most :data:`MAX_BLOB_BYTES` in all (their silence is
    made when the frame is sent, not at load). Anything wrong is a
    :class:`~gemini_live.errors.CassetteError` naming the file, the line and the problem
    in one line.
    """

    connections: list[RecordedConnection]
    version: int = CASSETTE_VERSION
    path: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Cassette:
        """Read and check a cassette file (raises :class:`CassetteError`)."""
        return cls._build(_read_records(path), str(path), lines=True)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], *, path: str = "") -> Cassette:
        """Build a cassette from parsed records (errors name the record's index)."""
        return cls._build(list(enumerate(records)), path, lines=False)

    @classmethod
    def _build(
        cls, records: list[tuple[int, dict[str, Any]]], path: str, *, lines: bool
    ) -> Cassette:
        version = CASSETTE_VERSION
        conns: dict[int, RecordedConnection] = {}
        for n, rec in records:
            try:
                if not isinstance(rec, dict):
                    raise ValueError("not a cassette record")
                if rec.get("event") == "cassette":
                    version = _int(rec, "version", CASSETTE_VERSION)
                    if version != CASSETTE_VERSION:
                        raise CassetteError(f"{path}: unsupported cassette version {version}")
                    continue
                _add_record(conns, rec)
            except CassetteError:
                raise
            except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
                where = f"{path}:{n}" if lines else f"{path}: record {n}"
                raise CassetteError(f"{where}: {exc}") from None
            except RecursionError:
                where = f"{path}:{n}" if lines else f"{path}: record {n}"
                raise CassetteError(f"{where}: frame nested too deeply") from None
        ordered = [conns[k] for k in sorted(conns)]
        for i, c in enumerate(ordered):
            c.index = i
        return cls(ordered, version, path)


def _add_record(conns: dict[int, RecordedConnection], rec: dict[str, Any]) -> None:
    conn_id = _int(rec, "conn")
    if conn_id <= 0:
        return
    direction = rec["dir"]
    if direction not in ("meta", "client", "server"):
        raise ValueError(f"'dir' must be meta, client or server, got {excerpt(direction, 40)}")
    conn = conns.setdefault(conn_id, RecordedConnection(index=len(conns)))
    t = _float(rec, "t")
    if direction == "meta":
        if rec.get("event") == "connect":
            conn.url = _str(rec, "url")
        elif rec.get("event") == "close" and rec.get("by") == "server":
            code = _int(rec, "code", 1006)
            if code != 1006 and not sendable(code):  # 1006: a drop, replayed as one
                raise ValueError(f"close code {code} cannot be sent in a close frame")
            conn.items.append(_item(conn, t, close=(code, _str(rec, "reason"))))
        return
    frame = rec.get("frame")
    if direction == "client":
        kind = rec.get("kind") or client_kind(frame)
        if not isinstance(kind, str):
            raise ValueError(f"'kind' must be a string, got {excerpt(kind, 40)}")
        units = stream_units(kind, frame)
        last = conn.steps[-1] if conn.steps else None
        if kind in STREAM_KINDS and last is not None and last.kind == kind:
            last.units += units
            last.messages += 1
        else:
            kept = frame if isinstance(frame, dict) and kind not in STREAM_KINDS else None
            conn.steps.append(Step(kind, t, units, frame=kept))
    elif frame is not None:
        if not isinstance(frame, dict):
            raise ValueError(f"a server 'frame' must be a JSON object, got {excerpt(frame, 40)}")
        silence = _declared_silence(frame)
        if silence > MAX_BLOB_BYTES:
            raise ValueError(
                f"a frame declares {silence} bytes of redacted audio "
                f"(at most {MAX_BLOB_BYTES} are allowed)"
            )
        if silence:
            item = _item(conn, t)
            item.template = frame
        else:
            item = _item(conn, t, frame=json.dumps(frame, separators=(",", ":")).encode())
        conn.items.append(item)


def _item(
    conn: RecordedConnection,
    t: float,
    *,
    frame: bytes | None = None,
    close: tuple[int, str] | None = None,
) -> ServerItem:
    last = conn.steps[-1] if conn.steps else None
    units = last.units if last is not None and last.kind in STREAM_KINDS else 0.0
    return ServerItem(t, len(conn.steps), units, frame, close)
