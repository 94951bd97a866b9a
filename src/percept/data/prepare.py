"""Convert downloaded datasets from their published layouts into the project's HDF5 dataset files.

One function per dataset and a dispatcher, :func:`prepare`. Every converter is deterministic: files are
visited in sorted order, images are resized with PIL (bilinear; nearest for segmentation masks), and the
file's ``fingerprint`` hashes the converter version, its parameters and the raw files' checksums (from the
``MANIFEST.json`` written by :func:`percept.data.download.fetch_source`, or the file list otherwise).

Image datasets are written with :func:`percept.data.store.write_image_dataset`. BAPPS (pairs and triplets
of patches rather than single images) is written with :func:`percept.data.bapps.write_bapps` in a layout that
:class:`percept.data.store.ImageDataset` also reads (``images`` = reference / first patch) and that
:class:`percept.data.bapps.TwoAFCData` / :class:`percept.data.bapps.JNDData` read in full.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from percept import seeds
from percept.data.bapps import write_bapps
from percept.data.download import IMAGE_SUFFIXES, local_folder
from percept.data.store import fingerprint, write_image_dataset

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1

STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
BREAKHIS_CLASSES = ("benign", "malignant")
BREAKHIS_SUBTYPES = ("adenosis", "fibroadenoma", "phyllodes_tumor", "tubular_adenoma",  # benign
                     "ductal_carcinoma", "lobular_carcinoma", "mucinous_carcinoma", "papillary_carcinoma")  # malignant
BREAKHIS_MAGNIFICATIONS = (40, 100, 200, 400)


# ------------------------------------------------------------------------------------------------ helpers

def _raw_identity(raw_dir: Path) -> Any:
    """What identifies the raw data: the checksums in MANIFEST.json, else the list of files and sizes."""
    manifest = raw_dir / "MANIFEST.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        return {"source": m.get("source"), "files": sorted((f["filename"], f["sha256"]) for f in m.get("files", []))}
    return sorted((str(p.relative_to(raw_dir)), p.stat().st_size) for p in raw_dir.rglob("*") if p.is_file())


def _fingerprint(dataset: str, raw_dir: Path, params: Mapping[str, Any]) -> str:
    return fingerprint({"dataset": dataset, "converter_version": CONVERTER_VERSION, "params": dict(params),
                        "raw": _raw_identity(raw_dir)})


def _find_dir(raw_dir: Path, candidates: Sequence[str], must_contain: str, what: str) -> Path:
    """The first ``raw_dir / candidate`` containing ``must_contain``, or a clear error."""
    for cand in candidates:
        d = raw_dir / cand if cand else raw_dir
        if (d / must_contain).exists():
            return d
    tried = ", ".join(str(raw_dir / c / must_contain) for c in candidates)
    raise FileNotFoundError(f"{raw_dir}: does not look like {what} (looked for {tried}). Delete the folder and "
                            "rerun snakemake to download it again, or check the path.")


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as exc:  # PIL raises many types for unreadable files
        raise ValueError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc


def _resize(img: Image.Image, size: int | None) -> np.ndarray:
    if size and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _load_square(path: Path, size: int | None) -> np.ndarray:
    return _resize(_open_rgb(path), size)


def _resize_array(images: np.ndarray, size: int | None) -> np.ndarray:
    if not size or images.shape[1:3] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, im in enumerate(images):
        out[i] = _resize(Image.fromarray(im), size)
    return out


def _map(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterable[Any]:
    """``map`` in order, on a few threads when there is enough work (PIL decodes without the GIL)."""
    workers = min(8, os.cpu_count() or 1)
    if len(items) < 32 or workers == 1:
        return map(fn, items)
    pool = ThreadPoolExecutor(workers)
    try:
        return list(pool.map(fn, items))
    finally:
        pool.shutdown()


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _check_size(image_size: int | None, what: str = "image_size") -> None:
    if image_size is not None and (not isinstance(image_size, (int, np.integer)) or image_size < 1):
        raise ValueError(f"{what} must be a positive integer or None, got {image_size!r}")


# -------------------------------------------------------------------------------------------------- STL-10

def prepare_stl10(raw_dir: str | Path, out: str | Path, *, image_size: int | None = None,
                  max_images: int | None = None, unlabeled: bool = False,
                  max_unlabeled: int | None = None) -> Path:
    """STL-10 labelled train/test images (96x96; resized to ``image_size`` if given); with ``unlabeled`` also
    the 100k unlabelled images (``unlabeled_X.bin``, label -1) as split ``unlabeled``, the perceptual-
    autoencoder papers' autoencoder training data (the first ``max_unlabeled`` of them if given)."""
    raw_dir, out = Path(raw_dir), Path(out)
    _check_size(image_size)
    root = _find_dir(raw_dir, ("stl10_binary", ""), "train_X.bin", "the STL-10 binary release")
    names_file = root / "class_names.txt"
    class_names = [l.strip() for l in names_file.read_text().splitlines() if l.strip()] if names_file.exists() \
        else list(STL10_CLASSES)
    images, labels, split = [], [], []
    parts = ("train", "test", "unlabeled") if unlabeled else ("train", "test")
    for code, part in enumerate(parts):
        raw = np.fromfile(root / f"{part}_X.bin", dtype=np.uint8)
        if raw.size % (3 * 96 * 96):
            raise ValueError(f"{root / f'{part}_X.bin'}: size {raw.size} is not a whole number of 3x96x96 images; "
                             "the file is truncated. Delete the raw folder and rerun to download it again.")
        # Each image is stored channel by channel, each channel column-major: (3, W, H) -> (H, W, 3).
        x = raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
        if part == "unlabeled":
            x = x[:max_unlabeled] if max_unlabeled is not None else x
            y = np.full(len(x), -1, np.int64)
        else:
            y = np.fromfile(root / f"{part}_y.bin", dtype=np.uint8).astype(np.int64) - 1
        if len(y) != len(x):
            raise ValueError(f"{root}: {len(x)} {part} images but {len(y)} labels")
        if part != "unlabeled" and len(y) and (y.min() < 0 or y.max() >= len(class_names)):
            raise ValueError(f"{root / f'{part}_y.bin'}: labels outside 1..{len(class_names)}")
        if max_images is not None:
            x, y = x[:max_images], y[:max_images]
        images.append(_resize_array(x, image_size))
        labels.append(y)
        split.append(np.full(len(y), code, np.uint8))
    params = {"image_size": image_size, "max_images": max_images}
    if unlabeled:  # recorded only when used, so existing fingerprints stay
        params.update(unlabeled=True, max_unlabeled=max_unlabeled)
    write_image_dataset(out, name="stl10", images=np.concatenate(images), split=np.concatenate(split),
                        split_names=list(parts), labels=np.concatenate(labels), class_names=class_names,
                        label_kind="single", fingerprint=_fingerprint("stl10", raw_dir, params),
                        source="STL-10 (Coates, Lee & Ng 2011), labelled train and test images",
                        extra_attrs={"params": params})
    return out


