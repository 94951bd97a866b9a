"""What every Snakemake script shares: logging into the rule's log file, seeding, device choice."""

from __future__ import annotations

import logging
import os
import platform
import random
import sys
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic kernels on the CPU."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def setup_script(smk: Any) -> logging.Logger:
    """Route logging and progress bars (stderr) into the rule's log file; log what runs where.

    ``smk`` is the ``snakemake`` object Snakemake injects into scripts.
    """
    log_path = smk.log[0] if len(smk.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        stream = open(log_path, "a", buffering=1)
        sys.stderr = stream  # tqdm and warnings write here
        handlers = [logging.StreamHandler(stream)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    log = logging.getLogger(f"percept.rules.{smk.rule}")
    seed = int(smk.config.get("seed", 0))
    seed_everything(seed)
    threads = max(1, int(getattr(smk, "threads", 1) or 1))
    torch.set_num_threads(threads)
    log.info("rule %s wildcards=%s threads=%d seed=%d torch=%s python=%s host=%s", smk.rule, dict(smk.wildcards),
             threads, seed, torch.__version__, platform.python_version(), platform.node())
    if torch.cuda.is_available():
        log.info("CUDA available: %s", torch.cuda.get_device_name(0))
    return log
