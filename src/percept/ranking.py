"""The one average precision of a ranking by scores: the explained classifier's mAP (explanation stage) and the
multi-label predictors' ``mean_ap`` (autoencoder and loss-network stages) both call :func:`average_precision`.

Non-interpolated AP, ``Σ_n (R_n − R_{n−1}) P_n`` over the distinct score thresholds, as scikit-learn's
``average_precision_score`` (whose arithmetic it follows, so its numbers are reproduced to the last bit): tied
scores form one threshold. Without ties it is the mean precision at the rank of each positive (the explanation
stage's former definition; with ties that one depended on the input order). The BAPPS JND score of the
similarity stage is another quantity on purpose: the interpolated (precision-envelope) AP of soft judgements
that the LPIPS reference computes, :func:`percept.similarity.scoring.jnd_average_precision`.
Torch-free: scores may be numpy arrays, lists or CPU tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def average_precision(scores: Any, positive: Any) -> float:
    """AP of ranking ``positive`` (booleans, or labels counted positive above 0.5) by descending ``scores``;
    NaN when there is no positive."""
    s = np.asarray(scores, np.float64).reshape(-1)
    y = (np.asarray(positive) > 0.5).reshape(-1)
    if len(s) != len(y):
        raise ValueError(f"average_precision: {len(s)} scores for {len(y)} labels")
    if not y.any():
        return float("nan")
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last row of each run of tied scores
    tps = np.cumsum(y, dtype=np.float64)[last]
    precision = tps / (1 + last)
    recall = tps / tps[-1]
    precision, recall = np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]
    return float(-np.sum(np.diff(recall) * precision[:-1]))