# ---------------------------------------------------------------------------------------------------- SVHN

SVHN_EXTRA_URL = "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat"
SVHN_EXTRA_MD5 = "a93ce644f1a588dc4d68dda5feec44a7"


def prepare_svhn(raw_dir: str | Path, out: str | Path, *, wrap_pad_to: int | None = None,
                 image_size: int | None = None, max_images: int | None = None, extra: bool = False,
                 max_extra: int | None = None) -> Path:
    """SVHN cropped digits (train/test). ``wrap_pad_to``: pad the 32x32 digits to this size by wrapping
    around (as the perceptual-autoencoder experiments do); ``image_size``: then resize to this size.
    ``extra``: also the 531k ``extra_32x32.mat`` digits as split ``extra`` (the papers' autoencoder training
    data; the first ``max_extra`` if given)."""
    from scipy.io import loadmat

    raw_dir, out = Path(raw_dir), Path(out)
    _check_size(image_size)
    _check_size(wrap_pad_to, "wrap_pad_to")
    if wrap_pad_to is not None and wrap_pad_to < 32:
        raise ValueError(f"wrap_pad_to must be at least 32 (the SVHN image size), got {wrap_pad_to}")
    root = _find_dir(raw_dir, ("", "svhn"), "train_32x32.mat", "the SVHN cropped-digits release")
    images, labels, split = [], [], []
    parts = ("train", "test", "extra") if extra else ("train", "test")
    if extra and not (root / "extra_32x32.mat").exists():
        # The svhn download source fetches it; a hand-made raw folder may lack it.
        raise FileNotFoundError(
            f"{root / 'extra_32x32.mat'} is missing: extra: true needs SVHN's extra set; download "
            f"{SVHN_EXTRA_URL} (md5 {SVHN_EXTRA_MD5}) into {root}, or set downloads.prepare.svhn.extra: false")
    for code, part in enumerate(parts):
        path = root / f"{part}_32x32.mat"
        try:
            mat = loadmat(path)
        except Exception as exc:
            raise ValueError(f"{path}: cannot be read as a MATLAB file ({exc}); delete it and rerun") from exc
        x = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2)))  # (32, 32, 3, N) -> (N, 32, 32, 3)
        y = mat["y"].reshape(-1).astype(np.int64)
        y[y == 10] = 0  # SVHN writes digit 0 as label 10
        if len(y) != len(x):
            raise ValueError(f"{path}: {len(x)} images but {len(y)} labels")
        if max_images is not None and part != "extra":
            x, y = x[:max_images], y[:max_images]
        if max_extra is not None and part == "extra":
            x, y = x[:max_extra], y[:max_extra]
        if wrap_pad_to is not None:
            before = (wrap_pad_to - x.shape[1]) // 2
            after = wrap_pad_to - x.shape[1] - before
            x = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode="wrap")
        images.append(_resize_array(x.astype(np.uint8), image_size))
        labels.append(y)
        split.append(np.full(len(y), code, np.uint8))
    params = {"wrap_pad_to": wrap_pad_to, "image_size": image_size, "max_images": max_images}
    if extra:  # recorded only when used, so existing fingerprints stay
        params.update(extra=True, max_extra=max_extra)
    write_image_dataset(out, name="svhn", images=np.concatenate(images), split=np.concatenate(split),
                        split_names=list(parts), labels=np.concatenate(labels),
                        class_names=[str(d) for d in range(10)], label_kind="single",
                        fingerprint=_fingerprint("svhn", raw_dir, params),
                        source="SVHN cropped digits (Netzer et al. 2011), train and test",
                        extra_attrs={"params": params})
    return out


