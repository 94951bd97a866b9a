"""End-to-end: the similarity stage on the tiny config (tables with real, sane content; the three figures)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import assert_figure

pytestmark = pytest.mark.e2e


def test_similarity_figures(tiny_run):
    workdir, _, _ = tiny_run
    for name in ("fig_2afc", "fig_dps_flaws", "fig_dps_adaptation"):
        assert_figure(workdir, name)


def test_two_afc_table(tiny_run):
    workdir, _, _ = tiny_run
    df = pd.read_csv(workdir / "results/similarity/two_afc.csv")
    assert set(df["method"]) == {"l2", "ssim", "lite0", "lite0-lin", "lite0-sort"}
    assert set(df["kind"]) == {"2afc", "jnd"}
    assert df["score"].between(0, 1).all()
    means = df[df["category"] == "mean (unweighted)"]
    assert len(means) == 2 * 5
    cats = df[(df["kind"] == "2afc") & ~df["category"].str.startswith("mean")]
    assert set(cats["category"]) == {"rotate", "translate", "darken", "colour", "blur", "zoom"}
    # the ImageNet DPS metric orders two strengths of one distortion better than chance
    two = means[(means["kind"] == "2afc")].set_index("method")["score"]
    assert two["lite0"] > 0.55
    ckpt = torch.load(workdir / "results/similarity/calibration/lite0-lin.pt", weights_only=True)
    assert all((w >= 0).all() for w in ckpt["weights"].values()) and len(ckpt["weights"]) == 4


def test_flaws_and_adaptation_tables(tiny_run):
    workdir, _, _ = tiny_run
    summary = pd.read_csv(workdir / "results/similarity/flaws_summary.csv")
    assert set(summary["mode"]) == {"spatial", "mean", "sort", "spatial+mean", "spatial+sort"}
    assert set(summary["normalize"]) == {True, False}
    assert set(summary["group"]) == {"translate", "rotate", "flip/invert", "stain", "all"}
    assert set(summary["backbone"]) == {"efficientnet_lite0", "efficientnet_lite0 (random)"}
    assert summary["pass_rate"].between(0, 1).all() and summary["pass_rate"].std() > 0
    ad = pd.read_csv(workdir / "results/similarity/adaptation/efficientnet_lite0.csv")
    # lin on all 4 contexts; tune and scratch (the backbone trained in the loop) on the first (network_contexts: 1)
    assert ad["variant"].value_counts().to_dict() == {"lin": 4, "tune": 1, "scratch": 1}
    assert ad["context"].nunique() == 4 and (ad["train_loss_last"] > 0).all()
    for col in ("baseline", "adapted", "other_contexts_adapted", "two_afc_val_adapted", "jnd_adapted"):
        assert ad[col].between(0, 1).all(), col
    lin = ad[ad["variant"] == "lin"]
    assert lin["adapted"].mean() >= lin["baseline"].mean() - 0.05
    # the retained 2AFC set is scored per category (BAPPS: per subsplit) and the rows name their DPS mode
    assert set(ad["mode"]) == {"spatial"} and any(c.startswith("two_afc_val[") for c in ad.columns)
    assert not (workdir / "results/similarity/adaptation/efficientnet_lite0.ckpt").exists()
