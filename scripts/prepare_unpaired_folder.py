"""A user-given unpaired two-domain folder (trainA/ trainB/ testA/ testB/) → one dataset file
(percept.data.prepare.prepare_unpaired)."""

from percept.data.prepare import prepare_unpaired
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
prepare_unpaired(snakemake.params.folder, snakemake.output[0], **snakemake.params.options)  # noqa: F821
log.info("wrote %s", snakemake.output[0])  # noqa: F821
