"""Every figure of the pipeline, from one table. Included after the stage files: the inputs name their outputs."""


# One row per figure. The row `fig_<name>` makes
#   rule render_fig_<name>  — draws results/figures/fig_<name>.{png,pdf} with the renderer registered under that
#                             name in percept.figures (scripts/render_figure.py); the name --forcerun takes;
#   rule fig_<name>         — the target users type (`snakemake --cores 2 fig_<name>`);
# and puts the PNG in the report under `category` with the caption report/fig_<name>.rst.
#   inputs   the named files the renderer reads (a function, so rows of a stage that is off are never evaluated);
#   in_all   whether the default target (`rule all`) builds it (a stage without work has no figure);
#   defined  whether its two rules exist at all (default True).
# To give a figure one more input, add a key to its `inputs`: the renderer receives it by that name.
FIGURE_TABLE = {
    "fig_datasets": dict(
        category="Data",
        inputs=lambda: dict(shapes=dataset_file("shapes"), photos=dataset_file("photos")),
    ),
    "fig_backbone_check": dict(
        category="Backbones",
        inputs=lambda: dict(table="results/backbones/imagenet_check.csv"),
    ),
    "fig_feature_caches": dict(
        category="Features",
        inputs=lambda: dict(stats=feature_stats()),
    ),
    "fig_shape_translation": dict(
        category="Shape translation",
        in_all=bool(TRANSLATION),
        inputs=lambda: dict(
            ablation="results/translation/ablation.csv",
            examples=expand("results/translation/{variant}/examples.h5", variant=["identity", *TRANSLATION_VARIANTS]),
            histories=expand("results/translation/{variant}/history.csv", variant=TRANSLATION_VARIANTS),
        ),
    ),
    "fig_saliency_examples": dict(
        category="Explanations",
        defined=bool(EXPLAIN_FIRST),  # the explanation figures show the first configured classifier
        inputs=lambda: dict(
            dataset=dataset_file(EXPLAIN_CLASSIFIERS[EXPLAIN_FIRST]["dataset"]),
            rise=explain_file("maps_rise.h5", EXPLAIN_FIRST),
            baselines=explain_file("maps_baselines.h5", EXPLAIN_FIRST),
            crops=explain_file("channel_crops.h5", EXPLAIN_FIRST),
            channels=explain_file("channels.csv", EXPLAIN_FIRST),
        ),
    ),
    "fig_rise_components": dict(
        category="Explanations",
        defined=bool(EXPLAIN_FIRST),
        inputs=lambda: dict(summary=explain_file("summary.csv", EXPLAIN_FIRST)),
    ),
    "fig_explainer_comparison": dict(
        category="Explanations",
        defined=bool(EXPLAIN_FIRST),
        inputs=lambda: dict(summaries=[explain_file("summary.csv", n) for n in EXPLAIN_CLASSIFIERS]),
    ),
    "fig_perceptual_autoencoders": dict(
        category="Perceptual loss",
        in_all=bool(AE_RUNS),
        inputs=lambda: dict(
            summary="results/autoencoders/summary.csv",
            embeddings=[f"data/embeddings/{r['dataset']}/{r['loss']}-z{r['embedding_size']}.h5" for r in AE_RUNS],
        ),
    ),
    "fig_feature_prediction_speed": dict(
        category="Perceptual loss",
        in_all=bool(AE_RUNS),
        inputs=lambda: dict(speed="results/autoencoders/speed.json", summary="results/autoencoders/summary.csv"),
    ),
    "fig_loss_networks": dict(
        category="Perceptual loss",
        in_all=bool(GRID_CELLS),
        inputs=lambda: dict(
            scores="results/loss_networks/scores.csv",
            ranks="results/loss_networks/ranks.csv",
            correlation="results/loss_networks/imagenet_correlation.csv",
        ),
    ),
    "fig_mpcs": dict(
        category="Self-supervised (MPCS)",
        inputs=lambda: dict(
            accuracy=f"results/mpcs/{MPCS_DATASET}/accuracy.csv",
            pretrain=f"results/mpcs/{MPCS_DATASET}/pretrain.csv",
        ),
    ),
    "fig_2afc": dict(
        category="Similarity",
        inputs=lambda: dict(table="results/similarity/two_afc.csv"),
    ),
    "fig_dps_flaws": dict(
        category="Similarity",
        inputs=lambda: dict(
            summary="results/similarity/flaws_summary.csv",
            challenges="data/similarity/challenges.h5",
        ),
    ),
    "fig_dps_adaptation": dict(
        category="Similarity",
        inputs=lambda: dict(tables=expand("results/similarity/adaptation/{adapt}.csv", adapt=list(SIM_ADAPT))),
    ),
}

FIGURES = [
    path
    for _fig, _row in FIGURE_TABLE.items()
    if _row.get("defined", True) and _row.get("in_all", True)
    for path in figure_files(_fig)
]


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


for _fig, _row in FIGURE_TABLE.items():
    if not _row.get("defined", True):
        continue

    rule:
        name:
            f"render_{_fig}"
        input:
            **_row["inputs"](),
        output:
            png=report(f"results/figures/{_fig}.png", category=_row["category"], caption=f"../report/{_fig}.rst"),
            pdf=f"results/figures/{_fig}.pdf",
        log:
            f"logs/render_{_fig}/fig.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/figures.yaml"
        script:
            "../scripts/render_figure.py"

    rule:
        name:
            _fig
        input:
            figure_files(_fig),
