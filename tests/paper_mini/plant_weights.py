"""Seeded random checkpoints under ``$TORCH_HOME/hub/checkpoints/`` with torchvision's own file names.

torchvision's weights API (``get_model(name, weights=...)``) loads ``hub/checkpoints/<basename of the URL>``
when that file exists, without a hash check, so the project's real ImageNet-weights path (percept.backbones,
LPIPS's backbones) runs offline on these. Every weights entry torchvision lists for every torchvision network
of the registry is planted (V1 and V2 alike: which one a backbone uses is the registry's choice), the
entries of one architecture sharing one file through hard links.

    python tests/paper_mini/plant_weights.py TORCH_HOME [backbone ...]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def checkpoint_files(name: str) -> list[str]:
    """torchvision's file names for every weights entry of network ``name`` (V1, V2, …)."""
    import torchvision

    return sorted({os.path.basename(w.url) for w in torchvision.models.get_model_weights(name)})


def plant(torch_home: str | Path, names: list[str] | None = None, seed: int = 0) -> list[Path]:
    """Write the checkpoints (skipping files already there); the paths of every planted file."""
    import torch
    import torchvision

    from percept import backbones

    checkpoints = Path(torch_home) / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    names = names or [n for n in backbones.NAMES if backbones.get(n).family == "torchvision"]
    planted = []
    for name in names:
        paths = [checkpoints / f for f in checkpoint_files(name)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            # The architecture torchvision builds before loading pretrained weights (aux heads included).
            kwargs = {"aux_logits": True, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                state = torchvision.models.get_model(name, weights=None, **kwargs).state_dict()
            first = missing[0]
            tmp = first.with_name(f".{first.name}.{os.getpid()}.tmp")
            torch.save(state, tmp)
            os.replace(tmp, first)
            for p in missing[1:]:
                os.link(first, p)
        planted += paths
    return planted


if __name__ == "__main__":
    for path in plant(sys.argv[1], sys.argv[2:] or None):
        print(path)
