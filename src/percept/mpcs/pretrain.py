"""MPCS pretraining: NT-Xent over magnification pairs of the training patients (Chhipa et al. 2023, sec. 3)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from percept.checkpoints import load_checkpoint, save_checkpoint
from percept.data.store import ImageDataset, fingerprint
from percept.features import resolve_device
from percept.mpcs import STRATEGIES
from percept.mpcs.augment import Augment
from percept.mpcs.loss import nt_xent, pair_accuracy
from percept.mpcs.model import Encoder, ProjectionHead, recalibrate_batchnorm
from percept.mpcs.pairs import PairSampler
from percept.mpcs.splits import fold_rows

log = logging.getLogger(__name__)


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as SimCLR and MPCS use it: SGD with momentum whose step for each weight
    tensor is scaled by ``trust * ||w|| / ||g + wd w||``; biases and normalisation parameters (1-D) are
    neither adapted nor decayed."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6, trust: float = 1e-3):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust=trust))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if p.ndim > 1:
                    g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = p.norm(), g.norm()
                    ratio = torch.where((w_norm > 0) & (g_norm > 0), group["trust"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    g = g * ratio
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                buf = state["momentum"].mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])
        return loss


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "lars":
        return LARS(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; allowed: adam, lars")


def load_uint8(ds: ImageDataset, positions: np.ndarray, chunk: int = 512) -> torch.Tensor:
    """Images at ``positions`` as a uint8 ``(N, 3, H, W)`` tensor (a quarter of the float memory)."""
    parts = [ds.batch(positions[i:i + chunk]).mul_(255).round_().to(torch.uint8)
             for i in range(0, len(positions), chunk)]
    return torch.cat(parts)


def pretrain_meta(ds: ImageDataset, *, strategy: str, fold: int, folds: int, backbone: str, init: str, seed: int,
                  options: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a pretraining run; a checkpoint with other values is refused."""
    return {"kind": "mpcs_pretrain", "dataset": ds.name, "dataset_fingerprint": ds.fingerprint,
            "strategy": strategy, "fold": fold, "folds": folds, "backbone": backbone, "init": init, "seed": seed,
            "options": dict(options), "options_fingerprint": fingerprint(dict(options))}


def pretrain(dataset_path: str | Path, out_path: str | Path, *, strategy: str, fold: int, folds: int, backbone: str,
             init: str, seed: int, options: Mapping[str, Any], checkpoint: str | Path, device: str = "auto",
             allow_download: bool = False, progress: bool = True) -> pd.DataFrame:
    """Pretrain an encoder with one pair strategy on the training patients of ``fold``; write its weights to
    ``out_path`` and return the per-epoch history (loss, in-batch pair retrieval accuracy).

    ``options``: ``epochs``, ``batch_size``, ``pairs_per_epoch`` (null: one pair per training image),
    ``optimizer`` (adam/lars), ``lr``, ``weight_decay``, ``temperature``, ``projection_hidden``,
    ``projection_dim``, ``within`` (patient/field), ``image_size`` (null: as stored), ``augment`` (see
    :class:`~percept.mpcs.augment.Augment`). Resumes from ``checkpoint`` (written after every epoch).
    """
    dev = resolve_device(device)
    ds = ImageDataset(dataset_path)
    train, _ = fold_rows(ds, fold, folds, seed)
    field = ds.meta("field")[train] if "field" in ds.meta_keys else None
    sampler = PairSampler(strategy, ds.meta("magnification")[train], ds.meta("patient")[train], field,
                          within=options["within"])
    images = load_uint8(ds, train).to(dev)
    augment = Augment(**options["augment"])
    encoder = Encoder(backbone, weights=init, seed=seed, resize=options["image_size"], allow_download=allow_download)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = ProjectionHead(encoder.dim, options["projection_hidden"], options["projection_dim"])
    model = nn.ModuleDict({"encoder": encoder, "head": head}).to(dev)
    opt = make_optimizer(options["optimizer"], model.parameters(), options["lr"], options["weight_decay"])
    meta = pretrain_meta(ds, strategy=strategy, fold=fold, folds=folds, backbone=backbone, init=init, seed=seed,
                         options=options)
    history: list[dict[str, Any]] = []
    start = 0
    state = load_checkpoint(checkpoint, meta, map_location=dev)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, start = list(state["history"]), int(state["epoch"])
        log.info("resuming %s pretraining from %s at epoch %d/%d", strategy, checkpoint, start, options["epochs"])
    bs = int(options["batch_size"])
    n_pairs = int(options.get("pairs_per_epoch") or len(train))
    steps = max(1, n_pairs // bs)
    log.info("MPCS %s pair: %d training images (%d anchors), %d steps x %d pairs per epoch, %s on %s",
             strategy, len(train), len(sampler.anchors), steps, bs, backbone, dev)
    for epoch in range(start, int(options["epochs"])):
        t0 = time.perf_counter()
        # Everything random in an epoch derives from (seed, fold, strategy, epoch): a resumed run is identical.
        rng = np.random.default_rng([seed, 21, fold, STRATEGIES.index(strategy), epoch])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        anchors, partners = sampler.sample(steps * bs, rng)
        model.train()
        losses, accs = [], []
        bar = tqdm(range(steps), desc=f"pretrain {strategy} epoch {epoch + 1}", unit="step", disable=not progress)
        for s in bar:
            idx_a = torch.from_numpy(anchors[s * bs:(s + 1) * bs]).to(dev)
            idx_b = torch.from_numpy(partners[s * bs:(s + 1) * bs]).to(dev)
            views = torch.cat([augment(images[idx_a].float() / 255, gen), augment(images[idx_b].float() / 255, gen)])
            z = model["head"](model["encoder"](views))  # one batch of 2N views: BatchNorm sees both
            loss = nt_xent(z[:bs], z[bs:], options["temperature"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            accs.append(pair_accuracy(z[:bs], z[bs:]))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        # no timings in the table: the same config must give identical tables (timings are in benchmarks/)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "pair_accuracy": float(np.mean(accs)),
                        "steps": steps})
        log.info("epoch %d: NT-Xent %.4f, pair retrieval %.3f (%.1f s)", epoch + 1, history[-1]["loss"],
                 history[-1]["pair_accuracy"], time.perf_counter() - t0)
        save_checkpoint(checkpoint, meta, epoch=epoch + 1, model=model.state_dict(), optimizer=opt.state_dict(),
                        history=history)
    recalibrate_batchnorm(model["encoder"], images, bs)  # statistics of the (unaugmented) training images
    save_checkpoint(out_path, meta, encoder=model["encoder"].state_dict(), history=history)
    out = pd.DataFrame(history)
    out.insert(0, "backbone", backbone)
    out.insert(1, "strategy", strategy)
    out.insert(2, "fold", fold)
    return out
