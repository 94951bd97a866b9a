"""Training of the shape-translation system: alternate translator and discriminator steps on unpaired batches
of the two domains; one checkpoint per epoch (atomic, ``weights_only`` load, refused when written by another
configuration), so a killed job resumes where it stopped; the loss curves as a tidy table."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from percept import seeds
from percept.checkpoints import load_checkpoint, save_checkpoint
from percept.data.store import ImageDataset
from percept.features import resolve_device
from percept.translation.losses import (
    TERMS,
    gan_discriminator_loss,
    kl_divergence,
    make_similarity,
    reconstruction_loss,
    translator_terms,
    weighted_sum,
)
from percept.translation.models import (
    SharedVAEs,
    make_discriminator,
    make_translator,
)

log = logging.getLogger(__name__)


def variant_settings(options: Mapping[str, Any], variant: str) -> dict[str, Any]:
    """The settings of one ablation variant: the base loss weights with the variant's overrides applied
    (``{term: weight}``, and optionally ``gan_kind`` / ``similarity_kind`` / ``discriminator``)."""
    variants = options["variants"]
    if variant not in variants:
        raise KeyError(f"unknown translation variant {variant!r}; configured: {sorted(variants)}")
    over = dict(variants[variant] or {})
    weights = {t: float(options["losses"][t]) for t in TERMS}
    weights.update({t: float(over[t]) for t in TERMS if t in over})
    return {"weights": weights, "gan_kind": over.get("gan_kind", options["gan_kind"]),
            "similarity_kind": over.get("similarity_kind", options["similarity_kind"]),
            "discriminator": over.get("discriminator", options["discriminator"])}


SCHEDULES = ("joint", "staged")
# The staged protocol of the slides (Bollens et al., ICIP 2019 talk): a VAE for domain A, then a VAE for
# domain B into the latent space A's VAE made (the shared innermost layers frozen), then every loss on top.
STAGES = ("vae_A", "vae_B", "translate")


def epoch_stages(train: Mapping[str, Any]) -> list[str]:
    """The stage of each epoch: ``joint`` trains everything at once for ``epochs`` epochs; ``staged`` runs
    ``stage_epochs`` = [vae_A, vae_B, translate] epochs one stage after the other (their sum replaces
    ``epochs``)."""
    kind = train.get("schedule", "joint")
    if kind == "joint":
        return ["joint"] * int(train["epochs"])
    if kind != "staged":
        raise ValueError(f"translation.train.schedule: {kind!r} is not one of {list(SCHEDULES)}")
    counts = list(train.get("stage_epochs") or [])
    if len(counts) != 3 or min(counts) < 0 or counts[2] < 1:
        raise ValueError("translation.train.stage_epochs: three epoch counts [vae_A, vae_B, translate], "
                         f"the last at least 1; got {counts}")
    return [stage for stage, n in zip(STAGES, counts) for _ in range(int(n))]


def shared_parameter_ids(model: SharedVAEs) -> set[int]:
    """ids of the parameters both domains' encoders or decoders use (the shared innermost layers)."""
    shared = set()
    for part in (model.encoders, model.decoders):
        a = {id(p) for p in part["A"].parameters()}
        shared |= {id(p) for p in part["B"].parameters() if id(p) in a}
    return shared


def stage_trainable(model: SharedVAEs, stage: str) -> set[int]:
    """ids of the translator's parameters a stage trains: vae_A domain A's encoder and decoder (the shared
    layers with them), vae_B domain B's own layers only (so B is encoded into A's latent space), the rest all."""
    if stage == "vae_A":
        return {id(p) for m in (model.encoders["A"], model.decoders["A"]) for p in m.parameters()}
    if stage == "vae_B":
        shared = shared_parameter_ids(model)
        return {id(p) for m in (model.encoders["B"], model.decoders["B"]) for p in m.parameters()} - shared
    return {id(p) for p in model.parameters()}


