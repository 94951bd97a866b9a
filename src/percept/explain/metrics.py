"""The one metrics module every saliency method is scored with.

Against ground truth (a boolean mask of the explained class's object):

- ``iou``: intersection over union of the map thresholded at ``threshold`` (after min-max normalisation)
  — the explainer paper's mean IoU (Stalder et al. 2022, binarised at 0.5);
- ``pointing``: 1 if the map's maximum lies on the object, within ``tolerance`` pixels (Zhang et al. 2018,
  "Top-down neural attention by excitation backprop"; hits / (hits + misses) once averaged);
- ``mae``: mean absolute error between the normalised map and the mask;

and with the classifier (no ground truth needed):

- ``saliency``: log(max(a, 0.05)) − log(p_c(I ⊙ M)), a the mean of the normalised map M — Dabkowski & Gal
  (2017), as the explainer paper adapts it; lower is better;
- ``deletion`` / ``insertion`` AUC (Petsiuk et al. 2018, as eclique/RISE's ``CausalMetric``): ceil(H·W/steps)
  pixels per step, most salient first, are set to 0 in the classifier's normalised space (its normalisation
  mean colour; ``fill: black`` for pixel-space black), or inserted into a copy blurred with RISE's 11×11 σ 5
  kernel convolved with zero padding in normalised space (``blur: gaussian`` for a reflect-padded Gaussian of
  σ ``blur_sigma``); the class output through a ``softmax`` over the classes (RISE) or a ``sigmoid``
  (multi-label); AUC by the trapezoid rule over [0, 1]; by default for the classifier's top-1 class only
  (``target: top1``, as RISE's and the components repository's evaluations), or for every ground-truth class
  (``target: ground_truth``; :func:`explained_classes`);
- ``srg`` (the RISE-components paper, arXiv 2409.04116, post_hoc/evaluation.py ``ImageAUCEvaluator``): the
  least-influential-first (LIF) and most-influential-first (MIF) deletion curves, ``srg_steps`` images from
  nothing to everything removed, removed pixels grey 0.5; each AUC the curve's mean; SRG = AUC(LIF) −
  AUC(MIF), and the same on curves normalised to run from 1 to 0 (``srg_normalised``);
- ``kept_probability``: the class probability on the kept region, I ⊙ [M > threshold] (black elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from percept.filters import gaussian_blur

HIGHER_IS_BETTER = {"iou": True, "pointing": True, "mae": False, "saliency": False, "deletion": False,
                    "insertion": True, "kept_probability": True, "srg": True, "srg_normalised": True,
                    "lif": True, "mif": False}


def normalise(saliency: torch.Tensor) -> torch.Tensor:
    """Min-max normalise a map to [0, 1] (a constant map becomes all zeros)."""
    lo, hi = saliency.min(), saliency.max()
    if hi - lo < 1e-12:
        return torch.zeros_like(saliency)
    return (saliency - lo) / (hi - lo)


def iou(saliency: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5) -> float:
    pred = normalise(saliency) > threshold
    mask = mask.bool()
    union = (pred | mask).sum()
    return float((pred & mask).sum() / union) if union > 0 else 1.0


def pointing_game(saliency: torch.Tensor, mask: torch.Tensor, tolerance: int = 0) -> float:
    """1.0 for a hit: the maximum (first in raster order on ties) lies within ``tolerance`` px of the mask."""
    idx = int(torch.argmax(saliency))
    y, x = divmod(idx, saliency.shape[1])
    if tolerance <= 0:
        return float(mask[y, x])
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys) == 0:
        return 0.0
    return float(((ys - y) ** 2 + (xs - x) ** 2).min() <= tolerance ** 2)


def mae(saliency: torch.Tensor, mask: torch.Tensor) -> float:
    return float((normalise(saliency) - mask.float()).abs().mean())


def saliency_metric(area: float, probability: float) -> float:
    """log(max(a, 0.05)) − log(p) (Dabkowski & Gal 2017); lower is better."""
    return float(np.log(max(area, 0.05)) - np.log(max(probability, 1e-12)))


def auc(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at equally spaced fractions of [0, 1]."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(((curve[:-1] + curve[1:]) / 2).sum() / (len(curve) - 1))


def rise_kernel(size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """RISE's insertion blur kernel ``(size, size)``: a unit impulse Gaussian-filtered by
    ``scipy.ndimage.gaussian_filter`` (its reflect boundary folds the tails back in, so it sums to 1)."""
    from scipy.ndimage import gaussian_filter

    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    return torch.from_numpy(gaussian_filter(delta, sigma)).float()


def insertion_substrate(image: torch.Tensor, blur: str = "rise", blur_sigma: float = 5.0,
                        fill: torch.Tensor | None = None) -> torch.Tensor:
    """The blurred copy insertion starts from. ``rise``: the 11×11 σ 5 kernel convolved with zero padding in
    normalised space, i.e. on I − μ with μ (``fill``) added back; ``gaussian``: a reflect-padded Gaussian."""
    if blur == "gaussian":
        return gaussian_blur(image[None], blur_sigma)[0]
    if blur != "rise":
        raise ValueError(f"insertion blur must be 'rise' or 'gaussian', got {blur!r}")
    k = rise_kernel().to(image)
    mu = torch.zeros(3, 1, 1, dtype=image.dtype, device=image.device) if fill is None else fill.view(3, 1, 1)
    out = F.conv2d((image - mu)[:, None], k[None, None], padding=k.shape[-1] // 2)[:, 0]
    return out + mu


def causal_counts(n_pixels: int, steps: int) -> np.ndarray:
    """Pixels changed after each step: RISE's ``step`` = ceil(H·W / steps) per step, ceil(H·W / step) steps."""
    step = -(-n_pixels // steps)
    n = -(-n_pixels // step)
    return np.minimum(np.arange(n + 1) * step, n_pixels)


def causal_inputs(image: torch.Tensor, saliency: torch.Tensor, steps: int = 224, blur_sigma: float = 5.0,
                  fill: torch.Tensor | None = None, blur: str = "rise") -> torch.Tensor:
    """RISE's deletion then insertion images ``(2·(n+1), 3, H, W)``, n = len(causal_counts) − 1: most salient
    pixels first, deletion sets them to ``fill`` (a colour ``(3,)``; None = black), insertion copies them onto
    :func:`insertion_substrate`."""
    h, w = saliency.shape
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    counts = causal_counts(h * w, steps)
    rank = torch.empty(h * w, dtype=torch.long, device=saliency.device)
    rank[order] = torch.arange(h * w, device=saliency.device)
    keep = torch.stack([(rank >= c).view(h, w) for c in counts]).to(image.dtype).unsqueeze(1)  # (n+1, 1, H, W)
    removed = torch.zeros_like(image) if fill is None else fill.view(3, 1, 1).to(image).expand_as(image)
    blurred = insertion_substrate(image, blur, blur_sigma, fill)
    return torch.cat([image * keep + removed * (1 - keep), image * (1 - keep) + blurred * keep])


def srg_masks(values: torch.Tensor, steps: int = 10, mif: bool = False,
              segment_masks: torch.Tensor | None = None) -> torch.Tensor:
    """Kept masks ``(steps, H, W)`` of the LIF (``mif=False``) or MIF deletion curve (``auc_sampler``): the
    features sorted by value (least first; reversed for MIF), round(linspace(0, F, steps)[n]) of them removed
    in image n. Features are pixels, or segments with ``segment_masks`` ``(S, H, W)`` (then spread through
    them, normalised by their sum per pixel)."""
    flat = values.flatten().double()
    n_feat = flat.numel()
    if steps > n_feat + 1:
        raise ValueError(f"srg steps ({steps}) must be at most the number of features + 1 ({n_feat + 1})")
    order = torch.argsort(flat, stable=True)
    if mif:
        order = order.flip(0)
    rank = torch.empty(n_feat, dtype=torch.long)
    rank[order] = torch.arange(n_feat)
    counts = np.round(np.linspace(0, n_feat, steps)).astype(int)
    kept = (rank[None, :] >= torch.from_numpy(counts)[:, None]).float()  # (steps, F)
    if segment_masks is None:
        return kept.view(steps, *values.shape)
    sm = segment_masks.float()
    return torch.einsum("ns,shw->nhw", kept, sm) / sm.sum(0).clamp_min(1e-12)


def srg_inputs(image: torch.Tensor, values: torch.Tensor, steps: int = 10, colour: float = 0.5,
               segment_masks: torch.Tensor | None = None) -> torch.Tensor:
    """LIF then MIF images ``(2·steps, 3, H, W)``, removed pixels the grey ``colour`` (SingleColorPerturber)."""
    masks = torch.cat([srg_masks(values, steps, False, segment_masks), srg_masks(values, steps, True, segment_masks)])
    masks = masks.to(image)[:, None]
    return image * masks + colour * (1 - masks)


def srg_scores(lif: np.ndarray, mif: np.ndarray) -> dict[str, float]:
    """AUC (the curve's mean) of LIF and MIF, SRG = LIF − MIF, and SRG on the curves normalised to run from 1
    to 0 ((y − y_last) / (y_first − y_last); ``get_normalized``)."""
    lif, mif = np.asarray(lif, np.float64), np.asarray(mif, np.float64)

    def norm(y):
        y = y - y[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return y / y[0]

    return {"lif": float(lif.mean()), "mif": float(mif.mean()), "srg": float(lif.mean() - mif.mean()),
            "srg_normalised": float(norm(lif).mean() - norm(mif).mean())}


OUTPUTS = ("softmax", "sigmoid")


def class_output(logits: torch.Tensor, output: str) -> torch.Tensor:
    if output == "softmax":
        return torch.softmax(logits.float(), dim=-1)
    if output == "sigmoid":
        return torch.sigmoid(logits.float())
    raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


def causal_curves(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, saliency: torch.Tensor,
                  target: int, steps: int = 224, blur_sigma: float = 5.0, fill: torch.Tensor | None = None,
                  blur: str = "rise") -> tuple[np.ndarray, np.ndarray]:
    """The deletion and insertion curves (``model``'s output for ``target`` per step)."""
    with torch.inference_mode():
        out = model(causal_inputs(image, saliency, steps, blur_sigma, fill, blur))[:, target].float().cpu().numpy()
    half = len(out) // 2
    return out[:half], out[half:]


def anchor_inputs(image: torch.Tensor, blur_sigma: float = 5.0, fill: torch.Tensor | None = None,
                  blur: str = "rise", srg_colour: float = 0.5) -> torch.Tensor:
    """The four images ``(4, 3, H, W)`` every deletion, insertion and SRG curve of ``image`` starts or ends on,
    whatever the map: the image, everything deleted (``fill``), insertion's blurred start, everything
    ``srg_colour`` grey (:func:`score_map`'s ``anchors`` are their logits)."""
    removed = torch.zeros_like(image) if fill is None else fill.view(3, 1, 1).to(image).expand_as(image)
    return torch.stack([image, removed, insertion_substrate(image, blur, blur_sigma, fill),
                        torch.full_like(image, srg_colour)])


def score_map(logits_fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, saliency: torch.Tensor,
              target: int, mask: torch.Tensor | None, *, threshold: float = 0.5, tolerance: int = 0,
              steps: int = 224, blur_sigma: float = 5.0, fill: torch.Tensor | None = None, blur: str = "rise",
              output: str = "softmax", srg_steps: int = 10, srg_colour: float = 0.5, causal: bool = True,
              ground_truth: bool = True, anchors: torch.Tensor | None = None) -> dict[str, float]:
    """The metrics for one map of one class of one image (``logits_fn``: images in [0, 1] → class logits); one
    batched model call. ``ground_truth``: the explainer paper's per-object metrics — the saliency metric and
    kept probability (through the sigmoid of its multi-label classifier), and IoU, pointing and MAE when
    ``mask`` is given; ``causal``: deletion, insertion and SRG through ``output``. :func:`explained_classes`
    says which a class of an image gets.

    ``anchors``: the logits of :func:`anchor_inputs` for this image (with the same ``fill``, ``blur``,
    ``blur_sigma`` and ``srg_colour``). Every curve starts or ends on one of those four images whatever the map
    is (the image itself, everything deleted, the insertion's blurred start, everything grey: 8 of
    2·(n+1) + 2·``srg_steps`` images), so a caller scoring many maps of one image passes them once computed
    and the model sees only the map's own images."""
    if not (causal or ground_truth):
        raise ValueError("score_map needs causal or ground_truth metrics (or both)")
    sal = saliency.float()
    norm = normalise(sal)
    kept = (norm > threshold).float()
    parts = [torch.stack([image * norm, image * kept])] if ground_truth else []
    if causal:
        causal_batch = causal_inputs(image, sal, steps, blur_sigma, fill, blur)
        srg_batch = srg_inputs(image, sal, srg_steps, srg_colour)
        half = len(causal_batch) // 2
        if anchors is None:
            parts += [causal_batch, srg_batch]
        else:  # each curve's first and last image are the anchors
            parts += [causal_batch[1:half - 1], causal_batch[half + 1:2 * half - 1], srg_batch[1:srg_steps - 1],
                      srg_batch[srg_steps + 1:2 * srg_steps - 1]]
    with torch.inference_mode():
        logits = logits_fn(torch.cat(parts))
    out: dict[str, float] = {}
    if ground_truth:
        sig = torch.sigmoid(logits[:2, target].float()).cpu().numpy()
        out.update(saliency=saliency_metric(float(norm.mean()), float(sig[0])), kept_probability=float(sig[1]),
                   area=float(kept.mean()))
        if mask is not None:
            out.update(iou=iou(sal, mask, threshold), pointing=pointing_game(sal, mask, tolerance), mae=mae(sal, mask))
        logits = logits[2:]
    if causal:
        if anchors is not None:
            a = anchors.to(logits)
            img, gone, blurred, grey = a[:1], a[1:2], a[2:3], a[3:4]
            n, m = half - 2, srg_steps - 2
            logits = torch.cat([img, logits[:n], gone, blurred, logits[n:2 * n], img,
                                img, logits[2 * n:2 * n + m], grey, img, logits[2 * n + m:], grey])
        curves = class_output(logits, output)[:, target].cpu().numpy()
        deletion, insertion = curves[:half], curves[half:2 * half]
        lif, mif = curves[2 * half:2 * half + srg_steps], curves[2 * half + srg_steps:]
        out.update(deletion=auc(deletion), insertion=auc(insertion), **srg_scores(lif, mif))
    return out


TARGETS = ("top1", "ground_truth")


def explained_classes(logits: torch.Tensor, labels: torch.Tensor, target: str = "top1") -> dict[int, dict[str, bool]]:
    """Which classes of one image are scored, and by which metrics: ``{class: {"present", "top1", "causal"}}``.

    Every ground-truth (``present``) class gets the ground-truth metrics. The causal metrics (deletion,
    insertion, SRG) go to the classifier's top-1 class on the unperturbed image (``target: top1``: eclique/RISE
    ``CausalMetric.single_run`` scores ``torch.max(model(img), 1)``, the class whose map it is given; the
    components repository's ``experiment.py`` explains and scores ``argmax(model(image))`` unless
    ``use_true_class``), present or not; or to every present class (``ground_truth``: each object of a
    multi-label image). ``logits`` ``(K,)`` of the unperturbed image; ``labels`` ``(K,)`` 0/1."""
    if target not in TARGETS:
        raise ValueError(f"evaluation target must be one of {TARGETS}, got {target!r}")
    top = int(torch.argmax(logits.float()))
    present = set(torch.nonzero(labels > 0.5).flatten().tolist())
    out = {}
    for c in sorted(present | {top}):
        causal = c == top if target == "top1" else c in present
        if c in present or causal:
            out[c] = {"present": c in present, "top1": c == top, "causal": causal}
    return out
