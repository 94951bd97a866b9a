"""Calibrate a DPS metric's linear weights on the 2AFC training set (percept.similarity.experiments.calibrate)."""

from percept.similarity.experiments import calibrate
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p, out = snakemake.params, snakemake.output  # noqa: F821
history = calibrate(snakemake.input.train, p.spec, out.weights, options=p.options, seed=p.seed,  # noqa: F821
                    device=p.device, batch_size=p.batch_size, allow_download=p.allow_download, progress=p.progress,
                    checkpoint=out.weights + ".ckpt")
write_csv(history, out.history)
log.info("calibrated %s: %s", p.spec["name"], history.tail(1).to_dict("records"))
