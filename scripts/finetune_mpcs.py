"""Linear probe and full fine-tune of one encoder on one fold at every label fraction (percept.mpcs.finetune)."""

import os

from percept.mpcs.finetune import evaluate_encoder
from percept.tables import write_csv
from percept.workflow import setup_script

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = setup_script(smk)
p = smk.params
runs = evaluate_encoder(smk.input.dataset, encoder=smk.wildcards.encoder, pretrained=smk.input.get("pretrained"),
                        fold=int(smk.wildcards.fold), folds=p.folds, backbone=smk.wildcards.backbone, seed=p.seed,
                        options=p.options, checkpoint=p.checkpoint, device=p.device,
                        allow_download=p.allow_download, progress=p.progress)
write_csv(runs, smk.output[0])
if os.path.exists(p.checkpoint):
    os.remove(p.checkpoint)  # the run is complete; its table holds the result
log.info("wrote %s (%d runs)", smk.output[0], len(runs))
