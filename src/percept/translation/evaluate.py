"""Scores of a trained translator on the test images of domain A translated into domain B.

Shape translated:
- ``target_shape_rate``: the fraction of translations a frozen shape classifier (the *judge*, trained on the real
  train images of both domains, never on translations) labels as the target shape B;
- ``mask_iou``: IoU between the translated object (pixels differing from the image's clean background by more
  than ``mask_threshold`` in mean absolute RGB) and the ideal target: shape B at the input object's centre with
  the input object's area, at the rotation that fits best (a circle or a square gives the input no orientation).
Appearance preserved (with the ground-truth input mask and the estimated translated mask):
- ``colour_hist_distance``: total-variation distance of the per-channel colour histograms of the input object's
  pixels and the translated object's pixels (0 = same colours, 1 = disjoint);
- ``perceptual_distance``: the project's DPS (mode ``mean``: position-free channel means of unit-normalised tap
  features) between the two objects each pasted on mid grey;
- ``background_change``: mean absolute RGB change outside both the input object and the ideal target.
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

from percept.autoencoders.models import Encoder
from percept.data.embedded import shape_mask
from percept.data.store import ImageDataset
from percept.features import resolve_device
from percept.mpcs.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

SCORES = ("target_shape_rate", "mask_iou", "colour_hist_distance", "perceptual_distance", "background_change")


# ------------------------------------------------------------------------------------------------- the judge

def judge_meta(options: Mapping[str, Any], fingerprint: str, seed: int) -> dict[str, Any]:
    return {"stage": "translation-judge", "judge": dict(options["judge"]), "width": options["model"]["width"],
            "dataset": fingerprint, "seed": seed}


def train_judge(dataset: str | Path, out: str | Path, *, options: Mapping[str, Any], seed: int = 0,
                device: str = "auto") -> dict[str, float]:
    """Train the frozen shape classifier (A vs B) on the real train images; return its test accuracy."""
    dev = resolve_device(device)
    opts = options["judge"]
    train, test = ImageDataset(dataset, split="train"), ImageDataset(dataset, split="test")
    x, y = train.batch(slice(None)), train.labels().long()
    size = x.shape[-1]
    torch.manual_seed(seed)
    net = Encoder(size, 2, options["model"]["width"]).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=opts["lr"])
    g = torch.Generator().manual_seed(seed)
    for _ in range(int(opts["epochs"])):
        net.train()
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), int(opts["batch_size"])):
            idx = perm[i:i + int(opts["batch_size"])]
            flip = torch.rand(len(idx), generator=g) < 0.5  # shapes are symmetric: flips are free data
            xb = torch.where(flip.view(-1, 1, 1, 1), x[idx].flip(-1), x[idx]).to(dev)
            loss = torch.nn.functional.cross_entropy(net(xb)[0], y[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    accuracy = float((judge_predict(net, test.batch(slice(None)), dev) == test.labels().to(dev)).float().mean())
    save_checkpoint(out, judge_meta(options, train.fingerprint, seed), model=net.state_dict(), image_size=size,
                    test_accuracy=accuracy)
    return {"test_accuracy": accuracy}


def judge_predict(net: torch.nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    net.eval()
    with torch.inference_mode():
        return torch.cat([net(x[i:i + batch_size].to(device))[0].argmax(1) for i in range(0, len(x), batch_size)])


def load_judge(path: str | Path, options: Mapping[str, Any], fingerprint: str, seed: int,
               device: torch.device) -> tuple[torch.nn.Module, float]:
    state = load_checkpoint(path, judge_meta(options, fingerprint, seed), map_location=device, missing_ok=False)
    net = Encoder(int(state["image_size"]), 2, options["model"]["width"])
    net.load_state_dict(state["model"])
    return net.to(device).eval(), float(state["test_accuracy"])


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
    """Per-image scores (columns :data:`SCORES`); mask-based scores are NaN without ground truth."""
    n = len(inputs)
    out = {k: np.full(n, np.nan) for k in SCORES}
    out["target_shape_rate"] = (judge_predict(judge, translations, device) == 1).float().cpu().numpy()
    if masks is None or backgrounds is None:
        return pd.DataFrame(out)
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
    dps = DPS(metric["backbone"], weights=metric["weights"], taps=metric["taps"], mode="mean", normalize=True,
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
    scores["judge_test_accuracy"] = judge_acc
    k = int(options["n_show"])
    to_u8 = lambda v: np.round(v[:k].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    return scores, {"inputs": to_u8(x), "translations": to_u8(t), "rows": rows[:k]}


def summarize(per_image: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy table: one row per (variant, score) with the mean, standard error and image count."""
    long = per_image.melt(id_vars=["variant", "image"], value_vars=list(SCORES), var_name="score")
    g = long.groupby(["variant", "score"], sort=False)["value"]
    out = pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n": g.count()}).reset_index()
    return out


def write_examples(path: str | Path, examples: Mapping[str, np.ndarray], variant: str) -> None:
    """The examples the figure shows, as an HDF5 file written atomically."""
    from percept.h5io import atomic_h5

    with atomic_h5(path, kind="translation_examples", meta={"variant": variant}) as f:
        for key, arr in examples.items():
            f.create_dataset(key, data=arr)


def read_examples(path: str | Path) -> dict[str, Any]:
    from percept.h5io import get_json_attr, open_h5

    with open_h5(path, "translation_examples") as f:
        return {"variant": get_json_attr(f, "variant"), **{k: f[k][...] for k in f}}


def summarize_runs(score_files: list[str], timing_files: list[str], *, per_image: str, ablation: str,
                   timing: str) -> pd.DataFrame:
    """Concatenate the variants' per-image scores, write the tidy ablation table and the training times."""
    import json

    from percept.tables import write_csv

    scores = pd.concat([pd.read_csv(f) for f in score_files], ignore_index=True)
    table = summarize(scores)
    times = []
    for f in timing_files:
        info = json.loads(Path(f).read_text())
        for epoch, s in enumerate(info["seconds_per_epoch"], 1):
            times.append({"variant": info["variant"], "epoch": epoch, "seconds": s,
                          "steps": info["steps_per_epoch"], "device": info["device"]})
    write_csv(scores, per_image)
    write_csv(table, ablation)
    write_csv(pd.DataFrame(times, columns=["variant", "epoch", "seconds", "steps", "device"]), timing)
    return table
