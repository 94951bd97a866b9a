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
from percept.mpcs.augment import Augment, MildAugment, hue_shift, make_augment
from percept.mpcs.loss import nt_xent, pair_accuracy
from percept.mpcs.metrics import image_level_accuracy, label_subsets, patient_level_accuracy, summarize
from percept.mpcs.metrics import patient_subsets
from percept.mpcs.pairs import ORDERED, PairSampler
from percept.mpcs.splits import fold_rows, patient_folds, validation_patients

# The authors' code, run outside the project: prakashchhipa/Magnification-Prior-Self-Supervised-Method at
# commit cba3fb19ab0666303f843334923e153cbb457089 (albumentations 1.3.1, torch from /work/venv).
AUTHORS = "prakashchhipa/Magnification-Prior-Self-Supervised-Method@cba3fb19ab0666303f843334923e153cbb457089"

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
    sampler = PairSampler(strategy, mag, patient, within=within, field=field)
    a, b = sampler.sample(2000, np.random.default_rng(0))
    assert (patient[a] == patient[b]).all()
    if within == "field":
        assert (field[a] == field[b]).all()
    assert (mag[a] != mag[b]).all()
    pairs = set(zip(mag[a].tolist(), mag[b].tolist()))
    if strategy == "ordered":
        assert pairs == {(40, 100), (100, 200), (200, 400), (400, 200)}
        assert all(ORDERED[m] == n for m, n in pairs)
        # patient 2 has 40x and 100x only: its 40x image pairs with its 100x one; its 100x image (no 200x) never
        # anchors a pair
        p2 = patient[a] == 2
        assert p2.any() and set(mag[a][p2].tolist()) == {40} and set(mag[b][p2].tolist()) == {100}
    elif strategy == "fixed":
        assert pairs == {(200, 400)}
        assert not (patient[a] == 2).any()  # no 200x image: patient 2 never anchors a fixed pair
    else:
        assert pairs == {(m, n) for m in MAGNIFICATIONS for n in MAGNIFICATIONS if m != n}
        assert set(zip(mag[a][patient[a] == 2].tolist(), mag[b][patient[a] == 2].tolist())) == {(40, 100), (100, 40)}
    again = sampler.sample(2000, np.random.default_rng(0))
    assert (again[0] == a).all() and (again[1] == b).all()


def test_ordered_pair_skips_anchors_without_a_partner():
    mag, patient, field = toy_slides()
    sampler = PairSampler("ordered", mag, patient, within="patient")
    # patient 2's 100x image would need a 200x partner it does not have; its 40x image has its 100x partner
    p2 = np.flatnonzero(patient == 2)
    assert set(sampler.anchors.tolist()) & set(p2.tolist()) == {int(p2[mag[p2] == 40][0])}
    with pytest.raises(ValueError, match="no image has a fixed-pair partner"):
        PairSampler("fixed", np.array([40, 100]), np.array([0, 0]), within="patient")
    with pytest.raises(ValueError, match="meta/field"):
        PairSampler("random", mag, patient, within="field")
    with pytest.raises(ValueError, match="meta/sequence"):
        PairSampler("random", mag, patient)  # the default pairs by sequence number


# BreakHis-layout fixture: patient folder -> sequence numbers present per magnification. Run through the authors'
# BreakHis_Dataset_SSL (src/self_supervised/apply/datasets.py) on the same tree, it keeps the keys below (those
# at all four magnifications) and its __getitem__, 24000 draws from random.seed(0), gave these pair frequencies
# (first view, second view); every pair shared patient and sequence number.
BREAKHIS_FIXTURE = {
    "benign/SOB/adenosis/SOB_B_A_14-22549AB": {40: [1, 2, 3], 100: [1, 2, 3], 200: [1, 2], 400: [1, 2, 3, 4]},
    "malignant/SOB/ductal_carcinoma/SOB_M_DC_14-2523": {40: [1, 2, 5], 100: [1, 2, 5], 200: [1, 2], 400: [1, 2, 5]},
    "benign/SOB/fibroadenoma/SOB_B_F_14-9133": {40: [1, 2], 100: [1], 200: [1], 400: [1]},
}
AUTHORS_KEYS = ["22549AB_001", "22549AB_002", "2523_001", "2523_002", "9133_001"]
AUTHORS_PAIR_FREQUENCIES = {
    "ordered": {(40, 100): 0.2505, (100, 200): 0.2528, (200, 400): 0.4967},
    "random": {(40, 100): 0.0834, (40, 200): 0.0834, (40, 400): 0.0842, (100, 40): 0.0837, (100, 200): 0.0849,
               (100, 400): 0.0854, (200, 40): 0.0819, (200, 100): 0.0842, (200, 400): 0.083, (400, 40): 0.0809,
               (400, 100): 0.0826, (400, 200): 0.0824},
    "fixed": {(200, 400): 1.0},
}


