"""Fidelity of percept.similarity to the authors' code: numbers recorded by running the authors' functions on fixed,
seeded inputs outside the project (their code is not part of the project; only the numbers are).

Sources (bare snapshots under /work/.mirror):
- FLAWS = guspih/deep_perceptual_similarity_analysis @ da8fa052c6ae8c7446fc5effa42389e68c8cfad2 (loss_networks.py
  ``ExtractionModifier(shape_policy='keep')``, experiment.py ``DistanceMetric``, analysis.py ``run_analysis``);
- ADAPT = LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks @ 72582302672b058efd366983e21c3141c7a4a8c2
  (src/perceptual_metric/augmentations.py: the torchvision transforms of the adaptation paper);
- LPIPS = richzhang/PerceptualSimilarity @ 082bb24f84c091ea94de2867d34c4544f68e0963 (lpips/__init__.py ``l2``,
  ``dssim``, ``tensor2tensorlab``; lpips/lpips.py ``NetLinLayer``, ``L2``/``DSSIM`` with colorspace Lab / RGB).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from percept.similarity import dps_distance
from percept.similarity.metric import channel_distances


def _taps(x: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
    """The two taps of the recording network: a fixed 1x1 map 3 -> 8 with ReLU; channels 0..4, and 2..7 pooled."""
    f = torch.relu(torch.einsum("oc,nchw->nohw", w, x))
    return {"a": f[:, :5], "b": torch.nn.functional.avg_pool2d(f[:, 2:], 2)}


def _inputs():
    g = torch.Generator().manual_seed(16)
    w = torch.rand(8, 3, generator=g) - 0.3
    x0 = torch.rand(3, 3, 6, 4, generator=g)
    x1 = torch.rand(3, 3, 6, 4, generator=g) ** 2
    return _taps(x0, w), _taps(x1, w)


# FLAWS: DistanceMetric(ExtractionModifier(net, modification, return_policy='concat' if '+' else 'new',
# shape_policy='keep'), channel_norm=normalize)(x0, x1) on _inputs() (the recording script wraps the same net).
FLAWS_MODES = {
    ("mean", True): [0.06422064453363419, 0.018556207418441772, 0.022048629820346832],
    ("mean", False): [0.08708886802196503, 0.28699997067451477, 0.1937510371208191],
    ("sort", True): [0.279294490814209, 0.0931776836514473, 0.15373677015304565],
    ("sort", False): [0.10327737033367157, 0.33321210741996765, 0.23275738954544067],
    ("spatial+mean", True): [0.6408670544624329, 0.45887669920921326, 0.5150391459465027],
    ("spatial+mean", False): [0.6056293249130249, 0.9246627688407898, 0.7174407839775085],
    ("spatial+sort", True): [0.8559409379959106, 0.5334981679916382, 0.6467273235321045],
    ("spatial+sort", False): [0.6218178272247314, 0.9708748459815979, 0.7564471364021301],
}
# FLAWS: the same with DistanceMetric(weights=True).eval(), its four 1x1 convolutions [spatial a, spatial b,
# modified a, modified b] set to torch.rand(shape, generator=Generator().manual_seed(7)) in that order.
FLAWS_WEIGHTED = {
    "spatial+mean": [0.3055841624736786, 0.20345987379550934, 0.1998763531446457],
    "spatial+sort": [0.39882099628448486, 0.2350495457649231, 0.2604495882987976],
}


@pytest.mark.parametrize("mode,normalize", list(FLAWS_MODES))
def test_modes_match_the_flaws_paper_code(mode, normalize):
    f0, f1 = _inputs()
    got = dps_distance(f0, f1, mode=mode, normalize=normalize)
    assert_allclose(got.numpy(), FLAWS_MODES[(mode, normalize)], rtol=1e-5)


def test_earlier_normalisation_order_is_a_named_option_and_differs():
    f0, f1 = _inputs()
    for mode in ("mean", "sort"):
        before = dps_distance(f0, f1, mode=mode, norm_order="before").numpy()
        assert np.abs(before / np.array(FLAWS_MODES[(mode, True)]) - 1).max() > 0.1, mode
    with pytest.raises(ValueError, match="norm_order"):
        dps_distance(f0, f1, mode="mean", norm_order="sideways")


@pytest.mark.parametrize("mode", list(FLAWS_WEIGHTED))
def test_combined_modes_have_separate_weights_as_the_flaws_paper_code(mode):
    f0, f1 = _inputs()
    g = torch.Generator().manual_seed(7)
    w = [torch.rand(1, c, 1, 1, generator=g) for c in (5, 6, 5, 6)]
    weights = {"a": torch.cat([w[0].flatten(), w[2].flatten()]), "b": torch.cat([w[1].flatten(), w[3].flatten()])}
    got = dps_distance(f0, f1, mode=mode, weights=weights)
    assert_allclose(got.numpy(), FLAWS_WEIGHTED[mode], rtol=1e-5)
    assert channel_distances(f0["a"], f1["a"], mode).shape == (3, 10)  # [spatial | modified] per tap
    # the earlier shared-weight definition: C values, the two parts summed
    shared = channel_distances(f0["a"], f1["a"], mode, combine="sum")
    assert shared.shape == (3, 5)
    assert torch.allclose(shared, channel_distances(f0["a"], f1["a"], mode).view(3, 2, 5).sum(1), atol=1e-6)


# ADAPT: each transform of `augments` applied to img = torch.rand(3, 32, 32, generator=manual_seed(5)) after
# torch.manual_seed(seed); the parameters it drew read back with its get_params after the same seed.
# (name, params, output sum, output[:, 16, 16])
ADAPT_TRANSFORMS = [
    ("rotate", {"angle": 178.87698364257812}, 1497.273804, [0.874673, 0.922952, 0.864014]),
    ("rotate", {"angle": 257.28948974609375}, 1364.637939, [0.976188, 0.253768, 0.001216]),
    ("translate", {"dx": 9 / 32, "dy": -13 / 32}, 634.021545, [0.016499, 0.532273, 0.094939]),
    ("translate", {"dx": -7 / 32, "dy": -3 / 32}, 1065.9646, [0.11871, 0.127726, 0.826913]),
    ("darken", {"brightness": 0.152812197804451}, 228.801697, [0.041191, 0.011281, 0.021149]),
    ("colour", {"hue": -0.3679695129394531}, 1497.419312, [0.073826, 0.179075, 0.26955]),
    ("blur", {"kernel_x": 11, "kernel_y": 21, "sigma": 6.977539539337158}, 1494.509033, [0.471499, 0.5032, 0.518636]),
    ("blur", {"kernel_x": 11, "kernel_y": 21, "sigma": 8.54578971862793}, 1494.630615, [0.471579, 0.506046, 0.516365]),
    ("zoom", {"scale": 1.791399598121643}, 1526.071045, [0.26955, 0.073826, 0.1384]),
    ("zoom", {"scale": 1.3513797521591187}, 1503.831787, [0.26955, 0.073826, 0.1384]),
]


@pytest.mark.parametrize("kind,params,total,centre", ADAPT_TRANSFORMS)
def test_adaptation_distortions_match_the_authors_transforms(kind, params, total, centre):
    from percept.similarity.distortions import distort

    img = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(5))
    out = distort(img, kind, params)
    assert_allclose(float(out.sum()), total, rtol=1e-5)
    assert_allclose(out[:, 16, 16].numpy(), centre, atol=2e-6)


def test_adaptation_blur_draws_a_fixed_11x21_kernel_and_a_random_sigma():
    from percept.similarity.distortions import sample_params

    rng = np.random.default_rng(0)
    draws = [sample_params("blur", rng) for _ in range(50)]
    assert {(d["kernel_x"], d["kernel_y"]) for d in draws} == {(11.0, 21.0)}
    sig = np.array([d["sigma"] for d in draws])
    assert sig.min() >= 4 and sig.max() <= 10 and sig.std() > 1
    assert "kernel" in sample_params("blur", rng, style="smooth")  # the earlier square kernel, a named option


# LPIPS: l2(rgb2lab(a), rgb2lab(b), range=100.) and dssim(1.*a, 1.*b, range=255.) of lpips/__init__.py (compare_ssim
# = skimage.metrics.structural_similarity(channel_axis=-1), scikit-image 0.26) on these 8-bit images.
PIXEL_L2_LAB = [0.01718376262946711, 0.01760283602394652, 0.017224812817418767]
PIXEL_DSSIM = [0.05534212302135738, 0.05965366737191502, 0.058441968186824234]


def test_pixel_baselines_match_the_reference():
    from percept.similarity.scoring import PIXEL_METRICS

    rng = np.random.default_rng(16)
    u0 = rng.integers(0, 256, (3, 3, 32, 32)).astype(np.float32)
    u1 = np.clip(u0 + rng.normal(0, 40, u0.shape), 0, 255).round().astype(np.float32)
    x0, x1 = torch.from_numpy(u0 / 255), torch.from_numpy(u1 / 255)
    assert_allclose(PIXEL_METRICS["l2"](x0, x1).numpy(), PIXEL_L2_LAB, rtol=1e-5)
    assert_allclose(PIXEL_METRICS["ssim"](x0, x1).numpy(), PIXEL_DSSIM, rtol=1e-5)
    # the earlier RGB / Gaussian-window baselines stay available under their own names, with other values
    assert np.abs(PIXEL_METRICS["ssim_gaussian"](x0, x1).numpy() / PIXEL_DSSIM - 1).max() > 0.01
    assert np.abs(PIXEL_METRICS["l2_rgb"](x0, x1).numpy() / PIXEL_L2_LAB - 1).max() > 0.01


# LPIPS (PyPI lpips 0.1.4 = richzhang/PerceptualSimilarity lpips/lpips.py NetLinLayer): after torch.manual_seed(0),
# NetLinLayer(4) and NetLinLayer(6) (Dropout + Conv2d(C, 1, 1, bias=False), PyTorch's default init) hold:
LPIPS_INIT = [[-0.003743410110473633, 0.26822179555892944, -0.4115225672721863, -0.3679695129394531],
              [-0.15723861753940582, 0.1094747856259346, -0.008088696748018265, 0.3236957788467407,
               -0.036229606717824936, 0.1080276295542717]]
# ... and the first, in train mode after torch.manual_seed(3), maps d = torch.rand(2, 4, 3, 2, generator=
# manual_seed(11)) to lin(d).mean((2, 3)) (dropout on single elements of the N x C x H x W map):
LPIPS_DROPPED = [-0.3138269782066345, -0.3483857214450836]


def test_calibration_starts_at_pytorch_default_init_and_drops_map_elements():
    from percept.similarity.calibration import _channel_means, default_init

    w = default_init([4, 6], seed=0)
    assert_allclose(w.numpy(), LPIPS_INIT[0] + LPIPS_INIT[1], rtol=1e-6)
    d = torch.rand(2, 4, 3, 2, generator=torch.Generator().manual_seed(11))
    torch.manual_seed(3)
    got = _channel_means([d.flatten(2)], slice(None), 0.5, elements=True) @ w[:4]
    assert_allclose(got.numpy(), LPIPS_DROPPED, rtol=1e-5)


def test_calibration_clamps_after_each_step_from_the_default_init():
    from percept.similarity.calibration import train_channel_weights

    g = torch.Generator().manual_seed(0)
    maps0 = [torch.rand(64, 4, 6, generator=g), torch.rand(64, 6, 2, generator=g)]
    maps1 = [torch.rand(64, 4, 6, generator=g), torch.rand(64, 6, 2, generator=g)]
    judge = (torch.rand(64, generator=g) > 0.5).float()
    assert (torch.tensor(LPIPS_INIT[0] + LPIPS_INIT[1]) < 0).any()  # the init has negatives ...
    w, _ = train_channel_weights(maps0, maps1, judge, epochs=1, decay_epochs=0, lr=1e-4, batch_size=64, seed=0)
    assert (w >= 0).all()  # ... that one step's clamp removes
    kept = torch.tensor(LPIPS_INIT[0] + LPIPS_INIT[1]) > 1e-3
    assert_allclose(w[kept].numpy(), torch.tensor(LPIPS_INIT[0] + LPIPS_INIT[1])[kept].numpy(), atol=2e-4)
    with pytest.raises(ValueError, match="maps"):
        train_channel_weights(maps0[0].mean(-1), maps1[0].mean(-1), judge, dropout=0.5)