# ----------------------------------------------------------------------------------------------- VOC 2007

def _voc_annotation(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot labels (20,) (difficult objects count) and the centre of each class's largest box (20, 2)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"{path}: cannot parse the annotation ({exc})") from exc
    width = float(root.findtext("size/width") or 0)
    height = float(root.findtext("size/height") or 0)
    labels = np.zeros(len(VOC_CLASSES), np.float32)
    positions = np.full((len(VOC_CLASSES), 2), np.nan, np.float32)
    areas = np.full(len(VOC_CLASSES), -1.0)
    for obj in root.iter("object"):
        cls = (obj.findtext("name") or "").strip()
        if cls not in VOC_CLASSES:
            raise ValueError(f"{path}: unknown class {cls!r}; expected one of {VOC_CLASSES}")
        k = VOC_CLASSES.index(cls)
        labels[k] = 1.0
        box = obj.find("bndbox")
        if box is None or width <= 0 or height <= 0:
            continue
        x0, y0, x1, y1 = (float(box.findtext(t) or 0) for t in ("xmin", "ymin", "xmax", "ymax"))
        area = (x1 - x0 + 1) * (y1 - y0 + 1)
        if area > areas[k]:  # VOC boxes are 1-based and inclusive: pixels x0..x1 cover [x0 - 1, x1)
            areas[k] = area
            positions[k] = ((x0 - 1 + x1) / 2 / width, (y0 - 1 + y1) / 2 / height)
    return labels, positions


def _voc_segmentation(path: Path, size: int | None) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise ValueError(f"{path}: expected a palette PNG of class indices, got mode {im.mode}")
        im.load()
        if size and im.size != (size, size):
            im = im.resize((size, size), Image.NEAREST)
        return np.asarray(im, dtype=np.uint8)


def prepare_voc2007(raw_dir: str | Path, out: str | Path, *, image_size: int = 224,
                    max_images: int | None = None) -> Path:
    """PASCAL VOC 2007 trainval/test: 20-class multi-hot labels, box centres as ``positions``, and
    ``segmentation`` where a SegmentationClass mask exists (255 elsewhere; ``meta/has_segmentation``).
    Images (and masks) are resized to ``image_size`` squares. ``max_images`` caps each split."""
    raw_dir, out = Path(raw_dir), Path(out)
    _check_size(image_size)
    root = _find_dir(raw_dir, ("VOCdevkit/VOC2007", "VOC2007", ""), "Annotations", "PASCAL VOC 2007")
    items: list[tuple[int, str]] = []
    for code, part in enumerate(("trainval", "test")):
        list_file = root / "ImageSets" / "Main" / f"{part}.txt"
        if not list_file.is_file():
            raise FileNotFoundError(f"{list_file}: missing — the VOC 2007 {part} archive was not unpacked here. "
                                    "Delete the raw folder and rerun snakemake to download it again.")
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        items += [(code, i) for i in ids[:max_images]]

    def load(item: tuple[int, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        _, image_id = item
        labels, positions = _voc_annotation(root / "Annotations" / f"{image_id}.xml")
        image = _load_square(root / "JPEGImages" / f"{image_id}.jpg", image_size)
        seg_path = root / "SegmentationClass" / f"{image_id}.png"
        seg = _voc_segmentation(seg_path, image_size) if seg_path.is_file() else None
        if seg is not None and seg.shape != image.shape[:2]:
            raise ValueError(f"{seg_path}: mask shape {seg.shape} does not match its image {image.shape[:2]}")
        return image, labels, positions, seg

    n = len(items)
    if n == 0:
        raise ValueError(f"{root}: the image lists are empty")
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    segmentation = np.full((n, image_size, image_size), 255, np.uint8)
    labels = np.zeros((n, len(VOC_CLASSES)), np.float32)
    positions = np.zeros((n, len(VOC_CLASSES), 2), np.float32)
    has_seg = np.zeros(n, bool)
    for i, (image, lab, pos, seg) in enumerate(_map(load, items)):
        images[i], labels[i], positions[i] = image, lab, pos
        if seg is not None:
            segmentation[i], has_seg[i] = seg, True
    params = {"image_size": image_size, "max_images": max_images}
    write_image_dataset(out, name="voc2007", images=images, split=np.array([c for c, _ in items], np.uint8),
                        split_names=["trainval", "test"], labels=labels, class_names=list(VOC_CLASSES),
                        label_kind="multi", segmentation=segmentation, positions=positions,
                        meta={"has_segmentation": has_seg, "image_id": np.array([int(i) for _, i in items])},
                        fingerprint=_fingerprint("voc2007", raw_dir, params),
                        source="PASCAL VOC 2007 (Everingham et al.), trainval and test", extra_attrs={"params": params})
    return out


# ------------------------------------------------------------------------------------------------ BreakHis

def patient_split(patients: Sequence[Any] | np.ndarray, test_fraction: float = 0.3, seed: int = 0,
                  strata: Sequence[Any] | np.ndarray | None = None) -> np.ndarray:
    """Split codes (0 train, 1 test), one per entry of ``patients``, assigning whole patients to a side.

    Patients are shuffled with ``seed``; ``round(test_fraction * n)`` of them go to test (at least one and at
    most n - 1 when there are two or more). With ``strata`` (one value per entry, e.g. the class) this is
    done within each stratum, a patient's stratum being that of its first entry.
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    patients = np.asarray(patients)
    unique, first = np.unique(patients, return_index=True)
    groups = np.zeros(len(unique), np.int64) if strata is None else np.unique(np.asarray(strata)[first],
                                                                               return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    test: list[Any] = []
    for g in range(int(groups.max()) + 1 if len(groups) else 0):
        members = unique[groups == g]
        n_test = int(round(test_fraction * len(members)))
        if test_fraction > 0 and len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test += list(members[rng.permutation(len(members))[:n_test]])
    return np.isin(patients, np.asarray(test, dtype=patients.dtype)).astype(np.uint8)


def prepare_breakhis(raw_dir: str | Path, out: str | Path, *, image_size: int = 224, test_fraction: float = 0.3,
                     seed: int = 0, magnifications: Sequence[int] | None = None) -> Path:
    """BreakHis histology images, benign (0) / malignant (1), resized to ``image_size`` squares.

    ``meta``: ``subtype`` (codes into attr ``subtype_names``), ``magnification`` (40/100/200/400),
    ``patient`` (codes into attr ``patient_names``, the slide id such as ``14-22549AB``) and ``sequence``
    (the image's sequence number, the last field of ``SOB_B_A-14-22549AB-40-001.png``; MPCS pairs the images
    of one patient that share it across magnifications, :mod:`percept.mpcs.pairs`). Train/test is split by patient (:func:`patient_split`,
    stratified by class), so no patient is on both sides.
    """
    raw_dir, out = Path(raw_dir), Path(out)
    _check_size(image_size)
    mags = tuple(int(m) for m in (magnifications or BREAKHIS_MAGNIFICATIONS))
    root = _find_dir(raw_dir, ("BreaKHis_v1/histology_slides/breast", "histology_slides/breast", "breast", ""),
                     "benign/SOB", "the BreakHis v1 release")
    records: list[tuple[Path, int, int, int, str, int]] = []
    for label, cls in enumerate(BREAKHIS_CLASSES):
        for subtype_dir in sorted(d for d in (root / cls / "SOB").iterdir() if d.is_dir()):
            if subtype_dir.name not in BREAKHIS_SUBTYPES:
                raise ValueError(f"{subtype_dir}: unknown BreakHis subtype; expected one of {BREAKHIS_SUBTYPES}")
            subtype = BREAKHIS_SUBTYPES.index(subtype_dir.name)
            for slide in sorted(d for d in subtype_dir.iterdir() if d.is_dir()):
                patient = slide.name.rsplit("_", 1)[-1]  # SOB_B_A_14-22549AB -> 14-22549AB
                for mag_dir in sorted(d for d in slide.iterdir() if d.is_dir()):
                    try:
                        mag = int(mag_dir.name.upper().rstrip("X"))
                    except ValueError:
                        raise ValueError(f"{mag_dir}: expected a magnification folder such as 40X") from None
                    if mag not in mags:
                        continue
                    for png in _images_in(mag_dir):
                        try:
                            sequence = int(png.stem.rsplit("-", 1)[-1])
                        except ValueError:
                            sequence = -1
                        records.append((png, label, subtype, mag, patient, sequence))
    if not records:
        raise ValueError(f"{root}: no images found for magnifications {mags}")
    patient_names = sorted({r[4] for r in records})
    patient_codes = np.array([patient_names.index(r[4]) for r in records], np.int64)
    labels = np.array([r[1] for r in records], np.int64)
    split = patient_split(patient_codes, test_fraction, seed, strata=labels)
    images = np.empty((len(records), image_size, image_size, 3), np.uint8)
    for i, arr in enumerate(_map(lambda r: _load_square(r[0], image_size), records)):
        images[i] = arr
    params = {"image_size": image_size, "test_fraction": test_fraction, "seed": seed, "magnifications": list(mags)}
    write_image_dataset(out, name="breakhis", images=images, split=split, split_names=["train", "test"],
                        labels=labels, class_names=list(BREAKHIS_CLASSES), label_kind="single",
                        meta={"subtype": np.array([r[2] for r in records], np.int64),
                              "magnification": np.array([r[3] for r in records], np.int64),
                              "patient": patient_codes, "sequence": np.array([r[5] for r in records], np.int64)},
                        fingerprint=_fingerprint("breakhis", raw_dir, params),
                        source="BreakHis v1 (Spanhol et al. 2016), patient-level train/test split",
                        extra_attrs={"params": params, "subtype_names": list(BREAKHIS_SUBTYPES),
                                     "patient_names": patient_names})
    return out


# -------------------------------------------------------------------------------------- Massachusetts Roads

MASS_ROADS_SPLITS = ("train", "valid", "test")


def _mass_roads_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(aerial tile, road map) per tile of a split, matched by file stem (sat/<stem>.tiff, map/<stem>.tif)."""
    found = {}
    for kind in ("sat", "map"):
        folder = root / split / kind
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: missing — the Massachusetts Roads {split}/{kind} files were not "
                                    "downloaded. Delete the raw folder and rerun snakemake to download it again.")
        found[kind] = {p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".tif", ".tiff")}
    unpaired = sorted(set(found["sat"]) ^ set(found["map"]))
    if unpaired:
        raise ValueError(f"{root / split}: {len(unpaired)} tiles have an aerial image or a road map but not both "
                         f"(e.g. {unpaired[:5]}); the download is incomplete. Delete the raw folder and rerun.")
    if not found["sat"]:
        raise ValueError(f"{root / split}: no tiles (sat/*.tiff, map/*.tif)")
    return [(found["sat"][k], found["map"][k]) for k in sorted(found["sat"])]


def _road_tile(item: tuple[tuple[int, int], Path, Path], image_size: int, crops: int | None, seed: int
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    key, sat_path, map_path = item  # key: (split code, tile number in the split)
    sat = _open_rgb(sat_path)
    try:
        with Image.open(map_path) as im:
            road = im.convert("L")
    except Exception as exc:  # PIL raises many types for unreadable files
        raise ValueError(f"{map_path}: cannot read the road map ({type(exc).__name__}: {exc})") from exc
    if sat.size != road.size:
        raise ValueError(f"{sat_path} is {sat.size[0]}x{sat.size[1]} but its road map {map_path} is "
                         f"{road.size[0]}x{road.size[1]}")
    if not crops:
        return ([np.asarray(sat.resize((image_size, image_size), Image.BILINEAR), np.uint8)],
                [np.asarray(road.resize((image_size, image_size), Image.BILINEAR)) > 127])
    w, h = sat.size
    if min(w, h) < image_size:
        raise ValueError(f"{sat_path}: {w}x{h} is smaller than the {image_size}x{image_size} crops (train_crops)")
    rng = seeds.rng(seed, "data.roads_crops", *key)  # per tile: the same crops whatever the thread order
    images, roads = [], []
    for top, left in zip(rng.integers(0, h - image_size + 1, crops), rng.integers(0, w - image_size + 1, crops)):
        box = (int(left), int(top), int(left) + image_size, int(top) + image_size)
        images.append(np.asarray(sat.crop(box), np.uint8))
        roads.append(np.asarray(road.crop(box)) > 127)
    return images, roads


def prepare_massachusetts_roads(raw_dir: str | Path, out: str | Path, *, image_size: int = 224,
                                train_crops: int | None = None, seed: int = 0,
                                max_images: int | None = None) -> Path:
    """Massachusetts Roads (Mnih 2013; the grid paper's segmentation task): 1500x1500 aerial tiles and their
    road maps, splits ``train``, ``valid``, ``test`` as published; ``segmentation`` = 1 on road pixels (map grey
    level > 127), class ``road``.

    Every tile is resized whole to ``image_size`` (PIL bilinear, the map too, then thresholded): the grid
    paper's evaluation transform (its src/topology_aware_delineation ``JointTransform2D(resize=224,
    crop=False)``). ``train_crops: k`` instead cuts k random ``image_size`` crops at full resolution from each
    training tile (seeded per tile with ``seed``): its training transform (``RandomCrop(224)``, drawn once per
    epoch there, k times once here). ``max_images`` keeps the first tiles (by name) of each split. Tiles
    without a map (or maps without a tile), unreadable TIFFs and tiles whose map differs in size are errors.
    """
    raw_dir, out = Path(raw_dir), Path(out)
    _check_size(image_size)
    if train_crops is not None and (not isinstance(train_crops, (int, np.integer)) or train_crops < 1):
        raise ValueError(f"train_crops must be a positive integer or None, got {train_crops!r}")
    root = _find_dir(raw_dir, ("mass_roads", ""), "train/sat", "the Massachusetts Roads release (mass_roads/"
                     "{train,valid,test}/{sat,map})")
    images, roads, split, tiles = [], [], [], []
    for code, part in enumerate(MASS_ROADS_SPLITS):
        pairs = _mass_roads_pairs(root, part)[:max_images]
        crops = train_crops if part == "train" else None
        load = partial(_road_tile, image_size=image_size, crops=crops, seed=seed)
        for (sat_path, _), (imgs, maps) in zip(pairs, _map(load, [((code, i), s, m)
                                                                    for i, (s, m) in enumerate(pairs)])):
            images += imgs
            roads += maps
            split += [code] * len(imgs)
            tiles += [sat_path.stem] * len(imgs)
    params = {"image_size": image_size, "train_crops": train_crops, "seed": seed, "max_images": max_images}
    write_image_dataset(out, name="massachusetts_roads", images=np.stack(images), split=np.array(split, np.uint8),
                        split_names=list(MASS_ROADS_SPLITS), class_names=["road"], label_kind="none",
                        segmentation=np.stack(roads).astype(np.uint8),
                        meta={"tile": np.array(tiles, dtype="S")},
                        fingerprint=_fingerprint("massachusetts_roads", raw_dir, params),
                        source="Massachusetts Roads (Mnih 2013), aerial tiles and road maps, train/valid/test",
                        extra_attrs={"params": params})
    return out


# ----------------------------------------------------------------------------------- super-resolution sets

SR_BENCHMARK_SPLITS = ("set5", "set14", "bsd100")


def prepare_sr_benchmarks(raw_dir: str | Path, out: str | Path, *, image_size: int = 288) -> Path:
    """The grid paper's super-resolution test sets as splits ``set5`` (5 images), ``set14`` (14) and ``bsd100``
    (the 100 BSDS300 test images), each resized (shorter side, bilinear) and centre-cropped to ``image_size``:
    its src/super_res test.py ``img_transform(imsize=288)`` = ``Resize(288)`` + ``CenterCrop(288)``. No labels."""
    raw_dir, out = Path(raw_dir), Path(out)
    _check_size(image_size)
    folders = {"set5": raw_dir / "Set5", "set14": raw_dir / "Set14",
               "bsd100": _find_dir(raw_dir, ("BSDS300/images", "images"), "test", "the BSDS300 image archive") / "test"}
    counts = {"set5": 5, "set14": 14, "bsd100": 100}
    files, split = [], []
    for code, part in enumerate(SR_BENCHMARK_SPLITS):
        found = _images_in(folders[part]) if folders[part].is_dir() else []
        if not found:
            raise FileNotFoundError(f"{folders[part]}: no images; delete the raw folder and rerun to download again")
        if len(found) != counts[part]:
            log.warning("%s: %d images, %s has %d", folders[part], len(found), part, counts[part])
        files += found
        split += [code] * len(found)
    images = np.empty((len(files), image_size, image_size, 3), np.uint8)
    for i, arr in enumerate(_map(lambda f: _resize_center_crop(_open_rgb(f), image_size, image_size), files)):
        images[i] = arr
    params = {"image_size": image_size}
    write_image_dataset(out, name="sr_benchmarks", images=images, split=np.array(split, np.uint8),
                        split_names=list(SR_BENCHMARK_SPLITS), fingerprint=_fingerprint("sr_benchmarks", raw_dir, params),
                        meta={"file": np.array([f.name for f in files], dtype="S")},
                        source="Set5 (Bevilacqua et al. 2012), Set14 (Zeyde et al. 2010), BSD100 (Martin et al. 2001)",
                        extra_attrs={"params": params})
    return out


# --------------------------------------------------------------------------------------------------- BAPPS

def _bapps_categories(root: Path, needed: Sequence[str]) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and all((d / s).is_dir() for s in needed))


def _bapps_root(raw_dir: Path, candidates: Sequence[str], needed: Sequence[str], what: str) -> Path:
    for cand in candidates:
        d = raw_dir / cand if cand else raw_dir
        if d.is_dir() and _bapps_categories(d, needed):
            return d
    raise FileNotFoundError(f"{raw_dir}: does not look like {what} (looked in "
                            f"{', '.join(str(raw_dir / c) for c in candidates)} for <category>/{{{','.join(needed)}}}). "
                            "Delete the folder and rerun snakemake to download it again.")


def _write_bapps(raw_dir: Path, out: Path, *, name: str, kind: str, split_name: str, root: Path,
                 image_dirs: Sequence[tuple[str, str]], score_dir: str, image_size: int, max_images: int | None,
                 description: str) -> Path:
    """The BAPPS folders ``<category>/{image dirs, score dir}`` of ``root`` through :func:`write_bapps`."""
    _check_size(image_size)
    needed = [d for _, d in image_dirs] + [score_dir]
    categories = _bapps_categories(root, needed)
    items: list[tuple[int, str]] = []
    for c, cat in enumerate(categories):
        stems = sorted(p.stem for p in (root / cat / score_dir).glob("*.npy"))[:max_images]
        for stem in stems:
            for _, sub in image_dirs:
                if not (root / cat / sub / f"{stem}.png").is_file():
                    raise FileNotFoundError(f"{root / cat / sub / f'{stem}.png'}: missing (its {score_dir} file "
                                            "exists); the archive is incomplete. Delete and rerun to download again.")
        items += [(c, s) for s in stems]
    if not items:
        raise ValueError(f"{root}: no {score_dir}/*.npy files found")
    scores = np.array([float(np.mean(np.load(root / categories[c] / score_dir / f"{stem}.npy"))) for c, stem in items],
                      np.float32)

    def rows(start: int, stop: int) -> dict[str, np.ndarray]:
        return {key: np.stack(list(_map(lambda it, sub=sub: _load_square(
                    root / categories[it[0]] / sub / f"{it[1]}.png", image_size), items[start:stop])))
                for key, sub in image_dirs}

    params = {"image_size": image_size, "max_images": max_images}
    return write_bapps(out, kind=kind, name=name, split_name=split_name,
                       fingerprint=_fingerprint(name, raw_dir, params), source=description, categories=categories,
                       category=np.array([c for c, _ in items], np.int64), score=scores, images=rows,
                       image_shape=(image_size, image_size, 3), extra_attrs={"params": params})


def prepare_bapps_2afc(raw_dir: str | Path, out: str | Path, *, split: str = "val", image_size: int = 64,
                       max_images: int | None = None) -> Path:
    """BAPPS 2AFC triplets: ``images`` = reference, ``p0``, ``p1``, ``meta/judge`` (fraction of people who
    judged p1 closer to the reference), ``meta/category`` (codes into attr ``categories``).
    ``max_images`` caps each category."""
    if split not in ("train", "val"):
        raise ValueError(f"BAPPS 2AFC split must be 'train' or 'val', got {split!r}")
    raw_dir, out = Path(raw_dir), Path(out)
    dirs = (("images", "ref"), ("p0", "p0"), ("p1", "p1"))
    root = _bapps_root(raw_dir, (split, f"2afc/{split}", f"dataset/2afc/{split}", ""), ["ref", "p0", "p1", "judge"],
                       f"the BAPPS 2AFC {split} set")
    return _write_bapps(raw_dir, out, name=f"bapps_2afc_{split}", kind="2afc", split_name=split, root=root,
                        image_dirs=dirs, score_dir="judge", image_size=image_size,
                        max_images=max_images, description=f"BAPPS 2AFC {split} (Zhang et al. 2018)")


def prepare_bapps_jnd(raw_dir: str | Path, out: str | Path, *, image_size: int = 64,
                      max_images: int | None = None) -> Path:
    """BAPPS JND pairs: ``images`` = ``p0`` (a link to the same data), ``p1``, ``meta/same`` (fraction of
    people who judged the pair identical), ``meta/category``. ``max_images`` caps each category."""
    raw_dir, out = Path(raw_dir), Path(out)
    root = _bapps_root(raw_dir, ("jnd/val", "dataset/jnd/val", "val", ""), ["p0", "p1", "same"], "the BAPPS JND set")
    return _write_bapps(raw_dir, out, name="bapps_jnd", kind="jnd", split_name="val", root=root,
                        image_dirs=(("images", "p0"), ("p1", "p1")), score_dir="same", image_size=image_size,
                        max_images=max_images,
                        description="BAPPS JND val (Zhang et al. 2018)")


# ---------------------------------------------------------------------------------------- ImageNet folder

def _resize_center_crop(img: Image.Image, resize: int, crop: int) -> np.ndarray:
    w, h = img.size
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - crop) / 2.0)), int(round((nh - crop) / 2.0))
    return np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def _flat_labels(folder: Path, files: list[Path], labels_file: str) -> np.ndarray | None:
    path = folder / labels_file
    if not path.is_file():
        return None
    lines = [l.split() for l in path.read_text().splitlines() if l.strip()]
    if all(len(l) == 1 for l in lines):  # one label per line, for the images in sorted file-name order
        if len(lines) != len(files):
            raise ValueError(f"{path}: {len(lines)} labels for {len(files)} images (one label per line, in sorted "
                             "file-name order, or lines '<file name> <label>')")
        by_file = {f.name: int(l[0]) for f, l in zip(files, lines)}
    else:
        by_file = {}
        for l in lines:
            if len(l) != 2:
                raise ValueError(f"{path}: cannot parse line {' '.join(l)!r}; expected '<file name> <label>'")
            by_file[l[0]] = int(l[1])
    try:
        return np.array([by_file[f.name] if f.name in by_file else by_file[f.stem] for f in files], np.int64)
    except KeyError as exc:
        raise ValueError(f"{path}: no label for image {exc.args[0]}") from None


