"""Behaviour of the similarity metric and its scoring where the older tests never looked (issue 23): the backbone
scaling's direction, the resize option, both sides of a 2AFC triplet, the JND average precision's precision
envelope on a ranking that needs it, and the per-category rows with unequal category sizes.

These tests avoid the conventions issue 16 is changing (how `mean`/`sort` normalise, the pixel baselines): every
DPS below runs in `spatial` mode and is compared with itself on explicitly prepared inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from percept import backbones
from percept.similarity import DPS, jnd_average_precision
from percept.similarity.scoring import category_rows

TAP = ["features.1"]  # AlexNet's first ReLU: cheap, and still a function of every input pixel's scaling


def _images(n: int, size: int | tuple[int, int], seed: int) -> torch.Tensor:
    hw = (size, size) if isinstance(size, int) else size
    return torch.rand(n, 3, *hw, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------- the metric

def test_backbone_scaling_feeds_the_network_imagenet_normalised_inputs():
    """scaling="backbone" maps [0, 1] images to (x − mean) / std, the registry's ImageNet normalisation: the taps
    equal those of the same network run on spec.normalize(x) (a flipped shift would add the mean instead)."""
    dps = DPS("alexnet", weights="random", seed=0, taps=TAP, scaling="backbone", channels_last=False)
    spec = backbones.get("alexnet")
    x = _images(2, (64, 80), 0)
    with torch.inference_mode():
        got = dps.features(x)["features.1"]
        want = dps.extractor(spec.normalize(x))["features.1"]
    assert torch.allclose(got, want, atol=1e-5)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    assert torch.allclose(spec.normalize(x), (x - mean) / std)  # what "the registry's normalisation" means


def test_resize_option_compares_the_resized_images():
    """DPS(resize=s) measures the distance between the images resized to s×s (bilinear, antialiased) — here 48 px
    inputs, too small for AlexNet unless resized."""
    x0, x1 = _images(2, 48, 1), _images(2, 48, 2)
    resized = DPS("alexnet", weights="random", seed=0, taps=TAP, resize=64)
    plain = DPS("alexnet", weights="random", seed=0, taps=TAP)

    def up(x):
        return F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)

    with torch.inference_mode():
        got = resized(x0, x1)
        want = plain(up(x0), up(x1))
    assert got.shape == (2,) and torch.all(got > 0)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


def test_two_afc_distances_score_each_distortion_against_the_reference():
    dps = DPS("alexnet", weights="random", seed=0, taps=TAP)
    ref, p0, p1 = _images(2, 64, 3), _images(2, 64, 4), _images(2, 64, 5)
    p0 = 0.9 * ref + 0.1 * p0  # p0 close to the reference, p1 far from it
    with torch.inference_mode():
        d0, d1 = dps.two_afc_distances(ref, p0, p1)
        want0, want1 = dps(ref, p0), dps(ref, p1)
    assert torch.allclose(d0, want0, rtol=1e-5) and torch.allclose(d1, want1, rtol=1e-5)
    assert torch.all(d0 < d1)


# ------------------------------------------------------------------------------------------------ scoring

def test_jnd_average_precision_takes_the_precision_envelope():
    # Ranked by distance the judgements are 0, 1, 1: precision 0, 1/2, 2/3 at recall 0, 1/2, 1. The VOC AP (the
    # LPIPS reference's voc_ap) integrates the running maximum from the right: precision 2/3 at both recall
    # steps, AP = 2/3. Without the envelope it would be 1/2·1/2 + 1/2·2/3 = 7/12.
    assert jnd_average_precision([0.1, 0.2, 0.3], [0, 1, 1]) == pytest.approx(2 / 3)
    # Fractional judgements: same = 0.2, 0.9, 0.5 -> tp .2, 1.1, 1.6; precision .2, .55, .533; recall .125, .6875, 1.
    # Envelope: .55, .55, .533 -> AP = .125·.55 + .5625·.55 + .3125·.5333
    want = 0.125 * 0.55 + 0.5625 * 0.55 + 0.3125 * (1.6 / 3)
    assert jnd_average_precision([0.3, 0.5, 0.9], [0.2, 0.9, 0.5]) == pytest.approx(want)


def test_jnd_average_precision_refuses_a_set_without_same_pairs():
    with pytest.raises(ValueError, match="no pair is judged the same"):
        jnd_average_precision([0.1, 0.2], [0, 0])


def test_category_rows_weight_the_mean_by_category_size():
    # category a: three triplets scoring 1; b: one scoring 0; c: none (no row, and it counts in no mean)
    rows = category_rows(np.array([1.0, 1.0, 0.0, 1.0]), [0, 0, 1, 0], ["a", "b", "c"], metric="m")
    by = {r["category"]: r for r in rows}
    assert list(by) == ["a", "b", "mean (weighted)", "mean (unweighted)"]
    assert (by["a"]["score"], by["a"]["n"]) == (1.0, 3) and (by["b"]["score"], by["b"]["n"]) == (0.0, 1)
    assert by["mean (weighted)"]["score"] == pytest.approx(0.75) and by["mean (weighted)"]["n"] == 4
    assert by["mean (unweighted)"]["score"] == pytest.approx(0.5)
    assert all(r["metric"] == "m" for r in rows)
