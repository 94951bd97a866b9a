"""The one plotting style: readable fonts, labelled axes, a colour-blind-safe palette, PNG + vector PDF.

Fault point (tests only, see :mod:`percept.faults`): ``plotting.before_rename``, a figure in its hidden
temporary file, not yet renamed (the first file :func:`save` writes)."""

from __future__ import annotations

import contextlib
import glob
import os
from pathlib import Path
from typing import Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from percept import faults  # noqa: E402

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

STYLE = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE), "pdf.fonttype": 42, "svg.fonttype": "none",
    "image.cmap": "viridis",
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def save(fig: "plt.Figure", *paths: str | os.PathLike) -> None:
    """Save to every path (format from the suffix) through a temporary name, then close the figure."""
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
        try:
            fig.savefig(tmp)
            faults.pause("plotting.before_rename")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.stem)}.*.tmp{path.suffix}"):  # from killed renders
            stale.unlink(missing_ok=True)
    plt.close(fig)


def image_axis(ax: "plt.Axes", title: str | None = None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
