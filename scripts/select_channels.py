"""Relevant channels per class (sparse selection on cached features) and their top-activating crops."""

import numpy as np

from percept.explain.channels import select_channels
from percept.h5io import write_arrays
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
smk = snakemake  # noqa: F821
opts = smk.params.options
sel = select_channels(smk.input.dataset, smk.input.cache, opts["taps"] or smk.params.cached_taps, alpha=opts["alpha"],
                      top_k=opts["top_k"], top_images=opts["top_images"], show=opts["show"], crop=opts["crop"],
                      seed=smk.params.seed)
write_csv(sel.table, smk.output.table, float_format="%.6g")
write_arrays(smk.output.crops, "saliency", meta={"content": "average top-activating crops (K, show, h, w, 3)"},
             crops=sel.crops.astype(np.float32))
log.info("selected %d relevant channels", len(sel.table))