@pytest.fixture(scope="module")
def breakhis_fixture(tmp_path_factory):
    from PIL import Image

    from percept.data.prepare import prepare_breakhis

    raw = tmp_path_factory.mktemp("breakhis_raw")
    root = raw / "BreaKHis_v1" / "histology_slides" / "breast"
    for rel, mags in BREAKHIS_FIXTURE.items():
        slide = rel.rsplit("/", 1)[-1]
        cls, sub = slide.split("_")[1:3]
        for m, seqs in mags.items():
            d = root / rel / f"{m}X"
            d.mkdir(parents=True)
            for q in seqs:
                Image.new("RGB", (8, 6), (m % 256, q, 0)).save(d / f"SOB_{cls}_{sub}-{slide.rsplit('_', 1)[-1]}-{m}-{q:03d}.png")
    return prepare_breakhis(raw, tmp_path_factory.mktemp("breakhis") / "breakhis.h5", image_size=16, test_fraction=0.0)


@pytest.mark.parametrize("strategy", ["ordered", "random", "fixed"])
def test_sequence_pairing_matches_the_authors_on_a_breakhis_layout(breakhis_fixture, strategy):
    """Fidelity: the pairable keys and the pair frequencies of the authors' dataset class (recorded above)."""
    ds = ImageDataset(breakhis_fixture)
    mag, patient, seq = ds.meta("magnification"), ds.meta("patient"), ds.meta("sequence")
    names = ds.attrs["patient_names"]
    sampler = PairSampler(strategy, mag, patient, sequence=seq)
    keys = sorted(f"{names[p].split('-')[1]}_{q:03d}" for p, q in sampler.keys)
    assert keys == AUTHORS_KEYS
    n = 24000
    a, b = sampler.sample(n, np.random.default_rng(0))
    assert (patient[a] == patient[b]).all() and (seq[a] == seq[b]).all()
    freq = {}
    for pair in zip(mag[a].tolist(), mag[b].tolist()):
        freq[pair] = freq.get(pair, 0) + 1 / n
    assert set(freq) == set(AUTHORS_PAIR_FREQUENCIES[strategy])
    for pair, f in AUTHORS_PAIR_FREQUENCIES[strategy].items():
        assert freq[pair] == pytest.approx(f, abs=0.015), pair  # both are 24000 draws: binomial noise < 0.01
    # an epoch is one pair per complete key, each key once (the reference's len(dataset) with shuffle=True)
    assert sampler.epoch_size == len(AUTHORS_KEYS)
    first, _ = sampler.sample(len(AUTHORS_KEYS), np.random.default_rng(1))
    assert len({(patient[i], seq[i]) for i in first}) == len(AUTHORS_KEYS)


def test_embedded_set_records_a_sequence_number_per_field(magnification):
    ds = ImageDataset(magnification)
    mag, patient, field, seq = (ds.meta(k) for k in ("magnification", "patient", "field", "sequence"))
    for f in np.unique(field):  # one sequence number per field, the same at its four magnifications
        assert len(np.unique(seq[field == f])) == 1
    for p in np.unique(patient):  # numbered 1, 2, ... within each patient
        assert sorted(np.unique(seq[patient == p]).tolist()) == list(range(1, len(np.unique(field[patient == p])) + 1))
    sampler = PairSampler("random", mag, patient, sequence=seq)
    a, b = sampler.sample(500, np.random.default_rng(0))
    assert (field[a] == field[b]).all()  # pairing by sequence number pairs views of one field


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


