"""Validate a workflow configuration before any job runs.

The JSON schema (``percept/schema/config.schema.yaml`` and the per-stage parts it lists, composed by
:mod:`percept.config_schema`) documents every key; the registries fill in its
enumerations (backbones, datasets, download sources, shipped photos), so the schema can never drift from
the code. Errors name the key and the allowed values; several problems are reported at once.
"""

from __future__ import annotations

import copy
import os
import re
from functools import lru_cache
from typing import Any, Iterable

import jsonschema
import yaml

from percept.checks import download_errors, tap_errors
from percept.config_schema import raw_schema
from percept.config_schema import resolve as _resolve
from percept.plan import entry_name

EMBEDDED_DATASETS = ("shapes", "photos", "magnification", "small_objects")
LOCAL_DATASETS = ("imagenet_val",)


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem found."""


def downloadable_sources() -> list[str]:
    from percept.data.sources import SOURCES

    return list(SOURCES)


def dataset_names() -> list[str]:
    return [*EMBEDDED_DATASETS, *downloadable_sources(), *LOCAL_DATASETS]


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The config schema with the registries' names filled into its enumerations."""
    from percept import backbones
    from percept.data.embedded import PHOTO_SOURCES

    raw = raw_schema()
    fill = {"__BACKBONES__": list(backbones.NAMES), "__DATASETS__": dataset_names(),
            "__SOURCES__": downloadable_sources(), "__PHOTOS__": sorted(PHOTO_SOURCES)}
    for key, names in fill.items():
        for d in raw["$defs"].values():
            if d.get("enum") == [key]:
                d["enum"] = names
    return raw


