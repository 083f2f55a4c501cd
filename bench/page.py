"""``python -m bench.page``: docs/performance.md from one run of every benchmark it shows.

* ``run [--out FILE] [--smoke] [--only PART,...]``: runs each part serially, each as a
  subprocess through its own CLI (bounded by a timeout; its process group is killed when
  it runs out), and writes one JSON (``bench/results/page.json`` by default): the run's
  meta (commit, dirty flag, start and end in UTC, machine, load average before and after,
  package versions, each part's wall time) and each part's raw result, or why it failed or
  was skipped. A part that fails does not stop the others.
* ``render [FILE] [--write]``: the page from that JSON and ``bench/page_template.md``
  (printed, or written to docs/performance.md with ``--write``). Every number on the page
  comes from the JSON; rendering twice gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "bench" / "results" / "page.json"
TEMPLATE: Final = ROOT / "bench" / "page_template.md"
PAGE: Final = ROOT / "docs" / "performance.md"
#: Bumped when the JSON's shape changes.
VERSION: Final = 1
#: The stdout/stderr tail kept for a part that failed.
TAIL: Final = 1500


@dataclass(frozen=True)
class Part:
    """One measurement on the page: ``python -m <argv>`` (``{json}`` is replaced by a
    temporary file the part writes), how its result is read, and its bound."""

    key: str
    title: str
    argv: tuple[str, ...]
    smoke_argv: tuple[str, ...]
    #: "file": the JSON written to ``{json}``; "results": the ``RESULT <json>`` lines;
    #: "stdout": the JSON the part printed (from its first line opening one).
    output: str
    timeout: float
    smoke_timeout: float
    #: Estimated seconds of a full run on this project's 2-core machine.
    estimate: float
    needs: Callable[[], str | None] = lambda: None


#: How the page words the W2 fill of a run that spread it (``RunConfig.w2_fill_spread``).
_SPREAD: Final = "(up to half as many again, spread over the sessions) "


def _needs_valgrind() -> str | None:
    return None if shutil.which("valgrind") else "valgrind is not installed"


def _needs_netns() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (network namespaces, iptables)"
    missing = [t for t in ("ip", "iptables") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    return None


def _needs_uvloop() -> str | None:
    from bench.common import uvloop_available

    return None if uvloop_available() else "uvloop is not installed"


W2_IDEAL_MODES: Final = "ideal-cb,gemini-live-picows-cb,floor"
#: Rounds of the W2-against-the-ideal part, each running every mode once, interleaved: the
#: goal is judged on the median of the per-round ratios (three rounds let one noisy round
#: decide; a round at N = 300 on both loops takes ~35 s).
W2_IDEAL_ROUNDS: Final = 7

#: A two-call, one-second bridge_cost for the smoke run.
_BRIDGE_SMOKE: Final = ("--calls", "2", "--seconds", "1", "--warmup", "0.5")

#: In page order. Full-run settings are named on the page (Reproducing).
PARTS: Final = (
    Part(
        "instructions",
        "Instructions per W1 round trip",
        ("bench.instructions", "--repeat", "3", "--json", "{json}"),
        (
            "bench.instructions",
            "--clients",
            "floor,ideal-cb,gemini-live-picows-cb",
            "--loops",
            "asyncio",
            "--round-trips",
            "50",
            "--json",
            "{json}",
        ),
        "file",
        900,
        300,
        180,
        _needs_valgrind,
    ),
    Part(
        "w2_instructions",
        "Instructions per W2 message",
        ("bench.w2_instructions", "--json", "{json}"),
        (
            "bench.w2_instructions",
            "--clients",
            "ideal-cb,gemini-live-picows-cb",
            "--loops",
            "asyncio",
            "--sessions",
            "10",
            "--warmup-periods",
            "1",
            "--periods",
            "2",
            "--json",
            "{json}",
        ),
        "file",
        900,
        300,
        240,
        _needs_valgrind,
    ),
    Part(
        "relay_instructions",
        "Instructions per browser-second (relay)",
        (
            "bench.relay_instructions",
            "--loops",
            "asyncio,uvloop",
            "--paced",
            "2",
            "--warm-up",
            "6",
            "--json",
            "{json}",
        ),
        ("bench.relay_instructions", "--paced", "0.5", "--warm-up", "0.5", "--json", "{json}"),
        "file",
        600,
        300,
        220,
        _needs_valgrind,
    ),
    Part(
        "bridge_cost",
        "Instructions per call-second (Twilio bridge)",
        ("bench.bridge_cost", "--callgrind"),
        ("bench.bridge_cost", "--callgrind", *_BRIDGE_SMOKE),
        "stdout",
        600,
        300,
        75,
        _needs_valgrind,
    ),
    Part(
        "bridge_cost_shared",
        "Instructions per call-second, one shared clock",
        ("bench.bridge_cost", "--callgrind", "--shared-clock"),
        ("bench.bridge_cost", "--callgrind", "--shared-clock", *_BRIDGE_SMOKE),
        "stdout",
        600,
        300,
        75,
        _needs_valgrind,
    ),
    Part(
        "bridge_instructions",
        "Instructions per call-second through the server, the bridge and the session",
        (
            "bench.relay_instructions",
            "--endpoint",
            "twilio",
            "--loops",
            "asyncio,uvloop",
            "--paced",
            "2",
            "--warm-up",
            "6",
            "--browsers",
            "4",
            "--json",
            "{json}",
        ),
        (
            "bench.relay_instructions",
            "--endpoint",
            "twilio",
            "--paced",
            "0.5",
            "--warm-up",
            "0.5",
            "--json",
            "{json}",
        ),
        "file",
        600,
        300,
        210,
        _needs_valgrind,
    ),
    Part(
        "bench",
        "W1, W2, scale-out, W3, codec (python -m bench)",
        ("bench", "--out", "{json}"),
        ("bench", "--smoke", "--no-plot", "--out", "{json}"),
        "file",
        1200,
        120,
        460,
    ),
    Part(
        "w2_ideal",
        "W2 against the ideal callback client",
        (
            "bench",
            "--only",
            "w2",
            "--modes",
            W2_IDEAL_MODES,
            "--w2-n",
            "300",
            "--w2-rounds",
            str(W2_IDEAL_ROUNDS),
            "--loop",
            "both",
            "--no-plot",
            "--out",
            "{json}",
        ),
        (
            "bench",
            "--smoke",
            "--only",
            "w2",
            "--modes",
            W2_IDEAL_MODES,
            "--w2-n",
            "10",
            "--loop",
            "asyncio",
            "--no-plot",
            "--out",
            "{json}",
        ),
        "file",
        900,
        120,
        260,
    ),
    Part(
        "memory",
        "Memory per active session",
        ("bench.memory", "--sessions", "300,1000"),
        ("bench.memory", "--sessions", "20", "--turns", "2", "--chunks", "10"),
        "results",
        400,
        120,
        80,
    ),
    Part(
        "density",
        "Density and latency under load",
        (
            "bench.density",
            "--kinds",
            "floor,relay,bridge,bridge-fast,bridge-fast-aligned",
            "--interleave",
            "--levels",
            "200,300,400",
            "--bridge-levels",
            "160,200,240,300",
            "--seconds",
            "4",
            "--json",
            "{json}",
        ),
        (
            "bench.density",
            "--kinds",
            "floor,relay,bridge",
            "--levels",
            "10",
            "--bridge-levels",
            "5",
            "--seconds",
            "1",
            "--load",
            "50",
            "--load-n",
            "4",
            "--delivery",
            "500",
            "--json",
            "{json}",
        ),
        "file",
        900,
        120,
        260,
    ),
    Part(
        "density_uvloop",
        "Density on uvloop (the bundled server's loop when installed)",
        (
            "bench.density",
            "--loop",
            "uvloop",
            "--kinds",
            "floor,relay,bridge,bridge-fast,bridge-fast-aligned",
            "--interleave",
            "--levels",
            "300,400",
            "--bridge-levels",
            "240,300",
            "--seconds",
            "4",
            "--load",
            "",
            "--delivery",
            "0",
            "--json",
            "{json}",
        ),
        (
            "bench.density",
            "--loop",
            "uvloop",
            "--kinds",
            "floor,bridge",
            "--levels",
            "10",
            "--bridge-levels",
            "5",
            "--seconds",
            "1",
            "--load",
            "",
            "--delivery",
            "0",
            "--json",
            "{json}",
        ),
        "file",
        600,
        120,
        150,
        _needs_uvloop,
    ),
    Part(
        "netloss",
        "Audio under packet loss",
        ("bench.netloss", "--seconds", "5", "--json"),
        ("bench.netloss", "--seconds", "1", "--losses", "0", "--json"),
        "stdout",
        400,
        120,
        80,
        _needs_netns,
    ),
)
PART_KEYS: Final = tuple(p.key for p in PARTS)


# -- run ----------------------------------------------------------------------------------


def _utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _stdout_json(text: str) -> Any:
    """The JSON a part printed: from the first line that opens an object or a list."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("{", "[")):
            value, _ = json.JSONDecoder().raw_decode("\n".join(lines[i:]))
            return value
    raise ValueError("no JSON in the output")


def read_output(part: Part, stdout: str, json_path: Path) -> Any:
    """A finished part's result, read the way its CLI writes it."""
    if part.output == "file":
        return json.loads(json_path.read_text())
    if part.output == "results":
        rows = [
            json.loads(line.removeprefix("RESULT "))
            for line in stdout.splitlines()
            if line.startswith("RESULT ")
        ]
        if not rows:
            raise ValueError("no RESULT lines in the output")
        return rows
    return _stdout_json(stdout)


def command(part: Part, smoke: bool) -> list[str]:
    """The part's command line as the page shows it (``{json}`` as ``FILE``)."""
    argv = part.smoke_argv if smoke else part.argv
    return ["python", "-m", *(("FILE" if a == "{json}" else a) for a in argv)]


def run_part(part: Part, smoke: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """One part in its own process group, bounded; its record for the JSON."""
    rec: dict[str, Any] = {"title": part.title, "command": shlex.join(command(part, smoke))}
    reason = part.needs()
    if reason is not None:
        log(f"== {part.key}: skipped ({reason})")
        return rec | {"status": "skipped", "reason": reason, "seconds": 0.0}
    timeout = part.smoke_timeout if smoke else part.timeout
    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        out = Path(tmp) / f"{part.key}.json"
        argv = [
            sys.executable,
            "-m",
            *(str(out) if a == "{json}" else a for a in (part.smoke_argv if smoke else part.argv)),
        ]
        log(f"== {part.key}: {rec['command']} (at most {timeout:.0f} s)")
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = proc.communicate()
            rec["status"] = "failed"
            rec["reason"] = f"timed out after {timeout:.0f} s"
        finally:
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
        rec["seconds"] = round(time.monotonic() - t0, 1)
        if "status" not in rec:
            try:
                rec["result"] = read_output(part, stdout, out)
            except (OSError, ValueError) as exc:
                rec["status"] = "failed"
                rec["reason"] = (
                    f"exit status {proc.returncode}"
                    if proc.returncode
                    else f"unreadable output: {exc}"
                )
            else:
                # A non-zero exit with a result written (``python -m bench`` exits 1
                # when one workload broke): kept, its tables say which part failed.
                rec["status"] = "partial" if proc.returncode else "ok"
                if proc.returncode:
                    rec["reason"] = f"exit status {proc.returncode}, its result kept"
        if rec["status"] != "ok":
            rec["output_tail"] = (stdout[-TAIL:] + "\n" + stderr[-TAIL:]).strip()
    log(
        f"   {rec['status']} in {rec['seconds']:.0f} s"
        + (f": {rec['reason']}" if "reason" in rec else "")
    )
    return rec


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(
    only: list[str] | None = None,
    smoke: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    parts_run: tuple[Part, ...] = PARTS,
) -> dict[str, Any]:
    """Every selected part of ``parts_run``, serially; the page's JSON."""
    from bench.run import machine_info

    info = machine_info()
    meta: dict[str, Any] = {
        "smoke": smoke,
        "commit": _git("rev-parse", "--short", "HEAD") or None,
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "start": _utc(),
        "machine": {
            k: info[k] for k in ("nproc", "cpu_model", "python", "implementation", "platform")
        },
        "packages": info["packages"],
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    t0 = time.monotonic()
    parts: dict[str, Any] = {}
    for part in parts_run:
        if only and part.key not in only:
            continue
        parts[part.key] = run_part(part, smoke, log)
    meta["end"] = _utc()
    meta["seconds"] = round(time.monotonic() - t0, 1)
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["part_seconds"] = {k: v["seconds"] for k, v in parts.items()}
    return {"version": VERSION, "meta": meta, "parts": parts}


# -- render -------------------------------------------------------------------------------


def _fmt(x: Any, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, spec)


def _ok(data: dict[str, Any], key: str) -> Any:
    """The part's result, or None when it did not run or failed."""
    rec = data["parts"].get(key)
    if rec is None or rec.get("status") not in ("ok", "partial"):
        return None
    return rec["result"]


def _status_note(data: dict[str, Any], key: str) -> str:
    rec = data["parts"].get(key)
    if rec is None:
        return "*Not run in this run (left out with `--only`).*"
    if rec["status"] == "skipped":
        return f"*Skipped in this run: {rec['reason']}.*"
    reason = str(rec.get("reason", "?")).replace("|", "\\|")
    return f"*Failed in this run ({reason}); the rest of the page is unaffected.*"


def _section(data: dict[str, Any], key: str, body: Callable[[Any], str]) -> str:
    res = _ok(data, key)
    if res is None:
        return _status_note(data, key)
    rec = data["parts"][key]
    if rec["status"] == "partial":
        note = f"*This part ended with {rec['reason']}: what it measured is below.*\n\n"
        return note + body(res).rstrip()
    return body(res).rstrip()


def _instruction_counts(rows: list[dict[str, Any]]) -> list[Any]:
    from bench.instructions import Count

    return [Count(r["client"], r["loop"], r["round_trips"], r["instructions"]) for r in rows]


def instruction_medians(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(client, loop) -> median instructions per round trip over the repeats."""
    from bench.instructions import medians

    return medians(_instruction_counts(rows))


def _w2_counts(rows: list[dict[str, Any]]) -> list[Any]:
    from bench.w2_instructions import W2Count

    names = {f.name for f in fields(W2Count)}
    return [W2Count(**{k: v for k, v in r.items() if k in names}) for r in rows]


def w2_instruction_ratios(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """(client, loop) -> instructions per message ÷ its ideal client's, where both ran."""
    from bench.w2_instructions import IDEAL_OF

    per = {(r["client"], r["loop"]): r["instructions"] / r["messages"] for r in rows}
    out = {}
    for (client, loop), v in per.items():
        ideal = IDEAL_OF.get(client)
        if ideal and (ideal, loop) in per:
            out[(client, loop)] = v / per[(ideal, loop)]
    return out


GOAL_W1: Final = 1.15
GOAL_W2: Final = 1.25
GOAL_W2_N: Final = 300
GOAL_PER_CORE: Final = 300
GOAL_KIB: Final = 100.0
#: The density goals: kind, what it counts. bridge-fast (the model's audio 4× faster than
#: real time, as the Live API sends it) is the same goal against a more realistic model;
#: bridge-fast-aligned its worst case (every call's turns at once).
DENSITY_GOALS: Final = (
    ("relay", "relay: talking browsers"),
    ("bridge", "Twilio bridge: calls"),
    ("bridge-fast", "Twilio bridge, model 4× real time: calls"),
    ("bridge-fast-aligned", "Twilio bridge, model 4× real time, all turns at once: calls"),
)
#: The density parts and the loop each ran the measured process on.
DENSITY_LOOPS: Final = (("density", "asyncio"), ("density_uvloop", "uvloop"))
LOAD_NAMES: Final = {"floor": "direct", "bridge": "bridge (twilio)"}
W1_CONSUMERS: Final = (
    ("gemini-live-picows-cb", "ideal-cb", "`on_event`"),
    ("gemini-live-picows", "ideal-queue", "`async for`"),
)


def goals(data: dict[str, Any]) -> list[dict[str, str]]:
    """Issue 24's goals against this run: goal, target, measured, verdict."""
    from bench.instructions import LOOPS

    rows: list[dict[str, str]] = []

    def add(goal: str, target: str, measured: str | None, met: bool | str | None) -> None:
        if isinstance(met, str):
            verdict = met
        else:
            verdict = "not measured" if met is None else ("met" if met else "not met")
        rows.append(
            {"goal": goal, "target": target, "measured": measured or "–", "verdict": verdict}
        )

    ins = _ok(data, "instructions")
    med = instruction_medians(ins) if ins else {}
    for client, ideal, name in W1_CONSUMERS:
        for loop in LOOPS:
            v, ref = med.get((client, loop)), med.get((ideal, loop))
            goal = f"W1 instructions, {name}, {loop}"
            if v is None or ref is None:
                add(goal, f"≤ {GOAL_W1:.2f}× the ideal", None, None)
                continue
            r = v / ref
            add(goal, f"≤ {GOAL_W1:.2f}× the ideal", f"{r:.3f}×", r <= GOAL_W1)
    w2i = _ok(data, "w2_instructions")
    ratios = w2_instruction_ratios(w2i) if w2i else {}
    for loop in LOOPS:
        r2 = ratios.get(("gemini-live-picows-cb", loop))
        add(
            f"W2 instructions per message, `on_event`, {loop}",
            f"≤ {GOAL_W2:.2f}× the ideal",
            None if r2 is None else f"{r2:.3f}×",
            None if r2 is None else r2 <= GOAL_W2,
        )
    w2 = _ok(data, "w2_ideal")
    for loop in LOOPS:
        goal = f"W2 CPU per message at N = 300, `on_event`, {loop}"
        target = f"≤ {GOAL_W2:.2f}× the ideal, delivery p99 < 20 ms"
        row, runs = _w2_ideal_row(w2, loop) if w2 else (None, [])
        if row is None:
            add(goal, target, None, None)
            continue
        ratio = row["x_ideal_rounds"] if row["x_ideal_rounds"] is not None else row["x_ideal"]
        p99 = max(r["latency_ms_p99"] for r in runs)
        real = all(r.get("real_time") for r in runs)
        add(
            goal,
            target,
            f"{ratio:.2f}× ({row['rounds']} rounds), p99 ≤ {p99:.1f} ms"
            + ("" if real else ", not all in real time"),
            ratio <= GOAL_W2 and real,
        )
    dens = _ok(data, "density")
    for kind, name in DENSITY_GOALS:
        for key, loop in DENSITY_LOOPS:
            goal = f"{name} per core, {loop}"
            target = f"≥ {GOAL_PER_CORE} at loop-lag p99 < 20 ms"
            part = dens if key == "density" else _ok(data, key)
            lv = [r for r in (part or {}).get("density", []) if r["kind"] == kind]
            if not lv:
                add(goal, target, None, None)
                continue
            best = max((r["n"] for r in lv if r.get("real_time")), default=0)
            tried = sorted(r["n"] for r in lv)
            add(
                goal,
                target,
                f"{best} (levels tried {', '.join(map(str, tried))})",
                best >= GOAL_PER_CORE,
            )
    mem = _ok(data, "memory")
    by_n = {r["sessions"]: r for r in mem or []}
    for n in (300, 1000):
        goal = f"memory per active session, N = {n:,}"
        target = f"≤ {GOAL_KIB:.0f} KiB above the floor"
        r3 = by_n.get(n)
        if r3 is None:
            add(goal, target, None, None)
            continue
        kib = r3["mid_turn_heap_kib"]
        add(goal, target, f"{kib:.1f} KiB mid-turn (heap)", kib <= GOAL_KIB)
    load = (dens or {}).get("load") or []
    for pct in (10, 50, 80):
        at = [r for r in load if round(r["load_pct"]) == pct]
        goal = f"latency added under load, loop {pct} % busy"
        target = "p50 / p99, frame -> event (no bound set)"
        if not at:
            add(goal, target, None, None)
            continue
        text = "; ".join(
            f"{LOAD_NAMES.get(r['kind'], r['kind'])} {_fmt(r['event_p50_ms'])} / "
            f"{_fmt(r['event_p99_ms'])} ms"
            for r in at
        )
        add(goal, target, text, "measured")
    return rows


def _w2_ideal_row(
    w2: dict[str, Any], loop: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    from bench import report

    if "w2" not in w2 or "error" in w2["w2"]:
        return None, []
    mine = [
        r
        for r in report.w2_vs_ideal(w2["w2"])
        if r["loop"] == loop and r["mode"] == "gemini-live-picows-cb" and r["sessions"] == GOAL_W2_N
    ]
    if not mine:
        return None, []
    row = mine[0]
    runs = [
        r
        for r in w2["w2"]["runs"]
        if r.get("mode") == "gemini-live-picows-cb"
        and r.get("loop") == loop
        and r.get("sessions") == row["sessions"]
        and "latency_ms_p99" in r
    ]
    return row, runs


def goals_md(data: dict[str, Any]) -> str:
    out = ["| goal | target | measured | verdict |", "|---|---|---|---|"]
    out += [
        f"| {g['goal']} | {g['target']} | {g['measured']} | **{g['verdict']}** |"
        if g["verdict"] != "not measured"
        else f"| {g['goal']} | {g['target']} | {g['measured']} | {g['verdict']} |"
        for g in goals(data)
    ]
    return "\n".join(out)


def _instructions_md(rows: list[dict[str, Any]]) -> str:
    from bench.instructions import table

    n = rows[0]["round_trips"] if rows else 0
    reps = max(
        (sum(1 for r in rows if (r["client"], r["loop"]) == k) for k in instruction_medians(rows)),
        default=0,
    )
    return (
        table(_instruction_counts(rows))
        + f"\n\nEach cell: the median of {reps} run(s) of {n} round trips, per round trip."
    )


def _w2_ideal_md(res: dict[str, Any]) -> str:
    from bench import report

    if "w2" not in res:
        return "*Not in this run's results.*"
    if "error" in res["w2"]:
        return "*Failed in this run: " + str(res["w2"]["error"]).replace("|", "\\|") + ".*"
    return report.w2_vs_ideal_md(res["w2"]) or "*No ideal-cb pairs in this run.*"


def _w2_instructions_md(rows: list[dict[str, Any]]) -> str:
    from bench.w2_instructions import table

    return table(_w2_counts(rows))


def _relay_md(rows: list[dict[str, Any]]) -> str:
    out = ["| loop | frames | turn detection | per browser-second | instructions (window) |"]
    out.append("|---|---:|---|---:|---:|")
    for r in rows:
        paced = "per_browser_second" in r
        per = float(r["per_browser_second"] if paced else r["per_round_trip"])
        unit = "" if paced else " (per round trip)"
        out.append(
            f"| {r['loop']} | {r['page_ms']} ms | {r['turn_detection']} "
            f"| {per / 1e6:.2f} M{unit} | {r['instructions']:,} |"
        )
    w = next((r for r in rows if "paced" in r), None)
    if w is not None:
        out += [
            "",
            f"Window: {w['paced']:g} browser-seconds after {w['warm_up']:g} s of warm-up, "
            f"{w['browsers']} browser(s).",
        ]
    return "\n".join(out)


def _bridge_whole_md(rows: list[dict[str, Any]]) -> str:
    out = ["| loop | calls | per call-second | instructions (window) |", "|---|---:|---:|---:|"]
    out += [
        f"| {r['loop']} | {r['browsers']} | {float(r['per_browser_second']) / 1e6:.2f} M "
        f"| {r['instructions']:,} |"
        for r in rows
    ]
    w = next(iter(rows), None)
    if w is not None:
        out += [
            "",
            f"Window: {w['paced']:g} s of {w['browsers']} calls (call-seconds: their "
            f"product) after {w['warm_up']:g} s of warm-up.",
        ]
    return "\n".join(out)


def _bridge_md(data: dict[str, Any]) -> str:
    out = ["| clock | input rate | inline | per call-second |", "|---|---:|---|---:|"]
    for key, clock in (("bridge_cost", "one timer per call"), ("bridge_cost_shared", "shared")):
        r = _ok(data, key)
        if r is None:
            out.append(f"| {clock} | – | – | {_status_note(data, key).strip('*')} |")
            continue
        out.append(
            f"| {clock} | {r['input_rate']} | {'yes' if r['inline'] else 'no'} "
            f"| {r['instructions_per_call_second'] / 1e6:.2f} M |"
        )
    return "\n".join(out)


def _bench_md(res: dict[str, Any], key: str) -> str:
    from bench import report

    if key not in res:
        return "*Not in this run's results.*"
    sub = res[key]
    if isinstance(sub, dict) and "error" in sub:
        return "*Failed in this run: " + str(sub["error"]).replace("|", "\\|") + ".*"
    if key == "w1":
        return report.w1_md(sub)
    if key == "w2":
        return report.w2_summary_md(sub) + "\n\n" + report.w2_md(sub)
    if key == "scale":
        return report.scale_md(sub)
    if key == "w3":
        return report.w3_md(sub)
    from bench.micro import tables

    return tables(sub)


def _bench_settings(res: dict[str, Any]) -> str:
    cfg = res.get("config", {})
    return (
        f"W1: {cfg.get('rounds')} interleaved rounds of {cfg.get('chunks')} pipelined, "
        f"{cfg.get('ping_pong')} ping-pong and {cfg.get('paced')} paced chunks; W2: "
        f"{cfg.get('w2_window')} s measured after {cfg.get('w2_fill', 0)} chunks per session "
        f"{_SPREAD if cfg.get('w2_fill_spread') else ''}sent back to back and "
        f"{cfg.get('w2_warmup')} s of warm-up at N = "
        f"{', '.join(map(str, cfg.get('w2_ns', [])))}; scale-out: N = "
        f"{', '.join(map(str, cfg.get('scale_ns', [])))} over {cfg.get('scale_procs')} "
        f"processes; server framing: {cfg.get('framing')}."
    )


def _memory_md(rows: list[dict[str, Any]]) -> str:
    out = [
        "| N | floor heap KiB | mid-turn heap KiB | mid-turn RSS KiB | window records mid-turn "
        "| after handle heap KiB | after handle RSS KiB | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {r['sessions']} | {r['floor_heap_kib']:.1f} | {r['mid_turn_heap_kib']:.1f} "
        f"| {r['mid_turn_rss_kib']:.1f} | {r['mid_turn_window_records']:.0f} "
        f"| {r['after_handle_heap_kib']:.1f} | {r['after_handle_rss_kib']:.1f} "
        f"| {_fmt(r.get('seconds'), '.1f')} |"
        for r in rows
    ]
    r0 = rows[0]
    out += [
        "",
        f"Each session talked {r0.get('turns')} turns of {r0.get('chunks_per_turn')} "
        "chunks of 20 ms; figures per session, above the floor, in the last turn.",
    ]
    return "\n".join(out)


def _density_md(res: dict[str, Any]) -> str:
    from bench.density import tables

    return tables(res)


def _netloss_md(rows: list[dict[str, Any]]) -> str:
    from bench.netloss import Cell, table

    names = {f.name for f in fields(Cell)}
    cells = []
    for r in rows:
        kw: dict[str, Any] = {k: (math.inf if v is None else v) for k, v in r.items() if k in names}
        cells.append(Cell(**kw))
    return table(cells, NETLOSS_DELAY_MS)


#: ``bench.netloss``'s default one-way delay (the page runs it with its defaults).
NETLOSS_DELAY_MS: Final = 40.0


def _parts_md(data: dict[str, Any]) -> str:
    out = ["| part | command | status | seconds |", "|---|---|---|---:|"]
    for key, rec in data["parts"].items():
        status = rec["status"] + (f" ({rec['reason']})" if "reason" in rec else "")
        status = status.replace("|", "\\|")
        out.append(f"| {key} | `{rec['command']}` | {status} | {rec['seconds']:.0f} |")
    return "\n".join(out)


def _header(data: dict[str, Any]) -> str:
    m = data["meta"]
    commit = (m.get("commit") or "unknown") + (" (with uncommitted changes)" if m["dirty"] else "")
    mins = m["seconds"] / 60
    head = []
    if m.get("smoke"):
        head += [
            "> **This page is from a smoke run (`python -m bench.page run --smoke`): every "
            "part in tiny sizes, to check the page's machinery. It is not a measurement: "
            "do not quote its numbers.**",
            "",
        ]
    mach = m["machine"]
    pk = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items() if v)
    head += [
        f"Every number on this page comes from one run of `python -m bench.page run`: "
        f"{m['start']} to {m['end']} ({mins:.1f} minutes), commit {commit}, raw data "
        "`bench/results/page.json`. The page is generated (`python -m bench.page render "
        "--write`): edit `bench/page_template.md` or `bench/page.py`, not this file.",
        "",
        f"* Machine: {mach['nproc']} CPUs, {mach['cpu_model']}; {mach['platform']}; "
        f"Python {mach['python']} ({mach['implementation']})",
        f"* Packages: {pk}",
        f"* Load average before {', '.join(f'{x:.2f}' for x in m['loadavg_before'])}; after "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_after'])}",
    ]
    return "\n".join(head)


def _plot(data: dict[str, Any]) -> str:
    res = _ok(data, "bench")
    if res is None or data["meta"].get("smoke") or "w2" not in res:
        return ""
    return "![W2 plot](performance-w2.png)"


def blocks(data: dict[str, Any]) -> dict[str, str]:
    """Every placeholder of the template, filled from the page's JSON."""

    def bench_part(key: str) -> str:
        return _section(data, "bench", lambda r: _bench_md(r, key))

    return {
        "header": _header(data),
        "instructions": _section(data, "instructions", _instructions_md),
        "goals": goals_md(data),
        "bench_settings": _section(data, "bench", _bench_settings),
        "w1": bench_part("w1"),
        "w2": bench_part("w2"),
        "w2_plot": _plot(data),
        "w2_ideal": _section(data, "w2_ideal", _w2_ideal_md),
        "w2_instructions": _section(data, "w2_instructions", _w2_instructions_md),
        "scale": bench_part("scale"),
        "w3": bench_part("w3"),
        "memory": _section(data, "memory", _memory_md),
        "micro": bench_part("micro"),
        "density": _section(data, "density", _density_md),
        "density_uvloop": _section(data, "density_uvloop", _density_md),
        "bridge": _bridge_md(data),
        "bridge_whole": _section(data, "bridge_instructions", _bridge_whole_md),
        "relay": _section(data, "relay_instructions", _relay_md),
        "netloss": _section(data, "netloss", _netloss_md),
        "parts": _parts_md(data),
    }


PLACEHOLDER: Final = re.compile(r"\{\{(\w+)\}\}")


def render(data: dict[str, Any], template: str | None = None) -> str:
    """The page: the template with every ``{{name}}`` filled; an unknown name is an error."""
    if data.get("version") != VERSION:
        raise ValueError(f"page JSON version {data.get('version')!r}, expected {VERSION}")
    text = TEMPLATE.read_text() if template is None else template
    filled = blocks(data)

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in filled:
            raise KeyError(f"the template names an unknown block {m.group(1)!r}")
        return filled[m.group(1)]

    page = PLACEHOLDER.sub(sub, text)
    page = re.sub(r"\n{3,}", "\n\n", page)
    return page.rstrip() + "\n"


# -- CLI ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.page", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run every part, write the JSON")
    r.add_argument("--out", type=Path, default=RESULTS)
    r.add_argument("--smoke", action="store_true", help="every part in tiny sizes")
    r.add_argument("--only", default="", help=f"comma list of {', '.join(PART_KEYS)}")
    r.add_argument("--render", action="store_true", help="then write docs/performance.md")
    sub.add_parser("list", help="the parts, their commands and estimated times")
    d = sub.add_parser("render", help="the page from the JSON")
    d.add_argument("json", nargs="?", type=Path, default=RESULTS)
    d.add_argument("--write", action="store_true", help="write docs/performance.md")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        only = [k.strip() for k in args.only.split(",") if k.strip()]
        if bad := [k for k in only if k not in PART_KEYS]:
            ap.error(f"unknown part(s) {bad}; choose from {list(PART_KEYS)}")
        data = run(only or None, args.smoke)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"{args.out} ({data['meta']['seconds']:.0f} s)")
        failed = [k for k, v in data["parts"].items() if v["status"] in ("failed", "partial")]
        if failed:
            print(f"failed parts: {', '.join(failed)}")
        if args.render:
            PAGE.write_text(render(data))
            print(f"written: {PAGE.relative_to(ROOT)}")
        return 1 if failed else 0
    if args.cmd == "list":
        for part in PARTS:
            line = shlex.join(command(part, False))
            print(f"{part.key:20} ~{part.estimate / 60:4.1f} min  {line}")
        print(f"{'total':20} ~{sum(p.estimate for p in PARTS) / 60:4.1f} min (estimated)")
        return 0
    data = json.loads(args.json.read_text())
    page = render(data)
    if args.write:
        PAGE.write_text(page)
        print(f"written: {PAGE.relative_to(ROOT)}")
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
