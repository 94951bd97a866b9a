"""Figures and the tables behind them; each figure is a named target (snakemake fig_<name>)."""

FIGURES = figure_files("fig_datasets") + figure_files("fig_backbone_check") + figure_files("fig_feature_caches")


rule check_backbones:
    output:
        "results/backbones/imagenet_check.csv",
    params:
        options=config["backbone_check"],
        seed=config["seed"],
    log:
        "logs/check_backbones/check.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/check_backbones.py"


rule render_fig_datasets:
    input:
        shapes=dataset_file("shapes"),
        photos=dataset_file("photos"),
    output:
        png=report("results/figures/fig_datasets.png", category="Data", caption="../report/fig_datasets.rst"),
        pdf="results/figures/fig_datasets.pdf",
    log:
        "logs/render_fig_datasets/fig.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/render_figure.py"


rule render_fig_backbone_check:
    input:
        table="results/backbones/imagenet_check.csv",
    output:
        png=report("results/figures/fig_backbone_check.png", category="Backbones",
                   caption="../report/fig_backbone_check.rst"),
        pdf="results/figures/fig_backbone_check.pdf",
    log:
        "logs/render_fig_backbone_check/fig.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/render_figure.py"


rule render_fig_feature_caches:
    input:
        stats=feature_stats(),
    output:
        png=report("results/figures/fig_feature_caches.png", category="Features",
                   caption="../report/fig_feature_caches.rst"),
        pdf="results/figures/fig_feature_caches.pdf",
    log:
        "logs/render_fig_feature_caches/fig.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/render_figure.py"


rule fig_datasets:
    input:
        figure_files("fig_datasets"),


rule fig_backbone_check:
    input:
        figure_files("fig_backbone_check"),


rule fig_feature_caches:
    input:
        figure_files("fig_feature_caches"),
