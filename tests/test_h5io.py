"""The one HDF5 format: atomic writes (temp name + rename) and readers that refuse unusable files."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from percept import h5io
from percept.data.store import write_image_dataset
from percept.h5io import CacheError, atomic_h5, open_h5


def _leftovers(directory: Path) -> list[str]:
    """Hidden temporary files (``.<name>.<pid>.tmp``) left in a directory."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def _write_table(path: Path, meta: dict | None = None, n: int = 100) -> None:
    with atomic_h5(path, kind="table", meta=meta or {"backbone": "alexnet", "taps": ["a", "b"]}) as f:
        f.create_dataset("x", data=np.arange(n, dtype=np.float64))


def _write_dataset(path: Path, n: int = 24, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    write_image_dataset(path, name="tiny", images=images, split=np.zeros(n, np.uint8), split_names=["train"],
                        fingerprint="fp0", source="test", segmentation=rng.integers(0, 3, (n, size, size)),
                        labels=rng.integers(0, 2, n), class_names=["a", "b"], label_kind="single")
    return images


# -- writing -------------------------------------------------------------------------------------------


def test_atomic_write_round_trip_records_format_and_meta(tmp_path):
    path = tmp_path / "sub" / "t.h5"  # the parent folder is created
    _write_table(path, meta={"backbone": "alexnet", "taps": ("a", "b"), "resize": None})
    assert path.exists()
    assert _leftovers(path.parent) == []
    with open_h5(path, "table", expect={"backbone": "alexnet", "taps": ("a", "b"), "resize": None}) as f:
        assert f.attrs["format"] == h5io.FORMAT
        assert int(f.attrs["format_version"]) == h5io.FORMAT_VERSION
        assert f.attrs["kind"] == "table"
        assert bool(f.attrs["complete"]) is True
        assert h5io.get_json_attr(f, "taps") == ["a", "b"]  # a JSON round trip: tuples come back as lists
        assert h5io.get_json_attr(f, "missing", default=42) == 42
        versions = h5io.get_json_attr(f, "versions")
        assert versions["numpy"] == np.__version__ and versions["h5py"] == h5py.__version__
        assert {"python", "percept", "torch"} <= set(versions)
        np.testing.assert_array_equal(f["x"][...], np.arange(100.0))


def test_atomic_write_rejects_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        with atomic_h5(tmp_path / "x.h5", kind="bogus"):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_write_leaves_no_target_and_no_temp(tmp_path, exc):
    path = tmp_path / "out.h5"
    with pytest.raises(type(exc)):
        with atomic_h5(path, kind="features") as f:
            f.create_dataset("x", data=np.ones(10))
            # while the body runs, only the hidden temporary file exists
            assert not path.exists()
            assert len(_leftovers(tmp_path)) == 1 and _leftovers(tmp_path)[0].startswith(".out.h5.")
            raise exc
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_target_byte_identical(tmp_path):
    path = tmp_path / "out.h5"
    _write_table(path, n=50)
    before = path.read_bytes()
    stat = path.stat()
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_h5(path, kind="table") as f:
            f.create_dataset("x", data=np.zeros(1000))
            raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert path.stat().st_ino == stat.st_ino
    assert _leftovers(tmp_path) == []
    with open_h5(path, "table") as f:  # and it is still the old, readable file
        np.testing.assert_array_equal(f["x"][...], np.arange(50.0))


def test_successful_write_replaces_previous_target(tmp_path):
    path = tmp_path / "out.h5"
    _write_table(path, n=5)
    _write_table(path, n=7)
    with open_h5(path, "table") as f:
        assert f["x"].shape == (7,)
    assert _leftovers(tmp_path) == []


def test_disk_full_mid_write_leaves_nothing(tmp_path, monkeypatch):
    """The first array is written, the second write fails with ENOSPC: no target, no temporary file."""
    real_setitem = h5py.Dataset.__setitem__
    calls = []

    def flaky_setitem(self, key, value):
        calls.append(self.name)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", flaky_setitem)
    path = tmp_path / "shapes.h5"
    with pytest.raises(OSError) as info:
        _write_dataset(path)
    assert info.value.errno == errno.ENOSPC
    assert calls == ["/images", "/segmentation"]  # it really failed mid-way, after the images were written
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_disk_full_keeps_previous_target(tmp_path, monkeypatch):
    path = tmp_path / "shapes.h5"
    _write_dataset(path, n=4)
    before = path.read_bytes()

    def no_space(self, key, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.Dataset, "__setitem__", no_space)
    with pytest.raises(OSError, match="No space left"):
        _write_dataset(path, n=8)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


# -- reading -------------------------------------------------------------------------------------------


def test_incomplete_file_is_refused_with_fix_hint(tmp_path):
    path = tmp_path / "half.h5"
    _write_table(path)
    with h5py.File(path, "a") as f:
        f.attrs["complete"] = False
    with pytest.raises(CacheError) as info:
        open_h5(path, "table")
    msg = str(info.value)
    assert str(path) in msg
    assert "incomplete" in msg
    assert f"rm '{path}'" in msg and "rerun" in msg.lower()


def test_file_without_complete_attr_is_refused(tmp_path):
    path = tmp_path / "nocomplete.h5"
    _write_table(path)
    with h5py.File(path, "a") as f:
        del f.attrs["complete"]
    with pytest.raises(CacheError, match="incomplete"):
        open_h5(path, "table")


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "trunc.h5"
    _write_dataset(path, n=24, size=32)
    with open_h5(path, "dataset"):  # valid before truncation
        pass
    size = path.stat().st_size
    assert size > 10_000
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(CacheError) as info:
        open_h5(path, "dataset")
    msg = str(info.value)
    assert str(path) in msg
    assert "truncated or corrupted" in msg and "rm '" in msg


def test_garbage_and_missing_files_are_refused(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not an HDF5 file" * 100)
    with pytest.raises(CacheError, match="cannot be read as HDF5"):
        open_h5(junk, "dataset")
    missing = tmp_path / "missing.h5"
    with pytest.raises(CacheError, match="file not found") as info:
        open_h5(missing, "dataset")
    assert str(missing) in str(info.value)


def test_foreign_hdf5_and_other_format_version_are_refused(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(CacheError, match="not a percept-h5 file"):
        open_h5(foreign, "table")
    old = tmp_path / "old.h5"
    _write_table(old)
    with h5py.File(old, "a") as f:
        f.attrs["format_version"] = h5io.FORMAT_VERSION + 1
    with pytest.raises(CacheError, match=f"format version {h5io.FORMAT_VERSION + 1}"):
        open_h5(old, "table")


def test_wrong_kind_is_refused(tmp_path):
    path = tmp_path / "t.h5"
    _write_table(path)
    with pytest.raises(CacheError) as info:
        open_h5(path, "features")
    assert str(path) in str(info.value)
    assert "'table'" in str(info.value) and "'features'" in str(info.value)


@pytest.mark.parametrize("expect, key", [
    ({"backbone": "vgg16"}, "backbone"),
    ({"taps": ["a"]}, "taps"),
    ({"taps": ["b", "a"]}, "taps"),  # order matters
    ({"backbone": "alexnet", "resize": 224}, "resize"),  # a key the file does not record
])
def test_mismatched_expect_is_refused(tmp_path, expect, key):
    path = tmp_path / "t.h5"
    _write_table(path)
    with pytest.raises(CacheError) as info:
        open_h5(path, "table", expect=expect)
    msg = str(info.value)
    assert str(path) in msg
    assert f"recorded {key}=" in msg and repr(expect[key]) in msg and "other settings" in msg


def test_matching_expect_accepts_tuples_for_lists(tmp_path):
    path = tmp_path / "t.h5"
    _write_table(path)
    with open_h5(path, "table", expect={"backbone": "alexnet", "taps": ("a", "b")}) as f:
        assert f["x"].shape == (100,)


def test_refused_file_is_closed(tmp_path):
    """A refused file must not stay open (it could not be deleted on some systems, and leaks handles)."""
    path = tmp_path / "t.h5"
    _write_table(path)
    with pytest.raises(CacheError):
        open_h5(path, "features")
    with h5py.File(path, "a") as f:  # opening for writing fails while a read handle is open in this process
        f.attrs["extra"] = json.dumps(1)


def test_compression_options_and_chunked_dataset(tmp_path):
    assert h5io.compression_options(None) == {} and h5io.compression_options("none") == {}
    assert h5io.compression_options("lzf") == {"compression": "lzf"}
    assert h5io.compression_options("gzip") == {"compression": "gzip", "compression_opts": 4}
    assert h5io.compression_options("blosc-lz4")["compression"] == 32001  # the registered Blosc filter id
    with pytest.raises(ValueError, match="unknown compression 'zip'"):
        h5io.compression_options("zip")
    data = np.random.default_rng(0).normal(size=(10, 3, 4)).astype(np.float32)
    path = tmp_path / "c.h5"
    with atomic_h5(path, kind="features") as f:
        for comp in ("none", "lzf", "gzip", "blosc-lz4"):
            ds = h5io.chunked_dataset(f, comp, data.shape, np.float32, chunk_rows=4, compression=comp)
            assert ds.chunks == (4, 3, 4)
            ds[...] = data
        big = h5io.chunked_dataset(f, "big_chunk", data.shape, np.float32, chunk_rows=64)
        assert big.chunks == (10, 3, 4)  # never larger than the data
        empty = h5io.chunked_dataset(f, "empty", (0, 3), np.float32, chunk_rows=4)
        assert empty.shape == (0, 3)
    with open_h5(path, "features") as f:
        for comp in ("none", "lzf", "gzip", "blosc-lz4"):
            np.testing.assert_array_equal(f[comp][...], data)


def test_write_arrays_round_trip_and_atomic(tmp_path):
    path = tmp_path / "crops.h5"
    crops = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    h5io.write_arrays(path, "saliency", meta={"content": "crops"}, crops=crops, ids=[3, 1])
    with open_h5(path, "saliency", expect={"content": "crops"}) as f:
        np.testing.assert_array_equal(f["crops"][()], crops)
        assert f["crops"].dtype == np.float32 and list(f["ids"][()]) == [3, 1]
    before = path.read_bytes()
    with pytest.raises(TypeError):  # an array HDF5 cannot hold: nothing replaces the finished file
        h5io.write_arrays(path, "saliency", crops=crops, bad=np.array([object()]))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["crops.h5"]
