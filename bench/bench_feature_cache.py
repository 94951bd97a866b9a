"""Feature-caching throughput next to the bare forward pass of the same backbone and batch.

    python bench/bench_feature_cache.py --backbone efficientnet_lite0 --images 512 --batch-size 64

The bare pass runs the same tap extractor on batches already in memory (no HDF5 read, no write);
caching reads the dataset file, runs the extractor and writes every tap. The ratio caching/bare is
what the HDF5 path costs (target >= 0.9). Numbers are printed, not asserted: this is not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from percept import backbones
from percept.data.embedded import make_shapes
from percept.data.store import ImageDataset
from percept.features import TapExtractor, cache_features, prepare_input


def bare_forward(dataset: str, backbone: str, taps: str, batch_size: int) -> float:
    """Images/s of the tap extractor alone on batches already in memory (after one warm-up batch)."""
    spec = backbones.get(backbone)
    ds = ImageDataset(dataset)
    batches = [ds.batch(slice(s, min(s + batch_size, len(ds)))) for s in range(0, len(ds), batch_size)]
    extractor = TapExtractor(spec.build("imagenet"), backbones.resolve_taps(spec, taps)).eval()
    with torch.inference_mode():
        extractor(prepare_input(batches[0], spec, None))
        t0 = time.perf_counter()
        for x in batches:
            extractor(prepare_input(x, spec, None))
    return len(ds) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--taps", default="paper")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compression", default="blosc-lz4", choices=["blosc-lz4", "lzf", "gzip", "none"])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "shapes.h5")
        make_shapes(data, n_train=args.images, n_test=1, image_size=args.image_size,
                    classes=["circle", "square", "triangle", "star"], objects_per_image=[1, 2],
                    object_size=[0.3, 0.55], backgrounds=["brick", "coffee", "chelsea"], seed=0, progress=False)
        # Interleaved repeats and medians: the machine's speed drifts between runs.
        bares, caches = [], []
        for r in range(args.repeats):
            bares.append(bare_forward(data, args.backbone, args.taps, args.batch_size))
            stats = cache_features(data, Path(tmp) / f"f{r}.h5", args.backbone, args.taps, batch_size=args.batch_size,
                                   dtype=args.dtype, progress=False, compression=args.compression)
            caches.append(stats["images_per_second"])
        bare, cached = statistics.median(bares), statistics.median(caches)
        size = (Path(tmp) / "f0.h5").stat().st_size / 2**20
    print(f"backbone={args.backbone} taps={args.taps} images={args.images + 1} size={args.image_size} "
          f"batch={args.batch_size} dtype={args.dtype} compression={args.compression} threads={torch.get_num_threads()}")
    print(f"bare forward : {bare:8.1f} images/s")
    print(f"cache to HDF5: {cached:8.1f} images/s  ({size:.0f} MiB written)")
    print(f"ratio cache/bare = {cached / bare:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
