"""The paper's metrics and the label-fraction subsets (numpy and pandas only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def image_level_accuracy(pred: np.ndarray, label: np.ndarray) -> float:
    """ILA: the fraction of test images classified correctly."""
    return float(np.mean(np.asarray(pred) == np.asarray(label)))


def patient_level_accuracy(pred: np.ndarray, label: np.ndarray, patient: np.ndarray) -> float:
    """PLA: per patient the fraction of its images classified correctly, averaged over patients."""
    correct = np.asarray(pred) == np.asarray(label)
    patient = np.asarray(patient)
    return float(np.mean([correct[patient == p].mean() for p in np.unique(patient)]))


def label_subsets(labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> dict[float, np.ndarray]:
    """Nested, class-stratified subsets: ``ceil(f * n_c)`` images of every class c per fraction f, each subset
    containing the smaller ones (one random order per class), so fractions differ only by the added labels."""
    labels = np.asarray(labels)
    orders = {c: np.flatnonzero(labels == c)[rng.permutation(int((labels == c).sum()))] for c in np.unique(labels)}
    return {f: np.sort(np.concatenate([o[:max(1, int(np.ceil(f * len(o) - 1e-9)))] for o in orders.values()]))
            for f in fractions}


def patient_subsets(patients: np.ndarray, strata: np.ndarray, fractions: Sequence[float],
                    rng: np.random.Generator) -> dict[float, np.ndarray]:
    """Nested subsets of whole patients, stratified: ``ceil(f * n_s)`` (at least one) of the ``n_s`` patients of
    every stratum s (the subtype) per fraction f, each subset containing the smaller ones; returns the
    positions of the chosen patients' images.

    The reference's label portions (``train_20`` ... ``train_80``) are folders of whole patients, split from
    the training patients by subtype (prakashchhipa/Magnification-Prior-Self-Supervised-Method,
    src/data/prepare_data_breakhis.py, ``train_test_split(..., stratify=subtype)``); its BreakHis dataset class
    reads every image of every patient folder (src/supervised/apply/datasets.py, ``BreakHis_Dataset``).
    """
    patients, strata = np.asarray(patients), np.asarray(strata)
    unique, first = np.unique(patients, return_index=True)
    orders = {s: unique[strata[first] == s] for s in np.unique(strata[first])}
    orders = {s: o[rng.permutation(len(o))] for s, o in orders.items()}
    out = {}
    for f in fractions:
        chosen = np.concatenate([o[:max(1, int(np.ceil(f * len(o) - 1e-9)))] for o in orders.values()])
        out[f] = np.flatnonzero(np.isin(patients, chosen))
    return out


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and count of ILA and PLA over seeds and folds, per backbone (when recorded),
    encoder, protocol, magnification (when recorded; 0 = magnifications pooled) and label fraction."""
    keys = [k for k in ("backbone", "encoder", "protocol", "magnification", "fraction") if k in runs]
    g = runs.groupby(keys, sort=False)
    out = g.agg(ila_mean=("ila", "mean"), ila_std=("ila", "std"), pla_mean=("pla", "mean"),
                pla_std=("pla", "std"), runs=("ila", "size")).reset_index()
    return out.fillna({"ila_std": 0.0, "pla_std": 0.0})
