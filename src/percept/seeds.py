"""Named random streams: the one way a stage derives a random generator from the config's ``seed``.

A stream is named for what it draws (``"mpcs.pretrain_epoch"``) and indexed by the integers that make one draw
independent of the others (fold, replicate, epoch, photo row, …). Its generator is numpy's
``default_rng(SeedSequence([seed, tag, *ids]))``, where ``tag`` is the stream's number in :data:`STREAMS`, so
every random choice of the pipeline is reproducible from ``seed`` alone, two streams never share draws, and a
resumed run (epoch ``e`` derived from ``(seed, e)``, never from where it started) equals an uninterrupted one.
Torch generators are seeded from the numpy stream's first 62-bit draw (:func:`torch_seed`).

The tags are the numbers the streams had before they had names (``default_rng([seed, 41, i])`` …), so naming a
stream moved no draw. Three derivations that were arithmetic (``seed * 10007 + epoch`` in translation,
``seed * 100_003 + epoch`` in the autoencoders, ``seed + 991`` for the translation judge's evaluation) and the
MPCS fine-tuning epochs (``run_seed + epoch``) are streams now: their draws moved (docs/conventions.md lists the
tables); so did the explanation stage's, whose streams have new tags (``SeedSequence`` pads its entropy with zeros,
so its old ``[seed, 41]`` drew what ``similarity.distortion_params`` draws at row 0). Torch-free at import:
:func:`torch_generator` imports torch when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

# name -> tag. Names say what the stream draws; a (tag, number of ids) pair belongs to one name only (two names
# with the same tag differ in how many ids they take, so their SeedSequence entropies differ).
STREAMS: dict[str, int] = {
    # data/embedded.py
    "embedded.shapes": 1,                     # one child stream per scene of the shapes set
    "embedded.small_objects": 7,              # one child stream per scene of the small-objects set
    "embedded.photo_crops": 2,                # per photo: random crops of the shipped photos (ids: photo)
    "embedded.histology_patient": 3,          # per subtype and patient: stain gain, sequences, fields
    # translation
    "translation.domains": 10,                # one child stream per image of the two shape domains
    "translation.epoch_order": 11,            # per epoch: the order of each domain's images (ids: epoch)
    "translation.epoch_noise": 10_007,        # per epoch: torch's global RNG (VAE noise, dropout) (ids: epoch)
    "translation.judge_eval": 991,            # the judge's augmented/corrupted test images (no ids)
    # autoencoders
    "autoencoders.epoch": 100_003,            # per epoch: batch order and sampling noise (ids: epoch)
    # mpcs
    "mpcs.folds": 11,                         # the patient folds (no ids)
    "mpcs.validation": 12,                    # the validation patients of one fold (no ids; seed + fold)
    "mpcs.pretrain_epoch": 21,                # pair sampling and augmentations (ids: fold, strategy, epoch)
    "mpcs.label_subsets": 31,                 # labelled subsets (ids: fold, replicate)
    "mpcs.finetune_run": 32,                  # one fine-tuning run (ids: fold, replicate, protocol, fraction, mag)
    "mpcs.finetune_epoch": 33,                # batch order of one fine-tuning epoch (ids: epoch; seed: the run's)
    # similarity
    "similarity.distortion_params": 41,       # per reference crop: the six distortions' parameters (ids: row)
    "similarity.synthetic_2afc": 43,          # per photo row and distortion: a synthetic 2AFC triplet
    "similarity.synthetic_jnd": 47,           # per photo row and distortion: a synthetic JND pair
    "similarity.challenge_crop": 53,          # per photo and crop: the flaw challenge's crop
    "similarity.challenge_stain": 54,         # per photo and crop: the colour-stain block
    "similarity.adaptation_contexts": 59,     # the orderings of the six distortions (no ids)
    "similarity.adaptation_split": 61,        # the train/validation split of the distortion set (no ids)
    "similarity.adaptation_dropout": 62,      # torch's global RNG (element dropout) of tune/scratch (ids: context)
    # data
    "data.roads_crops": 71,                   # the training crops of one Massachusetts Roads tile (ids: the tile's key)
    # explain (named in issue 20; before, [seed, 41], [seed, 31], [seed, 32, epoch], [seed, sampler, S, N],
    # seed + 7919 and seed + 1: new tags, since [seed, 41] drew what similarity.distortion_params draws at row 0)
    "explain.classifier_finetune": 81,        # torch: the batch order of the classifier's fine-tuning (no ids)
    "explain.explainer_subset": 82,           # the explainer's training images (no ids)
    "explain.explainer_epoch": 83,            # the explainer's batch order of one epoch (ids: epoch)
    "explain.evaluation_images": 84,          # the explained and scored test images (no ids)
    "explain.samples": 85,                    # the RISE-family samples and shifts (ids: sampler, segments, N)
    "explain.perturbation_fill": 86,          # torch: noise, random-colour and histogram fills (no ids; per image)
}


def tag(name: str) -> int:
    """The stream's tag; a clear error for a name that is not in :data:`STREAMS`."""
    try:
        return STREAMS[name]
    except KeyError:
        raise KeyError(f"no random stream named {name!r}; add it to percept.seeds.STREAMS (known: "
                       f"{', '.join(sorted(STREAMS))})") from None


def sequence(seed: int, name: str, *ids: int) -> np.random.SeedSequence:
    """``SeedSequence([seed, tag(name), *ids])`` (spawn children from it for one generator per item)."""
    return np.random.SeedSequence([int(seed), tag(name), *(int(i) for i in ids)])


def rng(seed: int, name: str, *ids: int) -> np.random.Generator:
    """The numpy generator of stream ``name`` at ``ids``."""
    return np.random.default_rng(sequence(seed, name, *ids))


def torch_seed(seed: int, name: str, *ids: int) -> int:
    """A 62-bit integer for ``torch.manual_seed`` / ``Generator.manual_seed``: the stream's first draw."""
    return int(rng(seed, name, *ids).integers(2**62))


def generators(seed: int, name: str, *ids: int) -> tuple[np.random.Generator, "torch.Generator"]:
    """The stream's numpy generator and a torch generator seeded from its first draw (the numpy generator goes
    on after that draw), for a step that draws with both."""
    import torch

    g = rng(seed, name, *ids)
    return g, torch.Generator().manual_seed(int(g.integers(2**62)))


def torch_generator(seed: int, name: str, *ids: int) -> "torch.Generator":
    """A CPU ``torch.Generator`` seeded with :func:`torch_seed`."""
    import torch

    return torch.Generator().manual_seed(torch_seed(seed, name, *ids))
