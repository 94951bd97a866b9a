"""The flaw analysis: pass/fail of every challenge per backbone x mode x normalisation, and the pass rates."""

import pandas as pd

from percept.similarity.experiments import evaluate_flaw_folder, evaluate_flaws, flaw_summary
from percept.tables import write_csv
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p, o = snakemake.params, snakemake.params.options  # noqa: F821
table = evaluate_flaws(snakemake.input.challenges, o["backbones"], modes=o["modes"], normalize=o["normalize"],  # noqa: F821
                       seed=p.seed, device=p.device, batch_size=p.batch_size, allow_download=p.allow_download,
                       progress=p.progress, norm_order=o["norm_order"])
if o.get("folder"):  # the authors' challenge images, in their layout, beside the generated set
    extra = evaluate_flaw_folder(o["folder"], o["backbones"], modes=o["modes"], normalize=o["normalize"], seed=p.seed,
                                 device=p.device, size=o.get("folder_size"), allow_download=p.allow_download,
                                 norm_order=o["norm_order"])
    table = pd.concat([table.assign(source="generated"), extra], ignore_index=True)
summary = flaw_summary(table)
write_csv(table, snakemake.output.table)  # noqa: F821
write_csv(summary, snakemake.output.summary)  # noqa: F821
log.info("\n%s", summary[summary.group == "all"].to_string())
