"""Perceptual autoencoders and the loss-network grid: the three losses on tiny tensors, the models' shapes,
checkpoints (resume, refusal), the predictors and their metrics, the grid's task scores and analysis, and
the config checks of the autoencoders / loss_networks sections."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from percept import backbones
from percept.autoencoders.losses import (LossNetwork, PerceptualLoss, feature_prediction_loss, kl_divergence,
                                         pixel_loss)
from percept.autoencoders.models import Autoencoder, Decoder, Encoder, Segmenter, SuperResolver
from percept.autoencoders.predictors import (Target, evaluate_embeddings, make_predictor, predictor_name,
                                             train_predictor)
from percept.autoencoders.training import cached_targets, fit, train_autoencoder
from percept.config import ConfigError, validate_config
from percept.data.embedded import make_shapes
from percept.data.store import ImageDataset
from percept.features import TapExtractor, cache_features, prepare_input
from percept.loss_networks import analysis
from percept.loss_networks.registry import TASKS
from percept.loss_networks.tasks import majority, perceptual_similarity, psnr, segmentation_scores, sr_scores
from percept.plan import Plan, grid_cells

from conftest import REPO, TINY

LITE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ae") / "shapes.h5"
    make_shapes(str(path), n_train=24, n_test=8, image_size=32, classes=["circle", "square", "star"],
                objects_per_image=[1, 2], object_size=[0.3, 0.5], backgrounds=["brick"], seed=0, progress=False)
    return path


@pytest.fixture(scope="module")
def cache(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("ae-features") / "lite0-random.h5"
    cache_features(shapes, out, LITE, ["_blocks.0", "_blocks.7"], weights="random", seed=3, batch_size=5,
                   device="cpu", progress=False)
    return out


NET = {"backbone": LITE, "weights": "random", "tap": "_blocks.0", "resize": None}
OPTIONS = {"width": 4, "variational": True, "kl_weight": 1e-3, "epochs": 2, "batch_size": 8, "lr": 1e-3,
           "max_train": None, "loss_network": NET}


# -- losses on tiny tensors -----------------------------------------------------------------------------------
def test_pixel_loss_is_the_mean_squared_error():
    a, b = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    b[0, 0, 0, 0] = 2.0  # one element off by 2 among 96 → 4 / 96
    assert pixel_loss(a, b).item() == pytest.approx(4 / 96)
    assert pixel_loss(a, a).item() == 0


def test_kl_divergence_hand_values():
    assert kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)).item() == 0  # q = prior
    # mu = 1, var = 1: 0.5 * mu^2 per dimension, summed over 5 dimensions
    assert kl_divergence(torch.ones(3, 5), torch.zeros(3, 5)).item() == pytest.approx(2.5)
    # var = e: 0.5 * (e - 1 - 1) per dimension
    assert kl_divergence(torch.zeros(1, 2), torch.ones(1, 2)).item() == pytest.approx(math.e - 2)
    assert kl_divergence(torch.ones(2, 2), None).item() == 0  # deterministic encoder


def test_feature_prediction_loss_is_zero_when_the_decoder_outputs_the_cached_targets(shapes, cache):
    ds = ImageDataset(shapes, split="train")
    targets = cached_targets(cache, ds, NET, seed=3)
    spec = backbones.get(LITE)
    with torch.inference_mode():  # the cache holds exactly the loss network's features of the inputs
        direct = TapExtractor(spec.build("random", seed=3), ["_blocks.0"])(prepare_input(ds.batch(slice(0, 24)), spec,
                                                                                          None))
    assert torch.allclose(targets, direct["_blocks.0"], atol=1e-5)
    assert feature_prediction_loss(targets.clone(), targets).item() == 0
    off = targets.clone()
    off[0].add_(1.0)
    assert feature_prediction_loss(off, targets).item() == pytest.approx(1 / len(targets), rel=1e-4)


def test_cached_targets_refuse_another_loss_network(shapes, cache):
    from percept.h5io import CacheError

    ds = ImageDataset(shapes, split="train")
    with pytest.raises(CacheError, match="weights_seed"):
        cached_targets(cache, ds, NET, seed=4)  # the cache was made with seed 3
    with pytest.raises(CacheError, match="not cached"):
        cached_targets(cache, ds, {**NET, "tap": "_stem_act"}, seed=3)


def test_perceptual_loss_compares_loss_network_features():
    net = LossNetwork(LITE, "_blocks.0", "random", seed=0)
    loss = PerceptualLoss(net)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    assert loss(x, x).item() == 0
    with torch.no_grad():
        want = torch.mean((net(x) - net(y)) ** 2)
    assert loss(x, y).item() == pytest.approx(want.item(), rel=1e-5) and want > 0
    y.requires_grad_(True)
    loss(y, x).backward()  # gradients reach the output image, never the frozen network
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    net.train()
    assert not net.extractor.training  # the loss network stays in eval mode


# -- models ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 96, 96), (80, 6, 6), (320, 3, 3), (16, 47, 47), (8, 1, 1)])
def test_decoder_outputs_the_target_shape(shape):
    dec = Decoder(16, shape, width=4)
    assert dec(torch.zeros(2, 16)).shape == (2, *shape)


def test_encoder_and_autoencoder_shapes():
    enc = Encoder(96, 12, width=4, variational=True)
    mu, logvar = enc(torch.rand(3, 3, 96, 96))
    assert mu.shape == logvar.shape == (3, 12)
    ae = Autoencoder(64, 12, (3, 64, 64), width=4, variational=False).eval()
    out, mu, logvar = ae(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 3, 64, 64) and logvar is None and 0 <= out.min() and out.max() <= 1
    assert SuperResolver(4, 4)(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
    assert Segmenter(4)(torch.rand(1, 3, 30, 30)).shape == (1, 1, 30, 30)


# -- checkpoints ----------------------------------------------------------------------------------------------
def _toy(tmp_path, epochs, ckpt="c.pt"):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(10, 3)
    y = x.sum(1, keepdim=True)

    def step(idx):
        return torch.mean((model(x[idx]) - y[idx]) ** 2)

    hist = fit(model, step, 10, epochs=epochs, batch_size=4, lr=0.05, seed=1, checkpoint=tmp_path / ckpt,
               meta={"what": "toy"}, progress=False)
    return model, hist


def test_training_resumes_from_its_checkpoint_and_equals_an_uninterrupted_run(tmp_path):
    full, hist_full = _toy(tmp_path, 4, "full.pt")
    _toy(tmp_path, 2, "part.pt")  # "interrupted" after 2 epochs …
    resumed, hist = _toy(tmp_path, 4, "part.pt")  # … and resumed to 4
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert torch.allclose(full.weight, resumed.weight) and hist[-1]["loss"] == pytest.approx(hist_full[-1]["loss"])


def test_train_autoencoder_each_procedure_lowers_its_loss(shapes, tmp_path):
    """Each of the six ICPR procedures trains: its loss falls well below the first epoch's (a loss that
    ignores the output, e.g. a perceptual loss comparing the input with itself, stays flat and fails)."""
    from percept.autoencoders import LOSSES

    opts = {**OPTIONS, "epochs": 4, "lr": 3e-3, "variational": False}
    for loss in LOSSES:
        model, hist, info = train_autoencoder(shapes, tmp_path / f"{loss}.pt", loss=loss, embedding_size=4,
                                              options=opts, seed=3, device="cpu", progress=False)
        assert len(hist) == 4 and all(np.isfinite(h["loss"]) for h in hist)
        assert hist[-1]["loss"] < 0.8 * hist[0]["loss"], (loss, hist)
        assert not (tmp_path / f"{loss}.pt.partial").exists() and (tmp_path / f"{loss}.pt").exists()
        assert info["train_split"] == "train"  # shapes has no unlabelled split


def test_feature_prediction_targets_online_precomputed_and_cached_agree(shapes, cache, tmp_path, monkeypatch):
    """The paper's setting (the loss network on every batch) and this project's two faster variants train the
    same model: same targets, same seeded steps, same losses. The MLP decoder predicts the flattened features."""
    base = {**OPTIONS, "loss_network": {**NET, "input": "imagenet", "sigmoid": True}}
    runs = {}
    for mode in ("online", "precomputed", "feature_cache"):
        model, hist, info = train_autoencoder(shapes, tmp_path / f"{mode}.pt", loss="feature_prediction",
                                              embedding_size=4, options={**base, "targets": mode},
                                              feature_cache=str(cache), seed=3, device="cpu", progress=False)
        runs[mode] = [h["loss"] for h in hist]
        assert info["targets"] == mode
    assert model.decoder.out_shape == (16, 16, 16)  # _blocks.0 of Lite0 at 32x32: 16 channels, stride 2
    assert [m.out_features for m in model.decoder.net if isinstance(m, torch.nn.Linear)] == [2048, 4096]
    np.testing.assert_allclose(runs["precomputed"], runs["online"], rtol=1e-4)
    np.testing.assert_allclose(runs["feature_cache"], runs["online"], rtol=1e-4)


def test_online_feature_prediction_times_the_precomputed_variant_too(shapes, tmp_path):
    opts = {**OPTIONS, "epochs": 1, "time_precomputed": True}
    _, _, info = train_autoencoder(shapes, tmp_path / "fp.pt", loss="feature_prediction", embedding_size=4,
                                   options=opts, seed=3, device="cpu", progress=False)
    assert info["precomputed_epoch_seconds"] > 0 and info["precompute_seconds"] > 0


# -- fidelity: numbers recorded from the authors' code --------------------------------------------------------
# guspih/Perceptual-Autoencoders @ e498bc8f6ca9c2548a4899e74685daf4aff81f53, run outside the project with a
# seeded random AlexNet (percept's ``build('random', seed=0)``, saved as the hub checkpoint their
# ``models.alexnet(pretrained=True)`` loads, since no ImageNet file is offline):
#   perceptual_networks.SimpleExtractor('alexnet', 5) on torch.rand(2, 3, 64, 64) (generator seed 0):
#   shape (2, 9408), sum 9768.305033385754, sum of squares 5086.310653207633, f[0, 1000:1004] below.
#   VAE.FourLayerCVAE(...).loss KLD on mu = randn(4, 8), logvar = 0.5 randn(4, 8) (the same generator next):
#   1.0854910612106323.  perceptual_embedder.FeaturePredictorCVAE(z 32, that extractor).decoder: Linear(32, 2048),
#   Linear(2048, 9408).  experiment.main: predictors [[], [32], [64], [32, 32], [64, 32], [64, 64], [128, 128]],
#   utility.fc_net with nn.LeakyReLU (slope 0.01) and no output activation.
def _fixed_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    mu = torch.randn(4, 8, generator=g)
    logvar = torch.randn(4, 8, generator=g) * 0.5
    return x, mu, logvar


def test_loss_network_matches_the_authors_simple_extractor():
    """Unnormalised [0, 1] input, AlexNet's first five modules (tap features.4), a sigmoid on the features."""
    x, _, _ = _fixed_inputs()
    net = LossNetwork("alexnet", "features.4", "random", seed=0, input="unit", sigmoid=True)
    with torch.no_grad():
        f = net(x).flatten(1).double()
    assert tuple(f.shape) == (2, 9408)
    np.testing.assert_allclose([f.sum().item(), f.pow(2).sum().item()], [9768.305033385754, 5086.310653207633],
                               rtol=1e-5)
    np.testing.assert_allclose(f[0, 1000:1004].numpy(), [0.5249950289726257, 0.5305707454681396,
                                                         0.5196263790130615, 0.5388308167457581], rtol=1e-5)