def vae_terms(model: SharedVAEs, x: torch.Tensor, domain: str, weights: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """One domain's VAE loss (a VAE stage of the staged schedule): reconstruction and KL, as weighted."""
    mu, logvar = model.encode(x, domain)
    terms = {}
    if weights["reconstruction"] > 0:
        terms["reconstruction"] = reconstruction_loss(x, model.decode(model.sample(mu, logvar), domain))
    if weights["kl"] > 0:
        terms["kl"] = kl_divergence(mu, logvar)
    if not terms:
        raise ValueError("a VAE stage needs a positive reconstruction or kl weight")
    return terms


def domain_rows(ds: ImageDataset) -> dict[str, np.ndarray]:
    """Positions (within the split) of the images of domain A (label 0) and B (label 1)."""
    labels = ds.labels().numpy()
    return {"A": np.flatnonzero(labels == 0), "B": np.flatnonzero(labels == 1)}


def build(options: Mapping[str, Any], image_size: int, settings: Mapping[str, Any], *, seed: int,
          device: torch.device, allow_download: bool = False):
    """(model, discriminators or None, similarity or None): only what the positive weights need."""
    torch.manual_seed(seed)
    m = options["model"]
    model = make_translator(image_size, **m).to(device)
    discs = None
    if settings["weights"]["gan"] > 0:
        discs = torch.nn.ModuleDict({d: make_discriminator(image_size, m["width"], settings["discriminator"])
                                     for d in ("A", "B")}).to(device)
    similarity = None
    if settings["weights"]["similarity"] > 0:
        similarity = make_similarity(settings["similarity_kind"], options["metric"], seed=seed,
                                     allow_download=allow_download, device=device)
    return model, discs, similarity


def checkpoint_meta(options: Mapping[str, Any], variant: str, settings: Mapping[str, Any], fingerprint: str,
                    seed: int) -> dict[str, Any]:
    keep = {k: options[k] for k in ("model", "train", "metric")}
    return {"stage": "translation", "variant": variant, "settings": dict(settings), "options": keep,
            "dataset": fingerprint, "seed": seed}


def train_translation(dataset: str | Path, out_model: str | Path, out_history: str | Path, *,
                      options: Mapping[str, Any], variant: str, seed: int = 0, device: str = "auto",
                      progress: bool = True, allow_download: bool = False,
                      checkpoint: str | Path | None = None) -> tuple[SharedVAEs, dict[str, Any]]:
    """Train one variant; write the model (a checkpoint with the final weights) and the loss curves
    (tidy CSV: variant, epoch, step, term, value); return the model (eval mode) and
    ``{"seconds_per_epoch": [...], ...}``."""
    from percept.tables import write_csv

    dev = resolve_device(device)
    settings = variant_settings(options, variant)
    ds = ImageDataset(dataset, split="train")
    rows = domain_rows(ds)
    tr = options["train"]
    if tr.get("max_train"):
        rows = {d: r[: int(tr["max_train"])] for d, r in rows.items()}
    if min(len(r) for r in rows.values()) == 0:
        raise ValueError(f"{dataset}: the train split needs images of both domains (labels 0 and 1)")
    image_size = int(ds.batch([0]).shape[-1])
    model, discs, similarity = build(options, image_size, settings, seed=seed, device=dev,
                                     allow_download=allow_download)
    opt_g = torch.optim.Adam(model.parameters(), lr=tr["lr"], betas=(tr["beta1"], 0.999))
    opt_d = (torch.optim.Adam(discs.parameters(), lr=tr["lr"], betas=(tr["beta1"], 0.999))
             if discs is not None else None)
    meta = checkpoint_meta(options, variant, settings, ds.fingerprint, seed)
    ckpt_path = Path(checkpoint) if checkpoint else Path(out_model).with_name("checkpoint.pt")
    history: list[dict[str, Any]] = []
    seconds: list[float] = []
    start = 0
    state = load_checkpoint(ckpt_path, meta, map_location=dev)
    if state is not None:
        model.load_state_dict(state["model"])
        opt_g.load_state_dict(state["opt_g"])
        if discs is not None:
            discs.load_state_dict(state["discriminators"])
            opt_d.load_state_dict(state["opt_d"])
        start = int(state["epoch"])
        history = pd.DataFrame({k: v.tolist() if torch.is_tensor(v) else v
                                for k, v in state["history"].items()}).to_dict("records")
        seconds = [float(s) for s in state["seconds"]]
        log.info("resumed %s from %s after epoch %d", variant, ckpt_path, start)
    bs = int(tr["batch_size"])
    steps = max(1, min(len(r) for r in rows.values()) // bs)
    stages = epoch_stages(tr)
    for epoch in range(start, len(stages)):
        stage = stages[epoch]
        trainable = stage_trainable(model, stage)
        for p in model.parameters():  # frozen ones get no gradient, so Adam leaves them (and their state) alone
            p.requires_grad_(id(p) in trainable)
        t0 = time.perf_counter()
        # an epoch's noise and order do not depend on where a run resumed
        torch.manual_seed(seeds.torch_seed(seed, "translation.epoch_noise", epoch))
        rng = seeds.rng(seed, "translation.epoch_order", epoch)
        perm = {d: rng.permutation(r) for d, r in rows.items()}
        model.train()
        if discs is not None:
            discs.train()
        for step in tqdm(range(steps), desc=f"{variant} epoch {epoch + 1}", disable=not progress, leave=False):
            xa = ds.batch(np.sort(perm["A"][step * bs:(step + 1) * bs])).to(dev)
            xb = ds.batch(np.sort(perm["B"][step * bs:(step + 1) * bs])).to(dev)
            if stage in ("vae_A", "vae_B"):
                terms = vae_terms(model, xa if stage == "vae_A" else xb, stage[-1], settings["weights"])
                total = weighted_sum(terms, settings["weights"])
                opt_g.zero_grad(set_to_none=True)
                total.backward()
                opt_g.step()
                record = {**{k: float(v.detach()) for k, v in terms.items()}, "total": float(total.detach())}
                history += [{"variant": variant, "epoch": epoch + 1, "step": epoch * steps + step + 1, "term": k,
                             "value": v} for k, v in record.items()]
                continue
            terms, fake = translator_terms(model, xa, xb, settings["weights"], discs, similarity,
                                           settings["gan_kind"])
            if discs is not None:
                discs.requires_grad_(False)
            total = weighted_sum(terms, settings["weights"])
            opt_g.zero_grad(set_to_none=True)
            total.backward()
            opt_g.step()
            record = {**{k: float(v.detach()) for k, v in terms.items()}, "total": float(total.detach())}
            if discs is not None:
                discs.requires_grad_(True)
                d_loss = (gan_discriminator_loss(discs["B"](xb), discs["B"](fake["AB"].detach()), settings["gan_kind"])
                          + gan_discriminator_loss(discs["A"](xa), discs["A"](fake["BA"].detach()),
                                                   settings["gan_kind"]))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                record["discriminator"] = float(d_loss.detach())
            history += [{"variant": variant, "epoch": epoch + 1, "step": epoch * steps + step + 1, "term": k,
                         "value": v} for k, v in record.items()]
        seconds.append(time.perf_counter() - t0)
        log.info("%s epoch %d/%d (%s): %.1f s, %s", variant, epoch + 1, len(stages), stage, seconds[-1],
                 {k: round(v, 4) for k, v in record.items()})
        hist_cols = pd.DataFrame(history).to_dict("list")
        save_checkpoint(ckpt_path, meta, model=model.state_dict(), opt_g=opt_g.state_dict(),
                        discriminators=discs.state_dict() if discs is not None else {},
                        opt_d=opt_d.state_dict() if opt_d is not None else {}, epoch=epoch + 1, history=hist_cols,
                        seconds=seconds)
    save_checkpoint(out_model, meta, model=model.state_dict(), seconds=seconds, image_size=image_size)
    table = pd.DataFrame(history, columns=["variant", "epoch", "step", "term", "value"])
    write_csv(table, out_history)
    ckpt_path.unlink(missing_ok=True)  # the final model is written; a rerun starts over
    model.requires_grad_(True)
    info = {"seconds_per_epoch": seconds, "steps_per_epoch": steps, "settings": settings, "device": str(dev),
            "stages": stages}
    return model.eval(), info


def load_translator(path: str | Path, options: Mapping[str, Any], variant: str, fingerprint: str, seed: int,
                    device: torch.device | str = "cpu") -> SharedVAEs:
    """The trained translator of ``variant``; refused when written with other settings or data."""
    settings = variant_settings(options, variant)
    state = load_checkpoint(path, checkpoint_meta(options, variant, settings, fingerprint, seed),
                            map_location=device, missing_ok=False)
    model = make_translator(int(state["image_size"]), **options["model"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()
