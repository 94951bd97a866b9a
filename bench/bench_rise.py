"""RISE throughput vs the bare forward pass of the same classifier and batch size.

RISE costs N forward passes per image; everything else it does (rendering a batch of masks, perturbing,
accumulating Σ f·M) must be cheap beside them. Prints images/s of both and their ratio (target ≥ 0.9).

    python bench/bench_rise.py --masks 512 --batch 64            # a randomly initialised head, no files
    python bench/bench_rise.py --classifier results/explain/shapes_lite0/classifier.pt
"""

from __future__ import annotations

import argparse
import time

import torch

from percept.explain.perturbation import (
    PerturbationExplainer,
    SampleBank,
    Setting,
    probabilities,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", help="a trained classifier.pt (default: the shapes classifier's architecture)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--masks", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--grid", type=int, default=6)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calculators", nargs="+", default=["rise"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.classifier:
        from percept.explain.classifier import load_classifier

        model = load_classifier(args.classifier)
    else:
        from percept.explain.classifier import ShapeClassifier

        model = ShapeClassifier("efficientnet_lite0", "_blocks.7", 4, 128, ["a", "b", "c", "d"]).eval()
    f = probabilities(model)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(args.images, 3, args.size, args.size, generator=gen)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=gen)
    explainer = PerturbationExplainer(f, Setting(n_masks=args.masks, grid=args.grid), SampleBank(0), args.batch)
    with torch.inference_mode():
        f(x)
        explainer.attribute(images[0], args.calculators)  # warm-up
    bare_t, rise_t = 0.0, 0.0
    n_bare = 0
    for img in images:  # interleave, so that load from other processes hits both alike
        t0 = time.perf_counter()
        with torch.inference_mode():
            for _ in range(0, args.masks, args.batch):
                f(x)
                n_bare += args.batch
        bare_t += time.perf_counter() - t0
        t0 = time.perf_counter()
        att = explainer.attribute(img, args.calculators)
        rise_t += time.perf_counter() - t0
    bare = n_bare / bare_t
    rise = att.model_calls * len(images) / rise_t
    print(f"bare forward: {bare:.1f} img/s   RISE ({args.masks} masks, batch {args.batch}, calculators "
          f"{' '.join(args.calculators)}): {rise:.1f} img/s")
    print(f"ratio RISE / bare = {rise / bare:.3f}")


if __name__ == "__main__":
    main()
