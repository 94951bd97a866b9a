"""Patient-level train/test folds: no patient ever has images on both sides.

The reference (prakashchhipa/Magnification-Prior-Self-Supervised-Method, src/data/prepare_data_breakhis.py)
deals BreakHis's patients into 5 folds with ``StratifiedKFold`` over the 8 tumour **subtypes** and splits
each fold's training patients again by subtype (``train_test_split(..., stratify=subtype, test_size=0.25)``:
``train_60`` / ``val_20``). Here folds are dealt per subtype the same way (:func:`patient_folds`) and
``validation`` holds out that share of a fold's training patients (:func:`validation_patients`).
"""

from __future__ import annotations

import numpy as np

from percept import seeds
from percept.data.store import ImageDataset


def patient_folds(patients: np.ndarray, strata: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold index (0..folds-1) per image: patients shuffled within each stratum (the subtype, or the class
    where no subtype is recorded) and dealt round-robin to the folds, so every fold holds about the same
    share of each stratum's patients."""
    patients, strata = np.asarray(patients), np.asarray(strata)
    unique, first = np.unique(patients, return_index=True)
    if len(unique) < folds:
        raise ValueError(f"{folds} folds need at least {folds} patients, the dataset has {len(unique)}")
    rng = seeds.rng(seed, "mpcs.folds")
    fold_of: dict = {}
    start = 0
    for stratum in np.unique(strata[first]):
        members = unique[strata[first] == stratum]
        for k, p in enumerate(members[rng.permutation(len(members))]):
            fold_of[p.item()] = (start + k) % folds
        start += len(members)  # continue dealing where the previous stratum stopped: folds stay balanced
    return np.array([fold_of[p] for p in patients.tolist()], np.int64)


def validation_patients(patients: np.ndarray, strata: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Per image, whether its patient is held out for validation: ``round(fraction * n)`` of the ``n``
    patients of each stratum (at least one where the stratum has two or more and ``fraction > 0``)."""
    patients, strata = np.asarray(patients), np.asarray(strata)
    if fraction <= 0:
        return np.zeros(len(patients), bool)
    unique, first = np.unique(patients, return_index=True)
    rng = seeds.rng(seed, "mpcs.validation")
    held: list = []
    for stratum in np.unique(strata[first]):
        members = unique[strata[first] == stratum]
        n = min(max(int(round(fraction * len(members))), 1 if len(members) >= 2 else 0), len(members) - 1)
        held += members[rng.permutation(len(members))[:n]].tolist()
    return np.isin(patients, np.asarray(held, dtype=patients.dtype))


def strata_of(ds: ImageDataset) -> np.ndarray:
    """The subtype per image where the dataset records one (BreakHis, the embedded set), else the class."""
    if "subtype" in ds.meta_keys:
        return ds.meta("subtype")
    labels = ds.labels()
    if labels is None:
        raise ValueError(f"{ds.path}: patient folds need class labels or subtypes")
    return labels.numpy()


def fold_rows(ds: ImageDataset, fold: int, folds: int, seed: int,
              validation: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (into ``ds``, which must be unsplit) of the train, validation and test images of ``fold``.

    ``folds == 1`` uses the dataset's own patient-level ``train``/``test`` split; more folds re-split the
    patients by subtype (:func:`patient_folds`) and ``fold`` picks the test fold. ``validation`` > 0 moves
    that share of the training patients, per subtype, to the validation positions.
    """
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in [0, {folds}), got {fold}")
    strata = strata_of(ds)
    if folds == 1:
        train = ImageDataset(ds.path, split="train").rows
        test = ImageDataset(ds.path, split="test").rows
        pos = {r: i for i, r in enumerate(ds.rows.tolist())}
        train, test = np.array([pos[r] for r in train.tolist()]), np.array([pos[r] for r in test.tolist()])
    else:
        assignment = patient_folds(ds.meta("patient"), strata, folds, seed)
        train, test = np.flatnonzero(assignment != fold), np.flatnonzero(assignment == fold)
    held = validation_patients(ds.meta("patient")[train], strata[train], validation, seed + fold)
    return train[~held], train[held], test
