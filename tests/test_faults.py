"""Fault suite (issue 8): interrupted runs, corrupted files, bad configuration, bad data, safe loading and a
full disk. Each fault must end in either a finished, correct result or a clear error naming the file or key
and what to do; never in a file that looks complete but is not.

The interrupted-run tests kill real Snakemake runs of ONE small target of the tiny config each, in their own
working directory seeded with the inputs (and Snakemake's provenance records) of the session's `tiny_run`,
and compare the rerun's outputs with `tiny_run`'s. Each run is armed with a fault point (percept.faults:
PERCEPT_FAULT_PAUSE, PERCEPT_FAULT_DIR): its job stops at a named point of its step (after the first download
chunk, after the first batch of a feature cache, after the first training checkpoint, before a figure's
rename) and says so, and only then is the fault delivered; so it lands mid-step by construction, whatever the
speed or load of the machine (no polling for partial files, no SIGSTOP, no sleeps as synchronisation).
Already covered elsewhere (and not repeated here): truncated/garbage/foreign/incomplete HDF5 files
(test_h5io), truncated and path-traversing archives (test_download), the determinism of two whole runs
(test_workflow::test_same_config_gives_identical_tables), an invalid config stopping `snakemake` before any
job (test_workflow::test_invalid_config_stops_before_any_job), checkpoints of other settings for MPCS,
autoencoders and the explained classifier (test_mpcs, test_autoencoders, test_explain)."""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import yaml
from conftest import REPO, TINY, loopback_server, make_tar, mirror_config, snakemake

from percept import backbones, faults, plotting
from percept.checkpoints import CheckpointError, load_torch, save_torch
from percept.config import ConfigError, validate_config
from percept.data import download
from percept.data.store import ImageDataset, write_image_dataset
from percept.features import FeatureCache, prepare_input
from percept.h5io import CacheError, atomic_h5, open_h5
from percept.tables import write_csv, write_json

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# =========================================================================================== interrupted runs
def seed_workdir(ref: Path, work: Path, *files: str) -> None:
    """``work`` with copies of ``files`` from the reference run and its provenance records, so Snakemake sees
    them as up to date (copy2 keeps the modification times)."""
    for rel in files:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ref / rel, work / rel)
    shutil.copytree(ref / ".snakemake" / "metadata", work / ".snakemake" / "metadata")


@contextlib.contextmanager
def children_take_sigint():
    """Processes started in the block take SIGINT (Ctrl-C) as a terminal's foreground job does. A test process
    started in the background of a script (``cmd &``, as CI runners and wrappers may do) has SIGINT ignored,
    and an ignored signal stays ignored in every child: Snakemake and its jobs would never see the Ctrl-C. A
    handled signal is reset to the default at exec, so a handler while the children are forked is enough."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def start(work: Path, *targets: str, configfile: Path = TINY, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Snakemake in its own process group (so the whole group can be signalled, as a terminal or a batch
    system does), output to a file (a pipe nobody reads could block it)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(configfile), "--cores", "2", *targets]
    work.mkdir(parents=True, exist_ok=True)
    out = open(work / "killed-run.out", "w")  # noqa: SIM115 (closed with the process)
    with children_take_sigint():
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    proc.out, proc.work = out, work
    return proc


def output_of(work: Path) -> str:
    return (work / "killed-run.out").read_text()


def wait_for(proc: subprocess.Popen, found, what: str, timeout: float = 600):
    """Poll ``found()`` until it returns something truthy; fail if Snakemake ends first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        hit = found()
        if hit:
            return hit
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended (rc {proc.returncode}) before {what}:\n"
                                 f"{output_of(proc.work)[-3000:]}")
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class FaultPoint:
    """The test's side of a fault point (percept.faults): the first job of the run that reaches ``point``
    writes ``<folder>/<point>.reached`` (its pid) and stays there until :meth:`release` or a signal."""

    def __init__(self, folder: Path, point: str):
        assert point in faults.POINTS, point
        self.folder, self.point = folder, point

    @property
    def env(self) -> dict[str, str]:
        return {faults.PAUSE_VAR: self.point, faults.DIR_VAR: str(self.folder)}

    def wait(self, proc: subprocess.Popen) -> psutil.Process:
        """The job stopped at the point, once one is there."""
        reached = self.folder / f"{self.point}.reached"
        wait_for(proc, reached.exists, f"a job at the fault point {self.point}")
        job = psutil.Process(int(reached.read_text()))
        assert job.pid in {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}, "not this run's job"
        return job

    def release(self) -> None:
        (self.folder / f"{self.point}.release").touch()


