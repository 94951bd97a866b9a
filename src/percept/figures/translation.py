"""Figure of the shape-translation stage: inputs and their translations by the full model and each ablation,
the table of scores (mean ± s.e.m. over the test images of domain A) and the loss curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from percept import plotting
from percept.figures.registry import renderer

SCORE_LABELS = {"target_shape_rate": "judged B ↑", "neither_rate": "judged neither ↓", "mask_iou": "mask IoU ↑", "colour_hist_distance": "colour hist ↓",
                "perceptual_distance": "DPS ↓", "background_change": "bg change ↓"}


@renderer("fig_shape_translation")
def fig_shape_translation(inputs: Mapping[str, Any], out: Sequence[str]) -> None:
    import matplotlib.pyplot as plt

    from percept.translation.tables import read_examples

    examples = [read_examples(p) for p in inputs["examples"]]
    rows = [("input (A)", examples[0]["inputs"])] + [(e["variant"], e["translations"]) for e in examples
                                                      if e["variant"] != "identity"]
    table = pd.read_csv(inputs["ablation"])
    hist = pd.concat([pd.read_csv(p) for p in inputs["histories"]], ignore_index=True)
    n_cols = max(len(r[1]) for r in rows)
    scores = [s for s in SCORE_LABELS if s in set(table["score"])]
    variants = list(dict.fromkeys(table["variant"]))
    with plotting.style():
        fig = plt.figure(figsize=(12.0, 1.2 * len(rows) + 0.45 * len(variants) + 1.8))
        grid = fig.add_gridspec(2, 2, width_ratios=[max(n_cols, 3), 3.2],
                                height_ratios=[1.2 * len(rows), 0.45 * len(variants) + 0.9], wspace=0.25, hspace=0.3)
        images_grid = grid[0, 0].subgridspec(len(rows), n_cols, wspace=0.05, hspace=0.08)
        for r, (name, images) in enumerate(rows):
            for c in range(n_cols):
                ax = fig.add_subplot(images_grid[r, c])
                if c < len(images):
                    ax.imshow(images[c], interpolation="nearest")
                plotting.image_axis(ax)
                if c == 0:
                    ax.set_ylabel(name.replace("_", " "), fontsize=9, rotation=0, ha="right", va="center")
        # the loss curves
        ax = fig.add_subplot(grid[0, 1])
        total = hist[hist["term"] == "total"].groupby(["variant", "epoch"], sort=False)["value"].mean().reset_index()
        for k, (v, g) in enumerate(total.groupby("variant", sort=False)):
            ax.plot(g["epoch"], g["value"], marker="o", ms=3, color=plotting.PALETTE[k % len(plotting.PALETTE)],
                    label=v.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel("translator loss (weighted sum)")
        ax.set_title("training loss (mean per epoch)", fontsize=10)
        ax.legend(fontsize=7)
        # the table of scores
        ax = fig.add_subplot(grid[1, :])
        ax.axis("off")
        cells = []
        for v in variants:
            row = []
            for s in scores:
                hit = table[(table["variant"] == v) & (table["score"] == s)]
                m, e = float(hit["mean"].iloc[0]), float(hit["sem"].iloc[0])
                row.append("n/a" if np.isnan(m) else f"{m:.3f} ± {0 if np.isnan(e) else e:.3f}")
            cells.append(row)
        tab = ax.table(cellText=cells, rowLabels=[v.replace("_", " ") for v in variants],
                       colLabels=[SCORE_LABELS[s] for s in scores], loc="center", cellLoc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(9)
        tab.scale(1.0, 1.3)
        ax.set_title("scores of the A→B test translations (mean ± s.e.m.; identity = input unchanged)", fontsize=10)
        fig.suptitle("Shape translation A→B: inputs and translations per ablation variant")
        plotting.save(fig, *out)
