"""bench/job_costs.py: the per-rule table of a finished run reads the jobs' wall time from Snakemake's log and
their CPU seconds and peak RSS from the `usage:` line percept.workflow.log_usage writes into each job's log."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def job_costs():
    spec = importlib.util.spec_from_file_location("job_costs", REPO / "bench" / "job_costs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_and_rss_come_from_each_jobs_usage_line(job_costs, tmp_path):
    logs = tmp_path / "logs"
    (logs / "render_fig_a").mkdir(parents=True)
    (logs / "render_fig_a" / "fig.log").write_text("x INFO percept.rules.render_fig_a: usage: cpu_s=1.50 "
                                                   "max_rss_mb=120\n")
    (logs / "finetune_mpcs" / "m" / "fold0").mkdir(parents=True)
    for name, lines in {"a": ["usage: cpu_s=9.00 max_rss_mb=900", "usage: cpu_s=30.25 max_rss_mb=700"],
                        "b": ["usage: cpu_s=20.00 max_rss_mb=800"], "c": ["no usage: killed"]}.items():
        (logs / "finetune_mpcs" / "m" / "fold0" / f"{name}.log").write_text("\n".join(lines) + "\n")
    got = job_costs.log_usage_costs(tmp_path)
    assert got["render_fig_a"] == {"jobs": 1, "cpu_time": 1.5, "max_rss": 120.0}
    # a rerun appends to its log: the last line counts; a log without the line (a killed job) is no job
    assert got["finetune_mpcs"] == {"jobs": 2, "cpu_time": 50.25, "max_rss": 800.0}
    assert job_costs.log_usage_costs(tmp_path / "nothing") == {}


def test_figure_costs_sum_each_figures_upstream_jobs_and_its_own(tmp_path):
    """bench/figure_costs.py: a figure costs every job upstream of its render job (shared ones too); its own
    jobs are those no other figure needs; the last line counts each job once."""
    spec = importlib.util.spec_from_file_location("figure_costs", REPO / "bench" / "figure_costs.py")
    fc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fc)

    def job(rule, out, inputs, cpu):
        log = f"logs/{rule}/{out}.log"
        (tmp_path / log).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / log).write_text(f"x: usage: cpu_s={cpu:.2f} max_rss_mb=10\n" if cpu is not None else "")
        return {"rule": rule, "output": [out], "input": inputs, "log": [log]}

    jobs = [job("make_data", "d.h5", [], 10.0),
            job("cache", "c.h5", ["d.h5"], 20.0),
            job("train", "t.pt", ["c.h5"], 60.0),
            job("render_fig_a", "a.png", ["c.h5"], 3.0),
            job("render_fig_b", "b.png", ["t.pt", "d.h5"], 2.0),
            {"rule": "all", "output": [], "input": ["a.png", "b.png"], "log": []}]
    rows, missing = fc.figure_costs(tmp_path, jobs)
    got = {r["figure"]: r for r in rows}
    assert (got["fig_a"]["jobs"], got["fig_a"]["scratch_s"], got["fig_a"]["own_s"]) == (3, 33.0, 3.0)
    assert (got["fig_b"]["jobs"], got["fig_b"]["scratch_s"], got["fig_b"]["own_s"]) == (4, 92.0, 62.0)
    assert got["all figures"]["scratch_s"] == 95.0 and missing == []
    (tmp_path / jobs[2]["log"][0]).write_text("killed\n")  # a job without its usage line is reported, not zero
    rows, missing = fc.figure_costs(tmp_path, jobs)
    assert missing == ["train ['t.pt']"]


def test_a_job_that_holds_two_cores_costs_two_core_seconds_a_second(job_costs, tmp_path):
    """The budget counts core-seconds: a two-thread job holds both of the laptop's cores."""
    log = tmp_path / "run.snakemake.log"
    log.write_text("""[Mon Nov 30 11:00:00 2026]
rule cache_features:
    output: data/features/a.h5
    jobid: 3
    reason: Missing output files
    threads: 2
    resources: tmpdir=/tmp

[Mon Nov 30 11:00:00 2026]
localrule make_shapes:
    output: data/shapes.h5
    jobid: 4
    threads: 1

[Mon Nov 30 11:00:10 2026]
Finished jobid: 4 (Rule: make_shapes)
[Mon Nov 30 11:00:30 2026]
Finished jobid: 3 (Rule: cache_features)
""")
    assert job_costs.job_costs(log) == {"cache_features": [30.0], "make_shapes": [10.0]}
    assert job_costs.core_costs(log) == {"cache_features": [60.0], "make_shapes": [10.0]}
