"""Render one figure from the tables/files the pipeline computed: the rule is render_<figure name>."""

from percept.figures import render
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
name = snakemake.rule.removeprefix("render_")  # noqa: F821
render(name, dict(snakemake.input.items()), [snakemake.output.png, snakemake.output.pdf])  # noqa: F821
log.info("rendered %s", name)
