"""The cell runners of the loss-network grid's tasks (registered in :mod:`percept.loss_networks.registry`):
each trains a small network with the cell's loss network and extraction point and returns its scores — or,
for perceptual similarity, scores the extraction point as a DPS metric (percept.similarity)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from percept.autoencoders.losses import LossNetwork, PerceptualLoss
from percept.autoencoders.models import Segmenter, SuperResolver
from percept.autoencoders.training import as_float, fit, load_images
from percept.backbones.spec import NetworkSpec
from percept.data.store import ImageDataset
from percept.features import resolve_device

log = logging.getLogger(__name__)


def loss_network(cell: Mapping[str, Any], seed: int, allow_download: bool, input: str = "imagenet") -> LossNetwork:
    """The cell's frozen loss network with raw features (no sigmoid: neither the grid paper's super-resolution
    nor its segmentation code squashes them); ``input`` is the task's ``input`` option (``unit`` or
    ``imagenet``, see :class:`percept.autoencoders.losses.LossNetwork`)."""
    net = NetworkSpec.from_config(cell, "loss_networks cell")
    return LossNetwork(net.backbone, cell["tap"], net.weights, net.resize, seed=seed, allow_download=allow_download,
                       input=input)


def _train_split(path: str, options: Mapping[str, Any]) -> ImageDataset:
    ds = ImageDataset(path, split="train")
    if options.get("max_train"):
        ds.rows = ds.rows[: int(options["max_train"])]
    return ds


def _checkpoint(work: str | os.PathLike) -> Path:
    return Path(str(work) + ".partial")


def _cell_meta(cell: Mapping[str, Any], options: Mapping[str, Any], ds: ImageDataset, seed: int) -> dict[str, Any]:
    return {"cell": repr(sorted(cell.items())), "options": repr(sorted(options.items())),
            "dataset_fingerprint": ds.fingerprint, "seed": int(seed)}


# -- super-resolution ---------------------------------------------------------------------------------
def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The low-resolution input: antialiased bicubic downsampling by ``scale``, clamped to [0, 1]."""
    return F.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True,
                         align_corners=False).clamp(0, 1)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) of images with values in [0, data_range]."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(data_range ** 2 / mse)


def rgb_to_y(images: np.ndarray) -> np.ndarray:
    """The luma Y of ITU-R BT.601 YCbCr in [16, 235] of RGB images (..., 3) in [0, 1]: 16 + 65.481 R +
    128.553 G + 24.966 B, the super-resolution convention the grid paper's code measures PSNR/SSIM on
    (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks src/super_res/test.py ``rgb_to_ycbcr``)."""
    x = np.asarray(images, np.float64)
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def sr_scores(outputs: torch.Tensor, images: torch.Tensor, channel: str = "y") -> dict[str, float]:
    """Mean PSNR and SSIM (scikit-image) over images (B, 3, H, W) in [0, 1]: on the Y channel (``y``, the
    papers': values in [0, 255], data range 255) or on RGB (``rgb``, data range 1)."""
    from skimage.metrics import structural_similarity

    out = outputs.clamp(0, 1).permute(0, 2, 3, 1).numpy().astype(np.float64)
    ref = images.permute(0, 2, 3, 1).numpy().astype(np.float64)
    if channel == "y":
        out, ref = rgb_to_y(out), rgb_to_y(ref)
        return {"psnr": float(np.mean([psnr(o, r, 255.0) for o, r in zip(out, ref)])),
                "ssim": float(np.mean([structural_similarity(o, r, data_range=255.0) for o, r in zip(out, ref)]))}
    if channel != "rgb":
        raise ValueError(f"channel must be y or rgb, got {channel!r}")
    return {"psnr": float(np.mean([psnr(o, r) for o, r in zip(out, ref)])),
            "ssim": float(np.mean([structural_similarity(o, r, channel_axis=2, data_range=1.0)
                                   for o, r in zip(out, ref)]))}


