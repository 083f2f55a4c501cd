"""Subprocess plumbing for the orchestrator: the server process and bounded client runs."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


class ServerProc:
    """``python -m bench.server`` with a line-based control channel on stdin/stdout."""

    def __init__(
        self,
        *,
        impl: str = "auto",
        loop: str = "auto",
        framing: str = "service",
        start_timeout: float = 15.0,
        pace_scale: float = 1.0,
    ):
        cmd = [PY, "-m", "bench.server", "--impl", impl, "--loop", loop, "--framing", framing]
        if pace_scale != 1.0:
            cmd += ["--pace-scale", repr(pace_scale)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        line = self._expect("PORT ", start_timeout)
        _, port, self.impl, self.framing = line.split()
        self.port = int(port)
        self.pid = self.proc.pid

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def _expect(self, prefix: str, timeout: float) -> str:
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.close()
                raise RuntimeError(
                    f"bench server: no {prefix.strip()!r} line in {timeout:g} s"
                ) from None
            if line.startswith(prefix):
                return line[len(prefix) :] if prefix != "PORT " else line

    def _command(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def stats(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            self._command("stats")
            data: dict[str, Any] = json.loads(self._expect("STATS ", timeout))
            return data
        except (RuntimeError, OSError, ValueError) as exc:
            return {"error": str(exc)}

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self._command("quit")
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> ServerProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_json(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run ``cmd`` (killed after ``timeout`` s) and return its ``RESULT <json>`` line."""
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:g} s (killed)"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            try:
                data: dict[str, Any] = json.loads(line[7:])
            except ValueError:
                break
            return data
    tail = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    reason = tail[-1].strip() if tail else f"exit code {proc.returncode}, no result"
    return {"error": reason[:300]}


def run_client(args: list[str], timeout: float) -> dict[str, Any]:
    return run_json([PY, "-m", "bench.client", *args], timeout)
