"""One network spec (issue 20): the schema defines a network entry once (``$defs/network`` and its pieces) and
every section refers to it; :class:`percept.backbones.spec.NetworkSpec` is built from such an entry."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO
from percept.backbones.spec import NetworkSpec
from percept.config import ConfigError, schema, validate_config

NETWORK_KEYS = ("backbone", "weights", "resize")
SHARED = {"backbone": "#/$defs/backbone", "weights": "#/$defs/weights", "resize": "#/$defs/resize"}


def _walk(node, path=()):
    """Every schema object below ``node`` with its path (the ``$defs`` themselves excluded)."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if path == () and key == "$defs":
                continue
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, i))


def test_every_network_entry_refers_to_the_shared_definition():
    """No section restates a network inline: an object naming a backbone extends ``$defs/network``, its network
    keys are the shared definitions (a section may override only default and description) or switched off, and
    nothing outside ``$defs`` spells the weights or taps choices again."""
    sch = schema()
    entries = []
    for path, node in _walk(sch):
        where = "/".join(map(str, path))
        props = node.get("properties", {})
        if "backbone" in props or node.get("$ref") == "#/$defs/network":
            entries.append(where)
            assert node.get("$ref") == "#/$defs/network", f"{where}: a network entry that does not extend $defs/network"
            assert node.get("unevaluatedProperties") is False, f"{where}: must refuse unknown keys"
            assert "additionalProperties" not in node, f"{where}: additionalProperties hides the shared keys"
            for key in NETWORK_KEYS:
                sub = props.get(key)
                if sub is None or sub is False:
                    continue
                assert sub.get("$ref") == SHARED[key], f"{where}.{key}: restated inline instead of {SHARED[key]}"
                assert set(sub) <= {"$ref", "default", "description"}, f"{where}.{key}: restates {sorted(sub)}"
        enum = set(map(str, node.get("enum", [])))
        if enum >= {"imagenet", "random"} or enum >= {"paper", "lpips"}:
            pytest.fail(f"{where}: restates the enumeration {node['enum']} of $defs/weights or $defs/taps")
    # the sections that name a network (a renamed or dropped section must be looked at again)
    assert len(entries) >= 8, entries


def _tiny():
    with open(REPO / "tests" / "config.yaml") as fh:
        return yaml.safe_load(fh)


def test_sections_fill_the_shared_defaults_and_keep_their_own():
    config = validate_config(_tiny())
    for e in config["features"]:
        assert e["weights"] in ("imagenet", "random") and "resize" in e and "taps" in e
    assert config["translation"]["metric"]["weights"] == "imagenet"
    assert "resize" not in config["translation"]["metric"]  # switched off there
    assert config["autoencoders"]["loss_network"]["weights"] == "imagenet"
    assert config["autoencoders"]["loss_network"]["resize"] is None
    for clf in config["explain"]["classifiers"]:
        assert "weights" not in clf and "resize" in clf


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["features"][0].update(weights="pretrained"), "features[0].weights: 'pretrained' is not allowed"),
    (lambda c: c["features"][0].update(colour=1), "features[0]: unknown key(s) 'colour'; allowed keys: amp, backbone"),
    (lambda c: c["explain"]["classifiers"][0].update(weights="random"),
     "explain.classifiers[0]: unknown key(s) 'weights'"),
    (lambda c: c["translation"]["metric"].update(resize=64), "translation.metric: unknown key(s) 'resize'"),
    (lambda c: c["autoencoders"]["loss_network"].update(resize=8), "autoencoders.loss_network.resize: 8 is less"),
])
def test_bad_network_keys_name_the_config_path(mutate, message):
    config = _tiny()
    config.setdefault("translation", {}).setdefault("metric", {})
    mutate(config)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert message in str(err.value)


