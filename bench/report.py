"""Markdown tables and the W2 plot from a results dict (``bench/results/*.json``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.modes import ALL_MODES


def _label(mode: str) -> str:
    cls = ALL_MODES.get(mode)
    return cls.label if cls is not None else mode


def _f(x: Any, fmt: str = ".1f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, fmt)


def _failed(reason: str) -> str:
    return "failed: " + reason.replace("|", "\\|")[:160]


def meta_md(meta: dict[str, Any]) -> str:
    pk = meta.get("packages", {})
    pkgs = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    load = meta.get("loadavg_start", [])
    load_end = meta.get("loadavg_end", [])
    return "\n".join(
        [
            f"* Machine: {meta.get('nproc')} CPUs, {meta.get('cpu_model')}; {meta.get('platform')}",
            f"* Python {meta.get('python')} ({meta.get('implementation')}); {pkgs}",
            f"* Load average at start {', '.join(f'{x:.2f}' for x in load)}; "
            f"at end {', '.join(f'{x:.2f}' for x in load_end)}; {meta.get('date')}",
            "* The benchmark server runs on the same machine (separate process; picows, on "
            "uvloop when installed): it competes with the client for the same cores.",
            *([f"* Note: {meta['note']}"] if meta.get("note") else []),
        ]
    )


_REGIME_TEXT = {
    "pipelined": "pipelined (chunks back to back)",
    "ping-pong": "ping-pong (one chunk in flight; every frame wakes the loop)",
    "paced": "paced 20 ms (a live conversation)",
}


def _w1_table(rows: list[dict[str, Any]], key: str, what: str) -> list[str]:
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    keys = list(dict.fromkeys((r["regime"], r["loop"]) for r in rows))
    cell = {(r["regime"], r["loop"], r["mode"]): r for r in rows}
    gl = [m for m in ("gemini-live-picows", "gemini-live-picows-cb") if m in modes]
    has_floor = "floor" in modes
    has_b64 = "floor-b64" in modes
    has_genai = "google-genai" in modes
    short = {"gemini-live-picows": "gl `async for`", "gemini-live-picows-cb": "gl `on_event`"}
    head = ["regime", "loop", *(_label(m) for m in modes)]
    if has_floor:
        head += [f"{short[m]} ÷ floor" for m in gl]
    if has_b64:
        head += [f"{short[m]} ÷ floor + pybase64" for m in gl]
    if has_genai:
        head += [f"google-genai ÷ {short[m]}" for m in gl]
    out = [
        f"{what}:",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|---|" + "---:|" * (len(head) - 2),
    ]
    for regime, loop in keys:
        line = [_REGIME_TEXT.get(regime, regime), loop]
        for m in modes:
            r = cell.get((regime, loop, m), {})
            if key + "_median" in r:
                line.append(f"{r[key + '_median']:.1f} ({r[key + '_min']:.1f})")
            else:
                line.append(_failed(r.get("error", "not run"))[:60])

        def val(m: str, stat: str, regime: str = regime, loop: str = loop) -> float | None:
            v = cell.get((regime, loop, m), {}).get(f"{key}_{stat}")
            return float(v) if v is not None else None

        def ratio(a: str, b: str, digits: int) -> str:
            parts = []
            for stat in ("median", "min"):
                x, y = val(a, stat), val(b, stat)
                parts.append(f"{x / y:.{digits}f}" if x and y else "–")
            return " / ".join(parts) + "×"

        if has_floor:
            line += [ratio(m, "floor", 2) for m in gl]
        if has_b64:
            line += [ratio(m, "floor-b64", 2) for m in gl]
        if has_genai:
            line += [ratio("google-genai", m, 1) for m in gl]
        out.append("| " + " | ".join(line) + " |")
    return out


def w1_md(w1: dict[str, Any]) -> str:
    if "error" in w1:
        return _failed(w1["error"])
    rows = w1["summary"]
    out = _w1_table(
        rows,
        "cpu_us",
        "Client CPU µs per chunk, median (min) over rounds; ratios of the medians / of the mins",
    )
    out += [""]
    out += _w1_table(
        [r for r in rows if r["regime"] != "paced"],
        "wall_us",
        "Wall µs per chunk, median (min); in ping-pong this is the round trip",
    )
    bad = [r for r in rows if r.get("ok", 0) < r.get("runs", 0)]
    if bad:
        out += [
            "",
            "Failed runs: "
            + "; ".join(
                f"{_label(r['mode'])} {r['loop']} {r['regime']}: {r['runs'] - r['ok']}/{r['runs']}"
                for r in bad
            ),
        ]
    return "\n".join(out)


def w2_summary(w2: dict[str, Any]) -> list[dict[str, Any]]:
    """Per series: the largest N kept in real time (on the benchmark's grid)."""
    best: dict[tuple[str, str], int] = {}
    tried: dict[tuple[str, str], list[int]] = {}
    for r in w2.get("runs", []):
        if "skipped" in r:
            continue
        key = (r["mode"], r["loop"])
        tried.setdefault(key, []).append(r["sessions"])
        if r.get("real_time"):
            best[key] = max(best.get(key, 0), r["sessions"])
    rows = []
    for key, ns in tried.items():
        n = best.get(key, 0)
        floor = best.get(("floor", key[1]))
        rows.append(
            {
                "mode": key[0],
                "loop": key[1],
                "max_real_time": n,
                "first_miss": next((x for x in sorted(ns) if x > n), None),
                "x_floor": n / floor if floor else None,
            }
        )
    return rows


def w2_summary_md(w2: dict[str, Any]) -> str:
    out = [
        "| client | loop | most sessions kept in real time | first N that was not "
        "| share of the floor client's count |",
        "|---|---|---:|---:|---:|",
    ]
    for r in w2_summary(w2):
        share = f"{r['x_floor'] * 100:.0f} %" if r["x_floor"] is not None else "–"
        out.append(
            f"| {_label(r['mode'])} | {r['loop']} | {r['max_real_time']} "
            f"| {r['first_miss'] if r['first_miss'] is not None else '–'} | {share} |"
        )
    return "\n".join(out)


def scale_md(scale: dict[str, Any]) -> str:
    if "error" in scale:
        return _failed(scale["error"])
    out = [
        "| N total | client | loop | processes | real time | client CPU % (sum) "
        "| server CPU % | latency p50 / p99 ms (worst process) | send lag p99 ms "
        "| client RSS MiB (sum) |",
        "|---:|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in scale["runs"]:
        head = f"| {r['sessions']} | {_label(r['mode'])} | {r['loop']} | {r['procs']} "
        if "error" in r:
            out.append(head + f"| {_failed(r['error'])} |" + " – |" * 5)
            continue
        out.append(
            head + f"| {'yes' if r['real_time'] else 'no'} | {r['cpu_pct']:.0f} "
            f"| {_f(r.get('server_cpu_pct'), '.0f')} "
            f"| {r['latency_ms_p50']:.1f} / {r['latency_ms_p99']:.1f} "
            f"| {_f(r['send_lag_ms_p99'], '.1f')} | {r['rss_mib']:.0f} |"
        )
    return "\n".join(out)


def w2_md(w2: dict[str, Any]) -> str:
    if "error" in w2:
        return _failed(w2["error"])
    out = [
        "| N | client | loop | client CPU % | CPU µs / msg | server CPU % | send rate "
        "| recv rate | latency p50 / p99 ms | send lag p99 ms | longest GC pause ms "
        "| full GC before ms | load 1m | real time |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    skipped: dict[tuple[str, str], list[int]] = {}
    reasons: dict[tuple[str, str], str] = {}
    for r in w2["runs"]:
        if "skipped" in r:
            key = (r["mode"], r["loop"])
            skipped.setdefault(key, []).append(r["sessions"])
            reasons[key] = r["skipped"]
            continue
        head = f"| {r['sessions']} | {_label(r['mode'])} | {r['loop']} "
        if "error" in r:
            out.append(head + f"| {_failed(r['error'])} |" + " – |" * 10 + " no |")
            continue
        out.append(
            head + f"| {r['cpu_pct']:.0f} | {_f(r.get('cpu_us_per_msg'), '.1f')} "
            f"| {_f(r.get('server_cpu_pct'), '.0f')} "
            f"| {r['send_rate'] * 100:.1f}% | {r['recv_rate'] * 100:.1f}% "
            f"| {r['latency_ms_p50']:.1f} / {r['latency_ms_p99']:.1f} "
            f"| {_f(r['send_lag_ms_p99'], '.1f')} "
            f"| {_f(max(r['gc_longest_ms']) if r.get('gc_longest_ms') else None, '.1f')} "
            f"| {_f(r.get('pre_collect_ms'), '.1f')} "
            f"| {_f(r.get('loadavg_1m'), '.1f')} | {'yes' if r['real_time'] else 'no'} |"
        )
    out += [
        "",
        "Real time = send rate ≥ 98 %, receive rate ≥ 98 %, delivery p99 < 20 ms and send "
        "lag p99 < 20 ms (one audio frame). CPU % is of one core; CPU µs / msg = client "
        "CPU over the window ÷ "
        "(chunks sent + replies received in it). The server runs on the same machine "
        "(server CPU %); load 1m is the machine's load average when the run ended. "
        "Longest GC pause: inside the window. Full GC before: the `gc.collect()` that "
        "precedes the window (0.5 s before it, so the clock has caught up when it starts): "
        "its length grows with the objects the collector tracks per session.",
    ]
    for (mode, loop), ns in skipped.items():
        out.append(
            f"Not run: {_label(mode)} ({loop}) at N = {', '.join(map(str, ns))} "
            f"({reasons[(mode, loop)]})."
        )
    return "\n".join(out)


#: The reference of the W2 CPU-per-message comparison (issue 24: ≤ 1.25× at N = 300).
W2_IDEAL = "ideal-cb"


def w2_vs_ideal(w2: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (N, loop, mode): CPU µs per message over the rounds and the ratio to ``ideal-cb``.

    ``x_ideal`` is the ratio of the medians; ``x_ideal_rounds`` the median of the per-round
    ratios (each round's runs were interleaved, so a round's pair shares the machine's
    conditions). Empty without ideal-cb runs.
    """
    per: dict[tuple[int, str, str], dict[int, float]] = {}
    sys_part: dict[tuple[int, str, str], list[float]] = {}
    for r in w2.get("runs", []):
        if "cpu_us_per_msg" not in r or "error" in r:
            continue
        key = (r["sessions"], r["loop"], r["mode"])
        per.setdefault(key, {})[r.get("round", 0)] = r["cpu_us_per_msg"]
        if "sys_us_per_msg" in r:
            sys_part.setdefault(key, []).append(r["sys_us_per_msg"])
    rows: list[dict[str, Any]] = []
    for (n, loop, mode), by_round in per.items():
        ref = per.get((n, loop, W2_IDEAL))
        if ref is None:
            continue
        med = _med(list(by_round.values()))
        pairs = [by_round[k] / ref[k] for k in by_round if k in ref]
        rows.append(
            {
                "sessions": n,
                "loop": loop,
                "mode": mode,
                "rounds": len(by_round),
                "cpu_us_per_msg": med,
                "cpu_us_min": min(by_round.values()),
                "x_ideal": med / _med(list(ref.values())),
                "x_ideal_rounds": _med(pairs) if pairs else None,
                "sys_us_per_msg": _med(sys_part[(n, loop, mode)])
                if (n, loop, mode) in sys_part
                else None,
            }
        )
    return sorted(rows, key=lambda r: (r["sessions"], r["loop"]))


def w2_vs_ideal_md(w2: dict[str, Any]) -> str:
    rows = w2_vs_ideal(w2)
    if not rows:
        return ""
    out = [
        "| N | loop | client | rounds | CPU µs / msg (median) | min | of it system µs / msg "
        "| × ideal callback client (medians) | × ideal (median of per-round ratios) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    out.extend(
        f"| {r['sessions']} | {r['loop']} | {_label(r['mode'])} | {r['rounds']} "
        f"| {r['cpu_us_per_msg']:.1f} | {r['cpu_us_min']:.1f} "
        f"| {_f(r['sys_us_per_msg'], '.1f')} | {r['x_ideal']:.2f}× "
        f"| {_f(r['x_ideal_rounds'], '.2f')}× |"
        for r in rows
    )
    return "\n".join(out)


def w3_md(w3: dict[str, Any]) -> str:
    if "error" in w3:
        return _failed(w3["error"])
    out = [
        "Import time (fresh interpreter, `time.perf_counter()` around the import; every "
        "module's bytecode cached by an untimed first import, as after an install; the "
        "modules' runs interleaved):",
        "",
        "| module | median ms | min ms |",
        "|---|---:|---:|",
    ]
    for r in w3["imports"]:
        if "median_ms" in r:
            out.append(f"| `import {r['module']}` | {r['median_ms']:.0f} | {r['min_ms']:.0f} |")
        else:
            out.append(f"| `import {r['module']}` | {_failed(r.get('error', '?'))} | – |")
    out += [
        "",
        "| client | first connect+setup ms | connect+setup ms median (min) "
        "| resume after goAway ms median (min) | resumed with handle (server count) "
        "| idle KiB / session |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in w3["modes"]:
        name = _label(r["mode"])
        if "error" in r:
            out.append(f"| {name} | {_failed(r['error'])} |" + " – |" * 4)
            continue
        c, rs = r["connect_ms"], r["resume_ms"]
        out.append(
            f"| {name} | {r['cold_connect_ms']:.1f} "
            f"| {_med(c):.2f} ({min(c) if c else float('nan'):.2f}) "
            f"| {_med(rs):.2f} ({min(rs) if rs else float('nan'):.2f}) "
            f"| {r['server_resumed']}/{len(rs)} | {r['idle_kib_per_session']:.1f} |"
        )
    return "\n".join(out)


def _med(xs: list[float]) -> float:
    from bench.common import median

    return median(xs)


def markdown(results: dict[str, Any]) -> str:
    parts = ["## Environment", "", meta_md(results["meta"])]
    cfg = results.get("config", {})
    if "w1" in results:
        parts += [
            "",
            f"## W1: one session, per-chunk cost in three regimes ({cfg.get('rounds')} "
            "interleaved rounds, fresh process each; server framing: "
            f"{cfg.get('framing', 'compact')})",
            "",
            f"Per run: {cfg.get('chunks')} chunks pipelined, {cfg.get('ping_pong')} ping-pong, "
            f"{cfg.get('paced')} paced, after one untimed warm-up turn; `gc.collect()` "
            "before each regime.",
            "",
            w1_md(results["w1"]),
        ]
    if "w2" in results:
        cfg = results.get("config", {})
        parts += [
            "",
            f"## W2: N concurrent real-time sessions in one process "
            f"({cfg.get('w2_window')} s measured after {cfg.get('w2_fill', 0)} chunks per "
            f"session{', up to half as many again,' if cfg.get('w2_fill_spread') else ''} "
            "sent back to back and "
            f"{cfg.get('w2_warmup')} s warm-up)",
            "",
            w2_summary_md(results["w2"]),
            "",
            w2_md(results["w2"]),
        ]
        vs_ideal = w2_vs_ideal_md(results["w2"])
        if vs_ideal:
            parts += [
                "",
                "### W2: CPU per message against the ideal callback client",
                "",
                vs_ideal,
            ]
    if "scale" in results:
        parts += [
            "",
            "## Scale-out: W2 with the sessions split over client processes",
            "",
            scale_md(results["scale"]),
        ]
    if "w3" in results:
        parts += ["", "## W3: fixed costs", "", w3_md(results["w3"])]
    if "micro" in results:
        from bench.micro import tables

        m = results["micro"]
        parts += ["", "## Codec micro-benchmarks", ""]
        parts.append(_failed(m["error"]) if "error" in m else tables(m))
    if "profile" in results:
        from bench.profile import profile_md

        parts += ["", "## Profile of the W1 client", "", profile_md(results["profile"])]
    return "\n".join(parts)


def _plot_y(v: Any) -> float:
    """NaN (skipped by matplotlib) for missing values; floored for log axes."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return float("nan")
    return max(float(v), 0.01)


def plot_w2(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in results["w2"]["runs"] if "cpu_pct" in r]
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        series.setdefault((r["mode"], r["loop"]), []).append(r)
    fig, (ax_cpu, ax_msg, ax_lat) = plt.subplots(1, 3, figsize=(16, 5))
    panels = (
        (ax_cpu, "cpu_pct", "client CPU % (of one core)", "client CPU"),
        (ax_msg, "cpu_us_per_msg", "client CPU µs per message (sent + received)", "cost"),
        (ax_lat, "latency_ms_p99", "delivery latency p99 (ms)", "server send -> event, p99"),
    )
    for (mode, loop), rs in series.items():
        rs.sort(key=lambda r: r["sessions"])
        xs = [r["sessions"] for r in rs]
        name = f"{_label(mode)} [{loop}]"
        style = "--" if loop == "uvloop" else "-"
        color = None
        for ax, key, _, _ in panels:
            ys = [_plot_y(r.get(key)) for r in rs]
            (line,) = ax.plot(xs, ys, style, marker="o", label=name, color=color)
            color = line.get_color()
            bad = [(x, y) for x, y, r in zip(xs, ys, rs, strict=True) if not r["real_time"]]
            ax.scatter(
                [b[0] for b in bad],
                [b[1] for b in bad],
                s=120,
                facecolors="none",
                edgecolors="red",
                zorder=3,
            )
    all_n = [r["sessions"] for r in runs] or [1]
    for ax, _, ylabel, title in panels:
        ax.set_xscale("log")
        ax.set_xlim(min(all_n) * 0.8, max(all_n) * 1.25)
        ax.set_xlabel("concurrent sessions (N)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"W2: {title}")
        ax.grid(True, which="both", alpha=0.3)
    ax_lat.set_yscale("log")
    ax_lat.axhline(20, color="red", alpha=0.4, linestyle=":")
    handles, labels = ax_cpu.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    meta = results.get("meta", {})
    fig.suptitle(
        f"{meta.get('nproc')} CPUs, {meta.get('cpu_model')}, Python {meta.get('python')}; "
        "red ring = real time not kept" + (f" — {meta['note']}" if meta.get("note") else ""),
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
