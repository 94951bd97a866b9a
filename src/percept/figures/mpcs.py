"""fig_mpcs: label efficiency of MPCS pretraining (Chhipa et al. 2023, figs. 4-5 and tables 2-3)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from percept import plotting
from percept.figures.registry import renderer
from percept.mpcs import ENCODER_LABELS

PROTOCOL_LABELS = {"linear": "linear probe", "full": "full fine-tune"}
METRIC_LABELS = {"ila": "image-level accuracy", "pla": "patient-level accuracy"}


def fig_mpcs(accuracy: str | pd.DataFrame, pretrain: str | pd.DataFrame, out: Sequence[str]) -> None:
    """Accuracy vs label fraction per encoder (MPCS pair strategies and baselines), as the paper's tables are:
    one row per magnification (40x ... 400x; "pooled" when the run pooled them) and backbone, one column per
    protocol and metric (ILA, PLA; mean ± std over seeds and folds); a last row with the pretraining curves."""
    import matplotlib.pyplot as plt

    acc = pd.read_csv(accuracy) if isinstance(accuracy, str) else accuracy
    pre = pd.read_csv(pretrain) if isinstance(pretrain, str) else pretrain
    if "backbone" not in acc:
        acc = acc.assign(backbone="")
    if "backbone" not in pre:
        pre = pre.assign(backbone="")
    if "magnification" not in acc:
        acc = acc.assign(magnification=0)
    rows = list(dict.fromkeys(zip(acc["backbone"], acc["magnification"])))
    rows.sort(key=lambda r: (list(dict.fromkeys(acc["backbone"])).index(r[0]), r[1]))
    cols = [(p, m) for p in dict.fromkeys(acc["protocol"]) for m in ("ila", "pla")]
    encoders = list(dict.fromkeys(acc["encoder"]))
    colour = {e: plotting.PALETTE[i % len(plotting.PALETTE)] for i, e in enumerate(encoders)}
    style = {e: ("-" if e.startswith("mpcs_") else "--") for e in encoders}
    backbones = list(dict.fromkeys(acc["backbone"]))
    ncol = max(len(cols), 2)
    with plotting.style():
        fig, axes = plt.subplots(len(rows) + 1, ncol, figsize=(3.4 * ncol, 2.9 * (len(rows) + 1)), squeeze=False)
        for r, (backbone, mag) in enumerate(rows):
            for c, (protocol, metric) in enumerate(cols):
                ax = axes[r, c]
                for enc in encoders:
                    sub = acc[(acc["backbone"] == backbone) & (acc["magnification"] == mag)
                              & (acc["protocol"] == protocol) & (acc["encoder"] == enc)].sort_values("fraction")
                    x = 100 * sub["fraction"].to_numpy()
                    y, s = 100 * sub[f"{metric}_mean"].to_numpy(), 100 * sub[f"{metric}_std"].to_numpy()
                    ax.plot(x, y, style[enc], marker="o", ms=3, color=colour[enc], label=ENCODER_LABELS.get(enc, enc))
                    ax.fill_between(x, y - s, y + s, color=colour[enc], alpha=0.12, lw=0)
                prefix = f"{backbone}, " if len(backbones) > 1 else ""
                where = f"{mag}x" if mag else "pooled"
                ax.set_title(f"{prefix}{where}: {PROTOCOL_LABELS.get(protocol, protocol)} {metric.upper()}", fontsize=9)
                ax.set_xticks(sorted(100 * acc["fraction"].unique()))
                if c == 0:
                    ax.set_ylabel("accuracy (%)")
                if r == len(rows) - 1:
                    ax.set_xlabel("labelled training share (%)")
        for c in range(len(cols), ncol):
            for r in range(len(rows)):
                axes[r, c].axis("off")
        ax, ax2 = axes[-1, 0], axes[-1, 1]
        for c in range(2, ncol):
            axes[-1, c].axis("off")
        marks = ("o", "s", "^", "D")
        for i, ((backbone, strategy), sub) in enumerate(pre.groupby(["backbone", "strategy"], sort=False)):
            mean = sub.groupby("epoch")[["loss", "pair_accuracy"]].mean()
            col = colour.get(f"mpcs_{strategy}", plotting.PALETTE[i % len(plotting.PALETTE)])
            mark = marks[backbones.index(backbone) % len(marks)] if backbone in backbones else "o"
            label = f"{strategy} pair" + (f" ({backbone})" if len(backbones) > 1 else "")
            ax.plot(mean.index, mean["loss"], "-", marker=mark, ms=4, color=col, label=label)
            ax2.plot(mean.index, 100 * mean["pair_accuracy"], "-", marker=mark, ms=4, color=col)
        epochs = sorted(pre["epoch"].unique())
        for a in (ax, ax2):
            a.set_xticks(epochs if len(epochs) <= 12 else epochs[:: max(1, len(epochs) // 10)])
            a.set_xlabel("pretraining epoch")
        ax.set_ylabel("NT-Xent loss")
        ax.set_title("MPCS pretraining loss", fontsize=9)
        ax.legend(loc="upper right", fontsize=7)
        ax2.set_ylabel("in-batch pair retrieval (%)")
        ax2.set_title("pretraining: partner is the nearest view", fontsize=9)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), frameon=False,
                   bbox_to_anchor=(0.5, -0.01))
        n_runs = int(acc["runs"].max()) if "runs" in acc else 1
        net = f" — {', '.join(backbones)}" if backbones != [""] else ""
        fig.suptitle(f"MPCS label efficiency per magnification{net} (mean ± std over {n_runs} runs: seeds x folds)",
                     fontsize=11)
        fig.tight_layout(rect=(0, 0.04, 1, 0.98))
        plotting.save(fig, *out)


@renderer("fig_mpcs")
def _render(inputs: Mapping[str, Any], out: Sequence[str]) -> None:
    fig_mpcs(inputs["accuracy"], inputs["pretrain"], out)


__all__ = ["fig_mpcs"]