def stop_at(point: str, work: Path, *targets: str, ref: Path | None = None, seed: tuple[str, ...] = (),
            configfile: Path = TINY) -> tuple[subprocess.Popen, psutil.Process, FaultPoint]:
    """Snakemake on ``targets`` in a fresh ``work`` (seeded with ``seed`` from the reference run ``ref``) whose
    job stops at the fault point ``point``; returns once it is stopped there: (snakemake, the job, the point).
    The fault that follows lands at that point by construction, however fast or loaded the machine."""
    if work.exists():
        shutil.rmtree(work)
    if ref is not None:
        seed_workdir(ref, work, *seed)
    fault = FaultPoint(work.with_name(f"{work.name}.fault"), point)
    proc = start(work, *targets, configfile=configfile, env=fault.env)
    return proc, fault.wait(proc), fault


def partial_files(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern)) if folder.exists() else []


GRACEFUL = "Will exit after finishing currently running jobs"  # Snakemake's answer to SIGTERM


def interrupt(proc: subprocess.Popen, how: str, job: psutil.Process | None = None,
              fault: FaultPoint | None = None) -> int:
    """Deliver the fault to a run whose job is stopped at a fault point; wait for Snakemake to end; its exit
    status. The stopped job waits in Python code (percept.faults.pause), so a signal acts on it at once: SIGINT
    as KeyboardInterrupt through the writer's cleanup, SIGTERM and SIGKILL with their default effect."""
    if how == "snakemake SIGTERM":  # Snakemake lets its running job finish, then exits with an error
        os.kill(proc.pid, signal.SIGTERM)
        # the job goes on only once Snakemake has taken the signal in: a job finishing first would let it end
        # normally
        wait_for(proc, lambda: GRACEFUL in output_of(proc.work), "Snakemake to take SIGTERM in")
        fault.release()
    elif how == "Ctrl-C":  # the terminal signals the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    elif how == "hard kill":  # power loss, OOM killer, scancel --signal=KILL: everything dies at once
        os.killpg(proc.pid, signal.SIGKILL)
    elif how in ("job SIGTERM", "job SIGKILL"):
        job.send_signal(signal.SIGTERM if how == "job SIGTERM" else signal.SIGKILL)
    else:
        raise ValueError(how)
    rc = proc.wait(timeout=300)
    proc.out.close()
    if how == "hard kill":  # nothing of the group may survive to race the rerun
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("processes of the killed group survive")
    return rc


def rerun(work: Path, *targets: str, how: str, configfile: Path = TINY) -> str:
    """What the README tells users to do: rerun the same command (the workflow profile sets
    rerun-incomplete); after a hard kill, `snakemake --unlock` first."""
    if how == "hard kill":
        snakemake(work, "--unlock", configfile=configfile)
    proc = snakemake(work, *targets, configfile=configfile)
    return proc.stdout + proc.stderr


def h5_arrays(path: Path) -> dict[str, str]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, hashlib.sha256(
            np.ascontiguousarray(obj[...]).tobytes()).hexdigest()) if isinstance(obj, h5py.Dataset) else None)
    return out


