"""RISE-style perturbation explanations for every configured component setting: rule explain_rise."""

from percept.explain.classifier import load_classifier
from percept.explain.evaluate import run_rise
from percept.features import resolve_device
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
smk = snakemake  # noqa: F821
dev = resolve_device(smk.params.device)
classifier = load_classifier(smk.input.classifier, dev)
meta = run_rise(smk.input.dataset, classifier, smk.output.maps, smk.params.options, smk.params.n_images,
                seed=smk.params.seed, device=dev, progress=smk.params.progress)
log.info("%d RISE settings written to %s", len(meta), smk.output.maps)
