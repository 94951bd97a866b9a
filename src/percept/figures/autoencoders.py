"""Figures of the perceptual-loss stage: autoencoder embeddings by loss, the speed of feature prediction,
and the loss-network x extraction-point grid."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from percept import plotting
from percept.figures.registry import renderer
from percept.h5io import get_json_attr, open_h5

LOSS_ORDER = ("pixel", "perceptual", "feature_prediction", "feature_autoencoder", "feature_to_image_perceptual",
              "feature_to_image_pixel")
METRIC_LABEL = {"accuracy": "test accuracy (higher is better)",
                "exact_match": "exact-match accuracy (higher is better)",
                "mean_ap": "mean average precision (higher is better)",
                "position_error": "position error, image sides (lower better)"}
HEADLINE = ("accuracy", "position_error")  # the headline metric per task (predictors.TASK_METRICS)


def _losses(values) -> list[str]:
    present = list(dict.fromkeys(values))
    return [x for x in LOSS_ORDER if x in present] + [x for x in present if x not in LOSS_ORDER]


def fig_perceptual_autoencoders(summary: str, embeddings: Sequence[str], out: Sequence[str]) -> None:
    """Predictor scores per loss (bars: mean over seeds, whiskers: standard error; one group per predictor)
    for each dataset and metric (dashed: the chance level of the constant predictor fitted on train), and a
    strip of test images with each loss's decoder output (the small-object proxy when it was run)."""
    import matplotlib.pyplot as plt

    df = pd.read_csv(summary)
    panels = list(df.groupby(["dataset", "metric"], sort=False).groups)
    examples = []
    for path in embeddings:
        with open_h5(path, "embeddings") as f:
            loss = get_json_attr(f, "loss")
            images = f["examples/images"][...]
            decoded = (f["examples/reconstructions"][...] if "examples/reconstructions" in f
                       else f["examples/predicted_features"][...])
            examples.append((get_json_attr(f, "dataset"), get_json_attr(f, "embedding_size"), loss, images, decoded))
    if examples:  # the strip shows one dataset at one embedding size: a row per loss
        first = next((e[:2] for e in examples if e[0] == "small_objects"), examples[0][:2])
        examples = [e for e in examples if e[:2] == first]
    n_img = min(6, min((len(e[3]) for e in examples), default=0))
    rows_img = 1 + len(examples)
    with plotting.style():
        fig = plt.figure(figsize=(max(9.0, 3.6 * len(panels)), 3.4 + 1.15 * rows_img))
        grid = fig.add_gridspec(2, 1, height_ratios=[3.2, 1.15 * rows_img], hspace=0.35)
        top = grid[0].subgridspec(1, max(1, len(panels)), wspace=0.35)
        for i, (dataset, metric) in enumerate(panels):
            ax = fig.add_subplot(top[0, i])
            sub = df[(df["dataset"] == dataset) & (df["metric"] == metric)]
            preds = list(dict.fromkeys(sub["predictor"]))
            losses = _losses(sub["loss"])
            width = 0.8 / max(1, len(losses))
            for j, loss in enumerate(losses):
                s = sub[sub["loss"] == loss].set_index("predictor").reindex(preds)
                ax.bar(np.arange(len(preds)) + (j - (len(losses) - 1) / 2) * width, s["mean"], width,
                       yerr=(s["std"] / np.sqrt(s["seeds"].clip(lower=1))).fillna(0), capsize=2,
                       label=loss.replace("_", " "),
                       color=plotting.PALETTE[LOSS_ORDER.index(loss) if loss in LOSS_ORDER else j])
            if "chance" in sub and sub["chance"].notna().any():  # the constant predictor fitted on train
                ax.axhline(float(sub["chance"].mean()), color="0.3", ls="--", lw=1,
                           label="chance (constant predictor)")
            ax.set_xticks(np.arange(len(preds)), preds)
            ax.set_xlabel("predictor on the frozen embedding")
            ax.set_ylabel(METRIC_LABEL.get(metric, metric))
            ax.set_title(f"{dataset}: {metric.replace('_', ' ')}")
            if i == 0:
                ax.legend(title="autoencoder loss", fontsize=8)
        bottom = grid[1].subgridspec(rows_img, max(1, n_img), wspace=0.05, hspace=0.15)
        for k in range(n_img):
            ax = fig.add_subplot(bottom[0, k])
            ax.imshow(np.transpose(examples[0][3][k], (1, 2, 0)))
            plotting.image_axis(ax)
            if k == 0:
                ax.set_ylabel("input", fontsize=8)
            for r, (dataset, z, loss, _, decoded) in enumerate(examples, start=1):
                ax = fig.add_subplot(bottom[r, k])
                if decoded.ndim == 4:
                    ax.imshow(np.clip(np.transpose(decoded[k], (1, 2, 0)), 0, 1))
                else:  # feature prediction decodes no image: the channel mean of the predicted features
                    ax.imshow(decoded[k], cmap="magma")
                plotting.image_axis(ax)
                if k == 0:
                    label = f"{loss.replace('_', ' ')}\n(z={z})" + ("\nfeature mean" if decoded.ndim == 3 else "")
                    ax.set_ylabel(label, fontsize=7)
        where = f" ({examples[0][0]}, z={examples[0][1]})" if examples else ""
        fig.suptitle("Perceptual autoencoders: predictors on frozen embeddings (top); test images and what each "
                     f"decoder outputs{where} (bottom)", fontsize=10)
        plotting.save(fig, *out)


