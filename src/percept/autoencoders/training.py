"""Training with checkpoints (atomic, ``weights_only`` loading, resumable) and the autoencoder stage:
train with one of the three losses, time every epoch, cache the frozen encoder's embeddings."""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from percept import backbones, seeds
from percept.backbones.spec import NetworkSpec
from percept.autoencoders import LOSSES, PROCEDURES, uses_loss_network
from percept.autoencoders.losses import (
    LossNetwork,
    PerceptualLoss,
    feature_prediction_loss,
    kl_divergence,
    pixel_loss,
)
from percept.autoencoders.models import Autoencoder
from percept.checkpoints import load_checkpoint, save_checkpoint
from percept.data.store import ImageDataset
from percept.features import FeatureCache, resolve_device
from percept.h5io import CacheError, atomic_h5

log = logging.getLogger(__name__)


def fit(model: torch.nn.Module, step: Callable[[torch.Tensor], torch.Tensor], n_items: int, *, epochs: int,
        batch_size: int, lr: float, seed: int, checkpoint: str | os.PathLike, meta: Mapping[str, Any],
        progress: bool = True, desc: str = "train") -> list[dict[str, float]]:
    """Adam on ``step(batch indices) -> loss`` for ``epochs``, checkpointing after every epoch.

    A checkpoint left by an interrupted run (same ``meta``) is resumed from its last finished epoch; the
    shuffling and sampling noise of epoch e are seeded by (seed, e), so a resumed run equals an
    uninterrupted one. Returns one record per epoch: epoch, loss (mean over batches), seconds (the
    training steps alone, without checkpointing).
    """
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    history: list[dict[str, float]] = []
    start = 0
    checkpoint = Path(checkpoint)
    meta = dict(meta)
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, meta, missing_ok=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, start = list(state["history"]), int(state["epoch"])
        log.info("resuming %s from epoch %d of %d (%s)", desc, start, epochs, checkpoint)
    for epoch in range(start, epochs):
        torch.manual_seed(seeds.torch_seed(seed, "autoencoders.epoch", epoch))
        order = torch.randperm(n_items)
        model.train()
        total, batches = 0.0, 0
        t0 = time.perf_counter()
        bar = tqdm(range(0, n_items, batch_size), desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=not progress)
        for start_i in bar:
            loss = step(order[start_i:start_i + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            batches += 1
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": total / max(batches, 1), "seconds": seconds})
        log.info("%s epoch %d: loss %.5f, %.2f s", desc, epoch + 1, history[-1]["loss"], seconds)
        save_checkpoint(checkpoint, meta, epoch=epoch + 1, model=model.state_dict(), optimizer=opt.state_dict(),
                        history=history)
    return history


# -- data ---------------------------------------------------------------------------------------------
def load_images(ds: ImageDataset, chunk: int = 512) -> torch.Tensor:
    """Every image of the split as uint8 (N, 3, H, W) (a quarter of the float32 memory)."""
    parts = [ds.batch(slice(i, min(i + chunk, len(ds)))).mul_(255).round_().to(torch.uint8)
             for i in range(0, len(ds), chunk)]
    return torch.cat(parts)


def as_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return images.to(device, non_blocking=True).float().div_(255.0)


def cached_targets(cache_path: str | os.PathLike, ds: ImageDataset, loss_network: Mapping[str, Any],
                   seed: int) -> torch.Tensor:
    """The loss network's features of every image of ``ds`` at the tap, read from the HDF5 feature cache.

    The cache must hold this dataset (fingerprint), backbone, weights, preprocessing and tap.
    """
    net = NetworkSpec.from_config(loss_network, "autoencoders.loss_network")
    spec = net.registry()
    weights = net.weights
    expect = {"backbone": spec.name, "dataset_fingerprint": ds.fingerprint,
              "weights": "random" if weights == "random" else spec.weights_name,
              "preprocessing": spec.preprocessing(net.resize)}
    if weights == "random":
        expect["weights_seed"] = seed
    cache = FeatureCache(cache_path, expect=expect)
    tap = loss_network["tap"]
    if tap not in cache.taps:
        raise CacheError(f"{cache_path}: tap {tap!r} is not cached (cached taps: {cache.taps}); add it to the "
                         "features entry's taps")
    where = np.searchsorted(cache.rows, ds.rows)
    if (where >= len(cache.rows)).any() or (cache.rows[np.minimum(where, len(cache.rows) - 1)] != ds.rows).any():
        raise CacheError(f"{cache_path}: does not hold every image of {ds.name} split {ds.split!r}")
    contiguous = len(where) and where[-1] - where[0] + 1 == len(where)
    return cache.load(tap, slice(int(where[0]), int(where[-1]) + 1) if contiguous else where)


# -- the autoencoder stage ----------------------------------------------------------------------------
UNLABELED_SPLITS = ("unlabeled", "extra")  # STL-10's 100k unlabelled images, SVHN's extra set


def autoencoder_split(ds_path: str | os.PathLike, train_split: str = "auto") -> str:
    """The split an autoencoder trains on: ``auto`` → the dataset's unlabelled split when it has one (STL-10
    ``unlabeled``, SVHN ``extra``: the papers' autoencoder data; predictors use ``train``), else ``train``."""
    if train_split != "auto":
        return train_split
    names = ImageDataset(ds_path).split_names
    return next((s for s in UNLABELED_SPLITS if s in names), "train")


def loss_network_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The loss network entry with the papers' defaults filled in (unnormalised input, sigmoid features)."""
    net = dict(options["loss_network"])
    net.setdefault("weights", "imagenet")
    net.setdefault("resize", None)
    net.setdefault("input", "unit")
    net.setdefault("sigmoid", True)
    return net


def autoencoder_meta(options: Mapping[str, Any], loss: str, embedding_size: int, dataset: ImageDataset,
                     seed: int) -> dict[str, Any]:
    """What a checkpoint is identified by (the loss network only for the losses that use it)."""
    net = loss_network_options(options) if uses_loss_network(loss) else None
    return {"dataset_fingerprint": dataset.fingerprint, "split": dataset.split, "loss": loss,
            "embedding_size": int(embedding_size), "width": int(options["width"]),
            "variational": bool(options["variational"]), "kl_weight": float(options["kl_weight"]),
            "kl_reduction": options.get("kl_reduction", "mean"),
            "feature_decoder": options.get("feature_decoder", "mlp"), "batch_size": int(options["batch_size"]),
            "lr": float(options["lr"]), "max_train": options.get("max_train"), "seed": int(seed),
            "loss_network": repr(sorted(net.items())) if net else "none"}


def compute_targets(network: LossNetwork, images: torch.Tensor, device: torch.device,
                    batch_size: int = 256) -> torch.Tensor:
    """The loss network's features of every (uint8) image, once, on the CPU (the ``precomputed`` targets)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            out.append(network(as_float(images[i:i + batch_size], device)).float().cpu())
    return torch.cat(out)


def train_autoencoder(dataset_path: str | os.PathLike, model_path: str | os.PathLike, *, loss: str,
                      embedding_size: int, options: Mapping[str, Any], feature_cache: str | None = None,
                      seed: int = 0, device: str = "auto", progress: bool = True,
                      allow_download: bool = False) -> tuple[Autoencoder, list[dict[str, float]], dict[str, Any]]:
    """Train one autoencoder with one of the ICPR paper's six procedures (:data:`PROCEDURES`); write the final
    checkpoint to ``model_path``.

    ``options``: width, variational, kl_weight, kl_reduction, feature_decoder, targets, train_split, epochs,
    batch_size, lr, max_train, time_precomputed and loss_network (backbone, weights, tap, resize, input,
    sigmoid). Feature-prediction targets (decoder output = features): ``online`` runs the loss network on
    every batch (the paper); ``precomputed`` computes them once before training; ``feature_cache`` reads
    the HDF5 cache (``feature_cache``). ``time_precomputed``: for an ``online`` feature-prediction run, also
    time one epoch with precomputed targets on a copy of the model (both speeds, one run).
    Returns the model, the per-epoch history and facts about the run (seconds spent on the targets, …).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    enc_in, dec_out, rec_loss, icpr = PROCEDURES[loss]
    dev = resolve_device(device)
    split = autoencoder_split(dataset_path, options.get("train_split", "auto"))
    ds = ImageDataset(dataset_path, split=split)
    if options.get("max_train"):
        ds.rows = ds.rows[: int(options["max_train"])]
    images = load_images(ds)
    side = images.shape[-1]
    mode = options.get("targets", "online")
    info: dict[str, Any] = {"device": str(dev), "train_images": len(ds), "train_split": split, "procedure": icpr,
                            "targets": mode if dec_out == "features" else None, "target_load_seconds": 0.0}
    torch.manual_seed(seed)
    net_opts = loss_network_options(options)
    network = None
    if uses_loss_network(loss):
        network = LossNetwork.from_options(net_opts, seed=seed, allow_download=allow_download).to(dev)
        with torch.inference_mode():
            feature_shape = tuple(network(as_float(images[:1], dev)).shape[1:])
    targets = None
    if dec_out == "features" and mode != "online":
        t0 = time.perf_counter()
        if mode == "feature_cache":
            if feature_cache is None:
                raise ValueError("targets: feature_cache reads the feature cache; none was given")
            if net_opts["input"] != "imagenet":  # caches hold features of normalised images (cache_features)
                raise ValueError(f"targets: feature_cache holds features of ImageNet-normalised images; the loss "
                                 f"network's input is {net_opts['input']!r} (use input: imagenet, or targets "
                                 "online or precomputed)")
            targets = cached_targets(feature_cache, ds, net_opts, seed)
            if net_opts["sigmoid"]:
                targets = torch.sigmoid(targets)
        else:
            targets = compute_targets(network, images, dev)
        info["target_load_seconds"] = time.perf_counter() - t0
    target_shape = feature_shape if dec_out == "features" else (3, side, side)
    if targets is not None:
        target_shape = tuple(targets.shape[1:])
    model = Autoencoder(side, embedding_size, target_shape, width=options["width"],
                        variational=options["variational"], decodes_image=dec_out == "image",
                        feature_decoder=options.get("feature_decoder", "mlp"),
                        feature_shape=feature_shape if enc_in == "features" else None).to(dev)
    perceptual = PerceptualLoss(network) if rec_loss == "perceptual" else None
    beta = float(options["kl_weight"])
    reduction = options.get("kl_reduction", "mean")

    def make_step(model, targets):
        def step(idx: torch.Tensor) -> torch.Tensor:
            x = as_float(images[idx], dev)
            f = None
            if enc_in == "features" or (dec_out == "features" and targets is None):
                with torch.no_grad():
                    f = network(x)
            out, mu, logvar = model(f if enc_in == "features" else x)
            if rec_loss == "pixel":
                rec = pixel_loss(out, x)
            elif rec_loss == "perceptual":
                rec = perceptual(out, x)
            else:
                want = f if targets is None else targets[idx].to(dev, non_blocking=True)
                rec = feature_prediction_loss(out, want)
            return rec + beta * kl_divergence(mu, logvar, reduction)
        return step

    meta = autoencoder_meta(options, loss, embedding_size, ds, seed)
    model_path = Path(model_path)
    partial = model_path.with_name(model_path.name + ".partial")
    history = fit(model, make_step(model, targets), len(ds), epochs=int(options["epochs"]),
                  batch_size=int(options["batch_size"]), lr=float(options["lr"]), seed=seed, checkpoint=partial,
                  meta=meta, progress=progress, desc=f"{ds.name}/{loss}/z{embedding_size}")
    if dec_out == "features" and mode == "online" and options.get("time_precomputed", False):
        info.update(time_precomputed_epoch(model, network, images, make_step, options, dev, seed))
    save_checkpoint(model_path, meta, model=model.state_dict(), history=history, target_shape=list(target_shape),
                    image_size=side, feature_shape=list(feature_shape) if enc_in == "features" else None)
    partial.unlink(missing_ok=True)
    return attach_loss_network(model.eval(), network), history, info


def time_precomputed_epoch(model, network, images, make_step, options, dev, seed) -> dict[str, float]:
    """This project's variant beside the paper's: compute the targets once, then time one epoch of steps
    that read them (the loss network never runs), on a copy of the trained model with a fresh optimiser."""
    t0 = time.perf_counter()
    targets = compute_targets(network, images, dev)
    precompute = time.perf_counter() - t0
    probe = copy.deepcopy(model).train()
    step = make_step(probe, targets)
    opt = torch.optim.Adam([p for p in probe.parameters() if p.requires_grad], lr=float(options["lr"]))
    torch.manual_seed(seed)
    order, batch = torch.randperm(len(images)), int(options["batch_size"])
    t0 = time.perf_counter()
    for i in range(0, len(order), batch):
        loss = step(order[i:i + batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {"precomputed_epoch_seconds": time.perf_counter() - t0, "precompute_seconds": precompute}


def load_autoencoder(model_path: str | os.PathLike, options: Mapping[str, Any],
                     meta: Mapping[str, Any] | None = None) -> Autoencoder:
    state = load_checkpoint(model_path, meta, missing_ok=False)
    m = state["meta"]
    model = Autoencoder(int(state["image_size"]), int(m["embedding_size"]), state["target_shape"],
                        width=int(m["width"]), variational=bool(m["variational"]),
                        decodes_image=PROCEDURES[m["loss"]][1] == "image",
                        feature_decoder=m.get("feature_decoder", "conv"),
                        feature_shape=state.get("feature_shape"))
    model.load_state_dict(state["model"])
    return model.eval()


def attach_loss_network(model: Autoencoder, network: LossNetwork | None) -> Autoencoder:
    """Give the model its frozen loss network without registering it as a submodule (never saved with the
    model): a feature-reading encoder needs it to embed images, and example feature maps come from it."""
    model.__dict__["feature_network"] = network
    return model


def _encoder_input(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    if not model.reads_features:
        return x
    network = model.__dict__.get("feature_network")
    if network is None:
        raise ValueError("this autoencoder encodes the loss network's features: attach_loss_network first")
    return network.to(x.device)(x)


def encode(model: Autoencoder, ds: ImageDataset, device: str = "auto", batch_size: int = 256) -> np.ndarray:
    """Embeddings (the mean of q(z|x)) of every image of ``ds``, in its row order, as float32 (N, z)."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(ds), batch_size):
            x = ds.batch(slice(i, min(i + batch_size, len(ds)))).to(dev)
            out.append(model.encoder(_encoder_input(model, x))[0].float().cpu())
    return torch.cat(out).numpy().astype(np.float32)


def embed_dataset(model: Autoencoder, dataset_path: str | os.PathLike, out_path: str | os.PathLike, *,
                  meta: Mapping[str, Any], device: str = "auto", batch_size: int = 256, n_examples: int = 6) -> None:
    """Cache the frozen encoder's embeddings (the mean of q(z|x)) of every image of the dataset, plus a
    few test images with the decoder's output (reconstructions, or predicted vs target feature maps)."""
    dev = resolve_device(device)
    ds = ImageDataset(dataset_path)
    emb = encode(model, ds, device=device, batch_size=batch_size)
    model = model.to(dev).eval()
    network = model.__dict__.get("feature_network")
    with torch.inference_mode():
        test = ImageDataset(dataset_path, split="test") if "test" in ds.split_names else ds
        test.rows = test.rows[:n_examples]
        x = test.batch(slice(0, len(test)))
        decoded = model(_encoder_input(model, x.to(dev)))[0].float().cpu()
        target = network.to(dev)(x.to(dev)).float().cpu() if network is not None else None
    meta = {**meta, "dataset": ds.name, "dataset_fingerprint": ds.fingerprint, "split_names": ds.split_names}
    with atomic_h5(out_path, kind="embeddings", meta=meta) as f:
        f.create_dataset("embeddings", data=emb.astype(np.float32))
        f.create_dataset("rows", data=ds.rows.astype(np.int64))
        f.create_dataset("examples/images", data=x.numpy())
        if decoded.shape[1:] == x.shape[1:] and PROCEDURES[meta.get("loss", "pixel")][1] == "image":
            f.create_dataset("examples/reconstructions", data=decoded.clamp(0, 1).numpy())
        else:  # feature prediction: the channel-mean of the predicted and of the target feature maps
            f.create_dataset("examples/predicted_features", data=decoded.mean(1).numpy())
            if target is not None:
                f.create_dataset("examples/target_features", data=target.mean(1).numpy())
