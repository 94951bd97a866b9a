"""Learning the non-negative per-channel weights of a DPS metric.

Zhang et al. 2018 (sec. 3.3): a small ranking network G maps (d0, d1, d0-d1, d0/(d1+ε), d1/(d0+ε)) to the
probability that p1 is judged closer, trained with binary cross-entropy against the fraction of people who
preferred p1; Adam (lr 1e-4, β1 0.5), the linear weights clamped ≥ 0 after each step, dropout before them;
a constant learning rate, then a linear decay to zero. Every DPS mode is linear in the weights, so training
runs on the comparisons computed once: no backbone forward pass per epoch. The same training takes comparisons
computed per batch (a function of the batch's rows) and further parameters for the adaptation paper's ``tune`` /
``scratch`` variants, whose backbone is trained in the loop; :func:`iter_channel_weights` yields after every
epoch so that several trainings can share each epoch's frozen features (the ``lin`` variant's contexts).

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


PairMaps = Callable[[torch.Tensor], tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]]


def train_channel_weights(s0: Comparisons | PairMaps | None, s1: Comparisons | None, judge: torch.Tensor | None,
                          **kwargs) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Train non-negative channel weights ``w`` so that ``d = s · w`` ranks as the judgements say: runs
    :func:`iter_channel_weights` to the end and returns the weights ``(C,)`` (≥ 0) and the per-epoch history."""
    w, history = None, []
    for w, history in iter_channel_weights(s0, s1, judge, **kwargs):
        pass
    return w.clone(), history


def iter_channel_weights(s0: Comparisons | PairMaps | None, s1: Comparisons | None, judge: torch.Tensor | None, *,
                         epochs: int = 5, decay_epochs: int = 5, lr: float = 1e-4,
                         betas: tuple[float, float] = (0.5, 0.999), batch_size: int = 50, dropout: float = 0.5,
                         boost: float = 0.0, init: torch.Tensor | str | None = None,
                         groups: Sequence[int] | None = None, dropout_on: str = "elements", seed: int = 0,
                         resample: Callable[[int, torch.Generator], tuple[Any, Any, torch.Tensor]] | None = None,
                         params: Sequence[nn.Parameter] = (), param_lr: float | None = None,
                         checkpoint: str | os.PathLike | None = None,
                         fingerprint: Mapping[str, Any] | None = None, progress: bool = False,
                         desc: str = "calibrate"):
    """The training of :func:`train_channel_weights`, one epoch per step of the generator: yields ``(w, history)``
    after every epoch (once, before any, when there are no epochs), so several trainings can run in lockstep on
    data shared per epoch (the adaptation's frozen-backbone features of one draw for every context).

    Args:
        s0, s1: ``(N, C)`` per-channel comparisons of (ref, p0) and (ref, p1), all taps concatenated, or per-tap
            squared-difference maps ``[(N, C_l, P_l), ...]`` (needed for ``dropout_on="elements"``); or ``s0`` a
            function ``rows -> (maps0, maps1)`` computing a batch's maps (with gradients: a backbone trained in
            the loop, ``params``) and ``s1`` None. With ``resample`` both may be None (``groups`` then gives C).
        judge: ``(N,)`` fraction preferring p1 (1 = p1 closer).
        epochs / decay_epochs: constant learning rate, then a linear decay to zero.
        boost: weight of the extra BCE(sigmoid(d0 - d1), judge) term used while a batch scores ≤ 0.5.
        init: ``"default"`` (PyTorch's per-tap 1x1-convolution init, ``groups`` = channels per tap, one group
            of all C when not given), ``"ones"`` (the uncalibrated metric), or a tensor. ``None``: default.
        dropout_on: ``elements`` of the maps (maps given) or whole ``channels`` of the means.
        resample: ``(epoch, generator) -> (s0, s1, judge)``, new training pairs every epoch (the adaptation's
            fresh random pair per image per epoch); ``s0``, ``s1``, ``judge`` then only give the shapes.
        params, param_lr: further parameters trained by the same Adam (the adaptation's ``tune`` / ``scratch``
            backbone: the authors' one optimiser over the Learner's parameters), at ``param_lr`` (None = ``lr``),
            under the same schedule; they are not clamped.
        checkpoint: resume from / save to this file after every epoch (refused if ``fingerprint`` differs; not
            with ``params``).
    """
    if dropout_on not in DROPOUT_ON:
        raise ValueError(f"dropout_on must be one of {DROPOUT_ON}; got {dropout_on!r}")
    lazy = callable(s0) and not isinstance(s0, torch.Tensor)
    if lazy or s0 is None:
        if groups is None or (s0 is None and resample is None) or s1 is not None:
            raise ValueError("comparisons computed per batch (or per epoch by resample) need groups (channels per "
                             "tap), s1=None, and resample when s0 is None")
        maps, c = True, int(sum(groups))
        n = 0 if judge is None else len(judge)
    elif not isinstance(s0, torch.Tensor):
        maps = True
        shapes0, shapes1 = [tuple(m.shape[:2]) for m in s0], [tuple(m.shape[:2]) for m in s1]
        if shapes0 != shapes1 or len({sh[0] for sh in shapes0}) != 1:
            raise ValueError(f"maps of s0 {shapes0} and s1 {shapes1} disagree")
        n, c = shapes0[0][0], sum(sh[1] for sh in shapes0)
        groups = groups if groups is not None else [sh[1] for sh in shapes0]
    else:
        maps = False
        n, c = s0.shape
        if s1.shape != (n, c):
            raise ValueError(f"s0 {tuple(s0.shape)} and s1 {tuple(s1.shape)} disagree")
    if not maps and dropout and dropout_on == "elements":
        raise ValueError("dropout on elements needs the per-tap maps (channel_maps), not the channel means; "
                         "pass the maps or dropout_on='channels'")
    if judge is not None and judge.shape != (n,):
        raise ValueError(f"judge {tuple(judge.shape)} does not match {n} comparisons")
    if params and checkpoint is not None:
        raise ValueError("a checkpoint holds the weights and G only, not further params")
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
    params = [p for p in params if p.requires_grad]
    groups_ = [{"params": [w, *g.parameters()], "scale": 1.0}]
    if params:
        groups_.append({"params": params, "scale": (param_lr if param_lr is not None else lr) / lr})
    opt = torch.optim.Adam(groups_, lr=lr, betas=betas)
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
    if judge is not None:
        judge = judge.float()
    elements = dropout_on == "elements"
    if start >= total:
        yield w.detach(), history
    for epoch in tqdm(range(start, total), desc=desc, disable=not progress, initial=start, total=total):
        rate = lr if epoch < epochs else lr * (total - epoch) / max(decay_epochs, 1)
        for group in opt.param_groups:
            group["lr"] = rate * group.get("scale", 1.0)
        if resample is not None:
            s0, s1, judge = resample(epoch, gen)
            n = len(judge)
            judge = judge.float()
        lazy = callable(s0) and not isinstance(s0, torch.Tensor)
        perm = torch.randperm(n, generator=gen)
        losses, hits = [], []
        g.train()
        for b in perm.split(batch_size):
            if lazy:  # the batch's maps from a backbone in the loop
                m0, m1 = s0(b)
                a0 = _channel_means(m0, slice(None), dropout, elements)
                a1 = _channel_means(m1, slice(None), dropout, elements)
            else:
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
        yield w.detach(), history
