"""Image sets of the similarity experiments, generated offline from the shipped photos.

- The six distortions of "Deep Perceptual Similarity is Adaptable to Ambiguous Contexts" (Pihlgren, Sandin &
  Liwicki): rotate (30–330°), translate (up to 0.5 of the side, whole pixels), darken (brightness 0.1–0.5),
  colour (hue ±0.5), blur (a Gaussian kernel 11 wide and 21 high, σ 4–10), zoom in (1.1–2x), rotations and
  affine maps with nearest-neighbour sampling — the torchvision transforms of the authors' code
  (LTU-Machine-Learning/Analysis-of-Deep-Perceptual-Loss-Networks, src/perceptual_metric/augmentations.py).
  ``style="smooth"`` keeps this project's earlier variant (a square kernel of random side 11–21, bilinear
  sampling, sub-pixel shifts). ``sample_params`` draws the paper's ranges, ``strength_params`` a strength
  u ∈ [0, 1] from identity (0) to the strongest setting (1).
- The flaw challenge sets of "Identifying and Mitigating Flaws of DPS Metrics" (Sjögren, Pihlgren, Sandin &
  Liwicki, NLDL 2023): translations, rotations (22–180°), flips/inversion and colour stains of photo crops, with
  the plain references (black, white, grey, red, green, blue, noise); or the authors' own challenge images
  read from a folder in their layout (``read_challenge_folder``).
- A synthetic 2AFC/JND set in the BAPPS file format (written by ``percept.data.bapps.write_bapps``, read by
  ``TwoAFCData``/``JNDData``): a photo crop and
  two strengths of one distortion (category = distortion); the "judgement" is a soft preference for the
  weaker one, j = σ((u0 - u1) / 0.1). It stands in for BAPPS offline and serves as the distortion-strength
  monotonicity set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from percept import seeds

DISTORTIONS = ("rotate", "translate", "darken", "colour", "blur", "zoom")
REFERENCES = ("black", "white", "grey", "red", "green", "blue", "noise")
TRANSLATIONS = (0.03, 0.06, 0.125, 0.25, 0.5)  # shift as a fraction of the crop side
ROTATIONS = (22, 45, 67, 90, 180)
FLIPS = ("hflip", "vflip", "invert")
JUDGE_TEMPERATURE = 0.1
JND_THRESHOLD, JND_WIDTH = 0.2, 0.05
STYLES = ("authors", "smooth")
BLUR_KERNEL = (11, 21)  # (width, height): torchvision GaussianBlur(kernel_size=(11, 21)) of the authors' code


def sample_params(kind: str, rng: np.random.Generator, style: str = "authors") -> dict[str, float]:
    """A random setting of distortion ``kind`` in the paper's range (``style``: see the module docstring)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}; got {style!r}")
    if kind == "rotate":
        return {"angle": float(rng.uniform(30, 330))}
    if kind == "translate":
        return {"dx": float(rng.uniform(-0.5, 0.5)), "dy": float(rng.uniform(-0.5, 0.5))}
    if kind == "darken":
        return {"brightness": float(rng.uniform(0.1, 0.5))}
    if kind == "colour":
        return {"hue": float(rng.uniform(-0.5, 0.5))}
    if kind == "blur":
        if style == "authors":
            return {"kernel_x": float(BLUR_KERNEL[0]), "kernel_y": float(BLUR_KERNEL[1]),
                    "sigma": float(rng.uniform(4, 10))}
        return {"kernel": float(2 * rng.integers(5, 11) + 1), "sigma": float(rng.uniform(4, 10))}
    if kind == "zoom":
        return {"scale": float(rng.uniform(1.1, 2.0))}
    raise ValueError(f"unknown distortion {kind!r}; known: {DISTORTIONS}")


def strength_params(kind: str, u: float, direction: float) -> dict[str, float]:
    """Distortion ``kind`` at strength ``u`` ∈ [0, 1] (0 = identity); ``direction`` ∈ [0, 1) picks the sign /
    orientation so that two strengths of one triplet differ only in magnitude."""
    sign = 1.0 if direction < 0.5 else -1.0
    if kind == "rotate":
        return {"angle": sign * 180.0 * u}
    if kind == "translate":
        a = 2 * math.pi * direction
        return {"dx": 0.5 * u * math.cos(a), "dy": 0.5 * u * math.sin(a)}
    if kind == "darken":
        return {"brightness": 1.0 - 0.9 * u}
    if kind == "colour":
        return {"hue": sign * 0.5 * u}
    if kind == "blur":
        return {"kernel": 21.0, "sigma": 10.0 * u}
    if kind == "zoom":
        return {"scale": 1.0 + u}
    raise ValueError(f"unknown distortion {kind!r}; known: {DISTORTIONS}")


