"""The stage's plan, read off the validated config without torch: the autoencoder runs, the grid cells
(task × dataset × loss network × extraction point), the feature caches they read, and the semantic
checks of the ``autoencoders`` and ``loss_networks`` config sections."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from percept import backbones
from percept.backbones.spec import NetworkSpec
from percept.loss_networks.registry import TASKS
from percept.similarity_names import two_afc_set

EMBEDDED_SIZES = ("shapes", "photos")


def network_name(entry: Mapping[str, Any]) -> str:
    """A loss network's name in paths: the backbone, with '-random' for the untrained baseline."""
    return entry.get("name") or NetworkSpec.from_config(entry).stem


def network_taps(config: Mapping[str, Any], entry: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(index in the paper's order, module path) of the extraction points the grid uses for a network."""
    taps = list(backbones.get(entry["backbone"]).taps)
    chosen = config["loss_networks"]["taps"]
    if chosen == "paper":
        return list(enumerate(taps))
    return [(int(i), taps[int(i)]) for i in chosen]


def task_datasets(config: Mapping[str, Any], task: str, options: Mapping[str, Any]) -> list[str]:
    """The datasets a task's cells run on: ``options.datasets``, or for a 2AFC task the name of the similarity
    stage's set ``similarity.two_afc.<options.two_afc_set>`` (synthetic_2afc_val offline, bapps_2afc_val in the
    paper config)."""
    if task in TASKS and TASKS[task].two_afc:
        return [two_afc_set(config, options["two_afc_set"])[0]]
    return list(options["datasets"])


def grid_cells(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every cell of the grid; each is one Snakemake job writing
    results/loss_networks/{task}/{dataset}/{network}/{tap}.csv."""
    section = config.get("loss_networks")
    if not section:
        return []
    cells = []
    for task, options in section["tasks"].items():
        for dataset in task_datasets(config, task, options):
            for i, entry in enumerate(section["networks"]):
                net = NetworkSpec.from_config(entry, f"loss_networks.networks[{i}]")
                for index, tap in network_taps(config, entry):
                    cells.append({"task": task, "dataset": dataset, "network": network_name(entry),
                                  "backbone": net.backbone, "weights": net.weights,
                                  "resize": net.resize, "tap": tap, "tap_index": index})
    return cells


def cell_path(cell: Mapping[str, Any]) -> str:
    return f"results/loss_networks/{cell['task']}/{cell['dataset']}/{cell['network']}/{cell['tap']}.csv"


def feature_cache_for(config: Mapping[str, Any], dataset: str, backbone: str, weights: str, tap: str,
                      resize: int | None) -> str | None:
    """The configured feature cache (its name under data/features/{dataset}/) holding this tap, or None."""
    from percept.config import feature_name

    for i, entry in enumerate(config.get("features", [])):
        net = NetworkSpec.from_config(entry, f"features[{i}]")
        if (entry["dataset"], net.backbone, net.weights, net.resize) != (dataset, backbone, weights, resize):
            continue
        try:
            taps = backbones.resolve_taps(backbones.get(backbone), entry["taps"])
        except ValueError:
            continue
        if tap in taps:
            return feature_name(entry)
    return None


def autoencoder_runs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """(dataset, loss, embedding size) of every autoencoder the stage trains."""
    section = config.get("autoencoders")
    if not section:
        return []
    return [{"dataset": d, "loss": loss, "embedding_size": int(z)}
            for d in section["datasets"] for loss in section["losses"] for z in section["embedding_sizes"]]


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


def _check_dataset(config: Mapping[str, Any], where: str, dataset: str) -> Iterable[str]:
    from percept.config import downloadable_sources

    if dataset in downloadable_sources() and dataset not in config["downloads"]["sources"]:
        yield (f"{where}: {dataset!r} must be downloaded first; add it to downloads.sources "
               f"(currently {config['downloads']['sources']})")


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


def semantic_errors(config: Mapping[str, Any]) -> Iterable[str]:
    """Problems of the ``autoencoders`` and ``loss_networks`` sections the schema cannot see."""
    ae = config.get("autoencoders")
    if ae:
        net = ae["loss_network"]
        for d in ae["datasets"]:
            yield from _check_dataset(config, "autoencoders.datasets", d)
        from percept.autoencoders import PROCEDURES, uses_loss_network

        if any(uses_loss_network(loss) for loss in ae["losses"]):
            yield from _check_network(config, "autoencoders.loss_network", net, ae["datasets"], [net["tap"]])
        if ae.get("targets") == "feature_cache" and any(PROCEDURES[loss][1] == "features" for loss in ae["losses"]):
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
            name = network_name(net)
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
                yield from _check_dataset(config, f"loss_networks.tasks.{task}.datasets", d)
            if options.get("benchmarks"):
                yield from _check_dataset(config, f"loss_networks.tasks.{task}.benchmarks", options["benchmarks"])
        for cell in grid_cells(config):
            if cell["task"] in TASKS and TASKS[cell["task"]].needs_features:
                if feature_cache_for(config, cell["dataset"], cell["backbone"], cell["weights"], cell["tap"],
                                     cell["resize"]) is None:
                    yield _missing_cache(f"loss_networks ({cell['task']})", cell["dataset"], cell, cell["tap"])


# -- Snakemake input functions (rules/autoencoders.smk) ---------------------------------------------------------
def autoencoder_dir(run: Mapping[str, Any]) -> str:
    return f"results/autoencoders/{run['dataset']}/{run['loss']}-z{run['embedding_size']}"


def autoencoder_targets_input(config: Mapping[str, Any]):
    """Input function: the feature cache feature prediction reads its targets from with ``targets:
    feature_cache`` (nothing for other losses or target modes)."""
    from percept.autoencoders import PROCEDURES

    def targets(wildcards) -> list[str]:
        if PROCEDURES[wildcards.loss][1] != "features" or config["autoencoders"].get("targets") != "feature_cache":
            return []
        net = config["autoencoders"]["loss_network"]
        name = feature_cache_for(config, wildcards.dataset, net["backbone"], net["weights"], net["tap"],
                                 net["resize"])
        return [f"data/features/{wildcards.dataset}/{name}.h5"]

    return targets


def cell_param(config: Mapping[str, Any], task: str):
    """Params function: the grid cell of ``task`` the job's wildcards name."""
    cells = {(c["dataset"], c["network"], c["tap"]): c for c in grid_cells(config) if c["task"] == task}

    def find(wildcards) -> dict[str, Any]:
        key = (wildcards.dataset, wildcards.network, wildcards.tap)
        if key not in cells:
            raise ValueError(f"no loss_networks cell {task}/{'/'.join(key)}; configured: {sorted(cells)}")
        return cells[key]

    return find


def cell_inputs(config: Mapping[str, Any], task: str):
    """Input function: the dataset, and the feature cache when the task reads one; a 2AFC task reads the
    similarity stage's set (data/similarity/synthetic_2afc_*.h5 or data/datasets/bapps_2afc_*.h5)."""
    find = cell_param(config, task)

    def inputs(wildcards) -> dict[str, str]:
        if TASKS[task].two_afc:
            options = config["loss_networks"]["tasks"][task]
            name, path = two_afc_set(config, options["two_afc_set"])
            if wildcards.dataset != name:
                raise ValueError(f"loss_networks.tasks.{task} scores on {name!r}, not {wildcards.dataset!r}")
            return {"two_afc": path}
        out = {"dataset": f"data/datasets/{wildcards.dataset}.h5"}
        if config["loss_networks"]["tasks"][task].get("benchmarks"):  # super-resolution's Set5/Set14/BSD100
            out["benchmarks"] = f"data/datasets/{config['loss_networks']['tasks'][task]['benchmarks']}.h5"
        if TASKS[task].needs_features:
            c = find(wildcards)
            name = feature_cache_for(config, c["dataset"], c["backbone"], c["weights"], c["tap"], c["resize"])
            out["features"] = f"data/features/{c['dataset']}/{name}.h5"
        return out

    return inputs
