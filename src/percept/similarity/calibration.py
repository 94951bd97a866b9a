"""Learning the non-negative per-channel weights of a DPS metric.

Zhang et al. 2018 (sec. 3.3): a small ranking network G maps (d0, d1, d0-d1, d0/(d1+ε), d1/(d0+ε)) to the
probability that p1 is judged closer, trained with binary cross-entropy against the fraction of people who
preferred p1; Adam (lr 1e-4, β1 0.5), the linear weights clamped ≥ 0 after each step, dropout before them;
a constant learning rate, then a linear decay to zero. Every DPS mode is linear in the weights, so training
runs on the comparisons computed once: no backbone forward pass per epoch.

As the reference (richzhang/PerceptualSimilarity lpips/lpips.py ``NetLinLayer``, trainer.py ``clamp_weights``),
by default the weights start at PyTorch's default initialisation of each tap's 1x1 convolution (uniform in
±1/sqrt(C), negatives included) and are clamped ≥ 0 after every step (``init="default"``), and dropout drops
single elements of the N x C x H x W squared-difference map before the spatial mean (``dropout_on=
"elements"``, given the maps of :func:`percept.similarity.metric.channel_maps`). The earlier choices remain as
named options: ``init="ones"`` (start at the uncalibrated channel sum) and ``dropout_on="channels"`` (drop whole
channel terms of the per-channel means ``s``).

Pihlgren, Sandin & Liwicki ("Deep perceptual similarity is adaptable to ambiguous contexts") add ``boost`` x
BCE(sigmoid(d0 - d1), label) while the batch's 2AFC score is at most 0.5, to push the weights out of a wrong
ordering.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from percept.checkpoints import load_checkpoint, save_checkpoint

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


INITS = ("default", "ones")
DROPOUT_ON = ("elements", "channels")
Comparisons = torch.Tensor | Sequence[torch.Tensor]


def default_init(groups: Sequence[int], seed: int) -> torch.Tensor:
    """PyTorch's default initialisation of one ``Conv2d(C, 1, 1, bias=False)`` per tap (``groups`` = the C's),
    drawn in tap order after ``torch.manual_seed(seed)`` — the numbers ``lpips.NetLinLayer(C)`` gets."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.cat([nn.Conv2d(int(c), 1, 1, bias=False).weight.detach().reshape(-1) for c in groups])


def _channel_means(x: Comparisons, rows, dropout: float, elements: bool) -> torch.Tensor:
    """``(B, C)`` per-channel comparisons of ``rows``: from ``(N, C)`` means, or from per-tap maps
    ``(N, C_l, P_l)`` averaged over positions after element dropout (LPIPS's dropout on the difference map)."""
    if isinstance(x, torch.Tensor):
        out = x[rows].float()
        return F.dropout(out, dropout, training=True) if dropout else out
    parts = []
    for m in x:
        m = m[rows].float()
        if dropout and elements:
            m = F.dropout(m, dropout, training=True)
        parts.append(m.mean(-1))
    out = torch.cat(parts, 1)
    return F.dropout(out, dropout, training=True) if dropout and not elements else out