def no_temporaries(work: Path) -> list[str]:
    """Partial files left anywhere under data/ and results/ (none may survive a successful rerun)."""
    return [str(p.relative_to(work)) for sub in ("data", "results") for p in (work / sub).rglob(".*")
            if re.search(r"\.(tmp|part)(\.\w+)?$", p.name)]


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves the files; a client killed mid-transfer is not an error worth a traceback."""

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().copyfile(source, outputfile)


@pytest.fixture
def quiet_server(tmp_path, monkeypatch):
    with loopback_server(tmp_path, monkeypatch, _QuietHandler) as srv:
        yield srv


def _download_config(server, tmp_path) -> tuple[Path, dict[str, bytes], bytes]:
    """A config downloading an STL-10-like archive of random (incompressible) images from ``server``: more
    than one download chunk, so a transfer stopped after its first chunk is stopped mid-transfer."""
    rng = np.random.default_rng(0)
    n = 48
    members = {"stl10_binary/train_X.bin": rng.integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8).tobytes(),
               "stl10_binary/train_y.bin": bytes(rng.integers(1, 11, n, dtype=np.uint8)),
               "stl10_binary/class_names.txt": b"\n".join(f"c{i}".encode() for i in range(10))}
    archive = make_tar(members)
    return mirror_config(server, archive, tmp_path / "download.yaml"), members, archive


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["hard kill", "job SIGTERM"])
def test_download_interrupted(quiet_server, tmp_path, how):
    """Killed mid-transfer (after the first chunk): the rerun (or the rule's own retry, for a killed job)
    downloads again and extracts exactly the archive's files; no partial download is left."""
    config, members, archive = _download_config(quiet_server, tmp_path)
    assert len(archive) > download.CHUNK  # the first chunk is not the whole transfer
    work = tmp_path / "work"
    proc, job, _ = stop_at("download.after_first_chunk", work, "data/raw/stl10", configfile=config)
    assert [p.stat().st_size for p in partial_files(work / "data/raw/archives", ".*.part")] == [download.CHUNK]
    rc = interrupt(proc, how, job)
    if how == "job SIGTERM":  # download rules retry (retries: 2): the same run finishes the job (the retry
        # passes the fault point: only the first arrival stops)
        assert rc == 0, output_of(work)[-3000:]
        assert "download_stl10" in output_of(work) and "Trying to restart job" in output_of(work)
    else:
        assert rc != 0 and not (work / "data/raw/stl10").exists()
        rerun(work, "data/raw/stl10", how=how, configfile=config)
    for name, data in members.items():
        assert (work / "data/raw/stl10" / name).read_bytes() == data
    assert json.loads((work / "data/raw/stl10/MANIFEST.json").read_text())["files"][0]["verified"]
    assert no_temporaries(work) == []


FEATURES = "data/features/shapes/efficientnet_lite0.h5"


@pytest.mark.e2e
def test_feature_cache_interrupted_mid_write(tiny_run, tmp_path, how="Ctrl-C"):
    """Ctrl-C while the HDF5 cache is being written (after its first batch): the writer removes its
    temporary, nothing that looks complete is left, and the rerun writes arrays identical to the uninterrupted
    tiny run's. (Ctrl-C with the finished temporary just before its rename:
    test_ctrl_c_at_a_fault_point_leaves_no_file; a hard kill of an HDF5 writer:
    test_killed_hdf5_writer_leaves_only_a_hidden_temporary_that_the_next_write_removes; a hard kill of the
    whole run: test_download_interrupted.)"""
    ref, work = tiny_run[0], tmp_path / "work"
    proc, job, _ = stop_at("features.after_first_batch", work, FEATURES, ref=ref, seed=("data/datasets/shapes.h5",))
    temporary = ".efficientnet_lite0.h5.*.tmp"
    assert partial_files(work / "data/features/shapes", temporary)
    assert interrupt(proc, how, job) != 0
    assert not (work / FEATURES).exists()
    assert partial_files(work / "data/features/shapes", temporary) == []
    assert "KeyboardInterrupt" in (work / "logs/cache_features/shapes/efficientnet_lite0.log").read_text()
    rerun(work, FEATURES, how=how)
    assert h5_arrays(work / FEATURES) == h5_arrays(ref / FEATURES)
    assert FeatureCache(work / FEATURES).taps == FeatureCache(ref / FEATURES).taps
    assert no_temporaries(work) == []


AUTOENCODER = "results/autoencoders/shapes/pixel-z8"


@pytest.mark.e2e
def test_training_killed_resumes_from_its_checkpoint(tiny_run, tmp_path):
    """A training job killed (SIGKILL) right after its first checkpoint: the rerun resumes from epoch 1, not
    from zero, and ends with the same weights, losses and embeddings as the uninterrupted tiny run."""
    ref, work = tiny_run[0], tmp_path / "work"
    target = f"{AUTOENCODER}/model.pt"
    proc, job, _ = stop_at("checkpoints.after_save", work, target, ref=ref, seed=("data/datasets/shapes.h5",))
    assert (work / f"{target}.partial").exists() and not (work / target).exists()
    assert interrupt(proc, "job SIGKILL", job) != 0
    assert not (work / target).exists()
    assert int(load_torch(work / f"{target}.partial")["epoch"]) == 1
    rerun(work, target, how="job SIGKILL")
    log = (work / "logs/train_autoencoder/shapes/pixel-z8.log").read_text()
    assert "resuming shapes/pixel/z8 from epoch 1 of 2" in log
    assert not (work / f"{target}.partial").exists()
    mine, theirs = load_torch(work / target), load_torch(ref / target)
    assert mine["model"].keys() == theirs["model"].keys()
    assert all(torch.equal(mine["model"][k], theirs["model"][k]) for k in theirs["model"])
    assert [h["loss"] for h in mine["history"]] == [h["loss"] for h in theirs["history"]]
    emb = "data/embeddings/shapes/pixel-z8.h5"
    assert h5_arrays(work / emb) == h5_arrays(ref / emb)


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["job SIGTERM", "snakemake SIGTERM"])
def test_figure_rendering_interrupted(tiny_run, tmp_path, how):
    """Killed while the figure is in its temporary file, before the rename: the job killed leaves only the
    hidden temporary; Snakemake stopped lets the job finish the figure and exits with an error. The rerun
    renders it, byte-identical to the tiny run's PNG, from the table it was rendered from (unchanged)."""
    ref, work = tiny_run[0], tmp_path / "work"
    table = "results/backbones/imagenet_check.csv"
    png = "results/figures/fig_backbone_check.png"
    temporary = ".fig_backbone_check.*.tmp.png"
    proc, job, fault = stop_at("plotting.before_rename", work, png, ref=ref, seed=(table,))
    assert partial_files(work / "results/figures", temporary) and not (work / png).exists()
    assert interrupt(proc, how, job, fault) != 0
    if how == "job SIGTERM":  # no cleanup runs: the hidden temporary stays, for the rerun to remove
        assert not (work / png).exists() and partial_files(work / "results/figures", temporary)
    else:
        assert (work / png).read_bytes() == (ref / png).read_bytes()
    rerun(work, png, how=how)
    assert (work / png).read_bytes() == (ref / png).read_bytes()
    assert (work / table).read_bytes() == (ref / table).read_bytes()
    assert no_temporaries(work) == []


