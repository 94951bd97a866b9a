"""Semantic checks of the ``translation`` section (beyond the schema); errors name the key and allowed values."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

CYCLEGAN_SOURCES = ("horse2zebra", "apple2orange")


def config_errors(config: dict[str, Any]) -> Iterable[str]:
    from percept import backbones
    from percept.checks import tap_errors

    tr = config.get("translation")
    if not tr:
        return
    sources = config.get("downloads", {}).get("sources", [])
    allowed = ("translation_shapes", "unpaired_folder", *CYCLEGAN_SOURCES)
    if tr["dataset"] not in allowed:
        yield f"translation.dataset: {tr['dataset']!r} is not allowed; allowed values: {', '.join(allowed)}"
    elif tr["dataset"] in CYCLEGAN_SOURCES and tr["dataset"] not in sources:
        yield (f"translation.dataset: {tr['dataset']!r} must be downloaded first; add it to downloads.sources "
               f"(currently {sources})")
    elif tr["dataset"] == "unpaired_folder":
        path = tr["folder"]["path"]
        if not path:
            yield "translation.folder.path: dataset unpaired_folder needs the folder holding trainA/ trainB/ testA/ testB/"
        elif not os.path.isdir(path):
            yield f"translation.folder.path: {path!r} is not a directory"
    dom = tr["domains"]
    if dom["shape_a"] == dom["shape_b"]:
        yield f"translation.domains: shape_a and shape_b are both {dom['shape_a']!r}; the domains need two shapes"
    lo, hi = dom["object_size"]
    if lo > hi:
        yield f"translation.domains.object_size: {[lo, hi]} must be [min, max] with min <= max"
    m = tr["metric"]
    spec = backbones.get(m["backbone"])
    yield from tap_errors("translation.metric.taps", spec, m["taps"])
    side = dom["image_size"] if tr["dataset"] == "translation_shapes" else tr["folder"]["image_size"]
    if side < spec.min_input_size:
        yield (f"translation: images of {side}x{side} are too small for translation.metric.backbone {spec.name} "
               f"(needs at least {spec.min_input_size})")
    if tr["n_show"] > tr["domains"]["n_test"] and tr["dataset"] == "translation_shapes":
        yield f"translation.n_show: {tr['n_show']} exceeds translation.domains.n_test ({tr['domains']['n_test']})"
