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
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" in microseconds, or "max <period>"
# Callbacks that Ultralytics runs after each of its select_device calls (see the module docstring).
PIN_EVENTS = ("on_pretrain_routine_start", "on_val_start", "on_predict_start")


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

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
