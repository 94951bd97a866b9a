"""The one feature-extraction path and the HDF5 feature cache.

``TapExtractor`` returns the outputs of named taps (module paths) of any registry network; the forward
pass stops right after the deepest tap, so layers past it are never computed. ``cache_features`` runs
it over a dataset file in batches under ``torch.inference_mode()`` and writes one HDF5 dataset per tap
(kind ``features``), with the backbone, weights, taps, preprocessing, dataset fingerprint and library
versions recorded as attributes. ``FeatureCache`` reads it back and refuses a file made with other
settings.

Fault point (tests only, see :mod:`percept.faults`): ``features.after_first_batch``, the first batch handed
to the writer of the temporary cache file.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from percept import backbones, faults
from percept.data.store import ImageDataset, read_rows
from percept.h5io import CacheError, atomic_h5, chunked_dataset, get_json_attr, open_h5

log = logging.getLogger(__name__)


class _StopForward(Exception):
    pass


class TapExtractor(nn.Module):
    """Wrap a network so that calling it returns ``{tap: feature map}`` for the requested taps."""

    def __init__(self, model: nn.Module, taps: Sequence[str], stop_early: bool = True):
        super().__init__()
        self.model = model
        self.taps = list(taps)
        modules = dict(model.named_modules())
        missing = [t for t in self.taps if t not in modules]
        if missing:
            raise ValueError(f"taps {missing} are not modules of {type(model).__name__}")
        self._out: dict[str, torch.Tensor] = {}
        self._hooks = [modules[t].register_forward_hook(self._hook(t)) for t in self.taps]
        self.stop_early = stop_early

    def _hook(self, tap: str):
        def fn(_module, _inputs, output):
            self._out[tap] = output
            if self.stop_early and len(self._out) == len(self.taps):
                raise _StopForward

        return fn

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self._out = {}
        try:
            self.model(x)
        except _StopForward:
            pass
        out, self._out = self._out, {}
        missing = [t for t in self.taps if t not in out]
        if missing:  # a tap inside a branch the forward pass did not take (e.g. auxiliary heads)
            raise RuntimeError(f"taps {missing} produced no output in the forward pass")
        return {t: out[t] for t in self.taps}

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device when present, else the CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; use device: auto or cpu")
    return dev


def to_device(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a model to the device; on CUDA also channels-last (faster convolutions with cuDNN) and cuDNN autotuning."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    return model


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when ``amp`` is asked for; a no-op on the CPU (so CPU results stay exact)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_input(x: torch.Tensor, spec: backbones.Backbone, resize: int | None,
                  normalize: bool = True) -> torch.Tensor:
    """Images in [0, 1] → the network's input: optional resize (bilinear, antialiased), then normalise.

    ``normalize=False`` feeds the images unnormalised in [0, 1], as the perceptual-autoencoder papers' loss
    networks do (guspih/Perceptual-Autoencoders ``SimpleExtractor``; ``normalize_in=False`` in the grid
    paper's autoencoder task)."""
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"{spec.name} takes float RGB images shaped (B, 3, H, W) in [0, 1], got {x.dtype} "
                         f"{tuple(x.shape)}; read images through percept.data.store.ImageDataset.batch")
    if not bool(torch.isfinite(x.detach().sum())):  # NaN/inf propagate into the sum; cheaper than isfinite(x).all()
        raise ValueError(f"images for {spec.name} contain NaN or infinite values")
    if resize is not None and tuple(x.shape[-2:]) != (resize, resize):
        x = F.interpolate(x, size=(resize, resize), mode="bilinear", antialias=True, align_corners=False)
    if min(x.shape[-2:]) < spec.min_input_size:
        raise ValueError(f"{spec.name} needs inputs of at least {spec.min_input_size}x{spec.min_input_size}, "
                         f"got {tuple(x.shape[-2:])}; set a larger resize")
    return spec.normalize(x) if normalize else x


