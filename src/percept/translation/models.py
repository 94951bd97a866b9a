"""Two VAEs sharing their innermost layers (one latent space) and a discriminator per domain.

Built from the autoencoder stage's blocks (:mod:`percept.autoencoders.models`): each domain has its own
convolutional trunk (``Encoder.features``) and its own upsampling decoder (``Decoder.up``/``out``), while the
encoders' last layer (the linear map to the mean and log-variance of q(z|x)) and the decoders' first layer
(the linear map from z) are *one* module shared by both domains (the shared-latent assumption of the ICIP 2019
model and of UNIT). Translation A→B is ``decode_B(encode_A(x))``.
"""

from __future__ import annotations

import torch
from torch import nn

from percept.autoencoders.models import Decoder, Encoder

DOMAINS = ("A", "B")


class SharedLatentVAEs(nn.Module):
    """``encode(x, d)`` → (mu, logvar); ``decode(z, d)`` → image in [0, 1]; ``translate(x, src, dst)``."""

    def __init__(self, image_size: int, latent_size: int = 64, width: int = 16):
        super().__init__()
        enc = {d: Encoder(image_size, latent_size, width, variational=True) for d in DOMAINS}
        dec = {d: Decoder(latent_size, (3, image_size, image_size), width, sigmoid=True) for d in DOMAINS}
        enc["B"].head = enc["A"].head  # the shared innermost layers
        dec["B"].fc = dec["A"].fc
        self.encoders = nn.ModuleDict(enc)
        self.decoders = nn.ModuleDict(dec)
        self.latent_size = latent_size

    def encode(self, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoders[domain](x)

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The reparameterisation trick in training; the mean otherwise."""
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor, domain: str) -> torch.Tensor:
        return self.decoders[domain](z)

    def translate(self, x: torch.Tensor, src: str, dst: str) -> torch.Tensor:
        mu, logvar = self.encode(x, src)
        return self.decode(self.sample(mu, logvar), dst)

    def forward(self, x: torch.Tensor, src: str = "A", dst: str = "B") -> torch.Tensor:
        return self.translate(x, src, dst)


class Discriminator(nn.Module):
    """Image → one real/fake logit: the autoencoder stage's convolutional encoder with a 1-unit head."""

    def __init__(self, image_size: int, width: int = 16):
        super().__init__()
        self.net = Encoder(image_size, 1, width, variational=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0].squeeze(1)
