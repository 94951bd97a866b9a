"""The loss-network paper's analysis of the grid: per task, the rank of each network and of each
extraction point, and the correlation of the downstream score with the network's ImageNet top-1
accuracy (from the registry)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

GROUP = ["task", "dataset", "metric"]


def collect(cell_tables: Sequence[str]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in cell_tables], ignore_index=True)


def ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Per task, dataset and metric: networks ranked by their mean score over taps, and extraction points
    (by index 0–3 in the paper's order) ranked by their mean score over networks; rank 1 is best."""
    out = []
    for key, g in scores.groupby(GROUP, sort=False):
        higher = bool(g["higher_is_better"].iloc[0])
        for factor, column in (("network", "network"), ("tap", "tap_index")):
            means = g.groupby(column)["value"].mean()
            r = means.rank(ascending=not higher, method="min")
            for level, value in means.items():
                out.append({**dict(zip(GROUP, key)), "factor": factor, "level": str(level), "mean_value": value,
                            "rank": int(r[level]), "levels": len(means)})
    return pd.DataFrame(out)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(pd.Series(x).rank().corr(pd.Series(y).rank())) if len(x) > 2 else float("nan")


def correlations(scores: pd.DataFrame) -> pd.DataFrame:
    """Pearson and Spearman correlation between ImageNet acc@1 and the downstream score of the
    ImageNet-weighted networks, using each network's best tap and its mean over taps (NaN with < 3 networks, or
    when the score is the same for every network: a correlation with a constant is undefined)."""
    out = []
    pre = scores[scores["weights"] == "imagenet"].dropna(subset=["imagenet_acc1"])
    for key, g in pre.groupby(GROUP, sort=False):
        higher = bool(g["higher_is_better"].iloc[0])
        per_net = g.groupby("network").agg(acc=("imagenet_acc1", "first"),
                                           best=("value", "max" if higher else "min"), mean=("value", "mean"))
        for aggregate in ("best", "mean"):
            x, y = per_net["acc"].to_numpy(float), per_net[aggregate].to_numpy(float)
            pearson = float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and np.std(x) > 0 and np.std(y) > 0 else float("nan")
            out.append({**dict(zip(GROUP, key)), "aggregate": f"{aggregate} tap", "networks": len(x),
                        "pearson": pearson, "spearman": _spearman(x, y)})
    return pd.DataFrame(out, columns=[*GROUP, "aggregate", "networks", "pearson", "spearman"])
