"""Ratios, targets and the printed tables of a benchmark run.

Every ratio is of throughput (ops/s) measured in the same run: an implementation's over the
floor's, and over the fastest peer's. A *peer* is another store a user could pick on the
same database (the Agents SDK's); the fastest peer is chosen per workload. The floor,
convostore and the reference line (the SDK's ``RedisSession``, on another kind of server)
are never the fastest peer.
"""

from __future__ import annotations

from typing import Any

WORKLOADS = ["append1", "append10", "tail20_10k", "tail20_100k", "full1k", "pop", "concurrent"]

# The targets of issue 13, for convostore.
SQLITE_PEER = "sdk_sqlite"
"""On SQLite convostore must keep up with the SDK's default store, ``SQLiteSession``."""
SQLITE_MIN = 1.0
SQLITE_TARGETS = ["append1", "append10", "pop", "concurrent", "full1k", "tail20_10k", "tail20_100k"]
SERVER_MIN = {
    "append1": 0.8,
    "append10": 0.8,
    "pop": 0.8,
    "concurrent": 0.8,
    "tail20_10k": 0.8,
    "tail20_100k": 0.8,
    "full1k": 0.95,
}
"""PostgreSQL and MariaDB/MySQL: convostore's throughput over the floor's, at least."""
MAX_TAIL_GROWTH = 1.1  # p50 at 100k items / p50 at 10k items


def _ops(workloads: dict[str, Any], workload: str, impl: str) -> float | None:
    value = workloads.get(workload, {}).get(impl, {}).get("ops_per_s")
    return float(value) if value is not None else None


def fastest_peer(result: dict[str, Any], workload: str) -> str | None:
    """The peer with the most ops/s on ``workload``, or ``None`` if no peer ran it."""
    best, best_ops = None, 0.0
    for name, info in result.get("implementations", {}).items():
        ops = _ops(result["workloads"], workload, name)
        if info["role"] == "peer" and ops is not None and ops > best_ops:
            best, best_ops = name, ops
    return best


