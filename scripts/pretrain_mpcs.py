"""MPCS contrastive pretraining of one pair strategy on one fold (percept.mpcs.pretrain.pretrain)."""

import os

from percept.mpcs.pretrain import pretrain
from percept.tables import write_csv
from percept.workflow import setup_script

smk = snakemake  # noqa: F821 (injected by Snakemake)
log = setup_script(smk)
p = smk.params
history = pretrain(smk.input.dataset, smk.output.model, strategy=smk.wildcards.strategy, fold=int(smk.wildcards.fold),
                   folds=p.folds, backbone=smk.wildcards.backbone, init=p.init, seed=p.seed, options=p.options,
                   checkpoint=p.checkpoint, device=p.device, allow_download=p.allow_download, progress=p.progress)
write_csv(history, smk.output.history)
if os.path.exists(p.checkpoint):
    os.remove(p.checkpoint)  # the run is complete; its outputs hold the result
log.info("wrote %s and %s", smk.output.model, smk.output.history)
