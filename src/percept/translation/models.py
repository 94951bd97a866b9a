"""Two VAEs sharing their innermost layers (one latent space) and a discriminator per domain (PatchGAN or global).

Two kinds of shared latent (``translation.model.latent``):

- ``vector`` (:class:`SharedLatentVAEs`): built from the autoencoder stage's blocks
  (:mod:`percept.autoencoders.models`): each domain has its own convolutional trunk (``Encoder.features``) and
  its own upsampling decoder (``Decoder.up``/``out``), while the encoders' last layer (the linear map to the mean
  and log-variance of q(z|x)) and the decoders' first layer (the linear map from z) are *one* module shared by
  both domains. One code per image: where the object is must be encoded like any other factor.
- ``spatial`` (:class:`SpatialSharedVAEs`, the default): the same sharing with a latent *map*, as in UNIT (Liu et
  al. 2017): the shared layers are 3×3 convolutions, so the object's place and colour stay where they are in the
  code and the domain decoders only have to redraw its shape.

Translation A→B is ``decode_B(encode_A(x))`` for both (the shared-latent assumption of the ICIP 2019 model).
"""

from __future__ import annotations

import torch
from torch import nn

from percept.autoencoders.models import Decoder, Encoder, _block

DOMAINS = ("A", "B")
LATENTS = ("vector", "spatial")


class SharedVAEs(nn.Module):
    """What both latent kinds share: per-domain ``encoders`` (image → mean and log-variance of q(z|x)) and
    ``decoders`` (z → image in [0, 1]) whose innermost layers are one module; ``encode(x, d)``, ``sample``,
    ``decode(z, d)`` and ``translate(x, src, dst)``. Subclasses build the two module dicts."""

    encoders: nn.ModuleDict
    decoders: nn.ModuleDict

    def __init__(self, latent_size: int):
        super().__init__()
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


class SharedLatentVAEs(SharedVAEs):
    """The vector latent: the autoencoder stage's ``Encoder``/``Decoder`` per domain, their linear innermost
    layers (``Encoder.head``, ``Decoder.fc``) shared."""

    def __init__(self, image_size: int, latent_size: int = 64, width: int = 16):
        super().__init__(latent_size)
        enc = {d: Encoder(image_size, latent_size, width, variational=True) for d in DOMAINS}
        dec = {d: Decoder(latent_size, (3, image_size, image_size), width, sigmoid=True) for d in DOMAINS}
        enc["B"].head = enc["A"].head  # the shared innermost layers
        dec["B"].fc = dec["A"].fc
        self.encoders = nn.ModuleDict(enc)
        self.decoders = nn.ModuleDict(dec)


class SpatialSharedVAEs(SharedVAEs):
    """The same system with a *spatial* shared latent (as in UNIT, Liu et al. 2017): each domain's trunk halves
    the side ``downsamplings`` times; one shared 3×3 convolution maps the trunk's map to the mean and
    log-variance of a ``latent_size``-channel latent map, and one shared 3×3 convolution starts both decoders,
    whose own upsampling blocks end in a sigmoid image. Where the object is stays where it is in the code."""

    def __init__(self, image_size: int, latent_size: int = 64, width: int = 16, downsamplings: int = 2):
        super().__init__(latent_size)
        c = width * 2 ** (downsamplings - 1)
        head = nn.Conv2d(c, 2 * latent_size, 3, 1, 1)
        start = nn.Sequential(nn.Conv2d(latent_size, c, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))

        def trunk():
            layers, c_in = [], 3
            for i in range(downsamplings):
                layers += [_block(c_in, width * 2 ** i, 2), _block(width * 2 ** i, width * 2 ** i)]
                c_in = width * 2 ** i
            return nn.Sequential(*layers)

        def up():
            layers, c_in = [], c
            for i in reversed(range(downsamplings)):
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), _block(c_in, width * 2 ** max(i - 1, 0)),
                           _block(width * 2 ** max(i - 1, 0), width * 2 ** max(i - 1, 0))]
                c_in = width * 2 ** max(i - 1, 0)
            return nn.Sequential(*layers, nn.Conv2d(c_in, 3, 3, 1, 1), nn.Sigmoid())

        self.encoders = nn.ModuleDict({d: _SpatialEncoder(trunk(), head) for d in DOMAINS})
        self.decoders = nn.ModuleDict({d: nn.Sequential(start, up()) for d in DOMAINS})


class _SpatialEncoder(nn.Module):
    def __init__(self, trunk: nn.Module, head: nn.Module):
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.trunk(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-20, 10)


def make_translator(image_size: int, latent_size: int = 64, width: int = 16, latent: str = "spatial",
                    downsamplings: int = 2) -> SharedVAEs:
    """The translator of ``latent`` kind: a vector (one code per image) or a spatial (UNIT-style) shared latent.
    The keywords are those of the config's ``translation.model``, with the schema's defaults."""
    if latent == "vector":
        return SharedLatentVAEs(image_size, latent_size, width)
    if latent == "spatial":
        return SpatialSharedVAEs(image_size, latent_size, width, downsamplings)
    raise ValueError(f"latent must be one of {LATENTS}; got {latent!r}")


DISCRIMINATORS = ("patch", "global")


class Discriminator(nn.Module):
    """Image → one real/fake logit: the autoencoder stage's convolutional encoder with a 1-unit head."""

    def __init__(self, image_size: int, width: int = 16):
        super().__init__()
        self.net = Encoder(image_size, 1, width, variational=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0].squeeze(1)


class PatchDiscriminator(nn.Module):
    """Image → a map of real/fake logits, one per overlapping patch (PatchGAN, Isola et al. 2017): ``layers``
    4×4 stride-2 convolutions with leaky ReLUs and no batch normalisation (real and translated batches go
    through it separately, and batch statistics would tell them apart by themselves), then a 3×3 convolution
    to one channel. With 3 layers each logit sees 38×38 pixels: the whole object at 32 px."""

    def __init__(self, width: int = 16, layers: int = 3):
        super().__init__()
        mods, c_in = [], 3
        for i in range(layers):
            c = width * 2 ** min(i, 3)
            mods += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c
        self.net = nn.Sequential(*mods, nn.Conv2d(c_in, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_discriminator(image_size: int, width: int = 16, kind: str = "patch") -> nn.Module:
    """A domain's discriminator: ``patch`` (PatchGAN, no batch norm) or ``global`` (one logit per image)."""
    if kind == "patch":  # halve the side down to 4 px, at most 3 times (16 px: 2 layers, 32 px and up: 3)
        return PatchDiscriminator(width, layers=max(1, min(3, int(image_size).bit_length() - 3)))
    if kind == "global":
        return Discriminator(image_size, width)
    raise ValueError(f"discriminator must be one of {DISCRIMINATORS}; got {kind!r}")
