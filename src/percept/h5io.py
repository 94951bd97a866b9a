"""The one HDF5 format of the project: datasets and feature caches.

Every file is written to a hidden temporary name beside its target and renamed into place only after
the ``complete`` attribute is set and the file is closed and synced, so a killed job or a full disk
never leaves a file that looks finished. Readers refuse files that are incomplete, of another kind,
or whose recorded metadata does not match what the caller expects.

Fault point (tests only, see :mod:`percept.faults`): ``h5io.before_rename``, the temporary file complete and
closed but not yet renamed.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter used by feature caches, for writers and readers)
import numpy as np

from percept import faults

FORMAT = "percept-h5"
FORMAT_VERSION = 1
KINDS = ("dataset", "features", "embeddings", "table", "saliency", "translation_examples")


class CacheError(RuntimeError):
    """A cache or dataset file that must not be used (incomplete, corrupted, or mismatched)."""


def _fix_hint(path: Path) -> str:
    return f"Delete it (rm '{path}') and rerun snakemake, which rebuilds it."


def versions() -> dict[str, str]:
    """Library versions recorded in every file's attributes."""
    import percept

    out = {"python": sys.version.split()[0], "numpy": np.__version__, "h5py": h5py.__version__,
           "percept": percept.__version__}
    try:
        import torch
        import torchvision

        out["torch"] = torch.__version__
        out["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return out


def set_json_attr(obj: h5py.HLObject, key: str, value: Any) -> None:
    obj.attrs[key] = json.dumps(value, sort_keys=True)


def get_json_attr(obj: h5py.HLObject, key: str, default: Any = None) -> Any:
    if key not in obj.attrs:
        return default
    return json.loads(obj.attrs[key])


def remove_stale_temporaries(path: Path, suffix: str = "tmp") -> None:
    """Delete ``.{name}.<pid>.{suffix}`` files beside ``path`` left by writers that were killed (SIGKILL, power
    loss) before they could clean up; called once ``path`` has been written, so the space comes back."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.{suffix}"):
        with contextlib.suppress(OSError):
            stale.unlink()


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, kind: str, meta: Mapping[str, Any] | None = None) -> Iterator[h5py.File]:
    """Open ``path`` for writing through a temporary file; rename it into place on success.

    ``meta`` is stored as JSON attributes on the root group. On any exception (or KeyboardInterrupt)
    the temporary file is removed and the previous ``path``, if any, is left untouched.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    f = h5py.File(tmp, "w")
    try:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["kind"] = kind
        f.attrs["complete"] = False
        set_json_attr(f, "versions", versions())
        for key, value in (meta or {}).items():
            set_json_attr(f, key, value)
        yield f
        f.attrs["complete"] = True
        f.close()
        faults.pause("h5io.before_rename")
        # The rename is atomic: readers see either the old file or the finished new one, never a partial
        # one. (No fsync: it would cost a large share of caching time on network file systems.)
        os.replace(tmp, path)
        remove_stale_temporaries(path)
    except BaseException:
        with contextlib.suppress(Exception):
            f.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_arrays(path: str | os.PathLike, kind: str, meta: Mapping[str, Any] | None = None,
                 **arrays: np.ndarray) -> None:
    """Write named arrays (one HDF5 dataset each, at the root) and ``meta`` in one atomic file (:func:`atomic_h5`):
    what a script writes when its result is a few whole arrays."""
    with atomic_h5(path, kind, meta=meta) as f:
        for name, data in arrays.items():
            f.create_dataset(name, data=np.asarray(data))


def open_h5(path: str | os.PathLike, kind: str, expect: Mapping[str, Any] | None = None) -> h5py.File:
    """Open a finished file for reading, refusing anything incomplete, of another kind, or mismatched.

    ``expect`` maps root metadata keys to the values the caller requires (compared after a JSON
    round trip, so tuples and lists compare equal).
    """
    path = Path(path)
    if not path.exists():
        raise CacheError(f"{path}: file not found. Run snakemake to build it.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CacheError(f"{path}: cannot be read as HDF5 ({exc}); it is truncated or corrupted. "
                         + _fix_hint(path)) from exc
    try:
        if f.attrs.get("format") != FORMAT:
            raise CacheError(f"{path}: not a {FORMAT} file (format={f.attrs.get('format')!r}). " + _fix_hint(path))
        if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
            raise CacheError(f"{path}: format version {f.attrs.get('format_version')} but this percept reads "
                             f"version {FORMAT_VERSION}. " + _fix_hint(path))
        if not bool(f.attrs.get("complete", False)):
            raise CacheError(f"{path}: incomplete — the job writing it did not finish. " + _fix_hint(path))
        if f.attrs.get("kind") != kind:
            raise CacheError(f"{path}: holds {f.attrs.get('kind')!r}, expected {kind!r}.")
        for key, want in (expect or {}).items():
            have = get_json_attr(f, key)
            if json.loads(json.dumps(want, sort_keys=True)) != have:
                raise CacheError(f"{path}: recorded {key}={have!r} but {want!r} was expected — the file was "
                                 "made with other settings. " + _fix_hint(path))
    except BaseException:
        f.close()
        raise
    return f


def compression_options(name: str | None) -> dict[str, Any]:
    """h5py keyword arguments for a named compression.

    ``blosc-lz4`` (byte-shuffle + LZ4 through Blosc, multi-threaded and releasing the GIL) keeps feature
    caching close to the bare forward-pass speed; ``gzip`` compresses best and is the slowest.
    """
    if name in (None, "none"):
        return {}
    if name == "blosc-lz4":
        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if name == "lzf":
        return {"compression": "lzf"}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    raise ValueError(f"unknown compression {name!r}; choose blosc-lz4, lzf, gzip or none")


def chunked_dataset(f: h5py.Group, name: str, shape: tuple[int, ...], dtype: Any, chunk_rows: int,
                    compression: str | None = "blosc-lz4") -> h5py.Dataset:
    """Create an N-first dataset chunked along N (one chunk per ``chunk_rows`` items) and compressed."""
    rows = max(1, min(int(chunk_rows), int(shape[0]) if shape[0] else 1))
    kw = compression_options(compression) if shape[0] else {}
    return f.create_dataset(name, shape=shape, dtype=dtype, chunks=(rows, *shape[1:]) if shape[0] else None, **kw)