# =================================================================================== the fault-point hook
def test_fault_points_do_nothing_when_unset(tmp_path, monkeypatch):
    monkeypatch.delenv(faults.PAUSE_VAR, raising=False)
    monkeypatch.setenv(faults.DIR_VAR, str(tmp_path / "handshake"))
    for point in faults.POINTS:
        assert faults.pause(point) is None
    assert not (tmp_path / "handshake").exists()


def test_unknown_fault_point_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(faults.PAUSE_VAR, "h5io.before_renam")
    monkeypatch.setenv(faults.DIR_VAR, str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown fault point\(s\) \['h5io.before_renam'\]; known points: "):
        faults.pause("h5io.before_rename")


def test_fault_point_stops_the_first_arrival_until_released(tmp_path, monkeypatch):
    folder = tmp_path / "handshake"
    monkeypatch.setenv(faults.PAUSE_VAR, "plotting.before_rename")
    monkeypatch.setenv(faults.DIR_VAR, str(folder))
    faults.pause("h5io.before_rename")  # not listed: goes on
    stopped = threading.Thread(target=faults.pause, args=("plotting.before_rename",), daemon=True)
    stopped.start()
    reached = folder / "plotting.before_rename.reached"
    end = time.monotonic() + 60
    while not reached.exists():
        assert time.monotonic() < end and stopped.is_alive()
        time.sleep(0.01)
    assert reached.read_text() == str(os.getpid()) and stopped.is_alive()
    (folder / "plotting.before_rename.release").touch()
    stopped.join(60)
    assert not stopped.is_alive()
    (folder / "plotting.before_rename.release").unlink()
    monkeypatch.setenv(faults.TIMEOUT_VAR, "0.2")
    faults.pause("plotting.before_rename")  # a second arrival (a retried job, a rerun) does not stop
    assert sorted(p.name for p in folder.iterdir()) == ["plotting.before_rename.reached"]


def test_fault_point_not_released_times_out(tmp_path, monkeypatch):
    monkeypatch.setenv(faults.PAUSE_VAR, "checkpoints.after_save")
    monkeypatch.setenv(faults.DIR_VAR, str(tmp_path))
    monkeypatch.setenv(faults.TIMEOUT_VAR, "0.05")
    with pytest.raises(faults.FaultTimeout, match="stopped at fault point checkpoints.after_save for 0.05 s"):
        faults.pause("checkpoints.after_save")


_WRITERS = {  # a fault point just before a rename, and a program writing through it to argv[1]
    "h5io.before_rename": "import sys, numpy as np\nfrom percept.h5io import atomic_h5\n"
                          "with atomic_h5(sys.argv[1], 'features') as f:\n    f.create_dataset('x', data=np.ones(9))\n",
    "plotting.before_rename": "import sys, matplotlib.pyplot as plt\nfrom percept import plotting\n"
                              "plotting.save(plt.figure(), sys.argv[1])\n",
}


@pytest.mark.parametrize("point", list(_WRITERS))
def test_ctrl_c_at_a_fault_point_leaves_no_file(tmp_path, point):
    """Ctrl-C with the finished temporary file about to be renamed (the latest moment a step can be
    interrupted): KeyboardInterrupt takes the writer's cleanup path and neither the target nor the temporary
    is left."""
    out = tmp_path / "out"
    out.mkdir()
    fault = FaultPoint(tmp_path / "handshake", point)
    path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, **fault.env, "PYTHONPATH": path}
    target = out / ("cache.h5" if point.startswith("h5io") else "figure.png")
    with children_take_sigint():
        child = subprocess.Popen([sys.executable, "-c", _WRITERS[point], str(target)], env=env,
                                 stderr=subprocess.PIPE, text=True)
    reached = fault.folder / f"{point}.reached"
    end = time.monotonic() + 120
    while not reached.exists():
        assert time.monotonic() < end and child.poll() is None, child.stderr.read() if child.poll() is not None else ""
        time.sleep(0.01)
    assert [p.name for p in out.iterdir() if p.name.endswith((".tmp", ".tmp.png"))]  # the finished temporary
    child.send_signal(signal.SIGINT)
    assert child.wait(60) != 0
    err = child.stderr.read()
    assert err.rstrip().endswith("KeyboardInterrupt") and f'faults.pause("{point}")' in err, err
    assert list(out.iterdir()) == []


