"""Collect the autoencoder stage's tables: every predictor run, their summary, time per epoch per loss
(percept.autoencoders.summary)."""

from percept.autoencoders.predictors import write_csv
from percept.autoencoders.summary import summarize
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
tables = summarize(list(snakemake.input.predictors), list(snakemake.input.epochs))  # noqa: F821
for name, df in tables.items():
    write_csv(df, getattr(snakemake.output, name))  # noqa: F821
log.info("time per epoch:\n%s", tables["speed"].to_string())
