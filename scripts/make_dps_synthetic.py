"""Build a synthetic 2AFC or JND set in the BAPPS format (percept.similarity.distortions)."""

from percept.similarity import distortions
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
name = snakemake.wildcards.synthetic  # noqa: F821
p = snakemake.params  # noqa: F821
common = {"per_image": p.per_image, "seed": p.seed, "image_size": p.image_size}
if name == "synthetic_jnd":
    distortions.make_synthetic_jnd(snakemake.input.reference, snakemake.output[0], split="test", **common)  # noqa: F821
else:
    split = "train" if name.endswith("train") else "test"
    distortions.make_synthetic_two_afc(snakemake.input.reference, snakemake.output[0], split=split,  # noqa: F821
                                       **common)
log.info("wrote %s", snakemake.output[0])  # noqa: F821
