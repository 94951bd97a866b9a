"""One reader API for every image dataset, embedded or downloaded, stored in the project's HDF5 format.

Layout of a ``kind="dataset"`` file (see :mod:`percept.h5io`):

- ``images``: uint8 ``(N, H, W, 3)``, RGB.
- ``split``: uint8 ``(N,)`` codes into the root attribute ``split_names`` (e.g. ``["train", "test"]``).
- ``labels`` (optional): int64 ``(N,)`` for single-label data, float32 ``(N, K)`` multi-hot for multi-label
  data; root attribute ``label_kind`` is ``"single"``, ``"multi"`` or ``"none"``; ``class_names`` lists K names.
- ``segmentation`` (optional): uint8 ``(N, H, W)``, 0 background, ``k + 1`` for class k, 255 unlabelled.
- ``positions`` (optional): float32 ``(N, K, 2)``, normalised (x, y) centre of class k's object, NaN if absent.
- ``meta/<name>`` (optional): any per-image 1-D array (patient ids, magnification, source photo, …).

Root attributes (JSON): ``name``, ``fingerprint`` (a hash of everything that determined the content),
``class_names``, ``split_names``, ``label_kind``, ``source`` (a free-text description) and ``versions``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np
import torch

from percept.h5io import CacheError, atomic_h5, chunked_dataset, get_json_attr, open_h5

LABEL_KINDS = ("single", "multi", "none")


def fingerprint(obj: Any) -> str:
    """A stable short hash of a JSON-able description (config section, file list, …)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_images(images: np.ndarray, where: str = "images") -> np.ndarray:
    """Validate an image array before it is stored: uint8 RGB ``(N, H, W, 3)``, or say what is wrong."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{where}: expected RGB images shaped (N, H, W, 3), got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{where}: the dataset is empty (0 images)")
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating):
            if not np.isfinite(images).all():
                raise ValueError(f"{where}: images contain NaN or infinite values")
            if images.min() < 0 or images.max() > 1:
                raise ValueError(f"{where}: float images must lie in [0, 1], got [{images.min()}, {images.max()}]")
            images = np.round(images * 255).astype(np.uint8)
        else:
            raise ValueError(f"{where}: images must be uint8 or float in [0, 1], got dtype {images.dtype}")
    return images


def write_image_dataset(path: str | Path, *, name: str, images: np.ndarray, split: np.ndarray,
                        split_names: Sequence[str], fingerprint: str, source: str,
                        labels: np.ndarray | None = None, class_names: Sequence[str] | None = None,
                        label_kind: str = "none", segmentation: np.ndarray | None = None,
                        positions: np.ndarray | None = None, meta: Mapping[str, np.ndarray] | None = None,
                        extra_attrs: Mapping[str, Any] | None = None) -> None:
    """Write a complete dataset file atomically (see the module docstring for the layout)."""
    images = check_images(images, f"{name}.images")
    n = images.shape[0]
    if label_kind not in LABEL_KINDS:
        raise ValueError(f"label_kind must be one of {LABEL_KINDS}, got {label_kind!r}")
    split = np.asarray(split, dtype=np.uint8)
    if split.shape != (n,):
        raise ValueError(f"{name}.split: expected shape ({n},), got {split.shape}")
    if split.max() >= len(split_names):
        raise ValueError(f"{name}.split: code {split.max()} but only {len(split_names)} split names")
    attrs = {"name": name, "fingerprint": fingerprint, "source": source, "split_names": list(split_names),
             "label_kind": label_kind, "class_names": list(class_names or []), **(extra_attrs or {})}
    with atomic_h5(path, kind="dataset", meta=attrs) as f:
        chunked_dataset(f, "images", images.shape, np.uint8, 64, compression="gzip")[...] = images
        f.create_dataset("split", data=split)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape[0] != n:
                raise ValueError(f"{name}.labels: {labels.shape[0]} labels for {n} images")
            f.create_dataset("labels", data=labels.astype(np.float32 if label_kind == "multi" else np.int64))
        if segmentation is not None:
            seg = np.asarray(segmentation, dtype=np.uint8)
            if seg.shape != images.shape[:3]:
                raise ValueError(f"{name}.segmentation: shape {seg.shape} does not match images {images.shape[:3]}")
            chunked_dataset(f, "segmentation", seg.shape, np.uint8, 256, compression="gzip")[...] = seg
        if positions is not None:
            f.create_dataset("positions", data=np.asarray(positions, dtype=np.float32))
        for key, arr in (meta or {}).items():
            arr = np.asarray(arr)
            if arr.shape[0] != n:
                raise ValueError(f"{name}.meta/{key}: {arr.shape[0]} values for {n} images")
            f.create_dataset(f"meta/{key}", data=arr)


def read_rows(ds: h5py.Dataset, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """``ds[rows]`` for any order and repeats (h5py wants increasing unique indices): one contiguous
    read when the rows span a block, otherwise a fancy read of the unique sorted rows."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.empty((0, *ds.shape[1:]), ds.dtype)
    unique, inverse = np.unique(rows, return_inverse=True)
    if unique[-1] - unique[0] + 1 == len(unique):
        data = ds[int(unique[0]):int(unique[-1]) + 1]
    else:
        data = ds[unique]
    return data[inverse]


