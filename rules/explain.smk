"""Explanations: the classifier to explain, RISE-style components, the trained explainer, Grad-CAM, relevant
channels, one evaluation, three figures. Everything per classifier under results/explain/{classifier}/."""

wildcard_constraints:
    classifier="|".join(EXPLAIN_CLASSIFIERS) or "(?!)",


rule train_classifier:
    input:
        dataset=explain_dataset,
        cache=explain_cache,
    output:
        model=explain_file("classifier.pt"),
        metrics=explain_file("classifier.json"),
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
        classifier=explain_file("classifier.pt"),
    output:
        model=explain_file("explainer.pt"),
    params:
        options=EXPLAIN["explainer"],
        resume=explain_file("explainer.resume.pt"),
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
        table=explain_file("channels.csv"),
        crops=explain_file("channel_crops.h5"),
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
        classifier=explain_file("classifier.pt"),
    output:
        maps=explain_file("maps_rise.h5"),
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
        maps=explain_file("maps_baselines.h5"),
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
        classifier=explain_file("classifier.pt"),
        maps=[explain_file("maps_rise.h5"), explain_file("maps_baselines.h5")],
    output:
        scores=explain_file("scores.csv"),
        summary=explain_file("summary.csv"),
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


if EXPLAIN_FIRST:  # the figures exist when at least one classifier is configured

    FIGURES += figure_files("fig_saliency_examples") + figure_files("fig_rise_components") + figure_files(
        "fig_explainer_comparison"
    )

    rule render_fig_saliency_examples:
        input:
            dataset=dataset_file(EXPLAIN_CLASSIFIERS[EXPLAIN_FIRST]["dataset"]),
            rise=explain_file("maps_rise.h5", EXPLAIN_FIRST),
            baselines=explain_file("maps_baselines.h5", EXPLAIN_FIRST),
            crops=explain_file("channel_crops.h5", EXPLAIN_FIRST),
            channels=explain_file("channels.csv", EXPLAIN_FIRST),
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
            summary=explain_file("summary.csv", EXPLAIN_FIRST),
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
            summaries=[explain_file("summary.csv", n) for n in EXPLAIN_CLASSIFIERS],
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
