"""Shape translation (percept.translation): model shapes, each loss on tiny tensors, weights of zero removing
their terms, checkpoints (resume, refusal), the two-domain data and the scores on hand-made cases."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from percept.checkpoints import CheckpointMismatch
from percept.data.store import ImageDataset
from percept.filters import gaussian_blur
from percept.translation import losses, training
from percept.translation.data import make_translation_domains
from percept.translation.evaluate import (
    CORRUPTIONS,
    colour_hist_distance,
    corrupt,
    ideal_target,
    iou,
    MASK_SCORES,
    SCORES,
    judge_predict,
    load_judge,
    score_translations,
    summarize,
    train_judge,
    translated_mask,
)
from percept.translation.models import (
    Discriminator,
    PatchDiscriminator,
    SharedLatentVAEs,
    SpatialSharedVAEs,
    make_discriminator,
    make_translator,
)
from percept.translation.training import (
    load_translator,
    train_translation,
    variant_settings,
)

OPTIONS = {
    "model": {"latent": "vector", "latent_size": 8, "width": 4},
    "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "beta1": 0.5, "max_train": None},
    "losses": {"reconstruction": 10.0, "kl": 0.01, "gan": 1.0, "cycle": 10.0, "similarity": 1.0},
    "gan_kind": "lsgan",
    "discriminator": "patch",
    "similarity_kind": "colour",
    "metric": {"backbone": "efficientnet_lite0", "weights": "random", "taps": ["_stem_act"]},
    "variants": {"full": {}, "no_gan": {"gan": 0}, "perceptual": {"similarity_kind": "perceptual"}},
    "judge": {"epochs": 1, "batch_size": 8, "lr": 1e-3},
    "evaluation": {"mask_threshold": 0.15, "max_images": None},
    "n_show": 2,
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions: one thread is fastest, and does not fight other processes for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    path = tmp_path_factory.mktemp("tr") / "translation_shapes.h5"
    make_translation_domains(str(path), shape_a="circle", shape_b="square", n_train=8, n_test=2, image_size=32,
                             object_size=[0.5, 0.8], textures=["coffee"], backgrounds=["grass"], seed=3,
                             progress=False)
    return path


def test_model_output_shapes_and_shared_layers():
    torch.manual_seed(0)
    model = SharedLatentVAEs(32, latent_size=8, width=4)
    x = torch.rand(3, 3, 32, 32)
    mu, logvar = model.encode(x, "A")
    assert mu.shape == logvar.shape == (3, 8)
    y = model.translate(x, "A", "B")
    assert y.shape == (3, 3, 32, 32) and 0 <= float(y.detach().min()) and float(y.detach().max()) <= 1
    assert model.encoders["A"].head is model.encoders["B"].head  # the shared latent space
    assert model.decoders["A"].fc is model.decoders["B"].fc
    assert model.encoders["A"].features is not model.encoders["B"].features
    assert Discriminator(32, 4)(x).shape == (3,)


def test_spatial_latent_model_keeps_the_object_in_place_in_its_code():
    torch.manual_seed(0)
    model = make_translator(32, latent_size=6, width=4, latent="spatial", downsamplings=2)
    assert isinstance(model, SpatialSharedVAEs)
    x = torch.rand(3, 3, 32, 32)
    mu, logvar = model.encode(x, "B")
    assert mu.shape == logvar.shape == (3, 6, 8, 8)
    y = model.translate(x, "A", "B")
    assert y.shape == (3, 3, 32, 32) and 0 <= float(y.detach().min()) and float(y.detach().max()) <= 1
    assert model.encoders["A"].head is model.encoders["B"].head  # the shared innermost layers
    assert model.decoders["A"][0] is model.decoders["B"][0]
    assert model.encoders["A"].trunk is not model.encoders["B"].trunk
    assert model.decoders["A"][1] is not model.decoders["B"][1]
    # a change confined to one corner of the image changes only the nearby cells of the latent map
    model.eval()
    x2 = x.clone()
    x2[:, :, :4, :4] = 1 - x2[:, :, :4, :4]
    with torch.no_grad():
        diff = (model.encode(x2, "A")[0] - model.encode(x, "A")[0]).abs().sum((0, 1))
    assert float(diff[:3, :3].sum()) > 0 and float(diff[5:, 5:].sum()) == 0
    with pytest.raises(ValueError, match="latent must be one of"):
        make_translator(32, latent="grid")


def test_patch_discriminator_scores_patches_without_batch_statistics():
    torch.manual_seed(0)
    d = make_discriminator(32, 4, "patch")
    assert isinstance(d, PatchDiscriminator)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    x = torch.rand(3, 3, 32, 32)
    assert d(x).shape == (3, 1, 4, 4)  # 32 -> 16 -> 8 -> 4: one logit per overlapping patch
    # no batch statistics: an image's logits do not depend on the rest of its batch (BatchNorm's would)
    assert torch.allclose(d(x)[:1], d(x[:1]), atol=1e-6)
    g = make_discriminator(32, 4, "global")
    g.train()
    assert not torch.allclose(g(x)[:1], g(torch.cat([x[:1], torch.zeros(2, 3, 32, 32)]))[:1])
    # a patch map of logits is scored like one logit per image
    assert float(losses.gan_generator_loss(torch.ones(3, 1, 4, 4))) == 0.0
    with pytest.raises(ValueError, match="patch"):
        make_discriminator(32, 4, "wide")


def test_kl_is_zero_for_a_standard_normal_posterior_and_positive_otherwise():
    mu, logvar = torch.zeros(4, 5), torch.zeros(4, 5)
    assert float(losses.kl_divergence(mu, logvar)) == 0.0
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension: 5 dims -> 2.5
    assert float(losses.kl_divergence(torch.ones(4, 5), logvar)) == pytest.approx(2.5)
    # a latent map: summed over every element (2 x 3 x 3 = 18 elements of KL 1/2)
    assert float(losses.kl_divergence(torch.ones(4, 2, 3, 3), torch.zeros(4, 2, 3, 3))) == pytest.approx(9.0)


def test_cycle_and_reconstruction_losses():
    x = torch.rand(2, 3, 8, 8)
    assert float(losses.cycle_loss(x, x.clone())) == 0.0
    assert float(losses.cycle_loss(x, x + 0.25)) == pytest.approx(0.25)
    assert float(losses.reconstruction_loss(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2))) == 1.0


def test_gan_losses_lsgan_and_bce():
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert float(losses.gan_generator_loss(ones, "lsgan")) == 0.0
    assert float(losses.gan_generator_loss(zeros, "lsgan")) == 1.0
    assert float(losses.gan_discriminator_loss(ones, zeros, "lsgan")) == 0.0
    assert float(losses.gan_discriminator_loss(zeros, ones, "lsgan")) == 1.0
    assert float(losses.gan_generator_loss(zeros, "bce")) == pytest.approx(np.log(2))
    assert float(losses.gan_discriminator_loss(torch.full((4,), 20.), torch.full((4,), -20.), "bce")) < 1e-6
    with pytest.raises(ValueError, match="lsgan"):
        losses.gan_generator_loss(ones, "wgan")


def test_similarity_losses():
    x = torch.rand(2, 3, 32, 32)
    assert float(losses.colour_statistics_distance(x, x)) == 0.0
    # a constant shift of 0.1 in every channel: mean differences 0.1 each, stds equal -> 3 * 0.01
    assert float(losses.colour_statistics_distance(x, x + 0.1)) == pytest.approx(0.03, rel=1e-4)
    perceptual = losses.make_similarity("perceptual", OPTIONS["metric"])
    assert float(perceptual(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(perceptual(x, x.flip(-1))) > 0
    y = x.clone().requires_grad_(True)
    perceptual(x, y).backward()  # the metric passes gradients to the translation
    assert y.grad is not None


def test_weight_zero_removes_its_term():
    torch.manual_seed(0)
    model = SharedLatentVAEs(32, 8, 4)
    discs = {d: Discriminator(32, 4) for d in "AB"}
    xa, xb = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    full = dict(OPTIONS["losses"])
    terms, fake = losses.translator_terms(model, xa, xb, full, discs, losses.colour_statistics_distance)
    assert set(terms) == set(losses.TERMS) and fake["AB"].shape == xa.shape
    for term in losses.TERMS:
        w = {**full, term: 0.0}
        # the networks a switched-off term needs are not needed at all
        got, _ = losses.translator_terms(model, xa, xb, w, None if term == "gan" else discs,
                                         None if term == "similarity" else losses.colour_statistics_distance)
        assert term not in got and set(got) == set(losses.TERMS) - {term}
    total = losses.weighted_sum({"gan": torch.tensor(2.0), "cycle": torch.tensor(1.0)}, {**full, "similarity": 0})
    assert float(total) == 2.0 * full["gan"] + 1.0 * full["cycle"]


def test_variant_settings_apply_overrides():
    s = variant_settings(OPTIONS, "no_gan")
    assert s["weights"]["gan"] == 0 and s["weights"]["cycle"] == 10.0 and s["similarity_kind"] == "colour"
    assert variant_settings(OPTIONS, "perceptual")["similarity_kind"] == "perceptual"
    assert s["discriminator"] == "patch"  # the section's kind when the variant names none
    with_global = {**OPTIONS, "variants": {"g": {"discriminator": "global"}}}
    assert variant_settings(with_global, "g")["discriminator"] == "global"
    with pytest.raises(KeyError, match="full"):
        variant_settings(OPTIONS, "nope")


def test_domains_dataset(domains):
    ds = ImageDataset(domains, split="train")
    assert ds.class_names == ["circle", "square"] and len(ds) == 16
    labels = ds.labels().numpy()
    assert (labels == 0).sum() == 8 and (labels == 1).sum() == 8
    masks = ds.masks(np.arange(16)).numpy()
    # each image's object is the mask of its own class only
    assert all(masks[i, labels[i]].any() and not masks[i, 1 - labels[i]].any() for i in range(16))
    x = ds.batch(np.arange(16)).permute(0, 2, 3, 1).numpy()
    bg = ds.meta("background").astype(np.float32) / 255
    obj = masks.any(1)
    assert np.allclose(x[~obj], bg[~obj], atol=1 / 255)  # outside the object: the stored clean background


def test_training_resumes_and_refuses_another_config(domains, tmp_path, monkeypatch):
    out = tmp_path / "full"
    _, info = train_translation(domains, out / "model.pt", out / "history.csv", options=OPTIONS, variant="full",
                                seed=0, device="cpu", progress=False)
    assert len(info["seconds_per_epoch"]) == 2 and not (out / "checkpoint.pt").exists()
    hist = pd.read_csv(out / "history.csv")
    assert set(hist["term"]) == {*losses.TERMS, "total", "discriminator"} and hist["epoch"].max() == 2
    fp = ImageDataset(domains).fingerprint
    ref = load_translator(out / "model.pt", OPTIONS, "full", fp, 0)
    # resume: a run stopped after its first epoch's checkpoint, then resumed -> the same as two in a row
    ckpt = tmp_path / "ckpt" / "checkpoint.pt"
    real_save = training.save_checkpoint
    calls = []

    def stop_after_first(path, meta, **state):
        real_save(path, meta, **state)
        calls.append(path)
        if len(calls) == 1:
            raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(training, "save_checkpoint", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_translation(domains, tmp_path / "ckpt" / "model.pt", tmp_path / "ckpt" / "h.csv", options=OPTIONS,
                          variant="full", seed=0, device="cpu", progress=False, checkpoint=ckpt)
    monkeypatch.undo()
    assert ckpt.exists() and not (tmp_path / "ckpt" / "model.pt").exists()
    other = copy.deepcopy(OPTIONS)
    other["model"]["latent_size"] = 16
    with pytest.raises(CheckpointMismatch, match="other settings"):
        train_translation(domains, tmp_path / "ckpt" / "model.pt", tmp_path / "ckpt" / "h.csv", options=other,
                          variant="full", seed=0, device="cpu", progress=False, checkpoint=ckpt)
    resumed, _ = train_translation(domains, tmp_path / "ckpt" / "model.pt", tmp_path / "ckpt" / "h.csv",
                                   options=OPTIONS, variant="full", seed=0, device="cpu", progress=False,
                                   checkpoint=ckpt)
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), k
    assert pd.read_csv(tmp_path / "ckpt" / "h.csv").equals(hist)
    with pytest.raises(CheckpointMismatch):
        load_translator(out / "model.pt", OPTIONS, "no_gan", fp, 0)


def test_scores_on_hand_made_cases():
    a = np.zeros((8, 8), bool)
    a[2:6, 2:6] = True
    b = np.zeros((8, 8), bool)
    b[2:6, 4:8] = True
    assert iou(a, a) == 1.0 and iou(a, b) == pytest.approx(8 / 24)
    red = np.tile([[1.0, 0, 0]], (10, 1))
    blue = np.tile([[0, 0, 1.0]], (10, 1))
    assert colour_hist_distance(red, red) == 0.0
    assert colour_hist_distance(red, blue) == pytest.approx(2 / 3)  # R and B histograms disjoint, G equal
    assert np.isnan(colour_hist_distance(red[:0], red))
    bg = np.zeros((8, 8, 3))
    img = bg.copy()
    img[a] = 0.5
    assert (translated_mask(img, bg, 0.15) == a).all()
    target = ideal_target("circle", 64, 32.0, 32.0, area=400.0, estimate=np.zeros((64, 64), bool))
    assert abs(int(target.sum()) - 400) < 25
    sq = ideal_target("square", 64, 32.0, 32.0, area=400.0, estimate=np.zeros((64, 64), bool))
    assert abs(int(sq.sum()) - 400) < 40
    per_image = pd.DataFrame({"variant": ["v", "v"], "image": [0, 1], "target_shape_rate": [1.0, 0.0],
                              "neither_rate": [0.0, 0.0],
                              "mask_iou": [0.5, 0.7], "colour_hist_distance": [0.1, 0.3],
                              "perceptual_distance": [0.0, 0.2], "background_change": [0.0, 0.0]})
    t = summarize(per_image).set_index("score")
    assert t.loc["target_shape_rate", "mean"] == 0.5 and t.loc["mask_iou", "mean"] == pytest.approx(0.6)
    assert (t["n"] == 2).all()


class _FixedJudge(torch.nn.Module):
    """Calls every image B (the judge's class 1)."""

    def forward(self, x):
        return (torch.tensor([[0.0, 5.0, 0.0]]).expand(len(x), 3),)


def test_without_ground_truth_only_the_judges_scores_exist_not_nan_columns():
    """A downloaded photo set (horse2zebra) has no object masks: the mask-based scores are left out of the
    per-image table and the ablation table instead of being NaN in every row (issue 21)."""
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    kw = dict(judge=_FixedJudge(), device=torch.device("cpu"), dps=None, threshold=0.1)
    bare = score_translations(x, x, masks=None, backgrounds=None, centres=None, target_shape=None, **kw)
    assert list(bare.columns) == ["target_shape_rate", "neither_rate"] and (bare["target_shape_rate"] == 1).all()
    bare.insert(0, "image", range(3))
    bare.insert(0, "variant", "full")
    table = summarize(bare)
    assert set(table["score"]) == set(SCORES) - set(MASK_SCORES) and np.isfinite(table["mean"]).all()
    # with ground truth every score is there, and finite on a non-empty object
    masks = np.zeros((3, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    full = score_translations(x, x, masks=masks, backgrounds=np.zeros((3, 16, 16, 3), np.float32),
                              centres=np.full((3, 2), 8.0), target_shape="circle",
                              **{**kw, "dps": lambda a, b: (a - b).abs().flatten(1).mean(1)})
    assert list(full.columns) == list(SCORES) and np.isfinite(full.to_numpy()).all()


def test_corruptions_on_hand_made_cases():  # the blur they use: tests/test_filters.py
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    for kind in CORRUPTIONS:
        y = corrupt(x, kind, g, other=x.flip(0), background=torch.zeros_like(x))
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
        assert not torch.allclose(y, x, atol=1e-3)
    assert float(corrupt(x, "background", g, background=torch.zeros_like(x)).abs().max()) == 0
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "fog", g)


@pytest.fixture(scope="module")
def circles_triangles(tmp_path_factory):
    path = tmp_path_factory.mktemp("judge") / "translation_shapes.h5"
    make_translation_domains(str(path), shape_a="circle", shape_b="triangle", n_train=48, n_test=16,
                             image_size=32, object_size=[0.6, 0.8], textures=["coffee", "astronaut"],
                             backgrounds=["grass"], seed=5, progress=False)
    return path


def test_judge_calls_blurred_discs_neither_not_triangle(circles_triangles, tmp_path):
    """The 3-way judge (A / B / neither): a blurred disc, the typical failed translation, is not a triangle."""
    opts = {"model": {"width": 8}, "judge": {"epochs": 25, "batch_size": 32, "lr": 0.003}}
    acc = train_judge(circles_triangles, tmp_path / "judge.pt", options=opts, seed=0, device="cpu")
    assert {"test_accuracy", "corrupted_accuracy", *(f"{k}_neither" for k in CORRUPTIONS)} <= set(acc)
    assert all(0 <= v <= 1 for v in acc.values())
    test = ImageDataset(circles_triangles, split="test")
    net, stored = load_judge(tmp_path / "judge.pt", opts, test.fingerprint, 0, torch.device("cpu"))
    assert stored == pytest.approx(acc)
    discs = test.batch(np.flatnonzero(test.labels().numpy() == 0))
    blurred = gaussian_blur(discs, torch.full((len(discs),), 2.5))
    pred = judge_predict(net, blurred, torch.device("cpu"))
    assert int((pred == 1).sum()) == 0  # no blurred disc is called a triangle
    assert float((pred == 2).float().mean()) >= 0.75  # they are "neither"
    sharp = judge_predict(net, test.batch(slice(None)), torch.device("cpu"))
    assert float((sharp != 2).float().mean()) >= 0.75  # while the real images are mostly judged a shape
    with pytest.raises(CheckpointMismatch):
        load_judge(tmp_path / "judge.pt", {**opts, "judge": {**opts["judge"], "epochs": 13}}, test.fingerprint, 0,
                   torch.device("cpu"))


def test_config_checks_name_the_key_and_allowed_values():
    from pathlib import Path

    import yaml

    from percept.config import ConfigError, validate_config

    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    validate_config(copy.deepcopy(base))  # the default is valid

    def error(**changes) -> str:
        cfg = copy.deepcopy(base)
        for key, value in changes.items():
            section, _, sub = key.partition("__")
            if sub:
                cfg["translation"][section][sub] = value
            else:
                cfg["translation"][section] = value
        with pytest.raises(ConfigError) as info:
            validate_config(cfg)
        return str(info.value)

    assert "translation.domains: shape_a and shape_b" in error(domains__shape_b="circle")
    msg = error(dataset="cifar")
    assert "translation.dataset" in msg and "translation_shapes" in msg and "horse2zebra" in msg
    assert "add it to downloads.sources" in error(dataset="horse2zebra")
    assert "translation.folder.path" in error(dataset="unpaired_folder")
    assert "identity" in error(variants={"identity": {}})  # reserved for the untranslated reference
    assert "translation.metric.taps" in error(metric__taps=["no_such_layer"])


def test_epoch_stages_joint_and_staged():
    assert training.epoch_stages({"epochs": 3}) == ["joint"] * 3
    staged = {"epochs": 99, "schedule": "staged", "stage_epochs": [2, 1, 3]}
    assert training.epoch_stages(staged) == ["vae_A", "vae_A", "vae_B", "translate", "translate", "translate"]
    with pytest.raises(ValueError, match="stage_epochs"):
        training.epoch_stages({"epochs": 1, "schedule": "staged", "stage_epochs": [1, 1, 0]})
    with pytest.raises(ValueError, match="schedule"):
        training.epoch_stages({"epochs": 1, "schedule": "sometimes"})


@pytest.mark.parametrize("latent", ["vector", "spatial"])
def test_each_stage_trains_its_parameters(latent):
    """vae_A: A's encoder and decoder with the shared layers; vae_B: B's own layers only (shared frozen, so B
    is encoded into A's latent space); translate: all."""
    model = make_translator(32, latent_size=8, width=4, latent=latent)
    ids = lambda m: {id(p) for p in m.parameters()}  # noqa: E731
    shared = training.shared_parameter_ids(model)
    assert shared and shared <= ids(model.encoders["A"]) | ids(model.decoders["A"])
    a = ids(model.encoders["A"]) | ids(model.decoders["A"])
    b_own = (ids(model.encoders["B"]) | ids(model.decoders["B"])) - shared
    assert training.stage_trainable(model, "vae_A") == a
    assert training.stage_trainable(model, "vae_B") == b_own and not (b_own & a)
    assert training.stage_trainable(model, "translate") == ids(model) == training.stage_trainable(model, "joint")


def test_staged_training_moves_only_each_stages_parameters_and_resumes_across_stages(domains, tmp_path,
                                                                                  monkeypatch):
    opts = copy.deepcopy(OPTIONS)
    opts["train"].update(schedule="staged", stage_epochs=[1, 1, 1])
    snaps = []
    real_save = training.save_checkpoint

    def record(path, meta, **state):
        real_save(path, meta, **state)
        if "opt_g" in state:  # a per-epoch checkpoint
            snaps.append({k: v.clone() for k, v in state["model"].items()})

    monkeypatch.setattr(training, "save_checkpoint", record)
    model, info = train_translation(domains, tmp_path / "s" / "model.pt", tmp_path / "s" / "h.csv", options=opts,
                                    variant="full", seed=0, device="cpu", progress=False)
    monkeypatch.undo()
    assert info["stages"] == ["vae_A", "vae_B", "translate"] and len(snaps) == 3
    torch.manual_seed(0)  # build() seeds with the run's seed before making the translator
    init = make_translator(32, **opts["model"]).state_dict()
    names = {id(p): n for n, p in model.named_parameters()}
    a = {names[i] for i in training.stage_trainable(model, "vae_A")}
    b = {names[i] for i in training.stage_trainable(model, "vae_B")}
    moved = lambda s0, s1: {k for k in s1 if k in names.values() and not torch.equal(s0[k], s1[k])}  # noqa: E731
    assert moved(init, snaps[0]) and moved(init, snaps[0]) <= a
    assert moved(snaps[0], snaps[1]) and moved(snaps[0], snaps[1]) <= b
    assert moved(snaps[1], snaps[2]) & a and moved(snaps[1], snaps[2]) & b  # stage 3 trains both
    hist = pd.read_csv(tmp_path / "s" / "h.csv")
    assert set(hist[hist.epoch <= 2]["term"]) == {"reconstruction", "kl", "total"}
    assert "discriminator" in set(hist[hist.epoch == 3]["term"])

    # killed after stage 2's checkpoint, resumed: the same weights as the uninterrupted run
    ckpt, calls = tmp_path / "r" / "checkpoint.pt", []

    def stop_after_two(path, meta, **state):
        real_save(path, meta, **state)
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        train_translation(domains, tmp_path / "r" / "model.pt", tmp_path / "r" / "h.csv", options=opts,
                          variant="full", seed=0, device="cpu", progress=False, checkpoint=ckpt)
    monkeypatch.undo()
    joint = copy.deepcopy(OPTIONS)
    with pytest.raises(CheckpointMismatch):  # a joint run refuses the staged checkpoint
        train_translation(domains, tmp_path / "r" / "model.pt", tmp_path / "r" / "h.csv", options=joint,
                          variant="full", seed=0, device="cpu", progress=False, checkpoint=ckpt)
    resumed, _ = train_translation(domains, tmp_path / "r" / "model.pt", tmp_path / "r" / "h.csv", options=opts,
                                   variant="full", seed=0, device="cpu", progress=False, checkpoint=ckpt)
    for (k, x), y in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-5), k
