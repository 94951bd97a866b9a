"""Every figure of the pipeline, from one table. Included after the stage files: the inputs name their outputs."""


# The figure table is percept.plan's (Plan.figures): one row per figure fig_<name> that this config can draw, with
# its report category, its renderer's named inputs and whether `rule all` builds it. Each row makes
#   rule render_fig_<name>  — draws results/figures/fig_<name>.{png,pdf} with the renderer registered under that
#                             name in percept.figures (scripts/render_figure.py); the name --forcerun takes;
#   rule fig_<name>         — the target users type (`snakemake --cores 2 fig_<name>`);
# and puts the PNG in the report under its category with the caption report/fig_<name>.rst.
FIGURE_PLAN = PLAN.figures()


rule check_backbones:
    output:
        BACKBONE_CHECK,
    params:
        options=config["backbone_check"],
        **shared("check_backbones"),
    log:
        "logs/check_backbones/check.log",
    threads: JOB_THREADS
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
            png=report(figure_files(_fig)[0], category=_row["category"], caption=f"../report/{_fig}.rst"),
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