def test_folds_are_dealt_per_subtype_and_validation_holds_out_patients_per_subtype():
    rng = np.random.default_rng(2)
    patients = np.repeat(np.arange(40), rng.integers(2, 6, size=40))
    subtype = patients % 8  # 5 patients of each of 8 subtypes, as BreakHis's 8 tumour types
    folds = patient_folds(patients, subtype, 5, seed=0)
    for k in range(5):  # every fold holds one patient of every subtype: folds are stratified by subtype
        first = np.unique(patients[folds == k], return_index=True)[1]
        assert sorted(subtype[folds == k][first].tolist()) == list(range(8))
    held = validation_patients(patients, subtype, 0.25, seed=0)
    held_p = np.unique(patients[held])
    assert np.bincount(held_p % 8).tolist() == [1] * 8  # round(0.25 * 5) = 1 patient per subtype
    assert not set(held_p.tolist()) & set(patients[~held].tolist())
    assert not validation_patients(patients, subtype, 0.0, seed=0).any()


def test_patient_subsets_draw_whole_patients_nested_per_subtype():
    patients = np.repeat(np.arange(16), 3)
    subtype = patients % 4  # 4 patients per subtype
    subsets = patient_subsets(patients, subtype, [0.25, 0.5, 1.0], np.random.default_rng(0))
    for f, per in ((0.25, 1), (0.5, 2), (1.0, 4)):
        chosen = np.unique(patients[subsets[f]])
        assert np.bincount(chosen % 4).tolist() == [per] * 4
        assert len(subsets[f]) == 3 * len(chosen)  # every image of a chosen patient
    assert set(subsets[0.25]) <= set(subsets[0.5]) <= set(subsets[1.0])


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

def test_simclr_augment_is_seeded_and_keeps_shape_and_range():
    x = torch.rand(6, 3, 32, 32)
    aug = Augment()
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    # with every random step off and the crop fixed to the whole image at aspect 1, the pipeline is the identity
    from percept.mpcs.augment import random_resized_crop
    u = lambda lo, hi, *s: torch.full((6, *s), float(hi))  # noqa: E731
    assert torch.allclose(random_resized_crop(x, (1.0, 1.0), u, None, ratio=(1.0, 1.0)), x, atol=1e-5)
    # a random aspect ratio makes the full-area crop a real change: the identity above is not vacuous
    u_off = lambda lo, hi, *s: torch.full((6, *s), float(lo))  # noqa: E731
    assert not torch.allclose(random_resized_crop(x, (1.0, 1.0), u_off, None), x, atol=1e-3)


# albumentations 1.3.1 on a 20x20x3 uint8 image ((arange % 251)): the authors' Affine(translate_percent=0.05) at
# p=1 moves the content 1 pixel right and down with black at row 0 and column 0 (its translate range is
# (0.05, 0.05)); Rotate(limit=(90, 90)) equals np.rot90(img, 1) (counter-clockwise); Flip draws d in {-1, 0, 1}.
# Their pretrain_augmentation's init args (recorded): ColorJitter brightness/contrast/saturation [0.9, 1.1], hue
# [-0.1, 0.1], p 0.3; Flip p 0.3; Rotate limit (-90, 90), border_mode 4 (reflect-101), p 0.3; Affine p 0.2.
AUTHORS_MILD = {"jitter": 0.1, "jitter_p": 0.3, "flip_p": 0.3, "rotate_limit": 90.0, "rotate_p": 0.3,
                "translate": 0.05, "affine_p": 0.2}
OFF = dict(jitter_p=0.0, flip_p=0.0, rotate_p=0.0, affine_p=0.0)


