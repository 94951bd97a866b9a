"""Cache a backbone's tap features of the adaptation image set (percept.features.cache_features)."""

from percept.backbones.spec import NetworkSpec
from percept.features import cache_features
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
net, p = NetworkSpec.from_config(snakemake.params.entry), snakemake.params  # noqa: F821
stats = cache_features(snakemake.input.dataset, snakemake.output.cache, net.backbone, net.default_taps(),  # noqa: F821
                       weights=net.weights, batch_size=p.batch_size, device=p.device, seed=p.seed,
                       allow_download=p.allow_download, progress=p.progress)
log.info("cached: %s", stats)
