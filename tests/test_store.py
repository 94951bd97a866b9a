"""write_image_dataset / ImageDataset: one reader API for every image dataset; check_images."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from percept.data.store import ImageDataset, check_images, fingerprint, write_image_dataset
from percept.h5io import CacheError

N, H, W, K = 9, 12, 10, 3
SPLIT = np.array([0, 1, 0, 2, 1, 0, 2, 0, 1], np.uint8)  # train, val, test
SPLIT_NAMES = ["train", "val", "test"]


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(42)
    images = rng.integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)
    seg = rng.integers(0, K + 1, size=(N, H, W)).astype(np.uint8)
    seg[:, 0, 0] = 255  # unlabelled pixels
    multi = (rng.random((N, K)) < 0.5).astype(np.float32)
    single = rng.integers(0, K, size=N)
    positions = rng.random((N, K, 2)).astype(np.float32)
    positions[multi == 0] = np.nan
    meta = {"photo": np.arange(N, dtype=np.int64) * 10, "magnification": rng.random(N)}
    return dict(images=images, seg=seg, multi=multi, single=single, positions=positions, meta=meta)


@pytest.fixture(scope="module")
def multi_path(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("store") / "multi.h5"
    write_image_dataset(path, name="toy", images=arrays["images"], split=SPLIT, split_names=SPLIT_NAMES,
                        fingerprint="fp-multi", source="unit test", labels=arrays["multi"],
                        class_names=["a", "b", "c"], label_kind="multi", segmentation=arrays["seg"],
                        positions=arrays["positions"], meta=arrays["meta"], extra_attrs={"params": {"seed": 3}})
    return path


@pytest.fixture(scope="module")
def single_path(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("store") / "single.h5"
    write_image_dataset(path, name="toy1", images=arrays["images"], split=SPLIT, split_names=SPLIT_NAMES,
                        fingerprint="fp-single", source="unit test", labels=arrays["single"],
                        class_names=["a", "b", "c"], label_kind="single")
    return path


def test_attributes_round_trip(multi_path):
    ds = ImageDataset(multi_path)
    assert ds.name == "toy" and ds.fingerprint == "fp-multi"
    assert ds.class_names == ["a", "b", "c"] and ds.num_classes == 3
    assert ds.split_names == SPLIT_NAMES and ds.split is None
    assert ds.label_kind == "multi"
    assert ds.image_shape == (H, W, 3)
    assert ds.has_segmentation and ds.has_positions
    assert ds.meta_keys == ["magnification", "photo"]
    assert ds.attrs["params"] == {"seed": 3} and ds.attrs["source"] == "unit test"
    assert "versions" in ds.attrs and "complete" not in ds.attrs
    assert len(ds) == N
    np.testing.assert_array_equal(ds.rows, np.arange(N))


def test_pixels_round_trip_exactly(multi_path, arrays):
    ds = ImageDataset(multi_path)
    x = ds.batch(slice(None))
    assert x.dtype == torch.float32 and x.shape == (N, 3, H, W)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    back = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(back, arrays["images"])
    # a hand-checked pixel: channel c of pixel (r, col) of image i is images[i, r, col, c] / 255
    assert float(x[4, 2, 5, 7]) == pytest.approx(arrays["images"][4, 5, 7, 2] / 255.0)


def test_multi_labels_and_positions(multi_path, arrays):
    ds = ImageDataset(multi_path)
    labels = ds.labels()
    assert labels.dtype == torch.float32 and labels.shape == (N, K)
    np.testing.assert_array_equal(labels.numpy(), arrays["multi"])
    pos = ds.positions().numpy()
    assert pos.shape == (N, K, 2)
    np.testing.assert_array_equal(np.isnan(pos), np.isnan(arrays["positions"]))
    np.testing.assert_array_equal(np.nan_to_num(pos), np.nan_to_num(arrays["positions"]))


def test_single_labels(single_path, arrays):
    ds = ImageDataset(single_path, split="test")
    assert ds.label_kind == "single"
    labels = ds.labels()
    assert labels.dtype == torch.int64
    np.testing.assert_array_equal(labels.numpy(), arrays["single"][SPLIT == 2])
    assert not ds.has_segmentation and not ds.has_positions and ds.meta_keys == []
    with pytest.raises(ValueError, match="has no segmentation masks"):
        ds.masks([0])
    with pytest.raises(ValueError, match="has no object positions"):
        ds.positions()
    sample = ds[1]
    assert sample.mask is None and sample.position is None
    assert int(sample.label) == int(arrays["single"][6])  # test rows are 3 and 6


def test_segmentation_to_masks(multi_path, arrays):
    ds = ImageDataset(multi_path)
    masks = ds.masks(slice(None))
    assert masks.dtype == torch.bool and masks.shape == (N, K, H, W)
    for k in range(K):
        np.testing.assert_array_equal(masks[:, k].numpy(), arrays["seg"] == k + 1)
    # background (0) and unlabelled (255) pixels belong to no class
    none = ~masks.any(dim=1).numpy()
    np.testing.assert_array_equal(none, (arrays["seg"] == 0) | (arrays["seg"] == 255))
    assert not masks[:, :, 0, 0].any()


@pytest.mark.parametrize("split, rows", [("train", [0, 2, 5, 7]), ("val", [1, 4, 8]), ("test", [3, 6])])
def test_split_selection(multi_path, arrays, split, rows):
    ds = ImageDataset(multi_path, split=split)
    assert ds.split == split
    np.testing.assert_array_equal(ds.rows, rows)
    assert len(ds) == len(rows)
    np.testing.assert_array_equal(ds.labels().numpy(), arrays["multi"][rows])
    np.testing.assert_array_equal(ds.meta("photo"), np.array(rows) * 10)
    np.testing.assert_allclose(ds.meta("magnification"), arrays["meta"]["magnification"][rows])
    np.testing.assert_array_equal(np.nan_to_num(ds.positions().numpy()), np.nan_to_num(arrays["positions"][rows]))
    x = ds.batch(slice(None))
    np.testing.assert_allclose(x.numpy(), arrays["images"][rows].transpose(0, 3, 1, 2) / 255.0, atol=1e-7)


@pytest.mark.parametrize("positions", [[2, 0, 1], [3, 0], [1, 3, 2, 0], [2], [0, 1, 2, 3]])
def test_batch_and_masks_keep_the_order_asked_for(multi_path, arrays, positions):
    ds = ImageDataset(multi_path, split="train")  # rows 0, 2, 5, 7: non-contiguous in the file
    rows = ds.rows[positions]
    x = ds.batch(positions)
    assert x.shape == (len(positions), 3, H, W)
    np.testing.assert_allclose(x.numpy(), arrays["images"][rows].transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    m = ds.masks(np.array(positions))
    np.testing.assert_array_equal(m[:, 1].numpy(), arrays["seg"][rows] == 2)


def test_batch_contiguous_rows_unsorted(multi_path, arrays):
    ds = ImageDataset(multi_path)  # all rows: [4, 2, 3] is a contiguous block read in one slice, reordered
    x = ds.batch(np.array([4, 2, 3]))
    np.testing.assert_allclose(x.numpy(), arrays["images"][[4, 2, 3]].transpose(0, 3, 1, 2) / 255.0, atol=1e-7)


def test_getitem_sample(multi_path, arrays):
    ds = ImageDataset(multi_path, split="val")  # rows 1, 4, 8
    s = ds[2]
    assert s.index == 8
    np.testing.assert_allclose(s.image.numpy(), arrays["images"][8].transpose(2, 0, 1) / 255.0, atol=1e-7)
    np.testing.assert_array_equal(s.label.numpy(), arrays["multi"][8])
    assert s.mask.shape == (K, H, W)
    np.testing.assert_array_equal(s.mask[0].numpy(), arrays["seg"][8] == 1)
    np.testing.assert_array_equal(np.nan_to_num(s.position.numpy()), np.nan_to_num(arrays["positions"][8]))
    ds.close()


def test_pickle_drops_the_open_handle(multi_path, arrays):
    ds = ImageDataset(multi_path, split="test")
    ds.batch([0])  # opens the file lazily
    assert ds._file is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    np.testing.assert_array_equal(clone.rows, [3, 6])
    np.testing.assert_allclose(clone.batch([1]).numpy()[0], arrays["images"][6].transpose(2, 0, 1) / 255, atol=1e-7)
    ds.close()
    clone.close()


def test_unknown_and_empty_split(tmp_path, multi_path, arrays):
    with pytest.raises(ValueError, match=r"no split 'validation'; it has \['train', 'val', 'test'\]"):
        ImageDataset(multi_path, split="validation")
    path = tmp_path / "empty_split.h5"
    write_image_dataset(path, name="e", images=arrays["images"][:2], split=[0, 0], split_names=["train", "test"],
                        fingerprint="x", source="t")
    with pytest.raises(CacheError, match="split 'test' is empty"):
        ImageDataset(path, split="test")
    assert ImageDataset(path).labels() is None


def test_expect_mismatch(multi_path):
    assert ImageDataset(multi_path, expect={"fingerprint": "fp-multi"}).name == "toy"
    with pytest.raises(CacheError, match="recorded fingerprint='fp-multi' but 'other' was expected"):
        ImageDataset(multi_path, expect={"fingerprint": "other"})


def test_float_images_are_stored_as_uint8(tmp_path):
    img = np.zeros((2, 4, 4, 3), np.float32)
    img[0, 0, 0] = [1.0, 0.5, 0.2]
    path = tmp_path / "f.h5"
    write_image_dataset(path, name="f", images=img, split=[0, 0], split_names=["train"], fingerprint="x", source="t")
    x = ImageDataset(path).batch([0])
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), np.array([255, 128, 51]) / 255.0, atol=1e-7)  # round(127.5)=128
    assert float(x[0, :, 1:, :].abs().max()) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"label_kind": "several"}, "label_kind must be one of"),
    ({"split": np.zeros(3)}, r"split: expected shape \(4,\), got \(3,\)"),
    ({"split": np.array([0, 1, 2, 0])}, "code 2 but only 2 split names"),
    ({"labels": np.zeros(3)}, "3 labels for 4 images"),
    ({"segmentation": np.zeros((4, 5, 6))}, r"segmentation: shape \(4, 5, 6\) does not match images \(4, 6, 6\)"),
    ({"meta": {"photo": np.arange(5)}}, "meta/photo: 5 values for 4 images"),
])
def test_write_rejects_inconsistent_arrays_and_leaves_no_file(tmp_path, kwargs, match):
    args = dict(name="bad", images=np.zeros((4, 6, 6, 3), np.uint8), split=np.zeros(4), split_names=["train", "test"],
                fingerprint="x", source="t")
    args.update(kwargs)
    path = tmp_path / "bad.h5"
    with pytest.raises(ValueError, match=match):
        write_image_dataset(path, **args)
    assert list(tmp_path.iterdir()) == []


# -- check_images ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 8, 8), (4, 8, 8, 4), (8, 8, 3), (4, 8, 8, 1)])
def test_check_images_wrong_shape(shape):
    with pytest.raises(ValueError) as info:
        check_images(np.zeros(shape, np.uint8), where="ds.images")
    assert str(info.value).startswith("ds.images: expected RGB images shaped (N, H, W, 3)")
    assert str(shape) in str(info.value)


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int64, bool])
def test_check_images_wrong_dtype(dtype):
    with pytest.raises(ValueError, match=f"must be uint8 or float in \\[0, 1\\], got dtype {np.dtype(dtype)}"):
        check_images(np.zeros((2, 4, 4, 3), dtype))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_images_non_finite(bad):
    img = np.full((2, 4, 4, 3), 0.5, np.float32)
    img[1, 2, 3, 0] = bad
    with pytest.raises(ValueError, match="images contain NaN or infinite values"):
        check_images(img)


def test_check_images_out_of_range_and_empty():
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\], got \[0.0, 2.0\]"):
        check_images(np.array([0.0, 2.0] * 6, np.float64).reshape(1, 2, 2, 3))
    with pytest.raises(ValueError, match=r"x: the dataset is empty \(0 images\)"):
        check_images(np.zeros((0, 8, 8, 3), np.uint8), where="x")


def test_check_images_passes_good_arrays_through():
    img = np.arange(2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 3)
    out = check_images(img)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)
    out = check_images(np.full((1, 2, 2, 3), 0.25, np.float64))
    assert out.dtype == np.uint8 and (out == 64).all()  # round(63.75)


def test_fingerprint_is_stable_and_order_insensitive():
    a = fingerprint({"n": 3, "classes": ["a", "b"]})
    assert a == fingerprint({"classes": ["a", "b"], "n": 3})
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != fingerprint({"n": 4, "classes": ["a", "b"]})
    assert a != fingerprint({"n": 3, "classes": ["b", "a"]})
