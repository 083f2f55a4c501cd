"""Profile the W1 client: ``py-spy record`` when it can attach, cProfile otherwise.

Used by ``python -m bench --only profile`` (writes ``bench/results/profile-*``). The W1
run is longer than the benchmark's (``profile_chunks``) so the steady state dominates the
samples; imports and connect are still in the profile but small.
"""

from __future__ import annotations

import json
import pstats
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procs import PY, ROOT

_LINE_NO = re.compile(r":\d+\)$")
TOP = 18


_COUNT_FLAG = {"pipelined": "--chunks", "ping-pong": "--ping-pong", "paced": "--paced"}


def _client_cmd(
    mode: str, port: int, chunks: int, regime: str = "pipelined", framing: str = "service"
) -> list[str]:
    return [
        PY,
        "-m",
        "bench.client",
        "w1",
        "--mode",
        mode,
        "--port",
        str(port),
        "--framing",
        framing,
        "--regimes",
        regime,
        _COUNT_FLAG[regime],
        str(chunks),
    ]


def _pyspy() -> str | None:
    exe = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    return exe if Path(exe).exists() else None


def summarise_collapsed(text: str) -> dict[str, Any]:
    """Self and inclusive sample shares from py-spy's raw (collapsed stack) output."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    total = 0
    imports = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [_LINE_NO.sub(")", f) for f in stack.split(";")[1:]]  # [0] is the thread
        if not frames:
            continue
        if any("importlib._bootstrap" in f for f in frames):
            imports += count  # start-up, not the steady state
            continue
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl_c[f] += count
    pct = (lambda c: round(c / total * 100, 1)) if total else (lambda c: 0.0)
    return {
        "samples": total,
        "import_samples_excluded": imports,
        "self": [(f, pct(c)) for f, c in self_c.most_common(TOP)],
        "inclusive": [(f, pct(c)) for f, c in incl_c.most_common(TOP * 2)],
    }


def summarise_pstats(path: Path) -> dict[str, Any]:
    st = pstats.Stats(str(path))
    total = st.total_tt  # type: ignore[attr-defined]
    rows = st.stats  # type: ignore[attr-defined]

    def name(k: tuple[str, int, str]) -> str:
        fn, _, func = k
        return f"{func} ({_short(fn)})"

    by_self = sorted(rows.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]
    by_cum = sorted(rows.items(), key=lambda kv: kv[1][3], reverse=True)[: TOP * 2]
    return {
        "total_s": total,
        "self": [(name(k), round(v[2] / total * 100, 1)) for k, v in by_self],
        "inclusive": [(name(k), round(v[3] / total * 100, 1)) for k, v in by_cum],
    }


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def profile_w1(
    mode: str,
    port: int,
    chunks: int,
    outdir: Path,
    regime: str = "pipelined",
    framing: str = "service",
) -> dict[str, Any]:
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = _client_cmd(mode, port, chunks, regime, framing)
    pyspy = _pyspy()
    result: dict[str, Any] = {"mode": mode, "chunks": chunks, "regime": regime}
    if pyspy is not None:
        raw = outdir / f"profile-w1-{mode}-{regime}.collapsed.txt"
        svg = outdir / f"profile-w1-{mode}-{regime}.svg"
        try:
            proc = subprocess.run(
                [pyspy, "record", "--rate", "1000", "--format", "raw", "-o", str(raw), "--", *cmd],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            run_out = proc.stdout
            run = _result_line(run_out)
            if "error" in run:
                result["error"] = f"the W1 client failed: {run['error']}"
                return result
            if proc.returncode == 0 and raw.exists() and raw.stat().st_size:
                result.update(tool="py-spy", raw=str(raw.relative_to(ROOT)))
                result.update(summarise_collapsed(raw.read_text()))
                result["run"] = run
                subprocess.run(
                    [pyspy, "record", "--rate", "1000", "-o", str(svg), "--", *cmd],
                    cwd=ROOT,
                    capture_output=True,
                    timeout=180,
                    check=False,
                )
                if svg.exists():
                    result["flamegraph"] = str(svg.relative_to(ROOT))
                return result
            result["pyspy_error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
        except subprocess.TimeoutExpired:
            result["pyspy_error"] = "timeout"
    stats = outdir / f"profile-w1-{mode}-{regime}.pstats"
    proc = subprocess.run(
        [*cmd, "--cprofile", str(stats)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    result["run"] = _result_line(proc.stdout)
    if "error" in result["run"]:
        result["error"] = f"the W1 client failed: {result['run']['error']}"
        return result
    if not stats.exists():
        result["error"] = (proc.stderr.strip().splitlines() or ["no profile written"])[-1][:300]
        return result
    result.update(tool="cProfile", raw=str(stats.relative_to(ROOT)))
    result.update(summarise_pstats(stats))
    return result


def _result_line(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            try:
                data: dict[str, Any] = json.loads(line[7:])
            except ValueError:
                break
            return data
    return {"error": "no result line"}


def profile_md(prof: dict[str, Any]) -> str:
    out: list[str] = []
    for mode, res in prof.items():
        out.append(f"### {mode}")
        if "error" in res:
            out.append(f"failed: {res['error']}")
            continue
        out.append(
            f"{res.get('tool')}, {res.get('regime', 'pipelined')}, {res.get('chunks')} chunks, "
            f"{res.get('samples', res.get('total_s'))} samples/seconds; raw: `{res.get('raw')}`"
        )
        out += ["", "| self % | function |", "|---:|---|"]
        out += [f"| {p} | `{f}` |" for f, p in res.get("self", [])]
        out += ["", "| inclusive % | function |", "|---:|---|"]
        out += [f"| {p} | `{f}` |" for f, p in res.get("inclusive", [])]
        out.append("")
    return "\n".join(out)
