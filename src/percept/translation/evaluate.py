"""Scores of a trained translator on the test images of domain A translated into domain B.

Shape translated:
- ``target_shape_rate``: the fraction of translations a frozen 3-way classifier (the *judge*: A / B / neither,
  trained on the real train images of both domains, mildly augmented, and on corrupted versions of them as
  "neither" — never on translations) labels as the target shape B; ``neither_rate``: the fraction it labels
  "neither" (blurred, blotchy, noisy or ghost-blended images);
- ``mask_iou``: IoU between the translated object (pixels differing from the image's clean background by more
  than ``mask_threshold`` in mean absolute RGB) and the ideal target: shape B at the input object's centre with
  the input object's area, at the rotation that fits best (a circle or a square gives the input no orientation).
Appearance preserved (with the ground-truth input mask and the estimated translated mask):
- ``colour_hist_distance``: total-variation distance of the per-channel colour histograms of the input object's
  pixels and the translated object's pixels (0 = same colours, 1 = disjoint);
- ``perceptual_distance``: the project's DPS (mode ``mean``: position-free channel means of unit-normalised tap
  features) between the two objects each pasted on mid grey;
- ``background_change``: mean absolute RGB change outside both the input object and the ideal target.
The last four need the ground truth (:data:`MASK_SCORES`); a dataset without it (horse2zebra, a folder) has only
the judge's two scores, and its tables leave the other columns out.
The ``identity`` reference (the input returned unchanged) gives the scores of no translation at all.
Masks come from the dataset (segmentation, meta) and are used for scoring only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from percept import seeds
from percept.autoencoders.models import Encoder
from percept.backbones.spec import NetworkSpec
from percept.checkpoints import load_checkpoint, save_checkpoint
from percept.data.embedded import shape_mask
from percept.data.store import ImageDataset
from percept.features import resolve_device
from percept.filters import gaussian_blur

log = logging.getLogger(__name__)

# The torch-free half (score names, tables, example files) lives in percept.translation.tables, so the summary
# and figure jobs need no torch; it is re-exported here.
from percept.translation.tables import (  # noqa: E402,F401
    MASK_SCORES, SCORES, read_examples, summarize, summarize_runs, write_examples)


# ------------------------------------------------------------------------------------------------- the judge
#
# A 3-way classifier: 0 = shape A, 1 = shape B, 2 = "neither". A plain A-vs-B classifier must call *anything*
# A or B, and calls a blurred blotch "B" as readily as a triangle; the third class is trained on corrupted real
# images (strong blur, down/up-sampling to a few pixels, heavy noise, blends of an A and a B image, the bare
# background, a random colour patch), so a translation counts as B only if it looks like a sharp B. The real
# images of A and B are augmented mildly (flips, quarter turns, colour jitter, light noise, light blur) so a
# clean but imperfect rendering is still judged by its shape.

JUDGE_CLASSES = ("A", "B", "neither")
CORRUPTIONS = ("blur", "downsample", "noise", "blend", "background", "patch")


def corrupt(x: torch.Tensor, kind: str, g: torch.Generator, *, other: torch.Tensor | None = None,
            background: torch.Tensor | None = None) -> torch.Tensor:
    """A "neither" version of the real images ``x`` (N, 3, H, W) in [0, 1]: one of :data:`CORRUPTIONS`.
    ``blend`` mixes with ``other`` (images of the other domain), ``background`` returns the clean backgrounds
    (or, without them, the image blurred beyond recognition)."""
    n, _, h, w = x.shape
    u = lambda lo, hi, *shape: lo + (hi - lo) * torch.rand(*(shape or (n,)), generator=g)
    if kind == "blur":
        return gaussian_blur(x, u(1.5, 3.5))
    if kind == "downsample":
        side = int(torch.randint(3, 7, (1,), generator=g))
        small = torch.nn.functional.interpolate(x, size=(side, side), mode="area")
        return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    if kind == "noise":
        soft = gaussian_blur(x, u(0.0, 1.5))
        return (soft + u(0.25, 0.5).view(-1, 1, 1, 1) * torch.randn(x.shape, generator=g)).clamp(0, 1)
    if kind == "blend":
        a = u(0.35, 0.65).view(-1, 1, 1, 1)
        return a * x + (1 - a) * (other if other is not None else x.flip(-1).transpose(-1, -2))
    if kind == "background":
        return background if background is not None else gaussian_blur(x, torch.full((n,), 6.0))
    if kind == "patch":  # a soft-edged random rectangle of one colour over the image, or the image's mean colour
        ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        cy, cx, hy, hx = u(0.25, 0.75) * h, u(0.25, 0.75) * w, u(0.15, 0.4) * h, u(0.15, 0.4) * w
        inside = (((ys - cy.view(-1, 1, 1)).abs() < hy.view(-1, 1, 1))
                  & ((xs - cx.view(-1, 1, 1)).abs() < hx.view(-1, 1, 1))).float()[:, None]
        inside = gaussian_blur(inside, u(0.5, 2.0))
        colour = torch.rand(n, 3, 1, 1, generator=g)
        base = gaussian_blur(x, torch.full((n,), 4.0))
        return inside * colour + (1 - inside) * base
    raise ValueError(f"unknown corruption {kind!r}; known: {CORRUPTIONS}")


def mild_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Label-preserving augmentation of real images: flips, quarter turns, colour jitter, light noise and blur."""
    n = len(x)
    flip = (torch.rand(n, generator=g) < 0.5).view(-1, 1, 1, 1)
    x = torch.where(flip, x.flip(-1), x)
    turn = (torch.rand(n, generator=g) < 0.5).view(-1, 1, 1, 1)
    x = torch.where(turn, x.transpose(-1, -2), x)
    gain = 0.8 + 0.4 * torch.rand(n, 3, 1, 1, generator=g)
    shift = 0.1 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    x = x * gain + shift
    soft = torch.rand(n, generator=g) < 0.3
    x = torch.where(soft.view(-1, 1, 1, 1), gaussian_blur(x, 0.3 + 0.4 * torch.rand(n, generator=g)), x)
    x = x + 0.03 * torch.rand(n, 1, 1, 1, generator=g) * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


