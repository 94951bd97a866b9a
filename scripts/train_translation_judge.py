"""Train the frozen shape classifier that judges translations and score the untranslated inputs with it (the
`identity` reference row) (percept.translation.evaluate)."""

from percept.tables import write_csv
from percept.translation.evaluate import (
                                       evaluate_translator,
                                       train_judge,
                                       write_examples,
)
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
info = train_judge(inp.dataset, out.judge, options=p.options, seed=p.seed, device=p.device)
log.info("judge: %s", info)
scores, examples = evaluate_translator(None, inp.dataset, out.judge, options=p.options, variant="identity",
                                       seed=p.seed, device=p.device, allow_download=p.allow_download)
write_csv(scores, out.scores)
write_examples(out.examples, examples, "identity")
