"""The one Gaussian blur of the project: the explanation stage's blur perturbation and Gaussian insertion start,
the MPCS SimCLR augmentation (a σ per image) and the shape-translation judge's corruptions and mild
augmentation (a σ per image) all call :func:`gaussian_blur`.

Convention (kept from the three copies it replaces, whose outputs on images larger than the kernel it
reproduces): separable, reflect padding (the edge pixel is not repeated: torch's ``reflect``), radius
``ceil(3σ)`` (of the largest σ when σ is per image), at least one pixel. A kernel wider than the image is cut to
the image (reflect padding cannot reach further) and renormalised, so a constant image stays constant. The
explanation stage's other smoothing, scipy's ``gaussian_filter`` (symmetric boundary, radius ``round(4σ)``), is
a different filter on purpose (the components repository's mask fade) and stays in
:mod:`percept.explain.perturbation`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _kernel(sigma: float | torch.Tensor, radius: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(S, 2·radius + 1)`` normalised Gaussian taps, one row per σ (``S = 1`` for a float σ)."""
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    if not torch.is_tensor(sigma):
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        return (k / k.sum()).view(1, -1)
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.to(device=device, dtype=dtype).view(-1, 1)) ** 2)
    return k / k.sum(1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Blur ``x`` ``(B, C, H, W)`` with a Gaussian of ``sigma`` pixels: a float (one σ for the batch; σ ≤ 0
    returns ``x``) or a ``(B,)`` tensor (one σ per image, clamped to at least 1e-3)."""
    b, c, h, w = x.shape
    if b == 0:
        return x
    per_image = torch.is_tensor(sigma) and sigma.ndim > 0
    if per_image:
        if len(sigma) != b:
            raise ValueError(f"gaussian_blur: {len(sigma)} sigmas for {b} images")
        sig = sigma.detach().clamp_min(1e-3)
        top = float(sig.max()) if b else 0.0
    else:
        top = float(sigma)
        if top <= 0:
            return x
        sig = top
    radius = max(1, math.ceil(3 * top))
    y = x.reshape(1, b * c, h, w) if per_image else x
    groups = b * c if per_image else c
    for dim, side in ((3, w), (2, h)):
        r = min(radius, side - 1)
        if r < 1:  # a one-pixel side: nothing to blur along it
            continue
        k = _kernel(sig, r, x.dtype, x.device)
        k = k.repeat_interleave(c, 0) if per_image else k.expand(c, -1)
        shape = (groups, 1, 1, 2 * r + 1) if dim == 3 else (groups, 1, 2 * r + 1, 1)
        pad = (r, r, 0, 0) if dim == 3 else (0, 0, r, r)
        y = F.conv2d(F.pad(y, pad, mode="reflect"), k.reshape(shape), groups=groups)
    return y.reshape(b, c, h, w)