def test_autoencoder_stage_defaults_are_the_papers_loss_network():
    from percept.autoencoders.training import loss_network_options

    net = loss_network_options({"loss_network": {"backbone": "alexnet", "tap": "features.4"}})
    assert net["input"] == "unit" and net["sigmoid"] is True
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())["autoencoders"]
    assert cfg["loss_network"]["tap"] == "features.4" and cfg["kl_reduction"] == "mean"
    assert cfg["targets"] == "online" and cfg["train_split"] == "auto" and len(cfg["losses"]) == 6


def test_kl_mean_matches_the_authors_and_sum_is_z_over_two_times_it():
    _, mu, logvar = _fixed_inputs()
    np.testing.assert_allclose(kl_divergence(mu, logvar, "mean").item(), 1.0854910612106323, rtol=1e-5)
    np.testing.assert_allclose(kl_divergence(mu, logvar, "sum").item(), 4 * 1.0854910612106323, rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        kl_divergence(mu, logvar, "max")


def test_feature_decoder_and_predictors_are_the_papers():
    from percept.autoencoders.models import FeatureDecoder, FeatureEncoder
    from percept.autoencoders.predictors import make_predictor

    dec = FeatureDecoder(32, (192, 7, 7))  # AlexNet features.4 at 64x64: 9408 features
    assert [(m.in_features, m.out_features) for m in dec.net if isinstance(m, torch.nn.Linear)] == [(32, 2048),
                                                                                                  (2048, 9408)]
    assert dec(torch.zeros(2, 32)).shape == (2, 192, 7, 7)
    enc = FeatureEncoder((8, 4, 4), 5, variational=True)  # n = 128 → hidden min(64, 2048)
    assert enc.body[0].out_features == 64 and enc(torch.zeros(3, 8, 4, 4))[0].shape == (3, 5)
    p = make_predictor(32, 10, [64, 32])
    kinds = [type(m).__name__ for m in p]
    assert kinds == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"] and p[1].negative_slope == 0.01


PAPERS_PREDICTORS = [[], [32], [64], [32, 32], [64, 32], [64, 64], [128, 128]]  # guspih experiment.main (above)


def _minimal_config():
    """The smallest valid config with both stages on, every other key filled from the schema by percept.config."""
    return validate_config({"seed": 1, "datasets": {"shapes": {"n_train": 1, "n_test": 1, "image_size": 32},
                                                    "photos": {"crop_size": 32, "crops_per_photo": 1}},
                            "features": [], "autoencoders": {"datasets": ["shapes"]},
                            "loss_networks": {"networks": [{"backbone": LITE}],
                                              "tasks": {"dimensionality_reduction": {}}}})


def test_default_predictors_are_the_papers_seven_leaky_relu_mlps_with_mse_on_one_hot():
    cfg = _minimal_config()
    grid = cfg["loss_networks"]["tasks"]["dimensionality_reduction"]["predictors"]
    for pred in (cfg["autoencoders"]["predictors"], grid):
        assert pred["hidden"] == PAPERS_PREDICTORS
        p = make_predictor(8, 3, pred["hidden"][-1], pred["activation"])
        assert [type(m).__name__ for m in p] == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]
        y = torch.tensor([2, 0])
        out = torch.tensor([[0.1, 0.0, 0.7], [0.5, 0.2, 0.0]])
        loss = Target("classification", y, "single", pred["classification_loss"]).loss(out, y)
        assert loss.item() == pytest.approx(F.mse_loss(out, F.one_hot(y, 3).float()).item())


