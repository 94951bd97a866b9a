"""Tidy CSV tables, written atomically: a temporary name beside the target, then a rename."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