def test_readme_tells_users_how_to_rerun():
    text = (REPO / "README.md").read_text()
    assert "rerun-incomplete" in text and "--unlock" in text
    assert "rerun-incomplete: true" in (REPO / "profiles/default/config.yaml").read_text()


# =========================================================================================== corrupted files
def _features_file(path: Path, data: np.ndarray | None = None) -> Path:
    data = np.arange(4 * 8 * 2 * 2, dtype=np.float32).reshape(4, 8, 2, 2) if data is None else data
    with atomic_h5(path, "features", meta={"taps": ["t"], "backbone": "efficientnet_lite0"}) as f:
        f.create_dataset("rows", data=np.arange(len(data)))
        f.create_dataset("taps/t", data=data, chunks=(1, *data.shape[1:]), compression="gzip")
    return path


def test_tampered_compressed_chunk_is_a_clear_error(tmp_path):
    """Bytes changed inside a compressed chunk (bit rot, a tampered copy): refused on read, naming the file."""
    path = _features_file(tmp_path / "cache.h5", np.random.default_rng(0).random((4, 8, 8, 8), dtype=np.float32))
    with h5py.File(path, "r") as f:
        offset = f["taps/t"].id.get_chunk_info(1).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 10: offset + 40] = b"\xff" * 30
    path.write_bytes(bytes(raw))
    cache = FeatureCache(path)  # the metadata is intact ...
    with pytest.raises(CacheError, match=rf"{re.escape(str(path))}: tap t cannot be read .*Delete it and rerun"):
        cache.load("t")  # ... the data is not


def test_truncated_feature_cache_names_the_file_and_the_fix(tmp_path):
    path = _features_file(tmp_path / "cache.h5")
    path.write_bytes(path.read_bytes()[:1500])  # a half-copied file
    with pytest.raises(CacheError, match=rf"{re.escape(str(path))}: cannot be read as HDF5 .*truncated or corrupted. "
                                         r"Delete it \(rm '.*cache.h5'\) and rerun snakemake"):
        FeatureCache(path)


def test_feature_cache_of_another_backbone_is_refused(tmp_path):
    path = _features_file(tmp_path / "cache.h5")
    with pytest.raises(CacheError, match="recorded backbone='efficientnet_lite0' but 'resnet50' was expected .* "
                                         "made with other settings. Delete it"):
        FeatureCache(path, expect={"backbone": "resnet50"})


def test_dataset_file_with_wrong_image_layout_is_refused(tmp_path):
    """A dataset file written by hand with float or grey images: refused when opened, not deep in torch."""
    for name, images in {"float": np.zeros((2, 8, 8, 3), np.float32), "grey": np.zeros((2, 8, 8), np.uint8)}.items():
        path = tmp_path / f"{name}.h5"
        with atomic_h5(path, "dataset", meta={"name": name, "fingerprint": "x", "split_names": ["train"]}) as f:
            f.create_dataset("images", data=images)
            f.create_dataset("split", data=np.zeros(2, np.uint8))
        with pytest.raises(CacheError, match=rf"{name}.h5: images stored as .* holds uint8 RGB images \(N, H, W, 3\)"):
            ImageDataset(path)


def _stage_checkpoint_loaders():
    from percept.checkpoints import load_checkpoint

    # every stage's checkpoint goes through percept.checkpoints.load_checkpoint (see test_one_checkpoint_api)
    return {"load_checkpoint": lambda p: load_checkpoint(p, {"loss": "pixel"}),
            "load_checkpoint without meta": lambda p: load_checkpoint(p),
            "load_torch": load_torch}