def test_grid_dimensionality_reduction_defaults_to_the_grid_papers_procedure(monkeypatch, shapes, tmp_path):
    """The cell's autoencoder (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks
    src/perceptual_autoencoders/experiment.py defaults): perceptual loss, γ = 0 (not variational), the loss
    network's input unnormalised and its features raw (SimpleExtractor → FeatureExtractor(normalize_in=False),
    no sigmoid), judged by the seven predictors — as the cell passes them to train_autoencoder."""
    from percept.autoencoders import training
    from percept.autoencoders.training import loss_network_options
    from percept.loss_networks.tasks import dimensionality_reduction

    seen = {}

    def stop(dataset, model_path, *, loss, embedding_size, options, **kwargs):
        seen.update(loss=loss, options=options)
        raise _Built

    monkeypatch.setattr(training, "train_autoencoder", stop)
    options = _minimal_config()["loss_networks"]["tasks"]["dimensionality_reduction"]
    cell = {"backbone": LITE, "weights": "random", "tap": "_blocks.7", "resize": None, "network": LITE,
            "dataset": "shapes"}
    with pytest.raises(_Built):
        dimensionality_reduction({"dataset": str(shapes)}, cell, options, work=str(tmp_path / "dr.csv"),
                                 device="cpu", progress=False)
    opts = seen["options"]
    net = loss_network_options(opts)
    assert seen["loss"] == "perceptual" and opts["variational"] is False and opts["kl_weight"] == 0
    assert (net["input"], net["sigmoid"], net["tap"]) == ("unit", False, "_blocks.7")
    assert opts["predictors"]["hidden"] == PAPERS_PREDICTORS


# grid paper (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks @
# 72582302672b058efd366983e21c3141c7a4a8c2, src/loss_networks.py architecture_attributes): the
# layers_in_experiments child indices of every torchvision network used in the experiments.
LTU_LAYERS = {"alexnet": ("features", [1, 4, 7, 11]), "vgg11": ("features", [1, 4, 9, 19]),
              "vgg16": ("features", [3, 8, 15, 29]), "vgg16_bn": ("features", [5, 12, 22, 42]),
              "vgg19": ("features", [3, 8, 17, 35]), "densenet121": ("features", [2, 4, 6, 10]),
              "resnet18": (None, [2, 4, 5, 7]), "resnet50": (None, [2, 4, 5, 7]),
              "googlenet": (None, [0, 5, 8, 15]), "inception_v3": (None, [2, 7, 9, 14]),
              "squeezenet1_1": ("features", [1, 3, 7, 12]), "resnext50_32x4d": (None, [2, 4, 5, 7]),
              "efficientnet_b0": ("features", [0, 1, 4, 7]), "efficientnet_b7": ("features", [0, 1, 4, 7])}


@pytest.mark.parametrize("name", sorted(LTU_LAYERS))
def test_registry_taps_are_the_grid_papers_child_indices(name):
    import torchvision

    attr, indices = LTU_LAYERS[name]
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    parent = getattr(model, attr) if attr else model
    names = [n for n, _ in parent.named_children()]
    want = tuple((f"{attr}." if attr else "") + names[i] for i in indices)
    assert backbones.get(name).taps == want


