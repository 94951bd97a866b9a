"""BAPPS-format files beside the dataset store (:mod:`percept.data.store`): the one writer
(:func:`write_bapps`: the downloaded BAPPS 2AFC/JND sets of :mod:`percept.data.prepare` and the synthetic ones of
:mod:`percept.similarity.distortions`) and the readers :class:`TwoAFCData` / :class:`JNDData`.

A BAPPS file is a ``kind="dataset"`` file (see :mod:`percept.data.store`) without labels whose root attribute
``bapps_kind`` is ``"2afc"`` or ``"jnd"``:

- 2AFC (Zhang et al. 2018, the LPIPS paper's two-alternative forced choice): ``images`` = reference, ``p0``,
  ``p1`` uint8 ``(N, H, W, 3)``; ``meta/judge`` float32 = fraction of people who judged p1 closer.
- JND (just noticeable differences): ``images`` = ``p0`` (``p0`` is a soft link to it), ``p1``; ``meta/same``
  float32 = fraction of people who judged the pair identical.
- both: ``split`` (all 0, one split named in ``split_names``), ``meta/category`` int64 codes into the root
  attribute ``categories``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from percept.data.store import RowReader, rows_named
from percept.h5io import CacheError, atomic_h5, chunked_dataset, get_json_attr, open_h5

# kind: (image datasets in the file, score name, soft links)
LAYOUTS: dict[str, tuple[tuple[str, ...], str, dict[str, str]]] = {
    "2afc": (("images", "p0", "p1"), "judge", {}),
    "jnd": (("images", "p1"), "same", {"p0": "images"}),
}

Blocks = Callable[[int, int], Mapping[str, np.ndarray]]


def write_bapps(out: str | Path, *, kind: str, name: str, split_name: str, fingerprint: str, source: str,
                categories: Sequence[str], category: np.ndarray, score: np.ndarray,
                images: Mapping[str, np.ndarray] | Blocks, image_shape: Sequence[int] | None = None,
                block: int = 1024, extra_attrs: Mapping[str, Any] | None = None) -> Path:
    """Write a BAPPS file atomically. ``images`` maps each image dataset of ``kind`` (:data:`LAYOUTS`) to a
    uint8 ``(N, H, W, 3)`` array, or is a function ``(start, stop) -> {dataset: rows}`` called block by block
    (a set read from many image files need not be held in memory; then ``image_shape`` = ``(H, W, 3)``)."""
    if kind not in LAYOUTS:
        raise ValueError(f"BAPPS kind must be one of {sorted(LAYOUTS)}, got {kind!r}")
    keys, score_key, alias = LAYOUTS[kind]
    n = len(score)
    attrs = {"name": name, "fingerprint": fingerprint, "source": source, "split_names": [split_name],
             "label_kind": "none", "class_names": [], "categories": list(categories), "bapps_kind": kind,
             **(extra_attrs or {})}
    out = Path(out)
    with atomic_h5(out, kind="dataset", meta=attrs) as f:
        if callable(images):
            if image_shape is None:
                raise ValueError("write_bapps: image_shape is needed when images come block by block")
            dsets = {key: chunked_dataset(f, key, (n, *image_shape), np.uint8, 64, compression="gzip")
                     for key in keys}
            for start in range(0, n, block):
                stop = min(n, start + block)
                rows = images(start, stop)
                for key in keys:
                    dsets[key][start:stop] = rows[key]
        else:
            for key in keys:
                arr = np.asarray(images[key])
                if len(arr) != n:
                    raise ValueError(f"write_bapps: {len(arr)} {key} images for {n} scores")
                chunked_dataset(f, key, arr.shape, np.uint8, 64, compression="gzip")[...] = arr
        for key, target in alias.items():
            f[key] = h5py.SoftLink(f"/{target}")
        f.create_dataset("split", data=np.zeros(n, np.uint8))
        f.create_dataset(f"meta/{score_key}", data=np.asarray(score, np.float32))
        f.create_dataset("meta/category", data=np.asarray(category, np.int64))
    return out


class _PatchSet(RowReader):
    """Reader for a BAPPS file written by :func:`write_bapps`."""

    KIND = ""
    IMAGES: tuple[tuple[str, str], ...] = ()  # (name returned, HDF5 dataset)
    SCORE = ""

    def __init__(self, path: str | Path, category: str | None = None):
        self.path = Path(path)
        with open_h5(self.path, "dataset") as f:
            if get_json_attr(f, "bapps_kind") != self.KIND:
                raise CacheError(f"{self.path}: not a BAPPS {self.KIND} file (bapps_kind="
                                 f"{get_json_attr(f, 'bapps_kind')!r})")
            self.name: str = get_json_attr(f, "name")
            self.fingerprint: str = get_json_attr(f, "fingerprint")
            self.categories: list[str] = get_json_attr(f, "categories")
            codes = f["meta/category"][...]
            self.rows = rows_named(codes, self.categories, category, self.path, "category")
            self.category = torch.from_numpy(codes[self.rows])
            self.score = torch.from_numpy(f[f"meta/{self.SCORE}"][...][self.rows])
            self.image_shape: tuple[int, int, int] = tuple(f["images"].shape[1:])

    def batch(self, positions: Sequence[int] | np.ndarray | slice) -> tuple[torch.Tensor, ...]:
        """The patches at these positions, one float32 ``(B, 3, H, W)`` tensor in [0, 1] per image kind."""
        return tuple(self._images(key, positions) for _, key in self.IMAGES)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything at once: the patches as float32 ``(N, 3, H, W)``, the score and the category codes."""
        images = self.batch(slice(None))
        return {**{name: t for (name, _), t in zip(self.IMAGES, images)}, self.SCORE: self.score,
                "category": self.category}

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return (*(t[0] for t in self.batch([i])), self.score[i])


class TwoAFCData(_PatchSet):
    """BAPPS 2AFC: ``batch(rows)`` -> ``(ref, p0, p1)``; ``judge`` (N,) = fraction preferring p1."""

    KIND = "2afc"
    IMAGES = (("ref", "images"), ("p0", "p0"), ("p1", "p1"))
    SCORE = "judge"

    @property
    def judge(self) -> torch.Tensor:
        return self.score


class JNDData(_PatchSet):
    """BAPPS JND: ``batch(rows)`` -> ``(p0, p1)``; ``same`` (N,) = fraction judging the pair identical."""

    KIND = "jnd"
    IMAGES = (("p0", "images"), ("p1", "p1"))
    SCORE = "same"

    @property
    def same(self) -> torch.Tensor:
        return self.score