def fixture_image():
    img = (np.arange(20 * 20 * 3).reshape(20, 20, 3) % 251).astype(np.float32) / 255
    return img, torch.from_numpy(img).permute(2, 0, 1)[None].repeat(4, 1, 1, 1)


def test_mild_augment_steps_match_the_authors_albumentations():
    img, x = fixture_image()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(MildAugment(**OFF)(x, gen()), x)  # every step off: the identity
    shifted = MildAugment(**{**OFF, "affine_p": 1.0})(x, gen())[0].permute(1, 2, 0).numpy()
    expected = np.zeros_like(img)
    expected[1:, 1:] = img[:-1, :-1]
    np.testing.assert_allclose(shifted, expected, atol=1e-5)
    turned = MildAugment(**{**OFF, "rotate_p": 1.0, "rotate_limit": 90.0})
    from percept.mpcs.augment import rotate
    np.testing.assert_allclose(rotate(x, torch.full((4,), 90.0))[0].permute(1, 2, 0).numpy(), np.rot90(img, 1),
                               atol=1e-5)
    out = turned(x, gen())
    assert out.shape == x.shape and not torch.allclose(out, x)
    flips = MildAugment(**{**OFF, "flip_p": 1.0})(x.repeat(8, 1, 1, 1), gen())
    kinds = {("v" if torch.equal(o, x[0].flip(-2)) else "h" if torch.equal(o, x[0].flip(-1))
              else "hv" if torch.equal(o, x[0].flip(-1, -2)) else "?") for o in flips}
    assert kinds == {"v", "h", "hv"}  # albumentations' Flip: vertical, horizontal or both
    jittered = MildAugment(**{**OFF, "jitter_p": 1.0})(x, gen())
    ratio = jittered.mean((1, 2, 3)) / x.mean((1, 2, 3))
    assert ((ratio > 0.75) & (ratio < 1.3)).all() and not torch.allclose(jittered, x)


def test_mild_augment_is_the_default_with_the_authors_parameters():
    from percept.config import validate_config as validate

    cfg = tiny_config()
    validate(cfg)
    aug = make_augment(cfg["mpcs"]["pretrain"]["augment"])
    assert isinstance(aug, MildAugment)
    assert {k: getattr(aug, k) for k in AUTHORS_MILD} == AUTHORS_MILD
    # and each step fires at its probability (one coin per image)
    _, x = fixture_image()
    big = x[:1].repeat(4000, 1, 1, 1)
    changed = (MildAugment(**{**OFF, "affine_p": 0.2})(big, torch.Generator().manual_seed(1)) != big).flatten(1).any(1)
    assert changed.float().mean().item() == pytest.approx(0.2, abs=0.03)
    with pytest.raises(ValueError, match="unknown augmentation kind 'strong'"):
        make_augment({"kind": "strong"})


# ---------------------------------------------------------------------------- LARS, schedule, projection head

# The authors' adjust_learning_rate (src/self_supervised/core/pretrain.py) with epochs=100, batch_size=512,
# learning_rate_weights=0.2, learning_rate_biases=0.0048, len(train_loader)=7, at global steps:
AUTHORS_LR = {0: (0.0, 0.0), 1: (0.005714285714285714, 0.00013714285714285713), 35: (0.2, 0.0048),
              69: (0.39428571428571435, 0.009462857142857143), 70: (0.4, 0.0096),
              71: (0.39999751581900606, 0.009599940379656143), 300: (0.2823751632054962, 0.006777003916931908),
              699: (0.00040248418099396595, 9.659620343855181e-06)}
# The authors' optimizers.LARS (weight_decay 1e-6, momentum 0.9, eta 0.001, both filters on), groups [w], [b] at
# lr 0.4 and 0.0096, torch.manual_seed(0); w = randn(3, 4), b = randn(3); two steps with gradients
# randn(3, 4), randn(3) from Generator().manual_seed(10 + k):
AUTHORS_LARS_W = [1.5411378145217896, -0.29349735379219055, -2.1782517433166504, 0.5699440836906433,
                  -1.0850069522857666, -1.398209571838379, 0.4039088785648346, 0.8385533094406128,
                  -0.7185359597206116, -0.4043935239315033, -0.596567690372467, 0.18282492458820343]
