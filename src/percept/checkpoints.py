"""The one way a checkpoint file is written and read: ``torch.save`` through a temporary name beside the
target and an atomic rename (a killed job or a full disk never leaves a file that looks finished), and
``torch.load(weights_only=True)`` (no pickled code runs) with a clear message for a truncated, corrupted or
foreign file. Each stage keeps its own identity check (which settings a checkpoint must match) on top."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read: truncated, corrupted, or not a checkpoint at all."""


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to a hidden temporary name, renamed into place only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
