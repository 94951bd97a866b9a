"""Semantic checks of the ``mpcs`` config section (called from :func:`percept.config.validate_config`)."""

from __future__ import annotations

from typing import Any, Iterable


def config_errors(config: dict[str, Any]) -> Iterable[str]:
    from percept import backbones

    mpcs = config["mpcs"]
    dataset = mpcs["dataset"]
    mag = config["datasets"]["magnification"]
    photos = [p for names in mag["classes"].values() for p in names]
    twice = sorted({p for p in photos if photos.count(p) > 1})
    if twice:
        yield f"datasets.magnification.classes: photos {twice} are listed under more than one class"
    lo, hi = mag["fields_per_patient"]
    if lo > hi:
        yield f"datasets.magnification.fields_per_patient: {[lo, hi]} must be [min, max] with min <= max"
    if dataset == "breakhis":
        if "breakhis" not in config["downloads"]["sources"]:
            yield (f"mpcs.dataset: 'breakhis' must be downloaded first; add it to downloads.sources "
                   f"(currently {config['downloads']['sources']})")
        prep = config["downloads"]["prepare"].get("breakhis", {})
        side = prep.get("image_size", 224)
        mags = prep.get("magnifications") or [40, 100, 200, 400]
        if mpcs["pretrain"]["within"] == "field":
            yield ("mpcs.pretrain.within: 'field' needs a dataset that records fields of view (magnification); "
                   "BreakHis pairs by image sequence number: use 'sequence' (or 'patient')")
    else:
        side, mags = mag["image_size"], [40, 100, 200, 400]
        patients = mag["patients_per_photo"] * len(photos)
        if mpcs["folds"] == 1 and mag["patients_per_photo"] < 2:
            yield ("datasets.magnification.patients_per_photo: the patient-level test split needs at least 2 "
                   "patients per photo (or set mpcs.folds >= 2)")
        if mpcs["folds"] > patients:
            yield f"mpcs.folds: {mpcs['folds']} folds but the magnification dataset has only {patients} patients"
    if mpcs["pretrain"]["within"] == "sequence" and not {40, 100, 200, 400} <= set(mags):
        yield (f"mpcs.pretrain.within: 'sequence' pairs image sequence numbers present at all of 40x, 100x, 200x "
               f"and 400x, have {mags}; prepare all four or use 'patient'")
    if "fixed" in mpcs["pretrain"]["strategies"] and not {200, 400} <= set(mags):
        yield f"mpcs.pretrain.strategies: the fixed pair (200x→400x) needs magnifications 200 and 400, have {mags}"
    side = mpcs["image_size"] or side
    for name in mpcs["backbones"]:
        spec = backbones.get(name)
        if side < spec.min_input_size:
            yield (f"mpcs.image_size: images of {side}x{side} are too small for {spec.name} (needs at least "
                   f"{spec.min_input_size}); set mpcs.image_size to at least {spec.min_input_size}")
