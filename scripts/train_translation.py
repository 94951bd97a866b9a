"""Train one ablation variant of the shape translator and score its translations of the test images of domain A
(percept.translation.training, percept.translation.evaluate)."""

from percept.tables import write_csv, write_json
from percept.translation.evaluate import evaluate_translator, write_examples
from percept.translation.training import train_translation
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
p, inp, out, variant = snakemake.params, snakemake.input, snakemake.output, snakemake.wildcards.variant  # noqa: F821
model, info = train_translation(inp.dataset, out.model, out.history, options=p.options, variant=variant,
                                seed=p.seed, device=p.device, progress=p.progress, allow_download=p.allow_download)
write_json({"variant": variant, **info}, out.timing)
log.info("trained: %s", info)
scores, examples = evaluate_translator(model, inp.dataset, inp.judge, options=p.options, variant=variant,
                                       seed=p.seed, device=p.device, allow_download=p.allow_download)
write_csv(scores, out.scores)
write_examples(out.examples, examples, variant)
log.info("%s: %s", variant, scores.drop(columns=["variant", "image"]).mean().to_dict())
