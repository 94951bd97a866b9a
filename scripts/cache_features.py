"""Cache a backbone's tap features of a dataset in HDF5 (percept.features.cache_features)."""

from percept.backbones.spec import NetworkSpec
from percept.features import cache_features
from percept.tables import write_json
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
e = snakemake.params.entry  # noqa: F821
net = NetworkSpec.from_config(e, f"features entry {snakemake.wildcards.name}")  # noqa: F821
stats = cache_features(
    snakemake.input.dataset, snakemake.output.cache, net.backbone, net.taps_arg,  # noqa: F821
    weights=net.weights, split=e["split"], resize=net.resize, batch_size=e["batch_size"], dtype=e["dtype"],
    device=snakemake.params.device, seed=snakemake.params.seed,  # noqa: F821
    allow_download=snakemake.params.allow_download, progress=snakemake.params.progress, amp=e["amp"])  # noqa: F821
stats.update(dataset=snakemake.wildcards.dataset, name=snakemake.wildcards.name, backbone=e["backbone"])  # noqa: F821
log.info("cached: %s", stats)
write_json(stats, snakemake.output.stats)  # noqa: F821
