"""How many CPU threads torch uses for training, validation and prediction, and keeping it so.

Ultralytics sets torch to `min(8, cores - 1)` threads whenever it picks a CPU device
(`ultralytics.utils.torch_utils.select_device`, called when a trainer is built, when a validator
runs outside training, e.g. the final validation of best.pt, and when a predictor loads its model).
On a 2-core machine that is one thread: the demo's epoch takes 60 s instead of 35-38 s with two.
skyops chooses the count itself (`threads: 0` = every core this process may use) and re-applies it
from Ultralytics' own callbacks, each of which runs right after one of those `select_device` calls:

    on_pretrain_routine_start   the trainer was built (its select_device ran)
    on_val_start                a validator picked its device (standalone, or best.pt after training)
    on_predict_start            a predictor loaded its model

`pin_threads(model, count)` adds the three callbacks; `torch_threads(count)` sets the count for a
block and restores the previous one after it (in-process callers keep their own setting).

Two threads only pay if torch's second OpenMP thread is awake when work comes. A YOLO training step is
thousands of short parallel regions with Python between them; with `GOMP_SPINCOUNT` unset, torch's
libgomp (GCC 8.5 in the torch 2.14 wheel) lets that thread go to sleep between them in the train step's
process: measured on 2 cores, one demo-recipe epoch's batches took 14.5-15.5 s on two threads against
16.1 s on one, and 9.0-10.1 s with `GOMP_SPINCOUNT=300000`, the spin count libgomp documents as its
default (setting 100 behaves like unset; `OMP_DISPLAY_ENV` reports the same settings either way, so why
the unset default does not spin here is not established). libgomp reads the variable once, when torch
loads it: `prepare_openmp()` sets it (unless the user did) when `skyops.training` is imported, before
any skyops code imports torch; processes started from this one (step hosts, DDP ranks) inherit it.
docs/training.md has the measurements.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" in microseconds, or "max <period>"
# Callbacks that Ultralytics runs after each of its select_device calls (see the module docstring).
PIN_EVENTS = ("on_pretrain_routine_start", "on_val_start", "on_predict_start")
OPENMP_SPIN_VARIABLE = "GOMP_SPINCOUNT"  # libgomp: busy-wait iterations before a waiting thread sleeps
OPENMP_SPIN = "300000"  # libgomp's documented default (about 3 ms); see the module docstring

log = logging.getLogger(__name__)


@dataclass
class _OpenMP:
    spin_in_effect: bool = False  # torch loaded after GOMP_SPINCOUNT was set (by the user or prepare_openmp)
    set_here: bool = False  # prepare_openmp set the variable (the benchmark's anchor must not inherit it)
    warned: bool = False


_openmp = _OpenMP()


def prepare_openmp() -> None:
    """Set `GOMP_SPINCOUNT` for torch's OpenMP threads unless the user has; effective if torch is not loaded yet."""
    torch_loaded = "torch" in sys.modules  # torch loads libgomp, which reads its environment once, then
    if os.environ.get(OPENMP_SPIN_VARIABLE) is None:
        os.environ[OPENMP_SPIN_VARIABLE] = OPENMP_SPIN  # also for the processes this one starts
        _openmp.set_here = True
    _openmp.spin_in_effect = not torch_loaded or not _openmp.set_here


def openmp_spin() -> str:
    """The spin count torch's OpenMP threads wait with in this process, as recorded with a run."""
    return os.environ[OPENMP_SPIN_VARIABLE] if _openmp.spin_in_effect else "libgomp default (torch loaded first)"


def openmp_set_by_skyops() -> bool:
    """Whether `GOMP_SPINCOUNT` in this environment is skyops' setting rather than the user's."""
    return _openmp.set_here


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (a container's --cpus).

    `os.cpu_count()` counts the host's cores, which a container or `taskset` may not have.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        count = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):  # no cgroup v2 CPU controller here
        return max(1, count)
    if quota != "max" and int(period) > 0:
        count = min(count, math.ceil(int(quota) / int(period)))
    return max(1, count)


def resolve_threads(threads: int) -> int:
    """The thread count a `threads` setting means: 0 = every usable CPU, a positive count = exactly that."""
    if threads < 0:
        raise ValueError(f"threads must be 0 (every usable CPU) or positive, got {threads}")
    return threads or usable_cpus()


def pin_threads(model: Any, count: int) -> None:
    """Make an Ultralytics `YOLO` model's trainer, validators and predictors run torch on `count` threads."""
    import torch  # heavy; the caller has imported Ultralytics (hence torch) already

    def pin(_: Any) -> None:
        torch.set_num_threads(count)

    for event in PIN_EVENTS:
        model.add_callback(event, pin)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with torch on `count` threads, then restore the count it had before."""
    import torch  # heavy; only callers that run a model get here

    if count > 1 and not _openmp.spin_in_effect and not _openmp.warned:
        _openmp.warned = True
        log.warning(
            "torch was imported before skyops.training, so its OpenMP threads wait with libgomp's default and "
            "%d threads run slower (a training epoch on 2 cores: ~1.3x); import skyops.training first, or set %s=%s before torch",
            count,
            OPENMP_SPIN_VARIABLE,
            OPENMP_SPIN,
        )
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
