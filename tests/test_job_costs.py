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
