"""The networks trained with deep perceptual loss: autoencoder (encoder + decoder of images or of a
loss network's features), the ×4 super-resolution network and the segmentation network."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.2, inplace=True))


class Encoder(nn.Module):
    """Image (3, S, S) → embedding z (or the mean and log-variance of q(z|x) when ``variational``).

    Stride-2 convolutions halve the side (channels doubling up to 8 × width) until it is at most 4.
    """

    def __init__(self, image_size: int, embedding_size: int, width: int = 32, variational: bool = False):
        super().__init__()
        layers, c_in, c, side = [], 3, width, image_size
        while side > 4:
            layers.append(_block(c_in, c, stride=2))
            c_in, c, side = c, min(2 * c, 8 * width), math.ceil(side / 2)
        self.features = nn.Sequential(*layers)
        self.variational = variational
        self.embedding_size = embedding_size
        self.head = nn.Linear(c_in * side * side, embedding_size * (2 if variational else 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mu, logvar); logvar is None for a deterministic encoder, and mu is the embedding."""
        h = self.head(self.features(x).flatten(1))
        if self.variational:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar.clamp(-20, 10)
        return h, None


class Decoder(nn.Module):
    """Embedding z → a tensor of shape ``out_shape`` (C, H, W): an image, or a loss network's feature map.

    A linear layer gives a (c0, ⌈H/2^n⌉, ⌈W/2^n⌉) map; n nearest-neighbour upsamplings with convolutions
    grow it (n chosen so the start is at least 4 wide), a bilinear resize fixes odd sides, and a final
    3×3 convolution gives the C channels. ``sigmoid`` maps an image decoder's output to [0, 1].
    """

    def __init__(self, embedding_size: int, out_shape: Sequence[int], width: int = 32, sigmoid: bool = False):
        super().__init__()
        c_out, h, w = (int(v) for v in out_shape)
        self.out_shape = (c_out, h, w)
        n_up = max(0, int(math.floor(math.log2(max(1, min(h, w)) / 4))))
        self.start = (math.ceil(h / 2**n_up), math.ceil(w / 2**n_up))
        c = width * 2 ** min(n_up, 3)
        self.c0 = c
        self.fc = nn.Linear(embedding_size, c * self.start[0] * self.start[1])
        ups = []
        for _ in range(n_up):
            ups += [nn.Upsample(scale_factor=2, mode="nearest"), _block(c, max(width, c // 2))]
            c = max(width, c // 2)
        self.up = nn.Sequential(*ups)
        self.out = nn.Conv2d(c, c_out, 3, 1, 1)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc(z), 0.2).view(-1, self.c0, *self.start)
        h = self.up(h)
        if tuple(h.shape[-2:]) != self.out_shape[1:]:
            h = F.interpolate(h, size=self.out_shape[1:], mode="bilinear", align_corners=False)
        h = self.out(h)
        return torch.sigmoid(h) if self.sigmoid else h


def mlp_hidden_size(n_features: int) -> int:
    """The hidden width of the ICPR paper's feature MLPs: min(n/2, 2048) for n flattened features
    (guspih/Perceptual-Autoencoders ``perceptual_embedder.FeaturePredictorCVAE``)."""
    return int(min(n_features / 2, 2048))


class FeatureDecoder(nn.Module):
    """Embedding z → the loss network's flattened features through one hidden layer of min(n/2, 2048) ReLU
    units (the ICPR 2020 paper's feature-prediction decoder), reshaped to ``out_shape``."""

    def __init__(self, embedding_size: int, out_shape: Sequence[int]):
        super().__init__()
        self.out_shape = tuple(int(v) for v in out_shape)
        n = math.prod(self.out_shape)
        hidden = mlp_hidden_size(n)
        self.net = nn.Sequential(nn.Linear(embedding_size, hidden), nn.ReLU(), nn.Linear(hidden, n))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)


class FeatureEncoder(nn.Module):
    """The loss network's features (flattened, n of them) → embedding, through one hidden layer of
    min(n/2, 2048) ReLU units (the F-… procedures of the ICPR paper, ``FeatureAutoencoder.encode``).
    Takes the features, not the image: the frozen loss network is the caller's (never saved with the model)."""

    def __init__(self, feature_shape: Sequence[int], embedding_size: int, variational: bool = False):
        super().__init__()
        n = math.prod(int(v) for v in feature_shape)
        hidden = mlp_hidden_size(n)
        self.body = nn.Sequential(nn.Linear(n, hidden), nn.ReLU())
        self.variational = variational
        self.embedding_size = embedding_size
        self.head = nn.Linear(hidden, embedding_size * (2 if variational else 1))

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.head(self.body(f.flatten(1)))
        if self.variational:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar.clamp(-20, 10)
        return h, None


class Autoencoder(nn.Module):
    """Encoder + decoder. With ``target_shape`` = the image the decoder reconstructs the image (pixel and
    perceptual loss); with a feature map's shape it predicts the loss network's features (feature prediction):
    ``feature_decoder`` ``mlp`` (the ICPR paper's) or ``conv`` (upsampling convolutions, this project's earlier
    decoder). With ``feature_shape`` the encoder reads the loss network's features instead of the image (the
    F-… procedures); then :meth:`forward` and :meth:`encode` take those features."""

    def __init__(self, image_size: int, embedding_size: int, target_shape: Sequence[int], width: int = 32,
                 variational: bool = False, decodes_image: bool = True, feature_decoder: str = "mlp",
                 feature_shape: Sequence[int] | None = None):
        super().__init__()
        if feature_decoder not in ("mlp", "conv"):
            raise ValueError(f"feature_decoder must be mlp or conv, got {feature_decoder!r}")
        self.reads_features = feature_shape is not None
        if self.reads_features:
            self.encoder = FeatureEncoder(feature_shape, embedding_size, variational)
        else:
            self.encoder = Encoder(image_size, embedding_size, width, variational)
        if decodes_image or feature_decoder == "conv":
            self.decoder = Decoder(embedding_size, target_shape, width, sigmoid=decodes_image)
        else:
            self.decoder = FeatureDecoder(embedding_size, target_shape)

    def forward(self, x: torch.Tensor, sample: bool = True):
        """(output, mu, logvar): z is sampled by the reparameterisation trick in training when variational."""
        mu, logvar = self.encoder(x)
        z = mu
        if logvar is not None and sample and self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


class SuperResolver(nn.Module):
    """A small ×scale super-resolution network: convolutions at low resolution, pixel-shuffle upsampling
    (×2 steps), added to the bilinear upsampling of the input (the network learns the residual)."""

    def __init__(self, scale: int = 4, width: int = 32, depth: int = 3):
        super().__init__()
        if scale & (scale - 1) or scale < 2:
            raise ValueError(f"scale must be a power of two >= 2, got {scale}")
        self.scale = scale
        body = [nn.Conv2d(3, width, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(depth):
            body += [nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(int(math.log2(scale))):
            body += [nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.2, inplace=True)]
        body.append(nn.Conv2d(width, 3, 3, 1, 1))
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return base + self.body(x)


class Segmenter(nn.Module):
    """A small U-Net-style segmenter: image → foreground probability (1, H, W)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.enc1 = nn.Sequential(_block(3, width), _block(width, width))
        self.enc2 = nn.Sequential(_block(width, 2 * width, 2), _block(2 * width, 2 * width))
        self.enc3 = nn.Sequential(_block(2 * width, 4 * width, 2), _block(4 * width, 4 * width))
        self.dec2 = _block(4 * width + 2 * width, 2 * width)
        self.dec1 = _block(2 * width + width, width)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        return torch.sigmoid(self.out(d1))
