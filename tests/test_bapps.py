"""percept.data.bapps: the one BAPPS writer (arrays or blocks) and its readers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from percept.data.bapps import JNDData, TwoAFCData, write_bapps
from percept.data.store import ImageDataset


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_arrays_and_blocks_write_the_same_file(tmp_path):
    arrays = {"images": _images(5, 0), "p0": _images(5, 1), "p1": _images(5, 2)}
    common = dict(kind="2afc", name="t", split_name="val", fingerprint="fp", source="test", categories=["a", "b"],
                  category=np.array([0, 1, 1, 0, 1]), score=np.linspace(0, 1, 5))
    write_bapps(tmp_path / "whole.h5", images=arrays, **common)
    write_bapps(tmp_path / "blocks.h5", images=lambda i, j: {k: v[i:j] for k, v in arrays.items()},
                image_shape=(8, 8, 3), block=2, **common)
    whole, blocks = TwoAFCData(tmp_path / "whole.h5"), TwoAFCData(tmp_path / "blocks.h5")
    for a, b in zip(whole.batch(slice(None)), blocks.batch(slice(None))):
        assert torch.equal(a, b)
    assert torch.equal(whole.judge, blocks.judge) and whole.judge.dtype == torch.float32
    assert whole.categories == ["a", "b"] and len(TwoAFCData(tmp_path / "whole.h5", category="a")) == 2
    assert torch.equal(whole.batch([3])[1][0], torch.from_numpy(arrays["p0"][3]).permute(2, 0, 1).float() / 255)
    assert len(ImageDataset(tmp_path / "whole.h5")) == 5  # the reference patches read as an image dataset


def test_jnd_links_p0_to_images_and_readers_refuse_the_other_kind(tmp_path):
    out = write_bapps(tmp_path / "jnd.h5", kind="jnd", name="j", split_name="val", fingerprint="fp", source="test",
                      categories=["c"], category=np.zeros(3, int), score=np.array([0.0, 0.5, 1.0]),
                      images={"images": _images(3, 3), "p1": _images(3, 4)})
    with h5py.File(out) as f:
        assert isinstance(f.get("p0", getlink=True), h5py.SoftLink)
    data = JNDData(out)
    assert torch.equal(data.same, torch.tensor([0.0, 0.5, 1.0])) and len(data.batch([0, 2])) == 2
    with pytest.raises(Exception, match="not a BAPPS 2afc file"):
        TwoAFCData(out)
    with pytest.raises(ValueError, match="BAPPS kind must be one of"):
        write_bapps(tmp_path / "x.h5", kind="3afc", name="x", split_name="val", fingerprint="fp", source="t",
                    categories=[], category=np.zeros(0), score=np.zeros(0), images={})
