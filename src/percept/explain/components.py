"""Which parts of RISE matter: the share of a metric's variance across RISE settings that each component
explains (the RISE-components paper's question, arXiv 2409.04116). Pandas only, so the figures can use it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

COMPONENTS = ("sampler", "segmenter", "perturbation", "smoothing", "attribution", "calculator")


def component_variance_shares(summary: pd.DataFrame, metric: str = "srg", components: Sequence[str] = COMPONENTS,
                              higher_is_better: bool = True) -> pd.DataFrame:
    """The share of the metric's variance across RISE settings that each component explains (the
    components paper's question: which parts of RISE matter).

    For each component c, the settings that differ from the base in c alone (every other component at the
    base: the ``one_at_a_time`` design, and a slice of the ``full`` one) give one mean per choice of c; the
    variance of those means (population variance, 0 for a component with a single choice) is c's main effect,
    and its share is that over the sum for all components. Returns one row per component: ``choices``,
    ``variance``, ``share``, ``range`` (best − worst choice) and ``best`` (the best choice for the metric)."""
    rise = summary[summary.method == "rise"].fillna({c: "" for c in components})
    base_rows = rise[rise["base"].astype(bool)]
    if base_rows.empty:
        raise ValueError("the summary has no base RISE setting")
    base = base_rows.iloc[0]
    higher = higher_is_better
    rows = []
    for c in components:
        others = [o for o in components if o != c]
        sel = rise[np.logical_and.reduce([rise[o] == base[o] for o in others])]
        means = sel.groupby(c)[metric].mean().dropna()
        best = (means.idxmax() if higher else means.idxmin()) if len(means) else ""
        rows.append({"component": c, "choices": len(means), "variance": float(means.var(ddof=0)) if len(means) else 0.0,
                     "range": float(means.max() - means.min()) if len(means) else 0.0, "best": best})
    out = pd.DataFrame(rows)
    total = out["variance"].sum()
    out["share"] = out["variance"] / total if total > 0 else 0.0
    return out
