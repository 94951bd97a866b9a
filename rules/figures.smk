"""Every figure of the pipeline, from one table. Included after the stage files: the inputs name their outputs."""


# One row per figure: fig_<name> -> its category in the report. The plan (percept.plan.Plan.figures) names the
# files each figure's renderer reads and whether the default target builds it; a figure the config cannot draw
# (the explanation figures without a classifier) has no rules. The row `fig_<name>` makes
#   rule render_fig_<name>  — draws results/figures/fig_<name>.{png,pdf} with the renderer registered under that
#                             name in percept.figures (scripts/render_figure.py); the name --forcerun takes;
#   rule fig_<name>         — the target users type (`snakemake --cores 2 fig_<name>`);
# and puts the PNG in the report under `category` with the caption report/fig_<name>.rst.
# To give a figure one more input, add a key to its inputs in percept.plan: the renderer receives it by that name.
FIGURE_CATEGORIES = {
    "fig_datasets": "Data",
    "fig_backbone_check": "Backbones",
    "fig_feature_caches": "Features",
    "fig_shape_translation": "Shape translation",
    "fig_saliency_examples": "Explanations",
    "fig_rise_components": "Explanations",
    "fig_explainer_comparison": "Explanations",
    "fig_perceptual_autoencoders": "Perceptual loss",
    "fig_feature_prediction_speed": "Perceptual loss",
    "fig_loss_networks": "Perceptual loss",
    "fig_mpcs": "Self-supervised (MPCS)",
    "fig_2afc": "Similarity",
    "fig_dps_flaws": "Similarity",
    "fig_dps_adaptation": "Similarity",
}
FIGURE_PLAN = PLAN.figures()


rule check_backbones:
    output:
        BACKBONE_CHECK,
    params:
        options=config["backbone_check"],
        **shared("check_backbones"),
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


for _fig, _row in FIGURE_PLAN.items():

    rule:
        name:
            f"render_{_fig}"
        input:
            **_row["inputs"],
        output:
            png=report(figure_files(_fig)[0], category=FIGURE_CATEGORIES[_fig], caption=f"../report/{_fig}.rst"),
            pdf=figure_files(_fig)[1],
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
