"""Top-5 ImageNet labels of the configured backbones on shipped photos (percept.backbones.check)."""

from percept.backbones.check import imagenet_check
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
o = snakemake.params.options  # noqa: F821
table = imagenet_check(o["backbones"], o["photos"], o["random_baseline"], seed=snakemake.params.seed)  # noqa: F821
write_csv(table, snakemake.output[0])  # noqa: F821
log.info("\n%s", table[table["rank"] == 1].to_string(index=False))
