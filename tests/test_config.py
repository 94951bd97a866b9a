"""validate_config: the JSON schema (with registry enumerations), semantic checks and defaults."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from percept import backbones
from percept.config import ConfigError, coerce_overrides, dataset_names, downloadable_sources, load_config, schema, \
    validate_config
from percept.data.embedded import PHOTO_SOURCES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_text() -> str:
    return (ROOT / "config.yaml").read_text()


@pytest.fixture
def cfg(default_text) -> dict:
    """A fresh copy of the repository's config.yaml (not yet validated)."""
    return yaml.safe_load(default_text)


def errors_of(config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config, source="test.yaml")
    msg = str(info.value)
    assert msg.startswith("invalid configuration (test.yaml):")
    assert "config.schema.yaml" in msg
    return msg


def test_repository_config_validates(cfg):
    out = validate_config(cfg)
    assert out is cfg  # validated in place
    assert cfg["seed"] == 0 and cfg["device"] == "auto"


def test_end_to_end_test_config_validates():
    config = load_config(ROOT / "tests" / "config.yaml")
    assert config["features"][1]["dtype"] == "float16"


def test_defaults_are_filled(cfg):
    del cfg["downloads"], cfg["device"], cfg["backbone_check"]
    assert "weights" not in cfg["features"][0] and "dtype" not in cfg["features"][2]
    cfg["features"][1]["weights"] = "random"
    validate_config(cfg)
    for entry in cfg["features"][:1] + cfg["features"][2:]:
        assert entry["weights"] == "imagenet"
    assert cfg["features"][1]["weights"] == "random"  # given values are kept
    first = cfg["features"][0]
    assert first["batch_size"] == 64 and cfg["features"][2]["dtype"] == "float32"  # [0] gives float16
    assert first["split"] is None and first["resize"] is None and first["taps"] == "paper"
    assert "name" not in first  # no default: derived by percept.plan.entry_name
    assert cfg["downloads"] == {"sources": [], "mirror": None, "checksums": {}, "prepare": {}}
    assert cfg["device"] == "auto" and cfg["allow_download"] is False and cfg["imagenet_val"] is None
    assert cfg["datasets"]["shapes"]["object_size"] == [0.3, 0.55]
    assert cfg["datasets"]["photos"]["crop_scale"] == [0.3, 0.8]
    assert cfg["datasets"]["photos"]["test_photos"] == ["rocket", "flower", "retina", "grass"]
    assert cfg["backbone_check"]["random_baseline"] is True
    assert cfg["backbone_check"]["backbones"] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def test_defaults_do_not_alias(cfg):
    validate_config(cfg)
    cfg["downloads"]["sources"].append("stl10")
    fresh = validate_config({"seed": 1, "datasets": {"shapes": {"n_train": 1, "n_test": 1, "image_size": 32},
                                                     "photos": {"crop_size": 32, "crops_per_photo": 1}},
                             "features": []})
    assert fresh["downloads"]["sources"] == []


def test_schema_enumerations_come_from_the_registries():
    defs = schema()["$defs"]
    assert defs["backbone"]["enum"] == list(backbones.NAMES)
    assert defs["photo"]["enum"] == sorted(PHOTO_SOURCES)
    assert defs["source"]["enum"] == downloadable_sources()
    assert defs["dataset"]["enum"] == dataset_names()
    assert dataset_names()[:2] == ["shapes", "photos"] and "imagenet_val" in dataset_names()


# -- one bad key at a time ----------------------------------------------------------------------------------


def test_wrong_type(cfg):
    cfg["seed"] = "zero"
    assert "seed: 'zero' has the wrong type; expected integer" in errors_of(cfg)


def test_unknown_backbone_lists_allowed_values(cfg):
    cfg["features"][2]["backbone"] = "resnet9000"
    msg = errors_of(cfg)
    assert "features[2].backbone: 'resnet9000' is not allowed; allowed values: " + ", ".join(backbones.NAMES) in msg


def test_unknown_dataset_lists_allowed_values(cfg):
    cfg["features"][0]["dataset"] = "mnist"
    msg = errors_of(cfg)
    assert "features[0].dataset: 'mnist' is not allowed; allowed values: shapes, photos, magnification, small_objects, stl10" in msg
    assert "imagenet_val" in msg


@pytest.mark.parametrize("key, value, message", [
    ("n_train", -1, "datasets.shapes.n_train: -1 is less than the minimum of 1"),
    ("n_train", 0, "datasets.shapes.n_train: 0 is less than the minimum of 1"),
    ("n_test", 0, "datasets.shapes.n_test: 0 is less than the minimum of 1"),
    ("image_size", 16, "datasets.shapes.image_size: 16 is less than the minimum of 32"),
    ("n_test", 2.5, "datasets.shapes.n_test: 2.5 has the wrong type; expected integer"),
])
def test_bad_counts(cfg, key, value, message):
    cfg["datasets"]["shapes"][key] = value
    assert message in errors_of(cfg)


