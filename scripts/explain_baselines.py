"""Grad-CAM, the trained explainer and relevant-channel heatmaps on the evaluation images."""

import pandas as pd

from percept.data.store import ImageDataset
from percept.explain.channels import ChannelHeatmaps, cache_network
from percept.explain.classifier import load_classifier
from percept.explain.evaluate import run_baselines
from percept.explain.explainer import load_explainer
from percept.features import FeatureCache, resolve_device
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
smk = snakemake  # noqa: F821
dev = resolve_device(smk.params.device)
classifier = load_classifier(smk.input.classifier, dev)
ds = ImageDataset(smk.input.dataset)
names = list(smk.input.keys())  # a Snakemake Namedlist: `in` would search its values
explainer = load_explainer(smk.input.explainer, ds.num_classes) if "explainer" in names else None
channels = None
if "channels" in names:
    table = pd.read_csv(smk.input.channels)
    channels = ChannelHeatmaps(cache_network(FeatureCache(smk.input.cache), table["tap"].unique(), dev), table)
meta = run_baselines(smk.input.dataset, classifier, explainer, channels, smk.output.maps, smk.params.n_images,
                     seed=smk.params.seed, device=dev)
log.info("baseline maps: %s", meta)
