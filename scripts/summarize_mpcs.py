"""Collect the MPCS fine-tuning runs and pretraining histories into the stage's tables."""

import pandas as pd

from percept.mpcs.metrics import summarize
from percept.tables import write_csv
from percept.workflow import setup_script

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = setup_script(smk, uses_torch=False)
runs = pd.concat([pd.read_csv(f) for f in smk.input.runs], ignore_index=True)
runs.insert(0, "dataset", smk.wildcards.dataset)
write_csv(runs, smk.output.runs)
write_csv(summarize(runs), smk.output.accuracy)
write_csv(pd.concat([pd.read_csv(f) for f in smk.input.pretrain], ignore_index=True), smk.output.pretrain)
log.info("%d fine-tuning runs summarised into %s", len(runs), smk.output.accuracy)