def test_resnet50_and_resnext50_weights_are_the_papers_v1():
    assert backbones.get("resnet50").weights_name.endswith("IMAGENET1K_V1")
    assert backbones.get("resnext50_32x4d").weights_name.endswith("IMAGENET1K_V1")
    assert (backbones.get("resnet50").imagenet_acc1, backbones.get("resnext50_32x4d").imagenet_acc1) == (76.13, 77.618)


# -- predictors -----------------------------------------------------------------------------------------------
def test_predictor_names():
    assert predictor_name([]) == "linear" and predictor_name([64]) == "mlp64" and predictor_name([8, 4]) == "mlp8x4"


def test_position_error_is_the_mean_distance_over_present_objects():
    y = torch.tensor([[[0.5, 0.5], [float("nan"), float("nan")]], [[0.1, 0.2], [0.9, 0.9]]])
    out = (torch.nan_to_num(y) + torch.tensor([0.3, 0.4])).view(2, 4)  # every present object off by 0.5
    t = Target("position", y)
    assert t.metric(out, y) == pytest.approx(0.5)
    assert torch.isfinite(t.loss(out, y)) and t.loss(out, y).item() == pytest.approx((0.09 + 0.16) / 2)


def test_multilabel_metrics_hand_case():
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    out = torch.tensor([[2.0, -1.0], [2.0, -0.5], [-1.0, -2.0]])  # the second image misses its second label
    m = Target("classification", y, "multi").metrics(out, y)
    assert m["accuracy"] == pytest.approx(5 / 6)  # 5 of the 6 (image, class) decisions right: the headline
    assert Target("classification", y, "multi").metric(out, y) == m["accuracy"]
    assert m["exact_match"] == pytest.approx(2 / 3)
    # AP class 0: positives ranked 1st and 2nd -> 1; class 1: the one positive (score -0.5) ranked 1st -> 1
    assert m["mean_ap"] == pytest.approx(1.0)
    out[1, 1] = -3.0  # now ranked last of three: precision 1/3 at its rank
    assert Target("classification", y, "multi").metrics(out, y)["mean_ap"] == pytest.approx((1 + 1 / 3) / 2)


def test_single_label_accuracy_is_top1():
    y = torch.tensor([2, 0, 1])
    out = torch.tensor([[0.0, 0.1, 0.9], [0.5, 0.2, 0.1], [0.9, 0.0, 0.1]])
    assert Target("classification", y, "single").metrics(out, y) == {"accuracy": pytest.approx(2 / 3)}


def test_constant_predictor_is_the_chance_level():
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # class frequencies 3/4 and 1/4
    t = Target("classification", y, "multi", "cross_entropy")
    const = t.constant_output(y)
    assert const.tolist() == pytest.approx([math.log(3), -math.log(3)], abs=1e-5)
    assert t.metrics(const.expand(4, -1), y)["accuracy"] == pytest.approx(6 / 8)  # the majority answer per class
    mse = Target("classification", y, "multi")  # the papers' MSE on one-hot: the constant is the frequencies
    assert mse.constant_output(y).tolist() == pytest.approx([0.75, 0.25])
    assert mse.metrics(mse.constant_output(y).expand(4, -1), y)["accuracy"] == pytest.approx(6 / 8)
    pos = torch.tensor([[[0.2, 0.4]], [[float("nan"), float("nan")]], [[0.4, 0.8]]])
    assert Target("position", pos).constant_output(pos).tolist() == pytest.approx([0.3, 0.6])


def test_a_predictor_starts_as_the_constant_predictor():
    """An output layer initialised as the train prior: with a vanishing step the predictor is the chance level
    (not a random projection of the embedding that early stopping may never undo)."""
    pos = torch.rand(40, 2, 2)
    t = Target("position", pos)
    x = torch.randn(40, 16) * 3
    train, val = np.arange(30), np.arange(30, 40)
    model, _ = train_predictor(x, t, train, val, [8], seed=0, epochs=1, lr=1e-12, weight_decay=0.0,
                               batch_size=10, patience=1)
    with torch.inference_mode():
        out = model(x)
    assert torch.allclose(out, t.constant_output(pos[:30]).expand(40, -1), atol=1e-6)


def test_predictors_learn_a_separable_embedding(shapes):
    ds = ImageDataset(shapes)
    labels = ds.labels().numpy()
    pos = np.nan_to_num(ds.positions().numpy()).reshape(len(ds), -1)
    emb = np.concatenate([labels * 4, pos * 4], 1) + np.random.default_rng(0).normal(0, 0.01, (len(ds), 9))
    assert len(ds) == 32
    codes = np.r_[np.zeros(24), np.ones(8)].astype(np.uint8)
    opts = {"val_fraction": 0.25, "epochs": 300, "lr": 0.05, "weight_decay": 0.0, "batch_size": 18, "patience": 300}
    runs = evaluate_embeddings(emb, ds, codes, [[]], [0, 1], opts)
    assert set(runs["task"]) == {"classification", "position"} and len(runs) == 8  # 3 + 1 metrics, 2 seeds
    assert set(runs["metric"]) == {"accuracy", "exact_match", "mean_ap", "position_error"}
    assert (runs[runs.task == "classification"]["value"] == 1.0).all()
    assert (runs.loc[runs.metric == "position_error", "chance"] > 0.15).all()  # the mean position's error
    assert (runs[runs.task == "position"]["value"] < 0.2).all()  # guessing the centre: ~0.3
    assert (runs["test_size"] == 8).all() and (runs["train_size"] == 18).all()


# -- grid tasks and analysis ----------------------------------------------------------------------------------
def test_segmentation_scores_hand_case():
    truth = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    prob = torch.tensor([[0.9, 0.2, 0.8, 0.1]])  # TP 1, FN 1, FP 1
    s = segmentation_scores(prob, truth)
    assert s == {"iou": pytest.approx(1 / 3), "completeness": 0.5, "correctness": 0.5}