def test_missing_required_key(cfg):
    del cfg["datasets"]["shapes"]["image_size"]
    assert "datasets.shapes: 'image_size' is a required property" in errors_of(cfg)
    del cfg["features"]
    assert "(top level): 'features' is a required property" in errors_of(cfg)


def test_unknown_top_level_key(cfg):
    cfg["sead"] = 1
    msg = errors_of(cfg)
    assert "(top level): unknown key(s) 'sead'; allowed keys: allow_download, " in msg and "datasets" in msg


def test_unknown_nested_key(cfg):
    cfg["features"][0]["batchsize"] = 8
    msg = errors_of(cfg)
    assert "features[0]: unknown key(s) 'batchsize'; allowed keys: amp, backbone, batch_size, dataset" in msg


def test_unknown_tap_for_backbone(cfg):
    cfg["features"][2]["taps"] = ["_blocks.3", "layer2"]
    msg = errors_of(cfg)
    assert "features[2].taps: unknown tap(s) ['layer2'] for backbone efficientnet_lite1" in msg
    assert "'_stem_act'" in msg  # lists the registry's taps


def test_named_tap_set_missing_for_backbone(cfg):
    cfg["features"][0]["taps"] = "lpips"
    assert "features[0].taps: backbone efficientnet_lite0 has no 'lpips' taps" in errors_of(cfg)


def test_bad_tap_selection_type(cfg):
    cfg["features"][0]["taps"] = "deep"
    msg = errors_of(cfg)
    assert "features[0].taps: 'deep' is not valid" in msg and "'paper'" in msg and "'lpips'" in msg


def test_image_too_small_for_backbone(cfg):
    n = len(cfg["features"])  # the entry the test appends
    assert backbones.get("alexnet").min_input_size == 63
    assert backbones.get("efficientnet_lite0").min_input_size == 32
    cfg["datasets"]["photos"]["crop_size"] = 48  # fine for EfficientNet-Lite ...
    cfg["features"].append({"dataset": "photos", "backbone": "alexnet", "weights": "random"})
    msg = errors_of(cfg)  # ... but not for AlexNet
    assert (f"features[{n}]: images of 48x48 are too small for alexnet (needs at least 63); "
            f"set features[{n}].resize to at least 63") in msg
    assert "features[2]" not in msg
    cfg["features"][n]["resize"] = 64
    validate_config(cfg)


def test_resize_below_min_input_size(cfg):
    n = len(cfg["features"])  # the entry the test appends
    cfg["features"].append({"dataset": "shapes", "backbone": "inception_v3", "weights": "random", "resize": 64})
    assert f"features[{n}]: images of 64x64 are too small for inception_v3 (needs at least 75)" in errors_of(cfg)


@pytest.mark.parametrize("device", ["gpu", "cuda0", "CPU", "cuda:x"])
def test_bad_device(cfg, device):
    cfg["device"] = device
    assert f"device: '{device}' does not match" in errors_of(cfg)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "auto"])
def test_good_device(cfg, device):
    cfg["device"] = device
    validate_config(cfg)


def test_more_objects_than_classes(cfg):
    cfg["datasets"]["shapes"]["objects_per_image"] = [1, 5]
    assert ("datasets.shapes.objects_per_image: [1, 5] must satisfy min <= max <= number of classes (4)"
            in errors_of(cfg))


def test_objects_per_image_min_above_max(cfg):
    cfg["datasets"]["shapes"]["objects_per_image"] = [2, 1]
    assert "datasets.shapes.objects_per_image: [2, 1] must satisfy min <= max" in errors_of(cfg)


def test_train_test_photo_overlap(cfg):
    cfg["datasets"]["photos"]["train_photos"] = ["astronaut", "chelsea"]
    cfg["datasets"]["photos"]["test_photos"] = ["chelsea", "rocket"]
    assert "datasets.photos: photos ['chelsea'] are in both train_photos and test_photos" in errors_of(cfg)


def test_unknown_photo_lists_the_shipped_photos(cfg):
    cfg["backbone_check"]["photos"] = ["chelsea", "lena"]
    msg = errors_of(cfg)
    assert "backbone_check.photos[1]: 'lena' is not allowed; allowed values: " + ", ".join(sorted(PHOTO_SOURCES)) in msg


def test_duplicate_feature_cache_names(cfg):
    n = len(cfg["features"])  # the entry the test appends
    cfg["features"].append({"dataset": "shapes", "backbone": "efficientnet_lite0", "taps": "all"})
    msg = errors_of(cfg)
    assert (f"features[{n}]: writes the same file as features[0] (data/features/shapes/efficientnet_lite0.h5); "
            "give one of them a distinct name") in msg
    cfg["features"][n]["name"] = "lite0-all"
    validate_config(cfg)


