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
    """The non-linear projection g (MPCS: ``projector: "1024-128"``).

    ``batchnorm=True`` (the reference's ``Resnet_SSL.projector``, src/self_supervised/core/models.py):
    Linear without bias → BatchNorm1d → ReLU → Linear without bias. ``False`` (a named option): SimCLR's
    Linear → ReLU → Linear with biases.
    """

    def __init__(self, dim: int, hidden: int = 1024, out: int = 128, batchnorm: bool = True):
        if batchnorm:
            super().__init__(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                             nn.Linear(hidden, out, bias=False))
        else:
            super().__init__(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


class Classifier(nn.Module):
    """Encoder + linear layer, for the full fine-tuning protocol."""

    def __init__(self, encoder: Encoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int, transform=None) -> None:
    """Re-estimate every BatchNorm's running statistics as the exact average over ``images`` (uint8).

    Training updates the running statistics slowly (EfficientNet-Lite's momentum is 0.01), so after a few
    hundred steps they still describe ImageNet while the training batches were normalised with their own
    statistics; evaluating with them would score a network the training never saw.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the exact mean over the batches
    model.train()
    # equal-sized chunks: a last batch of one image would break BatchNorm on 1x1 feature maps
    for chunk in torch.tensor_split(images, max(1, -(-len(images) // batch_size))):
        x = chunk.float() / 255
        model(transform(x) if transform is not None else x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
