"""The loss terms of the shape-translation system, each a plain function of tensors, and their weighted sum.

- ``reconstruction``: L1 between x and decode_d(encode_d(x)) (each VAE on its own domain);
- ``kl``: KL(q(z|x) ‖ N(0, I)), summed over latent dimensions, averaged over the batch;
- ``gan``: least-squares (LSGAN, Mao et al. 2017; the default) or binary cross-entropy, one discriminator per
  domain on the translations into it;
- ``cycle``: L1 between x and its round trip A→B→A (and B→A→B);
- ``similarity``: the appearance of a translation kept close to its input's, with the project's deep perceptual
  metric (``perceptual``: :class:`percept.similarity.DPS`, unit-normalised tap features, spatial mean of the
  squared differences) or with colour statistics (``colour``: per-channel mean and standard deviation).

A weight of 0 removes its term: it is neither computed nor reported (and its networks are never built).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from percept.autoencoders.losses import (
    kl_divergence,  # the one KL of the project (vector or map latents)
)

GAN_KINDS = ("lsgan", "bce")
SIMILARITY_KINDS = ("perceptual", "colour")
TERMS = ("reconstruction", "kl", "gan", "cycle", "similarity")


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    return (x - x_hat).abs().mean()


def cycle_loss(x: torch.Tensor, x_cycled: torch.Tensor) -> torch.Tensor:
    """‖x − G_BA(G_AB(x))‖₁ (CycleGAN's cycle consistency), mean over pixels."""
    return (x - x_cycled).abs().mean()


def gan_generator_loss(fake_logits: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """The translator's loss: its translations should be judged real (target 1)."""
    if kind == "lsgan":
        return (fake_logits - 1).pow(2).mean()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    raise ValueError(f"gan kind must be one of {GAN_KINDS}; got {kind!r}")


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """A discriminator's loss: real images → 1, translations → 0 (halved, as in LSGAN/CycleGAN)."""
    if kind == "lsgan":
        return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())
    if kind == "bce":
        return 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    raise ValueError(f"gan kind must be one of {GAN_KINDS}; got {kind!r}")


def colour_statistics_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared differences of the per-channel means and standard deviations over the image, summed over
    channels, mean over the batch: appearance as colour statistics, blind to where the colours are."""
    dm = (x.mean((2, 3)) - y.mean((2, 3))).pow(2).sum(1)
    ds = (x.std((2, 3)) - y.std((2, 3))).pow(2).sum(1)
    return (dm + ds).mean()


def weighted_sum(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """Σ weight · term over the terms present (a term of weight 0 is never computed, so never present)."""
    total = 0.0
    for name, value in terms.items():
        total = total + float(weights[name]) * value
    return total


def translator_terms(model, xa: torch.Tensor, xb: torch.Tensor, weights: Mapping[str, float],
                     discriminators=None, similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                     gan_kind: str = "lsgan") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The translator's loss terms (only those of positive weight) and the translations ``{"AB", "BA"}``.

    ``discriminators`` (``{"A": D_A, "B": D_B}``) is needed when ``gan`` > 0, ``similarity`` (a distance
    ``(x, y) → scalar``) when ``similarity`` > 0.
    """
    on = {k: float(weights.get(k, 0.0)) > 0 for k in TERMS}
    x = {"A": xa, "B": xb}
    enc = {d: model.encode(x[d], d) for d in ("A", "B")}
    z = {d: model.sample(*enc[d]) for d in ("A", "B")}
    fake = {"AB": model.decode(z["A"], "B"), "BA": model.decode(z["B"], "A")}
    terms: dict[str, torch.Tensor] = {}
    if on["reconstruction"]:
        terms["reconstruction"] = sum(reconstruction_loss(x[d], model.decode(z[d], d)) for d in ("A", "B"))
    if on["kl"]:
        terms["kl"] = sum(kl_divergence(*enc[d]) for d in ("A", "B"))
    if on["gan"]:
        if discriminators is None:
            raise ValueError("the gan term needs the discriminators")
        terms["gan"] = (gan_generator_loss(discriminators["B"](fake["AB"]), gan_kind)
                        + gan_generator_loss(discriminators["A"](fake["BA"]), gan_kind))
    if on["cycle"]:
        cyc_a = model.decode(model.sample(*model.encode(fake["AB"], "B")), "A")
        cyc_b = model.decode(model.sample(*model.encode(fake["BA"], "A")), "B")
        terms["cycle"] = cycle_loss(xa, cyc_a) + cycle_loss(xb, cyc_b)
    if on["similarity"]:
        if similarity is None:
            raise ValueError("the similarity term needs a similarity distance")
        terms["similarity"] = similarity(xa, fake["AB"]) + similarity(xb, fake["BA"])
    return terms, fake


def make_similarity(kind: str, metric: Mapping | None = None, seed: int = 0, allow_download: bool = False,
                    device: torch.device | str = "cpu") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The appearance distance ``(x, y) → scalar`` (batch mean): ``perceptual`` = the project's DPS metric
    (``metric``: backbone, weights, taps; spatial mode on unit-normalised features), ``colour`` = colour stats."""
    if kind == "colour":
        return colour_statistics_distance
    if kind != "perceptual":
        raise ValueError(f"similarity kind must be one of {SIMILARITY_KINDS}; got {kind!r}")
    from percept.similarity import DPS

    from percept.backbones.spec import NetworkSpec

    net = NetworkSpec.from_config(metric or {}, "translation.metric")
    if net.taps is None:
        raise ValueError("translation.metric.taps: missing; paper, lpips, all or a list of module paths")
    dps = DPS(net.backbone, weights=net.weights, taps=net.taps_arg, mode="spatial", normalize=True, seed=seed,
              allow_download=allow_download, channels_last=False).to(device)

    def perceptual(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return dps(x, y).mean()

    perceptual.dps = dps  # type: ignore[attr-defined]
    return perceptual
