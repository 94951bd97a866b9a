"""Shared fixtures: a loopback HTTP server (127.0.0.1 only) serving files the tests build, and the one
end-to-end run of the tiny config (session-scoped) that every stage's workflow tests read.

Tiers: every test marked ``e2e`` or ``slurm`` is also marked ``slow`` here (pytest_collection_modifyitems), so
``pytest -m "not slow"`` is the fast tier for development and ``pytest`` the whole suite (CI)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter the caches use)
import numpy as np
import pytest


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        if self.path == "/short.bin":  # announces more bytes than it sends: a connection cut short
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@contextlib.contextmanager
def loopback_server(tmp_path: Path, monkeypatch, handler=_Handler, **attrs):
    """A ThreadingHTTPServer on 127.0.0.1 (any free port) serving ``<tmp_path>/www`` with ``handler``; extra
    ``attrs`` are set on the server (handlers see them as ``self.server.<name>``). Stopped after the block."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    httpd.daemon_threads = True
    for name, value in attrs.items():
        setattr(httpd, name, value)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(root=root, url=f"http://127.0.0.1:{httpd.server_address[1]}", httpd=httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """The loopback server with the default handler (``server.root``, ``server.url``)."""
    with loopback_server(tmp_path, monkeypatch) as srv:
        yield srv


def mirror_config(srv, archive: bytes, path: Path, name: str = "stl10_binary.tar.gz",
                  source: str = "stl10") -> Path:
    """Put ``archive`` on the loopback server and write the tiny config that downloads ``source`` from it
    (pinned checksum) to ``path``."""
    import yaml

    (srv.root / name).write_bytes(archive)
    cfg = yaml.safe_load(TINY.read_text())
    cfg["downloads"] = {"sources": [source], "mirror": srv.url,
                        "checksums": {name: hashlib.sha256(archive).hexdigest()}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def make_tar(members: dict[str, bytes], mode: str = "w:gz",
             links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    """An in-memory tar archive of regular files, plus links ``{name: (tarfile link type, target)}``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "config.yaml"
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


def snakemake(workdir: Path, *args: str, configfile: Path = TINY, check: bool = True,
              timeout: int = 1800) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def array_digests(root: Path, files: list[str] | None = None) -> dict[str, str]:
    """sha256 of every array in every HDF5 file and of every CSV under root, or of the given ``files`` (paths
    relative to root) only (file bytes of HDF5 carry timestamps, so the arrays are what must be identical)."""
    out = {}
    h5s = sorted(root.rglob("*.h5")) if files is None else [root / f for f in files if f.endswith(".h5")]
    csvs = sorted(root.rglob("*.csv")) if files is None else [root / f for f in files if f.endswith(".csv")]
    for path in h5s:
        with h5py.File(path, "r") as f:
            def visit(name, obj, path=path):
                if isinstance(obj, h5py.Dataset):
                    out[f"{path.relative_to(root)}:{name}"] = hashlib.sha256(np.ascontiguousarray(obj[...]).tobytes()).hexdigest()
            f.visititems(visit)
    for path in csvs:
        out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def pytest_collection_modifyitems(config, items):
    """An end-to-end or SLURM test is a slow test: one marker for the fast tier to leave out."""
    for item in items:
        if item.get_closest_marker("e2e") or item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.slow)


def _whole_tiny_run(tmp_path_factory, name: str) -> tuple[Path, subprocess.CompletedProcess, float]:
    workdir = tmp_path_factory.mktemp(name)
    t0 = time.perf_counter()
    proc = snakemake(workdir)
    return workdir, proc, time.perf_counter() - t0


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One run of the whole DAG on tests/config.yaml, shared by every end-to-end test of every stage:
    (workdir, proc, seconds)."""
    return _whole_tiny_run(tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def tiny_report(tiny_run) -> Path:
    """`snakemake --report` of the tiny run, made once for every report test (the browser test opens it)."""
    report = tiny_run[0] / "results" / "report.html"
    snakemake(tiny_run[0], "--report", str(report))
    return report


@pytest.fixture(scope="session")
def paper_plan(tmp_path_factory) -> tuple[str, float]:
    """`snakemake -n` of the whole DAG of configs/paper.yaml (offline: it plans, nothing runs), made once for
    every stage's paper-plan test: (Snakemake's output, seconds the plan took)."""
    t0 = time.perf_counter()
    proc = snakemake(tmp_path_factory.mktemp("paper-plan"), "-n", configfile=REPO / "configs" / "paper.yaml")
    return proc.stdout + proc.stderr, time.perf_counter() - t0


def assert_figure(workdir: Path, name: str) -> None:
    """The figure exists as a non-blank PNG of a readable size and as a PDF."""
    from PIL import Image

    png = workdir / "results" / "figures" / f"{name}.png"
    with Image.open(png) as im:
        assert im.size[0] > 300 and im.size[1] > 150, (name, im.size)
        assert np.asarray(im.convert("L")).std() > 5, name  # not a blank canvas
    assert (workdir / "results" / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF"), name


def slurm_unavailable() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "the test cluster's daemons need root"
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue") if not shutil.which(b)]
    if missing:
        return f"not installed: {missing} (run `tests/slurm/cluster.sh install`)"
    return None


@contextlib.contextmanager
def _slurm_cluster(state: Path):
    """A one-node SLURM cluster (tests/slurm/cluster.sh) for the duration of the block."""
    env = {**os.environ, "PERCEPT_SLURM_DIR": str(state)}
    env.pop("SLURM_CONF", None)
    start = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, env=env, timeout=180,
                           check=False)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        yield state
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, env=env, timeout=120, check=False)


# What the SLURM test sends through sbatch: the feature-cache figure and the datasets figure of the tiny config
# (make_shapes, make_photos, two cache_features jobs that request a GPU, two renderers). Every job of a
# workflow goes through the same executor code path, so a subset proves the profile; the whole tiny DAG through
# SLURM costs ~15 min of CI, most of it the per-job start of Snakemake inside each sbatch job.
SLURM_TARGETS = ("results/figures/fig_feature_caches.png", "results/figures/fig_datasets.png")


def slurm_tiny_run(workdir: Path, *targets: str) -> tuple[str, float]:
    """Targets of the tiny config through --profile profiles/slurm; every job is an sbatch job."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TINY), "--profile", str(REPO / "profiles" / "slurm"),
           "--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-keep-successful-logs",
           "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2", *targets]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, check=False)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}"
    return proc.stdout + proc.stderr, seconds


@pytest.fixture(scope="session")
def slurm_run(tmp_path_factory):
    """SLURM_TARGETS through a one-node test cluster: workdir, output, seconds and the controller's
    `scontrol -o show job` lines (read while it is up). Skips where SLURM cannot run, fails instead where
    PERCEPT_REQUIRE_SLURM is set (CI)."""
    why = slurm_unavailable()
    if why is not None:
        if os.environ.get("PERCEPT_REQUIRE_SLURM"):
            pytest.fail(f"PERCEPT_REQUIRE_SLURM is set but SLURM cannot run here: {why}")
        pytest.skip(why)
    workdir = tmp_path_factory.mktemp("tiny-slurm")
    with _slurm_cluster(tmp_path_factory.mktemp("slurm-state")):
        out, seconds = slurm_tiny_run(workdir, *SLURM_TARGETS)
        jobs = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=False,
                              timeout=60).stdout
    return SimpleNamespace(workdir=workdir, output=out, seconds=seconds, jobs=jobs)
