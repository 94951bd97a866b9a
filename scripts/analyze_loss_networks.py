"""The loss-network analysis: every cell's scores, ranks of networks and taps per task, correlation with
ImageNet accuracy (percept.loss_networks.analysis)."""

from percept.loss_networks.analysis import collect, correlations, ranks
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
scores = collect(list(snakemake.input))  # noqa: F821
write_csv(scores, snakemake.output.scores)  # noqa: F821
write_csv(ranks(scores), snakemake.output.ranks)  # noqa: F821
corr = correlations(scores)
write_csv(corr, snakemake.output.correlation)  # noqa: F821
log.info("%d scores; correlation with ImageNet acc@1:\n%s", len(scores), corr.to_string())
