"""Embedded, offline datasets generated from the real photographs that scikit-image and scikit-learn ship.

``shapes``: synthetic multi-label scenes. Each image holds one or more objects of distinct shape classes
(circle, square, triangle, …) at random positions, sizes, rotations and colours over a background
cropped from a real photo. The class depends on the shape *alone* — colour, size, rotation, position
and background are drawn independently of it — so the discriminative evidence for class k is exactly
the pixels of the class-k object, which the per-pixel ground truth (``segmentation``) records. This is
the property an8Flower was built for: heatmaps can be scored against known discriminative regions.
Object centres (``positions``) serve as the object-positioning target of the autoencoder predictors.

``photos``: square crops of the shipped photographs at random positions and scales, split by source
photo (no photo contributes to both splits), used as reference images by the similarity experiments.

``magnification``: an offline stand-in for BreakHis: fields of view of the shipped photos imaged at four
zoom levels (40x/100x/200x/400x analogues) by nested crops, with photos as tissue subtypes grouped into
classes and disjoint photo regions as patients (:func:`make_magnification`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import numpy as np

from percept import seeds

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross", "hexagon")


def _skimage_photo(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        if name == "motorcycle":
            return data.stereo_motorcycle()[0]
        return getattr(data, name)()

    return load


def _sklearn_photo(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")

    return load


# Real photographs shipped inside the installed packages (no download): colour photos and grey textures.
PHOTO_SOURCES: dict[str, Callable[[], np.ndarray]] = {
    **{n: _skimage_photo(n) for n in ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry",
                                      "motorcycle", "retina", "rocket", "brick", "grass", "gravel", "camera")},
    "china": _sklearn_photo("china"),
    "flower": _sklearn_photo("flower"),
}


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A shipped photograph as uint8 RGB ``(H, W, 3)``; grey images are replicated to three channels."""
    if name not in PHOTO_SOURCES:
        raise KeyError(f"unknown photo {name!r}; shipped photos: {sorted(PHOTO_SOURCES)}")
    img = np.asarray(PHOTO_SOURCES[name]())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = np.clip(img * (255 if img.max() <= 1 else 1), 0, 255).astype(np.uint8)
    img.setflags(write=False)
    return img


def random_crop(img: np.ndarray, size: int, scale: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """A square crop covering ``scale`` of the shorter side at a random place, resized to ``size``."""
    from PIL import Image

    h, w = img.shape[:2]
    side = max(8, int(round(min(h, w) * rng.uniform(*scale))))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(np.ascontiguousarray(img[y:y + side, x:x + side]))
    return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))


def shape_polygon(kind: str, cx: float, cy: float, radius: float, angle: float) -> np.ndarray | None:
    """Vertices (row, col) of a shape of circumradius ``radius``; ``None`` for the circle."""

    def ring(n: int, r: Sequence[float], offset: float = 0.0) -> np.ndarray:
        t = angle + offset + np.arange(n) * 2 * np.pi / n
        rr = np.resize(np.asarray(r, dtype=float), n)
        return np.stack([cy - rr * np.cos(t), cx + rr * np.sin(t)], axis=1)

    if kind == "circle":
        return None
    if kind == "square":
        return ring(4, [radius], np.pi / 4)
    if kind == "triangle":
        return ring(3, [radius])
    if kind == "hexagon":
        return ring(6, [radius])
    if kind == "star":
        return ring(10, [radius, radius * 0.45])
    if kind == "cross":
        b_over_a = 0.38  # arm half-width / arm half-length; the arm corners lie on the circumcircle
        a = radius / math.hypot(1.0, b_over_a)
        b = a * b_over_a
        pts = np.array([(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b),
                        (-a, -b), (-b, -b)])
        c, s = math.cos(angle), math.sin(angle)
        x = pts[:, 0] * c - pts[:, 1] * s
        y = pts[:, 0] * s + pts[:, 1] * c
        return np.stack([cy + y, cx + x], axis=1)
    raise ValueError(f"unknown shape {kind!r}; known shapes: {SHAPE_CLASSES}")