AUTHORS_LARS_B = [-0.8957906365394592, 1.086055040359497, -1.0730551481246948]


def test_lars_schedule_matches_the_authors():
    from percept.mpcs.pretrain import lars_learning_rates

    for step, expected in AUTHORS_LR.items():
        got = lars_learning_rates(step, epochs=100, steps_per_epoch=7, batch_size=512, lr_weights=0.2,
                                  lr_biases=0.0048, warmup_epochs=10)
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-12, err_msg=f"step {step}")


def test_lars_step_matches_the_authors():
    from percept.mpcs.pretrain import LARS

    torch.manual_seed(0)
    w, b = torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(3))
    opt = LARS([{"params": [w]}, {"params": [b]}], lr=0.0, weight_decay=1e-6)
    opt.param_groups[0]["lr"], opt.param_groups[1]["lr"] = 0.4, 0.0096
    for k in range(2):
        g = torch.Generator().manual_seed(10 + k)
        w.grad, b.grad = torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
        opt.step()
    np.testing.assert_allclose(w.detach().flatten().numpy(), AUTHORS_LARS_W, rtol=1e-5)
    np.testing.assert_allclose(b.detach().numpy(), AUTHORS_LARS_B, rtol=1e-5)


def test_lars_groups_weights_and_biases_and_the_head_has_no_bias():
    from percept.mpcs.model import ProjectionHead
    from percept.mpcs.pretrain import lars_param_groups

    head = ProjectionHead(12, 16, 8)
    kinds = [type(m).__name__ for m in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head[0].bias is None and head[3].bias is None
    weights, biases = lars_param_groups(head)
    assert [p.shape for p in weights["params"]] == [(16, 12), (8, 16)]
    assert [p.shape for p in biases["params"]] == [(16,), (16,)]  # BatchNorm's weight and bias
    old = ProjectionHead(12, 16, 8, batchnorm=False)
    assert [type(m).__name__ for m in old] == ["Linear", "ReLU", "Linear"] and old[0].bias is not None


def test_hue_shift_by_hand():  # the blur: tests/test_filters.py
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(hue_shift(x, torch.zeros(2)), x, atol=1e-5)
    assert torch.allclose(hue_shift(x, torch.ones(2)), x, atol=1e-4)  # a full turn
    grey = x.mean(1, keepdim=True).expand_as(x).contiguous()
    assert torch.allclose(hue_shift(grey, torch.full((2,), 0.3)), grey, atol=1e-5)  # grey has no hue


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
    tr, va, te = fold_rows(ds, 0, 1, seed=0)
    assert (ds.rows[tr] == train.rows).all() and (ds.rows[te] == test.rows).all() and len(va) == 0
    for k in range(3):
        tr, va, te = fold_rows(ds, k, 3, seed=0, validation=0.25)
        assert len(va) and len(tr) + len(va) + len(te) == len(ds)
        for x, y in ((tr, te), (tr, va), (va, te)):
            assert not set(patient[x].tolist()) & set(patient[y].tolist())


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

OPTIONS = {"epochs": 2, "batch_size": 4, "pairs_per_epoch": 8, "optimizer": "lars", "lr": 0.2, "lr_biases": 0.0048,
           "warmup_epochs": 1, "weight_decay": 1e-6, "temperature": 0.1, "projection_hidden": 16, "projection_dim": 8,
           "projection_batchnorm": True, "recalibrate_batchnorm": False, "within": "sequence", "image_size": None,
           "augment": {"kind": "mild", "mild": {}}}


def run_pretrain(magnification, tmp_path, name, options=OPTIONS, strategy="ordered", checkpoint_seconds=30.0):
    return pretrain_mod.pretrain(magnification, tmp_path / f"{name}.pt", strategy=strategy, fold=0, folds=1,
                                 backbone="efficientnet_lite0", init="random", seed=0, options=options,
                                 checkpoint=tmp_path / f"{name}.ckpt", device="cpu", progress=False,
                                 checkpoint_seconds=checkpoint_seconds)


def test_resume_checkpoints_are_written_at_most_every_so_many_seconds(monkeypatch):
    from percept import checkpoints

    clock = iter([0.0, 10.0, 29.0, 31.0, 40.0, 70.0])
    monkeypatch.setattr(checkpoints.time, "monotonic", lambda: next(clock))
    every = checkpoints.Every(30)  # starts at 0
    assert [every.due() for _ in range(5)] == [False, False, True, False, True]  # 10, 29, 31, 40, 70
    monkeypatch.undo()
    assert all(checkpoints.Every(0).due() for _ in range(3))


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
    with pytest.raises(KeyboardInterrupt):  # a checkpoint after every epoch: killed after the first
        run_pretrain(magnification, tmp_path, "resumed", checkpoint_seconds=0)
    assert (tmp_path / "resumed.ckpt").exists() and not (tmp_path / "resumed.pt").exists()
    resumed_history = run_pretrain(magnification, tmp_path, "resumed", checkpoint_seconds=0)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert resumed_history["loss"].tolist() == pytest.approx(history["loss"].tolist(), rel=1e-5)
    for key, value in straight["encoder"].items():
        assert torch.allclose(value.float(), resumed["encoder"][key].float(), atol=1e-6), key

    other = copy.deepcopy(OPTIONS)
    other["temperature"] = 0.5
    with pytest.raises(CheckpointMismatch, match="Refusing to resume"):
        run_pretrain(magnification, tmp_path, "resumed", options=other, checkpoint_seconds=0)  # from temperature 0.1


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
    assert "mpcs.pretrain.within" not in text  # BreakHis pairs by sequence number, the default
    cfg["mpcs"]["pretrain"]["within"] = "field"
    cfg["downloads"]["prepare"]["breakhis"] = {"magnifications": [40, 100]}
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "mpcs.pretrain.within: 'field' needs a dataset that records fields of view" in str(err.value)
    cfg["mpcs"]["pretrain"]["within"] = "sequence"
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "mpcs.pretrain.within: 'sequence' pairs image sequence numbers present at all of" in str(err.value)
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


def paper_config():
    """config.yaml overlaid with configs/paper.yaml by Snakemake's own merge (what ``--configfile`` does)."""
    from snakemake.utils import update_config

    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(merged, yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))
    validate_config(merged)
    return merged


