"""Training checkpoints: written atomically, loaded with ``weights_only=True``, refused when they were
made for another configuration, backbone or dataset (their ``meta`` must match the run's exactly)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch


class CheckpointMismatch(RuntimeError):
    """A checkpoint written by a run with other settings."""


def save_checkpoint(path: str | Path, meta: Mapping[str, Any], **state: Any) -> None:
    """``torch.save({"meta": meta, **state})`` to a temporary name, then an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"meta": json.loads(json.dumps(dict(meta))), **state}, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, meta: Mapping[str, Any], map_location: Any = "cpu",
                    missing_ok: bool = True) -> dict[str, Any] | None:
    """The checkpoint's content (``None`` when there is none and ``missing_ok``); :class:`CheckpointMismatch`
    when its ``meta`` disagrees with ``meta`` on any key of ``meta`` (the message names each such key)."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated or foreign file: unpickling errors of many kinds
        raise CheckpointMismatch(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}); "
                                 f"delete it (rm '{path}') to start over") from exc
    want = json.loads(json.dumps(dict(meta)))
    have = state.get("meta", {}) if isinstance(state, dict) else {}
    diff = [k for k in sorted(want) if want[k] != have.get(k)]
    if diff:
        details = "; ".join(f"{k}: checkpoint has {have.get(k)!r}, this run has {want.get(k)!r}" for k in diff)
        raise CheckpointMismatch(f"{path} was written by a run with other settings ({details}). Refusing to "
                                 f"resume from it; delete it (rm '{path}') to start over.")
    return state
