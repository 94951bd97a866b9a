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
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

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
                 background_scale: tuple[float, float] = (0.3, 0.9)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: image uint8 (S, S, 3), segmentation uint8 (S, S), positions float32 (K, 2) (NaN if absent)."""
    bg = random_crop(load_photo(backgrounds[int(rng.integers(len(backgrounds)))]), size, background_scale, rng)
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


def make_shapes(path: str, *, n_train: int, n_test: int, image_size: int, classes: Sequence[str],
                objects_per_image: Sequence[int], object_size: Sequence[float], backgrounds: Sequence[str],
                seed: int, progress: bool = True) -> None:
    """Generate the ``shapes`` dataset file (see the module docstring)."""
    from tqdm.auto import tqdm

    from percept.data.store import fingerprint as make_fingerprint
    from percept.data.store import write_image_dataset

    unknown = [c for c in classes if c not in SHAPE_CLASSES]
    if unknown:
        raise ValueError(f"unknown shape classes {unknown}; known: {SHAPE_CLASSES}")
    lo, hi = int(objects_per_image[0]), int(objects_per_image[1])
    if not 1 <= lo <= hi <= len(classes):
        raise ValueError(f"objects_per_image must satisfy 1 <= min <= max <= number of classes ({len(classes)})")
    n = n_train + n_test
    params = dict(n_train=n_train, n_test=n_test, image_size=image_size, classes=list(classes),
                  objects_per_image=[lo, hi], object_size=list(object_size), backgrounds=list(backgrounds),
                  seed=seed, generator=2)
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    seg = np.empty((n, image_size, image_size), np.uint8)
    positions = np.empty((n, len(classes), 2), np.float32)
    # One child generator per image: image i is the same whatever n is, and generation could be parallel.
    children = np.random.SeedSequence([seed, 1]).spawn(n)
    for i in tqdm(range(n), desc="shapes", unit="img", disable=not progress):
        rng = np.random.default_rng(children[i])
        images[i], seg[i], positions[i] = render_scene(rng, image_size, classes, int(rng.integers(lo, hi + 1)),
                                                       (object_size[0], object_size[1]), backgrounds)
    labels = np.zeros((n, len(classes)), np.float32)
    for k in range(len(classes)):
        labels[:, k] = (seg == k + 1).reshape(n, -1).any(axis=1)
    split = np.r_[np.zeros(n_train), np.ones(n_test)].astype(np.uint8)
    write_image_dataset(path, name="shapes", images=images, split=split, split_names=["train", "test"],
                        fingerprint=make_fingerprint(params), labels=labels, class_names=list(classes),
                        label_kind="multi", segmentation=seg, positions=positions,
                        source="percept synthetic shapes over crops of scikit-image/scikit-learn photos",
                        extra_attrs={"params": params})


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
        rng = np.random.default_rng([seed, 2, p])
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