def _sr_evaluate(model: torch.nn.Module, test: ImageDataset, scale: int, dev: torch.device, channel: str
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """PSNR / SSIM of the model's outputs and of bilinear upsampling on every image of ``test``."""
    outs, refs, base = [], [], []
    with torch.inference_mode():
        for i in range(0, len(test), 64):
            x = test.batch(slice(i, min(i + 64, len(test))))
            lr_img = downsample(x, scale)
            outs.append(model(lr_img.to(dev)).float().cpu())
            base.append(F.interpolate(lr_img, scale_factor=scale, mode="bilinear", align_corners=False))
            refs.append(x)
    return sr_scores(torch.cat(outs), torch.cat(refs), channel), sr_scores(torch.cat(base), torch.cat(refs), channel)


def super_resolution(inputs: Mapping[str, str], cell: Mapping[str, Any], options: Mapping[str, Any], *,
                     work: str, seed: int = 0, device: str = "auto", progress: bool = True,
                     allow_download: bool = False) -> dict[str, float]:
    """Train the ×scale super-resolver with the cell's perceptual loss (plus ``pixel_weight`` × MSE);
    the loss network takes the images as ``input`` says: ``unit`` (the default) unnormalised in [0, 1], as the
    grid paper's code builds it (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks
    src/super_res/train.py and test.py: ``FeatureExtractor(..., normalize_in=False)``), ``imagenet``
    normalised. PSNR / SSIM of its test outputs, and of bilinear upsampling as a reference. With ``inputs["benchmarks"]``
    (``benchmarks: sr_benchmarks``) also on each of its splits (Set5, Set14, BSD100, the grid paper's test
    sets): extra columns ``psnr_set5``, ``ssim_set5``, ``psnr_bilinear_set5``, …"""
    dev = resolve_device(device)
    ds = _train_split(inputs["dataset"], options)
    images = load_images(ds)
    scale = int(options["scale"])
    torch.manual_seed(seed)
    model = SuperResolver(scale, int(options["width"])).to(dev)
    perceptual = PerceptualLoss(loss_network(cell, seed, allow_download, options["input"])).to(dev)
    pixel_weight = float(options["pixel_weight"])

    def step(idx):
        x = as_float(images[idx], dev)
        out = model(downsample(x, scale))
        loss = perceptual(out, x)
        return loss + pixel_weight * F.mse_loss(out, x) if pixel_weight else loss

    history = fit(model, step, len(ds), epochs=int(options["epochs"]), batch_size=int(options["batch_size"]),
                  lr=float(options["lr"]), seed=seed, checkpoint=_checkpoint(work),
                  meta=_cell_meta(cell, options, ds, seed), progress=progress, desc=f"sr {cell['network']}")
    channel = options["channel"]
    model.eval()
    scores, ref = _sr_evaluate(model, ImageDataset(inputs["dataset"], split="test"), scale, dev, channel)
    scores.update(psnr_bilinear=ref["psnr"], ssim_bilinear=ref["ssim"])
    if inputs.get("benchmarks"):  # the grid paper's test sets: Set5, Set14, BSD100 (percept.data.prepare)
        for part in ImageDataset(inputs["benchmarks"]).split_names:
            bench, bench_ref = _sr_evaluate(model, ImageDataset(inputs["benchmarks"], split=part), scale, dev, channel)
            scores.update({f"{k}_{part}": v for k, v in bench.items()})
            scores.update({f"{k}_bilinear_{part}": v for k, v in bench_ref.items()})
    log.info("trained in %.1f s", sum(h["seconds"] for h in history))
    _checkpoint(work).unlink(missing_ok=True)
    return scores


# -- segmentation -------------------------------------------------------------------------------------
def foreground(ds: ImageDataset, positions) -> torch.Tensor:
    """(B, 1, H, W) float mask of every object's pixels (the roads of the paper's task)."""
    return ds.masks(positions).any(1, keepdim=True).float()


def segmentation_scores(prob: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5) -> dict[str, float]:
    """Pixel counts pooled over the test set (Wiedemann et al.'s road-extraction measures):
    completeness = TP/(TP+FN), correctness = TP/(TP+FP), IoU (their "quality") = TP/(TP+FP+FN)."""
    pred, true = prob > threshold, truth > 0.5
    tp = float((pred & true).sum())
    fp = float((pred & ~true).sum())
    fn = float((~pred & true).sum())
    return {"iou": tp / max(tp + fp + fn, 1.0), "completeness": tp / max(tp + fn, 1.0),
            "correctness": tp / max(tp + fp, 1.0)}


def segmentation_loss(prob: torch.Tensor, mask: torch.Tensor, perceptual: PerceptualLoss,
                      pixel_weight: float = 1.0, perceptual_weight: float = 0.01) -> torch.Tensor:
    """``pixel_weight`` × BCE(prob, mask) + ``perceptual_weight`` × MSE between the loss network's features of
    the predicted and of the true mask, each repeated to a grey RGB image (B, 1, H, W → B, 3, H, W).

    The defaults are the grid paper's: ``prediction_loss + mu * VGG_loss`` with ``mu = 0.01``, BCE and MSE
    both averaged over all elements (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks
    src/topology_aware_delineation/train.py ``Training_Utility.iteration_loss`` and ``epoch_in_train``, one
    iteration K = 1 and one extraction point, as main.py trains)."""
    loss = perceptual_weight * perceptual(prob.expand(-1, 3, -1, -1), mask.expand(-1, 3, -1, -1))
    return loss + pixel_weight * F.binary_cross_entropy(prob, mask) if pixel_weight else loss


def segmentation(inputs: Mapping[str, str], cell: Mapping[str, Any], options: Mapping[str, Any], *, work: str,
                 seed: int = 0, device: str = "auto", progress: bool = True,
                 allow_download: bool = False) -> dict[str, float]:
    """Train the segmenter with ``pixel_weight`` × BCE + ``perceptual_weight`` × the perceptual loss between
    the loss network's features of the predicted and of the true mask (both as grey RGB images): the grid
    paper's BCE + 0.01 · perceptual by default (its topology-aware delineation code, ``--mu 0.01``); score on
    test. The loss network's ``input`` is ``imagenet`` by default: that code's ``FNN_CNN_Net`` normalises the
    masks with the ImageNet mean and std (src/topology_aware_delineation/train.py)."""
    dev = resolve_device(device)
    ds = _train_split(inputs["dataset"], options)
    images = load_images(ds)
    masks = foreground(ds, slice(0, len(ds)))
    torch.manual_seed(seed)
    model = Segmenter(int(options["width"])).to(dev)
    perceptual = PerceptualLoss(loss_network(cell, seed, allow_download, options["input"])).to(dev)
    pixel_weight = float(options["pixel_weight"])
    perceptual_weight = float(options["perceptual_weight"])

    def step(idx):
        x = as_float(images[idx], dev)
        return segmentation_loss(model(x), masks[idx].to(dev), perceptual, pixel_weight, perceptual_weight)

    history = fit(model, step, len(ds), epochs=int(options["epochs"]), batch_size=int(options["batch_size"]),
                  lr=float(options["lr"]), seed=seed, checkpoint=_checkpoint(work),
                  meta=_cell_meta(cell, options, ds, seed), progress=progress, desc=f"seg {cell['network']}")
    test = ImageDataset(inputs["dataset"], split="test")
    probs, truth = [], []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(test), 64):
            sl = slice(i, min(i + 64, len(test)))
            probs.append(model(test.batch(sl).to(dev)).float().cpu())
            truth.append(foreground(test, sl))
    scores = segmentation_scores(torch.cat(probs), torch.cat(truth))
    log.info("trained in %.1f s", sum(h["seconds"] for h in history))
    _checkpoint(work).unlink(missing_ok=True)
    return scores