def rows_named(codes: np.ndarray, names: Sequence[str], name: str | None, path: Path, kind: str) -> np.ndarray:
    """The rows whose code is ``name``'s index in ``names`` (every row when ``name`` is None); a clear error
    naming the file and the ``kind`` values it has when ``name`` is not one of them."""
    if name is None:
        return np.arange(len(codes))
    if name not in names:
        raise ValueError(f"{path}: no {kind} {name!r}; it has {names}")
    return np.flatnonzero(codes == list(names).index(name))


@dataclass(frozen=True)
class Sample:
    image: torch.Tensor  # float32 (3, H, W) in [0, 1]
    index: int  # row in the file
    label: torch.Tensor | None = None
    mask: torch.Tensor | None = None  # bool (K, H, W): pixels of each class
    position: torch.Tensor | None = None  # (K, 2)


class RowReader:
    """What every reader of a project HDF5 file shares: a lazily opened handle (so that DataLoader
    workers each get their own), the selected ``rows`` of the file, and reads of any of them."""

    path: Path
    rows: np.ndarray
    _file: h5py.File | None = None

    def _h5(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}

    def __len__(self) -> int:
        return len(self.rows)

    def _select(self, positions: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """File rows at these positions of the selection."""
        return np.atleast_1d(self.rows[positions] if isinstance(positions, slice) else self.rows[np.asarray(positions)])

    def _images(self, name: str, positions: Sequence[int] | np.ndarray | slice) -> torch.Tensor:
        """uint8 ``(B, H, W, 3)`` images of dataset ``name`` → float32 ``(B, 3, H, W)`` in [0, 1]."""
        try:
            arr = read_rows(self._h5()[name], self._select(positions))
        except OSError as exc:  # a damaged chunk (bit rot, a tampered or half-copied file) fails its filter
            raise CacheError(f"{self.path}: cannot read {name} ({exc}); the file is corrupted. "
                             + f"Delete it (rm '{self.path}') and rerun snakemake, which rebuilds it.") from exc
        return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ImageDataset(RowReader, torch.utils.data.Dataset):
    """Read a dataset file, optionally restricted to one split. Indexing yields :class:`Sample`.

    ``batch(rows)`` reads many images at once as a float tensor — the fast path used by feature caching.
    """

    def __init__(self, path: str | Path, split: str | None = None, expect: Mapping[str, Any] | None = None):
        self.path = Path(path)
        with open_h5(self.path, "dataset", expect=expect) as f:
            self.name: str = get_json_attr(f, "name")
            self.fingerprint: str = get_json_attr(f, "fingerprint")
            self.class_names: list[str] = get_json_attr(f, "class_names", [])
            self.split_names: list[str] = get_json_attr(f, "split_names", [])
            self.label_kind: str = get_json_attr(f, "label_kind", "none")
            self.attrs = {k: get_json_attr(f, k) for k in f.attrs if k not in ("format", "format_version",
                                                                                "kind", "complete")}
            images = f["images"]
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
                raise CacheError(f"{self.path}: images stored as {images.dtype} {images.shape}, but a dataset file "
                                 "holds uint8 RGB images (N, H, W, 3); it was not written by percept.data.store."
                                 "write_image_dataset (which converts float, grey or RGBA images). "
                                 + f"Delete it (rm '{self.path}') and rerun snakemake, which rebuilds it.")
            self.image_shape: tuple[int, int, int] = tuple(images.shape[1:])
            self.has_segmentation = "segmentation" in f
            self.has_positions = "positions" in f
            self.meta_keys = sorted(f["meta"].keys()) if "meta" in f else []
            self.rows = rows_named(f["split"][...], self.split_names, split, self.path, "split")
            if len(self.rows) == 0:
                raise CacheError(f"{self.path}: split {split!r} is empty")
            self._labels = torch.from_numpy(f["labels"][...]) if "labels" in f else None
        self.split = split

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def labels(self) -> torch.Tensor | None:
        return None if self._labels is None else self._labels[torch.from_numpy(self.rows)]

    def meta(self, key: str) -> np.ndarray:
        return self._h5()[f"meta/{key}"][...][self.rows]

    def batch(self, positions: Sequence[int] | np.ndarray | slice) -> torch.Tensor:
        """Images at these positions of this split as float32 ``(B, 3, H, W)`` in [0, 1]."""
        return self._images("images", positions)

    def masks(self, positions: Sequence[int] | np.ndarray | slice) -> torch.Tensor:
        """Per-class ground-truth masks ``(B, K, H, W)`` (bool) from the stored segmentation."""
        if not self.has_segmentation:
            raise ValueError(f"{self.path}: dataset {self.name!r} has no segmentation masks")
        seg = torch.from_numpy(read_rows(self._h5()["segmentation"], self._select(positions))).long()
        classes = torch.arange(1, self.num_classes + 1).view(1, -1, 1, 1)
        return seg.unsqueeze(1) == classes

    def positions(self) -> torch.Tensor:
        if not self.has_positions:
            raise ValueError(f"{self.path}: dataset {self.name!r} has no object positions")
        return torch.from_numpy(self._h5()["positions"][...][self.rows])

    def __getitem__(self, i: int) -> Sample:
        row = int(self.rows[i])
        return Sample(
            image=self.batch([i])[0],
            index=row,
            label=None if self._labels is None else self._labels[row],
            mask=self.masks([i])[0] if self.has_segmentation else None,
            position=torch.from_numpy(self._h5()["positions"][row]) if self.has_positions else None,
        )
