"""The three losses of the perceptual-autoencoder papers, and the KL term of the variational encoder.

- pixel loss: mean squared error between the image and its reconstruction;
- perceptual loss: mean squared error between the loss network's features (at one extraction point) of
  the image and of the reconstruction — the loss network runs on both, every step;
- feature prediction loss: mean squared error between the decoder's output and the loss network's
  features of the image, read from the HDF5 feature cache — no image is decoded and the loss network
  never runs during training (the speed claim of the ICPR 2020 paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from percept import backbones
from percept.features import TapExtractor, prepare_input


def pixel_loss(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(reconstruction, image)


def feature_prediction_loss(predicted: torch.Tensor, cached_target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(predicted, cached_target)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) = ½ Σ (mu² + σ² − 1 − log σ²) (Kingma & Welling), summed over the
    embedding's elements (a vector or a latent map) and averaged over the batch; 0 when deterministic."""
    if logvar is None:
        return mu.new_zeros(())
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(1)).mean()


class LossNetwork(nn.Module):
    """A frozen registry network returning its features at one extraction point (tap) for images in [0, 1]."""

    def __init__(self, backbone: str, tap: str, weights: str = "imagenet", resize: int | None = None,
                 seed: int = 0, allow_download: bool = False):
        super().__init__()
        self.spec = backbones.get(backbone)
        self.tap = backbones.resolve_taps(self.spec, [tap])[0]
        self.resize = resize
        model = self.spec.build(weights, seed=seed, allow_download=allow_download)
        for p in model.parameters():
            p.requires_grad_(False)
        self.extractor = TapExtractor(model, [self.tap]).eval()

    def train(self, mode: bool = True) -> "LossNetwork":  # the loss network stays in eval mode (frozen BN)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(prepare_input(x, self.spec, self.resize))[self.tap]


class PerceptualLoss(nn.Module):
    """MSE between the loss network's features of ``output`` and of ``target`` (Johnson et al. 2016's
    feature reconstruction loss at one extraction point)."""

    def __init__(self, network: LossNetwork):
        super().__init__()
        self.network = network

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # no_grad, not inference_mode: the target features enter the autograd graph of the loss.
        with torch.no_grad():
            want = self.network(target)
        return F.mse_loss(self.network(output), want)