# -- dimensionality reduction -------------------------------------------------------------------------
def dimensionality_reduction(inputs: Mapping[str, str], cell: Mapping[str, Any], options: Mapping[str, Any], *,
                             work: str, seed: int = 0, device: str = "auto", progress: bool = True,
                             allow_download: bool = False) -> dict[str, float]:
    """An autoencoder trained with the cell's loss network and tap — by default the grid paper's procedure
    (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks src/perceptual_autoencoders/experiment.py:
    ``FourLayerCVAE`` with perceptual loss, γ = 0, unnormalised input, raw features) — whose frozen embeddings
    are judged by the configured predictors (mean over predictors and seeds); the constant predictor's
    levels come along as ``chance_<metric>`` columns. ``procedure`` picks another of the six."""
    from percept.autoencoders.predictors import evaluate_embeddings
    from percept.autoencoders.training import encode, train_autoencoder
    from percept.h5io import open_h5

    net = {k: cell[k] for k in ("backbone", "weights", "tap", "resize")}
    net.update(input=options["input"], sigmoid=bool(options["sigmoid"]))
    ae_options = {**options, "loss_network": net, "train_split": options["train_split"]}
    model, history, _ = train_autoencoder(inputs["dataset"], str(work) + ".model",
                                          loss=options["procedure"],
                                          embedding_size=int(options["embedding_size"]), options=ae_options,
                                          feature_cache=inputs.get("features"), seed=seed, device=device,
                                          progress=progress, allow_download=allow_download)
    Path(str(work) + ".model").unlink(missing_ok=True)
    ds = ImageDataset(inputs["dataset"])
    emb = encode(model, ds, device=device)
    with open_h5(inputs["dataset"], "dataset") as f:
        codes = f["split"][...]
    pred = options["predictors"]
    runs = evaluate_embeddings(emb, ds, codes, pred["hidden"], [seed + s for s in range(int(pred["seeds"]))], pred)
    means = runs.groupby("metric")[["value", "chance"]].mean()
    scores = {metric: float(r["value"]) for metric, r in means.iterrows()}  # exact_match, mean_ap: extra columns
    scores.update({f"chance_{metric}": float(r["chance"]) for metric, r in means.iterrows()})
    log.info("autoencoder trained in %.1f s", sum(h["seconds"] for h in history))
    return scores


