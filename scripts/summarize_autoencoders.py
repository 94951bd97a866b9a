"""Collect the autoencoder stage's tables: every predictor run, their summary, time per epoch per loss
(percept.autoencoders.summary)."""

from percept.autoencoders.summary import summarize
from percept.tables import write_csv, write_json
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
tables = summarize(list(snakemake.input.predictors), list(snakemake.input.epochs))  # noqa: F821
write_csv(tables["runs"], snakemake.output.runs)  # noqa: F821
write_csv(tables["summary"], snakemake.output.summary)  # noqa: F821
write_json(tables["speed"].to_dict(orient="records"), snakemake.output.speed)  # noqa: F821
log.info("time per epoch:\n%s", tables["speed"].to_string())
