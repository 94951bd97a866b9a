"""Show that a backbone is ImageNet-pretrained: its top-5 labels on real photographs.

A pretrained network names the shipped cat photo a cat and the coffee photo an espresso with high
confidence; a randomly initialised one spreads its probability almost uniformly (top-1 near 1/1000).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from percept import backbones


def load_image(path_or_photo: str) -> torch.Tensor:
    """A file path or the name of a shipped photo → float ``(3, H, W)`` in [0, 1]."""
    from percept.data.embedded import PHOTO_SOURCES, load_photo

    if path_or_photo in PHOTO_SOURCES:
        arr = load_photo(path_or_photo)
    else:
        from PIL import Image

        try:
            with Image.open(path_or_photo) as im:
                arr = np.asarray(im.convert("RGB"))
        except (FileNotFoundError, OSError) as exc:
            raise ValueError(f"cannot read image {path_or_photo!r}: {exc}") from exc
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float() / 255.0


def center_crop_resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's evaluation transform: resize the shorter side to size/0.875, center-crop ``size``."""
    h, w = img.shape[-2:]
    short = round(size / 0.875)
    scale = short / min(h, w)
    img = F.interpolate(img[None], size=(max(size, round(h * scale)), max(size, round(w * scale))),
                        mode="bilinear", antialias=True, align_corners=False)[0]
    h, w = img.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return img[:, top:top + size, left:left + size]


@torch.inference_mode()
def classify(images: Sequence[torch.Tensor], backbone: str, weights: str = "imagenet", k: int = 5, seed: int = 0,
             allow_download: bool = False) -> list[list[tuple[str, float]]]:
    """Top-k ImageNet labels (torchvision's names) with probabilities for each image."""
    spec = backbones.get(backbone)
    model = spec.build(weights, seed=seed, allow_download=allow_download)
    x = torch.stack([center_crop_resize(im, spec.input_size) for im in images])
    probs = model(spec.normalize(x)).softmax(dim=1)
    top = probs.topk(k, dim=1)
    cats = spec.categories
    return [[(cats[i], float(p)) for p, i in zip(ps, idx)] for ps, idx in zip(top.values, top.indices)]


def imagenet_check(backbone_names: Sequence[str], photos: Sequence[str], random_baseline: bool = True,
                   seed: int = 0) -> pd.DataFrame:
    """One row per (backbone, weights, photo, rank): label and probability."""
    images = [load_image(p) for p in photos]
    rows = []
    for name in backbone_names:
        for weights in ("imagenet", "random") if random_baseline else ("imagenet",):
            for photo, top in zip(photos, classify(images, name, weights, seed=seed)):
                for rank, (label, prob) in enumerate(top, start=1):
                    rows.append({"backbone": name, "weights": weights, "photo": photo, "rank": rank,
                                 "label": label, "probability": prob})
    return pd.DataFrame(rows)
