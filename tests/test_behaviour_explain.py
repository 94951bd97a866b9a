"""Behaviour of the explanation modules where the older tests never looked (issue 23): a real nonzero RISE crop
shift, kernel SHAP's Shapley-kernel weights on repeated draws of a non-linear model, non-square maps, batches > 1,
non-uniform explainer masks, and Grad-CAM maps smaller than the image.

Issue 15 is changing several conventions of these modules (how RISE upsamples its grid, what fills removed
pixels, Grad-CAM's min-max normalisation, the total-variation border, the deletion/insertion baseline). Each test
below checks only what holds under either convention; the comments say which convention it steps around."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from percept.explain import metrics as M
from percept.explain import perturbation as P
from percept.explain.explainer import class_area_loss, entropy_loss, explainer_loss, total_variation
from percept.explain.gradcam import GradCAM


# --- RISE masks -------------------------------------------------------------------------------------------
def test_rise_crop_offset_is_rows_then_columns():
    """A shift (dy, dx) crops the upsampled grid dy rows down and dx columns right: the shifted mask equals the
    unshifted one moved up by dy and left by dx on their overlap.

    Both masks are crops of the same upsampled grid, so this holds whatever the upsampling (torch bilinear before
    issue 15, skimage's reflect-mode resize since): it pins the crop's offset order, not the resampling."""
    labels = torch.from_numpy(P.segment(np.zeros((12, 12, 3)), "grid", 3))
    r = P.MaskRenderer(labels, "rise", grid=3)
    assert r.cell == (4, 4)  # (rows, columns) per cell: upsampled to (3 + 1) · 4 = 16 px, 12 px crops at [0, 4)
    z = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]])  # no symmetry between rows and columns
    base = r(z, torch.tensor([[0, 0]]))[0, 0]
    for dy, dx in [(3, 1), (1, 3), (2, 0), (0, 2)]:
        shifted = r(z, torch.tensor([[dy, dx]]))[0, 0]
        assert shifted.shape == (12, 12)
        assert torch.allclose(shifted[:12 - dy, :12 - dx], base[dy:, dx:]), (dy, dx)
        swapped = base[dx:, dy:][:12 - max(dy, dx), :12 - max(dy, dx)]
        assert not torch.allclose(shifted[:12 - max(dy, dx), :12 - max(dy, dx)], swapped), (dy, dx)
    # one shift per sample, applied to that sample only
    both = r(z.repeat(2, 1), torch.tensor([[0, 0], [3, 1]]))
    assert torch.equal(both[0, 0], base) and torch.allclose(both[1, 0, :9, :11], base[3:, 1:])


# --- kernel SHAP ---------------------------------------------------------------------------------------------
def _constrained_wls(x, y, w, total):
    """argmin_φ Σ w_i (y_i − x_i·φ)² subject to Σφ = total, by its KKT system (no anchors, no big weights)."""
    s = x.shape[1]
    kkt = np.zeros((s + 1, s + 1))
    kkt[:s, :s] = x.T @ (w[:, None] * x)
    kkt[:s, s] = kkt[s, :s] = 1.0
    rhs = np.concatenate([x.T @ (w * y), [total]])
    return np.linalg.solve(kkt, rhs)[:s]


def test_kernel_shap_weights_each_draw_by_the_shapley_kernel():
    """Kernel SHAP (as post-hoc-image-perturbation's SHAPAttributer, issue 15) weights every sample by the
    Shapley kernel π(|z|) = (S−1) / (C(S,|z|)·|z|·(S−|z|)) — a repeated draw counts again, no correction for
    the sampling density — with the empty and full coalitions as near-exact constraints: φ₀ = f(∅),
    Σφ = f(full) − f(∅). Checked against a brute-force solution of that problem on a non-linear model (for a
    linear model every weighting gives the same answer)."""
    s = 4
    z = np.array([c for c in itertools.product([0, 1], repeat=s) if 0 < sum(c) < s], dtype=float)
    z = np.vstack([z, z[[0, 5, 9]]])  # repeated draws, as a sampler makes

    def f(x):  # interactions and a square: far from linear in z
        return np.stack([x[:, 0] * x[:, 1] + 0.5 * x[:, 2] - 0.8 * x[:, 0] * x[:, 3] + 0.3,
                         (x[:, 1] + x[:, 2] + x[:, 3]) ** 2 / 9], 1)

    f_empty, f_full = f(np.zeros((1, s)))[0], f(np.ones((1, s)))[0]
    ends = np.vstack([np.zeros((1, s)), np.ones((1, s))])
    phi, base = P.kernel_shap(np.vstack([z, ends]), np.vstack([f(z), f_empty, f_full]))
    assert np.allclose(base, f_empty, atol=1e-4)
    k = z.sum(1)
    pi = (s - 1) / (np.array([math.comb(s, int(v)) for v in k]) * k * (s - k))
    for c in range(2):
        want = _constrained_wls(z, f(z)[:, c] - f_empty[c], pi, f_full[c] - f_empty[c])
        assert np.allclose(phi[:, c], want, atol=1e-4), (c, phi[:, c], want)
        for wrong_w in (np.ones_like(pi), pi * np.array([math.comb(s, int(v)) for v in k]) ** 2):
            wrong = _constrained_wls(z, f(z)[:, c] - f_empty[c], wrong_w, f_full[c] - f_empty[c])
            assert np.abs(wrong - want).max() > 1e-2  # the weighting matters on this model: the test can fail


# --- metrics on non-square maps ----------------------------------------------------------------------------
def test_pointing_game_on_non_square_maps():
    sal = torch.tensor([[0.1, 0.2, 0.9], [0.3, 0.0, 0.4]])  # 2 × 3, maximum at row 0, column 2
    hit = torch.zeros(2, 3, dtype=torch.bool)
    hit[0, 2] = True
    assert M.pointing_game(sal, hit) == 1.0
    assert M.pointing_game(sal, ~hit) == 0.0
    tall = sal.T.contiguous()  # 3 × 2, maximum at row 2, column 0
    assert M.pointing_game(tall, hit.T.contiguous()) == 1.0
    near = torch.zeros(3, 2, dtype=torch.bool)
    near[0, 0] = True  # two rows above the maximum
    assert M.pointing_game(tall, near, tolerance=1) == 0.0 and M.pointing_game(tall, near, tolerance=2) == 1.0


def test_mae_and_iou_normalise_the_map_first():
    sal = torch.tensor([[0.0, 1.0, 0.5], [0.6, 0.2, 0.0]])
    gt = torch.tensor([[0, 1, 0], [1, 0, 0]], dtype=torch.bool)
    want = (0 + 0 + 0.5 + 0.4 + 0.2 + 0) / 6
    for scale, shift in [(1.0, 0.0), (10.0, 0.0), (3.0, -2.0)]:  # a map's units do not matter
        assert M.mae(scale * sal + shift, gt) == pytest.approx(want)
        assert M.iou(scale * sal + shift, gt, 0.5) == pytest.approx(2 / 2)


def test_saliency_metric_uses_the_mean_of_the_normalised_map():
    """Dabkowski & Gal's area a is the mean of the (normalised) soft map, not of its thresholded region."""
    sal = torch.tensor([[0.0, 0.1, 0.2], [0.3, 0.4, 1.0]])  # mean 1/3; only 1 of 6 pixels above 0.5

    def model(x):  # a constant classifier (sigmoid 0.25): the metric is then the area term alone, whatever fills
        return torch.full((len(x), 2), math.log(0.25 / 0.75))  # the image

    out = M.score_map(model, torch.rand(3, 2, 3), sal, 0, None, steps=2, blur_sigma=0.5, srg_steps=3)
    assert out["saliency"] == pytest.approx(math.log(1 / 3) - math.log(0.25))
    assert out["area"] == pytest.approx(1 / 6)


def test_insertion_goes_from_the_blurred_copy_to_the_image():
    """Insertion starts from a blurred copy and ends at the image; deletion starts at the image (whatever the
    fill and blur conventions of issue 15, these ends hold)."""
    img = torch.zeros(3, 8, 12)
    img[:, ::2] = 1.0  # stripes: all the detail is in the high frequencies

    def sharpness(x):  # class 0: mean vertical contrast
        d = (x[:, :, 1:] - x[:, :, :-1]).abs().mean((1, 2, 3))
        return torch.stack([d, 1 - d], 1)

    sal = torch.rand(8, 12, generator=torch.Generator().manual_seed(0))
    deletion, insertion = M.causal_curves(sharpness, img, sal, 0, steps=4, blur_sigma=2.0)
    full = float(sharpness(img[None])[0, 0])
    assert insertion[-1] == pytest.approx(full) and deletion[0] == pytest.approx(full)
    assert insertion[0] < 0.2 * full  # the blurred copy has (almost) no stripes left


# --- the explainer's loss ------------------------------------------------------------------------------------
class RightHalfDetail(nn.Module):
    """Two logits: 40 × the pixel standard deviation of the image's right half, and 0. A right half that is
    filled with any constant colour gives logits (0, 0): the uniform softmax. ``spec.mean`` is the colour of
    removed pixels under the explainer's default ``norm_zero`` fill."""

    spec = SimpleNamespace(mean=(0.485, 0.456, 0.406))

    def forward(self, x):
        d = x[..., :, x.shape[-1] // 2:].std(dim=(2, 3)).mean(1)
        return torch.stack([40 * d, torch.zeros_like(d)], 1)


OPTS = {"entropy": 1.0, "area_constraint": 0.0, "min_area": 0.05, "max_area": 0.3, "target_area": 0.0,
        "non_target_area": 0.0, "smoothness": 0.0}


def test_entropy_term_is_computed_on_the_removed_region():
    """The term is the classifier's negative entropy on what the mask removes (shown alone): it reaches its
    minimum, the uniform softmax's −H/K, when the mask keeps the informative right half and removes the
    uninformative left one, and it is ≈ 0 (a confident classifier) when the removed region holds the detail.

    The masks are exactly 0 and 1, so the fill of removed pixels (the normalisation mean since issue 15, black as
    an option) only has to be constant: both fills are checked."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 8, 12, generator=g)  # batch of 2, non-square
    left = torch.zeros(8, 12)
    left[:, :6] = 1
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    uniform = -math.log(2) / 2  # mean of p·log p for p = (½, ½)

    def entropy_term(target_mask, fill):
        masks = torch.stack([target_mask, torch.full((8, 12), 0.3)]).expand(2, -1, -1, -1)
        return explainer_loss(RightHalfDetail(), images, masks, targets, {**OPTS, "fill": fill})[1]["entropy"]

    for fill in ("norm_zero", "black"):
        assert entropy_term(1 - left, fill) == pytest.approx(uniform, abs=1e-6)  # removed: the flat left half
        assert entropy_term(left, fill) > -1e-3  # removed: the right half, which holds the detail: confident


def test_entropy_loss_is_per_row_over_classes():
    logits = torch.tensor([[0.0, math.log(3.0), 0.0], [0.0, 0.0, 0.0]])  # rows (⅕, ⅗, ⅕) and (⅓, ⅓, ⅓)
    want = (2 * 0.2 * math.log(0.2) + 0.6 * math.log(0.6) + 3 * math.log(1 / 3) / 3) / 6
    assert float(entropy_loss(logits)) == pytest.approx(want)


def test_class_area_loss_averages_over_the_batch():
    ones, zeros = torch.ones(10, 10), torch.zeros(10, 10)
    masks = torch.stack([torch.stack([ones, zeros]), torch.stack([zeros, zeros])])  # (2, 2, 10, 10)
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # image 0: class 0 all on, 70 of 100 pixels above the 30 % maximum -> 0.7; image 1: classes 0 and 1 all off,
    # 5 pixels short of the 5 % minimum each -> 0.05 + 0.05. The mean over the two images:
    assert float(class_area_loss(masks, targets, 0.05, 0.3)) == pytest.approx((0.7 + 0.1) / 2)


@pytest.mark.parametrize("border", ["reflect", "zero"])
def test_total_variation_counts_both_directions_alike(border):
    """An edge across rows costs as much as the same edge across columns, under either border convention (the
    reflect padding, NN-Explainer's and the default since issue 15, and the earlier zero border, an option):
    both are symmetric."""
    rows = torch.zeros(2, 6, 8)
    rows[:, 3:] = 1  # a horizontal edge: only vertical differences
    cols = rows.transpose(1, 2).contiguous()  # the same edge turned: only horizontal differences
    assert float(total_variation(rows, border)) > 0
    assert float(total_variation(rows, border)) == pytest.approx(float(total_variation(cols, border)))


# --- Grad-CAM -------------------------------------------------------------------------------------------------
def _normalised(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo)


def test_gradcam_upsamples_a_coarse_map_with_pixel_centres_aligned():
    """A 3 × 5 activation map of a 6 × 10 image, upsampled bilinearly with align_corners=False (pixel centres
    aligned, as cv2.resize in PyPI grad-cam). Compared after min-max normalisation, so the test holds whether the
    map is normalised (issue 15, as grad-cam does) or not: bilinear upsampling commutes with the affine map."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(3, 4, 2, stride=2))
    model.add_module("act", nn.ReLU())
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(4 * 3 * 5, 3))  # a gradient that varies over positions (unlike a pooled head)
    img = torch.rand(3, 6, 10)
    targets = [2, 0]
    cam = GradCAM(model, "act").attribute(img[None], [targets])[0]
    assert cam.shape == (2, 6, 10)
    with torch.no_grad():
        a = model.act(model.conv(img[None]))[0]  # (4, 3, 5)
        for i, c in enumerate(targets):
            alpha = model.fc.weight[c].view(4, 3, 5).mean((1, 2))  # ∂y/∂A_kij = W_c,kij; α_k its mean (eq. 1)
            small = torch.relu((alpha.view(4, 1, 1) * a).sum(0))
            assert small.max() > small.min()  # a map with structure: the test can fail
            want = F.interpolate(small[None, None], size=(6, 10), mode="bilinear", align_corners=False)[0, 0]
            other = F.interpolate(small[None, None], size=(6, 10), mode="bilinear", align_corners=True)[0, 0]
            assert torch.allclose(_normalised(cam[i]), _normalised(want), atol=1e-5), c
            assert (_normalised(other) - _normalised(want)).abs().max() > 1e-2


def test_explainer_masks_start_undecided():
    """At initialisation every mask is near 0.5, where the sigmoid passes the area and classification terms'
    gradients: He-initialised, the mask head's logits had a standard deviation of ~15 on the encoder's
    unnormalised features, saturated masks that the embedded default's budget trained to all-ones."""
    from percept.explain.explainer import Explainer

    model = Explainer("efficientnet_lite0", 4, "paper", width=16, weights="random", seed=0).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        masks = model.masks(x)
    assert masks.shape == (2, 4, 64, 64)
    assert float((masks - 0.5).abs().max()) < 0.25  # sigmoid'(logit) > 0.19 everywhere (0.25 at most)
    assert float(masks.std()) > 1e-4  # but not constant: the maps differ across pixels from the start
