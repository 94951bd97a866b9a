"""The pipeline's plan, read off the validated config without torch: every output path, every entry's name in
paths, every stage's job list, the final targets and the params the rules share.

The Snakemake rules (rules/*.smk) only define rules and call :class:`Plan` (bound to ``config`` once in
rules/common.smk); the config checks and the tests (tests/paper_mini, tests/test_plan.py) ask the same
functions, so a path or a name is worked out in one place.
This module imports no stage package that imports it back, and no torch: planning the paper config stays
cheap, and the config checks (percept.config and the stages' ``checks`` modules) may import it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from percept import backbones
from percept.backbones.spec import NetworkSpec
from percept.autoencoders import PROCEDURES
from percept.data.sources import SOURCES
from percept.loss_networks.registry import TASKS

DOWNLOAD_SOURCES = tuple(SOURCES)


# -- names ------------------------------------------------------------------------------------------------------
def entry_name(entry: Mapping[str, Any]) -> str:
    """The name in paths of a network entry (a feature cache, a loss network, a similarity backbone): its
    ``name``, else the backbone with '-random' appended for the untrained weights."""
    return entry.get("name") or NetworkSpec.from_config(entry).stem


def encoder_ids(strategies, baselines) -> list[str]:
    """The encoders an MPCS fine-tuning table compares: ``mpcs_<strategy>`` and ``baseline_<weights>``."""
    return [f"mpcs_{s}" for s in strategies] + [f"baseline_{b}" for b in baselines]


def two_afc_set(config: Mapping[str, Any], key: str) -> tuple[str, str]:
    """(name, path) of the 2AFC / JND set ``similarity.two_afc.<key>`` (train, val or jnd): the synthetic set
    the similarity stage builds from its reference images (data/similarity/), or a downloaded BAPPS set
    (data/datasets/)."""
    value = config["similarity"]["two_afc"][key]
    if value == "synthetic":
        name = "synthetic_jnd" if key == "jnd" else f"synthetic_2afc_{key}"
        return name, similarity_data(name)
    return value, dataset_file(value)


# -- paths (no config needed; a wildcard pattern when given "{wildcard}") -----------------------------------------
BACKBONE_CHECK = "results/backbones/imagenet_check.csv"


def dataset_file(name: str) -> str:
    return f"data/datasets/{name}.h5"


def raw_dir(source: str) -> str:
    """Where a download source's files land (data/raw/<source>), before conversion to data/datasets/."""
    return f"data/raw/{source}"


def feature_file(dataset: str, name: str) -> str:
    """The one HDF5 feature cache of an image dataset (percept.features.FeatureCache)."""
    return f"data/features/{dataset}/{name}.h5"


def feature_stats_file(dataset: str, name: str) -> str:
    return f"results/features/{dataset}/{name}.json"


def figure_files(name: str) -> list[str]:
    return [f"results/figures/{name}.png", f"results/figures/{name}.pdf"]


def explain_file(filename: str, name: str = "{classifier}") -> str:
    """results/explain/{classifier}/<filename>: every output of the explanation stage."""
    return f"results/explain/{name}/{filename}"


def autoencoder_summary(filename: str) -> str:
    """The autoencoder stage's summary tables (summarize_autoencoders)."""
    return f"results/autoencoders/{filename}"


def autoencoder_dir(run: Mapping[str, Any]) -> str:
    return f"results/autoencoders/{run['dataset']}/{run['loss']}-z{run['embedding_size']}"


def autoencoder_file(run: Mapping[str, Any], filename: str) -> str:
    return f"{autoencoder_dir(run)}/{filename}"


def embeddings_file(run: Mapping[str, Any]) -> str:
    return f"data/embeddings/{run['dataset']}/{run['loss']}-z{run['embedding_size']}.h5"


def cell_path(cell: Mapping[str, Any]) -> str:
    return f"results/loss_networks/{cell['task']}/{cell['dataset']}/{cell['network']}/{cell['tap']}.csv"


def loss_network_file(filename: str) -> str:
    """The loss-network grid's analysis tables (analyze_loss_networks)."""
    return f"results/loss_networks/{filename}"


def mpcs_model(dataset: str, backbone: str, fold: int | str, strategy: str) -> str:
    """An MPCS-pretrained encoder."""
    return f"data/models/mpcs/{dataset}/{backbone}/fold{fold}/{strategy}.pt"


def mpcs_checkpoint(dataset: str, backbone: str, fold: int | str, name: str) -> str:
    """The resumable training state of an MPCS pretraining (pretrain_<strategy>) or fine-tuning (<encoder>) job."""
    return f"data/checkpoints/mpcs/{dataset}/{backbone}/fold{fold}/{name}.ckpt"