def neither_batch(x: torch.Tensor, y: torch.Tensor, backgrounds: torch.Tensor | None,
                  g: torch.Generator) -> torch.Tensor:
    """One "neither" image per image of ``x`` (labels ``y``), the corruptions drawn at random."""
    kinds = torch.randint(len(CORRUPTIONS), (len(x),), generator=g)
    out = torch.empty_like(x)
    for k, kind in enumerate(CORRUPTIONS):
        idx = torch.nonzero(kinds == k).flatten()
        if len(idx) == 0:
            continue
        xb = x[idx]
        other = None
        if kind == "blend":  # mix with a random image of the other domain where there is one
            pool = [torch.nonzero(y != y[i]).flatten() for i in idx.tolist()]
            other = torch.stack([x[p[int(torch.randint(len(p), (1,), generator=g))]] if len(p) else x[i]
                                 for i, p in zip(idx.tolist(), pool)])
        out[idx] = corrupt(xb, kind, g, other=other,
                           background=backgrounds[idx] if backgrounds is not None else None)
    return out


def judge_meta(options: Mapping[str, Any], fingerprint: str, seed: int) -> dict[str, Any]:
    return {"stage": "translation-judge", "classes": list(JUDGE_CLASSES), "corruptions": list(CORRUPTIONS),
            "judge": dict(options["judge"]), "width": options["model"]["width"], "dataset": fingerprint,
            "seed": seed}


def _backgrounds(ds: ImageDataset) -> torch.Tensor | None:
    if "background" not in set(ds.meta_keys):
        return None
    return torch.from_numpy(ds.meta("background").astype(np.float32) / 255).permute(0, 3, 1, 2).contiguous()


def judge_accuracy(net: torch.nn.Module, ds: ImageDataset, device: torch.device, seed: int) -> dict[str, float]:
    """Accuracy of the judge on the held-out real images (A/B), on them mildly augmented, and on each
    corruption of them (correct = "neither"), with a fixed seed."""
    x, y = ds.batch(slice(None)), ds.labels().long()
    bg = _backgrounds(ds)
    g = seeds.torch_generator(seed, "translation.judge_eval")
    out = {"test_accuracy": float((judge_predict(net, x, device).cpu() == y).float().mean()),
           "augmented_accuracy": float((judge_predict(net, mild_augment(x, g), device).cpu() == y).float().mean())}
    for kind in CORRUPTIONS:
        other = x[torch.randperm(len(x), generator=g)] if kind == "blend" else None
        if kind == "blend":  # an image of the other domain for each
            rows = {c: torch.nonzero(y == c).flatten() for c in (0, 1)}
            if all(len(r) for r in rows.values()):
                other = torch.stack([x[rows[1 - int(c)][i % len(rows[1 - int(c)])]] for i, c in enumerate(y)])
        pred = judge_predict(net, corrupt(x, kind, g, other=other, background=bg), device).cpu()
        out[f"{kind}_neither"] = float((pred == 2).float().mean())
        out[f"{kind}_as_B"] = float((pred == 1).float().mean())
    out["corrupted_accuracy"] = float(np.mean([out[f"{k}_neither"] for k in CORRUPTIONS]))
    return out