def ratios(result: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per workload and implementation: its ops/s over the fastest peer's and the floor's."""
    workloads = result["workloads"]
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for workload in workloads:
        peer = fastest_peer(result, workload)
        peer_ops = _ops(workloads, workload, peer) if peer else None
        floor_ops = _ops(workloads, workload, "floor")
        out[workload] = {}
        for name in result.get("implementations", {}):
            ops = _ops(workloads, workload, name)
            out[workload][name] = {
                "peer": ops / peer_ops if ops and peer_ops else None,
                "floor": ops / floor_ops if ops and floor_ops else None,
            }
    return out


def tail_scaling(result: dict[str, Any]) -> dict[str, float | None]:
    """p50 at 100,000 items over p50 at 10,000 items, per implementation."""
    workloads = result["workloads"]
    out: dict[str, float | None] = {}
    for impl in result.get("implementations", {}):
        small = workloads.get("tail20_10k", {}).get(impl, {}).get("p50_ms")
        large = workloads.get("tail20_100k", {}).get(impl, {}).get("p50_ms")
        out[impl] = large / small if small and large else None
    return out


def _label(result: dict[str, Any], name: str) -> str:
    return str(result.get("implementations", {}).get(name, {}).get("label", name))


def targets(backend: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 13 for one backend: the measured value, the bound, met or not.

    Targets whose workloads did not run (``--only``) are left out.
    """
    workloads = result["workloads"]
    checks: list[dict[str, Any]] = []

    def check(name: str, value: Any, bound: Any, met: bool) -> None:
        checks.append({"target": name, "value": value, "bound": bound, "met": met})

    def at_least(name: str, value: float | None, bound: float) -> None:
        check(name, value, bound, value is not None and value >= bound)

    def share(workload: str, of: str) -> float | None:
        cs, other = _ops(workloads, workload, "convostore"), _ops(workloads, workload, of)
        return cs / other if cs and other else None

    if backend == "sqlite":
        peer = _label(result, SQLITE_PEER)
        for workload in SQLITE_TARGETS:
            if workload in workloads:
                at_least(
                    f"{workload} convostore / {peer} >= {SQLITE_MIN}",
                    share(workload, SQLITE_PEER),
                    SQLITE_MIN,
                )
    else:
        for workload, bound in SERVER_MIN.items():
            if workload in workloads:
                name = f"{workload} convostore / floor >= {bound}"
                at_least(name, share(workload, "floor"), bound)
    if "tail20_10k" in workloads and "tail20_100k" in workloads:
        growth = tail_scaling(result).get("convostore")
        check(
            f"tail20 p50(100k) / p50(10k) <= {MAX_TAIL_GROWTH}",
            growth,
            MAX_TAIL_GROWTH,
            growth is not None and growth <= MAX_TAIL_GROWTH,
        )
    if "concurrent" in workloads:
        integrity = workloads["concurrent"].get("convostore", {}).get("integrity")
        errors = sum(integrity.values()) if integrity is not None else None
        check("concurrent integrity errors == 0", errors, 0, errors == 0)
    if backend == "sqlite":
        settings = result.get("sqlite_settings", {})
        reference = settings.get(SQLITE_PEER)
        differ = sorted(name for name, s in settings.items() if s != reference)
        text = "/".join(str(v) for v in (reference or {}).values())
        check(
            f"SQLite settings as {_short(_label(result, SQLITE_PEER))}'s ({text or '?'})",
            "differ: " + ", ".join(differ) if differ else "all equal",
            text,
            reference is not None and not differ and reference.get("journal_mode") == "wal",
        )
    fast = result.get("implementations", {}).get("convostore", {}).get("fast_path")
    path = "SQLite worker thread" if backend == "sqlite" else "driver-cursor path"
    check(f"convostore on its fast path ({path})", fast, True, fast is True)
    return checks


def missed(backend: str, checks: list[dict[str, Any]]) -> list[str]:
    """One line per missed target."""
    return [
        f"{backend}: {c['target']} (measured {_value(c['value'])})" for c in checks if not c["met"]
    ]


def number(value: float | None, digits: int = 2) -> str:
    """A figure for a table: thousands separated, fewer digits as it grows; a dash if none."""
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _value(value: Any) -> str:
    if isinstance(value, (bool, int)) or not isinstance(value, float):
        return str(value)
    return number(value)


def _short(label: str) -> str:
    return label.removeprefix("SDK ")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _head(cells: list[str]) -> list[str]:
    rule = "|" + "|".join("---" if i == 0 else "--:" for i in range(len(cells))) + "|"
    return [_row(cells), rule]


def summary_table(backend: str, result: dict[str, Any]) -> str:
    """One row per workload: convostore's ratios first, then every implementation's ops/s."""
    if "skipped" in result:
        return f"### {backend}\n\nskipped: {result['skipped']}\n"
    workloads = result["workloads"]
    rat = ratios(result)
    names = list(result["implementations"])
    head = ["workload", "cs ÷ fastest peer", "cs ÷ floor", "fastest peer"]
    head += [_short(_label(result, n)) for n in names]
    lines = [f"### {backend} ({result.get('server', '')}): ops/s", "", *_head(head)]
    for workload in WORKLOADS:
        if workload not in workloads:
            continue
        peer = fastest_peer(result, workload)
        cs = rat[workload].get("convostore", {})
        cells = [workload, _ratio(cs.get("peer")), _ratio(cs.get("floor"))]
        cells.append(_short(_label(result, peer)) if peer else "—")
        for name in names:
            stats = workloads[workload].get(name, {})
            cells.append("failed" if "error" in stats else number(stats.get("ops_per_s")))
        lines.append(_row(cells))
    return "\n".join(lines) + "\n"


def detail_table(backend: str, result: dict[str, Any]) -> str:
    """One row per workload and implementation: its ratios, ops/s, latencies, CPU; notes."""
    if "skipped" in result:
        return ""
    workloads = result["workloads"]
    rat = ratios(result)
    head = ["workload", "implementation", "÷ fastest peer", "÷ floor", "ops/s", "p50 ms"]
    head += ["p99 ms", "CPU ms"]
    lines = [f"#### {backend}: every implementation", "", *_head(head)]
    notes: dict[str, str] = {}
    for workload in WORKLOADS:
        if workload not in workloads:
            continue
        peer = fastest_peer(result, workload)
        for i, name in enumerate(result["implementations"]):
            stats = workloads[workload].get(name, {})
            label = _label(result, name)
            shown = f"**{label}**" if name == peer else label
            cells = [workload if i == 0 else "", shown]
            if "error" in stats:
                text = f"{label}: {stats['error']}"
                mark = next((m for m, t in notes.items() if t == text), f"[{len(notes) + 1}]")
                notes.setdefault(mark, text)
                lines.append(_row([*cells, f"failed {mark}", "", "", "", "", ""]))
                continue
            r = rat[workload].get(name, {})
            cells += [_ratio(r.get("peer")), _ratio(r.get("floor"))]
            cells += [number(stats.get("ops_per_s")), number(stats.get("p50_ms"))]
            cells += [number(stats.get("p99_ms")), number(stats.get("cpu_ms"), 3)]
            lines.append(_row(cells))
    lines.append("")
    lines.append("**bold**: the fastest peer on that workload.")
    scaling = tail_scaling(result)
    if any(v is not None for v in scaling.values()):
        parts = [f"{_label(result, n)} {number(v)}" for n, v in scaling.items() if v is not None]
        lines.append("tail20 p50 at 100k / p50 at 10k: " + ", ".join(parts))
    integrity = {
        name: stats["integrity"]
        for name, stats in workloads.get("concurrent", {}).items()
        if "integrity" in stats
    }
    if integrity:
        kinds = ("lost", "duplicated", "misordered")
        parts = [
            f"{_label(result, n)} " + "/".join(str(c[k]) for k in kinds)
            for n, c in integrity.items()
        ]
        lines.append("concurrent integrity (lost/duplicated/misordered): " + ", ".join(parts))
    settings = result.get("sqlite_settings")
    if settings:
        parts = [
            f"{_label(result, n)} " + "/".join(str(v) for v in s.values())
            for n, s in settings.items()
        ]
        lines.append("SQLite journal_mode/synchronous: " + ", ".join(parts))
    fast = result["implementations"].get("convostore", {}).get("fast_path")
    if fast is not None:
        path = "SQLite worker thread" if backend == "sqlite" else "driver-cursor path"
        lines.append(f"convostore on its fast path ({path}): {'yes' if fast else 'NO'}")
    for mark, text in notes.items():
        lines.append(f"{mark} {text}")
    return "\n".join(lines) + "\n"


def target_lines(backend: str, checks: list[dict[str, Any]]) -> str:
    lines = []
    for c in checks:
        flag = "met    " if c["met"] else "NOT MET"
        lines.append(f"  {flag} {backend:<10} {c['target']:<50} measured {_value(c['value'])}")
    return "\n".join(lines)
