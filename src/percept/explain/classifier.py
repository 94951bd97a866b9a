"""The classifier to be explained: a head on a registry backbone's tap, trained from the HDF5 feature cache.

``ShapeClassifier`` (any dataset, despite the name of its first use) maps images in [0, 1] ``(B, 3, H, W)``
to multi-label logits ``(B, K)``: the backbone up to the tap (through :class:`percept.features.TapExtractor`,
so layers past it never run) → the head (1×1 conv + ReLU, global average pooling, linear). The head's
1×1 convolution is the classifier's *last convolutional layer* (Grad-CAM's layer, ``gradcam_layer``).

Training reads the cached tap features (the forward pass through the frozen backbone was done once by
``cache_features``), so fitting the head takes seconds; ``finetune_epochs > 0`` then fine-tunes the whole
network on images (the explainer paper fine-tunes VGG16 / ResNet-50 on VOC 2007).

The trained classifier is a shared artifact: other stages load it with :func:`load_classifier`::

    from percept.explain.classifier import load_classifier
    model = load_classifier("results/explain/shapes_lite0/classifier.pt")   # nn.Module, eval mode
    logits = model(images)                                                  # images in [0, 1]
    model.class_names                                                       # ["circle", "square", …]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from percept import backbones, seeds
from percept.checkpoints import load_checkpoint, save_checkpoint
from percept.data.store import ImageDataset
from percept.features import FeatureCache, TapExtractor, prepare_input, resolve_device
from percept.ranking import average_precision
from percept.tables import write_json

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "percept-classifier-1"


class ClassifierHead(nn.Module):
    """1×1 conv + ReLU (the last conv layer), global average pooling, linear."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, hidden, 1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(feats)).mean(dim=(2, 3)))


class ShapeClassifier(nn.Module):
    """Images in [0, 1] → logits; ``class_names``, ``backbone``, ``tap`` and ``gradcam_layer`` describe it."""

    gradcam_layer = "head.act"

    def __init__(self, backbone: str, tap: str, num_classes: int, hidden: int, class_names: list[str],
                 weights: str = "imagenet", seed: int = 0, resize: int | None = None, build_weights: bool = True):
        super().__init__()
        self.spec = backbones.get(backbone)
        trunk = self.spec.build(weights if build_weights else "random", seed=seed)
        self.trunk = TapExtractor(trunk, [tap])
        self.tap = tap
        self.resize = resize
        self.class_names = list(class_names)
        in_ch = _tap_channels(self.trunk, tap, self.spec, resize)
        self.head = ClassifierHead(in_ch, num_classes, hidden)

    @property
    def backbone(self) -> str:
        return self.spec.name

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(prepare_input(images, self.spec, self.resize))[self.tap]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def _tap_channels(trunk: TapExtractor, tap: str, spec: backbones.Backbone, resize: int | None) -> int:
    side = max(resize or 0, spec.min_input_size, 64)
    with torch.inference_mode():
        return int(trunk(torch.zeros(1, 3, side, side))[tap].shape[1])


def train_split(dataset_path: str | Path) -> str:
    """The training split's name: ``train`` (embedded data) or ``trainval`` (VOC 2007)."""
    names = ImageDataset(dataset_path).split_names
    return "train" if "train" in names else "trainval"


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """mAP over classes, per-class AP, exact-match and per-label accuracy at logit 0."""
    s, y = logits.detach().cpu().numpy(), labels.cpu().numpy()
    ap = {c: average_precision(s[:, k], y[:, k]) for k, c in enumerate(class_names)}
    pred = s > 0
    return {"mAP": float(np.nanmean(list(ap.values()))), "AP": ap,
            "label_accuracy": float((pred == (y > 0.5)).mean()),
            "exact_match_accuracy": float((pred == (y > 0.5)).all(1).mean()), "n": len(y)}


def classifier_identity(entry: Mapping[str, Any], dataset: ImageDataset, seed: int) -> dict[str, Any]:
    """What a classifier checkpoint is identified by; a checkpoint with another identity is refused."""
    return {"format": CHECKPOINT_FORMAT, "name": entry["name"], "backbone": entry["backbone"], "tap": entry["tap"],
            "hidden": entry["hidden"], "resize": entry.get("resize"), "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint, "class_names": dataset.class_names, "seed": seed,
            "epochs": entry["epochs"], "finetune_epochs": entry["finetune_epochs"], "lr": entry["lr"]}