# -- perceptual similarity ---------------------------------------------------------------------------
def majority(judge) -> torch.Tensor:
    """The judgement of the majority of people: 1 (p1 closer), 0 (p0 closer), ½ on a tie."""
    j = torch.as_tensor(judge, dtype=torch.float64)
    return (j > 0.5).double() + 0.5 * (j == 0.5).double()


def perceptual_similarity(inputs: Mapping[str, str], cell: Mapping[str, Any], options: Mapping[str, Any], *,
                          work: str, seed: int = 0, device: str = "auto", progress: bool = True,
                          allow_download: bool = False) -> dict[str, float]:
    """The cell's tap as an uncalibrated DPS metric (unit-normalised channels, squared difference, spatial
    mean, uniform channel weights: Zhang et al. 2018 eq. 1 with w = 1) scored on a 2AFC set:

    - ``two_afc``: the 2AFC score against the people's judgements, the unweighted mean over categories (as
      BAPPS results are reported; percept.similarity.scoring);
    - ``ordering_accuracy``: the 2AFC score against the majority judgement (the fraction of triplets ordered
      as most people did).

    No training; ``work`` is unused. ``max_triplets`` keeps the first triplets of the set.
    """
    from tqdm.auto import tqdm

    from percept.data.bapps import TwoAFCData
    from percept.similarity import DPS, two_afc, two_afc_scores
    from percept.similarity.scoring import category_rows

    dev = resolve_device(device)
    data = TwoAFCData(inputs["two_afc"])
    n = len(data) if not options.get("max_triplets") else min(len(data), int(options["max_triplets"]))
    net = NetworkSpec.from_config(cell, "loss_networks cell")
    metric = DPS(net.backbone, weights=net.weights, taps=[cell["tap"]], mode="spatial",
                 normalize=True, linear=None, scaling="backbone", resize=net.resize, seed=seed,
                 allow_download=allow_download).to(dev)
    batch = int(options["batch_size"])
    d0, d1 = [], []
    with torch.inference_mode():
        for start in tqdm(range(0, n, batch), desc=f"2afc {cell['network']} {cell['tap']}", disable=not progress):
            ref, p0, p1 = (x.to(dev) for x in data.batch(slice(start, min(start + batch, n))))
            a, b = metric.two_afc_distances(ref, p0, p1)
            d0.append(a.float().cpu())
            d1.append(b.float().cpu())
    d0, d1 = torch.cat(d0), torch.cat(d1)
    judge, category = data.judge[:n], data.category[:n]
    rows = category_rows(two_afc_scores(d0, d1, judge), category, data.categories)
    score = next(r["score"] for r in rows if r["category"] == "mean (unweighted)")
    log.info("2AFC on %s (%d triplets): %s", data.name, n, rows)
    return {"two_afc": score, "ordering_accuracy": two_afc(d0, d1, majority(judge)), "triplets": n}


def run_cell(task: str, inputs: Mapping[str, str], cell: Mapping[str, Any], options: Mapping[str, Any],
             **common) -> Any:
    """Run one grid cell and return its tidy table: one row per score (extra measurements as columns)."""
    import pandas as pd

    from percept import backbones

    from percept.loss_networks.registry import TASKS

    spec = TASKS[task]
    scores = spec.runner()(inputs, cell, options, **common)
    extra = {k: v for k, v in scores.items() if k not in spec.scores}
    net = NetworkSpec.from_config(cell, "loss_networks cell")
    acc = net.registry().imagenet_acc1 if net.weights == "imagenet" else None
    rows = [{"task": task, "dataset": cell["dataset"], "network": cell["network"], "backbone": cell["backbone"],
             "weights": net.weights, "tap": cell["tap"], "tap_index": cell["tap_index"],
             "imagenet_acc1": acc, "metric": metric, "value": scores[metric],
             "higher_is_better": higher, **extra}
            for metric, higher in spec.scores.items() if metric in scores]
    return pd.DataFrame(rows)
