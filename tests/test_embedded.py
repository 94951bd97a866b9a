"""The embedded, offline datasets: synthetic shape scenes (masks, positions) and photo crops split by photo."""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest
from PIL import Image

from percept.data import embedded
from percept.data.embedded import load_photo, make_photos, make_shapes
from percept.data.store import ImageDataset

CLASSES = ["circle", "square", "triangle", "star"]
BACKGROUNDS = ["brick", "grass", "gravel", "coffee", "chelsea", "astronaut"]
SIZE = 48
N_TRAIN, N_TEST = 160, 40


def shapes_kwargs(**over):
    kw = dict(n_train=N_TRAIN, n_test=N_TEST, image_size=SIZE, classes=CLASSES, objects_per_image=[1, 2],
              object_size=[0.3, 0.55], backgrounds=BACKGROUNDS, seed=0, progress=False)
    kw.update(over)
    return kw


def read(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("images", "segmentation", "positions", "labels", "split")}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """200 scenes, with every object mask the generator drew recorded per scene."""
    path = tmp_path_factory.mktemp("shapes") / "shapes.h5"
    drawn: list[list[tuple[str, np.ndarray]]] = []
    real_render, real_mask = embedded.render_scene, embedded.shape_mask

    def render(rng, size, classes, n_objects, *args, **kwargs):
        drawn.append([])
        out = real_render(rng, size, classes, n_objects, *args, **kwargs)
        # a layout that found no room is drawn again: the scene's objects are the last n_objects masks
        drawn[-1] = drawn[-1][len(drawn[-1]) - n_objects:]
        return out

    def mask(kind, *args, **kwargs):
        m = real_mask(kind, *args, **kwargs)
        drawn[-1].append((kind, m.copy()))
        return m

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(embedded, "render_scene", render)
        mp.setattr(embedded, "shape_mask", mask)
        make_shapes(str(path), **shapes_kwargs())
    assert len(drawn) == N_TRAIN + N_TEST
    return path, read(path), drawn


def test_layout_and_split(shapes):
    path, a, _ = shapes
    n = N_TRAIN + N_TEST
    assert a["images"].shape == (n, SIZE, SIZE, 3) and a["images"].dtype == np.uint8
    assert a["segmentation"].shape == (n, SIZE, SIZE)
    assert a["positions"].shape == (n, len(CLASSES), 2)
    assert a["labels"].shape == (n, len(CLASSES)) and a["labels"].dtype == np.float32
    np.testing.assert_array_equal(a["split"], [0] * N_TRAIN + [1] * N_TEST)
    ds = ImageDataset(path, split="test")
    assert ds.name == "shapes" and ds.label_kind == "multi" and ds.class_names == CLASSES
    assert len(ds) == N_TEST and ds.attrs["params"]["seed"] == 0
    assert set(np.unique(a["segmentation"])) <= set(range(len(CLASSES) + 1))


def test_same_seed_is_identical_and_other_seed_differs(tmp_path, shapes):
    _, a, _ = shapes
    make_shapes(str(tmp_path / "a.h5"), **shapes_kwargs(n_train=6, n_test=2))
    make_shapes(str(tmp_path / "b.h5"), **shapes_kwargs(n_train=6, n_test=2))
    make_shapes(str(tmp_path / "c.h5"), **shapes_kwargs(n_train=6, n_test=2, seed=1))
    first, again, other = read(tmp_path / "a.h5"), read(tmp_path / "b.h5"), read(tmp_path / "c.h5")
    for key in ("images", "segmentation", "labels"):
        np.testing.assert_array_equal(first[key], again[key])
        # image i depends only on (seed, i), not on how many images are generated
        np.testing.assert_array_equal(first[key], a[key][:8])
    np.testing.assert_array_equal(first["positions"], a["positions"][:8])
    assert not np.array_equal(first["images"], other["images"])
    assert not np.array_equal(first["segmentation"], other["segmentation"])
    assert ImageDataset(tmp_path / "a.h5").fingerprint == ImageDataset(tmp_path / "b.h5").fingerprint
    assert ImageDataset(tmp_path / "a.h5").fingerprint != ImageDataset(tmp_path / "c.h5").fingerprint


def test_labels_are_the_classes_present(shapes):
    _, a, drawn = shapes
    for i in range(len(a["images"])):
        present = {k for k in range(len(CLASSES)) if (a["segmentation"][i] == k + 1).any()}
        assert set(np.flatnonzero(a["labels"][i])) == present
        # every object the generator drew is visible and labelled with its own shape's class
        assert {CLASSES.index(kind) for kind, _ in drawn[i]} == present
    assert set(np.unique(a["labels"])) == {0.0, 1.0}