def test_paper_config_runs_mpcs_with_the_authors_settings():
    from percept.mpcs.pretrain import lars_learning_rates

    mpcs = paper_config()["mpcs"]
    pre, ft = mpcs["pretrain"], mpcs["finetune"]
    assert mpcs["dataset"] == "breakhis" and mpcs["folds"] == 5
    # keys the paper config leaves out come from config.yaml's embedded choices only where the authors agree:
    # config.yaml recalibrates BatchNorm (an addition); the paper run must not
    assert pre["recalibrate_batchnorm"] is False and ft["recalibrate_batchnorm"] is False
    assert pre["within"] == "sequence" and pre["projection_batchnorm"] is True
    aug = make_augment(pre["augment"])
    assert isinstance(aug, MildAugment) and {k: getattr(aug, k) for k in AUTHORS_MILD} == AUTHORS_MILD
    # the schedule the pretraining rule would run reproduces the authors' rates at B = 512 (recorded above)
    got = lars_learning_rates(70, epochs=100, steps_per_epoch=7, batch_size=512, lr_weights=pre["lr"],
                              lr_biases=pre["lr_biases"], warmup_epochs=pre["warmup_epochs"])
    np.testing.assert_allclose(got, AUTHORS_LR[70], rtol=1e-12)
    assert ft["per_magnification"] is True and ft["label_unit"] == "patient"
    assert ft["full"] == {"epochs": 100, "lr": 0.0001} and ft["batch_size"] == 32


# ----------------------------------------------------------------------------- fine-tuning: resume, determinism

