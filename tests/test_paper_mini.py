"""The paper config's miniature (issue 21; tests/paper_mini/, run whole by tests/paper_mini/run.py, a CI step
after pytest): its archive builders write what the downloaders and converters of the real sources accept, and its
planted checkpoints carry the file names torchvision's weights API looks for."""

from __future__ import annotations

import hashlib
import re
import sys

import pytest
import torch

from percept import backbones
from percept.data.download import fetch_source
from percept.data.prepare import prepare
from percept.data.sources import SOURCES
from percept.data.store import ImageDataset

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "paper_mini"))
import checks  # noqa: E402
import make_archives  # noqa: E402
import plant_weights  # noqa: E402


def test_every_download_of_the_paper_config_has_a_builder_and_the_overlay_keeps_the_structure():
    cfg = checks.merged_config()
    assert set(cfg["downloads"]["sources"]) <= set(make_archives.BUILDERS)
    assert set(make_archives.BUILDERS) <= set(SOURCES)
    import yaml

    paper = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    # Every network of the paper's lists stays; the feature caches are paper entries, every network and every
    # dataset of the paper's list among them (a second dataset of the same network runs the same code).
    assert all(e in paper["features"] for e in cfg["features"])
    assert {e["backbone"] for e in cfg["features"]} == {e["backbone"] for e in paper["features"]}
    assert {e["dataset"] for e in cfg["features"]} == {e["dataset"] for e in paper["features"]}
    assert [e for e in paper["features"] if e["dataset"] not in ("stl10", "svhn")] == \
        [e for e in cfg["features"] if e["dataset"] not in ("stl10", "svhn")]
    assert cfg["loss_networks"]["networks"] == paper["loss_networks"]["networks"]
    assert cfg["similarity"]["metrics"] == paper["similarity"]["metrics"]
    assert cfg["mpcs"]["backbones"] == paper["mpcs"]["backbones"] and cfg["mpcs"]["folds"] >= 2
    assert [c["backbone"] for c in cfg["explain"]["classifiers"]] == \
        [c["backbone"] for c in paper["explain"]["classifiers"]]
    assert cfg["translation"]["variants"] == paper["translation"]["variants"]


def test_miniature_archives_download_and_prepare(tmp_path):
    cfg = checks.merged_config()
    sources = cfg["downloads"]["sources"]
    sums = make_archives.build(tmp_path / "www", sources)
    assert set(sums) == {rf.filename for s in sources for rf in SOURCES[s].files}
    assert make_archives.build(tmp_path / "again", sources) == sums  # byte-identical rebuilds: stable pins
    assert (tmp_path / "www" / "extra_32x32.mat").is_file()  # the publishers' whole layout, not only what we read
    for name in sources:
        mine = {f: h for f, h in sums.items() if f in {rf.filename for rf in SOURCES[name].files}}
        raw = fetch_source(name, tmp_path / "raw" / name, mirror=(tmp_path / "www").as_uri(), checksums=mine,
                           progress=False)
        out = prepare(name, raw, tmp_path / f"{name}.h5", **cfg["downloads"]["prepare"].get(name, {}))
        ds = ImageDataset(out)
        assert len(ds) >= 6, name
    breakhis = ImageDataset(tmp_path / "breakhis.h5")
    assert len(set(breakhis.meta("patient").tolist())) == 8  # one patient per subtype: folds have patients


