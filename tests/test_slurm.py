"""The SLURM profile on a real SLURM: a one-node cluster on this machine (tests/slurm/cluster.sh: slurmctld +
slurmd + munge, loopback only), part of the tiny config (conftest.SLURM_TARGETS) run through
`--profile profiles/slurm` (conftest's slurm_run). Every job must go through sbatch, the GPU rules must request a
GPU, the CPU rules must not, and the outputs must equal those of the local run (tiny_run).

Needs root and Debian's slurm-wlm + munge (`tests/slurm/cluster.sh install`); CI installs them and sets
PERCEPT_REQUIRE_SLURM=1, so there a missing SLURM fails instead of skipping."""

from __future__ import annotations

import re

import pytest
from conftest import array_digests

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]


def test_every_job_goes_through_sbatch(slurm_run):
    out, workdir = slurm_run.output, slurm_run.workdir
    jobs = re.findall(r"^rule (\w+):", out, flags=re.MULTILINE)  # jobs run elsewhere ("localrule" for local ones)
    local = set(re.findall(r"^localrule (\w+):", out, flags=re.MULTILINE))
    assert not local, f"jobs that did not go to SLURM: {local}"
    assert {"make_shapes", "cache_features"} <= set(jobs), jobs
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(submitted) == len(jobs), (len(submitted), len(jobs))
    logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert sorted(p.stem for p in logs) == sorted(submitted)
    for rule in set(jobs):
        assert (workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").is_dir(), rule
    print(f"{len(jobs)} jobs through sbatch in {slurm_run.seconds:.0f} s")


def test_gpu_rules_request_a_gpu_from_slurm(slurm_run):
    logs = slurm_run.workdir / ".snakemake" / "slurm_logs"
    records = {m.group(1): line for line in slurm_run.jobs.splitlines() if (m := re.match(r"JobId=(\d+) ", line))}
    gpu_jobs = [p.stem for p in (logs / "rule_cache_features").rglob("*.log")]
    cpu_jobs = [p.stem for p in (logs / "rule_make_shapes").rglob("*.log")]
    assert gpu_jobs and cpu_jobs
    for jobid, wants_gpu in [(j, True) for j in gpu_jobs] + [(j, False) for j in cpu_jobs]:
        assert jobid in records, f"SLURM has no record of job {jobid}: {sorted(records)}"
        record = records[jobid]
        assert "JobState=COMPLETED" in record, record
        assert ("gres:gpu" in record or "gres/gpu" in record) == wants_gpu, record


def test_slurm_outputs_equal_the_local_run(slurm_run, tiny_run):
    local, _, _ = tiny_run
    ours = {k: v for k, v in array_digests(slurm_run.workdir).items() if not k.startswith(".snakemake")}
    theirs = array_digests(local)
    assert ours and ours.keys() <= theirs.keys(), sorted(ours.keys() - theirs.keys())
    differ = sorted(k for k in ours if ours[k] != theirs[k])
    assert not differ, f"outputs that differ between the SLURM and the local run: {differ}"
    assert any(k.startswith("data/features/") for k in ours), sorted(ours)