def prepare_imagenet_folder(raw_dir: str | Path, out: str | Path, *, image_size: int = 224, resize: int = 256,
                            max_images: int | None = None, labels_file: str = "labels.txt") -> Path:
    """A local ILSVRC2012 validation folder: flat images (labels from ``labels_file`` if present: one integer
    per line in sorted file-name order, or ``<file name> <label>`` lines) or one sub-folder per class (named by
    WordNet id; labels index the sorted folder names). Shorter side resized to ``resize``, then centre-cropped
    to ``image_size``. Images are ordered by file name; ``max_images`` keeps the first ones."""
    raw_dir, out = Path(raw_dir), Path(out)
    folder = local_folder(raw_dir)
    _check_size(image_size)
    _check_size(resize, "resize")
    if resize < image_size:
        raise ValueError(f"resize ({resize}) must be at least image_size ({image_size})")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and _images_in(d))
    if class_dirs:
        class_names = [d.name for d in class_dirs]
        entries = [(f, k) for k, d in enumerate(class_dirs) for f in _images_in(d)]
        entries.sort(key=lambda e: (e[0].name, str(e[0])))
        files, labels = [f for f, _ in entries], np.array([k for _, k in entries], np.int64)
    else:
        files = _images_in(folder)
        flat = _flat_labels(folder, files, labels_file)
        labels = flat
        class_names = [str(k) for k in range(int(flat.max()) + 1)] if flat is not None else []
    if max_images is not None:
        files = files[:max_images]
        labels = None if labels is None else labels[:max_images]
    images = np.empty((len(files), image_size, image_size, 3), np.uint8)
    for i, arr in enumerate(_map(lambda p: _resize_center_crop(_open_rgb(p), resize, image_size), files)):
        images[i] = arr
    params = {"image_size": image_size, "resize": resize, "max_images": max_images}
    write_image_dataset(out, name="imagenet_val", images=images, split=np.zeros(len(files), np.uint8),
                        split_names=["val"], labels=labels, class_names=class_names,
                        label_kind="single" if labels is not None else "none",
                        fingerprint=_fingerprint("imagenet_val", folder, params),
                        source=f"ILSVRC2012 validation images from the local folder {folder}",
                        extra_attrs={"params": params})
    return out