@pytest.mark.parametrize("stage", list(_stage_checkpoint_loaders()))
def test_truncated_checkpoint_is_a_clear_error_in_every_stage(tmp_path, stage):
    path = tmp_path / "run.ckpt"
    save_torch({"meta": {"loss": "pixel"}, "model": {"w": torch.ones(64, 64)}}, path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(RuntimeError, match=r"run.ckpt.? is not a readable checkpoint .*[Dd]elete it \(rm '"):
        _stage_checkpoint_loaders()[stage](path)


def test_checkpoint_of_other_settings_or_of_the_old_format_is_refused(tmp_path):
    from percept.checkpoints import CheckpointMismatch, load_checkpoint, save_checkpoint

    path = tmp_path / "w.ckpt"
    save_checkpoint(path, {"epochs": 5, "backbone": "efficientnet_lite0"}, w=torch.ones(3))
    with pytest.raises(CheckpointMismatch, match=r"w.ckpt was written by a run with other settings \(epochs: "
                                                 r"checkpoint has 5, this run has 3\)"):
        load_checkpoint(path, {"epochs": 3, "backbone": "efficientnet_lite0"})
    # the calibration's "fingerprint", the explanation stage's "identity": the key names before "meta"
    for old_key in ("fingerprint", "identity"):
        save_torch({old_key: {"epochs": 3}, "w": torch.ones(3)}, path)
        with pytest.raises(CheckpointMismatch, match=r"has no 'meta' record: it was written by an older percept"):
            load_checkpoint(path, {"epochs": 3})
        with pytest.raises(CheckpointMismatch, match=r"has no 'meta' record"):
            load_checkpoint(path)


def test_one_checkpoint_api():
    """torch.save and torch.load are called in percept.checkpoints only (and for downloaded backbone weights,
    which are not checkpoints); no stage keeps its own save/load pair or its own metadata key."""
    callers = set()
    for path in (REPO / "src").rglob("*.py"):
        text = path.read_text()
        if re.search(r"torch\.(save|load)\(", text):
            callers.add(path.relative_to(REPO).as_posix())
        assert not re.search(r"^def (save|load)_checkpoint\(", text, re.M) or path.name == "checkpoints.py", path
        assert '{"fingerprint": fp' not in text and '"identity": json.dumps' not in text, path  # the old keys
    assert callers == {"src/percept/checkpoints.py", "src/percept/backbones/__init__.py"}


# ======================================================================================== bad configuration
BAD_CONFIGS = {  # kind: (change to tests/config.yaml, what the message must say)
    "wrong type": (lambda c: c.__setitem__("progress", "yes"),
                   "progress: 'yes' has the wrong type; expected boolean"),
    "unknown backbone": (lambda c: c["features"][0].__setitem__("backbone", "resnet99"),
                         "features[0].backbone: 'resnet99' is not allowed; allowed values: alexnet, "),
    "unknown dataset": (lambda c: c["features"][0].__setitem__("dataset", "mnist"),
                        "features[0].dataset: 'mnist' is not allowed; allowed values: shapes, photos, "),
    "unknown method (sampler)": (lambda c: c["explain"]["rise"]["vary"].__setitem__("sampler", ["gibbs"]),
                                 "explain.rise.vary.sampler[0]: 'gibbs' is not allowed; allowed values: bernoulli, "
                                 "fixed, single, single_inverse, shapley, shapley_coalitions, uniform, normal, beta"),
    "unknown method (similarity mode)": (lambda c: c["similarity"]["metrics"][0].__setitem__("mode", "max"),
                                         "similarity.metrics[0].mode: 'max' is not allowed; allowed values: spatial, "),
    "unknown method (pair strategy)": (lambda c: c["mpcs"]["pretrain"].__setitem__("strategies", ["shuffled"]),
                                       "mpcs.pretrain.strategies[0]: 'shuffled' is not allowed; allowed values: "
                                       "ordered, random, fixed"),
    "unknown loss": (lambda c: c["autoencoders"].__setitem__("losses", ["l1"]),
                     "autoencoders.losses[0]: 'l1' is not allowed; allowed values: pixel, perceptual, "
                     "feature_prediction"),
    "zero count": (lambda c: c["explain"]["rise"].__setitem__("n_masks", 0),
                   "explain.rise.n_masks: 0 is less than the minimum of 2"),
    "negative count": (lambda c: c["mpcs"]["pretrain"].__setitem__("epochs", -1),
                       "mpcs.pretrain.epochs: -1 is less than the minimum of 1"),
    "zero batch size": (lambda c: c["features"][0].__setitem__("batch_size", 0),
                        "features[0].batch_size: 0 is less than the minimum of 1"),
    "fraction above 1": (lambda c: c["datasets"]["magnification"].__setitem__("test_fraction", 1.5),
                         "datasets.magnification.test_fraction: 1.5 is greater than or equal to the maximum of 1"),
    "fraction below 0": (lambda c: c["mpcs"]["finetune"].__setitem__("fractions", [-0.5, 1.0]),
                         "mpcs.finetune.fractions[0]: -0.5 is less than or equal to the minimum of 0"),
    "unknown tap": (lambda c: c["features"][1].__setitem__("taps", ["_blocks.99"]),
                    "features[1].taps: unknown tap(s) ['_blocks.99'] for backbone efficientnet_lite0; the "
                    "registry's taps are ['_stem_act', "),
    "tap not cached": (lambda c: c["explain"]["classifiers"][0].__setitem__("tap", "_blocks.99"),
                       "explain.classifiers[0].tap: '_blocks.99' is not cached by the features entry; cached taps: "),
    "image too small for the backbone": (
        lambda c: c["features"].append({"dataset": "shapes", "backbone": "inception_v3", "weights": "random"}),
        "features[2]: images of 64x64 are too small for inception_v3 (needs at least 75); set features[2].resize "
        "to at least 75"),
    "missing local ImageNet folder": (lambda c: c.__setitem__("imagenet_val", "/nonexistent/ILSVRC2012_val"),
                                      "imagenet_val: '/nonexistent/ILSVRC2012_val' is not a directory"),
    "unknown key": (lambda c: c.__setitem__("epochz", 3),
                    "(top level): unknown key(s) 'epochz'; allowed keys: allow_download, autoencoders, "),
}


@pytest.mark.parametrize("kind", list(BAD_CONFIGS))
def test_bad_config_value_names_the_key_and_the_allowed_values(kind):
    change, message = BAD_CONFIGS[kind]
    cfg = copy.deepcopy(yaml.safe_load(TINY.read_text()))
    change(cfg)
    if kind == "missing local ImageNet folder":
        cfg["features"].append({"dataset": "imagenet_val", "backbone": "efficientnet_lite0"})
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, source="bad.yaml")
    assert str(info.value).startswith("invalid configuration (bad.yaml):")
    assert message in str(info.value), str(info.value)


