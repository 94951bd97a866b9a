"""Train one autoencoder (dataset, loss, embedding size), time its epochs, cache its embeddings
(percept.autoencoders.training)."""

from percept.autoencoders.training import embed_dataset, train_autoencoder
from percept.tables import write_json
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
wc, params, inp, out = snakemake.wildcards, snakemake.params, snakemake.input, snakemake.output  # noqa: F821
cache = inp.targets[0] if inp.targets else None
model, history, info = train_autoencoder(
    inp.dataset, out.model, loss=wc.loss, embedding_size=int(wc.z), options=params.options, feature_cache=cache,
    seed=params.seed, device=params.device, progress=params.progress, allow_download=params.allow_download)
run = {"dataset": wc.dataset, "loss": wc.loss, "embedding_size": int(wc.z), **info}
write_json([{**run, "epoch": h["epoch"], "train_loss": h["loss"], "seconds": h["seconds"]} for h in history],
           out.epochs)
embed_dataset(model, inp.dataset, out.embeddings, meta={"loss": wc.loss, "embedding_size": int(wc.z)},
              device=params.device)
log.info("trained %s/%s z=%s: %s", wc.dataset, wc.loss, wc.z, history[-1])
