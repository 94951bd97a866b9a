"""Build the flaw challenge set from the shipped photos (percept.similarity.distortions.make_challenges)."""

from percept.similarity.distortions import make_challenges
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p = snakemake.params  # noqa: F821
make_challenges(snakemake.output[0], photos=p.photos, crops_per_photo=p.crops_per_photo,  # noqa: F821
                size=p.image_size, seed=p.seed, stain_style=p.stain_style)
log.info("wrote %s", snakemake.output[0])  # noqa: F821
