"""``percept`` command line: inspect backbones, classify an image, validate a config, inspect a cache."""

from __future__ import annotations

import argparse
import sys


def _backbones(args: argparse.Namespace) -> int:
    from percept import backbones

    rows = []
    for name in backbones.NAMES:
        spec = backbones.get(name)
        rows.append((name, spec.input_size, "yes" if spec.weights_offline() else "no",
                     f"{spec.imagenet_acc1:.1f}", ", ".join(spec.taps), ", ".join(spec.lpips_taps) or "-"))
    header = ("backbone", "input", "offline weights", "ImageNet acc@1", "taps (paper)", "LPIPS taps")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    if args.verbose:
        for name in backbones.NAMES:
            spec = backbones.get(name)
            print(f"\n{name}: weights {spec.weights_name}\n  file: {spec.weights_file()}\n"
                  f"  all taps: {', '.join(spec.available_taps)}")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from percept.backbones import WeightsUnavailable
    from percept.backbones.check import classify, load_image

    try:
        top = classify([load_image(args.image)], args.backbone, args.weights, k=args.top,
                       allow_download=args.allow_download)[0]
    except (WeightsUnavailable, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.image} — {args.backbone} ({args.weights} weights)")
    for rank, (label, prob) in enumerate(top, start=1):
        print(f"{rank}. {label:<30s} {prob:7.2%}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from percept.config import ConfigError, load_config

    try:
        load_config(args.config)
    except (ConfigError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{args.config}: valid")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    import h5py

    from percept.h5io import CacheError, get_json_attr, open_h5

    try:
        with h5py.File(args.path, "r") as f:
            kind = str(f.attrs.get("kind", ""))
        with open_h5(args.path, kind) as f:
            for key in sorted(f.attrs):
                value = get_json_attr(f, key) if key not in ("format", "format_version", "kind", "complete") \
                    else f.attrs[key]
                print(f"{key}: {value}")
            f.visititems(lambda n, o: print(f"  {n}: {o.shape} {o.dtype}") if hasattr(o, "shape") else None)
    except (CacheError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="percept", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backbones", help="list the registry: taps, input size, offline weights")
    p.add_argument("-v", "--verbose", action="store_true", help="weights files and every tap")
    p.set_defaults(func=_backbones)
    p = sub.add_parser("classify", help="top-5 ImageNet labels of an image (a path or a shipped photo's name)")
    p.add_argument("image")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet", choices=["imagenet", "random"])
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--allow-download", action="store_true", help="let torchvision download missing weights")
    p.set_defaults(func=_classify)
    p = sub.add_parser("validate", help="validate a workflow config file")
    p.add_argument("config")
    p.set_defaults(func=_validate)
    p = sub.add_parser("inspect", help="show a dataset or feature cache file's metadata and arrays")
    p.add_argument("path")
    p.set_defaults(func=_inspect)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
