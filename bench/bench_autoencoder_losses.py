"""Time per epoch of the three autoencoder losses (pixel, perceptual, feature prediction) on generated
shapes, through the same code the workflow runs; prints seconds per epoch and the ratios. Feature prediction
is timed twice: with the loss network on every batch (the ICPR paper's setting, ``targets: online``) and with
the targets read from the HDF5 feature cache (this project's variant, ``targets: feature_cache``).

    python bench/bench_autoencoder_losses.py --images 800 --size 96 --epochs 3 --tap _blocks.7
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from percept.autoencoders.training import train_autoencoder
from percept.data.embedded import make_shapes
from percept.features import cache_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=800)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--tap", default="_blocks.7")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data, cache = Path(tmp) / "shapes.h5", Path(tmp) / "features.h5"
        make_shapes(str(data), n_train=args.images, n_test=8, image_size=args.size,
                    classes=["circle", "square", "triangle", "star"], objects_per_image=[1, 2],
                    object_size=[0.3, 0.55], backgrounds=["brick", "coffee", "astronaut"], seed=0, progress=False)
        t0 = time.perf_counter()
        cache_features(data, cache, args.backbone, [args.tap], batch_size=128, device=args.device, progress=False)
        cache_seconds = time.perf_counter() - t0
        # the cache holds ImageNet-normalised features: the bench feeds the loss network that way throughout
        net = {"backbone": args.backbone, "weights": "imagenet", "tap": args.tap, "resize": None,
               "input": "imagenet", "sigmoid": True}
        options = {"width": args.width, "variational": True, "kl_weight": 0.01, "epochs": args.epochs,
                   "batch_size": args.batch_size, "lr": 1e-3, "max_train": None, "loss_network": net,
                   "time_precomputed": False}
        per_epoch = {}
        runs = [("pixel", "online"), ("perceptual", "online"), ("feature_prediction", "online"),
                ("feature_prediction", "feature_cache")]
        for loss, targets in runs:
            name = loss if loss != "feature_prediction" else f"{loss} ({targets})"
            _, hist, info = train_autoencoder(data, Path(tmp) / f"{loss}-{targets}.pt", loss=loss,
                                              embedding_size=32, options={**options, "targets": targets},
                                              feature_cache=str(cache), device=args.device, progress=False)
            steady = [h["seconds"] for h in hist[1:]] or [hist[0]["seconds"]]
            per_epoch[name] = statistics.median(steady)
            print(f"{name:>32}: {per_epoch[name]:.2f} s/epoch ({args.images} images, {info['device']})")
    fp = per_epoch["feature_prediction (online)"]
    print(f"feature cache (one-off, {args.images + 8} images): {cache_seconds:.2f} s")
    print("ratio to feature prediction: " + ", ".join(f"{k} {v / fp:.2f}x" for k, v in per_epoch.items()))


if __name__ == "__main__":
    main()