# grid paper (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks @
# 72582302672b058efd366983e21c3141c7a4a8c2, src/topology_aware_delineation/train.py
# Training_Utility.iteration_loss with nn.BCELoss / nn.MSELoss as main.py passes them, K = 1, FNN_CNN_Net('vgg19',
# [3]) (main.py's defaults; select_FNN replaced by torch.manual_seed(0); torchvision vgg19() since the ImageNet
# weights are offline here), then epoch_in_train's current_prediction_loss + mu * current_VGG_loss, mu = 0.01),
# run in /tmp with /work/venv's python on the inputs of _segmentation_inputs: (prediction loss, VGG loss, total).
LTU_SEGMENTATION_LOSS = (0.8028831481933594, 0.1286066621541977, 0.804169237613678)


def _segmentation_inputs():
    g = torch.Generator().manual_seed(0)
    prob = torch.sigmoid(torch.randn(2, 1, 64, 64, generator=g))
    mask = (torch.rand(2, 1, 64, 64, generator=g) > 0.8).float()
    return prob, mask


def test_segmentation_loss_is_the_grid_papers_bce_plus_mu_perceptual():
    from percept.loss_networks.tasks import segmentation_loss

    prob, mask = _segmentation_inputs()
    perceptual = PerceptualLoss(LossNetwork("vgg19", "features.3", "random", seed=0))  # ImageNet-normalised, raw
    bce, vgg, total = LTU_SEGMENTATION_LOSS
    with torch.no_grad():
        np.testing.assert_allclose(segmentation_loss(prob, mask, perceptual).item(), total, rtol=1e-5)
        np.testing.assert_allclose(segmentation_loss(prob, mask, perceptual, 1.0, 0.0).item(), bce, rtol=1e-5)
        np.testing.assert_allclose(segmentation_loss(prob, mask, perceptual, 0.0, 1.0).item(), vgg, rtol=1e-5)


# grid paper (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks @
# 72582302672b058efd366983e21c3141c7a4a8c2, src/super_res/train.py main() and train_epoch: the loss network
# FeatureExtractor('alexnet', [4], pretrained=True, frozen=True, normalize_in=False) of src/loss_networks.py (test.py
# builds the same) and src/super_res/main_utils.py calc_Content_Loss(output_features, target_features)), run in
# /tmp with /work/venv's python on a seeded random AlexNet (percept's build('random', seed=0), saved as the hub
# checkpoint their pretrained=True loads) and the inputs of _sr_inputs: the loss, then the target's features:
# sum, sum of squares, [0, 1000:1004]. With normalize_in=True the same run gives the loss 0.037020206451416016.
LTU_SR_LOSS = 0.001779635320417583
LTU_SR_TARGET_FEATURES = (1450.884360656014, 359.72600772269686,
                          [0.10006342828273773, 0.1224357858300209, 0.0785459578037262, 0.155636727809906])


def _sr_inputs():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 64, 64, generator=g)
    return torch.rand(2, 3, 64, 64, generator=g), target  # (output, target)


class _Built(Exception):
    """Stops a grid cell once its loss is built (raised from a patched fit)."""


def _cell_perceptual_loss(monkeypatch, runner, shapes, tmp_path, options):
    """The PerceptualLoss a grid cell builds from its options (AlexNet features.4, seeded random weights)."""
    from percept.loss_networks import tasks

    built = []

    class Recording(PerceptualLoss):
        def __init__(self, network):
            super().__init__(network)
            built.append(self)

    def stop(*args, **kwargs):
        raise _Built

    monkeypatch.setattr(tasks, "PerceptualLoss", Recording)
    monkeypatch.setattr(tasks, "fit", stop)
    cell = {"backbone": "alexnet", "weights": "random", "tap": "features.4", "resize": None, "network": "alexnet",
            "dataset": "shapes"}
    with pytest.raises(_Built):
        runner({"dataset": str(shapes)}, cell, options, work=str(tmp_path / "cell.csv"), device="cpu", progress=False)
    return built[0]


def test_grid_task_loss_networks_take_the_grid_papers_input(monkeypatch, shapes, tmp_path):
    """Super-resolution: unnormalised [0, 1] input and raw features by default, the grid paper's
    normalize_in=False (numbers from its code above); segmentation: ImageNet-normalised (its FNN_CNN_Net).
    The options are the tiny config's, filled with the schema's defaults."""
    from percept.loss_networks.tasks import segmentation, super_resolution

    tasks = validate_config(yaml.safe_load(TINY.read_text()))["loss_networks"]["tasks"]
    assert tasks["super_resolution"]["input"] == "unit" and tasks["segmentation"]["input"] == "imagenet"
    loss = _cell_perceptual_loss(monkeypatch, super_resolution, shapes, tmp_path, tasks["super_resolution"])
    output, target = _sr_inputs()
    with torch.no_grad():
        np.testing.assert_allclose(loss(output, target).item(), LTU_SR_LOSS, rtol=1e-5)
        f = loss.network(target).flatten(1).double()
    total, squares, head = LTU_SR_TARGET_FEATURES
    np.testing.assert_allclose([f.sum().item(), f.pow(2).sum().item()], [total, squares], rtol=1e-5)
    np.testing.assert_allclose(f[0, 1000:1004].numpy(), head, rtol=1e-5)
    seg = _cell_perceptual_loss(monkeypatch, segmentation, shapes, tmp_path, tasks["segmentation"])
    assert seg.network.normalize and not seg.network.sigmoid
    earlier = _cell_perceptual_loss(monkeypatch, super_resolution, shapes, tmp_path,
                                 {**tasks["super_resolution"], "input": "imagenet"})
    assert earlier.network.normalize  # the named option keeps the earlier input


