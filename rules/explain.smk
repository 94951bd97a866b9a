"""Explanations: the classifier to explain, RISE-style components, the trained explainer, Grad-CAM, relevant
channels, one evaluation, three figures. Everything per classifier under results/explain/{classifier}/."""

EXPLAIN = config["explain"]
EXPLAIN_CLASSIFIERS = {c["name"]: c for c in EXPLAIN["classifiers"]}
EXPLAIN_FIRST = EXPLAIN["classifiers"][0]["name"]


wildcard_constraints:
    classifier="|".join(EXPLAIN_CLASSIFIERS),


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


def explain_dir(name="{classifier}"):
    return f"results/explain/{name}"


def baseline_inputs(wildcards):
    d = explain_dir(wildcards.classifier)
    out = {"dataset": explain_dataset(wildcards), "classifier": f"{d}/classifier.pt", "cache": explain_cache(wildcards)}
    if EXPLAIN["explainer"]["enabled"]:
        out["explainer"] = f"{d}/explainer.pt"
    if EXPLAIN["channels"]["enabled"]:
        out["channels"] = f"{d}/channels.csv"
    return out


FIGURES += figure_files("fig_saliency_examples") + figure_files("fig_rise_components") + figure_files(
    "fig_explainer_comparison"
)


rule train_classifier:
    input:
        dataset=explain_dataset,
        cache=explain_cache,
    output:
        model=explain_dir() + "/classifier.pt",
        metrics=explain_dir() + "/classifier.json",
    params:
        entry=explain_entry,
        seed=config["seed"],
        device=config["device"],
        progress=config["progress"],
    log:
        "logs/train_classifier/{classifier}.log",
    threads: 1  # a small head on cached features: one thread is fastest
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_classifier.py"


rule train_explainer:
    input:
        dataset=explain_dataset,
        classifier=explain_dir() + "/classifier.pt",
    output:
        model=explain_dir() + "/explainer.pt",
    params:
        options=EXPLAIN["explainer"],
        resume=explain_dir() + "/explainer.resume.pt",
        seed=config["seed"],
        device=config["device"],
        progress=config["progress"],
    log:
        "logs/train_explainer/{classifier}.log",
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_explainer.py"


rule select_channels:
    input:
        dataset=explain_dataset,
        cache=explain_cache,
    output:
        table=explain_dir() + "/channels.csv",
        crops=explain_dir() + "/channel_crops.h5",
    params:
        options=EXPLAIN["channels"],
        cached_taps=explain_cached_taps,
        seed=config["seed"],
    log:
        "logs/select_channels/{classifier}.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/select_channels.py"


rule explain_rise:
    input:
        dataset=explain_dataset,
        classifier=explain_dir() + "/classifier.pt",
    output:
        maps=explain_dir() + "/maps_rise.h5",
    params:
        options=EXPLAIN["rise"],
        n_images=EXPLAIN["n_images"],
        seed=config["seed"],
        device=config["device"],
        progress=config["progress"],
    log:
        "logs/explain_rise/{classifier}.log",
    benchmark:
        "benchmarks/explain_rise/{classifier}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/explain_rise.py"


rule explain_baselines:
    input:
        unpack(baseline_inputs),
    output:
        maps=explain_dir() + "/maps_baselines.h5",
    params:
        n_images=EXPLAIN["n_images"],
        seed=config["seed"],
        device=config["device"],
    log:
        "logs/explain_baselines/{classifier}.log",
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/explain_baselines.py"


rule evaluate_explanations:
    input:
        dataset=explain_dataset,
        classifier=explain_dir() + "/classifier.pt",
        maps=[explain_dir() + "/maps_rise.h5", explain_dir() + "/maps_baselines.h5"],
    output:
        scores=explain_dir() + "/scores.csv",
        summary=explain_dir() + "/summary.csv",
    params:
        options=EXPLAIN["evaluation"],
        device=config["device"],
        progress=config["progress"],
    log:
        "logs/evaluate_explanations/{classifier}.log",
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/evaluate_explanations.py"


rule render_fig_saliency_examples:
    input:
        dataset=dataset_file(EXPLAIN_CLASSIFIERS[EXPLAIN_FIRST]["dataset"]),
        rise=explain_dir(EXPLAIN_FIRST) + "/maps_rise.h5",
        baselines=explain_dir(EXPLAIN_FIRST) + "/maps_baselines.h5",
        crops=explain_dir(EXPLAIN_FIRST) + "/channel_crops.h5",
        channels=explain_dir(EXPLAIN_FIRST) + "/channels.csv",
    output:
        png=report("results/figures/fig_saliency_examples.png", category="Explanations",
                   caption="../report/fig_saliency_examples.rst"),
        pdf="results/figures/fig_saliency_examples.pdf",
    log:
        "logs/render_fig_saliency_examples/fig.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/render_figure.py"


rule render_fig_rise_components:
    input:
        summary=explain_dir(EXPLAIN_FIRST) + "/summary.csv",
    output:
        png=report("results/figures/fig_rise_components.png", category="Explanations",
                   caption="../report/fig_rise_components.rst"),
        pdf="results/figures/fig_rise_components.pdf",
    log:
        "logs/render_fig_rise_components/fig.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/render_figure.py"


rule render_fig_explainer_comparison:
    input:
        summaries=[explain_dir(n) + "/summary.csv" for n in EXPLAIN_CLASSIFIERS],
    output:
        png=report("results/figures/fig_explainer_comparison.png", category="Explanations",
                   caption="../report/fig_explainer_comparison.rst"),
        pdf="results/figures/fig_explainer_comparison.pdf",
    log:
        "logs/render_fig_explainer_comparison/fig.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/render_figure.py"


rule fig_saliency_examples:
    input:
        figure_files("fig_saliency_examples"),


rule fig_rise_components:
    input:
        figure_files("fig_rise_components"),


rule fig_explainer_comparison:
    input:
        figure_files("fig_explainer_comparison"),