def test_object_counts_respect_objects_per_image(shapes):
    _, a, drawn = shapes
    counts = a["labels"].sum(axis=1)
    assert counts.min() == 1 and counts.max() == 2
    assert 0.25 < (counts == 2).mean() < 0.75  # both counts occur, about equally often
    assert [len(d) for d in drawn] == counts.astype(int).tolist()
    for k in range(len(CLASSES)):  # every class occurs in a fair share of the images
        assert 0.2 < a["labels"][:, k].mean() < 0.55


def test_objects_do_not_overlap(shapes):
    _, a, drawn = shapes
    for i, objects in enumerate(drawn):
        for (_, m1), (_, m2) in itertools.combinations(objects, 2):
            assert not (m1 & m2).any(), f"objects overlap in image {i}"
        for kind, m in objects:  # so no object is partly hidden: its segmentation is its whole mask
            np.testing.assert_array_equal(a["segmentation"][i] == CLASSES.index(kind) + 1, m)


def test_positions_are_mask_centroids(shapes):
    _, a, _ = shapes
    worst = 0.0
    for i in range(len(a["images"])):
        for k in range(len(CLASSES)):
            pos = a["positions"][i, k]
            if not a["labels"][i, k]:
                assert np.isnan(pos).all()
                continue
            assert np.isfinite(pos).all() and (0 < pos).all() and (pos < 1).all()
            rows, cols = np.nonzero(a["segmentation"][i] == k + 1)
            assert len(rows) > 20  # objects are not specks
            centroid = np.array([cols.mean(), rows.mean()])  # (x, y) in pixels
            worst = max(worst, float(np.abs(pos * SIZE - centroid).max()))
    assert worst < 2.0


def test_object_colour_is_independent_of_class(shapes):
    """Colour is drawn independently of the shape: per-class mean colours agree within sampling noise."""
    _, a, _ = shapes
    colours: dict[int, list[np.ndarray]] = {k: [] for k in range(len(CLASSES))}
    for i in range(len(a["images"])):
        for k in np.flatnonzero(a["labels"][i]):
            m = a["segmentation"][i] == k + 1
            inner = embedded._erode(m)  # the outline is darkened; the interior is one flat colour
            pix = a["images"][i][inner].astype(float)
            assert np.ptp(pix, axis=0).max() <= 1.0  # flat fill: the object's colour is exact
            colours[k].append(pix.mean(axis=0))
    means = np.array([np.mean(colours[k], axis=0) for k in colours])  # (K, 3)
    spread = np.concatenate([np.array(c) for c in colours.values()]).std(axis=0)
    assert (spread > 40).all()  # colours really vary a lot within every class ...
    assert np.abs(means[:, None] - means[None]).max() < 35  # ... but not between classes
    brightness = {k: np.mean(c) for k, c in colours.items()}
    assert max(brightness.values()) - min(brightness.values()) < 25


def test_objects_have_an_outline_and_background_is_a_photo(shapes):
    _, a, _ = shapes
    img, seg = a["images"][0].astype(float), a["segmentation"][0]
    k = int(np.flatnonzero(a["labels"][0])[0])
    m = seg == k + 1
    inner, edge = embedded._erode(m), m & ~embedded._erode(m)
    assert img[edge].mean() < 0.5 * img[inner].mean()  # outline darkened to 35 %
    assert img[seg == 0].std(axis=0).max() > 3  # a textured background, not a flat fill


@pytest.mark.parametrize("over, match", [
    ({"classes": ["circle", "blob"]}, r"unknown shape classes \['blob'\]"),
    ({"objects_per_image": [1, 5]}, r"min <= max <= number of classes \(4\)"),
    ({"objects_per_image": [0, 1]}, "objects_per_image must satisfy"),
    ({"objects_per_image": [2, 1]}, "objects_per_image must satisfy"),
])
def test_make_shapes_rejects_bad_parameters(tmp_path, over, match):
    with pytest.raises(ValueError, match=match):
        make_shapes(str(tmp_path / "x.h5"), **shapes_kwargs(n_train=2, n_test=1, **over))
    assert list(tmp_path.iterdir()) == []


def test_shape_polygons():
    with pytest.raises(ValueError, match="unknown shape 'blob'"):
        embedded.shape_polygon("blob", 10, 10, 5, 0)
    assert embedded.shape_polygon("circle", 10, 10, 5, 0) is None
    for kind, n in (("square", 4), ("triangle", 3), ("hexagon", 6), ("star", 10), ("cross", 12)):
        poly = embedded.shape_polygon(kind, 20.0, 30.0, 8.0, 0.3)
        assert poly.shape == (n, 2)
        np.testing.assert_allclose(poly.mean(axis=0), [30.0, 20.0], atol=1e-9)  # (row, col) around the centre
        assert np.hypot(poly[:, 0] - 30, poly[:, 1] - 20).max() <= 8.0 + 1e-9  # inside the circumcircle
    # a square of circumradius r has area 2 r^2; the rasterised mask agrees within the outline's pixels
    m = embedded.shape_mask("square", 64, 32.0, 32.0, 20.0, 0.0)
    assert abs(m.sum() - 2 * 20.0**2) < 4 * 20 * np.sqrt(2) * 0.6


