"""The SLURM profile on a real SLURM: a one-node cluster on this machine (tests/slurm/cluster.sh: slurmctld +
slurmd + munge, loopback only), the tiny config run through `--profile profiles/slurm`. Every job must go through
sbatch, the GPU rules must request a GPU, and the outputs must equal those of the local run (tiny_run).

Needs root and Debian's slurm-wlm + munge (`tests/slurm/cluster.sh install`); CI installs them and sets
PERCEPT_REQUIRE_SLURM=1, so there a missing SLURM fails instead of skipping."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from conftest import REPO, TINY, array_digests

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


def _unavailable() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "the test cluster's daemons need root"
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue") if not shutil.which(b)]
    if missing:
        return f"not installed: {missing} (run `tests/slurm/cluster.sh install`)"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _unavailable()
    if why:
        if os.environ.get("PERCEPT_REQUIRE_SLURM"):
            pytest.fail(f"PERCEPT_REQUIRE_SLURM is set but SLURM cannot run here: {why}")
        pytest.skip(why)
    state = tmp_path_factory.mktemp("slurm-state")
    env = {**os.environ, "PERCEPT_SLURM_DIR": str(state)}
    env.pop("SLURM_CONF", None)
    start = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, env=env, timeout=180,
                           check=False)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        yield state
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, env=env, timeout=120, check=False)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny-slurm")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TINY), "--profile", str(REPO / "profiles" / "slurm"),
           "--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-keep-successful-logs",
           "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, env=env, check=False)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    return workdir, proc.stdout + proc.stderr, seconds


def test_every_job_goes_through_sbatch(slurm_run):
    workdir, out, seconds = slurm_run
    jobs = re.findall(r"^rule (\w+):", out, flags=re.M)  # jobs run elsewhere ("localrule" for local ones)
    local = set(re.findall(r"^localrule (\w+):", out, flags=re.M))
    assert jobs and local <= {"all"}, f"jobs that did not go to SLURM: {local - {'all'}}"
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(submitted) == len(jobs), (len(submitted), len(jobs))
    logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert sorted(p.stem for p in logs) == sorted(submitted)
    for rule in set(jobs):
        assert (workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").is_dir(), rule
    print(f"{len(jobs)} jobs through sbatch in {seconds:.0f} s")


def test_gpu_rules_request_a_gpu_from_slurm(slurm_run):
    workdir, _, _ = slurm_run
    gpu_jobs = [p.stem for p in (workdir / ".snakemake" / "slurm_logs" / "rule_cache_features").rglob("*.log")]
    cpu_jobs = [p.stem for p in (workdir / ".snakemake" / "slurm_logs" / "rule_make_shapes").rglob("*.log")]
    assert gpu_jobs and cpu_jobs
    for jobid, wants_gpu in [(j, True) for j in gpu_jobs] + [(j, False) for j in cpu_jobs]:
        show = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True, check=False,
                              timeout=30).stdout
        assert "JobState=COMPLETED" in show, show
        assert ("gpu" in show.lower()) == wants_gpu, show


def test_slurm_outputs_equal_the_local_run(slurm_run, tiny_run):
    workdir, _, _ = slurm_run
    local, _, _ = tiny_run
    ours = {k: v for k, v in array_digests(workdir).items() if not k.startswith(".snakemake")}
    theirs = {k: v for k, v in array_digests(local).items() if not k.startswith(".snakemake")}
    assert ours.keys() == theirs.keys()
    differ = sorted(k for k in ours if ours[k] != theirs[k])
    assert not differ, f"outputs that differ between the SLURM and the local run: {differ}"
    assert len(ours) >= 10
