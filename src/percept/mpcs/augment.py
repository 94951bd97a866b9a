"""The augmentations of MPCS pretraining, batched on the training device.

:class:`MildAugment` (``kind: mild``, the default) is the paper's "reduced human prior" pipeline, the
reference's ``pretrain_augmentation`` (prakashchhipa/Magnification-Prior-Self-Supervised-Method,
src/self_supervised/apply/augmentation_strategy.py, albumentations): ColorJitter 0.1 (p 0.3), Flip (p 0.3),
Rotate (±90°, p 0.3), Affine(translate_percent=0.05) (p 0.2). :class:`Augment` (``kind: simclr``, a named
option) is the SimCLR family (Chen et al. 2020, appendix A): random resized crop, flips, strong colour jitter,
greyscale and blur. Every random draw comes from the ``torch.Generator`` passed in, so an epoch's views are
reproducible (and a resumed run draws the same ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from percept.filters import gaussian_blur

_GREY = torch.tensor([0.299, 0.587, 0.114])
# RGB <-> YIQ: a hue shift is a rotation of the (I, Q) chroma plane.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@dataclass(frozen=True)
class MildAugment:
    """The reference's ``pretrain_augmentation``, applied in its order, each step to a random share of the batch.

    - colour jitter (p ``jitter_p``): brightness, contrast and saturation factors uniform in
      ``[1 - jitter, 1 + jitter]``, hue shifted by a uniform ``[-jitter, jitter]`` turn, in a random order
      (albumentations shuffles them per image; here one order per batch);
    - flip (p ``flip_p``): vertical, horizontal or both, one of the three uniformly (albumentations ``Flip``);
    - rotation (p ``rotate_p``): uniform in ``[-rotate_limit, rotate_limit]`` degrees about the centre,
      counter-clockwise for positive angles, edges reflected (``Rotate``'s defaults);
    - translation (p ``affine_p``): ``Affine(translate_percent=0.05)`` in albumentations 1.3 samples its
      shift from ``(0.05, 0.05)``: a fixed shift of 5 % of the side right and down, the uncovered edge black.
    """

    jitter: float = 0.1
    jitter_p: float = 0.3
    flip_p: float = 0.3
    rotate_limit: float = 90.0
    rotate_p: float = 0.3
    translate: float = 0.05
    affine_p: float = 0.2

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``x``: float ``(B, 3, H, W)`` in [0, 1] → one augmented view of each image, same shape."""
        b = x.shape[0]
        u, coin = _draws(x, gen)
        if self.jitter > 0 and self.jitter_p > 0:
            apply, j, s = coin(self.jitter_p).view(b, 1, 1, 1), x, self.jitter
            factors = [u(1 - s, 1 + s, 1, 1, 1) for _ in range(3)] + [u(-s, s)]
            for op in torch.randperm(4, generator=gen).tolist():
                j = color_op(j, op, factors[op])
            x = torch.where(apply, j, x)
        if self.flip_p > 0:
            apply, kind = coin(self.flip_p).view(b, 1, 1, 1), torch.randint(0, 3, (b,), generator=gen).to(x.device).view(b, 1, 1, 1)
            flipped = torch.where(kind == 0, x.flip(-2), torch.where(kind == 1, x.flip(-1), x.flip(-1, -2)))
            x = torch.where(apply, flipped, x)
        if self.rotate_p > 0:
            apply, angle = coin(self.rotate_p).view(b, 1, 1, 1), u(-self.rotate_limit, self.rotate_limit)
            x = torch.where(apply, rotate(x, angle), x)
        if self.affine_p > 0:
            apply = coin(self.affine_p).view(b, 1, 1, 1)
            x = torch.where(apply, translate(x, self.translate, self.translate), x)
        return x.clamp(0, 1)


def color_op(x: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    """One of albumentations' torchvision-style colour adjustments: 0 brightness, 1 contrast, 2 saturation
    (factors ``(B, 1, 1, 1)``), 3 hue (shift ``(B,)`` in turns)."""
    if op == 0:
        return (x * factor).clamp(0, 1)
    if op == 1:
        mean = _grey(x).mean((2, 3), keepdim=True)
        return ((x - mean) * factor + mean).clamp(0, 1)
    if op == 2:
        g = _grey(x)
        return ((x - g) * factor + g).clamp(0, 1)
    return hue_shift(x, factor).clamp(0, 1)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image by ``degrees`` (B,) about its centre, counter-clockwise as seen (OpenCV's sign),
    edges reflected."""
    t = degrees.to(x) * math.pi / 180
    c, s = torch.cos(t), torch.sin(t)
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, -s, s, c
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def translate(x: torch.Tensor, fx: float, fy: float) -> torch.Tensor:
    """Shift every image right by ``fx`` and down by ``fy`` of its side, the uncovered edge black."""
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = 1, 1, -2 * fx, -2 * fy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _draws(x: torch.Tensor, gen: torch.Generator):
    """Per-image random draws from ``gen`` for the batch ``x``: ``u(lo, hi, *shape)`` uniform ``(B, *shape)``,
    ``coin(p)`` booleans ``(B,)``; on ``x``'s device."""
    b = x.shape[0]

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return (torch.rand(b, *shape, generator=gen) * (hi - lo) + lo).to(x.device)

    def coin(p: float) -> torch.Tensor:
        return (torch.rand(b, generator=gen) < p).to(x.device)

    return u, coin


def make_augment(options: dict):
    """The augmentation ``mpcs.pretrain.augment`` names: ``kind`` (mild or simclr) and that kind's settings."""
    kinds = {"mild": MildAugment, "simclr": Augment}
    kind = options.get("kind", "mild")
    if kind not in kinds:
        raise ValueError(f"unknown augmentation kind {kind!r}; allowed: {', '.join(kinds)}")
    return kinds[kind](**options.get(kind, {}))


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
        u, coin = _draws(x, gen)
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


def flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal and vertical flips, the only augmentation of supervised fine-tuning."""
    b = x.shape[0]
    h = (torch.rand(b, generator=gen) < 0.5).to(x.device).view(b, 1, 1, 1)
    v = (torch.rand(b, generator=gen) < 0.5).to(x.device).view(b, 1, 1, 1)
    x = torch.where(h, x.flip(-1), x)
    return torch.where(v, x.flip(-2), x)
