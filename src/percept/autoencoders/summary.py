"""The stage's result tables: every predictor run, their per-loss summary (tidy CSV), and time per epoch per
loss (JSON: wall-clock timings differ from run to run, so they stay out of the tables that a rerun of the same
config must reproduce bit for bit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd


def summarize(predictor_tables: Sequence[str], epoch_tables: Sequence[str]) -> dict[str, pd.DataFrame]:
    """``runs``: every predictor run (tidy); ``summary``: mean and std over seeds per dataset, loss,
    embedding size, task, metric and predictor, with the constant predictor's ``chance`` level; ``speed``: seconds per epoch per loss (the median over epochs after
    the first, which carries one-off warm-up, when there are several) with its ratio to the fastest loss."""
    runs = pd.concat([pd.read_csv(p) for p in predictor_tables], ignore_index=True)
    keys = ["dataset", "loss", "embedding_size", "task", "metric", "predictor"]
    summary = (runs.groupby(keys, sort=False).agg(mean=("value", "mean"), std=("value", "std"),
                                                  seeds=("value", "count"), chance=("chance", "mean"))
               .reset_index())
    epochs = pd.DataFrame([row for p in epoch_tables for row in json.loads(Path(p).read_text())])

    rows = []
    for (dataset, z, loss), g in epochs.groupby(["dataset", "embedding_size", "loss"], sort=False):
        steady = g[g["epoch"] > 1] if len(g) > 1 else g
        rows.append({"dataset": dataset, "embedding_size": z, "loss": loss,
                     "seconds_per_epoch": steady["seconds"].median(), "epochs": len(g),
                     "first_epoch_seconds": g.loc[g["epoch"].idxmin(), "seconds"],
                     "final_train_loss": g.loc[g["epoch"].idxmax(), "train_loss"],
                     "target_load_seconds": g["target_load_seconds"].iloc[0],
                     # the paper's setting is what trained (targets online: the loss network on every batch);
                     # this project's variant, timed on a copy: targets precomputed once, then epochs without it
                     "targets": g["targets"].iloc[0] if "targets" in g else None,
                     "precomputed_epoch_seconds": g["precomputed_epoch_seconds"].iloc[0]
                     if "precomputed_epoch_seconds" in g else float("nan"),
                     "precompute_seconds": g["precompute_seconds"].iloc[0] if "precompute_seconds" in g
                     else float("nan"),
                     "train_images": g["train_images"].iloc[0], "device": g["device"].iloc[0]})
    speed = pd.DataFrame(rows)
    fastest = speed.groupby(["dataset", "embedding_size"])["seconds_per_epoch"].transform("min")
    speed["relative_to_fastest"] = speed["seconds_per_epoch"] / fastest
    fp = speed[speed["loss"] == "feature_prediction"].set_index(["dataset", "embedding_size"])["seconds_per_epoch"]
    speed["relative_to_feature_prediction"] = [
        r.seconds_per_epoch / fp.get((r.dataset, r.embedding_size), float("nan")) for r in speed.itertuples()]
    return {"runs": runs, "summary": summary, "speed": speed}

