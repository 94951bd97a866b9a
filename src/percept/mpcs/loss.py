"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, eq. 1), as MPCS uses it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Mean over the 2N views of ``-log( exp(s(i, j)/t) / sum_{k != i} exp(s(i, k)/t) )``.

    ``z1[i]`` and ``z2[i]`` are the projections of a positive pair; every other of the 2N views in the batch
    is a negative. ``s`` is cosine similarity.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (N, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def pair_accuracy(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """Fraction of the 2N views whose most similar other view is their partner (a sanity check of pretraining)."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).detach(), dim=1)
    sim = (z @ z.T).fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return float((sim.argmax(1) == targets).float().mean())
