"""What every Snakemake script shares: logging into the rule's log file, seeding, device choice."""

from __future__ import annotations

import atexit
import logging
import os
import platform
import random
import sys
from typing import Any

import numpy as np


def seed_everything(seed: int, uses_torch: bool = True) -> None:
    """Seed Python, NumPy and (with ``uses_torch``) torch (CPU and CUDA), and ask torch for deterministic
    kernels on the CPU."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    if uses_torch:
        import torch

        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of this process and its waited-for children so far: imports and the
    interpreter's start-up included, which a `benchmark:` directive's sampling misses on short jobs."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return cpu, max(own.ru_maxrss, kids.ru_maxrss) / 1024  # ru_maxrss is in KiB on Linux


def log_usage(log: logging.Logger) -> None:
    """Log the job's CPU seconds and peak RSS as it exits (read by bench/job_costs.py for every rule)."""
    try:
        cpu, rss = usage()
    except (ImportError, OSError):  # no `resource` module (Windows)
        return
    log.info("usage: cpu_s=%.2f max_rss_mb=%.0f", cpu, rss)


def _is_snakemake_job() -> bool:
    """Whether this interpreter runs a rule's script as Snakemake starts it (``python .snakemake/scripts/tmpXXX.py``),
    not a test or a notebook that calls :func:`setup_script` itself."""
    main = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return os.path.basename(os.path.dirname(main)) == "scripts" and \
        os.path.basename(os.path.dirname(os.path.dirname(main))) == ".snakemake"


_failed: list[BaseException] = []


def _record_failure(hook):
    def excepthook(kind, value, tb):
        _failed.append(value)
        hook(kind, value, tb)

    return excepthook


def _finish(log: logging.Logger, fast: bool) -> None:
    """The job's last act: log its usage; then, in a job that ended without an uncaught exception, leave without
    the interpreter's teardown. Tearing down torch and torchvision (their modules, the freed arena) costs about
    1 CPU-second a job, a tenth of a small job and ~200 s over the paper miniature's 228 jobs, and does nothing
    a finished job needs: every output is written and closed (atomically) before the script's last line, the
    log is flushed here, and non-daemon threads were joined before atexit ran. A failure exits as Python does
    (its exit status, its traceback in the log); ``PERCEPT_FULL_EXIT=1`` keeps the teardown always. Scripts
    report failure by raising, never by ``sys.exit(n)`` (which atexit cannot see; tests/test_architecture.py
    checks it)."""
    log_usage(log)
    if not fast or _failed or os.environ.get("PERCEPT_FULL_EXIT") == "1":
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


def setup_script(smk: Any, uses_torch: bool = True) -> logging.Logger:
    """Route logging and progress bars (stderr) into the rule's log file; log what runs where.

    ``smk`` is the ``snakemake`` object Snakemake injects into scripts. A script that only reads tables and
    draws (the render_fig_* and summary rules) passes ``uses_torch=False``: importing torch costs about 3 s of
    CPU per job, more than such a job's own work, and it neither draws random numbers from torch nor runs a net.
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
    fast = _is_snakemake_job()
    if fast:
        sys.excepthook = _record_failure(sys.excepthook)
    atexit.register(_finish, log, fast)
    seed = int(smk.config.get("seed", 0))
    seed_everything(seed, uses_torch)
    threads = max(1, int(getattr(smk, "threads", 1) or 1))
    if not uses_torch:
        log.info("rule %s wildcards=%s threads=%d seed=%d (no torch) python=%s host=%s", smk.rule,
                 dict(smk.wildcards), threads, seed, platform.python_version(), platform.node())
        return log
    import torch

    torch.set_num_threads(threads)
    log.info("rule %s wildcards=%s threads=%d seed=%d torch=%s python=%s host=%s", smk.rule, dict(smk.wildcards),
             threads, seed, torch.__version__, platform.python_version(), platform.node())
    if torch.cuda.is_available():
        log.info("CUDA available: %s", torch.cuda.get_device_name(0))
    return log
