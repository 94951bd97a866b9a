"""Test-only fault injection: a writer stops at a named point of its step until the test lets it go.

The interrupted-run tests (tests/test_faults.py) kill or interrupt real Snakemake runs and must land the fault
at a known point of a step — mid-write, before a rename, after a checkpoint — on any machine, however loaded.
Polling for a partial file and stopping the job (SIGSTOP) cannot guarantee that: the stop takes effect some
time after it is sent, and a short step can finish in between. Instead the writers call :func:`pause` at named
points, and a test asks one of them to stop there:

``PERCEPT_FAULT_PAUSE=<point>[,<point>...]``
    the points to stop at (names in :data:`POINTS`; an unknown name is an error).
``PERCEPT_FAULT_DIR=<folder>``
    the handshake folder. The first process that reaches a listed point creates ``<folder>/<point>.reached``
    (its content: the process id) and waits until ``<folder>/<point>.release`` exists. A process reaching a
    point whose ``.reached`` file exists already goes on without stopping, so a job retried by Snakemake, or a
    rerun with the same environment, is not stopped a second time.
``PERCEPT_FAULT_TIMEOUT=<seconds>`` (default 600)
    a stopped writer that is neither released nor killed within this time raises :class:`FaultTimeout`, so a
    broken test cannot hang CI.

The wait sleeps in short steps in the calling thread (every point is on the main thread of its job), so a
signal ends it the way it would end the real work at that point: SIGINT raises ``KeyboardInterrupt`` there and
the writer's cleanup runs (the temporary file is removed); SIGTERM and SIGKILL have their default effect.

When ``PERCEPT_FAULT_PAUSE`` is unset, :func:`pause` is one environment lookup: nothing is written, nothing
waits and no behaviour changes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_VAR = "PERCEPT_FAULT_PAUSE"
DIR_VAR = "PERCEPT_FAULT_DIR"
TIMEOUT_VAR = "PERCEPT_FAULT_TIMEOUT"

POINTS = {
    "download.after_first_chunk": "percept.data.download.download_file: the first chunk is in the hidden .part "
                                  "file, the rest of the transfer is not",
    "features.after_first_batch": "percept.features.cache_features: the first batch of features is handed to the "
                                  "writer of the hidden .tmp cache, the other batches are not computed yet",
    "h5io.before_rename": "percept.h5io.atomic_h5: the hidden .tmp file is complete and closed but not yet "
                          "renamed to its target",
    "checkpoints.after_save": "percept.checkpoints.save_torch: a checkpoint was written and renamed into place "
                              "(the first one a training job writes: after its first epoch)",
    "plotting.before_rename": "percept.plotting.save: the figure is in its hidden .tmp file, not yet renamed",
}

_POLL_SECONDS = 0.01  # how often a stopped writer looks for its release file


class FaultTimeout(RuntimeError):
    """A writer stopped at a fault point was neither released nor killed in time."""


def pause(point: str) -> None:
    """Stop here when ``point`` is listed in ``PERCEPT_FAULT_PAUSE`` (see the module docstring); else return."""
    wanted = os.environ.get(PAUSE_VAR)
    if wanted:
        _pause(point, wanted)


def _pause(point: str, wanted: str) -> None:
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = sorted({point, *names} - set(POINTS))
    if unknown:
        raise ValueError(f"{PAUSE_VAR}: unknown fault point(s) {unknown}; known points: {sorted(POINTS)}")
    if point not in names:
        return
    folder = os.environ.get(DIR_VAR)
    if not folder:
        raise ValueError(f"{PAUSE_VAR}={wanted} needs {DIR_VAR}, the handshake folder")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reached, release = folder / f"{point}.reached", folder / f"{point}.release"
    # Announce with a hard link from a private name: the marker appears complete (pid inside) and only once,
    # even when several processes reach the point together.
    own = folder / f".{point}.{os.getpid()}"
    own.write_text(str(os.getpid()))
    try:
        os.link(own, reached)
    except FileExistsError:  # another process stopped here already: go on
        return
    finally:
        own.unlink()
    timeout = float(os.environ.get(TIMEOUT_VAR, 600))
    end = time.monotonic() + timeout
    while not release.exists():  # a signal interrupts the sleep (see the module docstring)
        if time.monotonic() > end:
            raise FaultTimeout(f"stopped at fault point {point} for {timeout:g} s without being released "
                               f"({release} missing) or killed")
        time.sleep(_POLL_SECONDS)
