"""Render one figure from the tables/files the pipeline computed: the rule is render_<figure name>. Imports no
torch unless the figure reads an image dataset (tests/test_workflow_figures_light.py)."""

from percept.figures import render
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
name = snakemake.rule.removeprefix("render_")  # noqa: F821
render(name, dict(snakemake.input.items()), [snakemake.output.png, snakemake.output.pdf])  # noqa: F821
log.info("rendered %s", name)
