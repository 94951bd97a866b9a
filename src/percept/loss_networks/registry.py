"""The task registry of the loss-network grid (torch-free, so planning the workflow stays fast).

A task is one entry of :data:`TASKS`: its cell runner (``"module:function"``, called as
``run(inputs, cell, options, work=…, seed=…, device=…, progress=…, allow_download=…)`` → scores), its score
columns (name → higher is better), whether a cell reads the loss network's feature cache, and whether it
reads one of the similarity stage's 2AFC sets instead of an image dataset. The rule
``loss_network_<task>`` and one job per grid cell are generated from this registry, so adding a task is
adding one entry here (plus its options under ``loss_networks.tasks.<name>`` in the config schema).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Mapping


@dataclass(frozen=True)
class Task:
    name: str
    run: str  # "module:function" computing a cell's scores
    scores: Mapping[str, bool]  # score column → higher is better
    needs_features: bool = False  # the cell reads data/features/{dataset}/{network}.h5 (feature prediction)
    two_afc: bool = False  # the cell reads the 2AFC set similarity.two_afc.<options.two_afc_set>, not data/datasets/
    description: str = ""

    def runner(self) -> Callable[..., dict[str, float]]:
        module, fn = self.run.split(":")
        return getattr(importlib.import_module(module), fn)


TASKS: dict[str, Task] = {
    "dimensionality_reduction": Task(
        "dimensionality_reduction", "percept.loss_networks.tasks:dimensionality_reduction",
        {"accuracy": True, "position_error": False},
        description="autoencoder trained with the tap's perceptual loss (the grid paper's procedure); its "
                    "embeddings judged by predictors"),
    "super_resolution": Task(
        "super_resolution", "percept.loss_networks.tasks:super_resolution", {"psnr": True, "ssim": True},
        description="x4 super-resolution network trained with the perceptual loss; PSNR / SSIM on test"),
    "segmentation": Task(
        "segmentation", "percept.loss_networks.tasks:segmentation",
        {"iou": True, "completeness": True, "correctness": True},
        description="foreground segmentation (shapes' objects, the Massachusetts Roads' roads) trained with BCE + "
                    "the perceptual loss; IoU, completeness, correctness on test"),
    "perceptual_similarity": Task(
        "perceptual_similarity", "percept.loss_networks.tasks:perceptual_similarity",
        {"two_afc": True, "ordering_accuracy": True}, two_afc=True,
        description="the tap's uncalibrated deep perceptual distance (DPS with uniform weights) on the "
                    "similarity stage's 2AFC set: 2AFC score and ordering accuracy"),
}