FT_OPTIONS = {"protocols": ["linear", "full"], "fractions": [0.5, 1.0], "seeds": 1, "batch_size": 16,
              "weight_decay": 0.0, "flip": True, "image_size": None, "linear": {"epochs": 5, "lr": 0.01},
              "full": {"epochs": 2, "lr": 0.001}, "label_unit": "patient", "per_magnification": True,
              "validation": 0.0, "recalibrate_batchnorm": False}


def run_finetune(magnification, tmp_path, name, checkpoint_seconds=30.0):
    from percept.mpcs.finetune import evaluate_encoder

    return evaluate_encoder(magnification, encoder="baseline_random", pretrained=None, fold=0, folds=1,
                            backbone="efficientnet_lite0", seed=0, options=FT_OPTIONS,
                            checkpoint=tmp_path / f"{name}.ckpt", device="cpu", progress=False,
                            checkpoint_seconds=checkpoint_seconds)


def test_finetuning_is_deterministic_and_resumes_mid_run(magnification, tmp_path, monkeypatch):
    from percept.mpcs import finetune as finetune_mod

    torch.use_deterministic_algorithms(True, warn_only=True)
    straight = run_finetune(magnification, tmp_path, "straight")
    assert len(straight) == 16 and list(straight["protocol"]) == ["linear"] * 8 + ["full"] * 8
    assert list(straight["magnification"][:8]) == [40, 40, 100, 100, 200, 200, 400, 400]  # per magnification
    ds = ImageDataset(magnification, split="test")
    for m, n in straight.groupby("magnification")["n_test"]:  # each scored on its own magnification's images
        assert (n == int((ds.meta("magnification") == m).sum())).all()
    assert straight.groupby(["protocol", "magnification"])["n_labels"].apply(lambda s: s.is_monotonic_increasing).all()
    real = finetune_mod.save_checkpoint
    calls = []

    def killed_in_the_full_finetune(path, meta, **state):
        real(path, meta, **state)
        running = state.get("running")
        if (running is not None and running["epoch"] == 1 and running["key"]["fraction"] == 1.0
                and running["key"]["magnification"] == 400):
            calls.append(path)
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(finetune_mod, "save_checkpoint", killed_in_the_full_finetune)
    with pytest.raises(KeyboardInterrupt):  # the running fine-tune checkpointed after every epoch
        run_finetune(magnification, tmp_path, "resumed", checkpoint_seconds=0)
    saved = load_checkpoint(tmp_path / "resumed.ckpt", {"encoder": "baseline_random"})
    assert len(saved["rows"]) == 15 and saved["running"]["epoch"] == 1  # 15 runs done, the 16th half way
    monkeypatch.setattr(finetune_mod, "save_checkpoint", real)
    resumed = run_finetune(magnification, tmp_path, "resumed", checkpoint_seconds=0)
    assert resumed[["ila", "pla", "n_labels"]].values.tolist() == straight[["ila", "pla", "n_labels"]].values.tolist()


def test_val_ila_is_a_column_only_when_patients_are_held_out(magnification, tmp_path):
    """finetune.validation 0 (the paper's setting) holds nothing out: the table has no val_ila column rather than
    a column of NaN; a share > 0 scores the held-out patients, finite in every run (issue 21)."""
    from percept.mpcs.finetune import evaluate_encoder

    opts = {**FT_OPTIONS, "protocols": ["linear"], "fractions": [1.0], "per_magnification": False,
            "linear": {"epochs": 1, "lr": 0.01}}
    kw = dict(encoder="baseline_random", pretrained=None, fold=0, folds=3, backbone="efficientnet_lite0", seed=0,
              device="cpu", progress=False)
    none = evaluate_encoder(magnification, options=opts, checkpoint=tmp_path / "none.ckpt", **kw)
    assert "val_ila" not in none.columns and np.isfinite(none[["ila", "pla"]].to_numpy()).all()
    held = evaluate_encoder(magnification, options={**opts, "validation": 0.25}, checkpoint=tmp_path / "held.ckpt",
                            **kw)
    assert "val_ila" in held.columns and np.isfinite(held["val_ila"].to_numpy()).all()
