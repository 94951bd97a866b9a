"""Measured cost per job, per rule, of a finished run, next to the budget: read from Snakemake's own log of the
run (the time each job started and finished), so it covers every rule, with or without a `benchmark:`
directive; where a rule has one, its benchmark files (RUN_DIR/benchmarks/<rule>/...tsv) add CPU seconds and peak
RSS.

    .venv/bin/python bench/job_costs.py [RUN_DIR] [--log .snakemake/log/<file>.snakemake.log]
                                        [--budget-min 20] [--cores 2]

RUN_DIR defaults to the current directory; the newest complete log there is read. Wall seconds per job include
the Python start-up and imports of the job (about 2-4 s on a laptop), which is what a cluster pays too.

The budget (issue 19): the whole embedded default in 20 min wall on 2 cores, i.e. at most 2 x 1200 = 2400
core-seconds (a job's wall time x the threads it held: a two-thread job holds both cores); STAGE_SHARES splits it
per stage (the file of rules/ that defines a rule names its stage). The second table prints each stage's
core-seconds against its share and says which stages are over."""

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


THREADS = re.compile(r"^\s+threads: (\d+)$")


def job_records(log: Path) -> dict[str, list[tuple[float, int]]]:
    """{rule: [(wall seconds, threads) of each job]} from a Snakemake log (a job's block names its threads
    after its jobid; a job that holds two of the cores costs two core-seconds a second)."""
    now, pending_rule, last = None, None, None
    started: dict[str, tuple[str, datetime]] = {}
    threads: dict[str, int] = {}
    costs: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for line in log.read_text().splitlines():
        if m := STAMP.match(line):
            now = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := START.match(line):
            pending_rule = m.group(1)
        elif (m := JOBID.match(line)) and pending_rule:
            started[m.group(1)] = (pending_rule, now)
            pending_rule, last = None, m.group(1)
        elif (m := THREADS.match(line)) and last is not None:
            threads[last] = int(m.group(1))
            last = None
        elif (m := DONE.match(line)) and m.group(1) in started:
            rule, t0 = started.pop(m.group(1))
            costs[rule].append(((now - t0).total_seconds(), threads.get(m.group(1), 1)))
    return dict(costs)


def job_costs(log: Path) -> dict[str, list[float]]:
    """{rule: [wall seconds of each job]} from a Snakemake log."""
    return {rule: [wall for wall, _ in jobs] for rule, jobs in job_records(log).items()}


def core_costs(log: Path) -> dict[str, list[float]]:
    """{rule: [core-seconds of each job]}: its wall time times the threads Snakemake gave it (cores it held)."""
    return {rule: [wall * n for wall, n in jobs] for rule, jobs in job_records(log).items()}


# Share of the whole default's core-seconds each stage may spend (sums to 1). Translation gets 4 of the 40
# job-minutes (issue 19: "cut the stage's default cost to <= 4 min of job time" while it shows no effect).
STAGE_SHARES = {"data": 0.06, "features": 0.06, "explain": 0.14, "similarity": 0.14, "autoencoders": 0.22,
                "ssl": 0.20, "translation": 0.10, "figures": 0.08}
RULE = re.compile(r"^(?:local)?rule (\w+):", re.M)


def rule_stages(repo: Path) -> dict[str, str]:
    """{rule: stage} from rules/<stage>.smk; generated rules by their prefix (render_fig_*, loss_network_*)."""
    out = {}
    for smk in sorted((repo / "rules").glob("*.smk")):
        for name in RULE.findall(smk.read_text()):
            out[name] = smk.stem
    return out


def stage_of(rule: str, stages: dict[str, str]) -> str:
    if rule in stages:
        return stages[rule]
    if rule.startswith(("render_fig_", "fig_")) or rule == "all":
        return "figures"
    if rule.startswith("loss_network_"):
        return "autoencoders"
    return "other"


def benchmark_costs(run_dir: Path) -> dict[str, dict[str, float]]:
    """{rule: {"jobs", "s", "cpu_time", "max_rss"}} summed over RUN_DIR/benchmarks/<rule>/**/*.tsv (Snakemake's
    benchmark files: wall s, cpu_time in s, max_rss in MB)."""
    import csv

    out: dict[str, dict[str, float]] = {}
    root = run_dir / "benchmarks"
    for tsv in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        rule = tsv.relative_to(root).parts[0]
        with tsv.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        acc = out.setdefault(rule, {"jobs": 0, "s": 0.0, "cpu_time": 0.0, "max_rss": 0.0})
        for row in rows[-1:]:  # the last repeat, as Snakemake writes one row per --benchmark-repeats
            acc["jobs"] += 1
            acc["s"] += float(row.get("s") or 0)
            acc["cpu_time"] += float(row.get("cpu_time") or 0) if row.get("cpu_time") not in ("", "NA") else 0.0
            rss = row.get("max_rss")
            acc["max_rss"] = max(acc["max_rss"], float(rss) if rss not in (None, "", "NA", "-") else 0.0)
    return out


