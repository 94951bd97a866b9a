"""Figures of the explanation stage, from the saliency maps and tables the pipeline computed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from percept import plotting
from percept.figures.registry import renderer

METRIC_LABELS = {"iou": "IoU ↑", "pointing": "pointing game ↑", "mae": "MAE ↓", "saliency": "saliency metric ↓",
                 "deletion": "deletion AUC ↓", "insertion": "insertion AUC ↑", "kept_probability": "p(kept region) ↑",
                 "srg": "SRG ↑", "srg_normalised": "SRG (normalised) ↑"}
LOWER_IS_BETTER = {"mae", "saliency", "deletion", "mif"}
COMPONENT_COLUMNS = ("sampler", "segmenter", "perturbation", "smoothing", "attribution", "calculator")
RISE_BASE_CALC = "rise"


def _component_columns(df: pd.DataFrame) -> pd.DataFrame:
    for c in COMPONENT_COLUMNS:
        if c not in df:
            df[c] = ""
    return df.fillna({c: "" for c in COMPONENT_COLUMNS})


def _base_rise(summary: pd.DataFrame) -> dict[str, str]:
    """The components of the base RISE setting (flagged by explain_rise)."""
    row = summary[(summary.method == "rise") & summary["base"].astype(bool)].iloc[0]
    return {c: row[c] for c in COMPONENT_COLUMNS}


@renderer("fig_saliency_examples")
def fig_saliency_examples(inputs: Mapping[str, Any], out: Sequence[str], n_images: int = 4) -> None:
    """Explained images (rows) × methods (columns): RISE variants, the explainer, Grad-CAM, relevant channels,
    and the relevant channels' average top-activating crops."""
    import matplotlib.pyplot as plt

    from percept.data.store import ImageDataset
    from percept.explain.maps import read_maps
    from percept.h5io import open_h5

    ds = ImageDataset(inputs["dataset"])
    rows, rise, rmeta = read_maps(inputs["rise"])
    _, base, _ = read_maps(inputs["baselines"])
    base_key = next(k for k in rise if rmeta[k].get("base"))
    mode = {c: rmeta[base_key][c] for c in ("sampler", "segmenter", "perturbation", "smoothing", "calculator")}
    picks = {"RISE\n(original)": [k for k in rise if all(rmeta[k][c] == mode[c] for c in mode)]}
    for comp, label in (("smoothing", "hard masks"), ("segmenter", "SLIC"), ("calculator", "kernel SHAP")):
        alt = [k for k in rise if rmeta[k][comp] != mode[comp] and
               all(rmeta[k][c] == mode[c] for c in mode if c != comp)]
        pref = [k for k in alt if rmeta[k][comp] in ("hard", "slic", "kernel_shap")]
        if pref or alt:
            key = (pref or alt)[0]
            picks[f"RISE\n{comp}={rmeta[key][comp]}"] = [key]
    columns = [(name, rise[keys[0]]) for name, keys in picks.items() if keys]
    names = {"explainer": "explainer", "gradcam": "Grad-CAM", "channels": "relevant\nchannels"}
    columns += [(names[k], base[k]) for k in ("explainer", "gradcam", "channels") if k in base]
    pos = rows[:n_images]
    images = ds.batch(pos).permute(0, 2, 3, 1).numpy()
    labels = ds.labels()[pos].numpy()
    masks = ds.masks(pos).numpy()
    with open_h5(inputs["crops"], "saliency") as f:
        crops = f["crops"][...]
    channels = pd.read_csv(inputs["channels"]) if inputs.get("channels") else pd.DataFrame()
    ncol = 2 + len(columns)
    n_groups = _crop_groups_per_row(crops.shape[1], ncol)
    crop_rows = -(-crops.shape[0] // n_groups)
    with plotting.style():
        fig = plt.figure(figsize=(1.55 * ncol, 1.7 * len(pos) + 0.85 * crop_rows + 1.6))
        grid = fig.add_gridspec(len(pos) + 1, ncol, height_ratios=[1] * len(pos) + [0.55 * crop_rows + 0.2])
        for i in range(len(pos)):
            c = int(np.flatnonzero(labels[i])[0])
            ax = fig.add_subplot(grid[i, 0])
            ax.imshow(images[i])
            plotting.image_axis(ax, f"{ds.class_names[c]}" if i else f"image: {ds.class_names[c]}")
            ax = fig.add_subplot(grid[i, 1])
            ax.imshow(masks[i, c], cmap="gray", vmin=0, vmax=1)
            plotting.image_axis(ax, "ground truth" if i == 0 else None)
            for j, (name, arr) in enumerate(columns):
                ax = fig.add_subplot(grid[i, 2 + j])
                m = arr[i, c]
                m = (m - m.min()) / (m.max() - m.min() + 1e-12)
                ax.imshow(images[i])
                ax.imshow(m, cmap="jet", alpha=0.5, vmin=0, vmax=1)
                plotting.image_axis(ax, None)
                if i == 0:
                    ax.set_title(name, fontsize=7)
        taps = crop_panel(fig, grid[len(pos), :], crops, channels, ds.class_names, n_groups)
        fig.suptitle("Saliency maps of the explained class (first present class) on held-out images; bottom: "
                     "average top-activating crops of each class's relevant channels"
                     + (f" (channel numbers of {taps[0]})" if len(taps) == 1 else ""), fontsize=9)
        plotting.save(fig, *out)


def _crop_groups_per_row(show: int, ncol: int) -> int:
    """Classes per row of the crop panel: each class takes ``show`` crop cells and a spacer, about three cells
    per image column, so a class name and the channel numbers fit under and over their own crops."""
    return max(1, (3 * ncol) // (show + 1))


def crop_panel(fig, spec, crops: np.ndarray, channels: pd.DataFrame, class_names: Sequence[str],
               groups_per_row: int) -> list[str]:
    """The relevant channels' average top-activating crops (``crops``: classes × shown channels × H × W × 3,
    NaN where a class has fewer) in ``spec``, wrapped into rows of ``groups_per_row`` classes: the class name
    once over its crops, each crop's channel under it (``tap:channel`` only when the channels come from
    several taps). Returns the taps."""
    n_classes, show = crops.shape[:2]
    taps = sorted(set(channels["tap"])) if len(channels) else []
    n_rows = -(-n_classes // groups_per_row)
    sub = spec.subgridspec(n_rows, groups_per_row * (show + 1) - 1, wspace=0.08, hspace=0.55)
    for k in range(n_classes):
        row, group = divmod(k, groups_per_row)
        for r in range(show):
            ax = fig.add_subplot(sub[row, group * (show + 1) + r])
            plotting.image_axis(ax)
            if r == 0:
                ax.set_title(class_names[k], fontsize=6, loc="left", pad=2)
            if not np.isfinite(crops[k, r]).all():
                continue
            ax.imshow(np.clip(crops[k, r], 0, 1))
            sel = channels[(channels["class"] == k) & (channels["rank"] == r)] if len(channels) else []
            if len(sel):
                tap, ch = sel.iloc[0]["tap"], int(sel.iloc[0]["channel"])
                ax.set_xlabel(f"{tap}:{ch}" if len(taps) > 1 else str(ch), fontsize=5, labelpad=1)
    return taps


@renderer("fig_rise_components")
def fig_rise_components(inputs: Mapping[str, Any], out: Sequence[str]) -> None:
    """The components paper's question with its score: per component (columns) SRG, deletion and insertion
    (rows) of each choice, the others at the base; the last column the share of the variance of each metric
    across settings that each component explains (:func:`percept.explain.components.component_variance_shares`)."""
    import matplotlib.pyplot as plt

    from percept.explain.components import component_variance_shares

    summary = _component_columns(pd.read_csv(inputs["summary"]))
    rise = summary[summary.method == "rise"]
    base = _base_rise(summary)
    comps = [c for c in COMPONENT_COLUMNS if rise[c].nunique() > 1] or list(COMPONENT_COLUMNS)
    metrics = [m for m in ("srg", "deletion", "insertion") if m in rise and rise[m].notna().any()]
    with plotting.style():
        fig, axes = plt.subplots(len(metrics), len(comps) + 1, figsize=(2.5 * (len(comps) + 1), 2.0 * len(metrics)),
                                 squeeze=False)
        for i, m in enumerate(metrics):
            shares = component_variance_shares(summary, m, comps, m not in LOWER_IS_BETTER).set_index("component").loc[comps]
            for j, comp in enumerate(comps):
                others = [c for c in COMPONENT_COLUMNS if c != comp]
                sel = rise[np.logical_and.reduce([rise[c] == base[c] for c in others])].drop_duplicates(comp)
                order = [base[comp]] + sorted(v for v in sel[comp] if v != base[comp])
                sel = sel.set_index(comp).loc[order]
                ax = axes[i, j]
                colours = [plotting.PALETTE[0]] + [plotting.PALETTE[1]] * (len(order) - 1)
                ax.bar(range(len(order)), sel[m], yerr=sel.get(f"{m}_sem"), color=colours, capsize=2)
                ax.set_xticks(range(len(order)))
                ax.set_xticklabels(order if i == len(metrics) - 1 else [], rotation=45, ha="right", fontsize=7)
                if j == 0:
                    ax.set_ylabel(METRIC_LABELS[m], fontsize=8)
                if i == 0:
                    ax.set_title(f"{comp}\n(base {base[comp]})", fontsize=8)
            ax = axes[i, -1]
            ax.barh(range(len(comps)), shares["share"], color=plotting.PALETTE[2])
            ax.set_yticks(range(len(comps)))
            ax.set_yticklabels(comps, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            for k, v in enumerate(shares["share"]):
                ax.text(min(v + 0.02, 0.8), k, f"{v:.0%}", va="center", fontsize=7)
            if i == 0:
                ax.set_title("share of the variance\nacross choices", fontsize=8)
        fig.suptitle("Which parts of RISE matter, by the components paper's SRG (LIF − MIF AUC, grey 0.5, 10 steps) "
                     "and RISE's deletion/insertion: each component varied alone from the base (blue); "
                     "mean ± s.e. over the scored image × class rows (evaluation.target)", fontsize=9)
        fig.tight_layout()
        plotting.save(fig, *out)


@renderer("fig_explainer_comparison")
def fig_explainer_comparison(inputs: Mapping[str, Any], out: Sequence[str]) -> None:
    """Explainer vs Grad-CAM vs RISE (original) vs relevant channels on every metric, per classifier."""
    import matplotlib.pyplot as plt

    paths = inputs["summaries"]
    paths = [paths] if isinstance(paths, str) else list(paths)
    frames = []
    for p in paths:
        s = _component_columns(pd.read_csv(p))
        base = _base_rise(s)
        rise = s[(s.method == "rise") & np.logical_and.reduce([s[c] == v for c, v in base.items()])].copy()
        rise["label"] = "RISE"
        best = s[s.method == "rise"].sort_values("insertion", ascending=False).head(1).copy()
        best["label"] = "best RISE variant\n(insertion)"
        other = s[s.method != "rise"].copy()
        other["label"] = other["method"].map({"gradcam": "Grad-CAM", "explainer": "explainer",
                                              "channels": "relevant channels", "constant": "constant map"})
        frames.append(pd.concat([other, rise, best]))
    df = pd.concat(frames)
    metrics = [m for m in METRIC_LABELS if m in df and df[m].notna().any()]
    clfs = list(dict.fromkeys(df["classifier"]))
    labels = list(dict.fromkeys(df["label"]))
    with plotting.style():
        fig, axes = plt.subplots(1, len(metrics), figsize=(2.4 * len(metrics), 3.4), squeeze=False)
        width = 0.8 / len(clfs)
        for i, m in enumerate(metrics):
            ax = axes[0, i]
            for k, clf in enumerate(clfs):
                sub = df[df.classifier == clf].set_index("label").reindex(labels)
                ax.bar(np.arange(len(labels)) + k * width, sub[m], width, yerr=sub.get(f"{m}_sem"), capsize=2,
                       color=[plotting.PALETTE[j % len(plotting.PALETTE)] for j in range(len(labels))],
                       alpha=1.0 - 0.35 * k, label=clf)
            ax.set_xticks(np.arange(len(labels)) + width * (len(clfs) - 1) / 2)
            ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
            ax.set_title(METRIC_LABELS[m], fontsize=9)
            ax.set_ylabel("mean over image × class" if i == 0 else "")
        fig.suptitle(f"Explainer vs Grad-CAM vs RISE on the ground-truth metrics and deletion/insertion "
                     f"(classifier{'s' if len(clfs) > 1 else ''}: {', '.join(clfs)})", fontsize=9)
        fig.tight_layout()
        plotting.save(fig, *out)
