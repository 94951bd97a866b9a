"""Train the NN-Explainer against the frozen classifier (checkpoints every epoch, resumes): rule train_explainer."""

from percept.explain.classifier import load_classifier
from percept.explain.explainer import train_explainer
from percept.features import resolve_device
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
smk = snakemake  # noqa: F821
dev = resolve_device(smk.params.device)
classifier = load_classifier(smk.input.classifier, dev)
out = train_explainer(smk.input.dataset, classifier, smk.output.model, smk.params.options, seed=smk.params.seed,
                      device=dev, progress=smk.params.progress, resume_path=smk.params.resume)
log.info("explainer trained on %d images: last epoch %s", out["images"], out["history"][-1])