def distort(img: torch.Tensor, kind: str, params: dict[str, float], style: str = "authors") -> torch.Tensor:
    """Apply distortion ``kind`` to one image ``(3, H, W)`` in [0, 1] (black fill outside the image).

    ``style="authors"``: nearest-neighbour rotations and affine maps, shifts rounded to whole pixels (as
    torchvision's RandomRotation / RandomAffine draw them); ``"smooth"``: bilinear, sub-pixel shifts.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}; got {style!r}")
    h, w = img.shape[-2:]
    bil = InterpolationMode.NEAREST if style == "authors" else InterpolationMode.BILINEAR
    if kind == "rotate":
        out = TF.rotate(img, params["angle"], interpolation=bil, fill=0.0)
    elif kind == "translate":
        shift = [params["dx"] * w, params["dy"] * h]
        if style == "authors":
            shift = [int(round(v)) for v in shift]
        out = TF.affine(img, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], interpolation=bil, fill=0.0)
    elif kind == "darken":
        out = TF.adjust_brightness(img, params["brightness"])
    elif kind == "colour":
        out = TF.adjust_hue(img, params["hue"])
    elif kind == "blur":
        k = [int(params["kernel"])] * 2 if "kernel" in params else [int(params["kernel_x"]), int(params["kernel_y"])]
        out = img if params["sigma"] < 1e-3 else TF.gaussian_blur(img, k, [params["sigma"]] * 2)
    elif kind == "zoom":
        out = TF.affine(img, angle=0.0, translate=[0.0, 0.0], scale=params["scale"], shear=[0.0, 0.0],
                        interpolation=bil, fill=0.0)
    else:
        raise ValueError(f"unknown distortion {kind!r}; known: {DISTORTIONS}")
    return out.clamp(0, 1)


def _reference_images(photos, size: int | None, positions=slice(None)) -> torch.Tensor:
    """Images of the reference set in one read (rows are stored in gzip chunks of 64 images), resized to
    ``size`` (antialiased bilinear)."""
    import torch.nn.functional as F

    x = photos.batch(positions)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x


def _u8(t: torch.Tensor) -> np.ndarray:
    """(…, 3, H, W) float in [0, 1] → (…, H, W, 3) uint8."""
    return (t.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).numpy()


# ------------------------------------------------------------------------------------ adaptation image set

def make_distortion_set(photos_path: str | Path, out: str | Path, *, seed: int, max_images: int | None = None,
                        image_size: int | None = None, style: str = "authors", draws: int = 1) -> Path:
    """Every reference crop of ``photos`` followed by ``draws`` independent draws of its six distortions (paper
    ranges), as one dataset file.

    Rows come in blocks of 1 + 6 x draws (original, then ``DISTORTIONS`` in order for draw 0, 1, …);
    ``meta/ref`` is the row of the block's original, ``meta/distortion`` the code (-1 original), ``meta/draw``
    the draw, ``meta/photo_row`` the reference's row in ``photos``; ``split`` keeps the reference set's split
    (for ``photos``: by source photograph). Several draws let the adaptation see fresh parameters every epoch
    (the authors draw a new random transform each time an image is loaded).
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1; got {draws}")
    from percept.data.store import ImageDataset, fingerprint, write_image_dataset

    photos = ImageDataset(photos_path)
    split_codes = np.asarray(photos._h5()["split"][...])[photos.rows]
    n = len(photos) if max_images is None else min(len(photos), max_images)
    # Spread a capped selection over both splits (every k-th crop) rather than the first photos only.
    pick = np.linspace(0, len(photos) - 1, n).round().astype(int) if n < len(photos) else np.arange(n)
    images, split, ref, code, draw = [], [], [], [], []
    crops = _reference_images(photos, image_size, pick)
    for x, i in zip(crops, pick):
        rng = seeds.rng(seed, "similarity.distortion_params", int(i))
        block = [x] + [distort(x, kind, p, style) for _ in range(draws) for kind in DISTORTIONS
                       for p in [sample_params(kind, rng, style)]]
        start = len(images)
        images.append(_u8(torch.stack(block)))
        split += [int(split_codes[i])] * len(block)
        ref += [start * len(block)] * len(block)
        code += [-1, *range(len(DISTORTIONS))] * 1 + list(range(len(DISTORTIONS))) * (draws - 1)
        draw += [0] + [k for k in range(draws) for _ in DISTORTIONS]
    imgs = np.concatenate(images)
    meta = {"ref": np.array(ref, np.int64), "distortion": np.array(code, np.int64), "draw": np.array(draw, np.int64),
            "photo_row": np.repeat(pick, 1 + len(DISTORTIONS) * draws).astype(np.int64)}
    write_image_dataset(out, name="dps_distortions", images=imgs, split=np.array(split),
                        split_names=photos.split_names, fingerprint=fingerprint(
                            {"photos": photos.fingerprint, "seed": seed, "max_images": max_images, "size": image_size,
                             "style": style, "draws": draws, "v": 3}),
                        source="photo crops and their six distortions (DPS adaptation, Pihlgren, Sandin & Liwicki)",
                        meta=meta, extra_attrs={"distortions": list(DISTORTIONS), "draws": draws})
    return Path(out)


