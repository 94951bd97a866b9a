"""percept.ranking.average_precision: the one AP of the explanation and predictor stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from percept.ranking import average_precision


def test_by_hand_and_without_positives():
    # positives at ranks 1 and 3: precisions 1 and 2/3
    assert average_precision([0.9, 0.8, 0.1], [1, 0, 1]) == pytest.approx((1 + 2 / 3) / 2)
    # a tie of a positive and a negative at the top is one threshold: precision 1/2 there, then 2/3
    assert average_precision([0.5, 0.5, 0.1], [1, 0, 1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert np.isnan(average_precision([0.3, 0.2], [0, 0]))
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        average_precision([1, 2, 3], [0, 1])


def test_equals_scikit_learn_to_the_last_bit_ties_included():
    """The predictors' former AP was scikit-learn's average_precision_score: the same numbers, bit for bit."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 60))
        scores = rng.integers(0, 6, n) / 5 if trial % 2 else rng.normal(size=n)  # odd trials: many ties
        truth = rng.random(n) < rng.uniform(0.1, 0.9)
        if not truth.any():
            continue
        assert average_precision(scores, truth) == float(average_precision_score(truth, scores)), trial
    logits, labels = torch.randn(40), (torch.rand(40) > 0.5).float()  # the predictors' call: tensors, labels > 0.5
    assert average_precision(logits, labels) == float(average_precision_score(labels.numpy() > 0.5, logits.numpy()))


def test_without_ties_it_is_the_mean_precision_at_each_positive():
    """The explanation stage's former definition (mean precision at the rank of each positive), equal where
    no scores tie (with ties it depended on the input order)."""
    rng = np.random.default_rng(1)
    for _ in range(100):
        scores, labels = rng.normal(size=30), (rng.random(30) < 0.4).astype(float)
        if not labels.any():
            continue
        hits = labels[np.argsort(-scores, kind="stable")] > 0.5
        former = float((np.cumsum(hits) / np.arange(1, len(hits) + 1))[hits].mean())
        assert average_precision(scores, labels) == pytest.approx(former, rel=1e-12)
