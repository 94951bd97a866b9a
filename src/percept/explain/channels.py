"""Relevant-channel interpretation (Oramas, Wang & Tuytelaars, "Visual Explanation by Interpretation", ICLR 2019).

Every training image is described by the spatially max-pooled response of every channel of the chosen taps (read
from the HDF5 feature cache, never recomputed). Per class, an L1-regularised linear model (the paper's μ-lasso,
here scikit-learn's ``Lasso`` on standardised responses, labels in {0, 1}) predicts the class; the channels with
positive weight, strongest first, are the class's *relevant channels* (at most ``top_k``).

- Interpretation: for each relevant channel, the ``top_images`` training images with the highest response,
  cropped around the location of the maximum (a window of ``crop`` × the tap's stride) and averaged.
- Explanation: the heatmap of an image for a class is Σ_j w_j · A_j / max_train(A_j) over its relevant
  channels j, each map upsampled bilinearly to the image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from percept import backbones
from percept.data.store import ImageDataset
from percept.explain.attributor import Targets, target_lists
from percept.features import DTYPES, FeatureCache, TapExtractor, autocast, prepare_input


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


def cache_network(cache: FeatureCache, taps: Sequence[str] | None = None,
                  device: torch.device | str = "cpu") -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """The taps of any images as ``cache`` holds them: the network it was made with (its backbone, weights and
    weights seed), its resize, bfloat16 autocast where it used it, and its storage dtype. ``taps``: a subset of the
    cached ones (the forward pass stops after the last)."""
    meta, dev = cache.meta, torch.device(device)
    taps = list(cache.taps if taps is None else taps)
    unknown = [t for t in taps if t not in cache.taps]
    if unknown:
        raise ValueError(f"{cache.path}: taps {unknown} are not cached (cached: {cache.taps})")
    spec = backbones.get(meta["backbone"])
    weights = "random" if meta["weights"] == "random" else "imagenet"
    model = spec.build(weights, seed=meta["weights_seed"] or 0).to(dev)
    extractor = TapExtractor(model, taps).eval()
    resize, dtype, amp = meta["preprocessing"]["resize"], DTYPES[meta["dtype"]], bool(meta.get("amp"))

    def features(images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), autocast(dev, amp):
            out = extractor(prepare_input(images.to(dev), spec, resize))
        return {t: v.to("cpu", dtype).float() for t, v in out.items()}

    return features


class ChannelHeatmaps:
    """The relevant-channel heatmaps of images: an :class:`~percept.explain.attributor.Attributor`.

    ``features`` maps images ``(N, 3, H, W)`` to their taps ``{tap: (N, C, h, w)}`` (:func:`cache_network`: the
    network of the feature cache the channels were selected on, its features rounded to the cache's dtype).
    The maps are computed from the images, not read from the cache by dataset row: the interface of every method
    takes images, and a row looked up from image content would be a second, fragile identity. The cache still
    serves what it is for, the selection (:func:`select_channels` reads the whole train split from it and computes
    nothing); the heatmaps cost one forward pass of the explained images (a few dozen; RISE takes thousands per
    image), and equal those from the cached features to float rounding (the same network, input and dtype; the
    baseline maps are stored as float16).
    """

    def __init__(self, features: Callable[[torch.Tensor], Mapping[str, torch.Tensor]], table: pd.DataFrame):
        self.features = features
        self.table = table

    def attribute(self, images: torch.Tensor, targets: Targets) -> torch.Tensor:
        rows = target_lists(targets, len(images))
        size = tuple(images.shape[-2:])
        feats = self.features(images) if len(self.table) else {}
        maps = torch.zeros(len(images), len(rows[0]), *size)
        for i, row in enumerate(rows):
            for j, t in enumerate(row):
                heat = torch.zeros(1, 1, *size)  # in the table's order, as one image at a time did
                for r in self.table[self.table["class"] == t].itertuples():
                    a = feats[r.tap][i, r.channel][None, None].cpu() / r.scale
                    heat += r.weight * F.interpolate(a, size=size, mode="bilinear", align_corners=False)
                maps[i, j] = heat[0, 0]
        return maps
