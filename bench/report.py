"""Ratios, targets and the printed table of a benchmark run."""

from __future__ import annotations

from typing import Any

WORKLOADS = ["append1", "append10", "tail20_10k", "tail20_100k", "full1k", "pop", "concurrent"]
IMPLS = ["floor", "convostore", "sdk"]
WRITES = ["append1", "append10", "pop", "concurrent"]

# The targets of issue 7: convostore's throughput as a share of the floor's.
MIN_RATIO = {"append1": 0.8, "append10": 0.8, "pop": 0.8, "concurrent": 0.8}
MIN_RATIO.update({"tail20_10k": 0.7, "tail20_100k": 0.7, "full1k": 0.9})
MAX_TAIL_GROWTH = 1.1  # p50 at 100k items / p50 at 10k items
MAX_TAIL_SPREAD = 3.0  # p99 / p50 of a tail read


def _ops(workloads: dict[str, Any], workload: str, impl: str) -> float | None:
    value = workloads.get(workload, {}).get(impl, {}).get("ops_per_s")
    return float(value) if value is not None else None


def ratios(workloads: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """convostore/floor and convostore/SDK throughput, per workload."""
    out: dict[str, dict[str, float | None]] = {}
    for workload in workloads:
        cs = _ops(workloads, workload, "convostore")
        floor = _ops(workloads, workload, "floor")
        sdk = _ops(workloads, workload, "sdk")
        out[workload] = {
            "convostore/floor": cs / floor if cs and floor else None,
            "convostore/sdk": cs / sdk if cs and sdk else None,
        }
    return out


def tail_scaling(workloads: dict[str, Any]) -> dict[str, float | None]:
    """p50 at 100,000 items over p50 at 10,000 items, per implementation."""
    out: dict[str, float | None] = {}
    for impl in IMPLS:
        small = workloads.get("tail20_10k", {}).get(impl, {}).get("p50_ms")
        large = workloads.get("tail20_100k", {}).get(impl, {}).get("p50_ms")
        out[impl] = large / small if small and large else None
    return out


def targets(workloads: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 7 for one backend: the measured value, the bound, met or not."""
    checks: list[dict[str, Any]] = []
    rat = ratios(workloads)

    def check(name: str, value: float | None, bound: float, at_least: bool) -> None:
        met = value is not None and (value >= bound if at_least else value <= bound)
        checks.append({"target": name, "value": value, "bound": bound, "met": met})

    for workload, bound in MIN_RATIO.items():
        if workload in workloads:
            check(
                f"{workload} convostore/floor >= {bound}",
                rat[workload]["convostore/floor"],
                bound,
                True,
            )
    if "tail20_10k" in workloads and "tail20_100k" in workloads:
        growth = tail_scaling(workloads)["convostore"]
        check(f"tail20 p50(100k)/p50(10k) <= {MAX_TAIL_GROWTH}", growth, MAX_TAIL_GROWTH, False)
        for workload in ("tail20_10k", "tail20_100k"):
            stats = workloads[workload].get("convostore", {})
            spread = stats["p99_ms"] / stats["p50_ms"] if "p50_ms" in stats else None
            check(f"{workload} p99/p50 <= {MAX_TAIL_SPREAD}", spread, MAX_TAIL_SPREAD, False)
    if "concurrent" in workloads:
        integrity = workloads["concurrent"].get("convostore", {}).get("integrity")
        errors = sum(integrity.values()) if integrity is not None else None
        check("concurrent integrity errors == 0", errors, 0, False)
    return checks


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def table(backend: str, result: dict[str, Any]) -> str:
    """A Markdown table of one backend's results, with its notes."""
    if "skipped" in result:
        return f"### {backend}\n\nskipped: {result['skipped']}\n"
    workloads = result["workloads"]
    rat = ratios(workloads)
    head = ["workload"]
    for impl in IMPLS:
        head += [f"{impl} ops/s", "p50 ms", "p99 ms", "CPU ms"]
    head += ["cs/floor", "cs/SDK"]
    lines = [
        f"### {backend} ({result.get('server', '')})",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i == 0 else "--:" for i in range(len(head))) + "|",
    ]
    notes: dict[str, str] = {}
    for workload in WORKLOADS:
        if workload not in workloads:
            continue
        cells = [workload]
        for impl in IMPLS:
            stats = workloads[workload].get(impl, {})
            if "error" in stats:
                mark = f"[{len(notes) + 1}]"
                for known, text in notes.items():
                    if text == f"{impl}: {stats['error']}":
                        mark = known
                notes.setdefault(mark, f"{impl}: {stats['error']}")
                cells += [f"failed {mark}", "", "", ""]
                continue
            cells += [
                _num(stats.get("ops_per_s")),
                _num(stats.get("p50_ms")),
                _num(stats.get("p99_ms")),
                _num(stats.get("cpu_ms"), 3),
            ]
        cells += [_num(rat[workload]["convostore/floor"]), _num(rat[workload]["convostore/sdk"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    scaling = tail_scaling(workloads)
    if any(v is not None for v in scaling.values()):
        parts = [f"{impl} {_num(v)}" for impl, v in scaling.items() if v is not None]
        lines.append("tail20 p50 at 100k / p50 at 10k: " + ", ".join(parts))
    integrity = {
        impl: stats["integrity"]
        for impl, stats in workloads.get("concurrent", {}).items()
        if "integrity" in stats
    }
    if integrity:
        parts = [
            f"{impl} " + "/".join(str(counts[k]) for k in ("lost", "duplicated", "misordered"))
            for impl, counts in integrity.items()
        ]
        lines.append("concurrent integrity (lost/duplicated/misordered): " + ", ".join(parts))
    for mark, text in notes.items():
        lines.append(f"{mark} {text}")
    return "\n".join(lines) + "\n"


def target_lines(backend: str, checks: list[dict[str, Any]]) -> str:
    lines = []
    for c in checks:
        flag = "met    " if c["met"] else "NOT MET"
        lines.append(f"  {flag} {backend:<10} {c['target']:<42} measured {_num(c['value'])}")
    return "\n".join(lines)
