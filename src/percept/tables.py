"""Tidy CSV tables (and small JSON records), written atomically: a temporary name beside the target, then a
rename, so a killed job never leaves a half-written table that looks complete. The one CSV writer
(:func:`write_csv`) and the one JSON writer (:func:`write_json`) of the pipeline: every stage and script writes
its tables and records through them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def write_csv(df: pd.DataFrame, path: str | os.PathLike, float_format: str | None = None) -> None:
    """The one way a stage writes a table: tidy, no index, through a temporary name renamed into place, so a
    killed job never leaves a half-written table that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        df.to_csv(tmp, index=False, float_format=float_format)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    """numpy scalars, 0-d tensors and arrays as plain JSON numbers and lists (records built from a DataFrame,
    an array or a training step)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json(obj: Any, path: str | os.PathLike, sort_keys: bool = False) -> None:
    """A small JSON record (run statistics, metrics), written like the tables: temporary name, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys, default=_plain))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
