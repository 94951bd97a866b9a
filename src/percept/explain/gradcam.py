"""Grad-CAM (Selvaraju et al., ICCV 2017), exactly as published.

For class c with pre-softmax (here pre-sigmoid) score y^c and the feature maps A^k of the chosen
convolutional layer: α_k^c = (1/Z) Σ_ij ∂y^c/∂A^k_ij (eq. 1), L^c = ReLU(Σ_k α_k^c A^k) (eq. 2), upsampled
bilinearly to the input resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class GradCAM:
    """``attribute(image, targets)`` → maps ``(len(targets), H, W)``; ``layer`` is a module path of ``model``."""

    def __init__(self, model: nn.Module, layer: str):
        self.model = model
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"{layer!r} is not a module of {type(model).__name__}")
        self.layer = modules[layer]

    def attribute(self, image: torch.Tensor, targets: Sequence[int]) -> torch.Tensor:
        store: dict[str, torch.Tensor] = {}

        def hook(_m, _i, out):
            out.retain_grad()
            store["a"] = out

        handle = self.layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                x = image[None].detach().requires_grad_(True)  # makes the graph reach the hooked layer
                scores = self.model(x)[0]
                maps = []
                for t in targets:
                    a = store["a"]
                    grad = torch.autograd.grad(scores[t], a, retain_graph=True)[0]
                    alpha = grad.mean(dim=(2, 3), keepdim=True)  # eq. 1
                    maps.append(F.relu((alpha * a).sum(1, keepdim=True)))  # eq. 2
        finally:
            handle.remove()
        cam = torch.cat(maps).detach()
        return F.interpolate(cam, size=image.shape[1:], mode="bilinear", align_corners=False)[:, 0]