def prepare_unpaired(raw_dir: str | Path, out: str | Path, *, image_size: int = 128, max_images: int | None = None
                     ) -> Path:
    """An unpaired two-domain folder in the CycleGAN layout (``trainA/ trainB/ testA/ testB/``, possibly one
    level down, e.g. ``horse2zebra/trainA``): images resized to ``image_size`` squares (shorter side, then a
    centre crop); ``labels`` = domain (0 = A, 1 = B), split train/test. ``max_images`` keeps the first ones
    of each folder (sorted by name). No masks: the mask-based translation scores are NaN on such a set."""
    if raw_dir is None or not Path(raw_dir).expanduser().is_dir():
        raise FileNotFoundError(f"{raw_dir}: no such folder; set translation.folder.path to a folder holding "
                                "trainA/ trainB/ testA/ testB/ (the CycleGAN layout)")
    folder, out = Path(raw_dir).expanduser(), Path(out)
    _check_size(image_size)
    roots = [folder, *sorted(d for d in folder.iterdir() if d.is_dir())]
    root = next((r for r in roots if all((r / s).is_dir() for s in ("trainA", "trainB", "testA", "testB"))), None)
    if root is None:
        raise FileNotFoundError(f"{folder}: no trainA/ trainB/ testA/ testB/ folders (the CycleGAN layout), "
                                "neither there nor one level down")
    files, domain, split = [], [], []
    for s, part in enumerate(("train", "test")):
        for d, letter in enumerate("AB"):
            found = _images_in(root / f"{part}{letter}")
            if max_images is not None:
                found = found[:max_images]
            if not found:
                raise ValueError(f"{root / (part + letter)}: no images")
            files += found
            domain += [d] * len(found)
            split += [s] * len(found)
    images = np.empty((len(files), image_size, image_size, 3), np.uint8)
    for i, arr in enumerate(_map(lambda p: _resize_center_crop(_open_rgb(p), image_size, image_size), files)):
        images[i] = arr
    params = {"image_size": image_size, "max_images": max_images}
    write_image_dataset(out, name=root.name, images=images, split=np.array(split, np.uint8),
                        split_names=["train", "test"], labels=np.array(domain, np.int64), class_names=["A", "B"],
                        label_kind="single", meta={"domain": np.array(domain, np.int64)},
                        fingerprint=_fingerprint(root.name, folder, params),
                        source=f"unpaired two-domain images from {root}", extra_attrs={"params": params})
    return out


