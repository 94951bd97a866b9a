"""A finished Snakemake job leaves without the interpreter's teardown (percept.workflow._finish: ~1 CPU-second a
job with torch and torchvision loaded); a failed one exits as Python does, and code that is not a Snakemake job
(a test, a notebook) is never cut short."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

JOB = """
import atexit, pathlib
atexit.register(lambda: pathlib.Path({teardown!r}).write_text("ran"))  # stands for the libraries' exit handlers
from types import SimpleNamespace
from percept.workflow import setup_script
smk = SimpleNamespace(log=[{log!r}], rule="job_x", config={{"seed": 1}}, threads=1, wildcards={{}})
log = setup_script(smk, uses_torch=False)
log.info("working")
pathlib.Path({out!r}).write_text("result")
{last}
"""


def run_job(tmp_path: Path, last: str = "", where: str = ".snakemake/scripts", env: dict | None = None):
    script = tmp_path / where / "tmpjob.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    paths = {k: str(tmp_path / f"{k}.txt") for k in ("teardown", "log", "out")}
    script.write_text(JOB.format(**paths, last=last))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src"), **(env or {})})
    return proc, {k: Path(v) for k, v in paths.items()}


def test_a_finished_job_skips_the_teardown_but_keeps_its_outputs_and_log(tmp_path):
    proc, p = run_job(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert p["out"].read_text() == "result"
    log = p["log"].read_text()
    assert "working" in log and re.search(r"usage: cpu_s=[\d.]+ max_rss_mb=\d+", log)  # flushed before leaving
    assert not p["teardown"].exists()  # the handlers registered before setup_script did not run


def test_a_failed_job_exits_as_python_does(tmp_path):
    proc, p = run_job(tmp_path, last="raise RuntimeError('the job failed')")
    assert proc.returncode == 1
    assert "RuntimeError: the job failed" in p["log"].read_text() + proc.stderr
    assert p["teardown"].read_text() == "ran"  # the full exit path


@pytest.mark.parametrize("case", ["not a snakemake job", "PERCEPT_FULL_EXIT=1"])
def test_outside_a_job_or_when_asked_the_interpreter_exits_in_full(tmp_path, case):
    if case == "not a snakemake job":
        proc, p = run_job(tmp_path, where="notebooks")
    else:
        proc, p = run_job(tmp_path, env={"PERCEPT_FULL_EXIT": "1"})
    assert proc.returncode == 0, proc.stderr
    assert p["teardown"].read_text() == "ran"


def test_scripts_report_failure_by_raising_not_by_sys_exit():
    """atexit cannot see an exit status: a script that ended with sys.exit(1) would leave as a success."""
    offenders = [s.name for s in sorted((REPO / "scripts").glob("*.py"))
                 if re.search(r"\bsys\.exit\(|SystemExit|os\._exit\(", s.read_text())]
    assert offenders == []
