"""Patient-level train/test folds: no patient ever has images on both sides."""

from __future__ import annotations

import numpy as np

from percept.data.store import ImageDataset


def patient_folds(patients: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index (0..folds-1) per image: patients shuffled within each class and dealt round-robin to the
    folds, so every fold holds about the same share of each class's patients."""
    patients, labels = np.asarray(patients), np.asarray(labels)
    unique, first = np.unique(patients, return_index=True)
    if len(unique) < folds:
        raise ValueError(f"{folds} folds need at least {folds} patients, the dataset has {len(unique)}")
    rng = np.random.default_rng([seed, 11])
    fold_of: dict = {}
    start = 0
    for cls in np.unique(labels[first]):
        members = unique[labels[first] == cls]
        for k, p in enumerate(members[rng.permutation(len(members))]):
            fold_of[p.item()] = (start + k) % folds
        start += len(members)  # continue dealing where the previous class stopped: folds stay balanced
    return np.array([fold_of[p] for p in patients.tolist()], np.int64)


def fold_rows(ds: ImageDataset, fold: int, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``ds``, which must be unsplit) of the train and test images of ``fold``.

    ``folds == 1`` uses the dataset's own patient-level ``train``/``test`` split; more folds re-split the
    patients (:func:`patient_folds`) and ``fold`` picks the test fold.
    """
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in [0, {folds}), got {fold}")
    if folds == 1:
        train = ImageDataset(ds.path, split="train").rows
        test = ImageDataset(ds.path, split="test").rows
        pos = {r: i for i, r in enumerate(ds.rows.tolist())}
        return np.array([pos[r] for r in train.tolist()]), np.array([pos[r] for r in test.tolist()])
    labels = ds.labels()
    if labels is None:
        raise ValueError(f"{ds.path}: patient folds need class labels")
    assignment = patient_folds(ds.meta("patient"), labels.numpy(), folds, seed)
    return np.flatnonzero(assignment != fold), np.flatnonzero(assignment == fold)