def shape_mask(kind: str, size: int, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    from skimage import draw

    mask = np.zeros((size, size), dtype=bool)
    poly = shape_polygon(kind, cx, cy, radius, angle)
    if poly is None:
        rr, cc = draw.disk((cy, cx), radius, shape=mask.shape)
    else:
        rr, cc = draw.polygon(poly[:, 0], poly[:, 1], shape=mask.shape)
    mask[rr, cc] = True
    return mask


def _colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
    return np.array([r, g, b]) * 255


def render_scene(rng: np.random.Generator, size: int, classes: Sequence[str], n_objects: int,
                 radius_range: tuple[float, float], backgrounds: Sequence[str],
                 background_scale: tuple[float, float] = (0.3, 0.9),
                 background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: image uint8 (S, S, 3), segmentation uint8 (S, S), positions float32 (K, 2) (NaN if absent).
    ``background``: this (S, S, 3) image instead of a crop of one of ``backgrounds``."""
    bg = background if background is not None else random_crop(
        load_photo(backgrounds[int(rng.integers(len(backgrounds)))]), size, background_scale, rng)
    chosen = rng.choice(len(classes), size=n_objects, replace=False)
    # An object that finds no free place beside the earlier ones (e.g. the first one sits in the middle)
    # makes the whole layout be drawn again: objects never overlap, so no object is partly or wholly hidden.
    for _layout in range(100):
        image = bg.astype(np.float64)
        seg = np.zeros((size, size), dtype=np.uint8)
        positions = np.full((len(classes), 2), np.nan, dtype=np.float32)
        placed: list[tuple[float, float, float]] = []
        for k in chosen:
            for _ in range(50):  # rejection-sample a place that does not overlap earlier objects
                radius = rng.uniform(*radius_range) * size / 2
                cx, cy = rng.uniform(radius, size - radius, size=2)
                if all(math.hypot(cx - px, cy - py) > radius + pr + 1 for px, py, pr in placed):
                    break
            else:
                break
            placed.append((cx, cy, radius))
            mask = shape_mask(classes[k], size, cx, cy, radius, rng.uniform(0, 2 * np.pi))
            image[mask] = _colour(rng)
            edge = mask & ~_erode(mask)
            image[edge] *= 0.35  # a dark outline keeps the object visible on any background
            seg[mask] = k + 1
            positions[k] = (cx / size, cy / size)
        if len(placed) == n_objects:
            return np.clip(np.round(image), 0, 255).astype(np.uint8), seg, positions
    raise ValueError(f"cannot place {n_objects} non-overlapping objects of diameter {list(radius_range)} x the "
                     f"image side in a {size}x{size} image; lower objects_per_image or object_size")


def _erode(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def _check_scene_options(classes: Sequence[str], objects_per_image: Sequence[int]) -> tuple[int, int]:
    unknown = [c for c in classes if c not in SHAPE_CLASSES]
    if unknown:
        raise ValueError(f"unknown shape classes {unknown}; known: {SHAPE_CLASSES}")
    lo, hi = int(objects_per_image[0]), int(objects_per_image[1])
    if not 1 <= lo <= hi <= len(classes):
        raise ValueError(f"objects_per_image must satisfy 1 <= min <= max <= number of classes ({len(classes)})")
    return lo, hi


def _write_scenes(path: str, name: str, scene, *, n_train: int, n_test: int, image_size: int,
                  classes: Sequence[str], stream: str, seed: int, params: dict, source: str, progress: bool) -> None:
    """Render ``n_train + n_test`` scenes with ``scene(rng) -> (image, segmentation, positions)`` and write them
    as a multi-label dataset with segmentation and object positions. One child generator per image (the named
    seed stream ``stream``): image i is the same whatever n is, and generation could be parallel."""
    from tqdm.auto import tqdm

    from percept.data.store import fingerprint as make_fingerprint
    from percept.data.store import write_image_dataset

    n = n_train + n_test
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    seg = np.empty((n, image_size, image_size), np.uint8)
    positions = np.empty((n, len(classes), 2), np.float32)
    children = seeds.sequence(seed, stream).spawn(n)
    for i in tqdm(range(n), desc=name, unit="img", disable=not progress):
        images[i], seg[i], positions[i] = scene(np.random.default_rng(children[i]))
    labels = np.zeros((n, len(classes)), np.float32)
    for k in range(len(classes)):
        labels[:, k] = (seg == k + 1).reshape(n, -1).any(axis=1)
    split = np.r_[np.zeros(n_train), np.ones(n_test)].astype(np.uint8)
    write_image_dataset(path, name=name, images=images, split=split, split_names=["train", "test"],
                        fingerprint=make_fingerprint(params), labels=labels, class_names=list(classes),
                        label_kind="multi", segmentation=seg, positions=positions, source=source,
                        extra_attrs={"params": params})


def make_shapes(path: str, *, n_train: int, n_test: int, image_size: int, classes: Sequence[str],
                objects_per_image: Sequence[int], object_size: Sequence[float], backgrounds: Sequence[str],
                seed: int, progress: bool = True) -> None:
    """Generate the ``shapes`` dataset file (see the module docstring)."""
    lo, hi = _check_scene_options(classes, objects_per_image)
    params = dict(n_train=n_train, n_test=n_test, image_size=image_size, classes=list(classes),
                  objects_per_image=[lo, hi], object_size=list(object_size), backgrounds=list(backgrounds),
                  seed=seed, generator=2)

    def scene(rng):
        return render_scene(rng, image_size, classes, int(rng.integers(lo, hi + 1)),
                            (object_size[0], object_size[1]), backgrounds)

    _write_scenes(path, "shapes", scene, n_train=n_train, n_test=n_test, image_size=image_size, classes=classes,
                  stream="embedded.shapes", seed=seed, params=params, progress=progress,
                  source="percept synthetic shapes over crops of scikit-image/scikit-learn photos")


def make_photos(path: str, *, crop_size: int, crops_per_photo: int, train_photos: Sequence[str],
                test_photos: Sequence[str], crop_scale: Sequence[float], seed: int) -> None:
    """Generate the ``photos`` reference crops, split by source photograph."""
    from percept.data.store import fingerprint as make_fingerprint
    from percept.data.store import write_image_dataset

    overlap = set(train_photos) & set(test_photos)
    if overlap:
        raise ValueError(f"photos {sorted(overlap)} are in both train_photos and test_photos")
    names = list(train_photos) + list(test_photos)
    params = dict(crop_size=crop_size, crops_per_photo=crops_per_photo, train_photos=list(train_photos),
                  test_photos=list(test_photos), crop_scale=list(crop_scale), seed=seed, generator=1)
    images, split, source = [], [], []
    for p, name in enumerate(names):
        rng = seeds.rng(seed, "embedded.photo_crops", p)
        photo = load_photo(name)
        for _ in range(crops_per_photo):
            images.append(random_crop(photo, crop_size, (crop_scale[0], crop_scale[1]), rng))
            split.append(0 if name in train_photos else 1)
            source.append(p)
    write_image_dataset(path, name="photos", images=np.stack(images), split=np.array(split),
                        split_names=["train", "test"], fingerprint=make_fingerprint(params),
                        meta={"photo": np.array(source, np.int64)}, label_kind="none",
                        source="crops of the photographs shipped by scikit-image and scikit-learn",
                        extra_attrs={"params": params, "photo_names": names})


MAGNIFICATIONS = (40, 100, 200, 400)


def patient_cells(height: int, width: int, n: int) -> list[tuple[int, int, int, int]]:
    """``n`` disjoint cells ``(y0, x0, y1, x1)`` of a grid over an image; cell k is "patient" k's tissue."""
    rows = max(1, int(math.floor(math.sqrt(n))))
    cols = int(math.ceil(n / rows))
    ys = np.linspace(0, height, rows + 1).round().astype(int)
    xs = np.linspace(0, width, cols + 1).round().astype(int)
    cells = [(ys[r], xs[c], ys[r + 1], xs[c + 1]) for r in range(rows) for c in range(cols)]
    return cells[:n]


def magnification_field(img: np.ndarray, cell: tuple[int, int, int, int], size: int, magnifications: Sequence[int],
                        field_scale: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One field of view seen at every magnification: nested square crops, each inside the previous one.

    The lowest magnification covers ``field_scale`` of the cell's shorter side; magnification m covers
    ``lowest / m`` of that side (40x → 100x is a 2.5x zoom, as on a microscope). Every crop is resized to
    ``size``; returns the images ``(M, size, size, 3)`` and the crop boxes ``(M, 4)`` as (y, x, side, side).
    """
    from PIL import Image

    y0, x0, y1, x1 = cell
    side = max(4.0, field_scale * min(y1 - y0, x1 - x0))
    y, x = y0 + rng.uniform(0, y1 - y0 - side), x0 + rng.uniform(0, x1 - x0 - side)
    out, boxes = [], []
    for m in magnifications:
        new = max(2.0, side * magnifications[0] / m) if boxes else side
        if boxes:  # a zoom into the previous field: the new crop lies inside the previous crop
            py, px, pside, _ = boxes[-1]
            y, x = py + rng.uniform(0, pside - new), px + rng.uniform(0, pside - new)
        boxes.append((y, x, new, new))
        crop = Image.fromarray(np.ascontiguousarray(img)).resize(
            (size, size), Image.Resampling.BICUBIC, box=(x, y, x + new, y + new), reducing_gap=2.0)
        out.append(np.asarray(crop))
    return np.stack(out), np.array(boxes, np.float32)


def make_magnification(path: str, *, image_size: int, classes: Mapping[str, Sequence[str]], patients_per_photo: int,
                       fields_per_patient: Sequence[int], field_scale: float, stain_jitter: float, test_fraction: float,
                       seed: int) -> None:
    """Generate the ``magnification`` dataset: an offline stand-in for BreakHis (see docs/mpcs.md).

    Each shipped photo plays one tissue *subtype*; ``classes`` groups the subtypes into the classes
    (as BreakHis groups 4 benign and 4 malignant subtypes). A photo is cut into ``patients_per_photo``
    disjoint grid cells, one per *patient*, and each patient gets a stain-like colour cast of its own
    (per-channel gain ``1 ± stain_jitter``), as slides from different patients differ in staining. Per
    patient, a number of fields of view drawn from ``fields_per_patient`` ``[min, max]`` (patients differ in
    their image counts, as in BreakHis, so patient- and image-level accuracy differ) are imaged at
    40x/100x/200x/400x analogues by nested crops (:func:`magnification_field`). Train/test is split by patient within each subtype
    (:func:`percept.data.prepare.patient_split`), so no patient is on both sides.

    ``meta``: ``subtype``, ``magnification``, ``patient``, ``field`` (one id per field of view, unique in the
    set) and ``sequence`` (the field's number within its patient, 1, 2, ..., the same at every magnification:
    what BreakHis's file names record and what MPCS pairs by, :mod:`percept.mpcs.pairs`).
    """
    from percept.data.prepare import patient_split
    from percept.data.store import fingerprint as make_fingerprint
    from percept.data.store import write_image_dataset

    subtypes = [p for names in classes.values() for p in names]
    if len(set(subtypes)) != len(subtypes):
        raise ValueError(f"a photo is listed under two classes: {subtypes}")
    lo, hi = int(fields_per_patient[0]), int(fields_per_patient[1])
    if patients_per_photo < 1 or not 1 <= lo <= hi:
        raise ValueError(f"need patients_per_photo >= 1 and 1 <= fields_per_patient[0] <= fields_per_patient[1], got "
                         f"{patients_per_photo} and {list(fields_per_patient)}")
    params = dict(image_size=image_size, classes={k: list(v) for k, v in classes.items()},
                  patients_per_photo=patients_per_photo, fields_per_patient=[lo, hi],
                  field_scale=field_scale, stain_jitter=stain_jitter, test_fraction=test_fraction, seed=seed,
                  magnifications=list(MAGNIFICATIONS), generator=2)
    images, label, subtype, patient, field, sequence, mag = [], [], [], [], [], [], []
    for s, name in enumerate(subtypes):
        cls = next(c for c, (_, names) in enumerate(classes.items()) if name in names)
        photo = load_photo(name)
        for p, cell in enumerate(patient_cells(photo.shape[0], photo.shape[1], patients_per_photo)):
            pid = s * patients_per_photo + p
            rng = seeds.rng(seed, "embedded.histology_patient", s, p)
            gain = 1.0 + rng.uniform(-stain_jitter, stain_jitter, size=3)
            for seq in range(1, int(rng.integers(lo, hi + 1)) + 1):
                views, _ = magnification_field(photo, cell, image_size, MAGNIFICATIONS, field_scale, rng)
                views = np.clip(np.round(views * gain), 0, 255).astype(np.uint8)
                images.append(views)
                n = len(MAGNIFICATIONS)
                label += [cls] * n
                subtype += [s] * n
                patient += [pid] * n
                field += [len(images) - 1] * n
                sequence += [seq] * n  # as BreakHis numbers a patient's images: one number at every magnification
                mag += list(MAGNIFICATIONS)
    patient_arr = np.array(patient, np.int64)
    split = patient_split(patient_arr, test_fraction, seed, strata=np.array(subtype))
    write_image_dataset(path, name="magnification", images=np.concatenate(images), split=split,
                        split_names=["train", "test"], fingerprint=make_fingerprint(params),
                        labels=np.array(label, np.int64), class_names=list(classes), label_kind="single",
                        meta={"subtype": np.array(subtype, np.int64), "magnification": np.array(mag, np.int64),
                              "patient": patient_arr, "field": np.array(field, np.int64),
                              "sequence": np.array(sequence, np.int64)},
                        source="nested crops (4 zoom levels) of photographs shipped by scikit-image/scikit-learn, "
                               "a BreakHis stand-in with subtypes = photos and patients = disjoint photo regions",
                        extra_attrs={"params": params, "subtype_names": subtypes})


# ------------------------------------------------------------------------------------------- small objects
def smooth_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plain, smooth scene like a LunarLander frame: a dark sky with a vertical brightness gradient over a
    grey terrain band whose outline is a few smooth hills (float64 RGB (S, S, 3))."""
    y = np.linspace(0, 1, size)[:, None, None]
    sky_top, sky_bottom = rng.uniform(0, 60, 3), rng.uniform(20, 110, 3)
    image = np.broadcast_to(sky_top + (sky_bottom - sky_top) * y, (size, size, 3)).copy()
    x = np.linspace(0, 2 * np.pi, size)
    height = rng.uniform(0.08, 0.22) + sum(rng.uniform(0, 0.04) * np.sin(k * x + rng.uniform(0, 2 * np.pi))
                                          for k in (1, 2, 3))
    ground = np.arange(size)[:, None] >= (1 - height)[None, :] * size
    image[ground] = rng.uniform(120, 200) + rng.uniform(-15, 15, 3)
    return image


def make_small_objects(path: str, *, n_train: int = 1600, n_test: int = 400, image_size: int = 64,
                       classes: Sequence[str] = ("circle", "square", "triangle", "star"),
                       objects_per_image: Sequence[int] = (1, 1), object_size: Sequence[float] = (0.05, 0.12),
                       seed: int = 0, progress: bool = True) -> None:
    """The ``small_objects`` dataset: the IJCNN 2020 paper's setting offline — objects of 0.05–0.12 of the side
    (a few dozen pixels) on plain, smooth backgrounds (:func:`smooth_background`), like its LunarLander frames,
    where pixel loss can ignore the object and still reconstruct most pixels. Same layout as ``shapes``
    (multi-label classes, per-pixel segmentation, object centres as ``positions``)."""
    lo, hi = _check_scene_options(classes, objects_per_image)
    params = dict(n_train=n_train, n_test=n_test, image_size=image_size, classes=list(classes),
                  objects_per_image=[lo, hi], object_size=list(object_size), seed=seed, generator=1)

    def scene(rng):
        bg = smooth_background(rng, image_size)
        return render_scene(rng, image_size, classes, int(rng.integers(lo, hi + 1)),
                            (object_size[0], object_size[1]), (), background=bg)

    _write_scenes(path, "small_objects", scene, n_train=n_train, n_test=n_test, image_size=image_size,
                  classes=classes, stream="embedded.small_objects", seed=seed, params=params, progress=progress,
                  source="percept small objects on smooth LunarLander-like backgrounds")
