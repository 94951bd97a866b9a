"""The trained explainer of "What You See is What You Classify" (Stalder et al., NeurIPS 2022; NN-Explainer).

An encoder from the backbone registry (its taps at several scales) and a light decoder (1×1 lateral convs,
upsampling and 3×3 convs, FPN-like) output one mask per class at input resolution, sigmoid-bounded. For an
image with target classes T the target mask is the pixel-wise max over the masks of T, the non-target mask the
max over the other classes. The loss (the paper's eq. 1 with its code's defaults) is

    BCE(f(I ⊙ m_T), y)                                  classification on the kept region, all classes
  + λ_E · (−H(softmax f(I ⊙ (1 − m_T))))                negative entropy on the removed region
  + λ_A · [ Σ_{c∈T} bounds(m_c) ]                        min/max area on the sorted mask values
  + λ_T · mean(m_T) + λ_N · mean(m_N)                    area of target and non-target masks
  + λ_TV · (TV(m_T) + TV(m_N))                           smoothness (reflect-padded differences, as its code)

with bounds(m) = mean(relu(1[i < a_min·P] − sort↓(m)_i)) + mean(relu(sort↓(m)_i − 1[i < a_max·P])).
Masked images are I·m + μ·(1 − m), μ the classifier's normalisation mean (the code multiplies the normalised
image: removed pixels are 0 there; ``fill: black`` keeps pixel-space black).
The classifier is frozen; the explainer trains with Adam, checkpoints every epoch and resumes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from percept import backbones, seeds
from percept.data.store import ImageDataset
from percept.checkpoints import load_checkpoint, save_checkpoint
from percept.explain.attributor import Targets, target_lists
from percept.explain.classifier import train_split
from percept.features import TapExtractor, prepare_input

log = logging.getLogger(__name__)
OUT_INIT_SCALE = 0.01  # the mask head's He-initialised weights scaled down (see Explainer.__init__)


class Explainer(nn.Module):
    """Images in [0, 1] → per-class mask logits ``(B, K, H, W)`` (``masks()`` applies the sigmoid)."""

    def __init__(self, encoder: str, num_classes: int, taps: Sequence[str] | str = "paper", width: int = 64,
                 weights: str = "imagenet", seed: int = 0, train_encoder: bool = False):
        super().__init__()
        self.spec = backbones.get(encoder)
        self.taps = backbones.resolve_taps(self.spec, taps if isinstance(taps, str) else list(taps))
        self.encoder = TapExtractor(self.spec.build(weights, seed=seed), self.taps)
        self.train_encoder = train_encoder
        for p in self.encoder.parameters():
            p.requires_grad_(train_encoder)
        with torch.inference_mode():
            probe = self.encoder(torch.zeros(1, 3, 64, 64))
        gen = torch.Generator().manual_seed(seed)
        self.lateral = nn.ModuleList(nn.Conv2d(probe[t].shape[1], width, 1) for t in self.taps)
        self.smooth = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
                                    for _ in self.taps)
        self.out = nn.Conv2d(width, num_classes, 3, padding=1)
        for m in [*self.lateral.modules(), *self.smooth.modules(), *self.out.modules()]:
            if isinstance(m, nn.Conv2d):
                with torch.no_grad():
                    m.weight.normal_(0, (2.0 / m.weight[0].numel()) ** 0.5, generator=gen)
                    m.bias.zero_()
        # the mask head starts undecided (logits ≈ 0, masks ≈ 0.5, the sigmoid's full gradient). He-initialised
        # like the layers before it, on the encoder's unnormalised features its logits start with a standard
        # deviation of ~15 (efficientnet_lite0 on shapes): saturated masks whose area terms have no gradient,
        # which trained to all-ones (mean mask 0.999 after the embedded default's 40 steps)
        with torch.no_grad():
            self.out.weight.mul_(OUT_INIT_SCALE)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.train_encoder:
            self.encoder.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = prepare_input(images, self.spec, None)
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            feats = self.encoder(x)
        # top-down: the deepest tap first, each finer tap added after upsampling
        order = sorted(range(len(self.taps)), key=lambda i: feats[self.taps[i]].shape[-1])
        h = None
        for i in order:
            lat = self.lateral[i](feats[self.taps[i]])
            h = lat if h is None else lat + F.interpolate(h, size=lat.shape[-2:], mode="bilinear", align_corners=False)
            h = self.smooth[i](h)
        return F.interpolate(self.out(h), size=images.shape[-2:], mode="bilinear", align_corners=False)

    def masks(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(images))

    def attribute(self, images: torch.Tensor, targets: Targets) -> torch.Tensor:
        """The targets' masks ``(B, T, H, W)`` on the CPU (an :class:`~percept.explain.attributor.Attributor`)."""
        rows = torch.tensor(target_lists(targets, len(images)))
        with torch.inference_mode():
            return self.masks(images).cpu()[torch.arange(len(rows))[:, None], rows]


