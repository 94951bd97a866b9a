"""Magnification Prior Contrastive Similarity (MPCS; Chhipa et al., "Magnification Prior: a self-supervised
method for learning representations on breast cancer histopathological images", WACV 2023).

An encoder is pretrained without labels by treating two magnifications of the same tissue as a positive
pair (:mod:`percept.mpcs.pairs`), with SimCLR-family augmentations (:mod:`percept.mpcs.augment`), a
projection head and the NT-Xent loss (:mod:`percept.mpcs.loss`); :mod:`percept.mpcs.pretrain` trains it.
:mod:`percept.mpcs.finetune` then measures label efficiency: a linear probe and a full fine-tune on
20–100 % of the labels, against ImageNet- and randomly initialised encoders, scored by image-level and
patient-level accuracy on patient-disjoint test folds (:mod:`percept.mpcs.splits`).

The encoders a fine-tuning table compares and the files they start from are planned by
:func:`percept.plan.encoder_ids` and :func:`percept.plan.pretrained_input`.
"""

STRATEGIES = ("ordered", "random", "fixed")
BASELINES = ("imagenet", "random")
PROTOCOLS = ("linear", "full")


ENCODER_LABELS = {"mpcs_ordered": "MPCS ordered pair", "mpcs_random": "MPCS random pair",
                  "mpcs_fixed": "MPCS fixed pair (200x→400x)", "baseline_imagenet": "ImageNet init (no MPCS)",
                  "baseline_random": "random init"}
