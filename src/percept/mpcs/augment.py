"""SimCLR-family augmentations (Chen et al. 2020, appendix A), batched on the training device.

Random resized crop, horizontal and vertical flips (tissue has no orientation), colour jitter (brightness,
contrast, saturation, hue) applied with probability ``jitter_p``, random greyscale and Gaussian blur. Every
random draw comes from the ``torch.Generator`` passed in, so an epoch's views are reproducible (and a
resumed run draws the same ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

_GREY = torch.tensor([0.299, 0.587, 0.114])
# RGB <-> YIQ: a hue shift is a rotation of the (I, Q) chroma plane.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@dataclass(frozen=True)
class Augment:
    crop_scale: Sequence[float] = (0.4, 1.0)
    flip: bool = True
    color_jitter: float = 0.5  # SimCLR's strength s: brightness/contrast/saturation 0.8 s, hue 0.2 s
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``x``: float ``(B, 3, H, W)`` in [0, 1] → one augmented view of each image, same shape."""
        b = x.shape[0]

        def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
            return (torch.rand(b, *shape, generator=gen) * (hi - lo) + lo).to(x.device)

        def coin(p: float) -> torch.Tensor:
            return (torch.rand(b, generator=gen) < p).to(x.device)

        x = random_resized_crop(x, self.crop_scale, u, coin if self.flip else None)
        s = self.color_jitter
        if s > 0 and self.jitter_p > 0:
            apply = coin(self.jitter_p).view(b, 1, 1, 1)
            j = x * u(1 - 0.8 * s, 1 + 0.8 * s, 1, 1, 1)  # brightness
            mean = _grey(j).mean((2, 3), keepdim=True)
            j = (j - mean) * u(max(0.0, 1 - 0.8 * s), 1 + 0.8 * s, 1, 1, 1) + mean  # contrast
            g = _grey(j)
            j = (j - g) * u(max(0.0, 1 - 0.8 * s), 1 + 0.8 * s, 1, 1, 1) + g  # saturation
            j = hue_shift(j, u(-0.2 * s, 0.2 * s))
            x = torch.where(apply, j.clamp(0, 1), x)
        if self.grayscale_p > 0:
            x = torch.where(coin(self.grayscale_p).view(b, 1, 1, 1), _grey(x).expand_as(x), x)
        if self.blur_p > 0:
            sigma = u(0.1, 2.0) * x.shape[-1] / 224  # SimCLR's sigma range, scaled to the image size
            x = torch.where(coin(self.blur_p).view(b, 1, 1, 1), gaussian_blur(x, sigma), x)
        return x.clamp(0, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (x * _GREY.to(x).view(1, 3, 1, 1)).sum(1, keepdim=True)


def hue_shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by ``shift`` (B,) turns, in YIQ space."""
    yiq = _YIQ.to(x)
    theta = shift.to(x) * 2 * math.pi
    c, s = torch.cos(theta), torch.sin(theta)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rot = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, c, -s], -1),
                       torch.stack([zero, s, c], -1)], -2)  # (B, 3, 3)
    m = torch.linalg.inv(yiq) @ rot @ yiq
    return torch.einsum("bij,bjhw->bihw", m, x)


def random_resized_crop(x: torch.Tensor, scale: Sequence[float], u, coin=None,
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Crop a random area fraction ``scale`` and aspect ``ratio`` of each image, resized back; optional flips."""
    b = x.shape[0]
    area = u(scale[0], scale[1])
    log_r = u(math.log(ratio[0]), math.log(ratio[1]))
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (u(0, 1) * 2 - 1) * (1 - w)
    cy = (u(0, 1) * 2 - 1) * (1 - h)
    sx, sy = w, h
    if coin is not None:
        sx = torch.where(coin(0.5), -sx, sx)
        sy = torch.where(coin(0.5), -sy, sy)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sy, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-image ``sigma`` (B,), kernel radius 3 sigma (at least 1 pixel)."""
    b, c, h, w = x.shape
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.to(x).view(-1, 1)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal and vertical flips, the only augmentation of supervised fine-tuning."""
    b = x.shape[0]
    h = (torch.rand(b, generator=gen) < 0.5).to(x.device).view(b, 1, 1, 1)
    v = (torch.rand(b, generator=gen) < 0.5).to(x.device).view(b, 1, 1, 1)
    x = torch.where(h, x.flip(-1), x)
    return torch.where(v, x.flip(-2), x)
