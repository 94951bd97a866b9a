"""The one call shape of every explanation method: ``attribute(images, targets) -> maps``.

- ``images``: a float tensor ``(N, 3, H, W)`` in [0, 1] (the classifier's input space, unnormalised);
- ``targets``: the classes to explain, ``(N, T)`` integers, the same T for every image (a list of lists, a
  numpy array or a tensor); row i lists image i's classes;
- returns a float tensor ``(N, T, H, W)`` on the CPU: ``maps[i, j]`` explains class ``targets[i][j]`` of image
  i at the input resolution (higher = more relevant; the scale is the method's own).

RISE and its components (:class:`percept.explain.perturbation.PerturbationExplainer`), Grad-CAM
(:class:`percept.explain.gradcam.GradCAM`), the trained NN-Explainer (:class:`percept.explain.explainer.Explainer`)
and the relevant-channel heatmaps (:class:`percept.explain.channels.ChannelHeatmaps`) answer it, so the
evaluation (:func:`attribute_methods`) treats them alike. Torch-free at import.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

Targets = Any  # (N, T) integers: Sequence[Sequence[int]], np.ndarray or torch.Tensor


@runtime_checkable
class Attributor(Protocol):
    """A saliency method: maps ``(N, T, H, W)`` on the CPU for images ``(N, 3, H, W)`` and targets ``(N, T)``."""

    def attribute(self, images: "torch.Tensor", targets: Targets) -> "torch.Tensor":
        ...


def target_lists(targets: Targets, n_images: int) -> list[list[int]]:
    """``targets`` as N lists of T ints; a clear error when the count or the shape is wrong."""
    try:
        rows = np.asarray(targets.cpu() if hasattr(targets, "cpu") else targets)
    except ValueError:  # rows of different lengths
        rows = np.asarray(targets, dtype=object)
    if rows.ndim != 2 or len(rows) != n_images or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"targets must be ({n_images}, T) integers, one row of classes per image (the same T "
                         f"for every image), got {rows.dtype} {rows.shape}")
    return rows.tolist()


def all_classes(n_images: int, n_classes: int) -> list[list[int]]:
    """Every class of every image: the targets of a map file (``maps/<setting>`` ``(N, K, H, W)``)."""
    return [list(range(n_classes))] * n_images


def attribute_methods(methods: Mapping[str, Attributor], images: "torch.Tensor", targets: Targets, *,
                      batch_size: int = 16, device: Any = None) -> dict[str, tuple[np.ndarray, float]]:
    """Every method's maps of the same images and targets, ``batch_size`` images a call (memory: a method may
    keep the activations and gradients of a whole call), and the seconds each method took.

    Returns ``{name: (maps (N, T, H, W) float32, seconds)}``; ``device`` is where the images go (None: as given)."""
    rows = target_lists(targets, len(images))
    out = {}
    for name, method in methods.items():
        t0 = time.perf_counter()
        parts = []
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            maps = method.attribute(x if device is None else x.to(device), rows[start:start + batch_size])
            if tuple(maps.shape) != (len(x), len(rows[0]), *x.shape[-2:]):
                raise RuntimeError(f"{name}: attribute returned maps {tuple(maps.shape)} for images "
                                   f"{tuple(x.shape)} and {len(rows[0])} targets each; expected (N, T, H, W)")
            parts.append(maps.detach().cpu().float().numpy())
        out[name] = (np.concatenate(parts), time.perf_counter() - t0)
    return out


class ConstantMap:
    """The same value at every pixel: the floor every method must beat on the ground-truth metrics (its maximum
    is the first pixel)."""

    def attribute(self, images: "torch.Tensor", targets: Targets) -> "torch.Tensor":
        import torch

        return torch.ones(len(images), len(target_lists(targets, len(images))[0]), *images.shape[-2:])