# ================================================================================================= bad data
LITE0 = backbones.get("efficientnet_lite0")


@pytest.mark.parametrize("x, message", [
    (torch.rand(2, 1, 32, 32), r"takes float RGB images shaped \(B, 3, H, W\) in \[0, 1\], got torch.float32 "
                               r"\(2, 1, 32, 32\)"),
    (torch.rand(2, 4, 32, 32), r"got torch.float32 \(2, 4, 32, 32\)"),  # RGBA
    (torch.rand(2, 32, 32, 3), r"got torch.float32 \(2, 32, 32, 3\)"),  # channels last
    (torch.rand(3, 32, 32), r"got torch.float32 \(3, 32, 32\)"),  # no batch dimension
    ((torch.rand(2, 3, 32, 32) * 255).to(torch.uint8), r"got torch.uint8 \(2, 3, 32, 32\)"),
    (torch.full((2, 3, 32, 32), float("nan")), "images for efficientnet_lite0 contain NaN or infinite values"),
    (torch.zeros(0, 3, 32, 32), None),  # an empty batch is not an error here (the sum of nothing is 0)
])
def test_prepare_input_rejects_bad_images_before_the_network(x, message):
    if message is None:
        assert prepare_input(x, LITE0, None).shape == (0, 3, 32, 32)
        return
    with pytest.raises(ValueError, match=message):
        prepare_input(x, LITE0, None)


@pytest.mark.parametrize("images, message", [
    (np.zeros((0, 8, 8, 3), np.uint8), r"bad.images: the dataset is empty \(0 images\)"),
    (np.zeros((2, 8, 8), np.uint8), r"expected RGB images shaped \(N, H, W, 3\), got shape \(2, 8, 8\)"),
    (np.zeros((2, 8, 8, 4), np.uint8), r"got shape \(2, 8, 8, 4\)"),
    (np.full((2, 8, 8, 3), np.nan, np.float32), "images contain NaN or infinite values"),
    (np.zeros((2, 8, 8, 3), np.int64), "images must be uint8 or float in \\[0, 1\\], got dtype int64"),
])
def test_bad_images_are_refused_before_a_dataset_is_written(tmp_path, images, message):
    with pytest.raises(ValueError, match=message):
        write_image_dataset(tmp_path / "bad.h5", name="bad", images=images, split=np.zeros(len(images)),
                            split_names=["train"], fingerprint="x", source="test")
    assert list(tmp_path.iterdir()) == []


