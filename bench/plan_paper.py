"""Plan the papers' full reproduction (configs/paper.yaml) offline and report the jobs per rule and the
planning time:

    .venv/bin/python bench/plan_paper.py [--configfile configs/paper.yaml] [--repeats 3]

Planning runs in an empty working directory, so every job of the reproduction is counted."""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def plan(configfile: Path) -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", tmp,
               "--configfile", str(configfile), "--cores", "1", "--quiet", "rules"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"planning failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    counts = {}
    table = proc.stdout + proc.stderr
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return seconds, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", type=Path, default=REPO / "configs" / "paper.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    times, counts = [], {}
    for _ in range(args.repeats):
        seconds, counts = plan(args.configfile)
        times.append(seconds)
    print(f"{'rule':<32} jobs")
    for rule, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{rule:<32} {n}")
    print(f"{'total':<32} {sum(counts.values())}")
    print(f"planning time: median {statistics.median(times):.1f} s over {len(times)} runs "
          f"(min {min(times):.1f}, max {max(times):.1f})")


if __name__ == "__main__":
    main()
