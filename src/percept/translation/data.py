"""The offline two-domain set: single objects of shape A or shape B from the embedded shapes generator, filled
with a texture crop of a shipped photo over a background crop of another, with the ground truth kept for
scoring only (object mask, centre, circumradius, angle and the clean background of every image)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from percept import seeds
from percept.data.embedded import SHAPE_CLASSES, load_photo, random_crop, shape_mask

DOMAIN_NAMES = ("A", "B")


def render_object(rng: np.random.Generator, size: int, shape: str, object_size: Sequence[float],
                  textures: Sequence[str], backgrounds: Sequence[str], texture_scale: Sequence[float] = (0.15, 0.4),
                  background_scale: Sequence[float] = (0.5, 1.0)) -> dict[str, np.ndarray | float]:
    """One image: a ``shape`` object textured by a photo crop over a background photo crop.

    ``object_size`` is the object's diameter (circumscribed circle) as a fraction of the image side.
    """
    bg = random_crop(load_photo(backgrounds[int(rng.integers(len(backgrounds)))]), size, tuple(background_scale), rng)
    tex = random_crop(load_photo(textures[int(rng.integers(len(textures)))]), size, tuple(texture_scale), rng)
    radius = rng.uniform(*object_size) * size / 2
    cx, cy = rng.uniform(radius, size - radius, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    mask = shape_mask(shape, size, cx, cy, radius, angle)
    image = np.where(mask[..., None], tex, bg)
    return {"image": image.astype(np.uint8), "mask": mask, "background": bg.astype(np.uint8), "cx": cx, "cy": cy,
            "radius": radius, "angle": angle}


def make_translation_domains(path: str, *, shape_a: str, shape_b: str, n_train: int, n_test: int, image_size: int,
                             object_size: Sequence[float], textures: Sequence[str], backgrounds: Sequence[str],
                             seed: int, progress: bool = True) -> None:
    """Write the two-domain dataset: ``n_train + n_test`` images per domain; ``labels`` = shape class index
    into ``[shape_a, shape_b]`` (0 = domain A), ``segmentation`` = the object (1 for A, 2 for B), and
    ``meta/{domain,cx,cy,radius,angle,background}`` (the ground truth the scores use, never the model)."""
    from tqdm.auto import tqdm

    from percept.data.store import fingerprint as make_fingerprint
    from percept.data.store import write_image_dataset

    for s in (shape_a, shape_b):
        if s not in SHAPE_CLASSES:
            raise ValueError(f"unknown shape {s!r}; known: {SHAPE_CLASSES}")
    if shape_a == shape_b:
        raise ValueError(f"the two domains need different shapes; both are {shape_a!r}")
    params = {"shape_a": shape_a, "shape_b": shape_b, "n_train": n_train, "n_test": n_test,
              "image_size": image_size, "object_size": list(object_size), "textures": list(textures),
              "backgrounds": list(backgrounds), "seed": seed, "generator": 1}
    per = n_train + n_test
    n = 2 * per
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    backs = np.empty_like(images)
    seg = np.zeros((n, image_size, image_size), np.uint8)
    fields = {k: np.empty(n, np.float32) for k in ("cx", "cy", "radius", "angle")}
    domain = np.repeat(np.arange(2), per).astype(np.int64)
    split = np.tile(np.r_[np.zeros(n_train), np.ones(n_test)], 2).astype(np.uint8)
    children = seeds.sequence(seed, "translation.domains").spawn(n)
    for i in tqdm(range(n), desc="translation domains", unit="img", disable=not progress):
        rng = np.random.default_rng(children[i])
        obj = render_object(rng, image_size, (shape_a, shape_b)[domain[i]], object_size, textures, backgrounds)
        images[i], backs[i] = obj["image"], obj["background"]
        seg[i][obj["mask"]] = domain[i] + 1
        for k, column in fields.items():
            column[i] = obj[k]
    write_image_dataset(path, name="translation_shapes", images=images, split=split, split_names=["train", "test"],
                        fingerprint=make_fingerprint(params), labels=domain, class_names=[shape_a, shape_b],
                        label_kind="single", segmentation=seg,
                        meta={"domain": domain, "background": backs, **fields},
                        source="percept shapes (two classes as two domains), textures and backgrounds cropped from "
                               "the scikit-image/scikit-learn photos", extra_attrs={"params": params})
