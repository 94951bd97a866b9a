"""The tidy ablation table (variant x score: mean, sem, n), per-image scores and training times
(percept.translation.tables.summarize_runs; no torch)."""

from percept.translation.tables import summarize_runs
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
summarize_runs(list(snakemake.input.scores), list(snakemake.input.timing), **dict(snakemake.output.items()))  # noqa: F821
log.info("wrote %s", list(snakemake.output))  # noqa: F821
