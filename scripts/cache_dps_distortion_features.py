"""Cache a backbone's tap features of the adaptation image set (percept.features.cache_features)."""

from percept.features import cache_features
from percept.similarity.experiments import entry_taps
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
e, p = snakemake.params.entry, snakemake.params  # noqa: F821
stats = cache_features(snakemake.input.dataset, snakemake.output.cache, e["backbone"], entry_taps(e),  # noqa: F821
                       weights=e.get("weights", "imagenet"), batch_size=p.batch_size, device=p.device, seed=p.seed,
                       allow_download=p.allow_download, progress=p.progress)
log.info("cached: %s", stats)