# --- loss terms ---------------------------------------------------------------------------------------------
def merge_masks(masks: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-wise max over the target classes' masks and over the other classes' masks ``(B, H, W)`` each."""
    sel = targets.bool()[:, :, None, None]
    low = torch.zeros((), dtype=masks.dtype, device=masks.device)
    target = torch.where(sel, masks, low).amax(1)
    non_target = torch.where(~sel, masks, low).amax(1)
    return target, non_target


def total_variation(mask: torch.Tensor, border: str = "reflect") -> torch.Tensor:
    """Mean over pixels of |m(i,j) − m(i,j+1)| + |m(i,j) − m(i+1,j)| for masks ``(B, H, W)``.

    ``reflect`` (NN-Explainer's ``TotalVariationConv``: difference kernels convolved with reflect padding) takes
    the last column's right neighbour as the one before it, so the border differences count; ``zero`` (the
    project's earlier term) counts them as 0."""
    if border == "reflect":
        padded = F.pad(mask[:, None], (0, 1, 0, 1), mode="reflect")[:, 0]
        right = (padded[..., :-1, :-1] - padded[..., :-1, 1:]).abs()
        down = (padded[..., :-1, :-1] - padded[..., 1:, :-1]).abs()
        return (right + down).mean()
    if border != "zero":
        raise ValueError(f"total-variation border must be 'reflect' or 'zero', got {border!r}")
    right = (mask[..., :, 1:] - mask[..., :, :-1]).abs()
    down = (mask[..., 1:, :] - mask[..., :-1, :]).abs()
    n = mask[..., 0, 0].numel() * mask.shape[-1] * mask.shape[-2]
    return (right.sum() + down.sum()) / n


def masked(images: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor | None) -> torch.Tensor:
    """I·m + R·(1 − m): ``fill`` R the classifier's normalisation mean (NN-Explainer multiplies the normalised
    image, so removed pixels are 0 there) or None for pixel-space black."""
    if fill is None:
        return images * mask[:, None]
    return fill + (images - fill) * mask[:, None]


def removal_fill(classifier: nn.Module, fill: str, like: torch.Tensor) -> torch.Tensor | None:
    """The colour of removed pixels: ``norm_zero`` (the classifier's normalisation mean) or ``black``."""
    if fill == "black":
        return None
    if fill != "norm_zero":
        raise ValueError(f"explainer fill must be 'norm_zero' or 'black', got {fill!r}")
    spec = getattr(classifier, "spec", None)
    if spec is None:
        raise ValueError("the norm_zero fill needs a classifier with a backbone spec (its normalisation mean)")
    return torch.tensor(spec.mean, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """Negative mean entropy of softmax(logits) (minimising it makes the removed region uninformative)."""
    probs = F.softmax(logits, dim=-1).clamp_min(1e-16)
    return (probs * probs.log()).mean()


def area_bounds(mask: torch.Tensor, min_area: float, max_area: float) -> torch.Tensor:
    """The paper's min/max area term on one mask's values sorted in decreasing order (mean over pixels)."""
    v = mask.flatten().sort(descending=True).values
    n = v.numel()
    idx = torch.arange(n, device=v.device)
    loss = torch.zeros((), device=v.device)
    if min_area > 0:
        loss = loss + F.relu((idx < int(n * min_area)).float() - v).mean()
    if max_area < 1:
        loss = loss + F.relu(v - (idx < int(n * max_area)).float()).mean()
    return loss


def class_area_loss(masks: torch.Tensor, targets: torch.Tensor, min_area: float, max_area: float) -> torch.Tensor:
    """Σ over each image's target classes of ``area_bounds``, averaged over the batch."""
    per_image = []
    for m, t in zip(masks, targets):
        terms = [area_bounds(m[c], min_area, max_area) for c in torch.nonzero(t > 0.5).flatten().tolist()]
        per_image.append(torch.stack(terms).sum() if terms else torch.zeros((), device=masks.device))
    return torch.stack(per_image).mean()


def explainer_loss(classifier: nn.Module, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
                   opts: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    target, non_target = merge_masks(masks, targets)
    fill = removal_fill(classifier, opts.get("fill", "norm_zero"), images)
    logits_kept = classifier(masked(images, target, fill))
    logits_removed = classifier(masked(images, 1 - target, fill))
    terms = {
        "classification": F.binary_cross_entropy_with_logits(logits_kept, targets),
        "entropy": opts["entropy"] * entropy_loss(logits_removed),
        "area_bounds": opts["area_constraint"] * class_area_loss(masks, targets, opts["min_area"], opts["max_area"]),
        "area_target": opts["target_area"] * target.mean(),
        "area_non_target": opts["non_target_area"] * non_target.mean(),
        "smoothness": opts["smoothness"] * (total_variation(target, opts.get("tv_border", "reflect"))
                                            + total_variation(non_target, opts.get("tv_border", "reflect"))),
    }
    total = sum(terms.values())
    return total, {k: float(v.detach()) for k, v in terms.items()}


# --- training -----------------------------------------------------------------------------------------------
def explainer_identity(opts: Mapping[str, Any], classifier_identity: Mapping[str, Any], seed: int) -> dict:
    keys = ("encoder", "taps", "width", "train_encoder", "epochs", "batch_size", "lr", "entropy", "area_constraint",
            "min_area", "max_area", "target_area", "non_target_area", "smoothness", "train_images")
    extra = {k: opts[k] for k in ("fill", "tv_border") if k in opts}  # absent: the earlier checkpoints' identity
    return {"format": "percept-explainer-1", "classifier": dict(classifier_identity), "seed": seed,
            **{k: opts[k] for k in keys}, **extra}


def build_explainer(opts: Mapping[str, Any], num_classes: int, seed: int) -> Explainer:
    return Explainer(opts["encoder"], num_classes, opts["taps"], opts["width"], seed=seed,
                     train_encoder=opts["train_encoder"])


def train_explainer(dataset_path: str | Path, classifier: nn.Module, out_path: str | Path, opts: Mapping[str, Any],
                    *, seed: int = 0, device: torch.device | str = "cpu", progress: bool = True,
                    resume_path: str | Path | None = None) -> dict[str, Any]:
    """Train on the train split; checkpoint every epoch to ``resume_path`` and resume from it."""
    dev = torch.device(device)
    train = ImageDataset(dataset_path, split=train_split(dataset_path))
    labels = train.labels().float()
    ident = explainer_identity(opts, classifier.identity, seed)
    torch.manual_seed(seed)
    model = build_explainer(opts, train.num_classes, seed).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=opts["lr"])
    classifier = classifier.to(dev).eval()
    history: list[dict[str, float]] = []
    start = 0
    resume_path = Path(resume_path) if resume_path else None
    if resume_path and resume_path.exists():
        ck = load_checkpoint(resume_path, ident, missing_ok=False)
        model.load_state_dict(ck["state"], strict=False)
        opt.load_state_dict(ck["optimizer"])
        history = json.loads(ck["history"])
        start = int(ck["epoch"]) + 1
        log.info("resuming explainer training from %s (epoch %d done)", resume_path, start)
    n = min(len(train), opts["train_images"] or len(train))
    subset = np.sort(seeds.rng(seed, "explain.explainer_subset").choice(len(train), size=n, replace=False))
    bs = opts["batch_size"]
    for epoch in range(start, opts["epochs"]):
        model.train()
        perm = subset[seeds.rng(seed, "explain.explainer_epoch", epoch).permutation(n)]
        sums: dict[str, float] = {}
        bar = tqdm(range(0, n, bs), desc=f"explainer epoch {epoch + 1}/{opts['epochs']}", disable=not progress)
        for i in bar:
            idx = np.sort(perm[i:i + bs])
            x = train.batch(idx).to(dev)
            y = labels[idx].to(dev)
            loss, terms = explainer_loss(classifier, x, model.masks(x), y, opts)
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in {**terms, "loss": float(loss.detach())}.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
        history.append({"epoch": epoch, **{k: v / n for k, v in sums.items()}})
        log.info("explainer epoch %d: %s", epoch, {k: round(v, 4) for k, v in history[-1].items()})
        if resume_path:
            save_checkpoint(resume_path, ident, **_payload(model, opt, history, epoch))
    save_checkpoint(out_path, ident, **_payload(model, opt, history, opts["epochs"] - 1))
    return {"history": history, "images": n}


def _payload(model, opt, history, epoch) -> dict[str, Any]:
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.") or model.train_encoder}
    return {"state": state, "optimizer": opt.state_dict(), "history": json.dumps(history), "epoch": epoch}


def load_explainer(path: str | Path, num_classes: int, seed: int = 0) -> Explainer:
    ck = load_checkpoint(path, missing_ok=False)
    ident = ck["meta"]
    model = build_explainer(ident, num_classes, seed)
    model.load_state_dict(ck["state"], strict=False)
    missing = [k for k in model.state_dict() if k not in ck["state"] and not k.startswith("encoder.")]
    if missing:
        raise RuntimeError(f"{path}: checkpoint lacks decoder weights {missing[:3]}…")
    return model.eval()
