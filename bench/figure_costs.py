"""What each figure of a finished run cost: the CPU seconds of every job its target needs, read from the
``usage:`` line each job logs as it exits (percept.workflow.log_usage: the whole process, Python start-up and
imports included), over the figure's upstream DAG as Snakemake plans it for the run's config.

    .venv/bin/python bench/figure_costs.py RUN_DIR [--configfile CONFIG ...] [--markdown]

Per figure: the jobs and CPU-minutes of building it alone from an empty directory ("from scratch": every job
upstream of its render job, shared ones included), and of the jobs no other figure needs ("own"). The shared
jobs (datasets, feature caches, the classifiers...) are counted once in the last line, "all figures".
RUN_DIR is the run's working directory (its logs/ hold the usage lines); the config defaults to the
repository's config.yaml (the embedded default, which is what the README's figure table reports).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests")]

from job_costs import last_usage  # noqa: E402 (bench/ is no package)


def job_cpu(run_dir: Path, job: dict) -> float | None:
    """CPU seconds of one planned job, from the last usage line of its log (None: no log, or no line)."""
    for log in job["log"]:
        path = run_dir / log
        if path.is_file() and (usage := last_usage(path)) is not None:
            return usage[0]
    return None


def upstream(jobs: list[dict]) -> dict[int, set[int]]:
    """For each job (by index), the indices of every job it needs, itself included."""
    producer = {out: i for i, j in enumerate(jobs) for out in j["output"]}
    memo: dict[int, set[int]] = {}

    def need(i: int) -> set[int]:
        if i not in memo:
            memo[i] = {i}
            for f in jobs[i]["input"]:
                if f in producer and producer[f] != i:
                    memo[i] |= need(producer[f])
        return memo[i]

    return {i: need(i) for i in range(len(jobs))}


def figure_costs(run_dir: Path, jobs: list[dict]) -> tuple[list[dict], list[str]]:
    """Rows (figure, jobs, from-scratch and own CPU s) and the planned jobs that logged no usage line."""
    cpu = [job_cpu(run_dir, j) for j in jobs]
    missing = [f"{j['rule']} {j['output'][:1]}" for j, c in zip(jobs, cpu) if c is None and j["log"]]
    need = upstream(jobs)
    figures = {j["rule"].removeprefix("render_"): i for i, j in enumerate(jobs) if j["rule"].startswith("render_fig_")}
    users: dict[int, set[str]] = defaultdict(set)
    for name, i in figures.items():
        for k in need[i]:
            users[k].add(name)
    rows = []
    for name, i in sorted(figures.items()):
        scratch = [k for k in need[i] if cpu[k] is not None]
        own = [k for k in scratch if users[k] == {name}]
        rows.append({"figure": name, "jobs": len(need[i]), "scratch_s": sum(cpu[k] for k in scratch),
                     "own_jobs": len(own), "own_s": sum(cpu[k] for k in own)})
    everything = set().union(*(need[i] for i in figures.values())) if figures else set()
    rows.append({"figure": "all figures", "jobs": len(everything),
                 "scratch_s": sum(cpu[k] for k in everything if cpu[k] is not None), "own_jobs": "", "own_s": None})
    return rows, missing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config.yaml"])
    ap.add_argument("--markdown", action="store_true", help="a Markdown table (the README's figure table)")
    args = ap.parse_args()
    from plan_jobs import plan_jobs

    import tempfile

    with tempfile.TemporaryDirectory() as scratch:  # plan in an empty folder: every job, as from scratch
        jobs = plan_jobs(Path(scratch), [p.resolve() for p in args.configfile])["jobs"]
    rows, missing = figure_costs(args.run_dir.resolve(), jobs)
    if args.markdown:
        print("| figure | jobs from scratch | CPU-min from scratch | its own jobs | CPU-min of its own |")
        print("| --- | --- | --- | --- | --- |")
        for r in rows:
            own = "" if r["own_s"] is None else f"{r['own_s'] / 60:.1f}"
            print(f"| `{r['figure']}` | {r['jobs']} | {r['scratch_s'] / 60:.1f} | {r['own_jobs']} | {own} |")
    else:
        print(f"{'figure':<30}{'jobs':>6}{'CPU-min':>9}{'own jobs':>10}{'own CPU-min':>13}")
        for r in rows:
            own = "" if r["own_s"] is None else f"{r['own_s'] / 60:.1f}"
            print(f"{r['figure']:<30}{r['jobs']:>6}{r['scratch_s'] / 60:>9.1f}{str(r['own_jobs']):>10}{own:>13}")
    if missing:
        print(f"\n{len(missing)} planned job(s) logged no usage line (not run in RUN_DIR, or run by an older "
              f"percept): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")


if __name__ == "__main__":
    main()