def test_same_backbone_on_two_datasets_is_not_a_duplicate(cfg):
    pairs = [(f["dataset"], f["backbone"]) for f in cfg["features"]]
    assert ("shapes", "efficientnet_lite0") in pairs and ("photos", "efficientnet_lite0") in pairs
    validate_config(cfg)


def test_imagenet_val_needs_an_existing_folder(cfg, tmp_path):
    n = len(cfg["features"])  # the entry the test appends
    cfg["features"].append({"dataset": "imagenet_val", "backbone": "efficientnet_lite0"})
    good = copy.deepcopy(cfg)
    assert f"features[{n}].dataset: imagenet_val needs imagenet_val" in errors_of(copy.deepcopy(cfg))
    cfg["imagenet_val"] = str(tmp_path / "missing")
    assert f"imagenet_val: '{tmp_path / 'missing'}' is not a directory" in errors_of(cfg)
    good["imagenet_val"] = str(tmp_path)
    validate_config(good)


def test_downloadable_dataset_must_be_listed(cfg):
    n = len(cfg["features"])  # the entry the test appends
    assert "stl10" in downloadable_sources()
    cfg["features"].append({"dataset": "stl10", "backbone": "efficientnet_lite0"})
    good = copy.deepcopy(cfg)
    msg = errors_of(cfg)
    assert f"features[{n}].dataset: 'stl10' must be downloaded first; add it to downloads.sources (currently [])" in msg
    good["downloads"]["sources"] = ["stl10"]
    validate_config(good)


def test_unknown_download_source_lists_sources(cfg):
    cfg["downloads"]["sources"] = ["imagenet"]
    msg = errors_of(cfg)
    assert "downloads.sources[0]: 'imagenet' is not allowed; allowed values: " + ", ".join(downloadable_sources()) in msg


def test_unknown_prepare_entry(cfg):
    cfg["downloads"]["prepare"] = {"stl10": {"max_images": 10}, "cifar": {}}
    assert "downloads.prepare: unknown dataset(s) ['cifar']; allowed: stl10" in errors_of(cfg)


@pytest.mark.parametrize("value, message", [
    ([0, 0.5], "datasets.shapes.object_size[0]: 0 is less than or equal to the minimum of 0"),
    ([-0.1, 0.5], "datasets.shapes.object_size[0]: -0.1 is less than or equal to the minimum of 0"),
    ([0.3, 1.5], "datasets.shapes.object_size[1]: 1.5 is greater than the maximum of 1"),
    ([0.6, 0.4], "datasets.shapes.object_size: [0.6, 0.4] must be [min, max] with min <= max"),
    ([0.3], "datasets.shapes.object_size: [0.3] is too short"),
])
def test_object_size_outside_unit_interval(cfg, value, message):
    cfg["datasets"]["shapes"]["object_size"] = value
    assert message in errors_of(cfg)


def test_object_size_of_one_is_allowed(cfg):
    cfg["datasets"]["shapes"]["object_size"] = [0.5, 1.0]
    validate_config(cfg)


def test_crop_scale_order(cfg):
    cfg["datasets"]["photos"]["crop_scale"] = [0.9, 0.2]
    assert "datasets.photos.crop_scale: [0.9, 0.2] must be [min, max] with min <= max" in errors_of(cfg)


def test_bad_weights_and_dtype_list_allowed_values(cfg):
    cfg["features"][0]["weights"] = "coco"
    cfg["features"][1]["dtype"] = "bfloat16"
    msg = errors_of(cfg)
    assert "features[0].weights: 'coco' is not allowed; allowed values: imagenet, random" in msg
    assert "features[1].dtype: 'bfloat16' is not allowed; allowed values: float32, float16" in msg


def test_unknown_shape_class(cfg):
    cfg["datasets"]["shapes"]["classes"] = ["circle", "blob"]
    assert ("datasets.shapes.classes[1]: 'blob' is not allowed; allowed values: circle, square, triangle, star, "
            "cross, hexagon") in errors_of(cfg)


def test_several_problems_are_reported_at_once(cfg):
    cfg["seed"] = -3
    cfg["device"] = "gpu"
    cfg["features"][3]["backbone"] = "vgg99"
    msg = errors_of(cfg)
    lines = [line for line in msg.splitlines() if line.startswith("  - ")]
    assert len(lines) == 3
    assert any(line.startswith("  - seed: -3 is less than the minimum of 0") for line in lines)
    assert any(line.startswith("  - device: 'gpu'") for line in lines)
    assert any(line.startswith("  - features[3].backbone: 'vgg99'") for line in lines)


