"""The deep perceptual similarity (DPS) metric family: one implementation, many settings.

Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric" (CVPR 2018, eq. 1):

    d(x, x0) = sum_l 1/(H_l W_l) sum_{h,w} || w_l ⊙ (ŷ_l[h,w] - ŷ0_l[h,w]) ||²

with ŷ the activations at tap l unit-normalised over channels. Sjögren, Pihlgren, Sandin & Liwicki, "Identifying
and Mitigating Flaws of Deep Perceptual Similarity Metrics" (NLDL 2023) swap the spatial comparison for
per-channel statistics. Every mode here is linear in the per-channel weights, so a distance is

    d = sum_l  s_l · w_l,      s_l[c] = the per-channel comparison of tap l (``channel_distances``)

with the modes (``f`` = raw features at one tap, ``n(·)`` = unit normalisation over channels, ``Δ`` = difference):

- ``spatial``: s[c] = mean_{h,w} Δ n(f)_c²                           (LPIPS; a spatial map before the average)
- ``mean``:    s[c] = (n(m0)_c - n(m1)_c)²,  m = mean_{h,w} f           (position-free channel means)
- ``sort``:    s[c] = mean_k (n(o0)_{c,k} - n(o1)_{c,k})²,  o = each channel sorted over positions
- ``spatial+mean``, ``spatial+sort``: the spatial and the modified comparison side by side, ``s`` of 2C values
  per tap ``[spatial | modified]`` with their own weights (the authors' ``ExtractionModifier(return_policy=
  'concat')``: the modified maps are extra layers of the metric, each with its own 1x1 convolution).

``norm_order="after"`` (the default, the authors' ``ExtractionModifier(shape_policy='keep')`` followed by
``DistanceMetric(channel_norm=True)``, guspih/deep_perceptual_similarity_analysis loss_networks.py /
experiment.py) averages or sorts the raw features and normalises the result across channels;
``norm_order="before"`` (this project's earlier definition) normalises each position first and then averages
or sorts. The two differ by tens of per cent (see docs/fidelity/similarity.md). ``combine="sum"`` (the earlier
definition) adds the two parts of a combined mode into C values with one shared weight per channel.

Weights ``w_l`` are none (all ones: the uncalibrated channel sum) or learned non-negative 1x1 convolutions;
averaging over positions after the weighting (as LPIPS does) or before it is the same number.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from percept import backbones
from percept.checkpoints import load_torch
from percept.features import TapExtractor

MODES = ("spatial", "mean", "sort", "spatial+mean", "spatial+sort")
SCALINGS = ("backbone", "lpips")
NORM_ORDERS = ("after", "before")
COMBINES = ("concat", "sum")
EPS = 1e-10
# The LPIPS scaling layer: inputs in [-1, 1] are shifted and scaled per channel (lpips v0.1).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# Registry backbone -> the name of its linear weights in the lpips package (weights/v0.1/<name>.pth).
from percept.similarity_names import LPIPS_NETS

Features = Mapping[str, torch.Tensor]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def unit_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """x / (‖x‖₂ over channels + eps), per position (LPIPS ``normalize_tensor``)."""
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)


def _pair(f0: torch.Tensor, f1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if f0.dim() != 4 or f1.dim() != 4 or f0.shape[1:] != f1.shape[1:]:
        raise ValueError(f"tap features must be (N, C, H, W) of equal C, H, W; got {tuple(f0.shape)} and "
                         f"{tuple(f1.shape)}")
    if f0.shape[0] != f1.shape[0] and 1 not in (f0.shape[0], f1.shape[0]):
        raise ValueError(f"batch sizes {f0.shape[0]} and {f1.shape[0]} differ (one of them may be 1: a shared "
                         "reference)")
    return f0, f1


def check_options(norm_order: str, combine: str) -> None:
    if norm_order not in NORM_ORDERS:
        raise ValueError(f"norm_order must be one of {NORM_ORDERS}; got {norm_order!r}")
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}; got {combine!r}")


def mode_width(mode: str, combine: str = "concat") -> int:
    """Comparison values per channel of a tap: 2 for a combined mode with separate weights, else 1."""
    return 2 if "+" in check_mode(mode) and combine == "concat" else 1


def channel_maps(f0: torch.Tensor, f1: torch.Tensor, mode: str = "spatial", normalize: bool = True,
                 norm_order: str = "after", combine: str = "concat") -> torch.Tensor:
    """The squared-difference map ``(N, C', P)`` of one tap whose mean over ``P`` is :func:`channel_distances`.

    ``P`` is the positions (spatial), the sorted ranks (sort) or one value repeated over the positions
    (mean: the authors expand the channel mean back to H x W, ``shape_policy='keep'``); ``C'`` is C, or 2C
    for a combined mode with ``combine="concat"``. Calibration drops single elements of this map (LPIPS's
    dropout before the 1x1 convolution acts on the N x C x H x W difference map).
    """
    f0, f1 = _pair(f0, f1)
    check_mode(mode)
    check_options(norm_order, combine)
    pre = normalize and norm_order == "before"
    post = normalize and norm_order == "after"
    a0, a1 = (unit_normalize(f0), unit_normalize(f1)) if normalize else (f0, f1)
    b0, b1 = (a0, a1) if pre else (f0, f1)
    parts = []
    if "spatial" in mode:
        parts.append((a0 - a1).pow(2).flatten(2))
    p = f0.shape[2] * f0.shape[3]
    if "mean" in mode:
        m0, m1 = b0.mean((2, 3), keepdim=True), b1.mean((2, 3), keepdim=True)
        if post:
            m0, m1 = unit_normalize(m0), unit_normalize(m1)
        parts.append((m0 - m1).pow(2).flatten(2).expand(-1, -1, p))
    if "sort" in mode:
        s0 = b0.flatten(2).sort(-1).values.unsqueeze(-1)
        s1 = b1.flatten(2).sort(-1).values.unsqueeze(-1)
        if post:  # each rank's channel vector, as the authors' reshaped (N, C, H, W) sorted map
            s0, s1 = unit_normalize(s0), unit_normalize(s1)
        parts.append((s0 - s1).pow(2).squeeze(-1))
    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts, 1) if combine == "concat" else parts[0] + parts[1]


def channel_distances(f0: torch.Tensor, f1: torch.Tensor, mode: str = "spatial", normalize: bool = True,
                      norm_order: str = "after", combine: str = "concat") -> torch.Tensor:
    """Per-channel comparison ``s[n, c]`` of one tap's features (N, C, H, W); see the module docstring.

    A batch of 1 on either side is broadcast (one reference against many images). Combined modes give 2C
    values ``[spatial | modified]`` with ``combine="concat"`` (the default), C summed ones with ``"sum"``.
    """
    f0, f1 = _pair(f0, f1)
    check_mode(mode)
    check_options(norm_order, combine)
    if mode == "spatial":
        a0, a1 = (unit_normalize(f0), unit_normalize(f1)) if normalize else (f0, f1)
        return (a0 - a1).pow(2).mean((2, 3))
    if "sort" not in mode:  # mean modes need no P-long map
        a0, a1 = (unit_normalize(f0), unit_normalize(f1)) if normalize else (f0, f1)
        b0, b1 = (a0, a1) if normalize and norm_order == "before" else (f0, f1)
        m0, m1 = b0.mean((2, 3), keepdim=True), b1.mean((2, 3), keepdim=True)
        if normalize and norm_order == "after":
            m0, m1 = unit_normalize(m0), unit_normalize(m1)
        mod = (m0 - m1).pow(2).flatten(1)
        if mode == "mean":
            return mod
        spatial = (a0 - a1).pow(2).mean((2, 3))
        return torch.cat([spatial, mod], 1) if combine == "concat" else spatial + mod
    return channel_maps(f0, f1, mode, normalize, norm_order, combine).mean(-1)


def _weight_vector(weights: Mapping[str, torch.Tensor] | None, tap: str, channels: int,
                   like: torch.Tensor) -> torch.Tensor | None:
    if weights is None:
        return None
    if tap not in weights:
        raise KeyError(f"no weights for tap {tap!r}; weights are given for {sorted(weights)}")
    w = weights[tap].reshape(-1).to(like)
    if w.numel() != channels:
        raise ValueError(f"tap {tap!r}: {w.numel()} weights for {channels} channels")
    return w


def dps_distance(feats0: Features, feats1: Features, mode: str = "spatial", normalize: bool = True,
                 weights: Mapping[str, torch.Tensor] | None = None, per_tap: bool = False,
                 norm_order: str = "after", combine: str = "concat"
                 ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The DPS distance between two images' tap features.

    Args:
        feats0, feats1: ``{tap: Tensor[N, C, H, W]}`` with the same taps (a batch of 1 on one side is
            broadcast against the other: a shared reference).
        mode: one of :data:`MODES` (``spatial`` is LPIPS).
        normalize: unit-normalise channel vectors (x / (‖x‖₂ + 1e-10)).
        weights: ``None`` (uncalibrated: the channel sum) or ``{tap: non-negative weights}`` of C values
            each (2C for a combined mode with ``combine="concat"``: spatial then modified), in any shape
            (``(C,)`` or the ``(1, C, 1, 1)`` of a 1x1 convolution).
        norm_order, combine: see the module docstring (defaults: the authors' definitions).
        per_tap: also return each tap's contribution.

    Returns:
        ``Tensor[N]`` (and ``{tap: Tensor[N]}`` when ``per_tap``): sum over taps of the weighted channel sum
        of :func:`channel_distances`.
    """
    if list(feats0) != list(feats1):
        raise ValueError(f"the two feature dicts hold different taps: {list(feats0)} vs {list(feats1)}")
    if not feats0:
        raise ValueError("no tap features given")
    parts: dict[str, torch.Tensor] = {}
    for tap in feats0:
        s = channel_distances(feats0[tap], feats1[tap], mode, normalize, norm_order, combine)
        w = _weight_vector(weights, tap, s.shape[1], s)
        parts[tap] = s.sum(1) if w is None else s @ w
    total = torch.stack(list(parts.values())).sum(0)
    return (total, parts) if per_tap else total


def distance_map(feats0: Features, feats1: Features, size: Sequence[int], normalize: bool = True,
                 weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The spatial-mode distance as a map ``(N, 1, *size)``: each tap's weighted squared difference,
    bilinearly upsampled to ``size`` (LPIPS ``spatial=True``) and summed over taps."""
    out = 0
    for tap in feats0:
        f0, f1 = _pair(feats0[tap], feats1[tap])
        if normalize:
            f0, f1 = unit_normalize(f0), unit_normalize(f1)
        d = (f0 - f1).pow(2)
        w = _weight_vector(weights, tap, d.shape[1], d)
        m = d.sum(1, keepdim=True) if w is None else torch.einsum("nchw,c->nhw", d, w).unsqueeze(1)
        out = out + F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)
    return out


# ------------------------------------------------------------------------------------------ linear weights

class _Lin(nn.Module):
    """Dropout then a 1x1 convolution to one channel without bias (LPIPS ``NetLinLayer``; the state-dict key
    ``model.1.weight`` matches the shipped checkpoints because dropout is index 0)."""

    def __init__(self, channels: int, dropout: float = 0.5):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(channels, 1, 1, bias=False))


class LinearWeights(nn.Module):
    """One non-negative 1x1 convolution per tap (attributes ``lin0``, ``lin1``, … in tap order)."""

    def __init__(self, channels: Sequence[int], taps: Sequence[str], dropout: float = 0.5, init: str = "ones"):
        super().__init__()
        if len(channels) != len(taps):
            raise ValueError(f"{len(channels)} channel counts for {len(taps)} taps")
        self.taps = list(taps)
        for k, c in enumerate(channels):
            lin = _Lin(int(c), dropout)
            if init == "ones":
                nn.init.ones_(lin.model[1].weight)
            setattr(self, f"lin{k}", lin)

    def conv(self, k: int) -> nn.Conv2d:
        return getattr(self, f"lin{k}").model[1]

    def weights(self) -> dict[str, torch.Tensor]:
        """``{tap: Tensor[C]}`` — the form :func:`dps_distance` takes."""
        return {t: self.conv(k).weight.reshape(-1) for k, t in enumerate(self.taps)}

    @torch.no_grad()
    def clamp_(self) -> None:
        for k in range(len(self.taps)):
            self.conv(k).weight.clamp_(min=0)

    @torch.no_grad()
    def set_weights(self, weights: Mapping[str, torch.Tensor]) -> None:
        for k, t in enumerate(self.taps):
            self.conv(k).weight.copy_(weights[t].reshape(self.conv(k).weight.shape))


def lpips_weights_file(backbone: str, version: str = "0.1") -> str:
    """The path of the official linear weights the ``lpips`` package ships for ``backbone``."""
    if backbone not in LPIPS_NETS:
        raise ValueError(f"the lpips package ships linear weights for {sorted(LPIPS_NETS)} only, not {backbone!r}")
    try:
        import lpips
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("the official LPIPS weights come with the `lpips` package: pip install lpips") from exc
    path = os.path.join(os.path.dirname(inspect.getfile(lpips)), "weights", f"v{version}", f"{LPIPS_NETS[backbone]}.pth")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found in the installed lpips package")
    return path


def load_linear_state(linear: LinearWeights, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load a linear-weights state dict with a strict key and shape check (a silently random layer is a
    known trap of the reference's non-strict load) and refuse negative weights."""
    state = {k: v for k, v in state.items()}
    expected = set(linear.state_dict())
    if set(state) != expected:
        raise ValueError(f"{what}: keys {sorted(state)} do not match the expected {sorted(expected)} — refusing "
                         "to leave any linear layer randomly initialised")
    linear.load_state_dict(state, strict=True)
    if any((linear.conv(k).weight < 0).any() for k in range(len(linear.taps))):
        raise ValueError(f"{what}: holds negative weights; DPS weights must be non-negative")


# ------------------------------------------------------------------------------------------------ the metric

class DPS(nn.Module):
    """A deep perceptual similarity metric: ``DPS(...)(img0, img1)`` → distances ``(N,)``.

    Images are float ``(N, 3, H, W)`` in [0, 1]. Every knob is a constructor argument:

    - ``backbone``/``weights``/``seed``: a registry network (``imagenet`` or seeded ``random`` weights), or an
      already built ``model``;
    - ``taps``: ``lpips``, ``paper``, ``all`` or a list of module paths;
    - ``mode``/``normalize``/``norm_order``/``combine``: see :data:`MODES` and the module docstring;
    - ``linear``: ``None`` (uncalibrated channel sum), ``"lpips"`` (the official v0.1 weights of the lpips
      package, strict load), a path to a state dict, or a ``{tap: weights}`` dict;
    - ``scaling``: ``lpips`` (x in [0,1] → 2x-1 → (x - shift)/scale, LPIPS v0.1) or ``backbone`` (the registry's
      ImageNet normalisation); ``resize``: an optional side the images are resized to first;
    - ``channels_last``: run the trunk in NHWC memory format (faster; same distances to float precision).

    ``DPS.lpips("alexnet")`` is exactly LPIPS v0.1 (given the same trunk weights).
    """

    def __init__(self, backbone: str = "alexnet", *, weights: str = "imagenet", taps: str | Sequence[str] = "lpips",
                 mode: str = "spatial", normalize: bool = True, linear: str | Mapping[str, torch.Tensor] | None = None,
                 scaling: str = "backbone", resize: int | None = None, seed: int = 0, allow_download: bool = False,
                 model: nn.Module | None = None, dropout: float = 0.5, channels_last: bool = True,
                 norm_order: str = "after", combine: str = "concat"):
        super().__init__()
        check_options(norm_order, combine)
        self.norm_order, self.combine = norm_order, combine
        self.spec = backbones.get(backbone)
        self.taps = backbones.resolve_taps(self.spec, taps if isinstance(taps, str) else list(taps))
        self.mode = check_mode(mode)
        self.normalize = bool(normalize)
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}; got {scaling!r}")
        self.scaling = scaling
        self.resize = resize
        net = model if model is not None else self.spec.build(weights, seed=seed, allow_download=allow_download)
        for p in net.parameters():
            p.requires_grad_(False)
        # NHWC convolutions are faster on CPUs (oneDNN) and tensor cores; the distances agree to float precision.
        self.channels_last = channels_last
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.extractor = TapExtractor(net.eval(), self.taps)
        shift = torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1)
        scale = torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1)
        mean = torch.tensor(self.spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std).view(1, 3, 1, 1)
        # One affine map from [0, 1] to the network's input: x * a + b.
        if scaling == "lpips":
            a, b = 2.0 / scale, (-1.0 - shift) / scale
        else:
            a, b = 1.0 / std, -mean / std
        self.register_buffer("_a", a, persistent=False)
        self.register_buffer("_b", b, persistent=False)
        self.linear: LinearWeights | None = None
        if linear is not None:
            with torch.inference_mode():
                probe = self.extractor(torch.zeros(1, 3, 64, 64) * self._a + self._b)
            width = mode_width(self.mode, combine)
            if linear == "lpips" and width != 1:
                raise ValueError("the official LPIPS weights have one weight per channel; a combined mode with "
                                 "combine='concat' needs 2C (calibrate it, or use combine='sum')")
            self.linear = LinearWeights([width * probe[t].shape[1] for t in self.taps], self.taps, dropout=dropout)
            if isinstance(linear, str):
                path = lpips_weights_file(self.spec.name) if linear == "lpips" else linear
                load_linear_state(self.linear, load_torch(path), path)
            else:
                self.linear.set_weights(linear)
        self.eval()

    @classmethod
    def lpips(cls, backbone: str = "alexnet", **kwargs) -> DPS:
        """LPIPS v0.1: the LPIPS taps and scaling, normalised spatial mode, the official linear weights."""
        kwargs = {"taps": "lpips", "mode": "spatial", "normalize": True, "linear": "lpips", "scaling": "lpips",
                  **kwargs}
        return cls(backbone, **kwargs)

    def weights(self) -> dict[str, torch.Tensor] | None:
        return None if self.linear is None else self.linear.weights()

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{tap: Tensor[N, C, H, W]}`` of images in [0, 1]."""
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", antialias=True,
                              align_corners=False)
        x = x * self._a + self._b
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.extractor(x)

    def distance(self, feats0: Features, feats1: Features) -> torch.Tensor:
        return dps_distance(feats0, feats1, self.mode, self.normalize, self.weights(), norm_order=self.norm_order,
                            combine=self.combine)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, spatial_map: bool = False) -> torch.Tensor:
        """Distances ``(N,)`` between image pairs (one forward pass for both sides when their batch sizes
        match; a batch of 1 is a shared reference), or ``(N, 1, H, W)`` maps with ``spatial_map``."""
        if img0.shape[0] == img1.shape[0] and img0.shape[1:] == img1.shape[1:]:
            both = self.features(torch.cat([img0, img1]))
            f0 = {t: v[:img0.shape[0]] for t, v in both.items()}
            f1 = {t: v[img0.shape[0]:] for t, v in both.items()}
        else:
            f0, f1 = self.features(img0), self.features(img1)
        if spatial_map:
            if self.mode != "spatial":
                raise ValueError(f"a spatial distance map needs mode 'spatial', not {self.mode!r}")
            return distance_map(f0, f1, img0.shape[-2:], self.normalize, self.weights())
        return self.distance(f0, f1)

    def two_afc_distances(self, ref: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, p0), d(ref, p1))`` with the reference's features computed once (one forward pass)."""
        n = ref.shape[0]
        feats = self.features(torch.cat([ref, p0, p1]))
        fr = {t: v[:n] for t, v in feats.items()}
        d0 = self.distance(fr, {t: v[n:2 * n] for t, v in feats.items()})
        d1 = self.distance(fr, {t: v[2 * n:] for t, v in feats.items()})
        return d0, d1
