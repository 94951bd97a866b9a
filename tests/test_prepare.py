"""Raw dataset layouts -> HDF5 dataset files, end to end: tiny archives in the real layouts are served on
loopback, fetched with :func:`fetch_source`, converted with :func:`prepare` and read back."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from percept.data.download import fetch_source
from percept.data.bapps import JNDData, TwoAFCData
from percept.data.prepare import BREAKHIS_SUBTYPES, VOC_CLASSES, patient_split, prepare
from percept.data.store import ImageDataset
from percept.h5io import CacheError

from conftest import make_tar


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png(arr: np.ndarray) -> bytes:
    return encode(Image.fromarray(arr), "PNG")


def npy(value) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(value, np.float32))
    return buf.getvalue()


def fetch(server, tmp_path: Path, source: str, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (server.root / name).write_bytes(data)
    checksums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    return fetch_source(source, tmp_path / "raw" / source, mirror=server.url, checksums=checksums, progress=False)


def as_uint8(t) -> np.ndarray:
    """(B, 3, H, W) floats in [0, 1] -> (B, H, W, 3) uint8."""
    return np.round(t.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)


RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------------- STL-10

def test_stl10_end_to_end(server, tmp_path):
    train = RNG.integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    test = RNG.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    train[0, 0, :, :] = (255, 0, 0)  # first row of the first image red: catches a swapped H/W
    y_train, y_test = np.array([1, 5, 10, 3], np.uint8), np.array([10, 1], np.uint8)

    def binary(x):  # the STL-10 layout: per image, per channel, column-major
        return np.ascontiguousarray(x.transpose(0, 3, 2, 1)).tobytes()

    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    tar = make_tar({"stl10_binary/train_X.bin": binary(train), "stl10_binary/train_y.bin": y_train.tobytes(),
                    "stl10_binary/test_X.bin": binary(test), "stl10_binary/test_y.bin": y_test.tobytes(),
                    "stl10_binary/class_names.txt": ("\n".join(names) + "\n").encode()})
    raw = fetch(server, tmp_path, "stl10", {"stl10_binary.tar.gz": tar})
    out = prepare("stl10", raw, tmp_path / "stl10.h5")

    ds = ImageDataset(out, split="train")
    assert ds.class_names == names and ds.label_kind == "single" and ds.split_names == ["train", "test"]
    assert ds.image_shape == (96, 96, 3) and len(ds) == 4
    got = as_uint8(ds.batch(np.arange(4)))
    np.testing.assert_array_equal(got, train)
    assert (got[0, 0] == (255, 0, 0)).all()
    assert ds.labels().tolist() == [0, 4, 9, 2]
    te = ImageDataset(out, split="test")
    np.testing.assert_array_equal(as_uint8(te.batch([0, 1])), test)
    assert te.labels().tolist() == [9, 0]

    small = prepare("stl10", raw, tmp_path / "stl10_48.h5", image_size=48, max_images=3)
    ds48 = ImageDataset(small)
    assert ds48.image_shape == (48, 48, 3) and len(ds48) == 5
    want = np.asarray(Image.fromarray(train[1]).resize((48, 48), Image.BILINEAR))
    np.testing.assert_array_equal(as_uint8(ds48.batch([1]))[0], want)
    assert ds48.fingerprint != ds.fingerprint


# ------------------------------------------------------------------------------------------------------ SVHN

def test_svhn_end_to_end_with_wrap_padding(server, tmp_path):
    from scipy.io import savemat

    x_train = RNG.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    x_test = RNG.integers(0, 256, (32, 32, 3, 2), dtype=np.uint8)
    files = {}
    x_extra = RNG.integers(0, 256, (32, 32, 3, 3), dtype=np.uint8)
    for name, x, y in (("train_32x32.mat", x_train, [1, 10, 3, 10, 9]), ("test_32x32.mat", x_test, [10, 7]),
                       ("extra_32x32.mat", x_extra, [4, 10, 2])):
        buf = io.BytesIO()
        savemat(buf, {"X": x, "y": np.array(y, np.uint8).reshape(-1, 1)})
        files[name] = buf.getvalue()
    raw = fetch(server, tmp_path, "svhn", files)

    ds = ImageDataset(prepare("svhn", raw, tmp_path / "svhn.h5"), split="train")
    np.testing.assert_array_equal(as_uint8(ds.batch(np.arange(5))), x_train.transpose(3, 0, 1, 2))
    assert ds.labels().tolist() == [1, 0, 3, 0, 9] and ds.class_names == [str(d) for d in range(10)]

    extra = ImageDataset(prepare("svhn", raw, tmp_path / "svhn_extra.h5", extra=True), split="extra")
    np.testing.assert_array_equal(as_uint8(extra.batch(np.arange(3))), x_extra.transpose(3, 0, 1, 2))
    assert extra.labels().tolist() == [4, 0, 2]

    padded = ImageDataset(prepare("svhn", raw, tmp_path / "svhn64.h5", wrap_pad_to=64), split="test")
    assert padded.image_shape == (64, 64, 3) and padded.labels().tolist() == [0, 7]
    got = as_uint8(padded.batch([0, 1]))
    orig = x_test.transpose(3, 0, 1, 2)
    np.testing.assert_array_equal(got[:, 16:48, 16:48], orig)
    np.testing.assert_array_equal(got[:, :16, 16:48], orig[:, 16:])  # wrapped around from the bottom
    np.testing.assert_array_equal(got[:, 16:48, 48:], orig[:, :, :16])  # and from the left edge


# -------------------------------------------------------------------------------------------------- VOC 2007

VOC_OBJECTS = {  # id: (colour, [(class, difficult, (xmin, ymin, xmax, ymax))])
    "000005": ((200, 30, 60), [("dog", 0, (5, 4, 20, 25)), ("person", 0, (1, 1, 40, 30))]),
    "000007": ((10, 220, 40), [("car", 0, (10, 10, 30, 20))]),
    "000009": ((90, 90, 250), [("tvmonitor", 1, (2, 3, 10, 12)), ("dog", 0, (1, 1, 4, 4)),
                               ("dog", 0, (21, 1, 40, 30))]),
}


def voc_xml(image_id: str, objects) -> bytes:
    objs = "".join(f"<object><name>{c}</name><pose>Left</pose><truncated>0</truncated><difficult>{d}</difficult>"
                   f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox>"
                   "</object>" for c, d, b in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename><size><width>40</width>"
            f"<height>30</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>").encode()


def test_voc2007_end_to_end(server, tmp_path):
    base = "VOCdevkit/VOC2007/"
    seg = np.zeros((30, 40), np.uint8)
    seg[:, 20:] = VOC_CLASSES.index("dog") + 1
    seg[0, :] = 255
    seg_img = Image.fromarray(seg)
    seg_img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    assert seg_img.mode == "P"

    def members(ids):
        m = {}
        for i in ids:
            colour, objects = VOC_OBJECTS[i]
            m[f"{base}JPEGImages/{i}.jpg"] = encode(Image.new("RGB", (40, 30), colour), "JPEG", quality=95)
            m[f"{base}Annotations/{i}.xml"] = voc_xml(i, objects)
        return m

    trainval = {**members(["000005", "000007"]), f"{base}ImageSets/Main/trainval.txt": b"000005\n000007\n",
                f"{base}ImageSets/Main/dog_trainval.txt": b"000005  1\n000007 -1\n",
                f"{base}ImageSets/Segmentation/trainval.txt": b"000005\n",
                f"{base}SegmentationClass/000005.png": encode(seg_img, "PNG")}
    test = {**members(["000009"]), f"{base}ImageSets/Main/test.txt": b"000009\n"}
    raw = fetch(server, tmp_path, "voc2007", {"VOCtrainval_06-Nov-2007.tar": make_tar(trainval, mode="w"),
                                              "VOCtest_06-Nov-2007.tar": make_tar(test, mode="w")})
    out = prepare("voc2007", raw, tmp_path / "voc.h5", image_size=32)

    ds = ImageDataset(out)
    assert ds.split_names == ["trainval", "test"] and ds.label_kind == "multi"
    assert ds.class_names == list(VOC_CLASSES) and ds.image_shape == (32, 32, 3)
    assert len(ImageDataset(out, "trainval")) == 2 and len(ImageDataset(out, "test")) == 1
    labels = ds.labels().numpy()
    present = [sorted(VOC_CLASSES[k] for k in np.flatnonzero(row)) for row in labels]
    assert present == [["dog", "person"], ["car"], ["dog", "tvmonitor"]]  # difficult objects count
    images = as_uint8(ds.batch([0, 1, 2])).astype(int)
    for img, image_id in zip(images, ["000005", "000007", "000009"]):
        assert np.abs(img - np.array(VOC_OBJECTS[image_id][0])).max() <= 4
    assert ds.meta("has_segmentation").tolist() == [True, False, False]
    assert ds.meta("image_id").tolist() == [5, 7, 9]
    masks = ds.masks([0, 1])
    dog = VOC_CLASSES.index("dog")
    assert masks[0, dog, 1:, 16:].all() and not masks[0, dog, :, :16].any() and not masks[0, dog, 0].any()
    assert masks[0].sum() == masks[0, dog].sum()
    assert not masks[1].any()  # no mask: everything 255 (unlabelled)
    np.testing.assert_allclose(ds.positions()[2, dog].numpy(), [0.75, 0.5])
    assert np.isnan(ds.positions()[1, dog].numpy()).all()

    capped = ImageDataset(prepare("voc2007", raw, tmp_path / "voc1.h5", image_size=16, max_images=1))
    assert len(capped) == 2 and capped.meta("image_id").tolist() == [5, 9]


# -------------------------------------------------------------------------------------------------- BreakHis

BREAKHIS_SLIDES = [("benign", "adenosis", "SOB_B_A_14-22549AB", "B_A"),
                   ("benign", "fibroadenoma", "SOB_B_F_14-9133", "B_F"),
                   ("malignant", "ductal_carcinoma", "SOB_M_DC_14-2523", "M_DC"),
                   ("malignant", "lobular_carcinoma", "SOB_M_LC_14-12204", "M_LC")]


def test_breakhis_end_to_end_with_patient_split(server, tmp_path):
    members, expected = {}, {}
    for cls, subtype, slide, code in BREAKHIS_SLIDES:
        patient = slide.rsplit("_", 1)[-1]
        for mag in (40, 100, 200, 400):
            for region in (1, 2) if mag == 40 else (1,):
                arr = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                name = f"SOB_{code}-{patient}-{mag}-{region:03d}.png"  # e.g. SOB_B_A-14-22549AB-40-001.png
                path = f"BreaKHis_v1/histology_slides/breast/{cls}/SOB/{subtype}/{slide}/{mag}X/{name}"
                members[path] = png(arr)
                expected[(patient, mag, region)] = (arr, cls, subtype)
    raw = fetch(server, tmp_path, "breakhis", {"BreaKHis_v1.tar.gz": make_tar(members)})
    out = prepare("breakhis", raw, tmp_path / "breakhis.h5", image_size=32, test_fraction=0.5, seed=3)

    ds = ImageDataset(out)
    assert len(ds) == len(expected) == 20 and ds.class_names == ["benign", "malignant"]
    patients = ds.attrs["patient_names"]
    assert sorted(patients) == sorted(s.rsplit("_", 1)[-1] for _, _, s, _ in BREAKHIS_SLIDES)
    assert ds.attrs["subtype_names"] == list(BREAKHIS_SUBTYPES)
    images = as_uint8(ds.batch(np.arange(len(ds))))
    labels = ds.labels().numpy()
    for i in range(len(ds)):
        key = (patients[ds.meta("patient")[i]], int(ds.meta("magnification")[i]), int(ds.meta("sequence")[i]))
        arr, cls, subtype = expected[key]
        np.testing.assert_array_equal(images[i], arr)
        assert labels[i] == ["benign", "malignant"].index(cls)
        assert BREAKHIS_SUBTYPES[ds.meta("subtype")[i]] == subtype
    assert sorted(set(ds.meta("magnification").tolist())) == [40, 100, 200, 400]

    train, test = ImageDataset(out, "train"), ImageDataset(out, "test")
    train_patients, test_patients = set(train.meta("patient").tolist()), set(test.meta("patient").tolist())
    assert train_patients and test_patients and not train_patients & test_patients  # no leakage
    assert sorted(train.labels().unique().tolist()) == [0, 1] == sorted(test.labels().unique().tolist())  # stratified
    assert len(train) + len(test) == len(ds)

    only40 = ImageDataset(prepare("breakhis", raw, tmp_path / "b40.h5", image_size=16, magnifications=[40]))
    assert len(only40) == 8 and set(only40.meta("magnification").tolist()) == {40}


def test_patient_split_keeps_patients_whole_and_is_seeded():
    patients = np.repeat(np.arange(10), 3)
    strata = (patients >= 5).astype(int)
    a = patient_split(patients, 0.4, seed=7, strata=strata)
    np.testing.assert_array_equal(a, patient_split(patients, 0.4, seed=7, strata=strata))
    for p in range(10):
        assert len(set(a[patients == p].tolist())) == 1
    assert a.reshape(10, 3)[:5, 0].sum() == 2 and a.reshape(10, 3)[5:, 0].sum() == 2
    splits = {tuple(patient_split(patients, 0.4, seed=s)) for s in range(10)}
    assert len(splits) > 1
    names = np.array(["p1", "p2", "p1", "p3"])
    codes = patient_split(names, 0.3, seed=0)
    assert codes[0] == codes[2] and codes.sum() >= 1 and codes.min() == 0
    with pytest.raises(ValueError):
        patient_split(patients, 1.0)


# ----------------------------------------------------------------------------------------------------- BAPPS

def test_bapps_2afc_end_to_end(server, tmp_path):
    members, expected = {}, []
    for category, n in (("cnn", 1), ("traditional", 2)):  # sorted category order
        for k in range(n):
            stem = f"{k:06d}"
            patches = [RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
            judge = [0.25, 0.5, 1.0][len(expected)]
            for sub, arr in zip(("ref", "p0", "p1"), patches):
                members[f"val/{category}/{sub}/{stem}.png"] = png(arr)
            members[f"val/{category}/judge/{stem}.npy"] = npy([judge])
            expected.append((category, *patches, judge))
    raw = fetch(server, tmp_path, "bapps_2afc_val", {"twoafc_val.tar.gz": make_tar(members)})
    out = prepare("bapps_2afc_val", raw, tmp_path / "2afc_val.h5")

    data = TwoAFCData(out)
    assert len(data) == 3 and data.categories == ["cnn", "traditional"]
    t = data.tensors()
    assert t["ref"].shape == (3, 3, 64, 64) and t["ref"].dtype.is_floating_point
    for key, idx in (("ref", 1), ("p0", 2), ("p1", 3)):
        np.testing.assert_array_equal(as_uint8(t[key]), np.stack([e[idx] for e in expected]))
    np.testing.assert_allclose(data.judge.numpy(), [0.25, 0.5, 1.0])
    assert data.category.tolist() == [0, 1, 1]
    ref, p0, p1 = data.batch([2, 0, 2])  # any order, repeats allowed
    np.testing.assert_array_equal(as_uint8(p1), np.stack([expected[2][3], expected[0][3], expected[2][3]]))
    assert len(TwoAFCData(out, category="traditional")) == 2

    ds = ImageDataset(out)  # the same file through the generic reader: images are the references
    assert ds.split_names == ["val"] and ds.label_kind == "none" and ds.attrs["categories"] == ["cnn", "traditional"]
    np.testing.assert_array_equal(as_uint8(ds.batch([0, 1, 2])), np.stack([e[1] for e in expected]))
    np.testing.assert_allclose(ds.meta("judge"), [0.25, 0.5, 1.0])
    with pytest.raises(CacheError):
        JNDData(out)

    small = TwoAFCData(prepare("bapps_2afc", raw, tmp_path / "2afc32.h5", split="val", image_size=32))
    assert small.image_shape == (32, 32, 3) and small.name == "bapps_2afc_val"


def test_bapps_jnd_end_to_end(server, tmp_path):
    members, expected = {}, []
    for category in ("cnn", "traditional"):
        for k in range(2):
            pair = [RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
            same = 0.1 * (len(expected) + 1)
            members[f"jnd/val/{category}/p0/{k:06d}.png"] = png(pair[0])
            members[f"jnd/val/{category}/p1/{k:06d}.png"] = png(pair[1])
            members[f"jnd/val/{category}/same/{k:06d}.npy"] = npy([same])
            expected.append((*pair, same))
    raw = fetch(server, tmp_path, "bapps_jnd", {"jnd.tar.gz": make_tar(members)})
    out = prepare("bapps_jnd", raw, tmp_path / "jnd.h5")

    data = JNDData(out)
    t = data.tensors()
    np.testing.assert_array_equal(as_uint8(t["p0"]), np.stack([e[0] for e in expected]))
    np.testing.assert_array_equal(as_uint8(t["p1"]), np.stack([e[1] for e in expected]))
    np.testing.assert_allclose(data.same.numpy(), [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    assert data.categories == ["cnn", "traditional"] and data.category.tolist() == [0, 0, 1, 1]
    p0, p1, same = data[3]
    np.testing.assert_array_equal(as_uint8(p1[None])[0], expected[3][1])
    ds = ImageDataset(out)
    np.testing.assert_array_equal(as_uint8(ds.batch([0, 1, 2, 3])), np.stack([e[0] for e in expected]))
    np.testing.assert_allclose(ds.meta("same"), [0.1, 0.2, 0.3, 0.4], rtol=1e-6)


# ---------------------------------------------------------------------------------------- ImageNet (local)

def crop_like_prepare(img: Image.Image, resize: int, size: int) -> np.ndarray:
    w, h = img.size
    nw, nh = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = round((nw - size) / 2), round((nh - size) / 2)
    return np.asarray(img.crop((left, top, left + size, top + size)))


def test_imagenet_flat_folder_with_labels(tmp_path):
    folder = tmp_path / "ILSVRC2012_val"
    folder.mkdir()
    imgs = {}
    for k, (w, h) in enumerate([(40, 30), (30, 50), (25, 25)]):
        arr = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
        arr[:, : w // 8] = (255, 0, 0)  # a red left border that the centre crop must remove
        name = f"ILSVRC2012_val_{k + 1:08d}.png"
        (folder / name).write_bytes(png(arr))
        imgs[name] = arr
    (folder / "labels.txt").write_text("3\n0\n1\n")
    out = prepare("imagenet_val", folder, tmp_path / "inet.h5", image_size=16, resize=20)
    ds = ImageDataset(out)
    assert ds.split_names == ["val"] and ds.labels().tolist() == [3, 0, 1] and ds.image_shape == (16, 16, 3)
    got = as_uint8(ds.batch([0, 1, 2]))
    for g, arr in zip(got, imgs.values()):
        np.testing.assert_array_equal(g, crop_like_prepare(Image.fromarray(arr), 20, 16))
    assert not (got[0][:, 0] == (255, 0, 0)).all()

    capped = ImageDataset(prepare("imagenet_folder", folder, tmp_path / "inet1.h5", image_size=8, resize=8,
                                  max_images=2))
    assert len(capped) == 2 and capped.labels().tolist() == [3, 0]


def test_imagenet_class_folders(tmp_path):
    folder = tmp_path / "val"
    colours = {"n01440764": (250, 0, 0), "n01443537": (0, 250, 0)}
    for k, (wnid, colour) in enumerate(colours.items()):
        (folder / wnid).mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (20, 24), colour).save(folder / wnid / f"ILSVRC2012_val_{2 * j + k + 1:08d}.JPEG",
                                                    "JPEG", quality=95)
    ds = ImageDataset(prepare("imagenet_val", folder, tmp_path / "inet.h5", image_size=16, resize=16))
    assert ds.class_names == list(colours) and ds.labels().tolist() == [0, 1, 0, 1]  # ordered by file name
    got = as_uint8(ds.batch(np.arange(4))).astype(int)
    for g, label in zip(got, [0, 1, 0, 1]):
        assert np.abs(g - np.array(list(colours.values())[label])).max() <= 4


def test_imagenet_folder_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenet_val"):
        prepare("imagenet_val", tmp_path / "nowhere", tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


# -------------------------------------------------------------------------------------------------- dispatch

def test_prepare_rejects_unknown_names_options_and_layouts(tmp_path):
    with pytest.raises(KeyError, match="stl10"):
        prepare("mnist", tmp_path, tmp_path / "x.h5")
    with pytest.raises(TypeError, match="image_size"):
        prepare("stl10", tmp_path, tmp_path / "x.h5", imagesize=32)
    with pytest.raises(FileNotFoundError, match="STL-10"):
        prepare("stl10", tmp_path, tmp_path / "x.h5")
    with pytest.raises(FileNotFoundError, match="2AFC"):
        prepare("bapps_2afc_train", tmp_path, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


# ------------------------------------------------------------------------------------------ snakemake scripts


# ------------------------------------------------------------------------------------ unpaired (CycleGAN layout)

def test_horse2zebra_end_to_end(server, tmp_path):
    import zipfile

    members = {}
    for part, n in (("trainA", 3), ("trainB", 2), ("testA", 1), ("testB", 2)):
        for k in range(n):
            members[f"horse2zebra/{part}/{part}_{k}.jpg"] = encode(
                Image.fromarray(RNG.integers(0, 256, (24, 30, 3), dtype=np.uint8)), "JPEG")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    raw = fetch(server, tmp_path, "horse2zebra", {"horse2zebra.zip": buf.getvalue()})
    ds = ImageDataset(prepare("horse2zebra", raw, tmp_path / "h2z.h5", image_size=16))
    assert ds.class_names == ["A", "B"] and ds.image_shape == (16, 16, 3)
    train, test = ImageDataset(ds.path, split="train"), ImageDataset(ds.path, split="test")
    assert train.labels().tolist() == [0, 0, 0, 1, 1] and test.labels().tolist() == [0, 1, 1]
    capped = ImageDataset(prepare("unpaired_folder", raw / "horse2zebra", tmp_path / "u.h5", image_size=16,
                                  max_images=1), split="train")
    assert capped.labels().tolist() == [0, 1]
    (tmp_path / "flat").mkdir()
    with pytest.raises(FileNotFoundError, match="trainA"):
        prepare("unpaired_folder", tmp_path / "flat", tmp_path / "x.h5")
    with pytest.raises(FileNotFoundError, match="translation.folder.path"):
        prepare("unpaired_folder", tmp_path / "missing", tmp_path / "x.h5")


# ------------------------------------------------------------------------------------ Massachusetts Roads

def _roads_layout(root: Path, tiles: dict[str, int], side: int = 48) -> Path:
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "tests" / "paper_mini"))
    import make_archives

    make_archives.build_massachusetts_roads(root, tiles, side=side)
    return root


def test_prepare_massachusetts_roads_resizes_tiles_or_crops_training_tiles(tmp_path):
    from percept.data.prepare import prepare_massachusetts_roads

    raw = _roads_layout(tmp_path / "raw", {"train": 2, "valid": 1, "test": 2})
    ds = ImageDataset(prepare("massachusetts_roads", raw, tmp_path / "a.h5", image_size=24))
    assert ds.split_names == ["train", "valid", "test"] and len(ds) == 5 and ds.class_names == ["road"]
    assert tuple(ds.batch([0]).shape) == (1, 3, 24, 24)
    masks = ds.masks(slice(0, 5))
    assert masks.shape == (5, 1, 24, 24) and 0.1 < masks.float().mean() < 0.6  # two 7-px roads of 48 px, resized
    sat = np.asarray(Image.open(sorted((raw / "mass_roads" / "test" / "sat").glob("*.tiff"))[0]))
    road = np.asarray(Image.open(sorted((raw / "mass_roads" / "test" / "map").glob("*.tif"))[0])) > 127
    test = ImageDataset(tmp_path / "a.h5", split="test")
    assert abs(test.masks([0]).float().mean().item() - road.mean()) < 0.08
    crops = prepare_massachusetts_roads(raw, tmp_path / "b.h5", image_size=16, train_crops=3, seed=1)
    train = ImageDataset(crops, split="train")
    assert len(train) == 6 and len(ImageDataset(crops, split="test")) == 2
    # A crop at full resolution: its pixels are somewhere in its tile (no resampling), the map's too.
    tile = np.asarray(Image.open(sorted((raw / "mass_roads" / "train" / "sat").glob("*.tiff"))[0]))
    crop = (train.batch([0])[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    hits = [(y, x) for y in range(48 - 15) for x in range(48 - 15) if np.array_equal(tile[y:y + 16, x:x + 16], crop)]
    assert hits
    again = ImageDataset(prepare_massachusetts_roads(raw, tmp_path / "c.h5", image_size=16, train_crops=3, seed=1))
    other = ImageDataset(prepare_massachusetts_roads(raw, tmp_path / "d.h5", image_size=16, train_crops=3, seed=2))
    assert torch.equal(again.batch(slice(0, 6)), ImageDataset(crops).batch(slice(0, 6)))
    assert not torch.equal(other.batch(slice(0, 6)), again.batch(slice(0, 6)))
    assert sat.shape == (48, 48, 3)


def test_prepare_massachusetts_roads_refuses_unpaired_or_mismatched_tiles(tmp_path):
    raw = _roads_layout(tmp_path / "raw", {"train": 2, "valid": 1, "test": 1})
    maps = sorted((raw / "mass_roads" / "train" / "map").glob("*.tif"))
    maps[0].rename(maps[0].with_name("other.tif"))
    with pytest.raises(ValueError, match="not both"):
        prepare("massachusetts_roads", raw, tmp_path / "a.h5", image_size=16)
    maps[0].with_name("other.tif").rename(maps[0])
    Image.new("L", (40, 48)).save(maps[0], format="TIFF")
    with pytest.raises(ValueError, match="road map"):
        prepare("massachusetts_roads", raw, tmp_path / "a.h5", image_size=16)
    maps[0].write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="cannot read"):
        prepare("massachusetts_roads", raw, tmp_path / "a.h5", image_size=16)
    assert not (tmp_path / "a.h5").exists()


def test_sr_benchmarks_download_and_prepare_as_set5_set14_bsd100(server, tmp_path):
    import sys

    from conftest import REPO
    from percept.data.sources import get_source

    sys.path.insert(0, str(REPO / "tests" / "paper_mini"))
    import make_archives

    sums = make_archives.build(server.root, ["sr_benchmarks"])
    assert len(sums) == 20 and "Set14/img_014_SRF_2_HR.png" in sums
    # The registry pins SelfExSR's files: the miniature's stand-ins fail that check unless their sha256 is given.
    with pytest.raises(Exception, match="Checksum mismatch"):
        fetch_source("sr_benchmarks", tmp_path / "raw" / "x", mirror=server.url, progress=False)
    raw = fetch_source("sr_benchmarks", tmp_path / "raw" / "sr_benchmarks", mirror=server.url, checksums=sums,
                       progress=False)
    ds = ImageDataset(prepare("sr_benchmarks", raw, tmp_path / "sr.h5", image_size=48))
    assert ds.split_names == ["set5", "set14", "bsd100"] and len(ds) == 5 + 14 + 4
    assert [len(ImageDataset(tmp_path / "sr.h5", split=s)) for s in ds.split_names] == [5, 14, 4]
    assert tuple(ds.batch([0]).shape) == (1, 3, 48, 48)
    # Resize(shorter side) + CenterCrop, as the grid paper's img_transform: the first Set5 image by hand.
    img = Image.open(raw / "Set5" / "img_001_SRF_2_HR.png").convert("RGB")
    w, h = img.size
    nw, nh = (48, int(48 * h / w)) if w <= h else (int(48 * w / h), 48)
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - 48) / 2.0)), int(round((nh - 48) / 2.0))
    want = np.asarray(img.crop((left, top, left + 48, top + 48)), np.float32) / 255
    np.testing.assert_allclose(ds.batch([0])[0].permute(1, 2, 0).numpy(), want, atol=1e-6)
    src = get_source("sr_benchmarks")
    assert src.files[0].url == ("https://raw.githubusercontent.com/jbhuang0604/SelfExSR/master/data/Set5/image_SRF_2/"
                                "img_001_SRF_2_HR.png")
    assert src.files[0].sha256 == "b7f0633258c4dc1a1ef57f26ef2e2db414b64c170cb7c618730cb2f2aae3c7ed"
    assert src.files[-1].url == "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz"
