"""Convert one downloaded dataset to the project's HDF5 format (percept.data.prepare.prepare)."""

from pathlib import Path

from percept.data.prepare import prepare
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
name = snakemake.params.name  # noqa: F821
try:
    prepare(name, Path(snakemake.input[0]), Path(snakemake.output[0]), **dict(snakemake.params.options))  # noqa: F821
except Exception:
    log.exception("preparing %s failed", name)
    raise
log.info("wrote %s", snakemake.output[0])  # noqa: F821
