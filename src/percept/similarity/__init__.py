"""Deep perceptual similarity (DPS): the LPIPS-style metric family, its scoring, calibration and experiments.

The stable API other stages call:

- :func:`dps_distance` ``(feats0, feats1, mode="spatial", normalize=True, weights=None)`` → ``Tensor[N]``:
  the distance between two dicts of tap features ``{tap: Tensor[N, C, H, W]}``;
- :func:`two_afc` ``(d0, d1, judge)`` → float: the mean 2AFC score (with 0/1 judgements: the fraction of
  pairs ordered correctly); :func:`two_afc_scores` per triplet; :func:`jnd_average_precision` ``(d, same)``;
- :class:`DPS`: the metric as a module on images (``DPS.lpips("alexnet")`` is LPIPS v0.1).
"""

from percept.similarity.metric import (
                                       DPS,
                                       MODES,
                                       LinearWeights,
                                       channel_distances,
                                       distance_map,
                                       dps_distance,
                                       load_linear_state,
                                       lpips_weights_file,
                                       unit_normalize,
)
from percept.similarity.scoring import (
                                       jnd_average_precision,
                                       l2_distance,
                                       ssim_distance,
                                       two_afc,
                                       two_afc_scores,
)

__all__ = [
                                       "DPS",
                                       "MODES",
                                       "LinearWeights",
                                       "channel_distances",
                                       "distance_map",
                                       "dps_distance",
                                       "jnd_average_precision",
                                       "l2_distance",
                                       "load_linear_state",
                                       "lpips_weights_file",
                                       "ssim_distance",
                                       "two_afc",
                                       "two_afc_scores",
                                       "unit_normalize",
]
