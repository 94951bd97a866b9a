"""End-to-end: the shape-translation stage on the tiny config (tidy tables with real, sane content; the figure)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import TINY, assert_figure

from percept.translation.evaluate import SCORES, read_examples

pytestmark = pytest.mark.e2e

VARIANTS = ["full", "no_gan", "no_cycle", "no_similarity"]  # the schema's default variants (tests/config.yaml)


def test_translation_figure(tiny_run):
    workdir, _, _ = tiny_run
    assert_figure(workdir, "fig_shape_translation")


def test_translation_tables(tiny_run):
    workdir, _, _ = tiny_run
    cfg = yaml.safe_load(TINY.read_text())["translation"]
    res = workdir / "results" / "translation"
    table = pd.read_csv(res / "ablation.csv")
    assert list(table.columns) == ["variant", "score", "mean", "sem", "n"]
    assert set(table["variant"]) == {"identity", *VARIANTS} and set(table["score"]) == set(SCORES)
    assert len(table) == 5 * len(SCORES) and (table["n"] == cfg["domains"]["n_test"]).all()
    t = table.set_index(["variant", "score"])["mean"]
    for v in ["identity", *VARIANTS]:
        assert 0 <= t[v, "target_shape_rate"] <= 1 and 0 <= t[v, "mask_iou"] <= 1
        assert 0 <= t[v, "colour_hist_distance"] <= 1 and t[v, "perceptual_distance"] >= 0
    # the untranslated input: nothing changes outside the object, the object keeps its colours exactly
    assert t["identity", "background_change"] == 0 and t["identity", "perceptual_distance"] < 1e-3
    assert all(t[v, "background_change"] > 0 for v in VARIANTS)  # a decoded image is never the input
    per_image = pd.read_csv(res / "per_image.csv")
    assert len(per_image) == 5 * cfg["domains"]["n_test"] and per_image["judge_test_accuracy"].between(0, 1).all()
    timing = pd.DataFrame(json.loads((res / "timing.json").read_text()))
    assert set(timing["variant"]) == set(VARIANTS) and (timing["seconds"] > 0).all()
    assert (timing.groupby("variant")["epoch"].max() == cfg["train"]["epochs"]).all()


def test_translation_loss_curves_and_switched_off_terms(tiny_run):
    workdir, _, _ = tiny_run
    res = workdir / "results" / "translation"
    terms = {v: set(pd.read_csv(res / v / "history.csv")["term"]) for v in VARIANTS}
    assert terms["full"] == {"reconstruction", "kl", "gan", "cycle", "similarity", "total", "discriminator"}
    assert "gan" not in terms["no_gan"] and "discriminator" not in terms["no_gan"]
    assert "cycle" not in terms["no_cycle"] and "similarity" not in terms["no_similarity"]
    hist = pd.read_csv(res / "full" / "history.csv")
    assert hist["value"].notna().all() and (hist[hist["term"] == "total"]["value"] > 0).all()
    assert json.loads((res / "full" / "timing.json").read_text())["settings"]["weights"]["gan"] == 1.0
    ex = read_examples(res / "full" / "examples.h5")
    n_show = yaml.safe_load(TINY.read_text())["translation"]["n_show"]
    assert ex["inputs"].shape == ex["translations"].shape == (n_show, 32, 32, 3)
    assert not (workdir / "results" / "translation" / "full" / "checkpoint.pt").exists()
