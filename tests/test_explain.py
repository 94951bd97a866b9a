"""Explanation components against hand-computed cases: samplers, segmenters, smoothing, perturbations,
calculators (a model linear in region contents), Grad-CAM, the explainer's loss terms, the metrics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from percept.explain import metrics as M
from percept.explain import perturbation as P
from percept.explain.explainer import (
    area_bounds,
    class_area_loss,
    entropy_loss,
    explainer_loss,
    merge_masks,
    total_variation,
)
from percept.explain.gradcam import GradCAM
from percept.ranking import average_precision

W = np.array([[0.5, -0.2], [0.1, 0.4], [-0.3, 0.0], [0.8, 0.3]])  # 4 segments × 2 classes
B = np.array([0.2, -0.1])


def all_coalitions(s: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=s)), dtype=float)


# --- calculators on exhaustive samples: f(z) = z·W + b -----------------------------------------------------
def test_linear_regression_and_kernel_shap_recover_the_weights_of_a_linear_model():
    z = all_coalitions(4)
    f = z @ W + B
    assert np.allclose(P.least_squares(z, f), W, atol=1e-6)
    phi, base = P.kernel_shap(z, f)
    assert np.allclose(phi, W, atol=1e-5) and np.allclose(base, B, atol=1e-5)


def test_kernel_shap_equals_exact_shapley_values_of_a_nonlinear_game():
    # v(z) = z0·z1 (an interaction): the Shapley values split it, 0.5 each, 0 for the others
    z = all_coalitions(3)
    f = (z[:, 0] * z[:, 1])[:, None]
    phi = P.kernel_shap(z, f)[0]  # the empty and full coalitions at weight 1e5 (nearly exact constraints)
    assert np.allclose(phi[:, 0], [0.5, 0.5, 0.0], atol=1e-4)


def test_rise_weighted_mean_and_difference_of_means_by_hand():
    z = all_coalitions(4)  # every coalition once: E over Bernoulli(0.5)
    f = z @ W + B
    n, p = len(z), 0.5
    sum_fm = torch.from_numpy(f.T @ z)  # (C, S): Σ f_i z_is
    rise = P.rise_weighted_mean(sum_fm, n, p).numpy().T
    # E[f z_s]/p = w_s + p Σ_{t≠s} w_t + b
    expected = W + p * (W.sum(0) - W) + B
    assert np.allclose(rise, expected)
    diff = P.difference_of_means(sum_fm, torch.from_numpy(z.sum(0)), torch.from_numpy(f.sum(0)), n).numpy().T
    assert np.allclose(diff, W)


# --- samplers ---------------------------------------------------------------------------------------------
def test_samplers():
    rng = np.random.default_rng(0)
    z = P.sample("bernoulli", 10, 4000, rng, p=0.3)
    assert z.shape == (4000, 10) and abs(z.mean() - 0.3) < 0.01
    z = P.sample("fixed", 10, 50, rng, keep=0.3)
    assert (z.sum(1) == 3).all()
    z = P.sample("single", 5, 999, rng)
    assert z.shape == (5, 5) and (z.sum(1) == 4).all() and not z.diagonal().any()
    assert np.allclose(P.shapley_size_weights(4), np.array([1, 0.75, 1]) / 2.75)
    z = P.sample("shapley", 4, 20000, rng)
    sizes = np.bincount(z.sum(1), minlength=5)
    assert sizes[0] == 0 and sizes[4] == 0
    assert np.allclose(sizes[1:4] / len(z), P.shapley_size_weights(4), atol=0.01)


# --- segmenters and smoothing -------------------------------------------------------------------------------
def test_grid_segmenter_matches_rise_cells():
    labels = P.segment(np.zeros((6, 6, 3)), "grid", 3)
    assert labels.tolist()[0] == [0, 0, 1, 1, 2, 2] and labels[5, 5] == 8


@pytest.mark.parametrize("method", ["slic", "felzenszwalb", "quickshift", "watershed"])
def test_image_segmenters_give_consecutive_labels(method):
    rng = np.random.default_rng(1)
    img = np.zeros((32, 32, 3))
    img[:, 16:] = 1.0
    img += rng.normal(0, 0.02, img.shape)
    labels = P.segment(np.clip(img, 0, 1), method, 3)
    assert labels.shape == (32, 32)
    assert set(np.unique(labels)) == set(range(labels.max() + 1)) and labels.max() >= 1
    # no segment crosses the strong vertical edge
    left, right = set(np.unique(labels[:, :15])), set(np.unique(labels[:, 17:]))
    assert not (left & right)


def test_rise_mask_generator_upsamples_and_crops():
    labels = torch.from_numpy(P.segment(np.zeros((8, 8, 3)), "grid", 2))
    r = P.MaskRenderer(labels, "rise", grid=2)
    assert r.cell == (4, 4)
    z = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1, 1, 1, 1]])
    m = r(z, torch.tensor([[0, 0], [3, 1]]))
    assert m.shape == (2, 1, 8, 8)
    assert torch.allclose(m[1], torch.ones_like(m[1]))
    from skimage.transform import resize  # RISE's upsampler: linear, scikit-image 'reflect' (mirror) boundary

    up = resize(z[0].view(2, 2).numpy(), (12, 12), order=1, mode="reflect", anti_aliasing=False)
    assert np.allclose(m[0, 0].numpy(), up[:8, :8], atol=1e-6)
    torch_up = torch.nn.functional.interpolate(z[:1].view(1, 1, 2, 2), size=(12, 12), mode="bilinear")
    assert not torch.allclose(m[0, 0], torch_up[0, 0, :8, :8], atol=1e-3)  # torch clamps at the edge
    # the corner pixel sits 5/12 of a cell beyond the first centre: mirrored, it mixes in the *second* value (0)
    assert float(m[0, 0, 0, 0]) == pytest.approx((7 / 12) ** 2) and 0 < m[0, 0, 5, 5] < 1
    hard = P.MaskRenderer(labels, "hard")(z)
    assert hard[0, 0, :4, :4].eq(1).all() and hard[0, 0, 4:].eq(0).all()
    gauss = P.MaskRenderer(labels, "gaussian", sigma=1.0)(z)
    assert 0 < gauss[0, 0, 4, 2] < 1 and abs(float(gauss[0].mean()) - 0.25) < 0.05


def test_perturbations():
    img = torch.rand(3, 8, 8)
    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, :4] = 1
    mean = P.perturb(img, masks, P.replacement(img, "mean"))
    assert torch.allclose(mean[0, :, 4:], img.mean((1, 2), keepdim=True).expand(3, 4, 8))
    assert torch.equal(mean[0, :, :4], img[:, :4])
    assert P.perturb(img, masks, P.replacement(img, "black"))[:, :, 4:].eq(0).all()
    const = torch.full((3, 8, 8), 0.3)
    assert torch.allclose(P.replacement(const, "blur", 2.0), const, atol=1e-6)
    noise = P.perturb(img, masks, P.replacement(img, "noise"), torch.Generator().manual_seed(0))
    assert not torch.equal(noise[0, :, 4:], noise[1, :, 4:]) and noise.min() >= 0 and noise.max() <= 1


# --- the whole pipeline on a model linear in region contents -----------------------------------------------
class RegionLinear(nn.Module):
    """f(x) = Σ_s w_s · mean of channel 0 over grid cell s + b (cells of the 2×2 grid of an 8×8 image)."""

    def __init__(self):
        super().__init__()
        self.max_batch = 0

    def forward(self, x):
        self.max_batch = max(self.max_batch, len(x))
        cells = torch.nn.functional.avg_pool2d(x[:, :1], 4).flatten(1)  # (B, 4) in raster order
        return cells.double() @ torch.from_numpy(W) + torch.from_numpy(B)


@pytest.mark.parametrize("sampler", ["bernoulli", "fixed", "shapley"])
def test_pipeline_recovers_region_weights(sampler):
    model = RegionLinear()
    st = P.Setting(sampler=sampler, segmenter="grid", perturbation="black", smoothing="hard", n_masks=300, grid=2)
    att = P.PerturbationExplainer(model, st, P.SampleBank(3), batch_size=32).attribute_calculators(
        torch.ones(3, 8, 8), P.CALCULATORS)
    assert att.model_calls == 302 and model.max_batch <= 32  # memory: one batch of masks at a time
    cells = {k: v[:, ::4, ::4].reshape(2, 4).T.numpy() for k, v in att.maps.items()}
    assert np.allclose(cells["kernel_shap"], W, atol=1e-4)
    if sampler != "fixed":  # a fixed count makes Σz constant: slopes identifiable only up to a shift
        assert np.allclose(cells["linear"], W, atol=1e-6)
    for calc in ("rise", "difference", "pda"):
        for c in range(2):
            assert np.corrcoef(cells[calc][:, c], W[:, c])[0, 1] > 0.9, (calc, c)


def test_rise_original_matches_its_expectation():
    model = RegionLinear()
    st = P.Setting(n_masks=4000, grid=2, smoothing="hard", perturbation="black")
    att = P.PerturbationExplainer(model, st, P.SampleBank(0), batch_size=500).attribute_calculators(
        torch.ones(3, 8, 8))
    cells = att.maps["rise"][:, ::4, ::4].reshape(2, 4).T.numpy()
    assert np.allclose(cells, W + 0.5 * (W.sum(0) - W) + B, atol=0.05)


def test_samples_are_drawn_once_and_reused():
    bank = P.SampleBank(5)
    st = P.Setting(n_masks=10)
    a = bank.get(st, 16, 4)
    assert bank.get(st, 16, 4)[0] is a[0]
    assert not np.array_equal(P.SampleBank(6).get(st, 16, 4)[0], a[0])


# --- Grad-CAM ------------------------------------------------------------------------------------------------
def test_gradcam_is_the_published_definition():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(3, 2, 1))
    model.add_module("act", nn.ReLU())
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(2, 3))
    img = torch.rand(3, 4, 4)
    raw = GradCAM(model, "act", normalise=False).attribute(img[None], [[0, 2]])[0]
    cam = GradCAM(model, "act").attribute(img[None], [[0, 2]])[0]
    a = model.act(model.conv(img[None]))[0].detach()  # (2, 4, 4)
    for i, c in enumerate([0, 2]):
        alpha = model.fc.weight[c].detach() / 16  # ∂y/∂A_kij = w_ck / Z (Z = 16 pixels); α_k = its mean
        expected = torch.relu((alpha.view(2, 1, 1) * a).sum(0))
        assert torch.allclose(raw[i], expected, atol=1e-6)
        lo = expected.min()
        assert torch.allclose(cam[i], (expected - lo) / ((expected - lo).max() + 1e-7), atol=1e-6)


# --- the explainer's loss terms --------------------------------------------------------------------------------
def test_merge_masks_and_total_variation():
    masks = torch.tensor([[[[0.2]], [[0.9]], [[0.5]]]])  # (1, 3, 1, 1)
    target, non_target = merge_masks(masks, torch.tensor([[1.0, 0.0, 1.0]]))
    assert float(target) == pytest.approx(0.5) and float(non_target) == pytest.approx(0.9)
    m = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    # reflect padding: the last column's right neighbour is the column before it, so 4 differences of 1 / 4 px
    assert float(total_variation(m)) == pytest.approx(1.0)
    assert float(total_variation(m, "zero")) == pytest.approx(0.5)  # border differences counted as 0


def test_entropy_and_area_terms():
    assert float(entropy_loss(torch.zeros(2, 4))) == pytest.approx(-math.log(4) / 4)
    assert float(entropy_loss(torch.tensor([[100.0, 0, 0, 0]]))) == pytest.approx(0, abs=1e-6)
    ones, zeros = torch.ones(10, 10), torch.zeros(10, 10)
    assert float(area_bounds(ones, 0.0, 0.25)) == pytest.approx(0.75)  # 75 of 100 pixels above the max area
    assert float(area_bounds(zeros, 0.05, 1.0)) == pytest.approx(0.05)  # 5 pixels below the min area
    half = torch.zeros(10, 10)
    half[:2] = 1  # 20 % of the pixels on: inside [0.05, 0.3]
    assert float(area_bounds(half, 0.05, 0.3)) == 0
    masks = torch.stack([torch.stack([ones, half])])
    assert float(class_area_loss(masks, torch.tensor([[1.0, 0.0]]), 0.05, 0.3)) == pytest.approx(0.7)


def test_explainer_loss_is_differentiable_and_sums_its_terms():
    clf = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    logits = torch.zeros(1, 2, 8, 8, requires_grad=True)
    opts = {"entropy": 1.0, "area_constraint": 1.0, "min_area": 0.05, "max_area": 0.3, "target_area": 0.1,
                "non_target_area": 0.3, "smoothness": 1.0, "fill": "black"}
    total, terms = explainer_loss(clf, torch.rand(1, 3, 8, 8), torch.sigmoid(logits), torch.tensor([[1.0, 0.0]]), opts)
    total.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert float(total.detach()) == pytest.approx(sum(terms.values()), rel=1e-5)
    assert terms["area_target"] == pytest.approx(0.05) and terms["area_non_target"] == pytest.approx(0.15)


# --- metrics ----------------------------------------------------------------------------------------------------
def test_ground_truth_metrics_on_tiny_arrays():
    sal = torch.tensor([[0.0, 1.0], [0.6, 0.2]])
    gt = torch.tensor([[0, 1], [0, 0]], dtype=torch.bool)
    assert M.iou(sal, gt, 0.5) == pytest.approx(0.5)  # predicted {(0,1), (1,0)}, truth {(0,1)}
    assert M.pointing_game(sal, gt) == 1.0
    assert M.pointing_game(sal, torch.tensor([[1, 0], [0, 0]], dtype=torch.bool)) == 0.0
    big = torch.zeros(10, 10)
    big[0, 0] = 1
    far = torch.zeros(10, 10, dtype=torch.bool)
    far[0, 3] = True
    assert M.pointing_game(big, far, tolerance=2) == 0.0 and M.pointing_game(big, far, tolerance=3) == 1.0
    assert M.mae(sal, gt) == pytest.approx((0 + 0 + 0.6 + 0.2) / 4)


def test_saliency_metric_and_auc():
    assert M.saliency_metric(0.01, 0.5) == pytest.approx(math.log(0.05) - math.log(0.5))
    assert M.saliency_metric(0.2, 1.0) == pytest.approx(math.log(0.2))
    assert M.auc(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert M.auc(np.ones(5)) == pytest.approx(1.0)


def test_deletion_and_insertion_follow_the_map():
    # a "model" whose class-0 probability is the mean brightness of the left half of the image
    def logits(x):  # class 0's logit: 20·(mean brightness of the left half − 0.5)
        left = x[:, :, :, :2].mean((1, 2, 3))
        return torch.stack([20 * (left - 0.5), 20 * (0.5 - left)], 1)

    img = torch.ones(3, 4, 4)
    good = torch.zeros(4, 4)
    good[:, :2] = 1
    good[0, 0] = 1.5  # no ties at the top
    bad = 1 - good
    kw = dict(steps=4, blur="gaussian", blur_sigma=0.5, output="sigmoid", srg_steps=5)
    s_good = M.score_map(logits, img, good, 0, good.bool(), **kw)
    s_bad = M.score_map(logits, img, bad, 0, good.bool(), **kw)
    assert s_good["deletion"] < s_bad["deletion"]
    assert s_good["insertion"] >= s_bad["insertion"]
    assert s_good["iou"] == 1.0 and s_bad["iou"] == 0.0 and s_good["kept_probability"] == pytest.approx(1.0, abs=1e-4)
    sig = torch.sigmoid(torch.tensor([10.0, 0.0, -10.0, -10.0, -10.0])).numpy()  # 4 px per step, black
    assert s_good["deletion"] == pytest.approx(M.auc(sig), rel=1e-5)
    assert s_good["srg"] > 0 > s_bad["srg"]  # MIF drops the class, LIF keeps it


@pytest.mark.parametrize("fill", [None, torch.tensor([0.485, 0.456, 0.406])])
@pytest.mark.parametrize("blur", ["rise", "gaussian"])
def test_score_map_with_anchors_sends_only_the_maps_own_images_and_scores_the_same(fill, blur):
    # issue 21: every deletion, insertion and SRG curve starts or ends on one of four map-independent images
    # (the image, all deleted, the blurred start, all grey); with their logits given, the model sees 8 fewer
    # images per map and class, and every score is the same as computing them in the map's own batch
    torch.manual_seed(0)
    weights = torch.randn(3 * 8 * 8, 4)

    def logits(x):
        seen.append(len(x))
        return (x.flatten(1) - 0.5) @ weights / 8

    img, sal = torch.rand(3, 8, 8), torch.rand(8, 8)
    mask = sal > 0.5
    steps, srg_steps = 4, 5
    kw = dict(steps=steps, blur=blur, blur_sigma=1.0, fill=fill, srg_steps=srg_steps, srg_colour=0.4)
    seen = []
    plain = M.score_map(logits, img, sal, 1, mask, **kw)
    assert seen == [2 + 2 * (steps + 1) + 2 * srg_steps]
    anchors = logits(M.anchor_inputs(img, 1.0, fill, blur, 0.4))
    seen = []
    shared = M.score_map(logits, img, sal, 1, mask, anchors=anchors, **kw)
    assert seen == [2 + 2 * (steps + 1) + 2 * srg_steps - 8]
    assert shared.keys() == plain.keys()
    for k in plain:
        assert shared[k] == pytest.approx(plain[k], rel=1e-5, abs=1e-6), k
    # the anchors are what the curves use: wrong ones change the scores
    wrong = M.score_map(logits, img, sal, 1, mask, anchors=anchors.flip(0), **kw)
    assert wrong["deletion"] != pytest.approx(plain["deletion"])


# --- classifier helpers -------------------------------------------------------------------------------------------
def test_average_precision_by_hand():
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 0, 1])) == pytest.approx((1 + 2 / 3) / 2)
    assert np.isnan(average_precision(np.array([0.1]), np.array([0])))


def test_config_refuses_a_classifier_tap_that_is_not_cached():
    import yaml
    from conftest import TINY

    from percept.config import ConfigError, validate_config

    cfg = yaml.safe_load(TINY.read_text())
    cfg["explain"]["classifiers"][0]["tap"] = "_blocks.9"
    with pytest.raises(ConfigError, match=r"explain.classifiers\[0\].tap: '_blocks.9' is not cached"):
        validate_config(cfg)
    cfg["explain"]["classifiers"][0].update(tap="_blocks.7", dataset="photos")
    with pytest.raises(ConfigError, match="allowed values: shapes, voc2007"):
        validate_config(cfg)


# --- which parts of RISE matter: variance shares ------------------------------------------------------------------
def test_component_variance_shares_of_a_one_at_a_time_design():
    import pandas as pd

    from percept.explain.components import component_variance_shares

    base = {"sampler": "bernoulli", "segmenter": "grid", "perturbation": "norm_zero", "smoothing": "rise",
            "attribution": "pixels", "calculator": "rise"}
    rows = [{**base, "srg": 0.5, "base": True}]
    rows += [{**base, "segmenter": s, "srg": v, "base": False} for s, v in (("slic", 0.1), ("felzenszwalb", 0.3))]
    rows += [{**base, "calculator": "linear", "srg": 0.45, "base": False}]
    rows += [{**base, "smoothing": "hard", "srg": 0.3, "base": False}]
    # a two-component change is not a main effect of either
    rows += [{**base, "segmenter": "slic", "calculator": "linear", "srg": -5.0, "base": False}]
    df = pd.DataFrame(rows).assign(method="rise")
    shares = component_variance_shares(df, "srg").set_index("component")
    seg = np.var([0.5, 0.1, 0.3])
    calc = np.var([0.5, 0.45])
    smooth = np.var([0.5, 0.3])
    assert shares.loc["segmenter", "variance"] == pytest.approx(seg)
    assert shares.loc["calculator", "variance"] == pytest.approx(calc)
    assert shares.loc["sampler", "variance"] == 0 and shares.loc["sampler", "choices"] == 1
    assert shares["share"].sum() == pytest.approx(1.0)
    assert shares.loc["segmenter", "share"] == pytest.approx(seg / (seg + calc + smooth))
    assert shares.loc["segmenter", "best"] == "grid" and shares.loc["segmenter", "range"] == pytest.approx(0.4)
    lower = component_variance_shares(df, "srg", higher_is_better=False).set_index("component")
    assert lower.loc["segmenter", "best"] == "slic"


def test_kernel_shap_with_a_single_segment():
    # superpixel segmenters can return one segment (e.g. SLIC on noise): only the two ends remain
    phi, base = P.kernel_shap(np.array([[0.0], [1.0], [1.0]]), np.array([[0.1], [0.9], [0.8]]))
    assert phi.shape == (1, 1) and np.isfinite(phi).all() and base[0] == pytest.approx(0.1, abs=1e-4)


@pytest.mark.parametrize("n_classes,show", [(20, 4), (20, 2), (20, 1), (3, 2)])
def test_channel_crop_labels_do_not_overlap(n_classes, show):
    """fig_saliency_examples' crop panel: VOC's 20 classes with the paper's 4 channels each (or the miniature's 2)
    wrap into rows so that no class name or channel number overlaps another (they did in one row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from percept.figures.explain import _crop_groups_per_row, crop_panel

    voc = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"][:n_classes]
    crops = np.random.default_rng(0).uniform(0, 1, (n_classes, show, 8, 8, 3))
    channels = pd.DataFrame([{"class": k, "rank": r, "tap": "features.29", "channel": 500 + k}
                             for k in range(n_classes) for r in range(show)])
    ncol = 9  # images, ground truth, four RISE variants, explainer, Grad-CAM, channels
    fig = plt.figure(figsize=(1.55 * ncol, 6))
    groups = _crop_groups_per_row(show, ncol)
    taps = crop_panel(fig, fig.add_gridspec(1, 1)[0, 0], crops, channels, voc, groups)
    assert taps == ["features.29"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for ax in fig.axes for t in (ax._left_title, ax.xaxis.label) if t.get_text()]  # the titles are loc=left
    assert len(texts) == n_classes + n_classes * show
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlaps = [(texts[i].get_text(), texts[j].get_text()) for i, j in itertools.combinations(range(len(boxes)), 2)
                if boxes[i].overlaps(boxes[j])]
    plt.close(fig)
    assert not overlaps, overlaps[:5]


def test_batched_scoring_gives_the_rows_of_one_call_at_a_time_in_fewer_forward_passes():
    # issue 21: score_maps queues the maps of an image and sends their images to the model together
    from percept.explain.evaluate import BatchedScoring, image_anchors, score_image

    torch.manual_seed(1)
    weights = torch.randn(3 * 8 * 8, 4)
    calls = []

    def model(x):
        calls.append(len(x))
        return (x.flatten(1) - 0.5) @ weights / 8

    opts = {"target": "top1", "threshold": 0.5, "pointing_tolerance": 1, "steps": 4, "insertion_blur_sigma": 1.0,
            "insertion_blur": "rise", "output": "softmax", "srg_steps": 3, "srg_colour": 0.5}
    img, labels = torch.rand(3, 8, 8), torch.tensor([1.0, 0.0, 1.0, 0.0])
    masks = torch.rand(4, 8, 8) > 0.5
    logits = model(img[None])[0]
    anchors = image_anchors(model, img, opts)
    maps = [{c: torch.rand(8, 8) for c in range(4)} for _ in range(5)]
    calls.clear()
    one_by_one = [score_image(model, img, m, labels, masks, opts, None, logits, anchors) for m in maps]
    n_single = len(calls)
    calls.clear()
    scoring, batched = BatchedScoring(model, batch_size=16), []
    for m in maps:
        if scoring.add(img, m, labels, masks, opts, None, logits, anchors):
            batched += scoring.flush()
    batched += scoring.flush()
    assert len(calls) < n_single and max(calls) <= 16
    assert len(batched) == len(one_by_one)
    for got, want in zip(batched, one_by_one):
        assert [r["class"] for r in got] == [r["class"] for r in want]
        for g, w in zip(got, want):
            for k, v in w.items():
                assert g[k] == pytest.approx(v, rel=1e-5, abs=1e-6, nan_ok=True), k
