"""Train the classifier to be explained (a head on cached backbone features): rule train_classifier."""

from percept.explain.classifier import train_classifier
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
smk = snakemake  # noqa: F821
metrics = train_classifier(smk.input.dataset, smk.input.cache, smk.output.model, smk.output.metrics,
                           smk.params.entry, seed=smk.params.seed, device=smk.params.device,
                           progress=smk.params.progress)
log.info("classifier %s: test mAP %.4f, label accuracy %.4f", smk.params.entry["name"], metrics["mAP"],
         metrics["label_accuracy"])
