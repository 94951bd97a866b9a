"""End-to-end: the explanation stage of the tiny config — classifier, maps, tables and figures hold real content."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY, assert_figure

from percept.data.store import ImageDataset
from percept.explain.classifier import load_classifier
from percept.explain.evaluate import read_maps

pytestmark = pytest.mark.e2e

CLF = "results/explain/shapes_lite0"


def test_explanation_figures_are_built(tiny_run):
    workdir, _, _ = tiny_run
    for name in ("fig_saliency_examples", "fig_rise_components", "fig_explainer_comparison"):
        assert_figure(workdir, name)


def test_classifier_is_a_reusable_module_with_held_out_metrics(tiny_run):
    workdir, _, _ = tiny_run
    metrics = json.loads((workdir / CLF / "classifier.json").read_text())
    assert metrics["test_images"] == yaml.safe_load(TINY.read_text())["datasets"]["shapes"]["n_test"]
    assert 0.6 < metrics["mAP"] <= 1.0 and 0.5 < metrics["label_accuracy"] <= 1.0
    model = load_classifier(workdir / CLF / "classifier.pt")
    ds = ImageDataset(workdir / "data/datasets/shapes.h5", split="test")
    with torch.inference_mode():
        logits = model(ds.batch(slice(0, 4)))
    assert logits.shape == (4, ds.num_classes) and model.class_names == ds.class_names
    assert not any(p.requires_grad for p in model.parameters())


def test_maps_and_tidy_tables(tiny_run):
    workdir, _, _ = tiny_run
    cfg = yaml.safe_load(TINY.read_text())["explain"]
    rows, maps, _ = read_maps(workdir / CLF / "maps_rise.h5")
    assert len(rows) == cfg["n_images"]
    # base + one alternative per component (sampler, segmenter, perturbation, smoothing, attribution), times
    # the calculators
    assert len(maps) == 6 * len(cfg["rise"]["calculators"])
    for key, arr in maps.items():
        assert arr.shape[0] == cfg["n_images"] and np.isfinite(arr).all() and arr.std() > 0, key
    scores = pd.read_csv(workdir / CLF / "scores.csv")
    assert {"rise", "gradcam", "explainer", "channels"} <= set(scores["method"])
    assert scores[["image", "class", "setting"]].duplicated().sum() == 0
    # ground-truth metrics on every present class; deletion/insertion/SRG on the top-1 class only (the default
    # evaluation.target: top1, RISE's), one row per image and setting
    present, causal = scores["present"].astype(bool), scores["causal"].astype(bool)
    assert (causal == scores["top1"].astype(bool)).all()
    assert (scores[causal].groupby("setting")["image"].agg(["size", "nunique"]) == cfg["n_images"]).all().all()
    for col in ("iou", "pointing", "mae", "kept_probability", "saliency"):
        assert scores[col].notna().eq(present).all(), col
    for col in ("deletion", "insertion", "lif", "mif", "srg"):
        assert scores[col].notna().eq(causal).all(), col
    for col in ("iou", "pointing", "mae", "deletion", "insertion", "kept_probability"):
        assert scores[col].dropna().between(0, 1).all(), col
    assert np.isfinite(scores["saliency"].dropna()).all()
    sc = scores[causal]
    assert sc[["lif", "mif", "srg"]].abs().le(1).all().all()  # SRG = AUC(LIF) − AUC(MIF) of probabilities
    # the table keeps 6 significant digits of each column, so a small SRG differs from LIF − MIF in its last one
    assert np.allclose(sc["srg"], sc["lif"] - sc["mif"], rtol=0, atol=2e-6)
    summary = pd.read_csv(workdir / CLF / "summary.csv")
    assert len(summary) == scores["setting"].nunique() and (summary["n"] > 0).all()
    channels = pd.read_csv(workdir / CLF / "channels.csv")
    assert len(channels) > 0 and (channels["weight"] > 0).all()


def test_explainer_checkpoint_resumes_and_refuses_other_settings(tiny_run, tmp_path):
    workdir, _, _ = tiny_run
    ck = torch.load(workdir / CLF / "explainer.pt", map_location="cpu", weights_only=True)
    assert ck["epoch"] == yaml.safe_load(TINY.read_text())["explain"]["explainer"]["epochs"] - 1
    assert (workdir / CLF / "explainer.resume.pt").exists()
    log = (workdir / "logs/train_explainer/shapes_lite0.log").read_text()
    assert "explainer epoch 0" in log


def test_paper_config_plans_offline(paper_plan):
    text, _ = paper_plan  # the whole DAG's plan holds fig_explainer_comparison's jobs
    assert "train_classifier" in text and "voc_resnet50" in text and "voc_vgg16" in text
