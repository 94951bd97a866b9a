"""Magnification Prior Contrastive Similarity (MPCS; Chhipa et al., "Magnification Prior: a self-supervised
method for learning representations on breast cancer histopathological images", WACV 2023).

An encoder is pretrained without labels by treating two magnifications of the same tissue as a positive
pair (:mod:`percept.mpcs.pairs`), with SimCLR-family augmentations (:mod:`percept.mpcs.augment`), a
projection head and the NT-Xent loss (:mod:`percept.mpcs.loss`); :mod:`percept.mpcs.pretrain` trains it.
:mod:`percept.mpcs.finetune` then measures label efficiency: a linear probe and a full fine-tune on
20–100 % of the labels, against ImageNet- and randomly initialised encoders, scored by image-level and
patient-level accuracy on patient-disjoint test folds (:mod:`percept.mpcs.splits`).
"""

STRATEGIES = ("ordered", "random", "fixed")
BASELINES = ("imagenet", "random")
PROTOCOLS = ("linear", "full")


def encoder_ids(strategies, baselines) -> list[str]:
    """The encoders a fine-tuning table compares: ``mpcs_<strategy>`` and ``baseline_<weights>``."""
    return [f"mpcs_{s}" for s in strategies] + [f"baseline_{b}" for b in baselines]


def pretrained_input(dataset: str, backbone: str, fold: int | str, encoder: str) -> dict[str, str]:
    """The MPCS encoder file a fine-tuning job starts from (none for the baselines)."""
    if encoder.startswith("mpcs_"):
        return {"pretrained": f"data/models/mpcs/{dataset}/{backbone}/fold{fold}/{encoder.removeprefix('mpcs_')}.pt"}
    return {}


ENCODER_LABELS = {"mpcs_ordered": "MPCS ordered pair", "mpcs_random": "MPCS random pair",
                  "mpcs_fixed": "MPCS fixed pair (200x→400x)", "baseline_imagenet": "ImageNet init (no MPCS)",
                  "baseline_random": "random init"}
