"""Score the DPS metrics and pixel baselines on the 2AFC and JND sets, per category."""

from percept.similarity.experiments import evaluate_two_afc
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p, inp = snakemake.params, snakemake.input  # noqa: F821
table = evaluate_two_afc(inp.two_afc, inp.get("jnd"), p.metrics, p.pixel_metrics,
                         calibrations=dict(zip(p.calibrated, inp.calibrations)), seed=p.seed, device=p.device,
                         batch_size=p.batch_size, allow_download=p.allow_download, progress=p.progress)
write_csv(table, snakemake.output.table)  # noqa: F821
log.info("\n%s", table[table.category.str.startswith("mean")].to_string())