# -- photos -----------------------------------------------------------------------------------------------


def test_make_photos_splits_by_photo(tmp_path):
    path = tmp_path / "photos.h5"
    train, test = ["astronaut", "chelsea", "camera"], ["rocket", "coffee"]
    make_photos(str(path), crop_size=32, crops_per_photo=4, train_photos=train, test_photos=test,
                crop_scale=[0.3, 0.8], seed=0)
    tr, te = ImageDataset(path, split="train"), ImageDataset(path, split="test")
    assert len(tr) == 12 and len(te) == 8 and tr.image_shape == (32, 32, 3)
    assert tr.label_kind == "none" and tr.labels() is None
    assert tr.attrs["photo_names"] == train + test
    ids_train, ids_test = tr.meta("photo"), te.meta("photo")
    assert set(ids_train) == {0, 1, 2} and set(ids_test) == {3, 4}
    assert not set(ids_train) & set(ids_test)
    assert np.bincount(np.r_[ids_train, ids_test]).tolist() == [4] * 5
    x = tr.batch(slice(None)).numpy()
    assert not np.array_equal(x[0], x[1])  # crops of one photo differ
    grey = x[ids_train == 2]  # 'camera' is a grey photo: three equal channels
    np.testing.assert_array_equal(grey[:, 0], grey[:, 1])
    np.testing.assert_array_equal(grey[:, 0], grey[:, 2])


def test_make_photos_full_scale_crop_is_the_resized_photo(tmp_path):
    path = tmp_path / "photos.h5"
    make_photos(str(path), crop_size=24, crops_per_photo=2, train_photos=["astronaut"], test_photos=["grass"],
                crop_scale=[1.0, 1.0], seed=5)
    x = ImageDataset(path, split="train").batch(slice(None)).numpy()
    photo = load_photo("astronaut")  # 512 x 512: the full-scale crop is the whole photo
    want = np.asarray(Image.fromarray(np.ascontiguousarray(photo)).resize((24, 24), Image.Resampling.BILINEAR))
    for crop in x:
        np.testing.assert_allclose(crop.transpose(1, 2, 0) * 255, want, atol=1e-3)


def test_make_photos_is_deterministic(tmp_path):
    kw = dict(crop_size=16, crops_per_photo=3, train_photos=["chelsea"], test_photos=["coffee"],
              crop_scale=[0.3, 0.8])
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        make_photos(str(tmp_path / f"{name}.h5"), seed=seed, **kw)
    a, b, c = (ImageDataset(tmp_path / f"{n}.h5").batch(slice(None)) for n in "abc")
    assert (a == b).all()
    assert not (a == c).all()


def test_make_photos_rejects_overlapping_photo_lists(tmp_path):
    with pytest.raises(ValueError, match=r"photos \['chelsea'\] are in both train_photos and test_photos"):
        make_photos(str(tmp_path / "p.h5"), crop_size=16, crops_per_photo=1, train_photos=["astronaut", "chelsea"],
                    test_photos=["chelsea", "rocket"], crop_scale=[0.3, 0.8], seed=0)
    assert list(tmp_path.iterdir()) == []


def test_load_photo():
    with pytest.raises(KeyError, match="unknown photo 'lena'; shipped photos: .*'chelsea'"):
        load_photo("lena")
    cat = load_photo("chelsea")
    assert cat.shape == (300, 451, 3) and cat.dtype == np.uint8
    assert not cat.flags.writeable  # shared through the cache: must not be modified
    cam = load_photo("camera")
    assert cam.shape == (512, 512, 3) and (cam[..., 0] == cam[..., 2]).all()


def test_crowded_scenes_still_do_not_overlap(monkeypatch):
    """Three large objects in a small image: layouts that find no room are redrawn, never overlapped."""
    masks: list[np.ndarray] = []
    real_mask = embedded.shape_mask

    def record(*args, **kwargs):
        masks.append(real_mask(*args, **kwargs))
        return masks[-1]

    monkeypatch.setattr(embedded, "shape_mask", record)
    classes = ["circle", "square", "triangle", "cross", "hexagon"]
    for i in range(25):
        masks.clear()
        rng = np.random.default_rng([3, i])
        img, seg, pos = embedded.render_scene(rng, 48, classes, 3, (0.35, 0.45), ["grass"])
        objects = masks[-3:]  # the layout that was kept
        assert sum(m.sum() for m in objects) == (seg > 0).sum()  # disjoint, and none hidden
        for k in range(len(classes)):
            present = (seg == k + 1).any()
            assert present == np.isfinite(pos[k]).all()


def test_impossible_layout_raises_instead_of_overlapping():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cannot place 4 non-overlapping objects .* lower objects_per_image"):
        embedded.render_scene(rng, 32, CLASSES, 4, (0.6, 0.6), ["grass"])