def _prefetch(it: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Run an iterator in a background thread so reading the next batch overlaps the forward pass."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    sentinel = object()
    errors: list[BaseException] = []

    def work():
        try:
            for item in it:
                q.put(item)
        except BaseException as exc:  # re-raised in the consumer
            errors.append(exc)
        finally:
            q.put(sentinel)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while True:
        item = q.get()
        if item is sentinel:
            break
        yield item
    thread.join()
    if errors:
        raise errors[0]


DTYPES = {"float32": torch.float32, "float16": torch.float16}
COMPRESSIONS = ("blosc-lz4", "lzf", "gzip", "none")


class _BackgroundWriter:
    """Write batches in a thread so HDF5 compression and I/O overlap the next forward pass.

    The queue is bounded (two batches), so memory never holds more than a few batches of features.
    An error in the writer is re-raised in the caller at the next ``put`` or at exit.
    """

    def __init__(self, fn, depth: int = 2):
        self.fn = fn
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.fn(item)
                except BaseException as exc:  # re-raised in the producer
                    self.error = exc

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def __enter__(self) -> "_BackgroundWriter":
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.q.put(None)
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error


def feature_meta(spec: backbones.Backbone, weights: str, taps: Sequence[str], resize: int | None,
                 dataset: ImageDataset, split: str | None, dtype: str, seed: int) -> dict[str, Any]:
    """The attributes a feature cache is identified by; readers compare against them."""
    return {"backbone": spec.name, "weights": weights if weights == "random" else spec.weights_name,
            "weights_seed": seed if weights == "random" else None, "taps": list(taps),
            "preprocessing": spec.preprocessing(resize), "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint, "split": split, "dtype": dtype}


def cache_features(dataset_path: str | Path, out_path: str | Path, backbone: str, taps: str | Sequence[str],
                   *, weights: str = "imagenet", split: str | None = None, resize: int | None = None,
                   batch_size: int = 64, device: str = "auto", dtype: str = "float32", seed: int = 0,
                   allow_download: bool = False, progress: bool = True,
                   compression: str = "blosc-lz4", amp: bool = False) -> dict[str, float]:
    """Extract ``taps`` of ``backbone`` for every image of the dataset (split) and write the cache.

    On CUDA the model runs channels-last, and with ``amp`` under bfloat16 autocast (recorded in the cache's
    attributes, since it changes the features); on the CPU ``amp`` changes nothing.

    Returns timing statistics: images, seconds, images per second.
    """
    spec = backbones.get(backbone)
    taps = backbones.resolve_taps(spec, taps if isinstance(taps, str) else list(taps))
    dev = resolve_device(device)
    ds = ImageDataset(dataset_path, split=split)
    n = len(ds)
    np_dtype = {"float32": np.float32, "float16": np.float16}[dtype]
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")
    model = to_device(spec.build(weights, seed=seed, allow_download=allow_download), dev)
    amp = bool(amp and dev.type == "cuda")
    extractor = TapExtractor(model, taps).eval()
    log.info("caching %s taps %s of %s (%d images, split=%s) on %s", backbone, taps, ds.name, n, split, dev)

    with torch.inference_mode(), autocast(dev, amp):
        probe = extractor(prepare_input(ds.batch([0]).to(dev), spec, resize))
    shapes = {t: tuple(v.shape[1:]) for t, v in probe.items()}
    meta = feature_meta(spec, weights, taps, resize, ds, split, dtype, seed)
    meta["shapes"] = {t: list(s) for t, s in shapes.items()}
    meta["compression"] = compression
    if amp:
        meta["amp"] = "bfloat16"
    meta["fingerprint"] = f"{ds.fingerprint}:{spec.name}:{weights}:{','.join(taps)}:{resize}:{dtype}" + (":amp" if amp else "")

    def batches():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            yield start, stop, ds.batch(slice(start, stop))

    t0 = time.perf_counter()
    with atomic_h5(out_path, kind="features", meta=meta) as f:
        f.create_dataset("rows", data=ds.rows.astype(np.int64))
        out = {t: chunked_dataset(f, f"taps/{t}", (n, *shapes[t]), np_dtype, batch_size, compression=compression)
               for t in taps}
        bar = tqdm(total=n, desc=f"features {ds.name}/{backbone}", unit="img", disable=not progress)

        def write(item):
            start, stop, arrays = item
            for t, arr in arrays.items():
                out[t][start:stop] = arr
            bar.update(stop - start)

        with _BackgroundWriter(write) as writer, torch.inference_mode(), autocast(dev, amp):
            for start, stop, x in _prefetch(batches()):
                feats = extractor(prepare_input(x.to(dev, non_blocking=True), spec, resize))
                arrays = {}
                for t in taps:
                    v = feats[t]
                    if not torch.isfinite(v.sum()):  # NaN/inf propagate into the sum; cheaper than isfinite(v)
                        raise FloatingPointError(f"non-finite features at tap {t} for images {start}..{stop - 1}")
                    arrays[t] = v.to("cpu", DTYPES[dtype]).numpy()
                writer.put((start, stop, arrays))
                if start == 0:
                    faults.pause("features.after_first_batch")
        bar.close()
    seconds = time.perf_counter() - t0
    extractor.remove()
    return {"images": n, "seconds": seconds, "images_per_second": n / max(seconds, 1e-9), "device": str(dev),
            "amp": amp}


class FeatureCache:
    """Read a feature cache, refusing one made with other settings than ``expect``."""

    def __init__(self, path: str | Path, expect: Mapping[str, Any] | None = None):
        self.path = Path(path)
        with open_h5(self.path, "features", expect=expect) as f:
            self.meta = {k: get_json_attr(f, k) for k in f.attrs if k not in ("format", "format_version", "kind",
                                                                                "complete")}
            self.rows = f["rows"][...]
            for tap in self.meta["taps"]:
                if f[f"taps/{tap}"].shape[0] != len(self.rows):
                    raise CacheError(f"{self.path}: tap {tap} has {f[f'taps/{tap}'].shape[0]} rows, "
                                     f"expected {len(self.rows)}; the file is damaged. Delete it and rerun.")

    @property
    def taps(self) -> list[str]:
        return list(self.meta["taps"])

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, tap: str, positions: slice | Sequence[int] | None = None) -> torch.Tensor:
        if tap not in self.taps:
            raise KeyError(f"{self.path}: no tap {tap!r}; cached taps: {self.taps}")
        with open_h5(self.path, "features") as f:
            ds = f[f"taps/{tap}"]
            try:
                if positions is None:
                    arr = ds[...]
                elif isinstance(positions, slice):
                    arr = ds[positions]
                else:
                    arr = read_rows(ds, positions)
            except OSError as exc:  # a damaged compressed chunk fails its filter
                raise CacheError(f"{self.path}: tap {tap} cannot be read ({exc}); the cache is corrupted. "
                                 "Delete it and rerun snakemake.") from exc
        t = torch.from_numpy(np.ascontiguousarray(arr)).float()
        if not torch.isfinite(t).all():
            raise CacheError(f"{self.path}: tap {tap} holds non-finite values; the cache is corrupted. "
                             "Delete it and rerun snakemake.")
        return t
