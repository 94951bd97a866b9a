"""Generate the two-domain shape-translation set (percept.translation.data.make_translation_domains)."""

from percept.translation.data import make_translation_domains
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
make_translation_domains(snakemake.output[0], seed=snakemake.params.seed,  # noqa: F821
                         progress=snakemake.params.progress, **snakemake.params.options)  # noqa: F821
log.info("wrote %s", snakemake.output[0])  # noqa: F821
