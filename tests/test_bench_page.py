"""docs/performance.md from one run (``python -m bench.page``): the page rendered from a
small committed JSON has its sections in order, the goals computed from the data, no
placeholder left; the committed page is exactly the render of the committed run; and the
runner records what it ran, what failed and what was skipped. Speed is never asserted."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import page  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "bench_page.json"

#: The page's sections, in order (issue 24: the instruction table first).
SECTIONS = [
    "Instructions per round trip",
    "Goals of issue 24, from this run",
    "W1: per-chunk cost in three regimes",
    "W2: paced sessions in one process",
    "W2 against the ideal callback client (issue 24)",
    "Scale-out and sizing a deployment",
    "W3: fixed costs",
    "Memory per session (`python -m bench.memory`)",
    "Decoding what the service sends",
    "Density and latency under load (`python -m bench.density`)",
    "A phone call's own cost (`python -m bench.bridge_cost`)",
    "Audio under packet loss (`python -m bench.netloss`)",
    "Reproducing",
    "Caveats",
]


def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def _headings(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, flags=re.MULTILINE)


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _goal(data: dict[str, Any], prefix: str) -> dict[str, str]:
    found = [g for g in page.goals(data) if g["goal"].startswith(prefix)]
    assert len(found) == 1, (prefix, page.goals(data))
    return found[0]


def test_the_fixture_has_every_part_and_one_failed() -> None:
    data = _data()
    assert list(data["parts"]) == list(page.PART_KEYS)
    assert [k for k, v in data["parts"].items() if v["status"] == "failed"] == ["netloss"]


def test_render_gives_every_section_in_order_and_no_placeholder() -> None:
    text = page.render(_data())
    assert _headings(text) == SECTIONS
    assert "{{" not in text and "}}" not in text
    assert text.startswith("# Performance\n")
    # The run is named at the top: its date, commit and time taken.
    head = text[: text.index("## ")]
    meta = _data()["meta"]
    assert meta["start"] in head and meta["commit"] in head and "minutes" in head
    # The instruction table comes first, with the ratios to the ideal clients.
    first = _section(text, SECTIONS[0])
    assert "× ideal (asyncio)" in first and "±2 %" in first


def test_a_failed_part_is_named_with_its_reason_and_the_rest_renders() -> None:
    text = page.render(_data())
    loss = _section(text, "Audio under packet loss (`python -m bench.netloss`)")
    assert "Failed in this run (exit status 1)" in loss
    assert "| netloss |" in _section(text, "Reproducing")
    assert "failed (exit status 1)" in _section(text, "Reproducing")
    # The parts that ran show their tables.
    assert "| transport floor" in _section(text, SECTIONS[0])
    assert "| N | floor heap KiB |" in _section(text, SECTIONS[7])


def test_a_partial_part_renders_its_result_and_says_how_it_ended() -> None:
    d = _data()
    d["parts"]["memory"]["status"] = "partial"
    d["parts"]["memory"]["reason"] = "exit status 1, its result kept"
    text = _section(page.render(d), SECTIONS[7])
    assert "ended with exit status 1, its result kept" in text
    assert "| N | floor heap KiB |" in text


def test_render_is_deterministic() -> None:
    assert page.render(_data()) == page.render(_data())


def test_a_w1_goal_flips_with_the_counts() -> None:
    data = _data()
    ideal = next(
        r
        for r in data["parts"]["instructions"]["result"]
        if r["client"] == "ideal-cb" and r["loop"] == "asyncio"
    )
    per_ideal = ideal["instructions"] / ideal["round_trips"]
    for factor, verdict in ((1.10, "met"), (1.20, "not met")):
        d = copy.deepcopy(data)
        for r in d["parts"]["instructions"]["result"]:
            if r["client"] == "gemini-live-picows-cb" and r["loop"] == "asyncio":
                r["instructions"] = round(per_ideal * factor * r["round_trips"])
        g = _goal(d, "W1 instructions, `on_event`, asyncio")
        assert g["verdict"] == verdict and g["measured"] == f"{factor:.3f}×"
        assert f"**{verdict}**" in _section(page.render(d), SECTIONS[1])


def test_the_memory_goal_flips_with_the_heap_per_session() -> None:
    data = _data()
    rows = data["parts"]["memory"]["result"]
    for kib, verdict in ((99.0, "met"), (101.0, "not met")):
        d = copy.deepcopy(data)
        d["parts"]["memory"]["result"] = [
            rows[0] | {"sessions": n, "mid_turn_heap_kib": kib} for n in (300, 1000)
        ]
        assert _goal(d, "memory per active session, N = 300")["verdict"] == verdict
        assert _goal(d, "memory per active session, N = 1,000")["verdict"] == verdict
    # The fixture measured neither N: not measured, not "met".
    assert _goal(data, "memory per active session, N = 1,000")["verdict"] == "not measured"


def test_the_density_goal_flips_with_the_largest_level_in_real_time() -> None:
    data = _data()
    base = next(r for r in data["parts"]["density"]["result"]["density"] if r["kind"] == "relay")
    for levels, verdict in (({200: True, 300: True, 400: False}, "met"), ({200: True}, "not met")):
        d = copy.deepcopy(data)
        d["parts"]["density"]["result"]["density"] = [
            base | {"n": n, "real_time": ok} for n, ok in levels.items()
        ]
        g = _goal(d, "relay: talking browsers per core, asyncio")
        assert g["verdict"] == verdict
        assert g["measured"].startswith("300 " if verdict == "met" else "200 ")
        # The uvloop part is judged from its own levels (the fixture's: 5 bridge calls).
        assert _goal(d, "relay: talking browsers per core, uvloop")["verdict"] == "not measured"
        assert _goal(d, "Twilio bridge: calls per core, uvloop")["verdict"] == "not met"


def test_the_w2_goals_follow_the_ratio_and_real_time() -> None:
    data = _data()
    w2 = data["parts"]["w2_instructions"]["result"]
    ideal = next(r for r in w2 if r["client"] == "ideal-cb" and r["loop"] == "asyncio")
    d = copy.deepcopy(data)
    for r in d["parts"]["w2_instructions"]["result"]:
        if r["client"] == "gemini-live-picows-cb" and r["loop"] == "asyncio":
            r["instructions"] = (
                round(ideal["instructions"] / ideal["messages"] * 1.3) * r["messages"]
            )
    assert _goal(d, "W2 instructions per message, `on_event`, asyncio")["verdict"] == "not met"
    # Wall clock: a run out of real time fails the goal whatever the ratio.
    runs = d["parts"]["w2_ideal"]["result"]["w2"]["runs"]
    for r in runs:
        r["cpu_us_per_msg"] = 10.0
        r["real_time"] = True
    assert _goal(d, "W2 CPU per message at N = 300, `on_event`, asyncio")["verdict"] == "met"
    for r in runs:
        if r["mode"] == "gemini-live-picows-cb":
            r["real_time"] = False
    g = _goal(d, "W2 CPU per message at N = 300, `on_event`, asyncio")
    assert g["verdict"] == "not met" and "not all in real time" in g["measured"]


def test_a_part_left_out_and_a_skipped_one_say_so() -> None:
    d = _data()
    del d["parts"]["memory"]
    d["parts"]["density"] = {
        "title": "x",
        "command": "python -m bench.density",
        "status": "skipped",
        "reason": "needs root",
        "seconds": 0.0,
    }
    text = page.render(d)
    assert "left out with `--only`" in _section(text, SECTIONS[7])
    assert "Skipped in this run: needs root." in _section(text, SECTIONS[9])
    assert _goal(d, "relay: talking browsers per core, asyncio")["verdict"] == "not measured"


def test_bad_templates_and_versions_are_refused() -> None:
    with pytest.raises(KeyError, match="nosuchblock"):
        page.render(_data(), "# x\n{{nosuchblock}}\n")
    d = _data()
    d["version"] = 99
    with pytest.raises(ValueError, match="version"):
        page.render(d)


def test_the_committed_page_is_the_render_of_the_committed_run() -> None:
    committed = json.loads((ROOT / "bench" / "results" / "page.json").read_text())
    assert (ROOT / "docs" / "performance.md").read_text() == page.render(committed), (
        "docs/performance.md drifted from bench/results/page.json: "
        "run `python -m bench.page render --write`"
    )
    if committed["meta"]["smoke"]:
        head = (ROOT / "docs" / "performance.md").read_text()[:1000]
        assert "smoke run" in head and "not a measurement" in head


def test_the_runner_records_a_failure_a_timeout_and_a_skip_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module that prints its result and exits 1 (as `python -m bench` does when one of
    # its workloads broke): the result is kept, the part marked partial.
    (tmp_path / "half_broken.py").write_text(
        'import json, sys\nprint(json.dumps({"w1": {"error": "boom"}}))\nsys.exit(1)\n'
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    parts = (
        page.Part("broken", "t", ("bench.no_such_module",), (), "file", 30, 30, 1),
        page.Part(
            "slow", "t", ("timeit", "-n", "1", "import time; time.sleep(60)"), (), "stdout", 1, 1, 1
        ),
        page.Part("absent", "t", ("bench.page",), (), "file", 30, 30, 1, lambda: "no tool"),
        page.Part("fine", "t", ("bench.page", "--help"), (), "stdout", 30, 30, 1),
        page.Part("half", "t", ("half_broken",), (), "stdout", 30, 30, 1),
    )
    logged: list[str] = []
    data = page.run(log=logged.append, parts_run=parts)
    p = data["parts"]
    assert p["broken"]["status"] == "failed" and p["broken"]["reason"] == "exit status 1"
    assert "no_such_module" in p["broken"]["output_tail"]
    assert p["slow"]["status"] == "failed" and p["slow"]["reason"] == "timed out after 1 s"
    assert p["absent"] == {
        "title": "t",
        "command": "python -m bench.page",
        "status": "skipped",
        "reason": "no tool",
        "seconds": 0.0,
    }
    # --help prints no JSON: the part ran but its output is unreadable.
    assert p["fine"]["status"] == "failed" and "unreadable output" in p["fine"]["reason"]
    assert p["half"]["status"] == "partial"
    assert p["half"]["reason"] == "exit status 1, its result kept"
    assert p["half"]["result"] == {"w1": {"error": "boom"}}
    assert list(data["meta"]["part_seconds"]) == ["broken", "slow", "absent", "fine", "half"]
    for key in ("commit", "dirty", "start", "end", "loadavg_before", "loadavg_after"):
        assert key in data["meta"]


@pytest.mark.bench
@pytest.mark.timeout(90)
def test_page_run_smoke_of_cheap_parts_renders(tmp_path: Path) -> None:
    out = tmp_path / "page.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.page",
            "run",
            "--smoke",
            "--only",
            "memory,w2_ideal",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["meta"]["smoke"] is True
    assert [(k, v["status"]) for k, v in data["parts"].items()] == [
        ("w2_ideal", "ok"),
        ("memory", "ok"),
    ]
    text = page.render(data)
    assert "smoke run" in text[:1000]
    assert "left out with `--only`" in _section(text, SECTIONS[0])
    assert "| gemini-live" in _section(text, SECTIONS[4])