def test_super_resolution_scores_each_benchmark_split(shapes, tmp_path):
    """benchmarks: sr_benchmarks adds PSNR / SSIM per split (Set5, Set14, BSD100) beside the test split's."""
    from percept.data.store import write_image_dataset
    from percept.loss_networks.tasks import super_resolution

    rng = np.random.default_rng(0)
    bench = tmp_path / "sr_benchmarks.h5"
    write_image_dataset(bench, name="sr_benchmarks", images=rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
                        split=np.array([0, 0, 1, 2, 2]), split_names=["set5", "set14", "bsd100"], fingerprint="x",
                        source="test")
    cell = {**NET, "network": LITE, "dataset": "shapes"}
    options = {"scale": 4, "width": 4, "pixel_weight": 0.0, "channel": "y", "input": "unit", "epochs": 1,
               "batch_size": 8, "lr": 1e-3, "max_train": 8}
    scores = super_resolution({"dataset": str(shapes), "benchmarks": str(bench)}, cell, options,
                              work=str(tmp_path / "cell.csv"), device="cpu", progress=False)
    for part in ("set5", "set14", "bsd100"):
        assert {f"psnr_{part}", f"ssim_{part}", f"psnr_bilinear_{part}", f"ssim_bilinear_{part}"} <= set(scores)
    assert len({scores["psnr_set5"], scores["psnr_set14"], scores["psnr_bilinear_bsd100"]}) == 3  # per split
    plain = super_resolution({"dataset": str(shapes)}, cell, options, work=str(tmp_path / "c2.csv"), device="cpu",
                             progress=False)
    assert plain["psnr"] == pytest.approx(scores["psnr"]) and "psnr_set5" not in plain


def test_mse_onehot_loss_is_the_papers():
    y = torch.tensor([2, 0])
    out = torch.tensor([[0.0, 0.0, 1.0], [0.5, 0.0, 0.0]])
    t = Target("classification", y, "single")
    assert t.loss(out, y).item() == pytest.approx(0.25 / 6)  # one output off by 0.5 among six
    assert Target("classification", y, "single", "cross_entropy").loss(out, y).item() > 0.5


def test_super_resolution_scores_on_the_y_channel():
    """Y = 16 + 65.481 R + 128.553 G + 24.966 B (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks
    @ 72582302672b058efd366983e21c3141c7a4a8c2 src/super_res/test.py rgb_to_ycbcr; PSNR with max 255)."""
    from percept.loss_networks.tasks import rgb_to_y

    assert rgb_to_y(np.ones((1, 1, 3))).item() == pytest.approx(235.0)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8
    y_diff = 0.1 * (65.481 + 128.553 + 24.966)
    assert sr_scores(x + 0.1, x)["psnr"] == pytest.approx(20 * math.log10(255 / y_diff), rel=1e-6)
    red = x.clone()
    red[:, 0] += 0.1  # only red off: on Y a smaller error than the RGB mean suggests
    assert sr_scores(red, x)["psnr"] == pytest.approx(20 * math.log10(255 / (0.1 * 65.481)), rel=1e-6)
    assert sr_scores(red, x, "rgb")["psnr"] == pytest.approx(10 * math.log10(3 / 0.01), rel=1e-6)


def test_psnr_and_ssim():
    a = np.zeros((4, 4, 3))
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for channel in ("y", "rgb"):
        same = sr_scores(x, x, channel)
        assert same["ssim"] == pytest.approx(1.0) and same["psnr"] == float("inf")
        assert sr_scores((x + 0.2).clamp(0, 1), x, channel)["ssim"] < 0.99


def _scores():
    rows = []
    for net, acc, base in (("a", 70.0, 1.0), ("b", 75.0, 2.0), ("c", 80.0, 3.0), ("r", None, 0.5)):
        for tap in (0, 1):
            rows.append({"task": "super_resolution", "dataset": "shapes", "network": net,
                         "weights": "random" if acc is None else "imagenet", "tap": f"t{tap}", "tap_index": tap,
                         "imagenet_acc1": acc, "metric": "psnr", "value": base + tap, "higher_is_better": True})
    return pd.DataFrame(rows)


def test_ranks_of_networks_and_taps():
    r = analysis.ranks(_scores())
    nets = r[r.factor == "network"].set_index("level")["rank"]
    assert nets.to_dict() == {"a": 3, "b": 2, "c": 1, "r": 4}
    taps = r[r.factor == "tap"].set_index("level")["rank"]
    assert taps.to_dict() == {"0": 2, "1": 1}


def test_correlation_with_imagenet_accuracy_uses_pretrained_networks_only():
    c = analysis.correlations(_scores())
    best = c[c["aggregate"] == "best tap"].iloc[0]
    assert best["networks"] == 3 and best["spearman"] == pytest.approx(1.0) and best["pearson"] == pytest.approx(1.0)


def test_task_registry_and_grid_cells():
    assert set(TASKS) == {"dimensionality_reduction", "super_resolution", "segmentation", "perceptual_similarity"}
    # the grid paper's autoencoder runs its loss network online: no cell reads a feature cache
    assert not TASKS["dimensionality_reduction"].needs_features and not TASKS["segmentation"].needs_features
    assert TASKS["super_resolution"].runner().__name__ == "super_resolution"
    assert TASKS["perceptual_similarity"].two_afc and TASKS["perceptual_similarity"].runner() is perceptual_similarity
    cfg = validate_config(yaml.safe_load(TINY.read_text()))
    cells = grid_cells(cfg)
    assert len(cells) == len(cfg["loss_networks"]["tasks"]) * len(cfg["loss_networks"]["taps"])
    assert {c["tap"] for c in cells} == {"_stem_act", "_blocks.0"}
    # the similarity stage's synthetic 2AFC val set, not an image dataset
    assert {c["dataset"] for c in cells if c["task"] == "perceptual_similarity"} == {"synthetic_2afc_val"}


