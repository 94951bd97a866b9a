"""MPCS pretraining: NT-Xent over magnification pairs of the training patients (Chhipa et al. 2023, sec. 3)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from percept import seeds
from percept.checkpoints import CHECKPOINT_SECONDS, Every, load_checkpoint, save_checkpoint
from percept.data.store import ImageDataset, fingerprint
from percept.features import resolve_device
from percept.mpcs import STRATEGIES
from percept.mpcs.augment import make_augment
from percept.mpcs.loss import nt_xent, pair_accuracy
from percept.mpcs.model import Encoder, ProjectionHead, recalibrate_batchnorm
from percept.mpcs.pairs import PairSampler
from percept.mpcs.splits import fold_rows

log = logging.getLogger(__name__)


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as MPCS uses it (the reference's ``optimizers.LARS`` with
    ``weight_decay_filter`` and ``lars_adaptation_filter`` on, its multi-GPU configs): SGD with momentum whose
    step for each weight tensor is scaled by ``trust * ||w|| / ||g + wd w||``; biases and normalisation
    parameters (1-D) are neither adapted nor decayed. The reference puts them in a second parameter group
    with their own learning rate (:func:`lars_param_groups`, :func:`lars_learning_rates`)."""

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


def lars_param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The reference's two groups: weights (``ndim > 1``) first, then biases and normalisation parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim > 1]}, {"params": [p for p in params if p.ndim == 1]}]


def lars_learning_rates(step: int, *, epochs: int, steps_per_epoch: int, batch_size: int, lr_weights: float,
                        lr_biases: float, warmup_epochs: int = 10) -> tuple[float, float]:
    """Learning rates (weights, biases) at global ``step``: linear warm-up from 0 over ``warmup_epochs``, then
    cosine decay to 0.001 of the peak; the peak is ``lr * batch_size / 256``.

    The reference's ``adjust_learning_rate`` (src/self_supervised/core/pretrain.py, from Barlow Twins), with
    the global step it was written for: the reference passes the step within the epoch and guards the call by
    ``True == optimizer_type`` (a string), so as committed it never changes the rate (its LARS ``lr`` is 0).
    """
    max_steps = epochs * steps_per_epoch
    warmup = warmup_epochs * steps_per_epoch
    base = batch_size / 256
    if step < warmup:
        lr = base * step / warmup
    else:
        q = 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, max_steps - warmup)))
        lr = base * q + base * 0.001 * (1 - q)
    return lr * lr_weights, lr * lr_biases


def make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "lars":
        return LARS(lars_param_groups(model), lr=0.0, weight_decay=weight_decay)  # rates set per step
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
             allow_download: bool = False, progress: bool = True,
             checkpoint_seconds: float = CHECKPOINT_SECONDS) -> pd.DataFrame:
    """Pretrain an encoder with one pair strategy on the training patients of ``fold``; write its weights to
    ``out_path`` and return the per-epoch history (loss, in-batch pair retrieval accuracy).

    ``options``: ``epochs``, ``batch_size``, ``pairs_per_epoch`` (null: the sampler's epoch, one pair per
    complete image sequence with ``within: sequence``), ``optimizer`` (adam: constant ``lr``; lars: ``lr`` and
    ``lr_biases`` per 256 pairs with ``warmup_epochs`` then cosine decay, :func:`lars_learning_rates`),
    ``weight_decay``, ``temperature``, ``projection_hidden``, ``projection_dim``, ``projection_batchnorm``,
    ``within`` (sequence/patient/field, :class:`~percept.mpcs.pairs.PairSampler`), ``image_size`` (null: as
    stored), ``augment`` (:func:`~percept.mpcs.augment.make_augment`), ``recalibrate_batchnorm``. Resumes from
    ``checkpoint`` (written after an epoch, at most every ``checkpoint_seconds``; 0: after every epoch).
    """
    dev = resolve_device(device)
    ds = ImageDataset(dataset_path)
    train, _, _ = fold_rows(ds, fold, folds, seed)  # no validation share: every non-test patient (train_80)
    ids = {k: ds.meta(k)[train] for k in ("sequence", "field") if k in ds.meta_keys}
    sampler = PairSampler(strategy, ds.meta("magnification")[train], ds.meta("patient")[train],
                          within=options["within"], **ids)
    images = load_uint8(ds, train).to(dev)
    augment = make_augment(options["augment"])
    encoder = Encoder(backbone, weights=init, seed=seed, resize=options["image_size"], allow_download=allow_download)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = ProjectionHead(encoder.dim, options["projection_hidden"], options["projection_dim"],
                              batchnorm=options["projection_batchnorm"])
    model = nn.ModuleDict({"encoder": encoder, "head": head}).to(dev)
    opt = make_optimizer(options["optimizer"], model, options["lr"], options["weight_decay"])
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
    every = Every(checkpoint_seconds)
    n_pairs = int(options.get("pairs_per_epoch") or sampler.epoch_size)
    steps = max(1, n_pairs // bs)
    log.info("MPCS %s pair within %s: %d training images (%d anchors), %d steps x %d pairs per epoch, %s on %s",
             strategy, options["within"], len(train), len(sampler.anchors), steps, bs, backbone, dev)
    for epoch in range(start, int(options["epochs"])):
        t0 = time.perf_counter()
        # Everything random in an epoch derives from (seed, fold, strategy, epoch): a resumed run is identical.
        rng, gen = seeds.generators(seed, "mpcs.pretrain_epoch", fold, STRATEGIES.index(strategy), epoch)
        anchors, partners = sampler.sample(steps * bs, rng)
        model.train()
        losses, accs = [], []
        bar = tqdm(range(steps), desc=f"pretrain {strategy} epoch {epoch + 1}", unit="step", disable=not progress)
        for s in bar:
            idx_a = torch.from_numpy(anchors[s * bs:(s + 1) * bs]).to(dev)
            idx_b = torch.from_numpy(partners[s * bs:(s + 1) * bs]).to(dev)
            if options["optimizer"] == "lars":
                rates = lars_learning_rates(epoch * steps + s, epochs=int(options["epochs"]), steps_per_epoch=steps,
                                            batch_size=bs, lr_weights=options["lr"], lr_biases=options["lr_biases"],
                                            warmup_epochs=options["warmup_epochs"])
                for group, rate in zip(opt.param_groups, rates):
                    group["lr"] = rate
            # each view forwarded on its own, as the reference does: BatchNorm normalises each view's batch alone
            za = model["head"](model["encoder"](augment(images[idx_a].float() / 255, gen)))
            zb = model["head"](model["encoder"](augment(images[idx_b].float() / 255, gen)))
            z = torch.cat([za, zb])
            loss = nt_xent(za, zb, options["temperature"])
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
        if every.due():
            save_checkpoint(checkpoint, meta, epoch=epoch + 1, model=model.state_dict(), optimizer=opt.state_dict(),
                            history=history)
    if options["recalibrate_batchnorm"]:  # a named addition, not the reference's: statistics of the training images
        recalibrate_batchnorm(model["encoder"], images, bs)
    save_checkpoint(out_path, meta, encoder=model["encoder"].state_dict(), history=history)
    out = pd.DataFrame(history)
    out.insert(0, "backbone", backbone)
    out.insert(1, "strategy", strategy)
    out.insert(2, "fold", fold)
    return out