# --------------------------------------------------------------------------------------- synthetic 2AFC / JND

def make_synthetic_two_afc(photos_path: str | Path, out: str | Path, *, split: str, per_image: int, seed: int,
                           min_gap: float = 0.1, image_size: int | None = None) -> Path:
    """Synthetic 2AFC triplets in the BAPPS format: for each crop of ``split`` and each distortion,
    ``per_image`` pairs of strengths (u0, u1) at least ``min_gap`` apart; judge = σ((u0 - u1) / 0.1)."""
    from percept.data.bapps import write_bapps
    from percept.data.store import ImageDataset, fingerprint

    photos = ImageDataset(photos_path, split=split)
    refs, p0s, p1s, judge, cat = [], [], [], [], []
    crops = _reference_images(photos, image_size)
    for i in range(len(photos)):
        x = crops[i]
        for c, kind in enumerate(DISTORTIONS):
            rng = seeds.rng(seed, "similarity.synthetic_2afc", int(photos.rows[i]), c)
            for _ in range(per_image):
                u0, u1 = rng.uniform(0, 1, 2)
                while abs(u0 - u1) < min_gap:
                    u0, u1 = rng.uniform(0, 1, 2)
                direction = float(rng.uniform())
                refs.append(x)
                p0s.append(distort(x, kind, strength_params(kind, u0, direction), style="smooth"))
                p1s.append(distort(x, kind, strength_params(kind, u1, direction), style="smooth"))
                judge.append(1 / (1 + math.exp(-(u0 - u1) / JUDGE_TEMPERATURE)))
                cat.append(c)
    fp = fingerprint({"photos": photos.fingerprint, "split": split, "per_image": per_image, "seed": seed,
                      "min_gap": min_gap, "size": image_size, "v": 1})
    return write_bapps(out, kind="2afc", name=f"synthetic_2afc_{split}", split_name=split, fingerprint=fp,
                       source="synthetic 2AFC: two strengths of one distortion of a photo crop",
                       categories=DISTORTIONS, category=np.array(cat), score=np.array(judge),
                       images={"images": _u8(torch.stack(refs)), "p0": _u8(torch.stack(p0s)),
                               "p1": _u8(torch.stack(p1s))})


