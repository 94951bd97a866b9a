"""Figures of the foundation: the embedded datasets, the backbone check and the feature caches."""

from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np
import pandas as pd

from percept import plotting
from percept.figures.registry import renderer


def fig_datasets(shapes_path: str, photos_path: str, out: Sequence[str], n: int = 8) -> None:
    """Example ``shapes`` scenes with their ground-truth masks, and ``photos`` reference crops."""
    import matplotlib.pyplot as plt

    from percept.data.store import ImageDataset  # torch: only this figure reads images

    shapes = ImageDataset(shapes_path, split="train")
    photos = ImageDataset(photos_path)
    n = min(n, len(shapes))
    imgs = shapes.batch(slice(0, n)).permute(0, 2, 3, 1).numpy()
    masks = shapes.masks(slice(0, n)).numpy()  # (n, K, H, W)
    labels = shapes.labels()[:n].numpy()
    pick = np.linspace(0, len(photos) - 1, n).round().astype(int)
    crops = photos.batch(pick).permute(0, 2, 3, 1).numpy()
    names = photos.attrs.get("photo_names", [])
    src = photos.meta("photo")[pick]
    with plotting.style():
        fig, axes = plt.subplots(3, n, figsize=(1.5 * n, 5.0))
        for j in range(n):
            present = [shapes.class_names[k] for k in np.flatnonzero(labels[j])]
            # Wrapped: the paper config's scenes hold up to three classes, whose names overran the neighbours.
            plotting.image_axis(axes[0, j], "\n".join(textwrap.wrap(", ".join(present), 18)))
            axes[0, j].imshow(imgs[j])
            seg = np.zeros(masks.shape[2:], dtype=int)
            for k in range(masks.shape[1]):
                seg[masks[j, k]] = k + 1
            axes[1, j].imshow(seg, cmap=plt.matplotlib.colors.ListedColormap(["#FFFFFF", *plotting.PALETTE]),
                              vmin=0, vmax=len(plotting.PALETTE), interpolation="nearest")
            plotting.image_axis(axes[1, j], "ground truth" if j == 0 else None)
            axes[2, j].imshow(crops[j])
            plotting.image_axis(axes[2, j], names[src[j]] if len(names) else None)
        axes[0, 0].set_ylabel("shapes")
        axes[2, 0].set_ylabel("photos")
        fig.suptitle(f"Embedded datasets: shapes ({len(shapes)} train images, classes "
                     f"{', '.join(shapes.class_names)}) and photo crops ({len(photos)})", fontsize=10)
        plotting.save(fig, *out)


def fig_backbone_check(table: str | pd.DataFrame, out: Sequence[str]) -> None:
    """Top-1 probability and label per photo: ImageNet weights vs the random baseline."""
    import matplotlib.pyplot as plt

    df = pd.read_csv(table) if isinstance(table, str) else table
    top1 = df[df["rank"] == 1]
    nets = list(dict.fromkeys(top1["backbone"]))
    photos = list(dict.fromkeys(top1["photo"]))
    weights = list(dict.fromkeys(top1["weights"]))
    with plotting.style():
        fig, axes = plt.subplots(1, len(nets), figsize=(4.2 * len(nets), 3.6), sharey=True, squeeze=False)
        for ax, net in zip(axes[0], nets):
            sub = top1[top1["backbone"] == net]
            width = 0.8 / len(weights)
            for w_i, w in enumerate(weights):
                vals = [float(sub[(sub["weights"] == w) & (sub["photo"] == p)]["probability"].iloc[0]) for p in photos]
                bars = ax.bar(np.arange(len(photos)) + (w_i - (len(weights) - 1) / 2) * width, vals, width,
                              label=f"{w} weights", color=plotting.PALETTE[w_i])
                if w == "imagenet":
                    labels = [sub[(sub["weights"] == w) & (sub["photo"] == p)]["label"].iloc[0] for p in photos]
                    for bar, lab in zip(bars, labels):
                        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() * 1.15, lab, rotation=90,
                                ha="center", va="bottom", fontsize=7)
            ax.set_xticks(np.arange(len(photos)), photos, rotation=45, ha="right")
            ax.set_yscale("log")
            ax.set_ylim(3e-4, 30)
            ax.axhline(1e-3, color="0.3", ls="--", lw=1, label="chance (1/1000)")
            ax.set_yticks([1e-3, 1e-2, 1e-1, 1], ["0.001", "0.01", "0.1", "1"])
            ax.set_title(net)
            ax.set_xlabel("shipped photo")
        axes[0, 0].set_ylabel("top-1 probability")
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.1))
        fig.suptitle("Offline backbones are ImageNet-pretrained: top-1 label and probability on real photos")
        plotting.save(fig, *out)


def fig_feature_caches(stats: Sequence[str], out: Sequence[str]) -> None:
    """Feature-caching throughput (images/s) per cache file, from the stats each caching job wrote."""
    import json

    import matplotlib.pyplot as plt

    rows = [json.load(open(p)) for p in stats]
    with plotting.style():
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows)), 3.2))
        labels = [f"{r['dataset']}/{r['name']}" for r in rows]
        ax.bar(labels, [r["images_per_second"] for r in rows], color=plotting.PALETTE[0])
        ax.set_ylabel("images / second")
        ax.set_xlabel("feature cache (dataset/backbone)")
        ax.set_title(f"Feature caching throughput ({rows[0]['device'] if rows else ''})")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        plotting.save(fig, *out)


@renderer("fig_datasets")
def _render_datasets(inputs, out):
    fig_datasets(inputs["shapes"], inputs["photos"], out)


@renderer("fig_backbone_check")
def _render_backbone_check(inputs, out):
    fig_backbone_check(inputs["table"], out)


@renderer("fig_feature_caches")
def _render_feature_caches(inputs, out):
    fig_feature_caches(list(inputs["stats"]), out)
