"""The one checkpoint API of the project: ``torch.save`` through a temporary name beside the target and an
atomic rename (a killed job or a full disk never leaves a file that looks finished), and
``torch.load(weights_only=True)`` (no pickled code runs) with a clear message for a truncated, corrupted or
foreign file. Every stage's checkpoint (MPCS, shape translation, autoencoders, DPS calibration and adaptation,
the explained classifier and the explainer) is written by :func:`save_checkpoint` as ``{"meta": meta, **state}``
and read by :func:`load_checkpoint`, which refuses a file whose ``meta`` differs from the run's on any key the
run states. ``meta`` is the one metadata key name (it replaced the autoencoders' ``meta``, the calibration's
``fingerprint`` and the explanation stage's JSON-string ``identity``); a checkpoint written before that has no
``meta`` and is refused with a message to delete it. :func:`save_torch` / :func:`load_torch` stay for files
that are not checkpoints (downloaded weights).

Fault point (tests only, see :mod:`percept.faults`): ``checkpoints.after_save``, a file written by
:func:`save_torch` complete and in place (in a training job: its first checkpoint)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from percept import faults


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read: truncated, corrupted, or not a checkpoint at all."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint written by a run with other settings (its ``meta`` differs from the run's)."""


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to a hidden temporary name, renamed into place only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())  # the bytes are on disk before the name says the file is complete
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    faults.pause("checkpoints.after_save")


def load_torch(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; :class:`CheckpointError` naming the file and the fix when it
    cannot be read (a truncated copy, a file from elsewhere, a pickle carrying code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint. Run snakemake to build it.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip/unpickling errors of many kinds
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {str(exc)[:300]}); it is "
                              f"truncated, corrupted or not a percept checkpoint. Delete it (rm '{path}') and rerun "
                              "snakemake, which rebuilds it.") from exc


def save_checkpoint(path: str | os.PathLike, meta: Mapping[str, Any], **state: Any) -> None:
    """``{"meta": meta, **state}`` through :func:`save_torch` (atomic); ``meta`` is stored as plain JSON types."""
    save_torch({"meta": json.loads(json.dumps(dict(meta))), **state}, path)


# A resume checkpoint of a running training costs a torch.save and an fsync of the whole state (Lite0 with Adam:
# 46 MB; 0.13 s of CPU, 0.1-2.4 s of wall on a busy disk): MPCS fine-tunes runs of a second or two, 48 per job.
CHECKPOINT_SECONDS = 30.0


class Every:
    """Whether a resume checkpoint is due: the first time after ``seconds`` since the last one (or since the
    start), always when ``seconds`` is 0. A job killed between two loses at most ``seconds`` of work; what it
    computes is the same either way (every random draw derives from the seed and the epoch)."""

    def __init__(self, seconds: float = CHECKPOINT_SECONDS):
        self.seconds = float(seconds)
        self.last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if self.seconds > 0 and now - self.last < self.seconds:
            return False
        self.last = now
        return True


def load_checkpoint(path: str | os.PathLike, meta: Mapping[str, Any] | None = None, map_location: Any = "cpu",
                    missing_ok: bool = True) -> dict[str, Any] | None:
    """The checkpoint's content (``None`` when there is none and ``missing_ok``); :class:`CheckpointError` when it
    cannot be read, :class:`CheckpointMismatch` when it has no ``meta`` (written before the checkpoints had one
    metadata key) or its ``meta`` disagrees with ``meta`` on any key of ``meta`` (the message names each such
    key). ``meta=None`` checks nothing beyond the file being a checkpoint (a reader that takes its settings
    from the checkpoint, e.g. the explainer's classifier); a partial ``meta`` checks only the keys it names
    (fine-tuning reading the pretraining's encoder)."""
    path = Path(path)
    if not path.exists() and missing_ok:
        return None
    state = load_torch(path, map_location=map_location)
    if not isinstance(state, dict) or not isinstance(state.get("meta"), dict):
        raise CheckpointMismatch(f"{path} has no 'meta' record: it was written by an older percept (before every "
                                 f"checkpoint kept its settings under 'meta') or is not a checkpoint. Delete it "
                                 f"(rm '{path}') and rerun snakemake, which rebuilds it.")
    want = json.loads(json.dumps(dict(meta or {})))
    have = state["meta"]
    diff = [k for k in sorted(want) if want[k] != have.get(k)]
    if diff:
        details = "; ".join(f"{k}: checkpoint has {have.get(k)!r}, this run has {want.get(k)!r}" for k in diff)
        raise CheckpointMismatch(f"{path} was written by a run with other settings ({details}). Refusing to "
                                 f"resume from it; delete it (rm '{path}') to start over.")
    return state