def train_classifier(dataset_path: str | Path, cache_path: str | Path, out_path: str | Path,
                     metrics_path: str | Path, entry: Mapping[str, Any], *, seed: int = 0, device: str = "auto",
                     progress: bool = True) -> dict[str, Any]:
    """Fit the head on cached features of the train split, optionally fine-tune, score on the test split."""
    dev = resolve_device(device)
    full = ImageDataset(dataset_path)
    if full.label_kind != "multi":
        raise ValueError(f"{dataset_path}: the explained classifier is multi-label; {full.name} is {full.label_kind}")
    train = ImageDataset(dataset_path, split=train_split(dataset_path))
    test = ImageDataset(dataset_path, split="test")
    spec = backbones.get(entry["backbone"])
    cache = FeatureCache(cache_path, expect={"backbone": spec.name, "dataset_fingerprint": full.fingerprint})
    if entry["tap"] not in cache.taps:
        raise ValueError(f"{cache_path}: tap {entry['tap']!r} is not cached (taps: {cache.taps}); add it to the "
                         "features entry of this dataset and backbone")
    if cache.meta["preprocessing"]["resize"] != entry.get("resize"):
        raise ValueError(f"{cache_path}: cached with resize={cache.meta['preprocessing']['resize']}, the classifier "
                         f"entry has resize={entry.get('resize')}")
    pos = {int(r): i for i, r in enumerate(cache.rows)}
    feats = cache.load(entry["tap"])
    x_tr, x_te = feats[[pos[int(r)] for r in train.rows]], feats[[pos[int(r)] for r in test.rows]]
    y_tr, y_te = train.labels().float(), test.labels().float()
    ident = classifier_identity(entry, full, seed)

    torch.manual_seed(seed)
    model = ShapeClassifier(spec.name, entry["tap"], full.num_classes, entry["hidden"], full.class_names,
                            resize=entry.get("resize"))
    head = model.head
    opt = torch.optim.AdamW(head.parameters(), lr=entry["lr"], weight_decay=entry["weight_decay"])
    gen = torch.Generator().manual_seed(seed)
    bs = entry["batch_size"]
    history = []
    for epoch in tqdm(range(entry["epochs"]), desc="classifier head", disable=not progress):
        head.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), bs):
            idx = perm[i:i + bs]
            loss = F.binary_cross_entropy_with_logits(head(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append({"stage": "head", "epoch": epoch, "train_loss": total / len(perm)})
    head.eval()
    with torch.inference_mode():
        head_metrics = classification_metrics(head(x_te), y_te, full.class_names)
    log.info("head on cached %s: test mAP %.3f, label accuracy %.3f", entry["tap"], head_metrics["mAP"],
             head_metrics["label_accuracy"])

    if entry["finetune_epochs"] > 0:
        model = model.to(dev)
        finetune(model, train, y_tr, entry, seed, dev, progress, history)
    model = model.to("cpu").eval()
    with torch.inference_mode():
        logits = torch.cat([model(test.batch(slice(i, i + 128))) for i in range(0, len(test), 128)])
    metrics = {**classification_metrics(logits, y_te, full.class_names), "head_only": head_metrics,
               "classifier": entry["name"], "backbone": spec.name, "tap": entry["tap"], "history": history,
               "train_images": len(train), "test_images": len(test)}
    state = model.head.state_dict() if entry["finetune_epochs"] == 0 else model.state_dict()
    save_checkpoint(out_path, ident, state=state, full=entry["finetune_epochs"] > 0, metrics=json.dumps(metrics))
    write_json(metrics, metrics_path, sort_keys=True)
    return metrics


def finetune(model: ShapeClassifier, train: ImageDataset, y_tr: torch.Tensor, entry: Mapping[str, Any], seed: int,
             dev: torch.device, progress: bool, history: list) -> None:
    """Fine-tune the whole network on images (BatchNorm statistics stay frozen, as for small batches)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=entry["finetune_lr"], weight_decay=entry["weight_decay"])
    gen = seeds.torch_generator(seed, "explain.classifier_finetune")
    bs = entry["batch_size"]
    for epoch in tqdm(range(entry["finetune_epochs"]), desc="classifier fine-tune", disable=not progress):
        model.train()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        perm = torch.randperm(len(train), generator=gen)
        total = 0.0
        for i in range(0, len(perm), bs):
            idx = perm[i:i + bs].sort().values
            x = train.batch(idx.numpy()).to(dev)
            loss = F.binary_cross_entropy_with_logits(model(x), y_tr[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append({"stage": "finetune", "epoch": epoch, "train_loss": total / len(perm)})


def load_classifier(path: str | Path, device: str | torch.device = "cpu",
                    expect: Mapping[str, Any] | None = None) -> ShapeClassifier:
    """The trained classifier as an ``nn.Module`` in eval mode (images in [0, 1] → logits), parameters frozen."""
    payload = load_checkpoint(path, expect, missing_ok=False)
    ident = payload["meta"]
    model = ShapeClassifier(ident["backbone"], ident["tap"], len(ident["class_names"]), ident["hidden"],
                            ident["class_names"], resize=ident["resize"], build_weights=not payload["full"])
    if payload["full"]:
        model.load_state_dict(payload["state"])
    else:
        model.head.load_state_dict(payload["state"])
    model.identity = ident
    model.metrics = json.loads(payload["metrics"])
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()

