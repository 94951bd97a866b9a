"""One cell of the loss-network grid: train and score the task with this loss network and extraction point
(the task's runner from percept.loss_networks.registry); a tidy CSV, one row per score."""

from percept.loss_networks.tasks import run_cell
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p = snakemake.params  # noqa: F821
table = run_cell(p.task, dict(snakemake.input.items()), p.cell, p.options, work=snakemake.output[0],  # noqa: F821
                 seed=p.seed, device=p.device, progress=p.progress, allow_download=p.allow_download)
write_csv(table, snakemake.output[0])  # noqa: F821
log.info("scores:\n%s", table.to_string())
