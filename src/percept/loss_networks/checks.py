"""Semantic checks of the ``autoencoders`` and ``loss_networks`` config sections (beyond the schema; called from
:func:`percept.config.validate_config`). Their plan (runs, grid cells, feature caches) is percept.plan's."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from percept import backbones
from percept.autoencoders import PROCEDURES, uses_loss_network
from percept.backbones.spec import NetworkSpec
from percept.checks import download_errors
from percept.loss_networks.registry import TASKS
from percept.plan import entry_name, feature_cache_for, grid_cells, network_taps, task_datasets


def _image_side(config: Mapping[str, Any], dataset: str) -> int | None:
    sizes = {"shapes": config["datasets"]["shapes"]["image_size"], "photos": config["datasets"]["photos"]["crop_size"],
             "small_objects": config["datasets"].get("small_objects", {}).get("image_size", 64)}
    if dataset.startswith("synthetic_2afc_"):
        return config["similarity"]["image_size"]
    if dataset.startswith("bapps_"):
        return config["downloads"]["prepare"].get(dataset, {}).get("image_size", 64)
    if dataset == "massachusetts_roads":  # percept.data.prepare.prepare_massachusetts_roads's default
        return config["downloads"]["prepare"].get(dataset, {}).get("image_size", 224)
    return sizes.get(dataset)


def _check_network(config: Mapping[str, Any], where: str, net: Mapping[str, Any], datasets: Iterable[str],
                   taps: Iterable[str]) -> Iterable[str]:
    spec = backbones.get(net["backbone"])
    for tap in taps:
        try:
            backbones.resolve_taps(spec, [tap])
        except ValueError as exc:
            yield f"{where}.tap: {exc}"
    for dataset in datasets:
        side = NetworkSpec.from_config(net, where).resize or _image_side(config, dataset)
        if side is not None and side < spec.min_input_size:
            yield (f"{where}: images of {side}x{side} ({dataset}) are too small for {spec.name} (needs at least "
                   f"{spec.min_input_size}); set {where}.resize to at least {spec.min_input_size}")


def _missing_cache(where: str, dataset: str, net: Mapping[str, Any], tap: str) -> str:
    spec = NetworkSpec.from_config(net, where)
    entry = {"dataset": dataset, "backbone": spec.backbone, "taps": [tap]}
    if spec.random:
        entry["weights"] = "random"
    if spec.resize:
        entry["resize"] = spec.resize
    return (f"{where}: feature prediction reads its targets from a feature cache, but no features entry holds "
            f"{spec.backbone} ({spec.weights} weights, resize {spec.resize}) tap {tap!r} "
            f"on {dataset}; add one to features, e.g. {entry}")


def config_errors(config: Mapping[str, Any]) -> Iterable[str]:
    """Problems of the ``autoencoders`` and ``loss_networks`` sections the schema cannot see."""
    ae = config.get("autoencoders")
    if ae:
        net = ae["loss_network"]
        for d in ae["datasets"]:
            yield from download_errors(config, "autoencoders.datasets", d)
        if any(uses_loss_network(loss) for loss in ae["losses"]):
            yield from _check_network(config, "autoencoders.loss_network", net, ae["datasets"], [net["tap"]])
        if ae.get("targets") == "feature_cache" and any(PROCEDURES[loss][1] == "features" for loss in ae["losses"]):
            if net["input"] != "imagenet":
                # percept.features.cache_features normalises every image (prepare_input's default), so the
                # cache cannot hold the features of unnormalised input that this loss network computes.
                yield (f"autoencoders.targets: feature_cache reads features of ImageNet-normalised images, but "
                       f"autoencoders.loss_network.input is {net['input']!r}; set loss_network.input: "
                       "imagenet to use the cache, or targets: online (the paper's) or precomputed")
            spec = NetworkSpec.from_config(net, "autoencoders.loss_network")
            for d in ae["datasets"]:
                if feature_cache_for(config, d, spec.backbone, spec.weights, net["tap"], spec.resize) is None:
                    yield _missing_cache("autoencoders.loss_network", d, net, net["tap"])
    grid = config.get("loss_networks")
    if grid:
        unknown = sorted(set(grid["tasks"]) - set(TASKS))
        if unknown:
            yield f"loss_networks.tasks: unknown task(s) {unknown}; allowed: {', '.join(TASKS)}"
        names: dict[str, int] = {}
        for i, net in enumerate(grid["networks"]):
            where = f"loss_networks.networks[{i}]"
            name = entry_name(net)
            if name in names:
                yield f"{where}: network name {name!r} is used by networks[{names[name]}] too; give one a distinct name"
            names[name] = i
            n_taps = len(backbones.get(net["backbone"]).taps)
            if grid["taps"] != "paper":
                bad = [t for t in grid["taps"] if not 0 <= int(t) < n_taps]
                if bad:
                    yield f"loss_networks.taps: indices {bad} out of range; {net['backbone']} has {n_taps} paper taps"
                    return
            datasets = [d for task, options in grid["tasks"].items() if task in TASKS
                        for d in task_datasets(config, task, options)]
            yield from _check_network(config, where, net, datasets, [t for _, t in network_taps(config, net)])
        for task, options in grid["tasks"].items():
            if task in TASKS and TASKS[task].two_afc:
                continue  # the similarity stage's set; its own checks cover the download
            for d in options["datasets"]:
                yield from download_errors(config, f"loss_networks.tasks.{task}.datasets", d)
            if options.get("benchmarks"):
                yield from download_errors(config, f"loss_networks.tasks.{task}.benchmarks", options["benchmarks"])
        for cell in grid_cells(config):
            if cell["task"] in TASKS and TASKS[cell["task"]].needs_features:
                if feature_cache_for(config, cell["dataset"], cell["backbone"], cell["weights"], cell["tap"],
                                     cell["resize"]) is None:
                    yield _missing_cache(f"loss_networks ({cell['task']})", cell["dataset"], cell, cell["tap"])
