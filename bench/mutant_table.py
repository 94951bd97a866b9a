"""Per-module kill rates of one or more ``bench/mutants.py --json`` results side by side (a Markdown table).

    python bench/mutant_table.py before.json after.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rates(path: str) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for r in json.loads(Path(path).read_text())["results"]:
        if r["result"] == "stale":
            continue
        k = out.setdefault(r["module"], [0, 0])
        k[0] += r["result"] == "killed"
        k[1] += 1
    return {m: (k, n) for m, (k, n) in out.items()}


def main(paths: list[str]) -> None:
    runs = [rates(p) for p in paths]
    modules = list(dict.fromkeys(m for run in runs for m in run))
    print("| module | " + " | ".join(Path(p).stem for p in paths) + " |")
    print("|---|" + "---|" * len(paths))
    for m in modules + ["total"]:
        cells = []
        for run in runs:
            k, n = (sum(v[0] for v in run.values()), sum(v[1] for v in run.values())) if m == "total" else run.get(m, (0, 0))
            cells.append(f"{k}/{n} ({100 * k / n:.0f} %)" if n else "–")
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