def make_synthetic_jnd(photos_path: str | Path, out: str | Path, *, split: str, per_image: int, seed: int,
                       image_size: int | None = None) -> Path:
    """Synthetic JND pairs in the BAPPS format: a crop and one distortion of it at strength u ~ U(0, 1);
    same = σ((0.2 - u) / 0.05) (weak distortions count as unnoticed)."""
    from percept.data.bapps import write_bapps
    from percept.data.store import ImageDataset, fingerprint

    photos = ImageDataset(photos_path, split=split)
    p0s, p1s, same, cat = [], [], [], []
    crops = _reference_images(photos, image_size)
    for i in range(len(photos)):
        x = crops[i]
        for c, kind in enumerate(DISTORTIONS):
            rng = seeds.rng(seed, "similarity.synthetic_jnd", int(photos.rows[i]), c)
            for _ in range(per_image):
                u = float(rng.uniform(0, 1))
                p0s.append(x)
                p1s.append(distort(x, kind, strength_params(kind, u, float(rng.uniform())), style="smooth"))
                same.append(1 / (1 + math.exp(-(JND_THRESHOLD - u) / JND_WIDTH)))
                cat.append(c)
    fp = fingerprint({"photos": photos.fingerprint, "split": split, "per_image": per_image, "seed": seed, "size": image_size,
                      "v": 1})
    return write_bapps(out, kind="jnd", name="synthetic_jnd", split_name=split, fingerprint=fp,
                       source="synthetic JND: a photo crop and one distortion of it", categories=DISTORTIONS,
                       category=np.array(cat), score=np.array(same),
                       images={"images": _u8(torch.stack(p0s)), "p1": _u8(torch.stack(p1s))})


# --------------------------------------------------------------------------------------- flaw challenge sets

def challenge_names() -> list[tuple[str, str]]:
    """(challenge, group) in row order after the original; the stain block and references follow."""
    out = [(f"translate_{t:g}", "translate") for t in TRANSLATIONS]
    out += [(f"rotate_{a}", "rotate") for a in ROTATIONS]
    out += [(f, "flip/invert") for f in FLIPS]
    return out


ROLES = ["original", *[c for c, _ in challenge_names()], "stain_original", "stain_clean", "stain",
         *[f"ref_{r}" for r in REFERENCES]]
STAIN_STYLES = ("authors", "disc")


def stain_anchors(stain_style: str = "authors") -> list[int]:
    """Per role, the row its distance is measured from: the stain pair from ``stain_original`` (authors) or
    from the item's original (the earlier disc block); everything else from the original."""
    anchor = "stain_original" if stain_style == "authors" else "original"
    return [ROLES.index(anchor) if r in ("stain_clean", "stain") else 0 for r in ROLES]


def _region(photo, cx: float, cy: float, side: float, size: int, angle: float = 0.0) -> np.ndarray:
    """The square of ``side`` centred at (cx, cy) of a photo (PIL image), rotated by ``angle`` about its
    centre, resized to ``size`` — rotations read the photo around the square, so no black corners."""
    from PIL import Image

    half = side * 0.75 if angle else side / 2
    box = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    crop = photo.crop(box)
    if angle:
        crop = crop.rotate(angle, resample=Image.Resampling.BILINEAR)
        m = (crop.size[0] - side) / 2
        crop = crop.crop((round(m), round(m), round(m + side), round(m + side)))
    return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))


def _stain_block(photo, rng: np.random.Generator, size: int, colours: np.ndarray) -> list[np.ndarray]:
    """(stain_original, stain_clean, stain) of the authors' colour-stain layout from one photo."""
    from PIL import Image

    w, h = photo.size
    patch = size // 2

    def crop():
        side = min(h, w) * rng.uniform(0.15, 0.3)
        x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
        return np.asarray(photo.crop((round(x), round(y), round(x + side), round(y + side)))
                          .resize((patch, patch), Image.Resampling.BILINEAR))

    content, other = crop(), crop()
    px, py = rng.integers(0, size - patch + 1, 2)
    field = np.empty((size, size, 3), np.uint8)
    field[:] = colours[rng.integers(len(colours))]
    white = np.full((size, size, 3), 255, np.uint8)
    out = []
    for background, thing in ((field, content), (field, other), (white, content)):
        img = background.copy()
        img[py:py + patch, px:px + patch] = thing
        out.append(img)
    return out