def test_nan_features_are_refused(tmp_path):
    data = np.ones((4, 8, 2, 2), np.float32)
    data[2, 3] = np.nan
    with pytest.raises(CacheError, match="tap t holds non-finite values; the cache is corrupted"):
        FeatureCache(_features_file(tmp_path / "c.h5", data)).load("t")


# ============================================================================================= safe loading
def test_every_torch_load_is_weights_only():
    calls = []
    for folder in ("src", "scripts", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            for match in re.finditer(r"torch\.load\(", text):
                depth, end = 0, match.end() - 1
                for end in range(match.end() - 1, len(text)):  # the call's full argument list
                    depth += {"(": 1, ")": -1}.get(text[end], 0)
                    if depth == 0:
                        break
                calls.append((f"{path.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}",
                              text[match.start():end + 1]))
    assert calls, "no torch.load found: the grep is broken"
    unsafe = [where for where, call in calls if "weights_only=True" not in call]
    assert unsafe == []


def test_load_torch_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(1)}, "hook": pd.Timestamp}, path)  # a class: needs full unpickling
    with pytest.raises(CheckpointError, match="evil.pt is not a readable checkpoint"):
        load_torch(path)


# ===================================================================================================== disk
def _previous(path: Path, content: bytes = b"previous complete version") -> bytes:
    path.write_bytes(content)
    return content


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_full_disk_during_a_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    from percept.checkpoints import save_checkpoint

    real_save = torch.save

    def half_then_enospc(obj, f, *args, **kwargs):
        real_save({"half": torch.ones(8)}, f)
        raise ENOSPC

    monkeypatch.setattr(torch, "save", half_then_enospc)
    writers = {"save_torch": lambda p: save_torch({"x": 1}, p),
               "save_checkpoint": lambda p: save_checkpoint(p, {"x": 1}, epoch=1)}
    for name, write in writers.items():
        path = tmp_path / name / "run.ckpt"
        path.parent.mkdir()
        old = _previous(path)
        with pytest.raises(OSError) as info:
            write(path)
        assert info.value.errno == errno.ENOSPC
        assert _only(path.parent) == ["run.ckpt"] and path.read_bytes() == old, name


def test_full_disk_during_a_table_json_or_figure_leaves_the_previous_file(tmp_path, monkeypatch):
    import matplotlib.figure
    import matplotlib.pyplot as plt

    def half_then_enospc(self, path, *args, **kwargs):
        with open(path, "w") as fh:
            fh.write("a,b\n1,")
        raise ENOSPC

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_enospc)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_enospc)
    def half_write_text(self, data, *args, **kwargs):
        with open(self, "w") as fh:
            fh.write(data[: len(data) // 2])
        raise ENOSPC

    monkeypatch.setattr(Path, "write_text", half_write_text)
    fig = plt.figure()
    writers = {"table.csv": lambda p: write_csv(pd.DataFrame({"a": [1]}), p),
               "stats.json": lambda p: write_json({"a": 1}, p),
               "figure.png": lambda p: plotting.save(fig, p)}
    for name, write in writers.items():
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        old = _previous(folder / name)
        with pytest.raises(OSError, match="No space left on device"):
            write(folder / name)
        assert _only(folder) == [name] and (folder / name).read_bytes() == old, name


def test_killed_hdf5_writer_leaves_only_a_hidden_temporary_that_the_next_write_removes(tmp_path):
    """SIGKILL runs no cleanup: the partial file keeps its hidden temporary name (never the target's), is
    refused if opened, and the next successful write of the same target deletes it."""
    target = tmp_path / "cache.h5"
    pid = os.fork()
    if pid == 0:  # the writer, killed mid-write
        with atomic_h5(target, "features") as f:
            f.create_dataset("x", data=np.ones(1000))
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    (stale,) = tmp_path.iterdir()
    assert stale.name.startswith(".cache.h5.") and stale.name.endswith(".tmp") and not target.exists()
    with pytest.raises(CacheError, match="incomplete — the job writing it did not finish"):
        open_h5(stale, "features")
    with atomic_h5(target, "features") as f:
        f.create_dataset("x", data=np.ones(3))
    assert _only(tmp_path) == ["cache.h5"]
