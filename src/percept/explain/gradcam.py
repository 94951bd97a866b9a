"""Grad-CAM (Selvaraju et al., ICCV 2017) as its reference implementation (PyPI ``grad-cam``) outputs it.

For class c with pre-softmax (here pre-sigmoid) score y^c and the feature maps A^k of the chosen layer:
α_k^c = (1/Z) Σ_ij ∂y^c/∂A^k_ij (eq. 1), L^c = ReLU(Σ_k α_k^c A^k) (eq. 2), upsampled bilinearly to the
input resolution and min-max normalised to [0, 1] (``pytorch_grad_cam.utils.image.scale_cam_image``:
(L − min) / (max + 10⁻⁷)); ``normalise=False`` keeps the unnormalised eq. 2 map. Any module of the model can be
the layer, the classifier's own tap included. One backward pass per target position for the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from percept.explain.attributor import Targets, target_lists


class GradCAM:
    """An :class:`~percept.explain.attributor.Attributor`; ``layer`` is a module path of ``model``."""

    def __init__(self, model: nn.Module, layer: str, normalise: bool = True):
        self.model = model
        self.normalise = normalise
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"{layer!r} is not a module of {type(model).__name__}")
        self.layer = modules[layer]

    def attribute(self, images: torch.Tensor, targets: Targets) -> torch.Tensor:
        """Maps ``(B, T, H, W)`` on the CPU for images ``(B, 3, H, W)`` and the same number T of targets per
        image."""
        targets = target_lists(targets, len(images))
        store: dict[str, torch.Tensor] = {}

        def hook(_m, _i, out):
            store["a"] = out

        # prepended: a feature extractor's own hook on this module may stop the forward pass right after it
        handle = self.layer.register_forward_hook(hook, prepend=True)
        try:
            with torch.enable_grad():
                x = images.detach().requires_grad_(True)  # makes the graph reach the hooked layer
                scores = self.model(x)
                a = store["a"]
                maps = []
                for j in range(len(targets[0])):
                    picked = scores[torch.arange(len(x)), torch.tensor([t[j] for t in targets])].sum()
                    grad = torch.autograd.grad(picked, a, retain_graph=True)[0]
                    alpha = grad.mean(dim=(2, 3), keepdim=True)  # eq. 1
                    maps.append(F.relu((alpha * a).sum(1)))  # eq. 2
        finally:
            handle.remove()
        cam = torch.stack(maps, 1).detach()
        cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
        if self.normalise:
            lo = cam.amin(dim=(2, 3), keepdim=True)
            cam = cam - lo
            cam = cam / (cam.amax(dim=(2, 3), keepdim=True) + 1e-7)
        return cam.cpu()
