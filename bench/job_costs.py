"""Measured cost per job, per rule, of a finished run: read from Snakemake's own log of the run (the time each
job started and finished), so it covers every rule, with or without a `benchmark:` directive.

    .venv/bin/python bench/job_costs.py [RUN_DIR] [--log .snakemake/log/<file>.snakemake.log]

RUN_DIR defaults to the current directory; the newest complete log there is read. Wall seconds per job include
the Python start-up and imports of the job (about 2-4 s on a laptop), which is what a cluster pays too."""

from __future__ import annotations

import argparse
import re
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
DONE = re.compile(r"^Finished jobid: (\d+)")


def job_costs(log: Path) -> dict[str, list[float]]:
    """{rule: [wall seconds of each job]} from a Snakemake log."""
    now, pending_rule = None, None
    started: dict[str, tuple[str, datetime]] = {}
    costs: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        if m := STAMP.match(line):
            now = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := START.match(line):
            pending_rule = m.group(1)
        elif (m := JOBID.match(line)) and pending_rule:
            started[m.group(1)] = (pending_rule, now)
            pending_rule = None
        elif (m := DONE.match(line)) and m.group(1) in started:
            rule, t0 = started.pop(m.group(1))
            costs[rule].append((now - t0).total_seconds())
    return dict(costs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", nargs="?", type=Path, default=Path("."))
    ap.add_argument("--log", type=Path, help="a specific .snakemake/log/*.snakemake.log")
    args = ap.parse_args()
    logs = [args.log] if args.log else sorted((args.run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
    logs = [p for p in logs if "Finished jobid" in p.read_text()]
    if not logs:
        raise SystemExit(f"no finished Snakemake log under {args.run_dir / '.snakemake' / 'log'}")
    costs = job_costs(logs[-1])
    print(f"log: {logs[-1]}")
    print(f"{'rule':<34}{'jobs':>5}{'median s':>10}{'total s':>9}")
    for rule, secs in sorted(costs.items(), key=lambda kv: -sum(kv[1])):
        print(f"{rule:<34}{len(secs):>5}{statistics.median(secs):>10.0f}{sum(secs):>9.0f}")
    print(f"{'all jobs':<34}{sum(map(len, costs.values())):>5}{'':>10}{sum(map(sum, costs.values())):>9.0f}")


if __name__ == "__main__":
    main()
