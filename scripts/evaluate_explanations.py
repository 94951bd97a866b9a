"""Score every saliency map with the one metrics module: tidy per-image table and the summary."""

from percept.explain.classifier import load_classifier
from percept.explain.evaluate import score_maps, summarise
from percept.features import resolve_device
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
smk = snakemake  # noqa: F821
dev = resolve_device(smk.params.device)
classifier = load_classifier(smk.input.classifier, dev)
scores = score_maps(smk.input.dataset, classifier, list(smk.input.maps), smk.params.options,
                    classifier_name=smk.wildcards.classifier, device=dev, progress=smk.params.progress)
write_csv(scores, smk.output.scores, float_format="%.6g")
summary = summarise(scores)
write_csv(summary, smk.output.summary, float_format="%.6g")
log.info("scored %d maps; summary:\n%s", len(scores), summary.to_string())
