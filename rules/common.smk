"""Paths and input functions derived from the (validated) config."""

from percept.config import feature_name
from percept.data.sources import SOURCES
from percept.similarity_names import two_afc_set

DOWNLOAD_SOURCES = list(SOURCES)


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    name=r"[A-Za-z0-9_.-]+",


def dataset_file(name):
    return f"data/datasets/{name}.h5"


def feature_entries():
    """{(dataset, name): entry} for every configured feature cache."""
    return {(e["dataset"], feature_name(e)): e for e in config["features"]}


def feature_entry(wildcards):
    key = (wildcards.dataset, wildcards.name)
    entries = feature_entries()
    if key not in entries:
        raise ValueError(f"no features entry for {key}; configured: {sorted(entries)}")
    return entries[key]


def feature_targets():
    return [f"data/features/{d}/{n}.h5" for d, n in feature_entries()]


def feature_stats():
    return [f"results/features/{d}/{n}.json" for d, n in feature_entries()]


def figure_files(name):
    return [f"results/figures/{name}.png", f"results/figures/{name}.pdf"]


# --- explanations (rules/explain.smk) ---
EXPLAIN = config["explain"]
EXPLAIN_CLASSIFIERS = {c["name"]: c for c in EXPLAIN["classifiers"]}
EXPLAIN_FIRST = EXPLAIN["classifiers"][0]["name"] if EXPLAIN["classifiers"] else None  # the figures show it


def explain_entry(wildcards):
    return EXPLAIN_CLASSIFIERS[wildcards.classifier]


def explain_dataset(wildcards):
    return dataset_file(explain_entry(wildcards)["dataset"])


def explain_cache(wildcards):
    e = explain_entry(wildcards)
    return f"data/features/{e['dataset']}/{e['backbone']}.h5"


def explain_cached_taps(wildcards):
    from percept import backbones

    e = explain_entry(wildcards)
    entry = feature_entries()[(e["dataset"], e["backbone"])]
    return backbones.resolve_taps(backbones.get(e["backbone"]), entry["taps"])


def explain_file(filename, name="{classifier}"):
    """results/explain/{classifier}/<filename>: every output of the explanation stage."""
    return f"results/explain/{name}/{filename}"


def baseline_inputs(wildcards):
    name = wildcards.classifier
    out = {"dataset": explain_dataset(wildcards), "classifier": explain_file("classifier.pt", name),
           "cache": explain_cache(wildcards)}
    if EXPLAIN["explainer"]["enabled"]:
        out["explainer"] = explain_file("explainer.pt", name)
    if EXPLAIN["channels"]["enabled"]:
        out["channels"] = explain_file("channels.csv", name)
    return out


# Similarity stage (rules/similarity.smk)
def two_afc_file(key):
    """The 2AFC/JND set of similarity.two_afc.<key>: built from the reference set, or a downloaded BAPPS set."""
    return two_afc_set(config, key)[1]


def two_afc_inputs():
    out = {"two_afc": two_afc_file("val")}
    if config["similarity"]["two_afc"]["jnd"]:
        out["jnd"] = two_afc_file("jnd")
    return out


# Shape translation (rules/translation.smk)
TRANSLATION = config.get("translation")
TRANSLATION_VARIANTS = list(TRANSLATION["variants"]) if TRANSLATION else []


def translation_dataset():
    return dataset_file(TRANSLATION["dataset"])


def translation_options(keys=None):
    """The translation section as the library takes it (the data keys belong to the data rules); ``keys``: only
    these (so a job reruns only when what it uses changes)."""
    out = {k: v for k, v in TRANSLATION.items() if k not in ("dataset", "domains", "folder")}
    return out if keys is None else {k: out[k] for k in keys}


def adapt_inputs(wc):
    """adapt_dps: the distortion set and the 2AFC sets it retains; the feature cache only with fixed draws (fresh
    draws are compared straight from the backbone)."""
    out = {"dataset": "data/similarity/distortions.h5", **two_afc_inputs()}
    if config["similarity"]["adaptation"]["draws"] == "fixed":
        out["cache"] = f"data/features/similarity/distortions/{wc.adapt}.h5"
    return out