def mpcs_file(dataset: str, filename: str, backbone: str | None = None, fold: int | str | None = None) -> str:
    """results/mpcs/{dataset}/[{backbone}/fold{fold}/]<filename>: the MPCS tables, per run or summarized."""
    run = f"{backbone}/fold{fold}/" if backbone is not None else ""
    return f"results/mpcs/{dataset}/{run}{filename}"


def pretrained_input(dataset: str, backbone: str, fold: int | str, encoder: str) -> dict[str, str]:
    """The MPCS encoder file a fine-tuning job starts from (none for the baselines)."""
    if encoder.startswith("mpcs_"):
        return {"pretrained": mpcs_model(dataset, backbone, fold, encoder.removeprefix("mpcs_"))}
    return {}


def similarity_data(name: str) -> str:
    """The image sets the similarity stage builds (synthetic 2AFC/JND sets, challenges, distortions)."""
    return f"data/similarity/{name}.h5"


def similarity_file(filename: str) -> str:
    """results/similarity/<filename>: the similarity stage's tables, calibrations and adaptations."""
    return f"results/similarity/{filename}"


def distortion_cache(name: str) -> str:
    """Features of the similarity stage's distorted images for one adaptation backbone."""
    return f"data/features/similarity/distortions/{name}.h5"


def translation_file(filename: str, variant: str | None = None) -> str:
    """results/translation/[{variant}/]<filename>: per ablation variant (identity: the untranslated inputs), or
    the stage's summaries and judge."""
    return f"results/translation/{variant}/{filename}" if variant is not None else f"results/translation/{filename}"


# -- the loss-network grid and the autoencoder runs ----------------------------------------------------------------
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
                    cells.append({"task": task, "dataset": dataset, "network": entry_name(entry),
                                  "backbone": net.backbone, "weights": net.weights,
                                  "resize": net.resize, "tap": tap, "tap_index": index})
    return cells


def feature_cache_for(config: Mapping[str, Any], dataset: str, backbone: str, weights: str, tap: str,
                      resize: int | None) -> str | None:
    """The configured feature cache (its name under data/features/{dataset}/) holding this tap, or None."""
    for i, entry in enumerate(config.get("features", [])):
        net = NetworkSpec.from_config(entry, f"features[{i}]")
        if (entry["dataset"], net.backbone, net.weights, net.resize) != (dataset, backbone, weights, resize):
            continue
        try:
            taps = backbones.resolve_taps(backbones.get(backbone), entry["taps"])
        except ValueError:
            continue
        if tap in taps:
            return entry_name(entry)
    return None


def autoencoder_runs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """(dataset, loss, embedding size) of every autoencoder the stage trains."""
    section = config.get("autoencoders")
    if not section:
        return []
    return [{"dataset": d, "loss": loss, "embedding_size": int(z)}
            for d in section["datasets"] for loss in section["losses"] for z in section["embedding_sizes"]]


# -- params every stage passes the same way ------------------------------------------------------------------------
# rule (the loop rules by their prefix: download_<source>, loss_network_<task>) -> the top-level config keys its
# script receives as params. Every job is seeded with the one config seed (percept.seeds derives its streams).
SHARED_PARAMS: dict[str, tuple[str, ...]] = {
    "make_shapes": ("seed", "progress"),
    "make_photos": ("seed",),
    "download": ("progress",),
    "cache_features": ("device", "seed", "allow_download", "progress"),
    "make_translation_domains": ("seed", "progress"),
    "train_translation_judge": ("seed", "device", "allow_download"),
    "train_translation": ("seed", "device", "progress", "allow_download"),
    "train_classifier": ("seed", "device", "progress"),
    "train_explainer": ("seed", "device", "progress"),
    "select_channels": ("seed",),
    "explain_rise": ("seed", "device", "progress"),
    "explain_baselines": ("seed", "device"),
    "evaluate_explanations": ("device", "progress"),
    "make_small_objects": ("seed", "progress"),
    "train_autoencoder": ("device", "seed", "allow_download", "progress"),
    "train_predictors": ("seed",),
    "loss_network": ("device", "seed", "allow_download", "progress"),
    "make_magnification": ("seed",),
    "pretrain_mpcs": ("seed", "device", "allow_download", "progress"),
    "finetune_mpcs": ("seed", "device", "allow_download", "progress"),
    "make_dps_synthetic": ("seed",),
    "calibrate_dps": ("device", "seed", "allow_download", "progress"),
    "evaluate_dps_2afc": ("device", "seed", "allow_download", "progress"),
    "make_dps_challenges": ("seed",),
    "evaluate_dps_flaws": ("device", "seed", "allow_download", "progress"),
    "make_dps_distortions": ("seed",),
    "cache_dps_distortion_features": ("device", "seed", "allow_download", "progress"),
    "adapt_dps": ("device", "seed", "allow_download", "progress"),
    "check_backbones": ("seed",),
}


