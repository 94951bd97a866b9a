"""Relevant-channel interpretation (Oramas, Wang & Tuytelaars, "Visual Explanation by Interpretation", ICLR 2019).

Every image is described by the spatially max-pooled response of every channel of the chosen taps (read from
the HDF5 feature cache, never recomputed). Per class, an L1-regularised linear model (the paper's μ-lasso,
here scikit-learn's ``Lasso`` on standardised responses, labels in {0, 1}) predicts the class; the channels with
positive weight, strongest first, are the class's *relevant channels* (at most ``top_k``).

- Interpretation: for each relevant channel, the ``top_images`` training images with the highest response,
  cropped around the location of the maximum (a window of ``crop`` × the tap's stride) and averaged.
- Explanation: the heatmap of an image for a class is Σ_j w_j · A_j / max_train(A_j) over its relevant
  channels j, each map upsampled bilinearly to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from percept.data.store import ImageDataset
from percept.features import FeatureCache


@dataclass
class RelevantChannels:
    table: pd.DataFrame  # class, class_name, rank, tap, channel, weight, scale
    crops: np.ndarray  # (K, show, crop, crop, 3) average top-activating crops (NaN where a class has fewer)


def pooled_responses(cache: FeatureCache, taps: Sequence[str], positions: np.ndarray) -> tuple[np.ndarray, list]:
    """Max-pooled channel responses ``(N, Σ channels)`` and the (tap, channel) of each column."""
    cols, index = [], []
    for tap in taps:
        feats = cache.load(tap, positions)
        cols.append(feats.amax(dim=(2, 3)).numpy())
        index += [(tap, c) for c in range(feats.shape[1])]
    return np.concatenate(cols, axis=1), index


def select_channels(dataset_path: str, cache_path: str, taps: Sequence[str], *, alpha: float = 0.01,
                    top_k: int = 8, top_images: int = 16, show: int = 4, crop: float = 2.0,
                    seed: int = 0) -> RelevantChannels:
    """Fit the per-class sparse models on the train split and build the top-activating crops."""
    from sklearn.linear_model import Lasso

    from percept.explain.classifier import train_split

    full = ImageDataset(dataset_path)
    train = ImageDataset(dataset_path, split=train_split(dataset_path))
    cache = FeatureCache(cache_path, expect={"dataset_fingerprint": full.fingerprint})
    unknown = [t for t in taps if t not in cache.taps]
    if unknown:
        raise ValueError(f"{cache_path}: taps {unknown} are not cached (cached: {cache.taps})")
    pos = {int(r): i for i, r in enumerate(cache.rows)}
    positions = np.array([pos[int(r)] for r in train.rows])
    x, index = pooled_responses(cache, taps, positions)
    scale = x.max(0) + 1e-8
    xs = (x - x.mean(0)) / (x.std(0) + 1e-8)
    y = train.labels().numpy()
    rows = []
    for k, name in enumerate(full.class_names):
        model = Lasso(alpha=alpha, max_iter=5000, random_state=seed).fit(xs, y[:, k])
        w = model.coef_
        order = [j for j in np.argsort(-w) if w[j] > 0][:top_k]
        for rank, j in enumerate(order):
            tap, ch = index[j]
            rows.append({"class": k, "class_name": name, "rank": rank, "tap": tap, "channel": ch,
                         "weight": float(w[j]), "scale": float(scale[j]), "column": j,
                         "nonzero": int((w != 0).sum()), "total_channels": len(w)})
    table = pd.DataFrame(rows)
    h = full.image_shape[0]
    side = None
    crops = None
    for k in range(full.num_classes):
        sel = table[table["class"] == k].head(show) if len(table) else table
        for r, row in enumerate(sel.itertuples()):
            resp = x[:, row.column]
            best = np.argsort(-resp, kind="stable")[:top_images]
            fmap = cache.load(row.tap, positions[best])[:, row.channel]  # (n, h', w')
            stride = h / fmap.shape[-1]
            side = side or max(8, round(min(h, crop * stride)))
            if crops is None:
                crops = np.full((full.num_classes, show, side, side, 3), np.nan, np.float32)
            imgs = train.batch(np.sort(best))[np.argsort(np.argsort(best))]  # back to response order
            acc = []
            for img, m in zip(imgs, fmap):
                iy, ix = divmod(int(torch.argmax(m)), m.shape[-1])
                cy, cx = (iy + 0.5) * stride, (ix + 0.5) * stride
                y0 = int(np.clip(round(cy - side / 2), 0, h - side))
                x0 = int(np.clip(round(cx - side / 2), 0, h - side))
                acc.append(img[:, y0:y0 + side, x0:x0 + side].permute(1, 2, 0).numpy())
            crops[k, r] = np.mean(acc, axis=0)
    if crops is None:
        crops = np.full((full.num_classes, show, 8, 8, 3), np.nan, np.float32)
    return RelevantChannels(table, crops)


class ChannelHeatmaps:
    """``attribute(position, targets)`` → heatmaps of one cached image from its relevant channels."""

    def __init__(self, cache: FeatureCache, table: pd.DataFrame, image_size: tuple[int, int]):
        self.cache = cache
        self.table = table
        self.size = image_size
        self.pos = {int(r): i for i, r in enumerate(cache.rows)}

    def attribute(self, row: int, targets: Sequence[int]) -> torch.Tensor:
        feats = {tap: self.cache.load(tap, [self.pos[int(row)]])[0] for tap in self.table["tap"].unique()} \
            if len(self.table) else {}
        maps = []
        for t in targets:
            sel = self.table[self.table["class"] == t]
            heat = torch.zeros(1, 1, *self.size)
            for r in sel.itertuples():
                a = feats[r.tap][r.channel][None, None] / r.scale
                heat += r.weight * F.interpolate(a, size=self.size, mode="bilinear", align_corners=False)
            maps.append(heat[0, 0])
        return torch.stack(maps)
