"""The torch-free half of the translation stage's evaluation: the score names, the tidy ablation table, the
example files the figure shows. The summary rule and render_fig_shape_translation import only this module
(and pandas, h5py), not torch (tests/test_import_light.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

SCORES = ("target_shape_rate", "neither_rate", "mask_iou", "colour_hist_distance", "perceptual_distance", "background_change")
# The scores that need the ground-truth object mask, centre and clean background (the offline shapes domains have
# them; downloaded photo sets such as horse2zebra do not): without them these columns are left out of the tables
# rather than written as NaN.
MASK_SCORES = ("mask_iou", "colour_hist_distance", "perceptual_distance", "background_change")


def scores_of(table: pd.DataFrame) -> list[str]:
    """The scores of :data:`SCORES` that ``table`` (per image) has, in their canonical order."""
    return [s for s in SCORES if s in table.columns]


def summarize(per_image: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy table: one row per (variant, score) with the mean, standard error and image count, for the scores the
    per-image table has (no rows for the mask-based scores of a dataset without masks)."""
    long = per_image.melt(id_vars=["variant", "image"], value_vars=scores_of(per_image), var_name="score")
    g = long.groupby(["variant", "score"], sort=False)["value"]
    out = pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n": g.count()}).reset_index()
    return out


def write_examples(path: str | Path, examples: Mapping[str, np.ndarray], variant: str) -> None:
    """The examples the figure shows, as an HDF5 file written atomically."""
    from percept.h5io import atomic_h5

    with atomic_h5(path, kind="translation_examples", meta={"variant": variant}) as f:
        for key, arr in examples.items():
            f.create_dataset(key, data=arr)


def read_examples(path: str | Path) -> dict[str, Any]:
    from percept.h5io import get_json_attr, open_h5

    with open_h5(path, "translation_examples") as f:
        return {"variant": get_json_attr(f, "variant"), **{k: f[k][...] for k in f}}


def summarize_runs(score_files: list[str], timing_files: list[str], *, per_image: str, ablation: str,
                   timing: str) -> pd.DataFrame:
    """Concatenate the variants' per-image scores, write the tidy ablation table and the training times
    (JSON records, not a CSV: wall-clock times differ between reruns, while every CSV table is reproduced
    exactly)."""
    import json

    from percept.tables import write_csv, write_json

    scores = pd.concat([pd.read_csv(f) for f in score_files], ignore_index=True)
    table = summarize(scores)
    times = []
    for f in timing_files:
        info = json.loads(Path(f).read_text())
        for epoch, s in enumerate(info["seconds_per_epoch"], 1):
            times.append({"variant": info["variant"], "epoch": epoch, "seconds": s,
                          "steps": info["steps_per_epoch"], "device": info["device"]})
    write_csv(scores, per_image)
    write_csv(table, ablation)
    write_json(times, timing)
    return table