USAGE = re.compile(r"usage: cpu_s=([0-9.]+) max_rss_mb=([0-9.]+)")


def last_usage(log: Path) -> tuple[float, float] | None:
    """(CPU seconds, peak RSS MB) of a job's log: its last usage line (a rerun appends to its log); None when the
    log has none (a killed job)."""
    found = USAGE.findall(log.read_text(errors="replace"))
    return tuple(map(float, found[-1])) if found else None


def log_usage_costs(run_dir: Path) -> dict[str, dict[str, float]]:
    """{rule: {"jobs", "cpu_time", "max_rss"}} from the `usage:` line every script job logs as it exits
    (percept.workflow.log_usage: CPU seconds of the whole process, start-up and imports included, and its peak
    RSS) in RUN_DIR/logs/<rule>/...; the last such line of each log (a rerun appends to its log)."""
    out: dict[str, dict[str, float]] = {}
    root = run_dir / "logs"
    for log in sorted(root.rglob("*.log")) if root.is_dir() else []:
        usage = last_usage(log)
        if usage is None:
            continue
        cpu, rss = usage
        acc = out.setdefault(log.relative_to(root).parts[0], {"jobs": 0, "cpu_time": 0.0, "max_rss": 0.0})
        acc["jobs"] += 1
        acc["cpu_time"] += cpu
        acc["max_rss"] = max(acc["max_rss"], rss)
    return out


def budget_table(costs: dict[str, list[float]], stages: dict[str, str], budget_s: float) -> list[str]:
    """Lines: per stage its core-seconds, its budget (share x budget_s) and whether it is over."""
    spent: dict[str, float] = defaultdict(float)
    for rule, secs in costs.items():
        spent[stage_of(rule, stages)] += sum(secs)
    lines = [f"{'stage':<14}{'core-s':>8}{'budget s':>10}{'share':>8}  status"]
    for stage in list(STAGE_SHARES) + sorted(set(spent) - set(STAGE_SHARES)):
        budget = STAGE_SHARES.get(stage, 0.0) * budget_s
        used = spent.get(stage, 0.0)
        status = "over" if used > budget else "ok"
        lines.append(f"{stage:<14}{used:>8.0f}{budget:>10.0f}{used / budget_s:>8.0%}  {status}")
    total = sum(spent.values())
    lines.append(f"{'all':<14}{total:>8.0f}{budget_s:>10.0f}{total / budget_s:>8.0%}  "
                 f"{'over' if total > budget_s else 'ok'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", nargs="?", type=Path, default=Path("."))
    ap.add_argument("--log", type=Path, help="a specific .snakemake/log/*.snakemake.log")
    ap.add_argument("--budget-min", type=float, default=20.0, help="wall minutes the whole default may take")
    ap.add_argument("--cores", type=int, default=2, help="cores the budget assumes (core-seconds = cores x wall)")
    args = ap.parse_args()
    logs = [args.log] if args.log else sorted((args.run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
    logs = [p for p in logs if "Finished jobid" in p.read_text()]
    if not logs:
        raise SystemExit(f"no finished Snakemake log under {args.run_dir / '.snakemake' / 'log'}")
    costs = job_costs(logs[-1])
    cores = core_costs(logs[-1])
    bench = {**benchmark_costs(args.run_dir), **log_usage_costs(args.run_dir)}  # the jobs' own count first
    stages = rule_stages(Path(__file__).resolve().parents[1])
    budget_s = args.budget_min * 60 * args.cores
    total = sum(map(sum, costs.values()))
    print(f"log: {logs[-1]}")
    print(f"{'rule':<38}{'stage':<13}{'jobs':>5}{'median s':>9}{'total s':>8}{'share':>7}{'cpu s':>7}{'rss MB':>8}")
    for rule, secs in sorted(costs.items(), key=lambda kv: -sum(kv[1])):
        b = bench.get(rule)
        cpu, rss = (f"{b['cpu_time']:>7.0f}", f"{b['max_rss']:>8.0f}") if b else (f"{'-':>7}", f"{'-':>8}")
        print(f"{rule:<38}{stage_of(rule, stages):<13}{len(secs):>5}{statistics.median(secs):>9.0f}"
              f"{sum(secs):>8.0f}{sum(secs) / max(total, 1e-9):>7.0%}{cpu}{rss}")
    cpu_total = sum(b["cpu_time"] for r, b in bench.items() if r in costs)
    print(f"{'all jobs':<38}{'':<13}{sum(map(len, costs.values())):>5}{'':>9}{total:>8.0f}{'':>7}"
          f"{cpu_total:>7.0f}{max((b['max_rss'] for b in bench.values()), default=0):>8.0f}")
    print(f"\nbudget: {args.budget_min:g} min wall on {args.cores} cores = {budget_s:.0f} core-seconds "
          f"(a job's wall time x the threads it held)")
    print("\n".join(budget_table(cores, stages, budget_s)))


if __name__ == "__main__":
    main()