def test_planted_checkpoints_carry_torchvision_file_names_and_load_offline(tmp_path, monkeypatch):
    for name in backbones.NAMES:
        spec = backbones.get(name)
        if spec.family == "torchvision":
            assert spec.weights_file().name in plant_weights.checkpoint_files(name), name
    assert {"resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"} <= set(plant_weights.checkpoint_files("resnet50"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    paths = plant_weights.plant(tmp_path, ["squeezenet1_1"], seed=3)
    model = backbones.get("squeezenet1_1").build("imagenet", allow_download=False)
    state = torch.load(paths[0], map_location="cpu", weights_only=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert hashlib.sha256(paths[0].read_bytes()).hexdigest()  # a real file, not a link to nowhere


def test_checks_accept_only_the_honest_form_of_scores_a_run_cannot_have(tmp_path):
    """A score a run cannot compute is a missing column, not a column of NaN: val_ila without held-out patients
    (finetune.validation 0), the mask-based translation scores on horse2zebra (no masks)."""
    import pandas as pd

    from percept.translation.tables import SCORES, summarize

    fold = tmp_path / "mpcs/breakhis/resnet50/fold0"
    fold.mkdir(parents=True)
    pd.DataFrame({"ila": [0.5], "pla": [0.5]}).to_csv(fold / "baseline_random.csv", index=False)
    pd.DataFrame({"epoch": [1], "loss": [2.0]}).to_csv(fold / "pretrain_fixed.csv", index=False)
    mp = {"dataset": "breakhis", "finetune": {"validation": 0.0}}
    assert checks.check_val_ila(tmp_path, mp) == []
    assert len(checks.check_val_ila(tmp_path, {**mp, "finetune": {"validation": 0.25}})) == 1  # held out, no column
    pd.DataFrame({"ila": [0.5], "pla": [0.5], "val_ila": [float("nan")]}).to_csv(fold / "mpcs_fixed.csv", index=False)
    assert [p for p in checks.check_val_ila(tmp_path, mp) if "mpcs_fixed" in p]  # the NaN column is refused

    res = tmp_path / "translation"
    (res / "full").mkdir(parents=True)
    tr = {"dataset": "horse2zebra", "variants": {"full": {}}}

    def write(per_image):
        per_image.to_csv(res / "per_image.csv", index=False)
        per_image[per_image.variant == "full"].to_csv(res / "full/scores.csv", index=False)
        summarize(per_image).to_csv(res / "ablation.csv", index=False)

    honest = pd.DataFrame({"variant": ["full", "full", "identity", "identity"], "image": [0, 1, 0, 1],
                           "target_shape_rate": [1.0, 0.0, 0.0, 0.0], "neither_rate": [0.0, 1.0, 0.0, 0.0]})
    write(honest)
    assert checks.check_translation_scores(tmp_path, tr) == []
    assert checks.check_translation_scores(tmp_path, {**tr, "dataset": "translation_shapes"})  # shapes have masks
    write(honest.assign(**{s: float("nan") for s in SCORES if s not in honest}))
    problems = checks.check_translation_scores(tmp_path, tr)
    assert any("ablation.csv" in p for p in problems) and any("per_image.csv" in p for p in problems)


def test_checks_take_the_grids_task_columns_and_undefined_correlations_for_what_they_are(tmp_path):
    """The grid's long table leaves a task's own columns empty on the other tasks' rows (finite where filled);
    its ImageNet correlation is NaN exactly where a score does not vary across networks (a 1-step segmenter that
    finds no road), and a number elsewhere."""
    import numpy as np
    import pandas as pd

    from percept.loss_networks.analysis import correlations

    nets = [f"net{i}" for i in range(4)]
    rows = []
    for i, n in enumerate(nets):
        base = {"dataset": "d", "network": n, "backbone": n, "weights": "imagenet", "tap": "t", "tap_index": 0,
                "imagenet_acc1": 70.0 + i, "higher_is_better": True}
        rows.append({**base, "task": "super_resolution", "metric": "psnr", "value": 20.0 + i * i, "psnr_set5": 21.0})
        rows.append({**base, "task": "segmentation", "metric": "iou", "value": 0.0})
    scores = pd.DataFrame(rows)
    grid = tmp_path / "loss_networks"
    grid.mkdir()
    scores.to_csv(grid / "scores.csv", index=False)
    correlations(scores).to_csv(grid / "imagenet_correlation.csv", index=False)
    assert checks.check_table(grid / "scores.csv") == []
    assert checks.check_correlations(tmp_path) == []
    corr = pd.read_csv(grid / "imagenet_correlation.csv")
    assert corr.set_index("task").loc["segmentation", "pearson"].isna().all()
    assert np.isfinite(corr.set_index("task").loc["super_resolution", "pearson"]).all()

    broken = scores.copy()
    broken.loc[broken.index[0], "psnr_set5"] = float("nan")  # a super-resolution row without its benchmark score
    broken.to_csv(grid / "scores.csv", index=False)
    assert any("psnr_set5" in p for p in checks.check_table(grid / "scores.csv"))
    corr.loc[corr.task == "super_resolution", "pearson"] = float("nan")  # a defined correlation lost
    corr.to_csv(grid / "imagenet_correlation.csv", index=False)
    scores.to_csv(grid / "scores.csv", index=False)
    assert len(checks.check_correlations(tmp_path)) == 2


def test_ci_runs_the_miniature_after_pytest_whatever_pytest_said():
    """.ci/run: pytest, then the miniature in a temporary folder; no exit between them, and the exit status is
    pytest's failure or else the miniature's."""
    text = (REPO / ".ci/run").read_text()
    tests, mini = text.index(".venv/bin/pytest "), text.index("tests/paper_mini/run.py --cores 2 --workdir")
    assert tests < mini and not re.search(r"\bexit\b", text[tests:mini])
    assert text.rstrip().endswith('if [ "$status" -ne 0 ]; then exit "$status"; fi\nexit "$mini_status"')
