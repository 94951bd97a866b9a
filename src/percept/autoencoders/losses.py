"""The three losses of the perceptual-autoencoder papers, and the KL term of the variational encoder.

- pixel loss: mean squared error between the image and its reconstruction;
- perceptual loss: mean squared error between the loss network's features (at one extraction point) of
  the image and of the reconstruction — the loss network runs on both, every step;
- feature prediction loss: mean squared error between the decoder's output and the loss network's
  features of the image — no image is decoded. In the ICPR 2020 paper (and by default here) the loss
  network runs on every batch (``targets: online``); this project can also compute the targets once before
  training (``precomputed``) or read them from the HDF5 feature cache (``feature_cache``), so that the loss
  network never runs during training.

The loss network of the perceptual-autoencoder papers takes the images unnormalised in [0, 1] and applies a
sigmoid to its features (guspih/Perceptual-Autoencoders ``perceptual_networks.SimpleExtractor``,
``sigmoid_out=True``); :class:`LossNetwork` does both by default in the autoencoder stage
(``loss_network.input``/``sigmoid``). The grid paper's tasks keep raw features and differ in the input
(LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks): its super-resolution and autoencoder code
feeds the images unnormalised (``normalize_in=False``), its segmentation code ImageNet-normalised; each grid
task's ``input`` option defaults to its code's choice. The class's own defaults (``imagenet``, no sigmoid)
are only the constructor's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from percept import backbones
from percept.backbones.spec import NetworkSpec
from percept.features import TapExtractor, prepare_input


def pixel_loss(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(reconstruction, image)


def feature_prediction_loss(predicted: torch.Tensor, cached_target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(predicted, cached_target)


KL_REDUCTIONS = ("mean", "sum")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor | None, reduction: str = "sum") -> torch.Tensor:
    """The KL term of a variational encoder; 0 when deterministic.

    - ``sum``: KL(N(mu, exp(logvar)) || N(0, I)) = ½ Σ (mu² + σ² − 1 − log σ²) (Kingma & Welling), summed
      over the embedding's elements (a vector or a latent map) and averaged over the batch;
    - ``mean``: the perceptual-autoencoder papers' term, −mean(1 + log σ² − mu² − σ²) over batch *and*
      dimensions (guspih/Perceptual-Autoencoders ``VAE.TemplateVAE.loss``; no ½): 2/z × the ``sum`` value,
      so a weight γ there equals γ·2/z here (z = 64: the papers' 0.01 is ``sum``'s 0.0003).
    """
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")
    if logvar is None:
        return mu.new_zeros(())
    terms = 1 + logvar - mu.pow(2) - logvar.exp()
    if reduction == "mean":
        return -terms.mean()
    return (-0.5 * terms.flatten(1).sum(1)).mean()


INPUT_RANGES = ("unit", "imagenet")


class LossNetwork(nn.Module):
    """A frozen registry network returning its features at one extraction point (tap) for images in [0, 1].

    ``input``: ``imagenet`` normalises the images as the network was trained (the grid paper's
    ``normalize_in=True``); ``unit`` feeds them unnormalised in [0, 1] (the perceptual-autoencoder papers).
    ``sigmoid`` squashes the features into (0, 1) (the autoencoder papers' ``sigmoid_out=True``).
    """

    def __init__(self, backbone: str, tap: str, weights: str = "imagenet", resize: int | None = None,
                 seed: int = 0, allow_download: bool = False, input: str = "imagenet", sigmoid: bool = False):
        super().__init__()
        if input not in INPUT_RANGES:
            raise ValueError(f"loss network input must be one of {INPUT_RANGES}, got {input!r}")
        self.spec = backbones.get(backbone)
        self.tap = backbones.resolve_taps(self.spec, [tap])[0]
        self.resize = resize
        self.normalize = input == "imagenet"
        self.sigmoid = bool(sigmoid)
        model = self.spec.build(weights, seed=seed, allow_download=allow_download)
        for p in model.parameters():
            p.requires_grad_(False)
        self.extractor = TapExtractor(model, [self.tap]).eval()

    def train(self, mode: bool = True) -> "LossNetwork":  # the loss network stays in eval mode (frozen BN)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.extractor(prepare_input(x, self.spec, self.resize, normalize=self.normalize))[self.tap]
        return torch.sigmoid(f) if self.sigmoid else f

    @classmethod
    def from_options(cls, net: dict, seed: int = 0, allow_download: bool = False) -> "LossNetwork":
        """From a config's ``loss_network`` entry (backbone, tap, weights, resize, input, sigmoid)."""
        spec = NetworkSpec.from_config(net, "autoencoders.loss_network")
        return cls(spec.backbone, net["tap"], spec.weights, spec.resize, seed=seed,
                   allow_download=allow_download, input=net.get("input", "imagenet"),
                   sigmoid=bool(net.get("sigmoid", False)))


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
