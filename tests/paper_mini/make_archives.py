"""Miniature archives of the paper config's downloads, in the publishers' real layouts and file names.

One function per source (``build_<source>``), registered in :data:`BUILDERS` under the source's name in
:mod:`percept.data.sources`; each writes the source's files into a folder and returns nothing. Adding a
source to the registry (Massachusetts Roads, Set5/Set14/BSD100, …) means adding one function here that
writes that publisher's layout with a handful of images. Everything is seeded and tiny; nothing is committed.

    python tests/paper_mini/make_archives.py OUT_DIR [source ...]     # prints {file name: sha256}
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

# ---------------------------------------------------------------------------------------------- helpers


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little"))


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour image with a bright blob (something for the networks to respond to)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(0, 255, 3)
    grad = rng.uniform(-80, 80, (2, 3))
    img = base + yy[..., None] * grad[0] + xx[..., None] * grad[1]
    cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
    blob = ((yy - cy * h / max(h, w)) ** 2 + (xx - cx * w / max(h, w)) ** 2) < r ** 2
    img[blob] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes], mode: str) -> None:
    """A tar archive with directory entries (as publishers' tars have), members in the given order; byte for
    byte the same on every build (fixed times, a gzip header without a time stamp), so that a rebuild does not
    change the pinned checksums and with them every download job's parameters."""
    dirs: list[str] = []
    for name in members:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.append(d)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_200_000_000
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_200_000_000
            tar.addfile(info, io.BytesIO(data))
    if mode == "w:gz":
        with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
            gz.write(raw.getvalue())
    elif mode == "w":
        path.write_bytes(raw.getvalue())
    else:
        raise ValueError(f"unsupported tar mode {mode!r}")


# ---------------------------------------------------------------------------------------------- sources

def build_stl10(out: Path) -> None:
    """stl10_binary.tar.gz: stl10_binary/{train,test}_{X,y}.bin, unlabeled_X.bin (images channel-major and
    column-major, labels 1..10), class_names.txt, fold_indices.txt."""
    rng = _rng("stl10")
    counts = {"train": 10, "test": 10, "unlabeled": 6}
    members: dict[str, bytes] = {}
    classes = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    for part, n in counts.items():
        x = np.stack([_image(rng, 96, 96) for _ in range(n)])  # (N, H, W, 3)
        members[f"stl10_binary/{part}_X.bin"] = x.transpose(0, 3, 2, 1).tobytes()  # (N, 3, W, H)
        if part != "unlabeled":
            members[f"stl10_binary/{part}_y.bin"] = (np.arange(n) % 10 + 1).astype(np.uint8).tobytes()
    members["stl10_binary/class_names.txt"] = ("\n".join(classes) + "\n").encode()
    members["stl10_binary/fold_indices.txt"] = "".join(
        " ".join(str(i) for i in range(k, counts["train"], 10)) + " \n" for k in range(10)).encode()
    _tar(out / "stl10_binary.tar.gz", members, "w:gz")


def build_svhn(out: Path) -> None:
    """train_32x32.mat, test_32x32.mat, extra_32x32.mat: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0."""
    from scipy.io import savemat

    rng = _rng("svhn")
    for part, n in (("train", 10), ("test", 10), ("extra", 6)):
        x = np.stack([_image(rng, 32, 32) for _ in range(n)], axis=-1)  # (32, 32, 3, N)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(-1, 1)  # 1..10, 10 = "0"
        buf = io.BytesIO()
        savemat(buf, {"X": x, "y": y}, do_compression=False)
        data = bytearray(buf.getvalue())
        # The 116-byte text header carries the creation time: a fixed one keeps the file's sha256 stable.
        data[:116] = b"MATLAB 5.0 MAT-file, Platform: posix, Created on: Thu Jan  1 00:00:00 1970".ljust(116)
        (out / f"{part}_32x32.mat").write_bytes(bytes(data))


_BAPPS_2AFC_CATEGORIES = {"train": ("cnn", "mix", "traditional"),
                          "val": ("cnn", "color", "deblur", "frameinterp", "superres", "traditional")}


def _bapps_2afc(out: Path, split: str, per_category: int) -> None:
    rng = _rng(f"bapps_2afc_{split}")
    members: dict[str, bytes] = {}
    for cat in _BAPPS_2AFC_CATEGORIES[split]:
        for i in range(per_category):
            stem = f"{i:06d}"
            ref = _image(rng, 64, 64)
            for sub, strength in (("ref", 0), ("p0", 20), ("p1", 45)):
                noisy = np.clip(ref + rng.normal(0, strength + 1e-3, ref.shape), 0, 255).astype(np.uint8)
                members[f"dataset/2afc/{split}/{cat}/{sub}/{stem}.png"] = _encode(ref if sub == "ref" else noisy, "PNG")
            judge = np.array([rng.uniform(0, 1)], np.float32).reshape(1, 1, 1)  # as the release: shape (1,1,1)
            buf = io.BytesIO()
            np.save(buf, judge)
            members[f"dataset/2afc/{split}/{cat}/judge/{stem}.npy"] = buf.getvalue()
    _tar(out / f"twoafc_{split}.tar.gz", members, "w:gz")


def build_bapps_2afc_train(out: Path) -> None:
    """twoafc_train.tar.gz: dataset/2afc/train/{cnn,mix,traditional}/{ref,p0,p1}/NNNNNN.png + judge/NNNNNN.npy."""
    _bapps_2afc(out, "train", 3)


def build_bapps_2afc_val(out: Path) -> None:
    """twoafc_val.tar.gz: dataset/2afc/val/{cnn,color,deblur,frameinterp,superres,traditional}/…"""
    _bapps_2afc(out, "val", 2)


def build_bapps_jnd(out: Path) -> None:
    """jnd.tar.gz: dataset/jnd/val/{cnn,traditional}/{p0,p1}/NNNNNN.png + same/NNNNNN.npy."""
    rng = _rng("bapps_jnd")
    members: dict[str, bytes] = {}
    for cat in ("cnn", "traditional"):
        for i in range(3):
            stem = f"{i:06d}"
            p0 = _image(rng, 64, 64)
            p1 = np.clip(p0 + rng.normal(0, 10 * (i + 1), p0.shape), 0, 255).astype(np.uint8)
            members[f"dataset/jnd/val/{cat}/p0/{stem}.png"] = _encode(p0, "PNG")
            members[f"dataset/jnd/val/{cat}/p1/{stem}.png"] = _encode(p1, "PNG")
            buf = io.BytesIO()
            np.save(buf, np.array([rng.uniform(0, 1)], np.float32))
            members[f"dataset/jnd/val/{cat}/same/{stem}.npy"] = buf.getvalue()
    _tar(out / "jnd.tar.gz", members, "w:gz")


_VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
                "tvmonitor")


