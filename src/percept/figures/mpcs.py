"""fig_mpcs: label efficiency of MPCS pretraining (Chhipa et al. 2023, figs. 4-5 and tables 2-3)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from percept import plotting
from percept.figures import renderer
from percept.mpcs import ENCODER_LABELS

PROTOCOL_LABELS = {"linear": "linear probe", "full": "full fine-tune"}
METRIC_LABELS = {"ila": "image-level accuracy", "pla": "patient-level accuracy"}


def fig_mpcs(accuracy: str | pd.DataFrame, pretrain: str | pd.DataFrame, out: Sequence[str]) -> None:
    """Accuracy vs label fraction per encoder (MPCS pair strategies and baselines), one panel per protocol
    and metric (mean ± std over seeds and folds), beside the pretraining curves of each strategy."""
    import matplotlib.pyplot as plt

    acc = pd.read_csv(accuracy) if isinstance(accuracy, str) else accuracy
    pre = pd.read_csv(pretrain) if isinstance(pretrain, str) else pretrain
    if "backbone" not in acc:
        acc = acc.assign(backbone="")
    if "backbone" not in pre:
        pre = pre.assign(backbone="")
    panels = list(dict.fromkeys(zip(acc["backbone"], acc["protocol"])))  # one row per (backbone, protocol)
    encoders = list(dict.fromkeys(acc["encoder"]))
    colour = {e: plotting.PALETTE[i % len(plotting.PALETTE)] for i, e in enumerate(encoders)}
    style = {e: ("-" if e.startswith("mpcs_") else "--") for e in encoders}
    backbones = list(dict.fromkeys(acc["backbone"]))
    with plotting.style():
        n = len(panels)
        fig, axes = plt.subplots(max(n, 2), 3, figsize=(13.5, 3.6 * max(n, 2)), squeeze=False)
        for r, (backbone, protocol) in enumerate(panels):
            for c, metric in enumerate(("ila", "pla")):
                ax = axes[r, c]
                for enc in encoders:
                    sub = acc[(acc["backbone"] == backbone) & (acc["protocol"] == protocol)
                              & (acc["encoder"] == enc)].sort_values("fraction")
                    x = 100 * sub["fraction"].to_numpy()
                    y, s = 100 * sub[f"{metric}_mean"].to_numpy(), 100 * sub[f"{metric}_std"].to_numpy()
                    ax.plot(x, y, style[enc], marker="o", ms=4, color=colour[enc], label=ENCODER_LABELS.get(enc, enc))
                    ax.fill_between(x, y - s, y + s, color=colour[enc], alpha=0.12, lw=0)
                ax.set_xlabel("labelled training images (%)")
                ax.set_ylabel(f"{METRIC_LABELS[metric]} (%)")
                prefix = f"{backbone}, " if len(backbones) > 1 else ""
                ax.set_title(f"{prefix}{PROTOCOL_LABELS.get(protocol, protocol)}: {metric.upper()}")
                ax.set_xticks(sorted(100 * acc["fraction"].unique()))
        for r in range(n, max(n, 2)):
            axes[r, 0].axis("off")
            axes[r, 1].axis("off")
        ax, ax2 = axes[0, 2], axes[1, 2]
        for r in range(2, n):
            axes[r, 2].axis("off")
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
        ax.set_title("MPCS pretraining loss")
        ax.legend(loc="upper right")
        ax2.set_ylabel("in-batch pair retrieval (%)")
        ax2.set_title("pretraining: partner is the nearest view")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), frameon=False,
                   bbox_to_anchor=(0.5, -0.02))
        n_runs = int(acc["runs"].max()) if "runs" in acc else 1
        net = f" — {', '.join(backbones)}" if backbones != [""] else ""
        fig.suptitle(f"MPCS label efficiency{net} (mean ± std over {n_runs} runs: seeds x folds)", fontsize=11)
        fig.tight_layout(rect=(0, 0.06, 1, 0.97))
        plotting.save(fig, *out)


@renderer("fig_mpcs")
def _render(inputs: Mapping[str, Any], out: Sequence[str]) -> None:
    fig_mpcs(inputs["accuracy"], inputs["pretrain"], out)


__all__ = ["fig_mpcs"]
