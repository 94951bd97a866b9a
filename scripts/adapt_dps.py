"""Adapt per-channel scalars to random distortion orderings from the cached features, against the baseline."""

from percept.similarity.experiments import adapt_backbone
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p, inp = snakemake.params, snakemake.input  # noqa: F821
table = adapt_backbone(inp.get("cache"), inp.dataset, p.entry, two_afc_path=inp.two_afc, jnd_path=inp.get("jnd"),
                       options=p.options, seed=p.seed, device=p.device, batch_size=p.batch_size,
                       allow_download=p.allow_download, checkpoint=p.checkpoint, progress=p.progress)
write_csv(table, snakemake.output.table)  # noqa: F821
log.info("adapted beats baseline in %.1f %% of %d contexts; mean accuracy %.3f -> %.3f",
         100 * table.improved.mean(), len(table), table.baseline.mean(), table.adapted.mean())