# ------------------------------------------------------------------------------------------------ dispatch

PREPARERS: dict[str, Callable[..., Path]] = {
    "stl10": prepare_stl10,
    "svhn": prepare_svhn,
    "voc2007": prepare_voc2007,
    "breakhis": prepare_breakhis,
    "bapps_2afc": prepare_bapps_2afc,
    "bapps_2afc_train": partial(prepare_bapps_2afc, split="train"),
    "bapps_2afc_val": partial(prepare_bapps_2afc, split="val"),
    "bapps_jnd": prepare_bapps_jnd,
    "imagenet_folder": prepare_imagenet_folder,
    "imagenet_val": prepare_imagenet_folder,
    "horse2zebra": prepare_unpaired,
    "apple2orange": prepare_unpaired,
    "unpaired_folder": prepare_unpaired,
    "massachusetts_roads": prepare_massachusetts_roads,
    "sr_benchmarks": prepare_sr_benchmarks,
}


def prepare(name: str, raw_dir: str | Path, out: str | Path, **params: Any) -> Path:
    """Convert the raw dataset ``name`` in ``raw_dir`` into the dataset file ``out``."""
    try:
        fn = PREPARERS[name]
    except KeyError:
        raise KeyError(f"no converter for dataset {name!r}; known: {', '.join(sorted(PREPARERS))}") from None
    sig = inspect.signature(fn)
    allowed = [p for p, v in sig.parameters.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"dataset {name!r}: unknown option(s) {unknown}; allowed: {allowed}")
    log.info("preparing %s from %s -> %s (%s)", name, raw_dir, out, params)
    return fn(Path(raw_dir), Path(out), **params)
