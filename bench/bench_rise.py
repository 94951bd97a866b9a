"""Perturbation-explanation throughput vs the bare forward pass of the same classifier and batch size.

Each setting costs N forward passes per image; everything else it does (segmenting, rendering a batch of
masks, perturbing, accumulating Σ f·M, the calculators) must be cheap beside them. Prints images/s of the bare
forward pass and of every setting, and their ratio (target ≥ 0.9).

    python bench/bench_rise.py --masks 512 --batch 64            # a randomly initialised head, no files
    python bench/bench_rise.py --settings bernoulli/grid/norm_zero/rise bernoulli/slic/grey/gaussian
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


DEFAULT_SETTINGS = ["bernoulli/grid/norm_zero/rise", "bernoulli/grid/norm_zero/rise/segments",
                    "bernoulli/grid/norm_zero/hard", "bernoulli/grid/norm_zero/gaussian",
                    *[f"bernoulli/grid/{p}/rise" for p in ("grey", "mean", "black", "blur", "noise")],
                    "bernoulli/slic/norm_zero/rise", "shapley/grid/norm_zero/rise"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classifier", help="a trained classifier.pt (default: the shapes classifier's architecture)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--masks", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--grid", type=int, default=6)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the fastest counts")
    ap.add_argument("--calculators", nargs="+", default=["rise", "difference", "linear", "kernel_shap", "pda"])
    ap.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS,
                    help="sampler/segmenter/perturbation/smoothing[/attribution] (default: every perturbation, "
                         "smoothing and a superpixel segmenter from the base)")
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
    mean = model.spec.mean
    with torch.inference_mode():
        f(x)
    n_classes = len(model.class_names)
    print(f"{'setting':44s} {'img/s':>8s} {'bare img/s':>10s} {'ratio':>6s} {'overhead':>9s} {'fwd':>8s} "
          f"{'implied':>7s}   (overhead and fwd in ms per sample)")
    for spec in args.settings:
        parts = spec.split("/")
        comp = dict(zip(("sampler", "segmenter", "perturbation", "smoothing", "attribution"), parts))
        st = Setting(**comp, n_masks=args.masks, grid=args.grid)
        explainer = PerturbationExplainer(f, st, SampleBank(0), args.batch, normalisation_mean=mean)
        explainer.attribute_calculators(images[0], args.calculators)  # warm-up
        # the fastest of --repeat interleaved rounds: other processes' load only ever slows a round down
        bare_t, rise_t, n_bare, calls = [], [], 0, 0
        for _ in range(args.repeat):
            b_t = r_t = 0.0
            n_bare = calls = 0
            for img in images:
                t0 = time.perf_counter()
                with torch.inference_mode():
                    for _ in range(0, args.masks, args.batch):
                        f(x)
                        n_bare += args.batch
                b_t += time.perf_counter() - t0
                t0 = time.perf_counter()
                att = explainer.attribute_calculators(img, args.calculators)
                r_t += time.perf_counter() - t0
                calls += att.model_calls
            bare_t.append(b_t)
            rise_t.append(r_t)
        bare_t, rise_t = min(bare_t), min(rise_t)
        bare, rise = n_bare / bare_t, calls / rise_t
        # everything but the forward pass, timed with a model that costs nothing: the ratio it implies,
        # fwd / (fwd + overhead) per sample, is steadier than two timings of the loaded model
        free = PerturbationExplainer(lambda b: torch.zeros(len(b), n_classes), st, SampleBank(0), args.batch,
                                     normalisation_mean=mean)
        over = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            n_free = sum(free.attribute_calculators(img, args.calculators).model_calls for img in images)
            over.append((time.perf_counter() - t0) / n_free)
        fwd = 1.0 / bare
        implied = fwd / (fwd + min(over))
        print(f"{spec:44s} {rise:8.1f} {bare:10.1f} {rise / bare:6.3f} {1e3 * min(over):9.3f} {1e3 * fwd:8.3f} "
              f"{implied:7.3f}", flush=True)


if __name__ == "__main__":
    main()
