"""The explanation stage's map files (``kind="saliency"`` HDF5): ``rows`` (dataset file rows of the explained
images) and ``maps/<setting id>`` float16 ``(n_images, K, H, W)`` with the setting's metadata as JSON. Kept
free of torch and the explainers so the figures read them with h5py alone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from percept.h5io import atomic_h5, get_json_attr, open_h5, set_json_attr


def write_maps(path: str | Path, rows: np.ndarray, maps: Mapping[str, np.ndarray], meta: Mapping[str, dict],
               attrs: Mapping[str, Any]) -> None:
    with atomic_h5(path, kind="saliency", meta=attrs) as f:
        f.create_dataset("rows", data=np.asarray(rows, np.int64))
        for key, arr in maps.items():
            ds = f.create_dataset(f"maps/{key}", data=arr.astype(np.float16), compression="gzip",
                                  compression_opts=4)
            set_json_attr(ds, "meta", meta[key])


def read_maps(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, dict]]:
    with open_h5(path, "saliency") as f:
        rows = f["rows"][...]
        maps = {k: f[f"maps/{k}"][...].astype(np.float32) for k in f["maps"]}
        meta = {k: get_json_attr(f[f"maps/{k}"], "meta") for k in f["maps"]}
    return rows, maps, meta
