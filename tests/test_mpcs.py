"""MPCS: NT-Xent against hand-computed values, the pair samplers' magnification and patient constraints,
patient-level splits without leakage, the paper's metrics, augmentations, checkpoints and resumption,
the embedded multi-magnification dataset and the config checks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import yaml

from percept.checkpoints import CheckpointError, CheckpointMismatch, load_checkpoint, save_checkpoint
from percept.config import ConfigError, validate_config
from percept.data.embedded import MAGNIFICATIONS, magnification_field, make_magnification, patient_cells
from percept.data.store import ImageDataset
from percept.mpcs import pretrain as pretrain_mod
from percept.mpcs.augment import Augment, gaussian_blur, hue_shift
from percept.mpcs.loss import nt_xent, pair_accuracy
from percept.mpcs.metrics import image_level_accuracy, label_subsets, patient_level_accuracy, summarize
from percept.mpcs.pairs import ORDERED, PairSampler
from percept.mpcs.splits import fold_rows, patient_folds

from conftest import REPO, TINY


# ------------------------------------------------------------------------------------------------ NT-Xent

def test_nt_xent_matches_hand_computed_values():
    # Two pairs of orthonormal views: each view has its partner at cosine 1 and two negatives at cosine 0, so
    # every term is -log(e^(1/t) / (e^(1/t) + 2)) = log(1 + 2 e^(-1/t)).
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    for t in (0.1, 0.5, 1.0):
        assert nt_xent(z, z.clone(), t).item() == pytest.approx(math.log(1 + 2 * math.exp(-1 / t)), rel=1e-4, abs=1e-6)
    # An asymmetric case written out term by term: views a1=(1,0), a2=(0,1), b1=(0.6,0.8), b2=(-1,0), t=0.5.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.6, 0.8], [-1.0, 0.0]])
    e = math.exp
    terms = [  # -log softmax of the partner over the three other views, cosine / 0.5
        -math.log(e(1.2) / (e(0) + e(1.2) + e(-2))),     # a1: a2 0, b1 .6 (partner), b2 -1
        -math.log(e(0) / (e(0) + e(1.6) + e(0))),        # a2: a1 0, b1 .8, b2 0 (partner)
        -math.log(e(1.2) / (e(1.2) + e(1.6) + e(-1.2))),  # b1: a1 .6 (partner), a2 .8, b2 -.6
        -math.log(e(0) / (e(-2) + e(0) + e(-1.2))),       # b2: a1 -1, a2 0 (partner), b1 -.6
    ]
    assert nt_xent(a, b, 0.5).item() == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_nt_xent_is_symmetric_and_invariant_to_order_and_scale():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    base = nt_xent(z1, z2, 0.1)
    assert nt_xent(z2, z1, 0.1).item() == pytest.approx(base.item(), rel=1e-5)  # swapping the views
    perm = torch.randperm(6, generator=g)
    assert nt_xent(z1[perm], z2[perm], 0.1).item() == pytest.approx(base.item(), rel=1e-5)  # reordering pairs
    assert nt_xent(3 * z1, 0.5 * z2, 0.1).item() == pytest.approx(base.item(), rel=1e-5)  # cosine similarity
    shuffled = nt_xent(z1, z2[torch.roll(torch.arange(6), 1)], 0.1)
    assert shuffled.item() != pytest.approx(base.item(), rel=1e-3)  # pairing matters


def test_nt_xent_temperature_behaviour():
    # Identical views everywhere: the partner is no more similar than any negative -> log(2N - 1) for every t.
    same = torch.ones(4, 3)
    for t in (0.05, 0.1, 1.0, 10.0):
        assert nt_xent(same, same, t).item() == pytest.approx(math.log(7), rel=1e-5)
    # Positives aligned, negatives orthogonal: a lower temperature sharpens the softmax and lowers the loss to 0.
    z = torch.eye(4)
    losses = [nt_xent(z, z.clone(), t).item() for t in (2.0, 1.0, 0.5, 0.1, 0.02)]
    assert all(a > b for a, b in zip(losses, losses[1:])) and losses[-1] < 1e-6
    # Partners less similar than a negative: a lower temperature makes the loss larger.
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert nt_xent(a, b, 0.1).item() > nt_xent(a, b, 1.0).item()
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(a, b, 0.0)


def test_nt_xent_gradient_and_pair_accuracy():
    z1 = torch.randn(5, 4, requires_grad=True)
    z2 = z1.detach() + 0.01 * torch.randn(5, 4)
    nt_xent(z1, z2, 0.1).backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
    assert pair_accuracy(z1, z2) == 1.0
    assert pair_accuracy(torch.ones(3, 2), torch.ones(3, 2)) < 1.0


# -------------------------------------------------------------------------------------------- pair samplers

def toy_slides():
    """3 patients; patient 0 and 1 have 2 fields each at all four magnifications, patient 2 only 40x and 100x."""
    mag, patient, field = [], [], []
    for p, mags, fields in ((0, MAGNIFICATIONS, 2), (1, MAGNIFICATIONS, 2), (2, (40, 100), 1)):
        for f in range(fields):
            for m in mags:
                mag.append(m), patient.append(p), field.append(10 * p + f)
    return np.array(mag), np.array(patient), np.array(field)


@pytest.mark.parametrize("within", ["patient", "field"])
@pytest.mark.parametrize("strategy", ["ordered", "random", "fixed"])
def test_pair_samplers_respect_magnification_and_patient(strategy, within):
    mag, patient, field = toy_slides()
    sampler = PairSampler(strategy, mag, patient, field, within=within)
    a, b = sampler.sample(2000, np.random.default_rng(0))
    assert (patient[a] == patient[b]).all()
    if within == "field":
        assert (field[a] == field[b]).all()
    assert (mag[a] != mag[b]).all()
    pairs = set(zip(mag[a].tolist(), mag[b].tolist()))
    if strategy == "ordered":
        assert pairs == {(40, 100), (100, 200), (200, 400), (400, 200)}
        assert all(ORDERED[m] == n for m, n in pairs)
    elif strategy == "fixed":
        assert pairs == {(200, 400)}
    else:
        assert pairs == {(m, n) for m in MAGNIFICATIONS for n in MAGNIFICATIONS if m != n}
        assert set(zip(mag[a][patient[a] == 2].tolist(), mag[b][patient[a] == 2].tolist())) == {(40, 100), (100, 40)}
    if strategy != "random":  # patient 2 has no 200x/400x image: it is never an anchor of these strategies
        assert 2 not in set(patient[a].tolist()) - ({2} if strategy == "ordered" else set())
    again = sampler.sample(2000, np.random.default_rng(0))
    assert (again[0] == a).all() and (again[1] == b).all()


def test_ordered_pair_skips_anchors_without_a_partner():
    mag, patient, field = toy_slides()
    sampler = PairSampler("ordered", mag, patient, field)
    # patient 2's 100x image would need a 200x partner it does not have; its 40x image has its 100x partner
    p2 = np.flatnonzero(patient == 2)
    assert set(sampler.anchors.tolist()) & set(p2.tolist()) == {int(p2[mag[p2] == 40][0])}
    with pytest.raises(ValueError, match="no image has a fixed-pair partner"):
        PairSampler("fixed", np.array([40, 100]), np.array([0, 0]))
    with pytest.raises(ValueError, match="meta/field"):
        PairSampler("random", mag, patient, None, within="field")


# -------------------------------------------------------------------------------- splits, metrics, subsets

def test_patient_folds_have_no_leakage_and_cover_every_patient():
    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(23), rng.integers(3, 9, size=23))
    labels = (patients % 3 == 0).astype(int)  # one class per patient
    folds = patient_folds(patients, labels, 5, seed=0)
    for k in range(5):
        test_p = set(patients[folds == k].tolist())
        assert test_p and not test_p & set(patients[folds != k].tolist())
        assert len(np.unique(labels[folds == k])) == 2  # both classes in every fold
    assert sorted(np.unique(patients).tolist()) == sorted(p for k in range(5) for p in set(patients[folds == k].tolist()))
    counts = np.bincount([folds[patients == p][0] for p in np.unique(patients)])
    assert counts.max() - counts.min() <= 1
    assert (patient_folds(patients, labels, 5, seed=0) == folds).all()
    with pytest.raises(ValueError, match="at least 30 patients"):
        patient_folds(patients, labels, 30, seed=0)


def test_image_and_patient_level_accuracy_by_hand():
    label = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1, 0, 1])
    patient = np.array([7, 7, 7, 7, 9, 9])  # patient 7: 3/4 right, patient 9: 1/2 right
    assert image_level_accuracy(pred, label) == pytest.approx(4 / 6)
    assert patient_level_accuracy(pred, label, patient) == pytest.approx((0.75 + 0.5) / 2)


def test_label_subsets_are_nested_and_stratified():
    labels = np.array([0] * 10 + [1] * 5)
    subsets = label_subsets(labels, [0.2, 0.4, 0.6, 0.8, 1.0], np.random.default_rng(0))
    assert [len(subsets[f]) for f in (0.2, 0.4, 0.6, 0.8, 1.0)] == [2 + 1, 4 + 2, 6 + 3, 8 + 4, 15]
    for small, big in zip((0.2, 0.4, 0.6, 0.8), (0.4, 0.6, 0.8, 1.0)):
        assert set(subsets[small]) <= set(subsets[big])
    assert np.bincount(labels[subsets[0.4]]).tolist() == [4, 2]


def test_summarize_averages_over_seeds_and_folds():
    import pandas as pd

    runs = pd.DataFrame({"encoder": ["e"] * 4, "protocol": ["linear"] * 4, "fraction": [0.2, 0.2, 1.0, 1.0],
                         "seed": [0, 1, 0, 1], "fold": 0, "ila": [0.5, 0.7, 0.9, 0.9], "pla": [0.4, 0.6, 1.0, 0.8]})
    s = summarize(runs).set_index("fraction")
    assert s.loc[0.2, "ila_mean"] == pytest.approx(0.6) and s.loc[0.2, "ila_std"] == pytest.approx(0.1414, abs=1e-3)
    assert s.loc[1.0, "pla_mean"] == pytest.approx(0.9) and s.loc[1.0, "runs"] == 2


# --------------------------------------------------------------------------------------------- augmentation

def test_augment_is_seeded_and_keeps_shape_and_range():
    x = torch.rand(6, 3, 32, 32)
    aug = Augment()
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    identity = Augment(crop_scale=(1.0, 1.0), flip=False, color_jitter=0.0, grayscale_p=0.0, blur_p=0.0)
    # the full-area crop still draws an aspect ratio; with ratio fixed at 1 it is the identity
    from percept.mpcs.augment import random_resized_crop
    u = lambda lo, hi, *s: torch.full((6, *s), float(hi))  # noqa: E731
    assert torch.allclose(random_resized_crop(x, (1.0, 1.0), u, None, ratio=(1.0, 1.0)), x, atol=1e-5)
    assert identity(x, torch.Generator().manual_seed(0)).shape == x.shape


def test_hue_shift_and_blur_by_hand():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(hue_shift(x, torch.zeros(2)), x, atol=1e-5)
    assert torch.allclose(hue_shift(x, torch.ones(2)), x, atol=1e-4)  # a full turn
    grey = x.mean(1, keepdim=True).expand_as(x).contiguous()
    assert torch.allclose(hue_shift(grey, torch.full((2,), 0.3)), grey, atol=1e-5)  # grey has no hue
    flat = torch.full((1, 3, 9, 9), 0.4)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([1.5])), flat, atol=1e-6)
    spike = torch.zeros(1, 3, 9, 9)
    spike[..., 4, 4] = 1.0
    out = gaussian_blur(spike, torch.tensor([1.0]))
    assert out.sum().item() == pytest.approx(3.0, rel=1e-5) and out[0, 0, 4, 4] < 0.2


def test_batchnorm_recalibration_gives_the_exact_statistics():
    from torch import nn

    from percept.mpcs.model import recalibrate_batchnorm

    net = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.BatchNorm2d(2, momentum=0.01))
    images = torch.randint(0, 256, (9, 3, 4, 4), dtype=torch.uint8)
    recalibrate_batchnorm(net.eval(), images, batch_size=4)
    feats = net[0](images.float() / 255)
    assert torch.allclose(net[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert not net.training and net[1].momentum == 0.01


# ---------------------------------------------------------------------------------------------- checkpoints

def test_checkpoint_roundtrip_and_refusal(tmp_path):
    path = tmp_path / "c.ckpt"
    meta = {"backbone": "efficientnet_lite0", "options": {"lr": 0.1}}
    save_checkpoint(path, meta, epoch=3, weights={"w": torch.ones(2)})
    state = load_checkpoint(path, meta)
    assert state["epoch"] == 3 and torch.equal(state["weights"]["w"], torch.ones(2))
    assert load_checkpoint(tmp_path / "none.ckpt", meta) is None
    other = {**meta, "backbone": "resnet50"}
    with pytest.raises(CheckpointMismatch, match="backbone: checkpoint has 'efficientnet_lite0', this run has 'resnet50'"):
        load_checkpoint(path, other)
    with pytest.raises(CheckpointMismatch, match="options"):
        load_checkpoint(path, {**meta, "options": {"lr": 0.2}})
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


class Foreign:
    """Not a tensor, container or primitive: weights_only loading must refuse it."""


def test_checkpoint_loading_is_weights_only(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"meta": {}, "obj": Foreign()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path, {})
    assert issubclass(CheckpointMismatch, CheckpointError)  # one except clause catches both


# ------------------------------------------------------------------------------------ the embedded dataset

MAG_KW = dict(image_size=32, classes={"a": ["immunohistochemistry", "gravel"], "b": ["brick", "retina"]},
              patients_per_photo=3, fields_per_patient=[1, 3], field_scale=0.8, stain_jitter=0.1,
              test_fraction=0.34, seed=0)


@pytest.fixture(scope="module")
def magnification(tmp_path_factory):
    path = tmp_path_factory.mktemp("mag") / "magnification.h5"
    make_magnification(str(path), **MAG_KW)
    return path


def test_magnification_dataset_structure_and_patient_split(magnification):
    ds = ImageDataset(magnification)
    mag, patient, field, subtype = (ds.meta(k) for k in ("magnification", "patient", "field", "subtype"))
    labels = ds.labels().numpy()
    assert ds.image_shape == (32, 32, 3) and ds.class_names == ["a", "b"]
    assert len(np.unique(patient)) == 4 * 3 and ds.attrs["subtype_names"] == ["immunohistochemistry", "gravel",
                                                                                "brick", "retina"]
    for f in np.unique(field):  # every field at the four magnifications, one patient, one subtype
        rows = field == f
        assert sorted(mag[rows].tolist()) == list(MAGNIFICATIONS)
        assert len(np.unique(patient[rows])) == 1 and len(np.unique(subtype[rows])) == 1
    assert (labels == np.array([0, 0, 1, 1])[subtype]).all()  # class = the subtype's group
    counts = np.bincount(patient)
    assert counts.min() >= 4 and counts.max() <= 12 and len(set(counts.tolist())) > 1  # 1-3 fields per patient
    train, test = ImageDataset(magnification, "train"), ImageDataset(magnification, "test")
    assert not set(train.meta("patient").tolist()) & set(test.meta("patient").tolist())
    assert sorted(np.unique(test.meta("subtype")).tolist()) == [0, 1, 2, 3]  # one test patient per subtype
    tr, te = fold_rows(ds, 0, 1, seed=0)
    assert (ds.rows[tr] == train.rows).all() and (ds.rows[te] == test.rows).all()
    for k in range(3):
        tr, te = fold_rows(ds, k, 3, seed=0)
        assert not set(patient[tr].tolist()) & set(patient[te].tolist()) and len(tr) + len(te) == len(ds)


def test_magnification_fields_are_nested_zooms_inside_one_patient():
    img = np.random.default_rng(0).integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    cells = patient_cells(200, 300, 4)
    for a in range(4):
        for b in range(a + 1, 4):  # patients' regions are disjoint
            ya0, xa0, ya1, xa1 = cells[a]
            yb0, xb0, yb1, xb1 = cells[b]
            assert ya1 <= yb0 or yb1 <= ya0 or xa1 <= xb0 or xb1 <= xa0
    rng = np.random.default_rng(1)
    views, boxes = magnification_field(img, cells[3], 16, MAGNIFICATIONS, 0.9, rng)
    y0, x0, y1, x1 = cells[3]
    assert views.shape == (4, 16, 16, 3)
    assert boxes[0, 0] >= y0 and boxes[0, 1] >= x0 and boxes[0, 0] + boxes[0, 2] <= y1 and boxes[0, 1] + boxes[0, 3] <= x1
    for (py, px, ps, _), (y, x, s, _), m0, m in zip(boxes, boxes[1:], MAGNIFICATIONS, MAGNIFICATIONS[1:]):
        assert s == pytest.approx(boxes[0, 2] * 40 / m)  # 100x shows 40/100 of the 40x field's side
        assert py - 1e-4 <= y and y + s <= py + ps + 1e-4 and px - 1e-4 <= x and x + s <= px + ps + 1e-4


# ---------------------------------------------------------------------------- pretraining: resume, refusal

OPTIONS = {"epochs": 2, "batch_size": 4, "pairs_per_epoch": 8, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
           "temperature": 0.1, "projection_hidden": 16, "projection_dim": 8, "within": "field", "image_size": None,
           "augment": {"crop_scale": [0.5, 1.0], "flip": True, "color_jitter": 0.5, "jitter_p": 0.8,
                       "grayscale_p": 0.2, "blur_p": 0.5}}


def run_pretrain(magnification, tmp_path, name, options=OPTIONS, strategy="ordered"):
    return pretrain_mod.pretrain(magnification, tmp_path / f"{name}.pt", strategy=strategy, fold=0, folds=1,
                                 backbone="efficientnet_lite0", init="random", seed=0, options=options,
                                 checkpoint=tmp_path / f"{name}.ckpt", device="cpu", progress=False)


def test_pretraining_resumes_to_the_same_weights_and_refuses_other_settings(magnification, tmp_path, monkeypatch):
    torch.use_deterministic_algorithms(True, warn_only=True)
    history = run_pretrain(magnification, tmp_path, "straight")
    assert len(history) == 2 and np.isfinite(history["loss"]).all()
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)

    real = pretrain_mod.save_checkpoint
    calls = []

    def killed_after_first_epoch(path, meta, **state):
        real(path, meta, **state)
        calls.append(path)
        if len(calls) == 1:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(pretrain_mod, "save_checkpoint", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_pretrain(magnification, tmp_path, "resumed")
    assert (tmp_path / "resumed.ckpt").exists() and not (tmp_path / "resumed.pt").exists()
    resumed_history = run_pretrain(magnification, tmp_path, "resumed")
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert resumed_history["loss"].tolist() == pytest.approx(history["loss"].tolist(), rel=1e-5)
    for key, value in straight["encoder"].items():
        assert torch.allclose(value.float(), resumed["encoder"][key].float(), atol=1e-6), key

    other = copy.deepcopy(OPTIONS)
    other["temperature"] = 0.5
    with pytest.raises(CheckpointMismatch, match="Refusing to resume"):
        run_pretrain(magnification, tmp_path, "resumed", options=other)  # its checkpoint is from temperature 0.1


# ----------------------------------------------------------------------------------------------- config

def tiny_config():
    return yaml.safe_load(TINY.read_text())


def test_mpcs_config_checks_name_the_key():
    cfg = tiny_config()
    cfg["mpcs"]["dataset"] = "breakhis"
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    text = str(err.value)
    assert "mpcs.dataset: 'breakhis' must be downloaded first" in text
    assert "mpcs.pretrain.within: 'field'" in text
    cfg = tiny_config()
    cfg["mpcs"]["image_size"] = 16
    cfg["mpcs"]["pretrain"]["strategies"] = ["sideways"]
    cfg["datasets"]["magnification"]["classes"]["group_b"].append("gravel")
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "mpcs.pretrain.strategies[0]: 'sideways' is not allowed; allowed values: ordered, random, fixed" in str(err.value)
    cfg["mpcs"]["pretrain"]["strategies"] = ["fixed"]
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "mpcs.image_size: images of 16x16 are too small for efficientnet_lite0" in str(err.value)
    assert "photos ['gravel'] are listed under more than one class" in str(err.value)


def test_paper_config_runs_mpcs_on_breakhis():
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    merged = {**base, **cfg}
    validate_config(merged)
    assert merged["mpcs"]["dataset"] == "breakhis" and merged["mpcs"]["folds"] == 5
    assert merged["mpcs"]["finetune"]["fractions"] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert merged["mpcs"]["pretrain"]["temperature"] == 0.1


# ----------------------------------------------------------------------------- fine-tuning: resume, determinism

FT_OPTIONS = {"protocols": ["linear", "full"], "fractions": [0.5, 1.0], "seeds": 1, "batch_size": 16,
              "weight_decay": 0.0, "flip": True, "image_size": None, "linear": {"epochs": 5, "lr": 0.01},
              "full": {"epochs": 2, "lr": 0.001}}


def run_finetune(magnification, tmp_path, name):
    from percept.mpcs.finetune import evaluate_encoder

    return evaluate_encoder(magnification, encoder="baseline_random", pretrained=None, fold=0, folds=1,
                            backbone="efficientnet_lite0", seed=0, options=FT_OPTIONS,
                            checkpoint=tmp_path / f"{name}.ckpt", device="cpu", progress=False)


def test_finetuning_is_deterministic_and_resumes_mid_run(magnification, tmp_path, monkeypatch):
    from percept.mpcs import finetune as finetune_mod

    torch.use_deterministic_algorithms(True, warn_only=True)
    straight = run_finetune(magnification, tmp_path, "straight")
    assert len(straight) == 4 and list(straight["protocol"]) == ["linear", "linear", "full", "full"]
    assert straight.groupby("protocol")["n_labels"].apply(lambda s: s.is_monotonic_increasing).all()
    real = finetune_mod.save_checkpoint
    calls = []

    def killed_in_the_full_finetune(path, meta, **state):
        real(path, meta, **state)
        running = state.get("running")
        if running is not None and running["epoch"] == 1 and running["key"]["fraction"] == 1.0:
            calls.append(path)
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(finetune_mod, "save_checkpoint", killed_in_the_full_finetune)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(magnification, tmp_path, "resumed")
    saved = load_checkpoint(tmp_path / "resumed.ckpt", {"encoder": "baseline_random"})
    assert len(saved["rows"]) == 3 and saved["running"]["epoch"] == 1  # 3 runs done, the 4th half way
    monkeypatch.setattr(finetune_mod, "save_checkpoint", real)
    resumed = run_finetune(magnification, tmp_path, "resumed")
    assert resumed[["ila", "pla", "n_labels"]].values.tolist() == straight[["ila", "pla", "n_labels"]].values.tolist()
