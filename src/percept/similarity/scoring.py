"""Scoring perceptual metrics against judgements (Zhang et al. 2018, sec. 2 and 5), and the pixel baselines.

- 2AFC: per triplet ``(d0 < d1)(1 - j) + (d1 < d0) j + ½ [d0 = d1]`` with ``j`` the fraction of people who
  judged ``p1`` closer to the reference; averaged per category. With hard labels (j ∈ {0, 1}) it is the
  fraction of pairs a metric orders correctly — the ordering accuracy of the adaptation experiments.
- JND: average precision of "same" over pairs sorted by ascending distance (the reference's ``voc_ap``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = "torch.Tensor | np.ndarray | Sequence[float]"


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy().reshape(-1)
    return np.asarray(x, dtype=np.float64).reshape(-1)


def two_afc_scores(d0, d1, judge) -> np.ndarray:
    """Per-triplet 2AFC score ``(d0<d1)(1-j) + (d1<d0) j + ½[d0=d1]`` (``j``: fraction preferring p1)."""
    d0, d1, j = _np(d0), _np(d1), _np(judge)
    if not (len(d0) == len(d1) == len(j)):
        raise ValueError(f"d0, d1 and judge must have equal lengths; got {len(d0)}, {len(d1)}, {len(j)}")
    if len(j) and (j.min() < 0 or j.max() > 1):
        raise ValueError("judge must be fractions in [0, 1]")
    return (d0 < d1) * (1 - j) + (d1 < d0) * j + 0.5 * (d0 == d1)


def two_afc(d0, d1, judge) -> float:
    """Mean 2AFC score; with hard labels, the fraction of pairs ordered correctly (ordering accuracy)."""
    s = two_afc_scores(d0, d1, judge)
    if len(s) == 0:
        raise ValueError("no triplets to score")
    return float(s.mean())


def jnd_average_precision(d, same) -> float:
    """Average precision of ``same`` (fraction judging a pair identical) ranked by ascending distance."""
    d, same = _np(d), _np(same)
    if len(d) != len(same) or len(d) == 0:
        raise ValueError(f"need equal, non-zero numbers of distances and judgements; got {len(d)}, {len(same)}")
    order = np.argsort(d, kind="stable")
    s = same[order]
    tp = np.cumsum(s)
    fp = np.cumsum(1 - s)
    total = s.sum()
    if total <= 0:
        raise ValueError("no pair is judged the same: average precision is undefined")
    precision = tp / np.maximum(tp + fp, 1e-12)
    recall = tp / total
    # The precision envelope integrated over recall (PASCAL VOC AP, as the LPIPS reference computes it).
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def category_rows(scores: np.ndarray, category, categories: Sequence[str], **fields) -> list[dict]:
    """Tidy rows: the mean per category, then the weighted (by count) and unweighted means over categories."""
    scores, category = np.asarray(scores, float), _np(category).astype(int)
    rows = []
    for c, name in enumerate(categories):
        sel = category == c
        if sel.any():
            rows.append({**fields, "category": name, "score": float(scores[sel].mean()), "n": int(sel.sum())})
    if rows:
        n = np.array([r["n"] for r in rows])
        vals = np.array([r["score"] for r in rows])
        rows.append({**fields, "category": "mean (weighted)", "score": float((vals * n).sum() / n.sum()),
                     "n": int(n.sum())})
        rows.append({**fields, "category": "mean (unweighted)", "score": float(vals.mean()), "n": int(n.sum())})
    return rows


# ------------------------------------------------------------------------------------------ pixel baselines
# The reference's baselines (richzhang/PerceptualSimilarity lpips/lpips.py ``L2``/``DSSIM``; test_dataset_model.py
# scores both with its default colorspace): L2 = ½ mean((Lab0 - Lab1) / 100)² with skimage's rgb2lab, DSSIM =
# (1 - SSIM) / 2 with skimage's structural_similarity at its defaults (7x7 uniform window, data range 255) over
# the RGB channels. Images in [0, 1] are taken to 8 bits exactly (round(255 x)); the reference's tensor2im
# truncates instead, which moves some values down by one.

def _u8_images(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W, 3) uint8."""
    return (x.detach().cpu().double().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def l2_lab_distance(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """½ mean((Lab0 - Lab1) / 100)² per image (the reference's ``L2``, colorspace Lab)."""
    from skimage.color import rgb2lab

    a, b = _u8_images(x0), _u8_images(x1)
    if len(a) != len(b):
        a, b = np.broadcast_arrays(a, b)
    return torch.tensor([0.5 * np.mean((rgb2lab(p) / 100 - rgb2lab(q) / 100) ** 2) for p, q in zip(a, b)],
                        dtype=torch.float64)


def ssim_skimage_distance(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """DSSIM = (1 - SSIM) / 2 per image with scikit-image's defaults on 8-bit RGB (the reference's ``DSSIM``)."""
    from skimage.metrics import structural_similarity

    a, b = _u8_images(x0), _u8_images(x1)
    if len(a) != len(b):
        a, b = np.broadcast_arrays(a, b)
    return torch.tensor([(1 - structural_similarity(1.0 * p, 1.0 * q, data_range=255.0, channel_axis=-1)) / 2
                         for p, q in zip(a, b)], dtype=torch.float64)


def l2_distance(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Mean squared RGB difference per image (images in [0, 1]); the earlier baseline, ``l2_rgb``."""
    return (x0 - x1).pow(2).flatten(1).mean(1)


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x.pow(2) / (2 * sigma ** 2))
    return (g / g.sum()).float()


def ssim_distance(x0: torch.Tensor, x1: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """DSSIM = (1 - SSIM) / 2 per image: SSIM (Wang et al. 2004) with an 11x11 Gaussian window (σ 1.5) per
    RGB channel over valid positions, averaged over channels and positions; the earlier baseline,
    ``ssim_gaussian``."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    g = _gaussian().to(x0)
    k = (g[:, None] * g[None, :]).expand(x0.shape[1], 1, 11, 11)

    def blur(t):
        return F.conv2d(t, k, groups=x0.shape[1])

    mu0, mu1 = blur(x0), blur(x1)
    s00 = blur(x0 * x0) - mu0 ** 2
    s11 = blur(x1 * x1) - mu1 ** 2
    s01 = blur(x0 * x1) - mu0 * mu1
    ssim = ((2 * mu0 * mu1 + c1) * (2 * s01 + c2)) / ((mu0 ** 2 + mu1 ** 2 + c1) * (s00 + s11 + c2))
    return (1 - ssim.flatten(1).mean(1)) / 2


# l2 / ssim: the reference's definitions; l2_rgb / ssim_gaussian: this project's earlier ones.
PIXEL_METRICS = {"l2": l2_lab_distance, "ssim": ssim_skimage_distance, "l2_rgb": l2_distance,
                 "ssim_gaussian": ssim_distance}
