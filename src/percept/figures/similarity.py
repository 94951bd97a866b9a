"""Figures of the similarity stage: 2AFC/JND per category, the flaw analysis, the adaptation to contexts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from percept import plotting
from percept.figures.registry import renderer


def _read(table) -> pd.DataFrame:
    return pd.read_csv(table) if isinstance(table, str) else table


@renderer("fig_2afc")
def fig_2afc(inputs, out: Sequence[str]) -> None:
    """2AFC score (left) and JND average precision (right) per category and method."""
    import matplotlib.pyplot as plt

    df = _read(inputs["table"])
    kinds = [k for k in ("2afc", "jnd") if (df["kind"] == k).any()]
    methods = list(dict.fromkeys(df["method"]))
    with plotting.style():
        fig, axes = plt.subplots(1, len(kinds), figsize=(7.5 * len(kinds), 4.2), squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            sub = df[df["kind"] == kind]
            cats = list(dict.fromkeys(sub["category"]))
            width = 0.85 / len(methods)
            for m_i, m in enumerate(methods):
                vals = [sub[(sub["method"] == m) & (sub["category"] == c)]["score"] for c in cats]
                vals = [float(v.iloc[0]) if len(v) else np.nan for v in vals]
                ax.bar(np.arange(len(cats)) + (m_i - (len(methods) - 1) / 2) * width, vals, width, label=m,
                       color=plotting.PALETTE[m_i % len(plotting.PALETTE)])
            ax.set_xticks(np.arange(len(cats)), cats, rotation=30, ha="right")
            lo = np.nanmin(sub["score"])
            ax.set_ylim(max(0.0, lo - 0.1), 1.0)
            ax.set_ylabel("2AFC score" if kind == "2afc" else "JND average precision")
            ax.set_xlabel("category")
            ax.set_title(f"{'2AFC' if kind == '2afc' else 'JND'} on {sub['dataset'].iloc[0]}")
        axes[0, -1].legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        plotting.save(fig, *out)


@renderer("fig_dps_flaws")
def fig_dps_flaws(inputs, out: Sequence[str]) -> None:
    """Example challenge images (top) and pass rates per backbone x mode x normalisation for each group."""
    import matplotlib.pyplot as plt

    from percept.data.store import ImageDataset
    from percept.similarity.distortions import ROLES

    df = _read(inputs["summary"])
    data = ImageDataset(inputs["challenges"])
    show = ["original", "translate_0.125", "rotate_45", "rotate_180", "hflip", "invert", "stain_original", "stain_clean",
            "stain",
            "ref_grey", "ref_noise"]
    imgs = data.batch([ROLES.index(r) for r in show]).permute(0, 2, 3, 1).numpy()
    groups = list(dict.fromkeys(df["group"]))
    df = df.assign(setting=df["mode"] + np.where(df["normalize"].astype(str) == "True", "", " (no norm)"))
    settings = list(dict.fromkeys(df["setting"]))
    nets = list(dict.fromkeys(df["backbone"]))
    with plotting.style():
        fig = plt.figure(figsize=(max(12, 2.6 * len(groups)), 3.2 + 0.35 * len(settings)))
        gs = fig.add_gridspec(2, max(len(show), len(groups)), height_ratios=[1, 0.3 * len(settings)])
        for i, r in enumerate(show):
            ax = fig.add_subplot(gs[0, i]) if i < gs.ncols else None
            if ax is None:
                break
            ax.imshow(imgs[i])
            plotting.image_axis(ax, r)
        span = gs.ncols // len(groups)
        for g_i, g in enumerate(groups):
            ax = fig.add_subplot(gs[1, g_i * span:(g_i + 1) * span])
            sub = df[df["group"] == g]
            grid = np.array([[float(sub[(sub["backbone"] == n) & (sub["setting"] == s)]["pass_rate"].mean())
                              for n in nets] for s in settings])
            im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for (y, x), v in np.ndenumerate(grid):
                ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
            ax.set_xticks(range(len(nets)), nets, rotation=30, ha="right", fontsize=7)
            ax.set_yticks(range(len(settings)), settings if g_i == 0 else [""] * len(settings), fontsize=7)
            ax.set_title(f"{g} (n={int(sub['n'].iloc[0])} per cell)", fontsize=9)
            ax.set_xlabel("backbone")
            ax.grid(False)
            if g_i == 0:
                ax.set_ylabel("mode (normalisation)")
        fig.colorbar(im, ax=fig.axes[-1], label="pass rate", fraction=0.08)
        fig.suptitle("DPS flaw analysis: a challenge passes when the transformed image is not farther from its "
                     "original than any plain reference (ties pass)", fontsize=10)
        plotting.save(fig, *out)


@renderer("fig_dps_adaptation")
def fig_dps_adaptation(inputs, out: Sequence[str]) -> None:
    """Held-out ordering accuracy per context (adapted vs baseline), the improvement, and retained scores, per
    backbone x variant (lin, tune, scratch) x mode."""
    import matplotlib.pyplot as plt

    tables = inputs["tables"]
    df = pd.concat([_read(t) for t in ([tables] if isinstance(tables, str) else list(tables))], ignore_index=True)
    if "variant" not in df:  # tables written before the variants existed
        df = df.assign(variant="lin")
    label = df["backbone"] + " " + df["variant"]
    if "mode" in df and df["mode"].nunique() > 1:
        label = label + " " + df["mode"]
    df = df.assign(series=label)
    series = list(dict.fromkeys(df["series"]))
    retained = [c[:-len("_adapted")] for c in df.columns
                if c.endswith("_adapted") and c != "val_adapted" and "[" not in c]
    with plotting.style():
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
        ax = axes[0]
        for i, n in enumerate(series):
            sub = df[df["series"] == n]
            ax.scatter(sub["baseline"], sub["adapted"], s=14, color=plotting.PALETTE[i % len(plotting.PALETTE)],
                       label=f"{n} ({len(sub)})")
        ax.plot([0, 1], [0, 1], color="0.4", ls="--", lw=1, label="no change")
        ax.set_xlabel("baseline accuracy (held-out pairs)")
        ax.set_ylabel("adapted accuracy (held-out pairs)")
        ax.set_title("ordering accuracy per context")
        ax.legend(fontsize=7)
        ax = axes[1]
        diff = (df["adapted"] - df["baseline"]) * 100
        bins = np.histogram_bin_edges(diff, bins=20)
        for i, n in enumerate(series):
            sel = df["series"] == n
            ax.hist(diff[sel], bins=bins, color=plotting.PALETTE[i % len(plotting.PALETTE)], alpha=0.6,
                    label=f"{n}: {100 * (diff[sel] > 0).mean():.0f} % better")
        ax.axvline(0, color="0.3", ls="--", lw=1)
        ax.set_xlabel("improvement (percentage points)")
        ax.set_ylabel("contexts")
        ax.set_title("adapted minus baseline")
        ax.legend(fontsize=7)
        ax = axes[2]
        width = 0.85 / (len(series) + 1)
        x = np.arange(len(retained))
        ax.bar(x - 0.425 + width / 2, [df[f"{r}_baseline"].mean() for r in retained], width, label="baseline",
               color="0.6")
        for i, n in enumerate(series):
            sub = df[df["series"] == n]
            ax.bar(x - 0.425 + width * (i + 1.5), [sub[f"{r}_adapted"].mean() for r in retained], width,
                   label=n, color=plotting.PALETTE[i % len(plotting.PALETTE)])
        ax.set_xticks(x, [r.replace("_", " ") for r in retained], rotation=15)
        ax.set_ylabel("score (mean over contexts)")
        ax.set_ylim(0, 1)
        ax.set_title("retained: other contexts, 2AFC val, JND")
        ax.legend(fontsize=7)
        plotting.save(fig, *out)