def make_challenges(out: str | Path, *, photos: Sequence[str], crops_per_photo: int, size: int, seed: int,
                    stain_style: str = "authors") -> Path:
    """The flaw challenge set: per crop, the rows of :data:`ROLES` (``meta/role`` codes, ``meta/item``).

    Translations shift the crop window over the photo by a fraction of its side; rotations turn the photo
    about the window's centre. The colour-stain block follows the authors' images (images/color_stain/ of
    guspih/deep_perceptual_similarity_analysis: ``X``, ``X_ref``, ``X_stain``): the ``original`` of a stain item
    is its own image, ``stain_original`` — a content patch (a photo crop of half the side) on a coloured field;
    ``stain_clean`` keeps the field and replaces the content (another crop of the photo at the same place);
    ``stain`` keeps the content and whitens the field. ``stain_style="disc"`` keeps this project's earlier
    block (a shifted clean crop vs the original with an opaque coloured disc, compared with the original).
    """
    from PIL import Image

    from percept.data.embedded import load_photo
    from percept.data.store import fingerprint, write_image_dataset

    if stain_style not in STAIN_STYLES:
        raise ValueError(f"stain_style must be one of {STAIN_STYLES}; got {stain_style!r}")
    images, role, item, src = [], [], [], []
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255]])
    plain = {"black": 0, "white": 255, "grey": 128}
    k = 0
    for p, name in enumerate(photos):
        arr = load_photo(name)
        photo = Image.fromarray(np.ascontiguousarray(arr))
        h, w = arr.shape[:2]
        for _ in range(crops_per_photo):
            rng = seeds.rng(seed, "similarity.challenge_crop", p, k)
            side = min(h, w) * rng.uniform(0.22, 0.32)
            margin_x = side * (0.5 + max(TRANSLATIONS)) + 2
            margin_y = side * 0.75 + 2
            cx, cy = rng.uniform(margin_x, w - margin_x), rng.uniform(margin_y, h - margin_y)
            rows = [_region(photo, cx, cy, side, size)]
            rows += [_region(photo, cx + t * side, cy, side, size) for t in TRANSLATIONS]
            rows += [_region(photo, cx, cy, side, size, angle=float(a)) for a in ROTATIONS]
            orig = rows[0]
            rows += [orig[:, ::-1], orig[::-1], 255 - orig]
            if stain_style == "authors":
                rows += _stain_block(photo, seeds.rng(seed, "similarity.challenge_stain", p, k), size, colours)
            else:
                rows.append(orig)  # stain_original: the disc block is measured from the original itself
                rows.append(_region(photo, cx + 0.06 * side, cy, side, size))
                stained = orig.copy()
                yy, xx = np.mgrid[:size, :size]
                r = rng.uniform(0.1, 0.18) * size
                sx, sy = rng.uniform(r, size - r, 2)
                stained[(yy - sy) ** 2 + (xx - sx) ** 2 <= r * r] = colours[rng.integers(len(colours))]
                rows.append(stained)
            for ref in REFERENCES:
                if ref in plain:
                    rows.append(np.full((size, size, 3), plain[ref], np.uint8))
                elif ref == "noise":
                    rows.append(rng.integers(0, 256, (size, size, 3)).astype(np.uint8))
                else:
                    img = np.zeros((size, size, 3), np.uint8)
                    img[..., ("red", "green", "blue").index(ref)] = 255
                    rows.append(img)
            assert len(rows) == len(ROLES)
            images += [np.ascontiguousarray(r_) for r_ in rows]
            role += list(range(len(ROLES)))
            item += [k] * len(ROLES)
            src += [p] * len(ROLES)
            k += 1
    params = {"photos": list(photos), "crops_per_photo": crops_per_photo, "size": size, "seed": seed,
              "stain_style": stain_style, "v": 2}
    write_image_dataset(out, name="dps_challenges", images=np.stack(images), split=np.zeros(len(images), np.uint8),
                        split_names=["test"], fingerprint=fingerprint(params),
                        source="flaw challenge set from the shipped photos (Sjögren, Pihlgren, Sandin & Liwicki, "
                               "NLDL 2023)",
                        meta={"role": np.array(role, np.int64), "item": np.array(item, np.int64),
                              "photo": np.array(src, np.int64)},
                        extra_attrs={"roles": ROLES, "groups": dict(challenge_names()),
                                     "anchors": stain_anchors(stain_style),
                                     "photo_names": list(photos), "params": params})
    return Path(out)