def shared_params(config: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """The params of ``rule`` taken straight from the config's top level (``SHARED_PARAMS``), for
    ``params: **shared("rule")`` in the rules."""
    if rule not in SHARED_PARAMS:
        raise KeyError(f"no shared params for rule {rule!r}; add it to percept.plan.SHARED_PARAMS")
    return {key: config[key] for key in SHARED_PARAMS[rule]}


class Plan:
    """Every path, name and job list of one validated config (what rules/*.smk call)."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = config

    def shared(self, rule: str) -> dict[str, Any]:
        return shared_params(self.config, rule)

    # -- data -------------------------------------------------------------------------------------------------
    def download_checksums(self, source: str) -> dict[str, str]:
        """Only this source's files of ``downloads.checksums`` (which pins files of every source; fetch_source
        rejects names that are not its own, and the config check rejects names of no source)."""
        own = {rf.filename for rf in SOURCES[source].files}
        return {f: h for f, h in self.config["downloads"]["checksums"].items() if f in own}

    # -- features ----------------------------------------------------------------------------------------------
    def feature_entries(self) -> dict[tuple[str, str], dict[str, Any]]:
        """{(dataset, name): entry} for every configured feature cache."""
        return {(e["dataset"], entry_name(e)): e for e in self.config["features"]}

    def feature_entry(self, dataset: str, name: str) -> dict[str, Any]:
        entries = self.feature_entries()
        if (dataset, name) not in entries:
            raise ValueError(f"no features entry for {(dataset, name)}; configured: {sorted(entries)}")
        return entries[(dataset, name)]

    def feature_targets(self) -> list[str]:
        return [feature_file(d, n) for d, n in self.feature_entries()]

    def feature_stats(self) -> list[str]:
        return [feature_stats_file(d, n) for d, n in self.feature_entries()]

    # -- explanations ------------------------------------------------------------------------------------------
    @property
    def classifiers(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.config["explain"]["classifiers"]}

    @property
    def first_classifier(self) -> str | None:
        """The classifier the explanation figures show (None without one)."""
        classifiers = self.config["explain"]["classifiers"]
        return classifiers[0]["name"] if classifiers else None

    def explain_dataset(self, classifier: str) -> str:
        return dataset_file(self.classifiers[classifier]["dataset"])

    def explain_cache(self, classifier: str) -> str:
        """The classifier's feature cache: the features entry of its dataset named after its backbone (the
        config check requires one, with ImageNet weights)."""
        c = self.classifiers[classifier]
        return feature_file(c["dataset"], entry_name({"backbone": c["backbone"]}))

    def explain_cached_taps(self, classifier: str) -> list[str]:
        c = self.classifiers[classifier]
        entry = self.feature_entries()[(c["dataset"], entry_name({"backbone": c["backbone"]}))]
        return backbones.resolve_taps(backbones.get(c["backbone"]), entry["taps"])

    def explain_baseline_inputs(self, classifier: str) -> dict[str, str]:
        out = {"dataset": self.explain_dataset(classifier), "classifier": explain_file("classifier.pt", classifier),
               "cache": self.explain_cache(classifier)}
        if self.config["explain"]["explainer"]["enabled"]:
            out["explainer"] = explain_file("explainer.pt", classifier)
        if self.config["explain"]["channels"]["enabled"]:
            out["channels"] = explain_file("channels.csv", classifier)
        return out

    # -- autoencoders and the loss-network grid -----------------------------------------------------------------
    @property
    def autoencoder_runs(self) -> list[dict[str, Any]]:
        return autoencoder_runs(self.config)

    @property
    def grid_cells(self) -> list[dict[str, Any]]:
        return grid_cells(self.config)

    def autoencoder_targets(self, dataset: str, loss: str) -> list[str]:
        """The feature cache feature prediction reads its targets from with ``targets: feature_cache`` (nothing
        for other losses or target modes)."""
        ae = self.config["autoencoders"]
        if PROCEDURES[loss][1] != "features" or ae.get("targets") != "feature_cache":
            return []
        net = ae["loss_network"]
        name = feature_cache_for(self.config, dataset, net["backbone"], net["weights"], net["tap"], net["resize"])
        return [feature_file(dataset, name)]

    def cell(self, task: str, dataset: str, network: str, tap: str) -> dict[str, Any]:
        """The grid cell of ``task`` a job's wildcards name."""
        cells = {(c["dataset"], c["network"], c["tap"]): c for c in self.grid_cells if c["task"] == task}
        key = (dataset, network, tap)
        if key not in cells:
            raise ValueError(f"no loss_networks cell {task}/{'/'.join(key)}; configured: {sorted(cells)}")
        return cells[key]

    def cell_inputs(self, task: str, dataset: str, network: str, tap: str) -> dict[str, str]:
        """The dataset, and the feature cache when the task reads one; a 2AFC task reads the similarity stage's
        set (data/similarity/synthetic_2afc_*.h5 or data/datasets/bapps_2afc_*.h5)."""
        options = self.config["loss_networks"]["tasks"][task]
        if TASKS[task].two_afc:
            name, path = two_afc_set(self.config, options["two_afc_set"])
            if dataset != name:
                raise ValueError(f"loss_networks.tasks.{task} scores on {name!r}, not {dataset!r}")
            return {"two_afc": path}
        out = {"dataset": dataset_file(dataset)}
        if options.get("benchmarks"):  # super-resolution's Set5/Set14/BSD100
            out["benchmarks"] = dataset_file(options["benchmarks"])
        if TASKS[task].needs_features:
            c = self.cell(task, dataset, network, tap)
            name = feature_cache_for(self.config, c["dataset"], c["backbone"], c["weights"], c["tap"], c["resize"])
            out["features"] = feature_file(c["dataset"], name)
        return out

    # -- MPCS --------------------------------------------------------------------------------------------------
    @property
    def mpcs_encoders(self) -> list[str]:
        mpcs = self.config["mpcs"]
        return encoder_ids(mpcs["pretrain"]["strategies"], mpcs["finetune"]["baselines"])

    def mpcs_runs(self, dataset: str) -> list[str]:
        """Every fine-tuning table of ``dataset`` (backbone x fold x encoder), what summarize_mpcs reads."""
        mpcs = self.config["mpcs"]
        return [mpcs_file(dataset, f"{e}.csv", b, f) for b in mpcs["backbones"] for f in range(mpcs["folds"])
                for e in self.mpcs_encoders]

    def mpcs_pretrain_histories(self, dataset: str) -> list[str]:
        mpcs = self.config["mpcs"]
        return [mpcs_file(dataset, f"pretrain_{s}.csv", b, f) for b in mpcs["backbones"] for f in range(mpcs["folds"])
                for s in mpcs["pretrain"]["strategies"]]

    # -- similarity --------------------------------------------------------------------------------------------
    @property
    def adaptation_entries(self) -> dict[str, dict[str, Any]]:
        """{name in paths: entry} of the similarity adaptation's backbones."""
        return {entry_name(e): e for e in self.config["similarity"]["adaptation"]["backbones"]}

    @property
    def calibrated_metrics(self) -> list[str]:
        return [m["name"] for m in self.config["similarity"]["metrics"] if m["linear"] == "calibrated"]

    @property
    def distortion_draws(self) -> int:
        """Distortion draws per image: one with fixed draws; with fresh draws a pool, one per training epoch (null
        = as many as epochs), too large to cache, so the adaptation compares straight from the backbone."""
        ad = self.config["similarity"]["adaptation"]
        return 1 if ad["draws"] == "fixed" else (ad["pool"] or max(1, ad["epochs"] + ad["decay_epochs"]))

    def two_afc_file(self, key: str) -> str:
        """The 2AFC/JND set of similarity.two_afc.<key>: built from the reference set, or a downloaded BAPPS set."""
        return two_afc_set(self.config, key)[1]

    def two_afc_inputs(self) -> dict[str, str]:
        out = {"two_afc": self.two_afc_file("val")}
        if self.config["similarity"]["two_afc"]["jnd"]:
            out["jnd"] = self.two_afc_file("jnd")
        return out

    def adapt_inputs(self, adapt: str) -> dict[str, str]:
        """adapt_dps: the distortion set and the 2AFC sets it retains; the feature cache only with fixed draws
        (fresh draws are compared straight from the backbone)."""
        out = {"dataset": similarity_data("distortions"), **self.two_afc_inputs()}
        if self.config["similarity"]["adaptation"]["draws"] == "fixed":
            out["cache"] = distortion_cache(adapt)
        return out

    # -- shape translation -------------------------------------------------------------------------------------
    @property
    def translation(self) -> dict[str, Any] | None:
        return self.config.get("translation")

    @property
    def translation_variants(self) -> list[str]:
        return list(self.translation["variants"]) if self.translation else []

    def translation_results(self, filename: str, identity: bool = False) -> list[str]:
        """<filename> of every ablation variant (and of the untranslated inputs with ``identity``)."""
        return [translation_file(filename, v) for v in (["identity"] if identity else []) + self.translation_variants]

    def translation_dataset(self) -> str:
        return dataset_file(self.translation["dataset"])

    def translation_options(self, keys=None) -> dict[str, Any]:
        """The translation section as the library takes it (the data keys belong to the data rules); ``keys``:
        only these (so a job reruns only when what it uses changes)."""
        out = {k: v for k, v in self.translation.items() if k not in ("dataset", "domains", "folder")}
        return out if keys is None else {k: out[k] for k in keys}

    # -- figures and the final targets ---------------------------------------------------------------------------
    def figures(self) -> dict[str, dict[str, Any]]:
        """The figure table: fig_<name> -> {"category": its section in the report, "inputs": the named files its
        renderer reads, "in_all": whether the default target builds it}, for every figure that exists under this
        config (the explanation figures need a classifier). rules/figures.smk makes render_fig_<name> and
        fig_<name> of each row; to give a figure one more input, add a key to its inputs (the renderer receives it
        by that name)."""
        first, runs = self.first_classifier, self.autoencoder_runs
        dataset = self.config["mpcs"]["dataset"]
        rows: dict[str, tuple[str, bool, Callable[[], dict[str, Any]]]] = {
            "fig_datasets": ("Data", True, lambda: dict(shapes=dataset_file("shapes"), photos=dataset_file("photos"))),
            "fig_backbone_check": ("Backbones", True, lambda: dict(table=BACKBONE_CHECK)),
            "fig_feature_caches": ("Features", True, lambda: dict(stats=self.feature_stats())),
            "fig_shape_translation": ("Shape translation", bool(self.translation), lambda: dict(
                ablation=translation_file("ablation.csv"),
                examples=self.translation_results("examples.h5", identity=True),
                histories=self.translation_results("history.csv"),
            )),
            "fig_saliency_examples": ("Explanations", True, lambda: dict(
                dataset=self.explain_dataset(first),
                rise=explain_file("maps_rise.h5", first),
                baselines=explain_file("maps_baselines.h5", first),
                crops=explain_file("channel_crops.h5", first),
                channels=explain_file("channels.csv", first),
            )),
            "fig_rise_components": ("Explanations", True, lambda: dict(summary=explain_file("summary.csv", first))),
            "fig_explainer_comparison": ("Explanations", True, lambda: dict(
                summaries=[explain_file("summary.csv", n) for n in self.classifiers])),
            "fig_perceptual_autoencoders": ("Perceptual loss", bool(runs), lambda: dict(
                summary=autoencoder_summary("summary.csv"), embeddings=[embeddings_file(r) for r in runs])),
            "fig_feature_prediction_speed": ("Perceptual loss", bool(runs), lambda: dict(
                speed=autoencoder_summary("speed.json"), summary=autoencoder_summary("summary.csv"))),
            "fig_loss_networks": ("Perceptual loss", bool(self.grid_cells), lambda: dict(
                scores=loss_network_file("scores.csv"),
                ranks=loss_network_file("ranks.csv"),
                correlation=loss_network_file("imagenet_correlation.csv"),
            )),
            "fig_mpcs": ("Self-supervised (MPCS)", True, lambda: dict(accuracy=mpcs_file(dataset, "accuracy.csv"),
                                            pretrain=mpcs_file(dataset, "pretrain.csv"))),
            "fig_2afc": ("Similarity", True, lambda: dict(table=similarity_file("two_afc.csv"))),
            "fig_dps_flaws": ("Similarity", True, lambda: dict(summary=similarity_file("flaws_summary.csv"),
                                                 challenges=similarity_data("challenges"))),
            "fig_dps_adaptation": ("Similarity", True, lambda: dict(
                tables=[similarity_file(f"adaptation/{a}.csv") for a in self.adaptation_entries])),
        }
        explain_figures = ("fig_saliency_examples", "fig_rise_components", "fig_explainer_comparison")
        return {fig: {"category": category, "in_all": in_all, "inputs": inputs()}
                for fig, (category, in_all, inputs) in rows.items() if first or fig not in explain_figures}

    def targets(self) -> list[str]:
        """What the default target (`rule all`) builds: the figures, the feature caches, the downloads."""
        figures = [p for fig, row in self.figures().items() if row["in_all"] for p in figure_files(fig)]
        return [*figures, *self.feature_targets(), *(dataset_file(s) for s in self.config["downloads"]["sources"])]
