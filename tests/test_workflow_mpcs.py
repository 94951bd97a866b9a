"""End-to-end: the MPCS stage of the tiny config — pretraining histories, the fine-tuning table on
patient-disjoint test images, the summary behind fig_mpcs, and the paper config's MPCS plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from percept.data.store import ImageDataset

from conftest import TINY, assert_figure

pytestmark = pytest.mark.e2e


def test_mpcs_figure_and_logs(tiny_run):
    workdir, _, _ = tiny_run
    assert_figure(workdir, "fig_mpcs")
    for rule in ("make_magnification", "pretrain_mpcs", "finetune_mpcs", "summarize_mpcs", "render_fig_mpcs"):
        logs = list((workdir / "logs" / rule).rglob("*.log"))
        assert logs and any(f"rule {rule}" in p.read_text() for p in logs), rule


def test_mpcs_tables_hold_every_run_with_sane_accuracies(tiny_run):
    workdir, _, _ = tiny_run
    cfg = yaml.safe_load(TINY.read_text())["mpcs"]
    root = workdir / "results" / "mpcs" / "magnification"
    runs = pd.read_csv(root / "runs.csv")
    encoders = [f"mpcs_{s}" for s in cfg["pretrain"]["strategies"]] + ["baseline_imagenet", "baseline_random"]
    assert set(runs["encoder"]) == set(encoders) and set(runs["protocol"]) == {"linear", "full"}
    # fine-tuned and scored per magnification, as the paper's tables are
    assert sorted(set(runs["magnification"])) == [40, 100, 200, 400]
    assert len(runs) == len(encoders) * 2 * 4 * len(cfg["finetune"]["fractions"]) * cfg["finetune"]["seeds"]
    assert runs["ila"].between(0, 1).all() and runs["pla"].between(0, 1).all()
    assert (runs["n_test_patients"] >= 4).all()  # one test patient per subtype
    assert (runs.groupby(["encoder", "protocol", "magnification"])["n_labels"]
            .apply(lambda s: s.is_monotonic_increasing)).all()
    # the test images are the dataset's patient-disjoint test split
    test = ImageDataset(workdir / "data/datasets/magnification.h5", split="test")
    train = ImageDataset(workdir / "data/datasets/magnification.h5", split="train")
    for m, n in runs.groupby("magnification")["n_test"]:
        assert (n == int((test.meta("magnification") == m).sum())).all()
    assert not set(test.meta("patient").tolist()) & set(train.meta("patient").tolist())
    # patients hold different numbers of images, so the two accuracies are not the same number
    assert (runs["ila"] != runs["pla"]).any()
    summary = pd.read_csv(root / "accuracy.csv")
    assert len(summary) == len(encoders) * 2 * 4 * len(cfg["finetune"]["fractions"])
    pick = lambda t: t[(t.encoder == "baseline_imagenet") & (t.protocol == "linear") & (t.fraction == 1.0)  # noqa: E731
                       & (t.magnification == 200)]
    row, sel = pick(summary), pick(runs)
    assert row["ila_mean"].item() == pytest.approx(sel["ila"].mean())
    # the runs differ (a pipeline that ignored its encoder or labels would score every run alike); how well
    # they do is not asserted: 32 px images and ~30 labels are too few for a stable accuracy
    assert runs["ila"].nunique() > 2

    pretrain = pd.read_csv(root / "pretrain.csv")
    assert set(pretrain["strategy"]) == set(cfg["pretrain"]["strategies"])
    assert np.isfinite(pretrain["loss"]).all() and (pretrain["loss"] > 0).all()
    # the loss of 2N views can't exceed much over log(2N - 1) at the start, nor go below 0
    assert (pretrain["loss"] < np.log(2 * cfg["pretrain"]["batch_size"] - 1) * 3).all()


def test_mpcs_models_load_weights_only_and_checkpoints_are_cleaned_up(tiny_run):
    workdir, _, _ = tiny_run
    for strategy in yaml.safe_load(TINY.read_text())["mpcs"]["pretrain"]["strategies"]:
        state = torch.load(workdir / f"data/models/mpcs/magnification/efficientnet_lite0/fold0/{strategy}.pt",
                           weights_only=True)
        assert state["meta"]["strategy"] == strategy and state["meta"]["backbone"] == "efficientnet_lite0"
        assert any(k.endswith("_conv_stem.weight") for k in state["encoder"])
    assert not list((workdir / "data").rglob("*.ckpt"))  # a finished job leaves no resume checkpoint


def test_paper_config_plans_mpcs_on_breakhis(paper_plan):
    text, _ = paper_plan  # the whole DAG's plan: every MPCS job is fig_mpcs's
    stats = text.split("Job stats")[1].split("total")[0]
    counts = {line.split()[0]: int(line.split()[1]) for line in stats.splitlines() if line.strip()[:1].isalpha()
              and line.split()[-1].isdigit()}
    assert counts["pretrain_mpcs"] == 2 * 5 * 3  # ResNet-50 and EfficientNet-B2, 5 folds, 3 pair strategies
    assert counts["finetune_mpcs"] == 2 * 5 * 5  # ... and 5 encoders (3 MPCS + 2 baselines)
    assert "download_breakhis" in text and "data/models/mpcs/breakhis/resnet50/fold4/fixed.pt" in text
