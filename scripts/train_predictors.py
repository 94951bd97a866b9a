"""Predictors (linear, MLPs) on one autoencoder's cached embeddings, several seeds; a tidy CSV of every run
(percept.autoencoders.predictors)."""

from percept.autoencoders.predictors import evaluate_embedding_file
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
opts, seed = snakemake.params.options, snakemake.params.seed  # noqa: F821
runs = evaluate_embedding_file(snakemake.input.embeddings, snakemake.input.dataset, opts["hidden"],  # noqa: F821
                               [seed + s for s in range(int(opts["seeds"]))], opts)
write_csv(runs, snakemake.output[0])  # noqa: F821
log.info("%d predictor runs:\n%s", len(runs), runs.groupby(["task", "predictor"])["value"].mean())
