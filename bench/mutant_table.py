"""Per-module kill rates of ``bench/mutants.py`` results side by side (a Markdown table).

Each argument is one column: a ``--json`` file or a saved log of the runner, or several joined by ``+`` (e.g. the
halves of a run split by ``--module``); a later file's result for the same mutant wins.

    python bench/mutant_table.py before.json after.json
    python bench/mutant_table.py before-a.log+before-b.json after-a.log+after-b.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LINE = re.compile(r"^\s+(killed|SURVIVED|STALE)\s+(\S+?):?\s")


def results(path: str) -> dict[tuple[str, str], str]:
    """{(module, mutant): killed | survived | stale} of one JSON file or runner log."""
    text = Path(path).read_text()
    if path.endswith(".json"):
        return {(r["module"], r["mutant"]): r["result"] for r in json.loads(text)["results"]}
    out, module = {}, None
    for line in text.splitlines():
        if line.startswith("== "):
            module = line[3:].split(":")[0]
        elif module and (m := LINE.match(line)):
            out[(module, m.group(2))] = m.group(1).lower()
    return out


def rates(column: str) -> dict[str, tuple[int, int]]:
    merged: dict[tuple[str, str], str] = {}
    for path in column.split("+"):
        merged.update(results(path))
    out: dict[str, list[int]] = {}
    for (module, _), result in merged.items():
        if result == "stale":
            continue
        k = out.setdefault(module, [0, 0])
        k[0] += result == "killed"
        k[1] += 1
    return {m: (k, n) for m, (k, n) in out.items()}


def main(columns: list[str]) -> None:
    runs = [rates(c) for c in columns]
    modules = list(dict.fromkeys(m for run in runs for m in run))
    print("| module | " + " | ".join(Path(c.split("+")[0]).stem for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for m in modules + ["total"]:
        cells = []
        for run in runs:
            if m == "total":
                k, n = sum(v[0] for v in run.values()), sum(v[1] for v in run.values())
            else:
                k, n = run.get(m, (0, 0))
            cells.append(f"{k}/{n} ({100 * k / n:.0f} %)" if n else "–")
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