def _voc_xml(image_id: str, w: int, h: int, objects: list[tuple[str, tuple[int, int, int, int], int]],
             segmented: bool) -> bytes:
    objs = "".join(
        f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>{difficult}</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n"
        f"\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for name, (x0, y0, x1, y1), difficult in objects)
    return (f"<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{image_id}.jpg</filename>\n"
            f"\t<source>\n\t\t<database>The VOC2007 Database</database>\n\t\t<annotation>PASCAL VOC2007</annotation>\n"
            f"\t</source>\n\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n"
            f"\t</size>\n\t<segmented>{int(segmented)}</segmented>\n{objs}</annotation>\n").encode()


def build_voc2007(out: Path) -> None:
    """VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar (plain tars): VOCdevkit/VOC2007/{Annotations,
    JPEGImages, SegmentationClass, SegmentationObject, ImageSets/{Main,Segmentation}}; ids numbered as VOC's
    (trainval and test interleaved), every class present in trainval."""
    rng = _rng("voc2007")
    ids = {"trainval": [f"{i:06d}" for i in (5, 7, 9, 12, 16, 17, 19, 20, 21, 23)],
           "test": [f"{i:06d}" for i in (1, 2, 3, 4, 6, 8)]}
    root = "VOCdevkit/VOC2007"
    for part, names in ids.items():
        members: dict[str, bytes] = {}
        labels: dict[str, list[tuple[str, int]]] = {c: [] for c in _VOC_CLASSES}
        seg_ids = []
        for k, image_id in enumerate(names):
            w, h = int(rng.integers(80, 120)), int(rng.integers(60, 100))
            img = _image(rng, h, w)
            n_obj = 1 + k % 2
            classes = [_VOC_CLASSES[(2 * k + j + (0 if part == "trainval" else 7)) % 20] for j in range(n_obj)]
            objects = []
            mask = np.zeros((h, w), np.uint8)
            for j, cls in enumerate(classes):
                x0, y0 = int(rng.integers(1, w // 2)), int(rng.integers(1, h // 2))
                x1, y1 = int(rng.integers(x0 + 10, w)), int(rng.integers(y0 + 10, h))
                objects.append((cls, (x0, y0, x1, y1), int(j == 1 and k % 3 == 0)))
                img[y0 - 1:y1, x0 - 1:x1] = (img[y0 - 1:y1, x0 - 1:x1] * 0.5 + 100).astype(np.uint8)
                mask[y0 - 1:y1, x0 - 1:x1] = _VOC_CLASSES.index(cls) + 1
            segmented = k % 2 == 0
            members[f"{root}/Annotations/{image_id}.xml"] = _voc_xml(image_id, w, h, objects, segmented)
            members[f"{root}/JPEGImages/{image_id}.jpg"] = _encode(img, "JPEG", quality=90)
            if segmented:
                border = mask.copy()
                border[1:-1, 1:-1][(mask[1:-1, 1:-1] != mask[:-2, 1:-1])] = 255  # VOC's 'void' outlines
                seg = Image.fromarray(border, mode="P")
                palette = np.zeros((256, 3), np.uint8)
                palette[1:21] = rng.integers(0, 256, (20, 3))
                palette[255] = (224, 224, 192)
                seg.putpalette(palette.reshape(-1).tolist())
                buf = io.BytesIO()
                seg.save(buf, format="PNG")
                members[f"{root}/SegmentationClass/{image_id}.png"] = buf.getvalue()
                members[f"{root}/SegmentationObject/{image_id}.png"] = buf.getvalue()
                seg_ids.append(image_id)
            for c in _VOC_CLASSES:
                labels[c].append((image_id, 1 if c in classes else -1))
        sets = ("train", "val", "trainval") if part == "trainval" else ("test",)
        for s in sets:
            chosen = names if s in ("trainval", "test") else names[0::2] if s == "train" else names[1::2]
            members[f"{root}/ImageSets/Main/{s}.txt"] = "".join(f"{i}\n" for i in chosen).encode()
            for c in _VOC_CLASSES:
                members[f"{root}/ImageSets/Main/{c}_{s}.txt"] = "".join(
                    f"{i} {v:2d}\n" for i, v in labels[c] if i in chosen).encode()
            members[f"{root}/ImageSets/Segmentation/{s}.txt"] = "".join(
                f"{i}\n" for i in seg_ids if i in chosen).encode()
        _tar(out / f"VOC{part}_06-Nov-2007.tar", members, "w")


_BREAKHIS = {"benign": (("adenosis", "A"), ("fibroadenoma", "F"), ("phyllodes_tumor", "PT"),
                        ("tubular_adenoma", "TA")),
             "malignant": (("ductal_carcinoma", "DC"), ("lobular_carcinoma", "LC"), ("mucinous_carcinoma", "MC"),
                           ("papillary_carcinoma", "PC"))}


def build_breakhis(out: Path) -> None:
    """BreaKHis_v1.tar.gz: BreaKHis_v1/histology_slides/breast/<class>/SOB/<subtype>/SOB_<B|M>_<T>_<patient>/
    <mag>X/SOB_<B|M>_<T>-<patient>-<mag>-<seq>.png; one patient per subtype, three images per magnification."""
    rng = _rng("breakhis")
    members: dict[str, bytes] = {}
    year = 14
    for cls, subtypes in _BREAKHIS.items():
        letter = cls[0].upper()
        for k, (subtype, code) in enumerate(subtypes):
            patient = f"{year}-{10000 + 997 * k + (0 if letter == 'B' else 5000)}{'AB'[k % 2]}"
            slide = f"SOB_{letter}_{code}_{patient}"
            for mag in (40, 100, 200, 400):
                for seq in range(1, 4):
                    name = f"SOB_{letter}_{code}-{patient}-{mag}-{seq:03d}.png"
                    members[f"BreaKHis_v1/histology_slides/breast/{cls}/SOB/{subtype}/{slide}/{mag}X/{name}"] = \
                        _encode(_image(rng, 46, 70), "PNG")
    members["BreaKHis_v1/README.txt"] = b"BreaKHis v1 (miniature for tests)\n"
    _tar(out / "BreaKHis_v1.tar.gz", members, "w:gz")


def _cyclegan(out: Path, name: str, prefixes: tuple[str, str]) -> None:
    rng = _rng(name)
    buf = io.BytesIO()
    def entry(name: str) -> zipfile.ZipInfo:  # a fixed time: the same bytes on every build
        info = zipfile.ZipInfo(name, date_time=(2017, 3, 30, 12, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
        return info

    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(entry(f"{name}/"), b"")
        for part, n in (("train", 5), ("test", 3)):
            for letter, prefix in zip("AB", prefixes):
                zf.writestr(entry(f"{name}/{part}{letter}/"), b"")
                for i in range(n):
                    zf.writestr(entry(f"{name}/{part}{letter}/{prefix}_{100 + 7 * i}.jpg"),
                                _encode(_image(rng, 72, 72), "JPEG", quality=90))
    (out / f"{name}.zip").write_bytes(buf.getvalue())


def build_horse2zebra(out: Path) -> None:
    """horse2zebra.zip: horse2zebra/{trainA,trainB,testA,testB}/nXXXXXXXX_N.jpg (ImageNet synset prefixes)."""
    _cyclegan(out, "horse2zebra", ("n02381460", "n02391049"))


def build_apple2orange(out: Path) -> None:
    """apple2orange.zip: apple2orange/{trainA,trainB,testA,testB}/nXXXXXXXX_N.jpg."""
    _cyclegan(out, "apple2orange", ("n07740461", "n07749192"))


def build_massachusetts_roads(out: Path, tiles: dict[str, int] | None = None, side: int = 128) -> None:
    """mass_roads/{train,valid,test}/{sat,map}/index.html + <tile>.tiff (RGB aerial tile) / <tile>.tif (8-bit
    road map, 0 or 255): the Toronto host's layout. Each index page is one link per line,
    ``<a href="http://www.cs.toronto.edu/~vmnih/data/mass_roads/<split>/<kind>/<file>"><file></a><br />``
    (absolute http URLs: the form the grid paper's mrd_collector parses), so a mirror serves the pages verbatim.
    ``side`` px tiles (the real ones are 1500) with roads 7 px wide, as Mnih rasterised them."""
    rng = _rng("massachusetts_roads")
    tiles = tiles or {"train": 3, "valid": 1, "test": 2}
    for split, n in tiles.items():
        names = [f"{10078660 + 1000 * i + 7 * len(split)}_15" for i in range(n)]
        pages = {"sat": [], "map": []}
        for stem in names:
            road = np.zeros((side, side), np.uint8)
            for _ in range(2):  # one horizontal and one vertical road, 7 px wide
                at = int(rng.integers(8, side - 15))
                road[at:at + 7, :] = 255
                road = road.T.copy()
            sat = _image(rng, side, side)
            sat[road > 0] = (95, 95, 90)  # asphalt grey where the map has a road
            for kind, name, data in (("sat", f"{stem}.tiff", _encode(sat, "TIFF")),
                                     ("map", f"{stem}.tif", _encode(road, "TIFF"))):
                folder = out / "mass_roads" / split / kind
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
                url = f"http://www.cs.toronto.edu/~vmnih/data/mass_roads/{split}/{kind}/{name}"
                pages[kind].append(f'<a href="{url}">{name}</a><br />')
        for kind, lines in pages.items():
            (out / "mass_roads" / split / kind / "index.html").write_text("\n".join(lines) + "\n")


def build_sr_benchmarks(out: Path) -> None:
    """Set5/img_00N_SRF_2_HR.png (5) and Set14/img_0NN_SRF_2_HR.png (14), PNGs of varied sizes as in SelfExSR's
    data/<set>/image_SRF_2; BSDS300-images.tgz: BSDS300/images/{train,test}/<id>.jpg (481x321 / 321x481)."""
    rng = _rng("sr_benchmarks")
    for name, n in (("Set5", 5), ("Set14", 14)):
        (out / name).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            h, w = (int(v) for v in rng.integers(64, 97, 2))
            (out / name / f"img_{i:03d}_SRF_2_HR.png").write_bytes(_encode(_image(rng, h, w), "PNG"))
    members = {}
    for part, n in (("train", 2), ("test", 4)):
        for i in range(n):
            h, w = (96, 72) if i % 2 else (72, 96)
            members[f"BSDS300/images/{part}/{100007 + 1000 * i + len(part)}.jpg"] = _encode(_image(rng, h, w), "JPEG",
                                                                                          quality=90)
    _tar(out / "BSDS300-images.tgz", members, "w:gz")


BUILDERS: dict[str, Callable[[Path], None]] = {
    "stl10": build_stl10,
    "svhn": build_svhn,
    "bapps_2afc_train": build_bapps_2afc_train,
    "bapps_2afc_val": build_bapps_2afc_val,
    "bapps_jnd": build_bapps_jnd,
    "voc2007": build_voc2007,
    "breakhis": build_breakhis,
    "horse2zebra": build_horse2zebra,
    "apple2orange": build_apple2orange,
    "massachusetts_roads": build_massachusetts_roads,
    "sr_benchmarks": build_sr_benchmarks,
}


def build(out: str | Path, sources: list[str] | None = None) -> dict[str, str]:
    """Write the archives of ``sources`` (default: every builder) into ``out``; ``{file name: sha256}`` of the
    files the registry downloads for them (so the overlay can pin exactly those)."""
    from percept.data.sources import get_source

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for name in sources or list(BUILDERS):
        if name not in BUILDERS:
            raise KeyError(f"no miniature archive builder for source {name!r}: add build_{name}() to {__file__}")
        BUILDERS[name](out)
        for rf in get_source(name).files:
            path = out / rf.filename
            if not path.is_file():
                raise FileNotFoundError(f"build_{name}() did not write {rf.filename}, a file of the registry's "
                                        f"{name!r} source")
            checksums[rf.filename] = hashlib.sha256(path.read_bytes()).hexdigest()
    return checksums


if __name__ == "__main__":
    print(json.dumps(build(sys.argv[1], sys.argv[2:] or None), indent=2))
