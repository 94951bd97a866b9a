"""One explanation interface (issue 20): every saliency method answers ``attribute(images, targets) -> maps
(N, T, H, W)`` and goes through the same evaluation call, with the maps its earlier per-image call gave."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from percept.explain import perturbation as P
from percept.explain.attributor import Attributor, ConstantMap, attribute_methods, target_lists
from percept.explain.channels import ChannelHeatmaps
from percept.explain.explainer import Explainer
from percept.explain.gradcam import GradCAM

# Recorded at main f96a0b6 (before the interface) with the per-image calls of that commit on the inputs below:
# GradCAM(clf, "act").attribute(image, t), Explainer.attribute(image, t),
# PerturbationExplainer(f, KERNEL_SHAP, SampleBank(0), 8, normalisation_mean=MEAN).attribute(image,
# ["kernel_shap"]).maps["kernel_shap"][t] and ChannelHeatmaps(cache, CHANNELS, (H, W)).attribute(row, t) on a
# cache holding toy_features of the images (rows 10, 11, 12). The kernel-SHAP setting's samples and fill are
# seed-free (single segment removed, black), so the seed streams of issue 20 did not move them.
REF = np.load(Path(__file__).parent / "data" / "explain_interface_reference.npz")
H, W = 32, 40
MEAN = (0.485, 0.456, 0.406)
TARGETS = [[0, 2], [1, 0], [2, 2]]
KERNEL_SHAP = P.Setting(sampler="single", segmenter="grid", perturbation="black", smoothing="hard", grid=3)
RISE = P.Setting(n_masks=24, grid=2, perturbation="noise")  # RISE's own masks, and a fill drawn per sample
CHANNELS = pd.DataFrame([
    {"class": 0, "rank": 0, "tap": "act", "channel": 1, "weight": 0.7, "scale": 2.0},
    {"class": 0, "rank": 1, "tap": "act", "channel": 3, "weight": 0.2, "scale": 1.5},
    {"class": 1, "rank": 0, "tap": "act", "channel": 0, "weight": 0.5, "scale": 1.0},
])  # class 2 has no relevant channel: a zero map


def toy_classifier() -> nn.Module:
    torch.manual_seed(0)
    clf = nn.Sequential()
    clf.add_module("conv", nn.Conv2d(3, 4, 3, stride=4, padding=1))
    clf.add_module("act", nn.ReLU())
    clf.add_module("flat", nn.Flatten())
    clf.add_module("fc", nn.Linear(4 * 8 * 10, 3))  # position-dependent gradients: Grad-CAM maps with structure
    return clf.eval()


def toy_images() -> torch.Tensor:
    return torch.rand(3, 3, H, W, generator=torch.Generator().manual_seed(1))


def toy_features(clf: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {"act": clf.act(clf.conv(images))}


def build(name: str, clf: nn.Module) -> Attributor:
    if name == "gradcam":
        return GradCAM(clf, "act")
    if name == "explainer":
        return Explainer("efficientnet_lite0", 3, width=8, weights="random", seed=0).eval()
    if name in ("rise", "kernel_shap"):
        setting = RISE if name == "rise" else KERNEL_SHAP
        return P.PerturbationExplainer(P.probabilities(clf), setting, P.SampleBank(0), 8, normalisation_mean=MEAN,
                                       calculator=name)
    if name == "channels":
        return ChannelHeatmaps(lambda x: toy_features(clf, x), CHANNELS)
    return ConstantMap()


def per_image(name: str, method, images: torch.Tensor) -> np.ndarray:
    """The earlier per-image maps: recorded ones, or (RISE, whose samples the seed streams moved) the
    lower-level one-image call that feeds several calculators from one set of forward passes."""
    if name in REF:
        return REF[name]
    if name == "rise":
        return np.stack([method.attribute_calculators(img, ["rise", "difference"]).maps["rise"][t].numpy()
                         for img, t in zip(images, TARGETS)])
    return np.ones((len(images), 2, H, W), np.float32)


@pytest.mark.parametrize("name", ["gradcam", "explainer", "rise", "kernel_shap", "channels", "constant"])
def test_every_method_goes_through_one_evaluation_call_with_its_per_image_maps(name):
    clf, images = toy_classifier(), toy_images()
    method = build(name, clf)
    assert isinstance(method, Attributor)
    done = attribute_methods({name: method}, images, TARGETS, batch_size=2)  # two calls: 2 images, then 1
    maps, seconds = done[name]
    assert maps.shape == (3, 2, H, W) and maps.dtype == np.float32 and seconds >= 0
    assert_allclose(maps, per_image(name, method, images), rtol=1e-5, atol=1e-6)
    # an image's maps do not depend on the others in its call
    alone = method.attribute(images[2:], np.array(TARGETS[2:]))
    assert alone.device.type == "cpu" and alone.dtype == torch.float32
    assert_allclose(alone.numpy(), maps[2:], rtol=1e-5, atol=1e-6)
    if name != "constant":
        assert maps[0, 0].std() > 0  # the maps have structure: the comparison can fail
    if name == "channels":
        assert (maps[[0, 2], 1] == 0).all()  # class 2: no relevant channel


def test_a_target_row_per_image_with_the_same_count_is_required():
    assert target_lists(torch.tensor([[1, 2], [0, 0]]), 2) == [[1, 2], [0, 0]]
    for bad in ([[0, 1], [2]], [[0, 1]], [0, 1], [[0.5, 1.0], [1.0, 2.0]]):
        with pytest.raises(ValueError, match=r"\(2, T\) integers"):
            target_lists(bad, 2)


def test_a_calculator_that_cannot_use_the_sampler_is_refused_when_built():
    with pytest.raises(ValueError, match="ciu calculator cannot use the bernoulli sampler"):
        P.PerturbationExplainer(lambda x: x, P.Setting(), P.SampleBank(0), calculator="ciu")
    with pytest.raises(ValueError, match="unknown calculator"):
        P.PerturbationExplainer(lambda x: x, P.Setting(), P.SampleBank(0), calculator="lime")


def test_channel_heatmaps_from_the_caches_network_equal_those_of_the_cached_features(tmp_path):
    """ChannelHeatmaps computes the taps of the images it is given with the feature cache's network
    (channels.cache_network); what the cache holds for the same images gives the same maps (float16 cache)."""
    from percept.data.embedded import make_shapes
    from percept.data.store import ImageDataset
    from percept.explain.channels import cache_network
    from percept.features import FeatureCache, cache_features

    shapes, out = tmp_path / "shapes.h5", tmp_path / "lite0.h5"
    make_shapes(str(shapes), n_train=6, n_test=4, image_size=32, classes=["circle", "square", "star"],
                objects_per_image=[1, 2], object_size=[0.3, 0.5], backgrounds=["brick"], seed=0, progress=False)
    cache_features(shapes, out, "efficientnet_lite0", ["_blocks.0", "_blocks.7"], weights="random", seed=3,
                   batch_size=4, device="cpu", dtype="float16", progress=False)
    cache, ds = FeatureCache(out), ImageDataset(shapes)
    positions = [1, 4, 7]
    images = ds.batch(positions)
    computed = cache_network(cache, ["_blocks.7"])(images)
    assert list(computed) == ["_blocks.7"]
    stored = cache.load("_blocks.7", positions)
    assert torch.equal(computed["_blocks.7"], computed["_blocks.7"].half().float())  # rounded as the cache stores
    assert_allclose(computed["_blocks.7"].numpy(), stored.numpy(), rtol=1e-3, atol=0)  # (equal here, bit for bit)
    table = pd.DataFrame([{"class": 0, "tap": "_blocks.7", "channel": c, "weight": w, "scale": s}
                          for c, w, s in [(3, 0.6, 2.0), (10, 0.3, 1.0)]])
    maps = ChannelHeatmaps(cache_network(cache, ["_blocks.7"]), table).attribute(images, [[0, 1]] * 3)
    expected = sum(w * torch.nn.functional.interpolate(stored[:, c:c + 1] / s, size=(32, 32), mode="bilinear",
                                                      align_corners=False)
                   for c, w, s in [(3, 0.6, 2.0), (10, 0.3, 1.0)])[:, 0]
    assert expected.std() > 0
    assert_allclose(maps[:, 0].numpy(), expected.numpy(), rtol=1e-3, atol=1e-6)
    assert (maps[:, 1] == 0).all()
    with pytest.raises(ValueError, match="not cached"):
        cache_network(cache, ["_blocks.3"])
