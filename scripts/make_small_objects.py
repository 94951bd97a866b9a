"""Generate the embedded `small_objects` dataset (percept.data.embedded.make_small_objects)."""

from percept.data.embedded import make_small_objects
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
make_small_objects(snakemake.output[0], seed=snakemake.params.seed, progress=snakemake.params.progress,  # noqa: F821
                   **snakemake.params.options)  # noqa: F821
log.info("wrote %s", snakemake.output[0])  # noqa: F821