def train_channel_weights(s0: Comparisons, s1: Comparisons, judge: torch.Tensor, *, epochs: int = 5,
                          decay_epochs: int = 5, lr: float = 1e-4, betas: tuple[float, float] = (0.5, 0.999),
                          batch_size: int = 50, dropout: float = 0.5, boost: float = 0.0,
                          init: torch.Tensor | str | None = None, groups: Sequence[int] | None = None,
                          dropout_on: str = "elements", seed: int = 0,
                          resample: Callable[[int, torch.Generator], tuple[torch.Tensor, ...]] | None = None,
                          checkpoint: str | os.PathLike | None = None,
                          fingerprint: Mapping[str, Any] | None = None, progress: bool = False,
                          desc: str = "calibrate") -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Train non-negative channel weights ``w`` so that ``d = s · w`` ranks as the judgements say.

    Args:
        s0, s1: ``(N, C)`` per-channel comparisons of (ref, p0) and (ref, p1), all taps concatenated, or per-tap
            squared-difference maps ``[(N, C_l, P_l), ...]`` (needed for ``dropout_on="elements"``).
        judge: ``(N,)`` fraction preferring p1 (1 = p1 closer).
        epochs / decay_epochs: constant learning rate, then a linear decay to zero.
        boost: weight of the extra BCE(sigmoid(d0 - d1), judge) term used while a batch scores ≤ 0.5.
        init: ``"default"`` (PyTorch's per-tap 1x1-convolution init, ``groups`` = channels per tap, one group
            of all C when not given), ``"ones"`` (the uncalibrated metric), or a tensor. ``None``: default.
        dropout_on: ``elements`` of the maps (maps given) or whole ``channels`` of the means.
        resample: ``(epoch, generator) -> (s0, s1, judge)``, new training pairs every epoch (the adaptation's
            fresh random pair per image per epoch); ``s0``, ``s1``, ``judge`` then only give the shapes.
        checkpoint: resume from / save to this file after every epoch (refused if ``fingerprint`` differs).

    Returns:
        the weights ``(C,)`` (≥ 0) and the per-epoch history (loss, train 2AFC).
    """
    if dropout_on not in DROPOUT_ON:
        raise ValueError(f"dropout_on must be one of {DROPOUT_ON}; got {dropout_on!r}")
    maps = not isinstance(s0, torch.Tensor)
    if maps:
        shapes0, shapes1 = [tuple(m.shape[:2]) for m in s0], [tuple(m.shape[:2]) for m in s1]
        if shapes0 != shapes1 or len({sh[0] for sh in shapes0}) != 1:
            raise ValueError(f"maps of s0 {shapes0} and s1 {shapes1} disagree")
        n, c = shapes0[0][0], sum(sh[1] for sh in shapes0)
        groups = groups if groups is not None else [sh[1] for sh in shapes0]
    else:
        n, c = s0.shape
        if s1.shape != (n, c):
            raise ValueError(f"s0 {tuple(s0.shape)} and s1 {tuple(s1.shape)} disagree")
        if dropout and dropout_on == "elements":
            raise ValueError("dropout on elements needs the per-tap maps (channel_maps), not the channel means; "
                             "pass the maps or dropout_on='channels'")
    if judge.shape != (n,):
        raise ValueError(f"judge {tuple(judge.shape)} does not match {n} comparisons")
    gen = torch.Generator().manual_seed(seed)
    if init is None or isinstance(init, str):
        kind = init or "default"
        if kind not in INITS:
            raise ValueError(f"init must be one of {INITS} or a tensor; got {kind!r}")
        start = torch.ones(c) if kind == "ones" else default_init(groups or [c], seed)
        if start.numel() != c:
            raise ValueError(f"groups {list(groups or [])} sum to {start.numel()}, not {c} channels")
    else:
        start = init.detach().clone().float().clamp(min=0)
    # The default init keeps its negative draws until the first step's clamp, as the reference does.
    w = nn.Parameter(start)
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
    judge = judge.float()
    elements = dropout_on == "elements"
    for epoch in tqdm(range(start, total), desc=desc, disable=not progress, initial=start, total=total):
        rate = lr if epoch < epochs else lr * (total - epoch) / max(decay_epochs, 1)
        for group in opt.param_groups:
            group["lr"] = rate
        if resample is not None:
            s0, s1, judge = resample(epoch, gen)
            n = len(judge)
            judge = judge.float()
        perm = torch.randperm(n, generator=gen)
        losses, hits = [], []
        g.train()
        for b in perm.split(batch_size):
            a0 = _channel_means(s0, b, dropout, elements)
            a1 = _channel_means(s1, b, dropout, elements)
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
            save_checkpoint(checkpoint, fp, epoch=epoch + 1, w=w.detach().clone(), g=g.state_dict(),
                            opt=opt.state_dict(), gen=gen.get_state(), history=history)
    return w.detach().clone(), history