def challenge_passes(d: np.ndarray) -> list[dict[str, Any]]:
    """Pass/fail per challenge from distances ``d[item, role]`` to each row's anchor (``ROLES`` order; the
    stain pair's anchor is ``stain_original``, see :func:`stain_anchors`).

    A transformed image passes when it is not farther from its original than any reference (ties pass, as
    ``sum(aug_dist > ref_dist) == 0`` of the authors' analysis.py); the stain passes when the clean image
    (field kept, content replaced) is strictly closer to its anchor than the stained one (content kept, field
    changed).
    """
    col = {r: i for i, r in enumerate(ROLES)}
    refs = d[:, [col[f"ref_{r}"] for r in REFERENCES]].min(1)
    out = []
    for item in range(d.shape[0]):
        for name, group in challenge_names():
            out.append({"item": item, "challenge": name, "group": group,
                        "passed": bool(d[item, col[name]] <= refs[item])})
        out.append({"item": item, "challenge": "stain", "group": "stain",
                    "passed": bool(d[item, col["stain_clean"]] < d[item, col["stain"]])})
    return out


# ------------------------------------------------------------------------------ the authors' challenge folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def read_challenge_folder(path: str | Path, size: int | None = None) -> dict[str, Any]:
    """The flaws paper's challenge images in their own layout (guspih/deep_perceptual_similarity_analysis
    images/): ``ref/`` holds the plain references; every other folder is a challenge group whose originals are
    the images without ``_`` in the name and whose transformed images are the names containing an original's
    name and ``_`` (``dog.png`` → ``dog_22.jpg``, as analysis.py matches them). In ``color_stain/`` each
    original has ``X_ref`` (the field kept, the content replaced) and ``X_stain`` (the content kept, the field
    changed).

    Returns ``{"images": uint8 (N, S, S, 3), "refs": [rows], "pairs": [(group, original row, transformed row,
    name)], "stains": [(original row, ref row, stain row, name)]}``; images are read as RGB and resized to
    ``size`` (bilinear) when given, else they must share one size (the published ones are 96 x 96).
    """
    from PIL import Image

    root = Path(path)
    if not (root / "ref").is_dir():
        raise FileNotFoundError(f"{root}: no ref/ folder of plain reference images (the flaws paper's images/ layout)")
    images: list[np.ndarray] = []

    def load(p: Path) -> int:
        img = Image.open(p).convert("RGB")
        if size is not None:
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        images.append(np.asarray(img))
        return len(images) - 1

    def files(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    refs = [load(p) for p in files(root / "ref")]
    if not refs:
        raise ValueError(f"{root / 'ref'}: no reference images")
    pairs, stains = [], []
    for group in sorted(d for d in root.iterdir() if d.is_dir() and d.name != "ref"):
        found = files(group)
        for orig in (p for p in found if "_" not in p.stem):
            others = [p for p in found if orig.stem in p.stem and "_" in p.stem]
            if not others:
                continue
            o = load(orig)
            if group.name == "color_stain":
                by = {p.stem.rsplit("_", 1)[-1]: p for p in others}
                if set(by) != {"ref", "stain"}:
                    raise ValueError(f"{group}: {orig.name} needs exactly {orig.stem}_ref and {orig.stem}_stain, "
                                     f"found {[p.name for p in others]}")
                stains.append((o, load(by["ref"]), load(by["stain"]), orig.stem))
            else:
                pairs += [(group.name, o, load(p), p.stem) for p in others]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"{root}: images of several sizes {sorted(shapes)}; give a size to resize them to")
    return {"images": np.stack(images), "refs": refs, "pairs": pairs, "stains": stains}


def folder_passes(d_pair: np.ndarray, d_refs: np.ndarray, d_stain: np.ndarray, folder: dict[str, Any]
                  ) -> list[dict[str, Any]]:
    """Pass/fail of the folder's challenges: ``d_pair[i]`` = d(original, transformed) of pair i, ``d_refs[i, r]``
    = d(original of pair i, reference r), ``d_stain[j] = (d(original, X_ref), d(original, X_stain))``. Ties
    pass (analysis.py: ``sum(aug_dist > ref_dist) == 0``); a stain passes when X_ref is strictly closer."""
    out = []
    for i, (group, _, _, name) in enumerate(folder["pairs"]):
        out.append({"item": i, "challenge": name, "group": group, "passed": bool((d_pair[i] <= d_refs[i]).all())})
    for j, (_, _, _, name) in enumerate(folder["stains"]):
        out.append({"item": j, "challenge": name, "group": "color_stain",
                    "passed": bool(d_stain[j, 0] < d_stain[j, 1])})
    return out