def fig_feature_prediction_speed(speed: str, summary: str, out: Sequence[str]) -> None:
    """Seconds per training epoch per loss, and the final predictor quality per loss (best predictor)."""
    import matplotlib.pyplot as plt

    sp = pd.read_json(speed)
    su = pd.read_csv(summary)
    metrics = [m for m in dict.fromkeys(su["metric"]) if m in HEADLINE] or list(dict.fromkeys(su["metric"]))
    with plotting.style():
        fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(4.2 * (1 + len(metrics)), 3.6), squeeze=False)
        ax = axes[0, 0]
        runs = sp.assign(label=[f"{d} z={z}" for d, z in zip(sp["dataset"], sp["embedding_size"])])
        groups = list(dict.fromkeys(runs["label"]))
        losses = _losses(runs["loss"])
        width = 0.8 / max(1, len(losses))
        for j, loss in enumerate(losses):
            s = runs[runs["loss"] == loss].set_index("label").reindex(groups)
            bars = ax.bar(np.arange(len(groups)) + (j - (len(losses) - 1) / 2) * width, s["seconds_per_epoch"],
                          width, label=loss.replace("_", " "), color=plotting.PALETTE[LOSS_ORDER.index(loss)])
            for bar, rel in zip(bars, s["relative_to_feature_prediction"]):
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{rel:.1f}x", ha="center",
                        va="bottom", fontsize=7)
            if loss == "feature_prediction" and "precomputed_epoch_seconds" in s and s["precomputed_epoch_seconds"].notna().any():
                # this project's variant beside the paper's: targets computed once, the loss network idle
                ax.bar(np.arange(len(groups)) + (j - (len(losses) - 1) / 2) * width, s["precomputed_epoch_seconds"],
                       width * 0.45, color="w", edgecolor="k", hatch="//",
                       label="feature prediction, precomputed targets (ours)")
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_ylabel("seconds per epoch (median)")
        ax.set_xlabel("dataset, embedding size")
        ax.set_title(f"time per epoch ({runs['device'].iloc[0]}; loss network on every batch as in the paper;\n"
                     "label: x feature prediction; hatched: targets precomputed)", fontsize=8)
        ax.legend(fontsize=8, loc="upper left")
        for ax, metric in zip(axes[0, 1:], metrics):
            sub = su[su["metric"] == metric]
            higher = metric != "position_error"
            best = sub.loc[(sub.groupby(["dataset", "embedding_size", "loss"])["mean"]
                            .transform("max" if higher else "min") == sub["mean"])]
            best = best.drop_duplicates(["dataset", "embedding_size", "loss"])
            for j, loss in enumerate(losses):
                s = best[best["loss"] == loss]
                t = sp[sp["loss"] == loss].merge(s, on=["dataset", "embedding_size", "loss"])
                ax.scatter(t["seconds_per_epoch"], t["mean"], s=50, label=loss.replace("_", " "),
                           color=plotting.PALETTE[LOSS_ORDER.index(loss)])
            if "chance" in sub and sub["chance"].notna().any():
                ax.axhline(float(sub["chance"].mean()), color="0.3", ls="--", lw=1, label="chance")
            ax.set_xscale("log")
            ax.set_xlabel("seconds per epoch (log)")
            ax.set_ylabel(METRIC_LABEL.get(metric, metric))
            ax.set_title(f"best predictor: {metric.replace('_', ' ')}")
        fig.suptitle("Feature prediction loss: time per epoch and final embedding quality per loss", fontsize=10)
        fig.tight_layout()
        plotting.save(fig, *out)


