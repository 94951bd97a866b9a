"""The encoder (a registry backbone up to its last convolutional block, globally average-pooled), the
projection head of contrastive pretraining and the classifier of fine-tuning."""

from __future__ import annotations

import torch
from torch import nn

from percept import backbones
from percept.features import TapExtractor, prepare_input


class Encoder(nn.Module):
    """Images in [0, 1] → a feature vector: the backbone's last convolutional tap, average-pooled."""

    def __init__(self, backbone: str, weights: str = "imagenet", seed: int = 0, resize: int | None = None,
                 allow_download: bool = False):
        super().__init__()
        self.spec = backbones.get(backbone)
        self.tap = self.spec.gradcam_layer
        self.resize = resize
        self.extractor = TapExtractor(self.spec.build(weights=weights, seed=seed, allow_download=allow_download),
                                      [self.tap])
        with torch.no_grad():
            side = max(self.spec.min_input_size, 32)
            self.dim = int(self.extractor(torch.zeros(1, 3, side, side))[self.tap].shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(prepare_input(x, self.spec, self.resize))[self.tap].mean((2, 3))


class ProjectionHead(nn.Sequential):
    """SimCLR's non-linear projection g: Linear → ReLU → Linear (MPCS: 1024 → 128)."""

    def __init__(self, dim: int, hidden: int = 1024, out: int = 128):
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


class Classifier(nn.Module):
    """Encoder + linear layer, for the full fine-tuning protocol."""

    def __init__(self, encoder: Encoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))
