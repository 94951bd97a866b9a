"""Generate the embedded `magnification` dataset (percept.data.embedded.make_magnification)."""

from percept.data.embedded import make_magnification
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
make_magnification(snakemake.output[0], seed=snakemake.params.seed, **snakemake.params.options)  # noqa: F821
log.info("wrote %s", snakemake.output[0])  # noqa: F821
