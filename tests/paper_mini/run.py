"""Run the paper config in miniature end to end, offline, and check what it produced (issue 21).

    python tests/paper_mini/run.py [--workdir DIR] [--cores 2] [--torch-home DIR] [--check-only]

1. builds the miniature archives of every download of configs/paper.yaml (tests/paper_mini/make_archives.py)
   and serves them on a loopback HTTP server (127.0.0.1, a free port);
2. plants seeded random torchvision checkpoints under $TORCH_HOME/hub/checkpoints (plant_weights.py);
3. writes <workdir>/mirror.yaml (downloads.mirror = the server, downloads.checksums = the archives' sha256)
   and runs Snakemake on configs/paper.yaml + tests/paper-mini.yaml + mirror.yaml: the whole DAG;
4. checks that the miniature plans every rule the paper config plans, that every figure of the paper config
   was rendered and every table holds the expected rows with finite values (tests/paper_mini/checks.py).

Exit status 0 only when the run and every check pass. <workdir>/summary.json records jobs, wall time, CPU
seconds, load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PAPER = REPO / "configs" / "paper.yaml"
MINI = REPO / "tests" / "paper-mini.yaml"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

import checks  # noqa: E402
import make_archives  # noqa: E402
import plant_weights  # noqa: E402


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root: Path, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """The archives on loopback: on ``port`` when it is free (a rerun in the same workdir keeps its mirror URL,
    hence the download jobs' parameters, so Snakemake does not redo every job), else on any free port."""
    handler = partial(_Quiet, directory=str(root))
    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def job_env(torch_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(TORCH_HOME=str(torch_home), PYTHONUNBUFFERED="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
               MKL_NUM_THREADS=env.get("MKL_NUM_THREADS", "1"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    return env


def snakemake(workdir: Path, configfiles: list[Path], *args: str, env: dict[str, str], cores: int,
              log: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", *map(str, configfiles), "--cores", str(cores), *args]
    if log is None:
        return subprocess.run(cmd, capture_output=True, text=True, env=env)
    with open(log, "w") as fh:
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True, env=env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None, help="Run folder (default: a new temporary one).")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--torch-home", type=Path, default=None,
                    help="Where to plant the checkpoints (default <workdir>/torch; reused when already there).")
    ap.add_argument("--check-only", action="store_true", help="Only the checks, on a finished run in --workdir.")
    ap.add_argument("snakemake_args", nargs="*", help="Extra Snakemake arguments (after --).")
    a = ap.parse_args(argv)
    workdir = (a.workdir or Path(tempfile.mkdtemp(prefix="paper-mini-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    torch_home = (a.torch_home or workdir / "torch").resolve()
    env = job_env(torch_home)
    configs = [PAPER, MINI, workdir / "mirror.yaml"]
    print(f"paper-mini: workdir {workdir}", flush=True)

    previous = workdir / "summary.json"
    summary: dict = json.loads(previous.read_text()) if a.check_only and previous.is_file() else {}
    if not a.check_only:
        t0 = time.perf_counter()
        checksums = make_archives.build(workdir / "www", checks.paper_sources())
        plant_weights.plant(torch_home)
        summary["setup_s"] = round(time.perf_counter() - t0, 1)
        import yaml

        mirror = workdir / "mirror.yaml"
        before = yaml.safe_load(mirror.read_text()) if mirror.is_file() else None
        port = int(before["downloads"]["mirror"].rsplit(":", 1)[1]) if before else 0
        httpd, url = serve(workdir / "www", port)
        (workdir / "mirror.yaml").write_text(yaml.safe_dump({"downloads": {"mirror": url, "checksums": checksums}}))
        try:
            plan = snakemake(workdir, configs, "-n", env=env, cores=a.cores)
            if plan.returncode:
                print(plan.stdout[-3000:], plan.stderr[-6000:], sep="\n")
                return 1
            summary["planned"] = checks.job_stats(plan.stdout + plan.stderr)
            load0, t0 = os.getloadavg(), time.perf_counter()
            cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = snakemake(workdir, configs, "--keep-going", *a.snakemake_args, env=env, cores=a.cores,
                             log=workdir / "snakemake.log")
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            # CPU seconds of Snakemake and every job it waited for (Python start-ups included): with the wall
            # time under a known load, what the run would take on idle cores.
            cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            summary.update(returncode=proc.returncode, wall_s=round(time.perf_counter() - t0, 1),
                           cpu_s=round(cpu_s, 1),
                           load_before=[round(x, 2) for x in load0],
                           load_after=[round(x, 2) for x in os.getloadavg()], cores=a.cores,
                           jobs=sum(summary["planned"].values()))
        finally:
            httpd.shutdown()
            httpd.server_close()
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"paper-mini: snakemake exited {proc.returncode} after {summary['wall_s']} s, {summary['cpu_s']} CPU s "
              f"({summary['jobs']} jobs; load {summary['load_before']} -> {summary['load_after']})", flush=True)
        if proc.returncode:
            print((workdir / "snakemake.log").read_text()[-6000:])
            for failed in checks.failed_logs(workdir):
                print(f"--- {failed}\n" + failed.read_text()[-3000:])

    paper_plan = snakemake(workdir / "plan-paper", [PAPER], "-n", env=env, cores=a.cores)
    problems = checks.run_checks(workdir, checks.job_stats(paper_plan.stdout + paper_plan.stderr),
                                 summary.get("planned", {}))
    for p in problems:
        print(f"paper-mini: FAILED CHECK: {p}")
    shutil.rmtree(workdir / "plan-paper", ignore_errors=True)
    ok = not problems and summary.get("returncode", 0) == 0
    print(f"paper-mini: {'ok' if ok else 'FAILED'} ({len(problems)} failed checks)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