def test_load_config_names_the_file(tmp_path, default_text):
    path = tmp_path / "bad.yaml"
    path.write_text(default_text.replace("n_train: 1600", "n_train: many"))
    with pytest.raises(ConfigError, match=r"invalid configuration \(.*bad.yaml\):\n  - datasets.shapes.n_train: "
                                          r"'many' has the wrong type"):
        load_config(path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="'seed' is a required property"):
        load_config(empty)


# --- nested --config overrides: Snakemake's YAML base loader hands their scalars over as strings ---


def test_override_strings_become_the_schema_types(cfg):
    over = coerce_overrides({"explain": {"rise": {"n_masks": "128", "p": "0.25", "vary": {"sampler": ["shapley"]}},
                                         "channels": {"enabled": "false"}},
                             "progress": "true", "seed": 3})
    assert over["explain"]["rise"]["n_masks"] == 128 and type(over["explain"]["rise"]["n_masks"]) is int
    assert over["explain"]["rise"]["p"] == 0.25 and over["explain"]["channels"]["enabled"] is False
    assert over["explain"]["rise"]["vary"]["sampler"] == ["shapley"]  # an enum of strings stays a string
    assert over["progress"] is True and over["seed"] == 3
    from snakemake.utils import update_config

    update_config(cfg, over)
    assert validate_config(cfg)["explain"]["rise"]["n_masks"] == 128


def test_override_coercion_follows_refs_lists_and_one_of():
    over = coerce_overrides({
        "features": [{"dataset": "shapes", "backbone": "alexnet", "resize": "null", "batch_size": "16"}],
        "loss_networks": {"networks": [{"backbone": "alexnet", "resize": "64"}], "taps": ["0", "3"]},
        "similarity": {"calibration": {"lr": "1e-3"}},
    })
    assert over["features"][0] == {"dataset": "shapes", "backbone": "alexnet", "resize": None, "batch_size": 16}
    assert over["loss_networks"]["taps"] == [0, 3]  # the list branch of taps' oneOf: integers
    assert over["loss_networks"]["networks"][0]["resize"] == 64
    assert over["similarity"]["calibration"]["lr"] == 0.001


@pytest.mark.parametrize("over", [
    {"device": "cpu"},                                      # a plain string
    {"imagenet_val": "null"},                               # [string, null]: the string may be meant; kept
    {"features": [{"backbone": "alexnet", "taps": "paper"}]},   # oneOf string enum | list: kept
    {"explain": {"classifiers": [{"name": "123"}]}},        # a name that looks like a number stays a name
    {"explain": {"rise": {"n_masks": "many"}}},             # not an integer: left for validation to refuse
    {"explain": {"rise": {"n_masks": "1.5"}}},              # integer wanted: a decimal is not read as one
    {"progress": "yes"},                                    # only true/false spell a boolean
    {"downloads": {"checksums": {"stl10": "0" * 64}}},      # additionalProperties of strings
])
def test_override_coercion_never_changes_a_string_the_schema_may_want(over):
    assert coerce_overrides(over) == over


def test_override_that_is_still_wrong_is_refused_by_name(cfg):
    cfg["explain"]["rise"] = {**cfg["explain"]["rise"], **coerce_overrides({"explain": {"rise": {"n_masks": "many"}}})[
        "explain"]["rise"]}
    assert "explain.rise.n_masks: 'many' has the wrong type; expected integer" in errors_of(cfg)


def test_coerce_overrides_does_not_touch_its_argument():
    over = {"explain": {"rise": {"n_masks": "128"}}}
    coerce_overrides(over)
    assert over == {"explain": {"rise": {"n_masks": "128"}}}


def test_checksums_of_several_sources_validate_and_unknown_files_are_named(cfg):
    """downloads.checksums pins files of several sources at once (each download rule takes its own); a file
    name of no source is an error naming it (issue 21: the paper config's miniature pins eight sources)."""
    cfg["downloads"] = {"sources": ["stl10", "svhn"], "checksums": {"stl10_binary.tar.gz": "a" * 64,
                                                                   "train_32x32.mat": "b" * 64}}
    validate_config(copy.deepcopy(cfg))
    cfg["downloads"]["checksums"]["stl10.tgz"] = "c" * 64
    msg = errors_of(cfg)
    assert "downloads.checksums: ['stl10.tgz'] are files of no download source" in msg


def test_adaptation_variants_and_dropout_keys(cfg):
    ad = cfg["similarity"]["adaptation"]
    ad.update(variants=["lin", "tune"], draws="fixed")
    assert "similarity.adaptation.draws: fixed" in errors_of(copy.deepcopy(cfg))
    ad.update(variants=["lin"], dropout_on="channels")
    validate_config(copy.deepcopy(cfg))  # the earlier cached scheme stays available
    ad.update(variants=["finetune"])
    assert "similarity.adaptation.variants" in errors_of(copy.deepcopy(cfg))
