"""Learning the non-negative per-channel weights of a DPS metric.

Zhang et al. 2018 (sec. 3.3): a small ranking network G maps (d0, d1, d0-d1, d0/(d1+ε), d1/(d0+ε)) to the
probability that p1 is judged closer, trained with binary cross-entropy against the fraction of people who
preferred p1; Adam (lr 1e-4, β1 0.5), the linear weights clamped ≥ 0 after each step, dropout before them;
a constant learning rate, then a linear decay to zero. Every DPS mode is linear in the weights, so training
runs on the per-channel comparisons ``s`` (:func:`percept.similarity.metric.channel_distances`, all taps
concatenated) computed once: no backbone forward pass per epoch. Dropout then drops whole channel terms of
``s`` (the reference drops individual positions of the squared difference before the spatial mean).

Sjögren et al. ("DPS is adaptable to ambiguous contexts") add ``boost`` x BCE(sigmoid(d0 - d1), label) while
the batch's 2AFC score is at most 0.5, to push the weights out of a wrong ordering.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from percept.checkpoints import load_torch, save_torch

log = logging.getLogger(__name__)


class RankingNet(nn.Module):
    """G: (d0, d1, d0-d1, d0/(d1+ε), d1/(d0+ε)) → P(p1 judged closer); 5 → 32 → 32 → 1, LeakyReLU 0.2."""

    def __init__(self, hidden: int = 32, eps: float = 0.1):
        super().__init__()
        self.eps = eps
        self.model = nn.Sequential(nn.Linear(5, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                   nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, d0: torch.Tensor, d1: torch.Tensor) -> torch.Tensor:
        x = torch.stack([d0, d1, d0 - d1, d0 / (d1 + self.eps), d1 / (d0 + self.eps)], dim=1)
        return torch.sigmoid(self.model(x).squeeze(1))


def save_checkpoint(path: str | os.PathLike, obj: Mapping[str, Any]) -> None:
    """Write a checkpoint atomically (temporary name, then rename)."""
    save_torch(dict(obj), path)


def load_checkpoint(path: str | os.PathLike, fingerprint: Mapping[str, Any]) -> dict[str, Any] | None:
    """A checkpoint written with the same ``fingerprint`` (settings), ``None`` when there is none; one made
    with other settings is refused with a message saying what differs."""
    path = Path(path)
    if not path.exists():
        return None
    ckpt = load_torch(path)
    have = ckpt.get("fingerprint", {})
    if have != dict(fingerprint):
        diff = sorted(k for k in set(have) | set(fingerprint) if have.get(k) != fingerprint.get(k))
        raise ValueError(f"{path}: checkpoint made with other settings ({', '.join(diff)} differ: "
                         f"{ {k: have.get(k) for k in diff} } vs { {k: fingerprint.get(k) for k in diff} }); "
                         "delete it to start over")
    return ckpt


def train_channel_weights(s0: torch.Tensor, s1: torch.Tensor, judge: torch.Tensor, *, epochs: int = 5,
                          decay_epochs: int = 5, lr: float = 1e-4, betas: tuple[float, float] = (0.5, 0.999),
                          batch_size: int = 50, dropout: float = 0.5, boost: float = 0.0,
                          init: torch.Tensor | None = None, seed: int = 0, checkpoint: str | os.PathLike | None = None,
                          fingerprint: Mapping[str, Any] | None = None, progress: bool = False,
                          desc: str = "calibrate") -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Train non-negative channel weights ``w`` so that ``d = s · w`` ranks as the judgements say.

    Args:
        s0, s1: ``(N, C)`` per-channel comparisons of (ref, p0) and (ref, p1), all taps concatenated.
        judge: ``(N,)`` fraction preferring p1 (1 = p1 closer).
        epochs / decay_epochs: constant learning rate, then a linear decay to zero.
        boost: weight of the extra BCE(sigmoid(d0 - d1), judge) term used while a batch scores ≤ 0.5.
        init: initial weights (default: ones, the uncalibrated metric).
        checkpoint: resume from / save to this file after every epoch (refused if ``fingerprint`` differs).

    Returns:
        the weights ``(C,)`` (≥ 0) and the per-epoch history (loss, train 2AFC).
    """
    n, c = s0.shape
    if s1.shape != (n, c) or judge.shape != (n,):
        raise ValueError(f"s0 {tuple(s0.shape)}, s1 {tuple(s1.shape)} and judge {tuple(judge.shape)} disagree")
    gen = torch.Generator().manual_seed(seed)
    w = nn.Parameter((torch.ones(c) if init is None else init.detach().clone().float()).clamp(min=0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = RankingNet()
    opt = torch.optim.Adam([w, *g.parameters()], lr=lr, betas=betas)
    total = epochs + decay_epochs
    history: list[dict[str, float]] = []
    start = 0
    fp = {**(fingerprint or {}), "n": n, "channels": c}
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint, fp)
        if ckpt is not None:
            with torch.no_grad():
                w.copy_(ckpt["w"])
            g.load_state_dict(ckpt["g"])
            opt.load_state_dict(ckpt["opt"])
            gen.set_state(ckpt["gen"])
            history, start = list(ckpt["history"]), int(ckpt["epoch"])
            log.info("resuming %s from epoch %d of %d (%s)", desc, start, total, checkpoint)
    s0, s1, judge = s0.float(), s1.float(), judge.float()
    for epoch in tqdm(range(start, total), desc=desc, disable=not progress, initial=start, total=total):
        rate = lr if epoch < epochs else lr * (total - epoch) / max(decay_epochs, 1)
        for group in opt.param_groups:
            group["lr"] = rate
        perm = torch.randperm(n, generator=gen)
        losses, hits = [], []
        g.train()
        for b in perm.split(batch_size):
            a0 = F.dropout(s0[b], dropout, training=True) if dropout else s0[b]
            a1 = F.dropout(s1[b], dropout, training=True) if dropout else s1[b]
            d0, d1, j = a0 @ w, a1 @ w, judge[b]
            loss = F.binary_cross_entropy(g(d0, d1).clamp(1e-6, 1 - 1e-6), j)
            with torch.no_grad():
                score = ((d0 < d1) * (1 - j) + (d1 < d0) * j + 0.5 * (d0 == d1)).float().mean()
            if boost and score <= 0.5:
                loss = loss + boost * F.binary_cross_entropy_with_logits(d0 - d1, j)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                w.clamp_(min=0)
            losses.append(float(loss.detach()))
            hits.append(float(score))
        history.append({"epoch": epoch + 1, "lr": rate, "loss": float(np.mean(losses)),
                        "train_2afc": float(np.mean(hits))})
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"fingerprint": fp, "epoch": epoch + 1, "w": w.detach().clone(),
                                         "g": g.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                                         "history": history})
    return w.detach().clone(), history