def test_paper_grid_is_14_networks_by_4_taps():
    from snakemake.utils import update_config

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(base, yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))  # as --configfile merges
    cfg = validate_config(base)
    assert cfg["autoencoders"]["max_train"] is None
    assert cfg["loss_networks"]["tasks"]["segmentation"]["max_train"] is None
    cells = grid_cells(cfg)
    nets = {c["network"] for c in cells}
    # dimensionality reduction on STL-10 and SVHN, super-resolution, segmentation, perceptual similarity
    assert len(cells) == 14 * 4 * 5
    assert {c["dataset"] for c in cells if c["task"] == "perceptual_similarity"} == {"bapps_2afc_val"}
    assert {c["dataset"] for c in cells if c["task"] == "segmentation"} == {"massachusetts_roads"}  # the paper's roads
    assert "massachusetts_roads" in cfg["downloads"]["sources"]
    assert len(nets) == 14 and all(len({c["tap"] for c in cells if c["network"] == n and c["task"] == "segmentation"})
                                   == 4 for n in nets)


# -- config checks --------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_cfg():
    return yaml.safe_load(TINY.read_text())


def test_feature_prediction_without_a_matching_cache_is_refused(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["autoencoders"]["loss_network"]["tap"] = "_blocks.3"  # not among the cached taps
    validate_config(copy.deepcopy(cfg))  # online targets (the paper's) need no cache
    cfg["autoencoders"]["targets"] = "feature_cache"
    with pytest.raises(ConfigError, match=r"autoencoders.loss_network: feature prediction .* tap '_blocks.3'"):
        validate_config(cfg)


def test_feature_cache_targets_with_unnormalised_loss_network_input_are_refused(tiny_cfg, shapes, cache, tmp_path):
    """The feature caches hold features of ImageNet-normalised images (percept.features.cache_features), so
    feature-prediction targets read from one cannot be the features of input: unit (the stage's default)."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg["autoencoders"]["targets"] = "feature_cache"
    cfg["autoencoders"]["loss_network"]["input"] = "imagenet"
    validate_config(copy.deepcopy(cfg))  # the tiny config caches the loss network's tap
    del cfg["autoencoders"]["loss_network"]["input"]  # the default: unit
    with pytest.raises(ConfigError, match=r"autoencoders.targets: feature_cache .*loss_network.input is 'unit'"):
        validate_config(cfg)
    opts = {**OPTIONS, "targets": "feature_cache", "loss_network": {**NET, "input": "unit"}}
    with pytest.raises(ValueError, match="ImageNet-normalised"):
        train_autoencoder(shapes, tmp_path / "fp.pt", loss="feature_prediction", embedding_size=4, options=opts,
                          feature_cache=str(cache), seed=3, device="cpu", progress=False)


def test_unknown_task_and_bad_tap_index_are_refused(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["loss_networks"]["tasks"]["style_transfer"] = {}
    with pytest.raises(ConfigError, match="style_transfer"):
        validate_config(cfg)
    cfg = copy.deepcopy(tiny_cfg)
    cfg["loss_networks"]["taps"] = [0, 7]
    with pytest.raises(ConfigError, match=r"indices \[7\] out of range"):
        validate_config(cfg)


def test_sections_are_optional(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    del cfg["autoencoders"], cfg["loss_networks"]
    cfg = validate_config(cfg)
    assert grid_cells(cfg) == [] and "autoencoders" not in cfg


def test_cell_inputs_read_the_feature_cache_only_for_feature_prediction(tiny_cfg):
    cfg = validate_config(tiny_cfg)
    plan = Plan(cfg)
    wc = ("shapes", "efficientnet_lite0", "_blocks.0")  # the wildcards dataset, network, tap
    assert plan.cell_inputs("dimensionality_reduction", *wc) == {"dataset": "data/datasets/shapes.h5"}
    assert plan.cell_inputs("segmentation", *wc) == {"dataset": "data/datasets/shapes.h5"}
    two_afc = ("synthetic_2afc_val", "efficientnet_lite0", "_blocks.0")
    assert plan.cell_inputs("perceptual_similarity", *two_afc) == {"two_afc": "data/similarity/synthetic_2afc_val.h5"}
    assert plan.cell("perceptual_similarity", *two_afc)["tap_index"] == 1
    cfg["similarity"]["two_afc"]["train"] = "bapps_2afc_train"  # the paper config's BAPPS sets are downloads
    cfg["loss_networks"]["tasks"]["perceptual_similarity"]["two_afc_set"] = "train"
    bapps = ("bapps_2afc_train", "efficientnet_lite0", "_blocks.0")
    assert plan.cell_inputs("perceptual_similarity", *bapps) == {"two_afc": "data/datasets/bapps_2afc_train.h5"}
    assert plan.cell("segmentation", *wc)["tap_index"] == 1
    with pytest.raises(ValueError, match="no loss_networks cell"):
        plan.cell("segmentation", "shapes", "vgg16", "features.3")
    assert plan.autoencoder_targets("shapes", "pixel") == []
    assert plan.autoencoder_targets("shapes", "feature_prediction") == []  # online: no cache
    cfg["autoencoders"]["targets"] = "feature_cache"
    assert plan.autoencoder_targets("shapes", "feature_prediction") == ["data/features/shapes/efficientnet_lite0.h5"]
    assert plan.autoencoder_targets("shapes", "feature_autoencoder") == ["data/features/shapes/efficientnet_lite0.h5"]


# -- perceptual similarity: the tap as an uncalibrated DPS metric on a 2AFC set -------------------------------
@pytest.fixture(scope="module")
def two_afc_set(tmp_path_factory):
    """Three triplets, two categories: p0 = ref (j = 0.2 prefer p1), p1 = ref (j = 0.9), p0 = p1 (j = 0.6)."""
    from percept.data.bapps import write_bapps
    from percept.similarity.distortions import _u8

    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.rand(3, 32, 32, generator=g) for _ in range(3))
    refs, p0s, p1s = torch.stack([a, a, a]), torch.stack([a, b, c]), torch.stack([b, a, c])
    out = tmp_path_factory.mktemp("2afc") / "toy_2afc.h5"
    return write_bapps(out, kind="2afc", name="toy_2afc", split_name="val", fingerprint="toy", source="toy 2AFC",
                       categories=["same-as-p0-or-p1", "tie"], category=np.array([0, 0, 1]),
                       score=np.array([0.2, 0.9, 0.6]), images={"images": _u8(refs), "p0": _u8(p0s), "p1": _u8(p1s)})


def test_majority_judgement():
    assert majority([0.0, 0.2, 0.5, 0.6, 1.0]).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_perceptual_similarity_scores_a_hand_computed_2afc_set(two_afc_set):
    cell = {"network": "lite0", "backbone": LITE, "weights": "random", "tap": "_blocks.0", "tap_index": 1,
            "dataset": "toy_2afc"}
    options = {"two_afc_set": "val", "batch_size": 2, "max_triplets": None}
    scores = perceptual_similarity({"two_afc": str(two_afc_set)}, cell, options, work="unused", seed=3,
                                   device="cpu", progress=False)
    # d(ref, ref) = 0 < d(ref, other): triplet 1 scores 1 - 0.2, triplet 2 scores 0.9; the tie scores 1/2.
    # Unweighted over the two categories: ((0.8 + 0.9) / 2 + 0.5) / 2; majority: (1 + 1 + 0.5) / 3.
    assert scores["two_afc"] == pytest.approx((0.85 + 0.5) / 2, abs=1e-6)
    assert scores["ordering_accuracy"] == pytest.approx(2.5 / 3, abs=1e-6)
    assert scores["triplets"] == 3
    # the same as the similarity module's 2AFC on DPS distances (uniform weights) of the tap's features
    from percept.data.bapps import TwoAFCData
    from percept.similarity import dps_distance, two_afc

    data = TwoAFCData(two_afc_set)
    spec = backbones.get(LITE)
    ext = TapExtractor(spec.build("random", seed=3).eval(), ["_blocks.0"])
    with torch.inference_mode():
        ref, p0, p1 = (ext(prepare_input(x, spec, None)) for x in data.batch(slice(None)))
    d0, d1 = dps_distance(ref, p0), dps_distance(ref, p1)
    assert d0[0] == 0 and d1[1] == 0 and d0[2] == d1[2] and d1[0] > 0
    assert scores["ordering_accuracy"] == pytest.approx(two_afc(d0, d1, majority(data.judge)))
    # max_triplets keeps the first triplets: only category 0 is left
    first = perceptual_similarity({"two_afc": str(two_afc_set)}, cell, {**options, "max_triplets": 2},
                                  work="unused", seed=3, device="cpu", progress=False)
    assert first["two_afc"] == pytest.approx(0.85, abs=1e-6) and first["triplets"] == 2


def test_perceptual_similarity_cell_table(two_afc_set):
    from percept.loss_networks.tasks import run_cell

    cell = {"network": "lite0", "backbone": LITE, "weights": "imagenet", "tap": "_stem_act", "tap_index": 0,
            "dataset": "toy_2afc"}
    table = run_cell("perceptual_similarity", {"two_afc": str(two_afc_set)}, cell,
                     {"two_afc_set": "val", "batch_size": 8, "max_triplets": None}, work="unused", seed=0,
                     device="cpu", progress=False)
    assert list(table["metric"]) == ["two_afc", "ordering_accuracy"] and table["higher_is_better"].all()
    assert (table["task"] == "perceptual_similarity").all() and (table["triplets"] == 3).all()
    assert table["imagenet_acc1"].iloc[0] == backbones.get(LITE).imagenet_acc1


def test_two_afc_set_too_small_for_a_loss_network_is_refused(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    del cfg["loss_networks"]["tasks"]["dimensionality_reduction"]
    cfg["loss_networks"]["tasks"] = {"perceptual_similarity": {}}
    cfg["loss_networks"]["networks"] = [{"backbone": "inception_v3", "weights": "random"}]
    with pytest.raises(ConfigError, match=r"64x64 \(synthetic_2afc_val\) are too small for inception_v3"):
        validate_config(cfg)
    cfg["loss_networks"]["networks"][0]["resize"] = 75
    assert grid_cells(validate_config(cfg))[0]["resize"] == 75


@pytest.mark.parametrize("split_names, want", [(["train", "test", "extra"], "extra"),  # SVHN with extra_32x32
                                               (["train", "test", "unlabeled"], "unlabeled"),  # STL-10
                                               (["train", "test"], "train")])
def test_autoencoder_split_picks_the_unlabelled_split_when_there_is_one(tmp_path, split_names, want):
    """train_split auto: the papers' autoencoders train on SVHN extra and STL-10 unlabeled, else on train."""
    from percept.autoencoders.training import autoencoder_split
    from percept.data.store import write_image_dataset

    path = tmp_path / "store.h5"
    codes = np.arange(6) % len(split_names)
    write_image_dataset(path, name="like", images=np.zeros((6, 8, 8, 3), np.uint8), split=codes,
                        split_names=split_names, fingerprint="x", source="test")
    assert autoencoder_split(path) == want and autoencoder_split(path, "auto") == want
    assert autoencoder_split(path, "train") == "train"


def test_stl10_unlabeled_split_is_the_autoencoders_training_data(tmp_path):
    """STL-10's unlabeled_X.bin becomes split ``unlabeled`` (label -1); ``train_split: auto`` trains the
    autoencoder on it (the papers' setting) while predictors keep the labelled train split."""
    from percept.autoencoders.training import autoencoder_split
    from percept.data.prepare import prepare_stl10

    root = tmp_path / "raw" / "stl10_binary"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part, n in (("train", 3), ("test", 2), ("unlabeled", 4)):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(root / f"{part}_X.bin")
        if part != "unlabeled":
            np.array([1, 2, 10][:n], np.uint8).tofile(root / f"{part}_y.bin")
    out = prepare_stl10(tmp_path / "raw", tmp_path / "stl10.h5", image_size=64, unlabeled=True, max_unlabeled=3)
    ds = ImageDataset(out)
    assert ds.split_names == ["train", "test", "unlabeled"] and len(ds) == 3 + 2 + 3
    assert autoencoder_split(out) == "unlabeled" and autoencoder_split(out, "train") == "train"
    assert (ImageDataset(out, split="unlabeled").labels() == -1).all()
    plain = prepare_stl10(tmp_path / "raw", tmp_path / "plain.h5", image_size=64)
    assert ImageDataset(plain).split_names == ["train", "test"] and autoencoder_split(plain) == "train"
