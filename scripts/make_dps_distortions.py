"""Build the adaptation image set: every reference image and its six distortions."""

from percept.similarity.distortions import make_distortion_set
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p = snakemake.params  # noqa: F821
make_distortion_set(snakemake.input.reference, snakemake.output[0], seed=p.seed, max_images=p.max_images,  # noqa: F821
                    image_size=p.image_size, style=p.style, draws=p.draws)
log.info("wrote %s", snakemake.output[0])  # noqa: F821
