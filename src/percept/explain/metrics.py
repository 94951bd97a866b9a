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
- ``deletion`` / ``insertion`` AUC (Petsiuk et al. 2018): pixels removed (set to black) from the image, or
  inserted into a blurred copy, most salient first, in ``steps`` equal steps; the area under the class
  probability curve over the fraction of pixels, by the trapezoid rule (deletion: lower is better);
- ``kept_probability``: the class probability on the kept region, I ⊙ [M > threshold] (black elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from percept.explain.perturbation import gaussian_blur

HIGHER_IS_BETTER = {"iou": True, "pointing": True, "mae": False, "saliency": False, "deletion": False,
                    "insertion": True, "kept_probability": True}


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


def causal_inputs(image: torch.Tensor, saliency: torch.Tensor, steps: int = 16,
                  blur_sigma: float = 5.0) -> torch.Tensor:
    """RISE's deletion then insertion images ``(2·(steps+1), 3, H, W)``: after each of ``steps`` equal steps
    (plus the start), most salient pixels first; deletion sets pixels to 0, insertion copies them onto a
    blurred copy of the image."""
    h, w = saliency.shape
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    counts = np.linspace(0, h * w, steps + 1).round().astype(int)
    rank = torch.empty(h * w, dtype=torch.long, device=saliency.device)
    rank[order] = torch.arange(h * w, device=saliency.device)
    keep = torch.stack([(rank >= c).view(h, w) for c in counts]).float().unsqueeze(1)  # (steps+1, 1, H, W)
    blurred = gaussian_blur(image[None], blur_sigma)[0]
    return torch.cat([image * keep, image * (1 - keep) + blurred * keep])


def causal_curves(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, saliency: torch.Tensor,
                  target: int, steps: int = 16, blur_sigma: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """The deletion and insertion curves (class probability per step)."""
    with torch.inference_mode():
        out = model(causal_inputs(image, saliency, steps, blur_sigma))[:, target].float().cpu().numpy()
    return out[:steps + 1], out[steps + 1:]


def score_map(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, saliency: torch.Tensor,
              target: int, mask: torch.Tensor | None, *, threshold: float = 0.5, tolerance: int = 0,
              steps: int = 16, blur_sigma: float = 5.0) -> dict[str, float]:
    """Every metric for one map of one class of one image (``model``: images → class probabilities); one
    batched model call."""
    sal = saliency.float()
    norm = normalise(sal)
    kept = (norm > threshold).float()
    batch = torch.cat([torch.stack([image * norm, image * kept]), causal_inputs(image, sal, steps, blur_sigma)])
    with torch.inference_mode():
        probs = model(batch)[:, target].float().cpu().numpy()
    deletion, insertion = probs[2:steps + 3], probs[steps + 3:]
    out = {"saliency": saliency_metric(float(norm.mean()), float(probs[0])), "kept_probability": float(probs[1]),
           "deletion": auc(deletion), "insertion": auc(insertion), "area": float(kept.mean())}
    if mask is not None:
        out.update(iou=iou(sal, mask, threshold), pointing=pointing_game(sal, mask, tolerance), mae=mae(sal, mask))
    return out
