"""Label-efficient evaluation of an encoder (Chhipa et al. 2023, sec. 4): a linear probe on frozen features
and a full fine-tune, each on 20–100 % of the training labels, scored on patient-disjoint test images by
image-level accuracy (ILA) and patient-level accuracy (PLA)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from percept import seeds
from percept.checkpoints import CHECKPOINT_SECONDS, Every, load_checkpoint, save_checkpoint
from percept.data.store import ImageDataset, fingerprint
from percept.features import resolve_device
from percept.mpcs import PROTOCOLS
from percept.mpcs.augment import flip
from percept.mpcs.metrics import (
    image_level_accuracy,
    label_subsets,
    patient_level_accuracy,
    patient_subsets,
)
from percept.mpcs.model import Classifier, Encoder, recalibrate_batchnorm
from percept.mpcs.pretrain import load_uint8
from percept.mpcs.splits import fold_rows, strata_of

log = logging.getLogger(__name__)


def _seeded(module: nn.Module, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()


@torch.inference_mode()
def embed(encoder: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    encoder.eval()
    return torch.cat([encoder(images[i:i + batch_size].float() / 255) for i in range(0, len(images), batch_size)])


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> np.ndarray:
    model.eval()
    return torch.cat([model(images[i:i + batch_size].float() / 255).argmax(1)
                      for i in range(0, len(images), batch_size)]).cpu().numpy()


def train_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, *, epochs: int, lr: float,
                       weight_decay: float, batch_size: int, seed: int) -> nn.Module:
    """Logistic regression on standardised frozen features (mean/std of the labelled subset)."""
    mean, std = train_x.mean(0), train_x.std(0, unbiased=False).clamp_min(1e-6)
    probe = nn.Sequential(_Standardise(mean, std), nn.Linear(train_x.shape[1], num_classes)).to(train_x.device)
    _seeded(probe, seed)
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(train_x), generator=gen).to(train_x.device)
        for i in range(0, len(order), batch_size):
            b = order[i:i + batch_size]
            loss = F.cross_entropy(probe(train_x[b]), train_y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return probe.eval()


class _Standardise(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def finetune_meta(ds: ImageDataset, *, encoder: str, source: Mapping[str, Any], fold: int, folds: int, backbone: str,
                  seed: int, options: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "mpcs_finetune", "dataset": ds.name, "dataset_fingerprint": ds.fingerprint, "encoder": encoder,
            "source": dict(source), "fold": fold, "folds": folds, "backbone": backbone, "seed": seed,
            "options": dict(options), "options_fingerprint": fingerprint(dict(options))}


def evaluate_encoder(dataset_path: str | Path, *, encoder: str, pretrained: str | Path | None, fold: int, folds: int,
                     backbone: str, seed: int, options: Mapping[str, Any], checkpoint: str | Path,
                     device: str = "auto", allow_download: bool = False, progress: bool = True,
                     checkpoint_seconds: float = CHECKPOINT_SECONDS) -> pd.DataFrame:
    """Every (protocol, seed, magnification, label fraction) run for one encoder on one fold; one row per run.

    ``encoder``: ``mpcs_<strategy>`` (weights from ``pretrained``, an MPCS pretraining output) or
    ``baseline_imagenet`` / ``baseline_random`` (the registry's weights). ``options``: ``protocols``,
    ``fractions``, ``label_unit`` (patient: whole patients per subtype, the reference's portions; image:
    images per class), ``per_magnification`` (the reference fine-tunes and scores each magnification on its
    own, src/supervised/finetune_breakhis.py ``train_model(args, fold, magnification)``; false pools them,
    recorded as magnification 0), ``validation`` (share of training patients held out and scored as the
    column ``val_ila``, which is absent when nothing is held out),
    ``seeds``, ``batch_size``, ``weight_decay``, ``flip``, ``image_size``, ``recalibrate_batchnorm``, and per
    protocol ``linear``/``full`` ``{epochs, lr}``. Completed runs (after each) and the running full fine-tune (after
    an epoch, at most every ``checkpoint_seconds``; 0: every epoch) are checkpointed to ``checkpoint``; a rerun
    resumes there.
    """
    dev = resolve_device(device)
    ds = ImageDataset(dataset_path)
    train, val, test = fold_rows(ds, fold, folds, seed, validation=float(options["validation"]))
    labels = ds.labels().numpy()
    patients = ds.meta("patient")
    strata = strata_of(ds)
    mag = ds.meta("magnification")
    if set(patients[train].tolist()) & set(patients[test].tolist()):
        raise RuntimeError("patient-level split violated: a patient has images in both train and test")
    train_img, test_img = load_uint8(ds, train).to(dev), load_uint8(ds, test).to(dev)
    val_img = load_uint8(ds, val).to(dev) if len(val) else None
    train_y = torch.from_numpy(labels[train]).to(dev)
    num_classes = ds.num_classes
    if pretrained is not None:
        state = load_checkpoint(pretrained, {"kind": "mpcs_pretrain", "dataset_fingerprint": ds.fingerprint,
                                             "backbone": backbone, "fold": fold, "folds": folds}, missing_ok=False)
        net = Encoder(backbone, weights="random", seed=seed, resize=options["image_size"])
        net.load_state_dict(state["encoder"])
        source = {"pretrained": str(pretrained), "strategy": state["meta"]["strategy"],
                  "init": state["meta"]["init"], "options_fingerprint": state["meta"]["options_fingerprint"]}
    else:
        weights = encoder.removeprefix("baseline_")
        net = Encoder(backbone, weights=weights, seed=seed, resize=options["image_size"],
                      allow_download=allow_download)
        source = {"weights": weights}
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    model = Classifier(net, num_classes).to(dev)
    meta = finetune_meta(ds, encoder=encoder, source=source, fold=fold, folds=folds, backbone=backbone, seed=seed,
                         options=options)
    saved = load_checkpoint(checkpoint, meta, map_location=dev) or {}
    rows: list[dict[str, Any]] = list(saved.get("rows", []))
    running = saved.get("running")
    done = {(r["protocol"], r["seed"], r["magnification"], r["fraction"]) for r in rows}
    fractions = [float(f) for f in options["fractions"]]
    magnifications = sorted(set(mag[train].tolist())) if options["per_magnification"] else [0]
    bs = int(options["batch_size"])
    frozen: dict[str, torch.Tensor] = {}
    every = Every(checkpoint_seconds)
    for replicate in range(int(options["seeds"])):
        # The labelled subsets depend on (seed, fold, replicate) only: every encoder, protocol and magnification
        # sees the same patients (the reference's train_XX folder serves all four magnifications).
        rng = seeds.rng(seed, "mpcs.label_subsets", fold, replicate)
        if options["label_unit"] == "patient":
            subsets = patient_subsets(patients[train], strata[train], fractions, rng)
        else:
            subsets = label_subsets(labels[train], fractions, rng)
        for protocol in options["protocols"]:
            for m in magnifications:
                at_m = (mag[train] == m) if m else np.ones(len(train), bool)
                on_test = np.flatnonzero(mag[test] == m) if m else np.arange(len(test))
                on_val = np.flatnonzero(mag[val] == m) if m else np.arange(len(val))
                for f_i, fraction in enumerate(fractions):
                    if (protocol, replicate, m, fraction) in done:
                        continue
                    run_seed = seeds.torch_seed(seed, "mpcs.finetune_run", fold, replicate,
                                                PROTOCOLS.index(protocol), f_i, m)
                    chosen = subsets[fraction][at_m[subsets[fraction]]]
                    subset = torch.from_numpy(chosen).to(dev)
                    t0 = time.perf_counter()
                    cfg = options[protocol]
                    evals = [("test", on_test)] + ([("val", on_val)] if len(on_val) else [])
                    if protocol == "linear":
                        if not frozen:
                            net.load_state_dict(initial)
                            frozen = {"train": embed(net, train_img, bs), "test": embed(net, test_img, bs)}
                            if val_img is not None:
                                frozen["val"] = embed(net, val_img, bs)
                        probe = train_linear_probe(frozen["train"][subset], train_y[subset], num_classes,
                                                   epochs=cfg["epochs"], lr=cfg["lr"], batch_size=bs, seed=run_seed,
                                                   weight_decay=options["weight_decay"])
                        with torch.inference_mode():
                            preds = {k: probe(frozen[k][torch.from_numpy(pos).to(dev)]).argmax(1).cpu().numpy()
                                     for k, pos in evals}
                    else:
                        key = {"protocol": protocol, "seed": replicate, "magnification": m, "fraction": fraction}
                        resume = running if running is not None and running["key"] == key else None
                        images = {"test": test_img, "val": val_img}
                        preds = _full_finetune(model, initial, train_img, train_y, subset,
                                               {k: images[k][torch.from_numpy(pos).to(dev)] for k, pos in evals},
                                               cfg=cfg, bs=bs, weight_decay=options["weight_decay"],
                                               use_flip=options["flip"], recalibrate=options["recalibrate_batchnorm"],
                                               run_seed=run_seed, resume=resume, progress=progress,
                                               on_epoch=lambda state, k=key: every.due() and save_checkpoint(
                                                   checkpoint, meta, rows=rows, running={"key": k, **state}),
                                               desc=f"{encoder} {m or 'all'}x {fraction:.0%} seed {replicate}")
                    t_pos, v_pos = test[on_test], val[on_val]
                    row = {"backbone": backbone, "encoder": encoder, "protocol": protocol, "magnification": m,
                           "fraction": fraction, "seed": replicate, "fold": fold, "n_labels": int(len(subset)),
                           "n_label_patients": int(len(np.unique(patients[train][chosen]))),
                           "n_test": int(len(t_pos)), "n_test_patients": int(len(np.unique(patients[t_pos]))),
                           "ila": image_level_accuracy(preds["test"], labels[t_pos]),
                           "pla": patient_level_accuracy(preds["test"], labels[t_pos], patients[t_pos])}
                    if len(val):
                        # Only a run that holds patients out has the column (finetune.validation > 0); NaN in
                        # it then means no held-out image at this magnification.
                        row["val_ila"] = (image_level_accuracy(preds["val"], labels[v_pos]) if "val" in preds
                                          else float("nan"))
                    rows.append(row)
                    log.info("%s %s %sx %.0f%% labels seed %d: ILA %.4f PLA %.4f (%.1f s)", encoder, protocol,
                             m or "all", 100 * fraction, replicate, row["ila"], row["pla"], time.perf_counter() - t0)
                    save_checkpoint(checkpoint, meta, rows=rows, running=None)
    order = {p: i for i, p in enumerate(options["protocols"])}
    out = pd.DataFrame(rows)
    return out.sort_values(["protocol", "seed", "magnification", "fraction"],
                           key=lambda c: c.map(order) if c.name == "protocol" else c,
                           kind="stable").reset_index(drop=True)


def _full_finetune(model: Classifier, initial: Mapping[str, torch.Tensor], train_img: torch.Tensor,
                   train_y: torch.Tensor, subset: torch.Tensor, evaluate: Mapping[str, torch.Tensor], *,
                   cfg: Mapping[str, Any], bs: int, weight_decay: float, use_flip: bool, recalibrate: bool,
                   run_seed: int, resume: Mapping[str, Any] | None, on_epoch, progress: bool,
                   desc: str) -> dict[str, np.ndarray]:
    """Fine-tune encoder + linear head (Adam, cross-entropy) from the encoder's initial weights; predictions for
    each image set in ``evaluate`` after the last epoch."""
    model.encoder.load_state_dict(initial)
    _seeded(model.head, run_seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=weight_decay)
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        start = int(resume["epoch"])
    for epoch in range(start, int(cfg["epochs"])):
        gen = seeds.torch_generator(run_seed, "mpcs.finetune_epoch", epoch)
        order = subset[torch.randperm(len(subset), generator=gen).to(subset.device)]
        model.train()
        for i in tqdm(range(0, len(order), bs), desc=f"{desc} epoch {epoch + 1}", disable=not progress):
            b = order[i:i + bs]
            if len(b) < 2 and len(order) >= 2:  # a batch of one breaks BatchNorm's training statistics
                continue
            x = train_img[b].float() / 255
            if use_flip:
                x = flip(x, gen)
            loss = F.cross_entropy(model(x), train_y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        on_epoch({"epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict()})
    if recalibrate:  # a named addition, not the reference's
        recalibrate_batchnorm(model, train_img[subset], bs)
    return {k: predict(model, images, bs) for k, images in evaluate.items()}
