"""End-to-end: the perceptual-loss stage on the tiny config (tables with real, sane content; figures)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from percept.data.store import ImageDataset
from percept.features import FeatureCache
from percept.h5io import open_h5

from conftest import TINY, assert_figure

pytestmark = pytest.mark.e2e


def test_autoencoder_figures_exist(tiny_run):
    workdir, _, _ = tiny_run
    for name in ("fig_perceptual_autoencoders", "fig_feature_prediction_speed", "fig_loss_networks"):
        assert_figure(workdir, name)


def test_autoencoder_tables(tiny_run):
    workdir, _, _ = tiny_run
    cfg = yaml.safe_load(TINY.read_text())["autoencoders"]
    res = workdir / "results" / "autoencoders"
    runs = pd.read_csv(res / "predictors.csv")
    n_pred, n_seeds = len(cfg["predictors"]["hidden"]), cfg["predictors"]["seeds"]
    # losses x metrics (multi-label shapes: accuracy, exact_match, mean_ap; position_error) x predictors x seeds
    assert len(runs) == 3 * 4 * n_pred * n_seeds
    assert set(runs["loss"]) == {"pixel", "perceptual", "feature_prediction"}
    acc = runs[runs["metric"] == "accuracy"]["value"]
    err = runs[runs["metric"] == "position_error"]["value"]
    assert acc.between(0, 1).all() and (err > 0).all() and (err < 1.5).all()
    # the chance level (constant predictor): per-label majority accuracy >= 0.5; one value per metric
    chance = runs.groupby("metric")["chance"]
    assert (chance.nunique() == 1).all() and runs.loc[runs.metric == "accuracy", "chance"].ge(0.5).all()
    summary = pd.read_csv(res / "summary.csv")
    assert {"mean", "std", "seeds", "chance"} <= set(summary.columns) and set(summary["metric"]) == set(runs["metric"])
    assert (runs["test_size"] == 16).all()
    speed = pd.read_json(res / "speed.json").set_index("loss")
    assert (speed["seconds_per_epoch"] > 0).all() and (speed["epochs"] == cfg["epochs"]).all()
    assert speed.loc["feature_prediction", "relative_to_feature_prediction"] == pytest.approx(1.0)
    # (which loss is faster per epoch is measured by bench/bench_autoencoder_losses.py, not asserted here: on
    # the tiny config process start-up and machine load dominate the timings)
    # the paper's setting trained (targets online: the loss network on every batch); this project's variant timed
    # beside it on a copy (targets precomputed once)
    assert speed.loc["feature_prediction", "targets"] == "online"
    assert speed.loc["feature_prediction", "precomputed_epoch_seconds"] > 0
    assert speed.loc["feature_prediction", "precompute_seconds"] > 0
    epochs = pd.read_json(res / "shapes" / "pixel-z8" / "epochs.json")
    assert list(epochs["epoch"]) == [1, 2] and np.isfinite(epochs["train_loss"]).all()


def test_embeddings_and_checkpoints(tiny_run):
    workdir, _, _ = tiny_run
    with open_h5(workdir / "data/embeddings/shapes/feature_prediction-z8.h5", "embeddings") as f:
        emb = f["embeddings"][...]
        assert emb.shape == (56, 8) and np.isfinite(emb).all() and emb.std() > 0
        assert f["examples/predicted_features"].shape == f["examples/target_features"].shape
        target = f["examples/target_features"][...]
    # the feature-prediction targets are the loss network's sigmoid features of the unnormalised images
    from percept.autoencoders.losses import LossNetwork

    test = ImageDataset(workdir / "data/datasets/shapes.h5", split="test")
    net = LossNetwork("efficientnet_lite0", "_blocks.0", "imagenet", input="unit", sigmoid=True)
    with torch.inference_mode():
        want = net(test.batch(slice(0, len(target)))).mean(1).numpy()
    np.testing.assert_allclose(want, target, rtol=1e-5, atol=1e-6)
    assert target.shape[1:] == (32, 32)  # Lite0 _blocks.0 at 64x64: stride 2
    with open_h5(workdir / "data/embeddings/shapes/pixel-z8.h5", "embeddings") as f:
        rec = f["examples/reconstructions"][...]
        assert rec.shape[1:] == (3, 64, 64) and 0 <= rec.min() and rec.max() <= 1
    state = torch.load(workdir / "results/autoencoders/shapes/perceptual-z8/model.pt", weights_only=True)
    assert state["meta"]["loss"] == "perceptual" and "_blocks.0" in state["meta"]["loss_network"]
    assert not list((workdir / "results/autoencoders").rglob("*.partial"))  # resumable checkpoints removed when done


def test_loss_network_grid_tables(tiny_run):
    workdir, _, _ = tiny_run
    res = workdir / "results" / "loss_networks"
    scores = pd.read_csv(res / "scores.csv")
    assert set(scores["task"]) == {"dimensionality_reduction", "super_resolution", "segmentation",
                                   "perceptual_similarity"}
    assert set(scores["tap"]) == {"_stem_act", "_blocks.0"} and (scores["imagenet_acc1"] == 75.1).all()
    for task, metrics in {"dimensionality_reduction": {"accuracy", "position_error"},
                          "super_resolution": {"psnr", "ssim"},
                          "segmentation": {"iou", "completeness", "correctness"},
                          "perceptual_similarity": {"two_afc", "ordering_accuracy"}}.items():
        sub = scores[scores["task"] == task]
        assert set(sub["metric"]) == metrics and len(sub) == 2 * len(metrics)  # two taps
    v = scores.set_index("metric")["value"]
    assert v["psnr"].between(10, 40).all() and v["ssim"].between(0, 1).all() and v["iou"].between(0, 1).all()
    assert scores["psnr_bilinear"].dropna().between(10, 40).all()
    # perceptual similarity: the similarity stage's synthetic 2AFC val set, max_triplets of it, scores in [0, 1]
    sim = scores[scores["task"] == "perceptual_similarity"]
    cfg = yaml.safe_load(TINY.read_text())["loss_networks"]["tasks"]["perceptual_similarity"]
    assert set(sim["dataset"]) == {"synthetic_2afc_val"} and (sim["triplets"] == cfg["max_triplets"]).all()
    assert sim["value"].between(0, 1).all() and sim["value"].nunique() > 1
    ranks = pd.read_csv(res / "ranks.csv")
    taps = ranks[ranks["factor"] == "tap"]
    assert set(taps.groupby(["task", "metric"])["rank"].min()) == {1} and taps["levels"].eq(2).all()
    corr = pd.read_csv(res / "imagenet_correlation.csv")
    assert (corr["networks"] == 1).all() and corr["spearman"].isna().all()  # one network: no correlation