def train_judge(dataset: str | Path, out: str | Path, *, options: Mapping[str, Any], seed: int = 0,
                device: str = "auto") -> dict[str, float]:
    """Train the frozen 3-way shape classifier (A / B / neither) on the real train images (mildly augmented)
    and corrupted versions of them; return its accuracies on the held-out test images (see
    :func:`judge_accuracy`)."""
    dev = resolve_device(device)
    opts = options["judge"]
    train, test = ImageDataset(dataset, split="train"), ImageDataset(dataset, split="test")
    x, y = train.batch(slice(None)), train.labels().long()
    bg = _backgrounds(train)
    size = x.shape[-1]
    torch.manual_seed(seed)
    net = Encoder(size, len(JUDGE_CLASSES), options["model"]["width"]).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=opts["lr"])
    g = torch.Generator().manual_seed(seed)
    bs = int(opts["batch_size"])
    steps = int(opts["epochs"]) * -(-len(y) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opts["lr"], total_steps=steps)  # ends settled
    for _ in range(int(opts["epochs"])):
        net.train()
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), bs):
            idx = perm[i:i + bs]
            real = mild_augment(x[idx], g)
            fake = mild_augment(neither_batch(x[idx], y[idx], bg[idx] if bg is not None else None, g), g)
            xb = torch.cat([real, fake]).to(dev)
            yb = torch.cat([y[idx], torch.full((len(idx),), 2, dtype=torch.long)]).to(dev)
            loss = torch.nn.functional.cross_entropy(net(xb)[0], yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    acc = judge_accuracy(net, test, dev, seed)
    log.info("judge accuracies on the held-out images: %s", {k: round(v, 3) for k, v in acc.items()})
    save_checkpoint(out, judge_meta(options, train.fingerprint, seed), model=net.state_dict(), image_size=size,
                    **{f"acc_{k}": v for k, v in acc.items()})
    return acc


def judge_predict(net: torch.nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """The judge's class (0 = A, 1 = B, 2 = neither) of each image."""
    return judge_probabilities(net, x, device, batch_size).argmax(1)


def judge_probabilities(net: torch.nn.Module, x: torch.Tensor, device: torch.device,
                        batch_size: int = 256) -> torch.Tensor:
    net.eval()
    with torch.inference_mode():
        return torch.cat([net(x[i:i + batch_size].to(device))[0].softmax(1) for i in range(0, len(x), batch_size)])


def load_judge(path: str | Path, options: Mapping[str, Any], fingerprint: str, seed: int,
               device: torch.device) -> tuple[torch.nn.Module, dict[str, float]]:
    """The judge and its held-out accuracies (``test_accuracy``, ``corrupted_accuracy``, ...)."""
    state = load_checkpoint(path, judge_meta(options, fingerprint, seed), map_location=device, missing_ok=False)
    net = Encoder(int(state["image_size"]), len(JUDGE_CLASSES), options["model"]["width"])
    net.load_state_dict(state["model"])
    acc = {k[4:]: float(v) for k, v in state.items() if k.startswith("acc_")}
    return net.to(device).eval(), acc


# ------------------------------------------------------------------------------------------------ the scores

def colour_hist_distance(a: np.ndarray, b: np.ndarray, bins: int = 16) -> float:
    """Total-variation distance of per-channel histograms of two pixel sets ``(n, 3)`` in [0, 1], averaged over
    channels; NaN when either set is empty."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    out = 0.0
    for c in range(3):
        ha = np.histogram(a[:, c], bins=bins, range=(0, 1))[0] / len(a)
        hb = np.histogram(b[:, c], bins=bins, range=(0, 1))[0] / len(b)
        out += 0.5 * np.abs(ha - hb).sum()
    return out / 3


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def ideal_target(shape: str, size: int, cx: float, cy: float, area: float, estimate: np.ndarray,
                 n_angles: int = 36) -> np.ndarray:
    """Shape ``shape`` centred at (cx, cy) with ``area`` pixels, rotated to fit ``estimate`` best."""
    unit = shape_mask(shape, 512, 256, 256, 200, 0.0).sum() / 200 ** 2  # area of circumradius 1
    radius = float(np.sqrt(area / unit))
    best, best_iou = None, -1.0
    for angle in np.linspace(0, 2 * np.pi, n_angles, endpoint=False):
        m = shape_mask(shape, size, cx, cy, radius, angle)
        v = iou(m, estimate)
        if best is None or (not np.isnan(v) and v > best_iou):
            best, best_iou = m, (-1.0 if np.isnan(v) else v)
        if shape == "circle":
            break
    return best


def translated_mask(translation: np.ndarray, background: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels of the translation (H, W, 3) in [0, 1] that differ from the clean background by > ``threshold``."""
    return np.abs(translation - background).mean(-1) > threshold


def on_grey(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None], img, 0.5)


def score_translations(inputs: torch.Tensor, translations: torch.Tensor, *, masks: np.ndarray | None,
                       backgrounds: np.ndarray | None, centres: np.ndarray | None, target_shape: str | None,
                       judge: torch.nn.Module, device: torch.device, dps, threshold: float) -> pd.DataFrame:
    """Per-image scores, columns :data:`SCORES`; without ground truth (``masks`` or ``backgrounds`` None: a
    downloaded photo set) only the judge's scores, the :data:`MASK_SCORES` columns left out rather than NaN."""
    n = len(inputs)
    pred = judge_predict(judge, translations, device).cpu()
    judged = {"target_shape_rate": (pred == 1).float().numpy(), "neither_rate": (pred == 2).float().numpy()}
    if masks is None or backgrounds is None:
        return pd.DataFrame(judged)
    out = {k: np.full(n, np.nan) for k in SCORES} | judged
    x = inputs.permute(0, 2, 3, 1).numpy()
    t = translations.permute(0, 2, 3, 1).numpy()
    pasted_in, pasted_tr = [], []
    for i in range(n):
        est = translated_mask(t[i], backgrounds[i], threshold)
        target = ideal_target(target_shape, x.shape[1], centres[i, 0], centres[i, 1], float(masks[i].sum()), est)
        out["mask_iou"][i] = iou(est, target)
        region = est if est.any() else target
        out["colour_hist_distance"][i] = colour_hist_distance(x[i][masks[i]], t[i][region])
        outside = ~(masks[i] | target)
        out["background_change"][i] = np.abs(t[i] - x[i])[outside].mean() if outside.any() else np.nan
        pasted_in.append(on_grey(x[i], masks[i]))
        pasted_tr.append(on_grey(t[i], region))
    a = torch.from_numpy(np.stack(pasted_in)).permute(0, 3, 1, 2).float()
    b = torch.from_numpy(np.stack(pasted_tr)).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        out["perceptual_distance"] = torch.cat([dps(a[i:i + 64].to(device), b[i:i + 64].to(device)).cpu()
                                                for i in range(0, n, 64)]).numpy()
    return pd.DataFrame(out)


def evaluate_translator(model: torch.nn.Module | None, dataset: str | Path, judge_path: str | Path, *,
                        options: Mapping[str, Any], variant: str, seed: int = 0, device: str = "auto",
                        allow_download: bool = False) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-image scores of one variant (``model=None``: the identity reference) and the examples the
    figure shows (``inputs``, ``translations``, uint8 NHWC, the first ``n_show`` test images of domain A)."""
    from percept.similarity import DPS

    dev = resolve_device(device)
    ev = options["evaluation"]
    test = ImageDataset(dataset, split="test")
    rows = np.flatnonzero(test.labels().numpy() == 0)
    if ev.get("max_images"):
        rows = rows[: int(ev["max_images"])]
    judge, judge_acc = load_judge(judge_path, options, test.fingerprint, seed, dev)
    x = test.batch(rows)
    if model is None:
        t = x.clone()
    else:
        model.eval()
        with torch.inference_mode():
            t = torch.cat([model.translate(x[i:i + 64].to(dev), "A", "B").cpu() for i in range(0, len(x), 64)])
    has_truth = test.has_segmentation and {"background", "cx", "cy"} <= set(test.meta_keys)
    metric = options["metric"]
    net = NetworkSpec.from_config(metric, "translation.metric")
    dps = DPS(net.backbone, weights=net.weights, taps=net.taps_arg, mode="mean", normalize=True,
              seed=seed, allow_download=allow_download).to(dev)
    kw: dict[str, Any] = {"masks": None, "backgrounds": None, "centres": None, "target_shape": None}
    if has_truth:
        kw = {"masks": test.masks(rows).any(1).numpy(),
              "backgrounds": test.meta("background")[rows].astype(np.float32) / 255,
              "centres": np.stack([test.meta("cx")[rows], test.meta("cy")[rows]], 1),
              "target_shape": test.class_names[1]}
    scores = score_translations(x, t, judge=judge, device=dev, dps=dps, threshold=ev["mask_threshold"], **kw)
    scores.insert(0, "image", rows)
    scores.insert(0, "variant", variant)
    scores["judge_test_accuracy"] = judge_acc["test_accuracy"]
    scores["judge_corrupted_accuracy"] = judge_acc["corrupted_accuracy"]
    k = int(options["n_show"])
    to_u8 = lambda v: np.round(v[:k].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    return scores, {"inputs": to_u8(x), "translations": to_u8(t), "rows": rows[:k]}