def fig_loss_networks(scores: str, ranks: str, correlation: str, out: Sequence[str]) -> None:
    """One heatmap per (task, dataset, metric): loss network x extraction point; and the score of each
    network's best tap against its ImageNet top-1 accuracy, with the Spearman correlation."""
    import matplotlib.pyplot as plt

    df = pd.read_csv(scores)
    corr = pd.read_csv(correlation)
    keys = list(df.groupby(["task", "dataset", "metric"], sort=False).groups)
    cols = min(4, len(keys))
    blocks = -(-len(keys) // cols)
    with plotting.style():
        fig, grid_axes = plt.subplots(2 * blocks, cols, figsize=(4.0 * cols, 7.0 * blocks), squeeze=False)
        # panel i: heatmap in axes[0, i], accuracy scatter below it in axes[1, i]
        axes = np.concatenate([grid_axes[2 * b:2 * b + 2] for b in range(blocks)], axis=1)
        for ax in axes[:, len(keys):].flat:
            ax.set_visible(False)
        for i, (task, dataset, metric) in enumerate(keys):
            sub = df[(df["task"] == task) & (df["dataset"] == dataset) & (df["metric"] == metric)]
            higher = bool(sub["higher_is_better"].iloc[0])
            table = sub.pivot_table(index="network", columns="tap_index", values="value", sort=False)
            ax = axes[0, i]
            im = ax.imshow(table.to_numpy(float), cmap="viridis" if higher else "viridis_r", aspect="auto")
            ax.set_xticks(range(table.shape[1]), [f"tap {c}" for c in table.columns])
            ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
            ax.grid(False)
            for (r, c), v in np.ndenumerate(table.to_numpy(float)):
                ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=6, color="w")
            ax.set_title(f"{task.replace('_', ' ')}\n{dataset}: {metric}", fontsize=9)
            ax.set_xlabel("extraction point (paper order)")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax = axes[1, i]
            pre = sub.dropna(subset=["imagenet_acc1"])
            best = pre.groupby("network").agg(acc=("imagenet_acc1", "first"),
                                              value=("value", "max" if higher else "min"))
            ax.scatter(best["acc"], best["value"], color=plotting.PALETTE[0])
            for name, r in best.iterrows():
                ax.annotate(name, (r["acc"], r["value"]), fontsize=6, xytext=(2, 2), textcoords="offset points")
            c = corr[(corr["task"] == task) & (corr["dataset"] == dataset) & (corr["metric"] == metric)
                     & (corr["aggregate"] == "best tap")]
            chance = f"chance_{metric}"
            if chance in sub and sub[chance].notna().any():  # the constant predictor's level (the DR cells)
                level = float(sub[chance].dropna().iloc[0])
                ax.axhline(level, color="0.5", ls="--", lw=1, label=f"chance {level:.3g}")
                ax.legend(fontsize=7, loc="best")
            rho = c["spearman"].iloc[0] if len(c) else float("nan")
            # a correlation with a constant score is undefined (percept.loss_networks.analysis.correlations)
            said = f"{rho:.2f}" if np.isfinite(rho) else "undefined (score constant)"
            ax.set_title(f"Spearman rho = {said} (n={len(best)})", fontsize=9)
            ax.set_xlabel("ImageNet top-1 accuracy (%)")
            ax.set_ylabel(f"{metric} (best tap)")
        fig.suptitle("Which network makes the best loss network: task x network x extraction point (top), "
                     "score vs ImageNet accuracy (bottom)", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the suptitle
        plotting.save(fig, *out)


@renderer("fig_perceptual_autoencoders")
def _render_perceptual_autoencoders(inputs, out):
    fig_perceptual_autoencoders(inputs["summary"], list(inputs["embeddings"]), out)


@renderer("fig_feature_prediction_speed")
def _render_feature_prediction_speed(inputs, out):
    fig_feature_prediction_speed(inputs["speed"], inputs["summary"], out)


@renderer("fig_loss_networks")
def _render_loss_networks(inputs, out):
    fig_loss_networks(inputs["scores"], inputs["ranks"], inputs["correlation"], out)