def test_from_config_fills_schema_defaults_and_ignores_section_keys():
    spec = NetworkSpec.from_config({"backbone": "alexnet", "name": "x", "mode": "spatial", "taps": ["features.1"]})
    assert spec == NetworkSpec(backbone="alexnet", weights="imagenet", resize=None, taps=("features.1",))
    assert spec.stem == "alexnet" and spec.taps_arg == ["features.1"]
    rnd = NetworkSpec.from_config({"backbone": "vgg16", "weights": "random", "resize": 64, "tap": "features.4"})
    assert (rnd.random, rnd.stem, rnd.resize, rnd.tap) == (True, "vgg16-random", 64, "features.4")
    assert rnd.registry().name == "vgg16"
    assert NetworkSpec.from_config(rnd) is rnd
    with pytest.raises(Exception):
        rnd.weights = "imagenet"  # frozen


def test_from_config_of_a_validated_entry_is_its_values():
    config = validate_config(_tiny())
    for i, e in enumerate(config["features"]):
        spec = NetworkSpec.from_config(e, f"features[{i}]")
        assert (spec.backbone, spec.weights, spec.resize, spec.taps_arg) == (e["backbone"], e["weights"],
                                                                               e["resize"], e["taps"])


@pytest.mark.parametrize("entry, message", [
    ({"backbone": "resnet9"}, "similarity.metrics[2].backbone: 'resnet9' is not allowed; allowed values: alexnet"),
    ({"weights": "random"}, "similarity.metrics[2].backbone: missing"),
    ({"backbone": "alexnet", "weights": "pretrained"},
     "similarity.metrics[2].weights: 'pretrained' is not allowed; allowed values: imagenet, random"),
    ({"backbone": "alexnet", "resize": 8}, "similarity.metrics[2].resize: 8 must be null or an integer"),
    ({"backbone": "alexnet", "resize": True}, "similarity.metrics[2].resize: True must be null"),
    ({"backbone": "alexnet", "taps": "some"}, "similarity.metrics[2].taps: 'some' is not valid"),
    ({"backbone": "alexnet", "taps": []}, "similarity.metrics[2].taps: [] must be a non-empty list"),
    ({"backbone": "alexnet", "tap": 3}, "similarity.metrics[2].tap: 3 must be a module path"),
    ("alexnet", "similarity.metrics[2]: a network entry must be a mapping"),
])
def test_from_config_errors_name_the_config_path(entry, message):
    with pytest.raises(ValueError) as err:
        NetworkSpec.from_config(copy.deepcopy(entry), "similarity.metrics[2]")
    assert message in str(err.value)


SCHEMA_DIR = REPO / "src" / "percept" / "schema"


def test_the_schema_is_composed_from_per_stage_parts():
    """config.schema.yaml lists its parts; each holds only properties and $defs, none defines a key twice, and
    the shared network definitions live in defs.schema.yaml."""
    root = yaml.safe_load((SCHEMA_DIR / "config.schema.yaml").read_text())
    parts = root["parts"]
    assert "defs" in parts and len(parts) >= 8
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.schema.yaml")) == sorted(
        ["config.schema.yaml", *(f"{p}.schema.yaml" for p in parts)])
    seen: dict[str, str] = {}
    for part in parts:
        sub = yaml.safe_load((SCHEMA_DIR / f"{part}.schema.yaml").read_text())
        assert set(sub) <= {"properties", "$defs"}, part
        for key in [*sub.get("properties", {}), *(f"$defs/{d}" for d in sub.get("$defs", {}))]:
            assert key not in seen, f"{key} in {part} and {seen[key]}"
            seen[key] = part
    for name in ("backbone", "network", "weights", "taps", "resize"):
        assert seen[f"$defs/{name}"] == "defs"
    composed = schema()
    assert set(composed["properties"]) == set(root["properties"]) | {k for k in seen if not k.startswith("$defs/")}
    assert "parts" not in composed


def test_package_data_ships_every_schema_part():
    import fnmatch
    import tomllib

    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["percept"]
    for path in SCHEMA_DIR.iterdir():
        rel = f"schema/{path.name}"
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not shipped (pyproject package-data)"