def _path_of(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _path(error: jsonschema.ValidationError) -> str:
    return _path_of(error.absolute_path)


def _known_keys(sch: Any, root: dict[str, Any]) -> set[str]:
    """The keys an object schema accepts: its own properties and those of a ``$ref`` it extends (not ``false``)."""
    return {k for k, v in _resolve(sch, root).get("properties", {}).items() if v is not False}


def _describe(error: jsonschema.ValidationError) -> str:
    where = _path(error)
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{where}: {error.instance!r} is not allowed; allowed values: {allowed}"
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        known = _known_keys(error.schema, schema())
        extra = sorted(set(error.instance) - known)
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed keys: {', '.join(sorted(known))}"
    if error.schema is False:  # `key: false`: a key of the shared network entry this section does not take
        # (jsonschema's error names the object, not the key: read the switched-off keys off the section's schema)
        section: Any = schema()
        for part in list(error.absolute_schema_path)[:-1]:
            section = section[part] if isinstance(section, (dict, list)) else {}
        off = sorted(k for k, v in (section.get("properties", {}) if isinstance(section, dict) else {}).items()
                     if v is False)
        return f"{where}: unknown key(s) {', '.join(map(repr, off)) or '?'}; this section takes no {'/'.join(off)}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "oneOf":  # e.g. taps: neither a known name nor a list
        return f"{where}: {error.instance!r} is not valid; {error.schema.get('description', '')}".rstrip("; ")
    if error.validator == "type":
        return f"{where}: {error.instance!r} has the wrong type; expected {error.validator_value}"
    return f"{where}: {error.message}"


def _fill_defaults(instance: Any, sch: Any, root: dict[str, Any] | None = None) -> None:
    """Insert schema defaults for missing keys (recursively into objects and arrays of objects), following
    ``$ref`` (a section's own keys and defaults override those of the shared definition it extends)."""
    root = sch if root is None else root
    sch = _resolve(sch, root)
    if isinstance(instance, dict):
        for key, sub in sch.get("properties", {}).items():
            sub = _resolve(sub, root)
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                _fill_defaults(instance[key], sub, root)
    elif isinstance(instance, list) and isinstance(sch.get("items"), dict):
        for item in instance:
            _fill_defaults(item, sch["items"], root)


_INTEGER = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULLS = ("null", "Null", "NULL", "~")


def _branches(sch: Any, root: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives a value may match: the schema, and recursively its ``oneOf``/``anyOf`` branches."""
    sch = _resolve(sch, root)
    out = [sch]
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in sch.get(key, []):
            out += _branches(sub, root)
    return out


def _accepted_types(branches: list[dict[str, Any]]) -> set[str] | None:
    """The JSON types the branches accept; None when one of them says nothing about the type (anything goes)."""
    types: set[str] = set()
    for b in branches:
        if not {"type", "enum", "const", "oneOf", "anyOf", "allOf"} & set(b):
            return None  # this alternative takes any value
        if "type" in b:
            types |= {b["type"]} if isinstance(b["type"], str) else set(b["type"])
        for values in ([b["const"]] if "const" in b else []), b.get("enum", []):
            for v in values:
                types.add("null" if v is None else "boolean" if isinstance(v, bool) else
                          "integer" if isinstance(v, int) else "number" if isinstance(v, float) else
                          "string" if isinstance(v, str) else "array" if isinstance(v, list) else "object")
    return types


def _coerce_scalar(text: str, types: set[str]) -> Any:
    """``text`` read as the first of the schema's non-string types it spells; unchanged if it spells none."""
    if "integer" in types and _INTEGER.fullmatch(text):
        return int(text)
    if "number" in types and _NUMBER.fullmatch(text):
        return int(text) if _INTEGER.fullmatch(text) else float(text)
    if "boolean" in types and text in _BOOLEANS:
        return _BOOLEANS[text]
    if "null" in types and text in _NULLS:
        return None
    return text


def _coerce(value: Any, sch: Any, root: dict[str, Any]) -> Any:
    branches = _branches(sch, root)
    if isinstance(value, str):
        types = _accepted_types(branches)
        if types is None or "string" in types:  # the schema may want this very string: never touch it
            return value
        return _coerce_scalar(value, types)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            subs = []
            for b in branches:
                if key in b.get("properties", {}):
                    subs.append(b["properties"][key])
                    continue
                pattern = [s for p, s in b.get("patternProperties", {}).items() if re.search(p, str(key))]
                subs += pattern
                if not pattern and isinstance(b.get("additionalProperties"), dict):
                    subs.append(b["additionalProperties"])
            out[key] = _coerce(item, {"anyOf": subs}, root) if subs else item
        return out
    if isinstance(value, list):
        out_list = []
        for i, item in enumerate(value):
            subs = []
            for b in branches:
                prefix = b.get("prefixItems", [])
                if i < len(prefix):
                    subs.append(prefix[i])
                elif isinstance(b.get("items"), dict):
                    subs.append(b["items"])
            out_list.append(_coerce(item, {"anyOf": subs}, root) if subs else item)
        return out_list
    return value


def coerce_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Command-line overrides with their string scalars read as the schema's types (a new dict).

    Snakemake parses ``--config key=value`` with YAML's base loader below the top level, so in
    ``--config 'explain={"rise": {"n_masks": 128}}'`` the 128 arrives as the string '128'. A string becomes an
    integer, number, boolean (true/false) or null only where the schema accepts that type and no string there
    (directly, through ``$ref`` or any ``oneOf``/``anyOf`` branch) and the text spells it; every other value,
    and every string where the schema allows a string, is left as it is for validation to judge.
    """
    return _coerce(copy.deepcopy(dict(overrides)), schema(), schema())


def _repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted (for the "give every entry a distinct name" checks)."""
    seen, repeated = set(), set()
    for name in names:
        (repeated if name in seen else seen).add(name)
    return sorted(repeated)


def _semantic_errors(config: dict[str, Any]) -> Iterable[str]:
    from percept import backbones
    from percept.mpcs.checks import config_errors as mpcs_errors

    yield from mpcs_errors(config)
    shapes = config["datasets"]["shapes"]
    lo, hi = shapes["objects_per_image"]
    if lo > hi or hi > len(shapes["classes"]):
        yield (f"datasets.shapes.objects_per_image: {[lo, hi]} must satisfy min <= max <= number of classes "
               f"({len(shapes['classes'])})")
    for key in ("object_size",):
        a, b = shapes[key]
        if a > b:
            yield f"datasets.shapes.{key}: {[a, b]} must be [min, max] with min <= max"
    a, b = config["datasets"]["photos"]["crop_scale"]
    if a > b:
        yield f"datasets.photos.crop_scale: {[a, b]} must be [min, max] with min <= max"
    photos = config["datasets"]["photos"]
    both = sorted(set(photos["train_photos"]) & set(photos["test_photos"]))
    if both:
        yield f"datasets.photos: photos {both} are in both train_photos and test_photos"
    sizes = {"shapes": shapes["image_size"], "photos": photos["crop_size"],
             "magnification": config["datasets"]["magnification"]["image_size"],
             "small_objects": config["datasets"].get("small_objects", {}).get("image_size", 64)}
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(config.get("features", [])):
        where = f"features[{i}]"
        spec = backbones.get(entry["backbone"])
        yield from tap_errors(f"{where}.taps", spec, entry["taps"])
        side = entry["resize"] or sizes.get(entry["dataset"])
        if side is not None and side < spec.min_input_size:
            yield (f"{where}: images of {side}x{side} are too small for {spec.name} (needs at least "
                   f"{spec.min_input_size}); set {where}.resize to at least {spec.min_input_size}")
        yield from download_errors(config, f"{where}.dataset", entry["dataset"])
        if entry["dataset"] == "imagenet_val":
            path = config.get("imagenet_val")
            if not path:
                yield f"{where}.dataset: imagenet_val needs imagenet_val: set it to your local ILSVRC2012 val folder"
            elif not os.path.isdir(path):
                yield f"imagenet_val: {path!r} is not a directory (the local ILSVRC2012 validation folder)"
        key = (entry["dataset"], entry_name(entry))
        if key in seen:
            yield (f"{where}: writes the same file as features[{seen[key]}] "
                   f"(data/features/{key[0]}/{key[1]}.h5); give one of them a distinct name")
        seen[key] = i
    yield from _explain_errors(config)
    from percept.loss_networks.checks import config_errors as perceptual_loss_errors

    yield from perceptual_loss_errors(config)  # the autoencoders and loss_networks sections
    unknown_prep = sorted(set(config["downloads"]["prepare"]) - set(downloadable_sources()))
    if unknown_prep:
        yield (f"downloads.prepare: unknown dataset(s) {unknown_prep}; allowed: {', '.join(downloadable_sources())}")
    from percept.data.sources import SOURCES

    files = {rf.filename for s in SOURCES.values() for rf in s.files}
    unknown_sums = sorted(set(config["downloads"]["checksums"]) - files)
    if unknown_sums:
        yield (f"downloads.checksums: {unknown_sums} are files of no download source; the sources' files are "
               f"{', '.join(sorted(files))}")
    yield from _similarity_errors(config)
    from percept.translation.checks import config_errors as translation_errors

    yield from translation_errors(config)


def _similarity_errors(config: dict[str, Any]) -> Iterable[str]:
    """Checks of the ``similarity`` section the schema cannot express."""
    from percept import backbones
    from percept.backbones.spec import NetworkSpec

    sim = config.get("similarity", {})
    if not sim:
        return
    sources = config["downloads"]["sources"]
    allowed = {"train": "bapps_2afc_train", "val": "bapps_2afc_val", "jnd": "bapps_jnd"}
    for key, source in allowed.items():
        value = sim["two_afc"][key]
        if value in (None, "synthetic") and not (value is None and key != "jnd"):
            continue
        if value != source:
            yield (f"similarity.two_afc.{key}: {value!r} is not allowed; allowed values: synthetic, {source}"
                   + (", null" if key == "jnd" else ""))
        elif source not in sources:
            yield f"similarity.two_afc.{key}: {source!r} must be downloaded first; add it to downloads.sources"
    ref = sim["reference_set"]
    if ref in downloadable_sources() and ref not in sources:
        yield f"similarity.reference_set: {ref!r} must be downloaded first; add it to downloads.sources"
    if ref in ("shapes", *LOCAL_DATASETS):
        yield f"similarity.reference_set: {ref!r} has no train/test reference images; use photos, stl10 or svhn"
    dupes = _repeated(m["name"] for m in sim["metrics"])
    if dupes:
        yield f"similarity.metrics: names {dupes} are used more than once; give every metric a distinct name"
    from percept.similarity_names import LPIPS_NETS  # torch-free
    for i, m in enumerate(sim["metrics"]):
        where = f"similarity.metrics[{i}]"
        spec = backbones.get(m["backbone"])
        yield from tap_errors(f"{where}.taps", spec, m["taps"])
        if m["linear"] == "lpips" and (m["backbone"] not in LPIPS_NETS or m["taps"] != "lpips"):
            yield (f"{where}.linear: the official LPIPS weights exist for backbones {sorted(LPIPS_NETS)} at taps "
                   f"'lpips' only, not {m['backbone']!r} at {m['taps']!r}")
        if m["linear"] == "lpips" and "+" in m["mode"] and m["combine"] == "concat":
            yield (f"{where}.linear: the official LPIPS weights have one weight per channel; mode {m['mode']!r} with "
                   "combine 'concat' needs two (use linear: calibrated, or combine: sum)")
        side = m["resize"] or sim["image_size"]
        if side < spec.min_input_size:
            yield f"{where}: {side}x{side} inputs are too small for {spec.name} (needs {spec.min_input_size}); set resize"
    for part in ("flaws", "adaptation"):
        seen = set()
        for i, e in enumerate(sim[part]["backbones"]):
            where = f"similarity.{part}.backbones[{i}]"
            spec = backbones.get(e["backbone"])
            taps = NetworkSpec.from_config(e, where).default_taps()
            yield from tap_errors(f"{where}.taps", spec, taps)
            if sim["image_size"] < spec.min_input_size:
                yield (f"{where}: similarity.image_size {sim['image_size']} is too small for {spec.name} (needs "
                       f"{spec.min_input_size})")
            name = entry_name(e)
            if name in seen:
                yield f"{where}: {name!r} is listed twice"
            seen.add(name)
    ad = sim["adaptation"]
    if ad["draws"] == "fixed" and (set(ad["variants"]) - {"lin"} or (ad["dropout_on"] == "elements" and ad["dropout"])):
        yield ("similarity.adaptation.draws: fixed (one cached draw, all 15 pairs every epoch) is the earlier scheme "
               "of the lin variant with dropout_on: channels; variants tune / scratch and dropout_on: elements draw "
               "fresh pairs every epoch (set draws: fresh)")


EXPLAIN_DATASETS = ("shapes", "voc2007")  # multi-label, with per-class segmentation masks


def _explain_errors(config: dict[str, Any]) -> Iterable[str]:
    """Semantic checks of the ``explain`` section (the classifier's feature cache must be configured)."""
    from percept import backbones

    ex = config.get("explain", {})
    if not ex:
        return
    entries = {(e["dataset"], entry_name(e)): e for e in config.get("features", [])}
    dup = _repeated(c["name"] for c in ex["classifiers"])
    if dup:
        yield f"explain.classifiers: names {dup} are used more than once"
    for i, clf in enumerate(ex["classifiers"]):
        where = f"explain.classifiers[{i}]"
        if clf["dataset"] not in EXPLAIN_DATASETS:
            yield (f"{where}.dataset: {clf['dataset']!r} is not allowed; allowed values: {', '.join(EXPLAIN_DATASETS)} "
                   "(multi-label datasets with segmentation masks)")
            continue
        entry = entries.get((clf["dataset"], clf["backbone"]))
        if entry is None or entry["weights"] != "imagenet":
            yield (f"{where}: needs the feature cache data/features/{clf['dataset']}/{clf['backbone']}.h5 — add "
                   f"{{dataset: {clf['dataset']}, backbone: {clf['backbone']}, taps: [{clf['tap']}]}} to features")
            continue
        try:
            taps = backbones.resolve_taps(backbones.get(clf["backbone"]), entry["taps"])
        except ValueError:
            continue  # reported for the features entry
        if clf["tap"] not in taps:
            yield f"{where}.tap: {clf['tap']!r} is not cached by the features entry; cached taps: {', '.join(taps)}"
        for t in ex["channels"]["taps"] or []:
            if t not in taps:
                yield f"explain.channels.taps: {t!r} is not cached for {clf['name']}; cached taps: {', '.join(taps)}"
        if entry["resize"] != clf["resize"]:
            yield f"{where}.resize: {clf['resize']} differs from the cache's resize {entry['resize']}"
    exp = ex["explainer"]
    if exp["min_area"] > exp["max_area"]:
        yield f"explain.explainer: min_area {exp['min_area']} must not exceed max_area {exp['max_area']}"
    yield from tap_errors("explain.explainer.taps", backbones.get(exp["encoder"]), exp["taps"])


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it; raise :class:`ConfigError` otherwise."""
    sch = schema()
    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    problems = [_describe(e) for e in errors]
    if not problems:
        _fill_defaults(config, sch, sch)
        problems = list(_semantic_errors(config))
    if problems:
        lines = "\n".join(f"  - {p}" for p in dict.fromkeys(problems))
        raise ConfigError(f"invalid configuration ({source}):\n{lines}\n"
                          "See percept/schema/config.schema.yaml and the per-stage parts it lists for every key, its type "
                          "and meaning.")
    return config


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    return validate_config(config, source=str(path))
