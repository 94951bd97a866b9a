"""Generate the embedded `shapes` dataset (percept.data.embedded.make_shapes)."""

from percept.data.embedded import make_shapes
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
make_shapes(snakemake.output[0], seed=snakemake.params.seed, progress=snakemake.params.progress,  # noqa: F821
            **snakemake.params.options)  # noqa: F821
log.info("wrote %s", snakemake.output[0])  # noqa: F821
