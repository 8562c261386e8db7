"""What a pending step does next, as one predicate, and how a run is stopped from outside.

The local engine asks `next_action` about every pending step whenever anything changes; a step
whose answer is SKIP or GATE reaches its final status at once, which may decide a gate, which may
decide other steps. A run where nothing runs and nothing can start while steps are pending is a
bug in the engine, raised as `SchedulerStuck`, never a wait.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from skyops.pipeline.definition import Pipeline
from skyops.pipeline.lineage import RunRecord, StepStatus


class Action(StrEnum):
    START = "start"
    WAIT = "wait"
    SKIP = "skip"  # final status SKIPPED: something it needs failed
    GATE = "gate"  # final status GATED: a quality gate before it did not pass


@dataclass(frozen=True)
class Next:
    action: Action
    reason: str = ""


def next_action(upstream: Mapping[str, StepStatus], gates: Mapping[str, bool | None]) -> Next:
    """Decide what a pending step does next. Rules, first match wins:

    1. An upstream step failed or was skipped: SKIP.
    2. An upstream step has not reached a final status: WAIT. (It may still fail, which makes this
       step SKIPPED rather than GATED: deciding earlier would make the record depend on timing.)
    3. A gate guarding it (or a step upstream of it) has failed: GATE.
    4. An upstream step was gated: GATE.
    5. A gate guarding it has not been evaluated yet (its step has not ended): WAIT.
    6. Otherwise: START.

    Args:
        upstream: status of each step whose outputs it reads.
        gates: each gate that must pass before it -> passed, or None while not evaluated.
    """
    for name, status in sorted(upstream.items()):
        if status in (StepStatus.FAILED, StepStatus.SKIPPED):
            return Next(Action.SKIP, f"upstream step {name!r} {status}")
    unfinished = sorted(name for name, status in upstream.items() if not status.final)
    if unfinished:
        return Next(Action.WAIT, f"upstream step {unfinished[0]!r} is {upstream[unfinished[0]]}")
    failed_gates = sorted(name for name, passed in gates.items() if passed is False)
    if failed_gates:
        return Next(Action.GATE, f"gate {', '.join(map(repr, failed_gates))} did not pass")
    gated = sorted(name for name, status in upstream.items() if status is StepStatus.GATED)
    if gated:
        return Next(Action.GATE, f"upstream step {gated[0]!r} was gated")
    undecided = sorted(name for name, passed in gates.items() if passed is None)
    if undecided:
        return Next(Action.WAIT, f"gate {undecided[0]!r} is not evaluated yet")
    return Next(Action.START)


def decide(pipeline: Pipeline, record: RunRecord, name: str) -> Next:
    """`next_action` for step `name` of a run, from the run's record."""
    return next_action(
        {u: record.steps[u].status for u in pipeline.upstream_of(name)},
        {g.name: record.gates[g.name].passed if g.name in record.gates else None for g in pipeline.gated_by(name)},
    )


class SchedulerStuck(RuntimeError):
    """Steps are pending, none is running and none can start: a bug in the engine, not a wait."""


class Interrupted(BaseException):
    """A signal asked the run to stop. A BaseException, like KeyboardInterrupt: nothing may swallow it."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise `Interrupted` in it (once; later ones are ignored
    while the run stops). Only the main thread can receive signals; elsewhere this does nothing. A
    signal ignored when the block starts (SIGINT of a background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(number: int, _frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Interrupted(number)

    ours = [sig for sig in (signal.SIGTERM, signal.SIGINT) if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, handler) for sig in ours}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
