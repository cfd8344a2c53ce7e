"""Shared by the benchmarks: where results go and how tables are printed."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
FER2013 = ROOT.parent / "shared" / "data" / "fer2013"
# a K-fold run (MODEL.md's recipes): its fold models score each sharp face without having
# trained on it; runs/prev-kfold is the embedded model's recipe at 40 epochs, a fold a
# session on the CPU (docs/experiments.md, rows 31-32)
KFOLD_RUN = ROOT / "runs" / "prev-kfold"


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def report(name: str, columns: list[str], rows: list[dict], extra: dict | None = None) -> Path:
    """Print a table and write bench/results/NAME.json."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps({"machine": machine(), "rows": rows, **(extra or {})}, indent=2) + "\n"
    )
    print(f"\nwrote {path}")
    return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, list):  # an interval
        return "-".join(_fmt(v) for v in value)
    return "-" if value is None else str(value)


def median_ms(fn, repeats: int = 30) -> float:
    """The median time of `fn()` in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def tree_rss_mb(proc) -> float:
    """Resident memory of a process and all its children (a server's master and workers), MB."""
    import psutil

    parent = psutil.Process(proc.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20
