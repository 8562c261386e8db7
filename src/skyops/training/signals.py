"""Turn a termination signal into an exception, so the code it interrupts can close what it opened.

A step that is stopped (SIGTERM from `skyops run`, from SageMaker at a spot interruption, or from
`kill`) would otherwise die at once, leaving its MLflow run RUNNING forever. Inside
`signals_raise()`, the signal raises `Terminated` in the main thread instead; it derives from
BaseException, like KeyboardInterrupt, so a library's `except Exception` does not swallow it.
After cleaning up, `Terminated.die()` ends the process by the same signal, so whoever started it
sees exactly what it would have seen without the handler (exit status -15 for SIGTERM).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(BaseException):
    """A termination signal arrived while `signals_raise` was active."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    def die(self) -> None:
        """End this process by the signal that raised this, with the signal's default action."""
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(self.signum, signal.SIG_DFL)
        os.kill(os.getpid(), self.signum)
        raise SystemExit(128 + self.signum)  # reached only if the signal is blocked


@contextmanager
def signals_raise(*signums: int) -> Iterator[None]:
    """Within the block, each of `signums` (default SIGTERM) raises `Terminated`; the old handlers return after.

    Only the first signal raises: later ones are ignored while the exception unwinds and cleans up
    (a second SIGTERM must not abort the cleanup it asks for; SIGKILL remains the way to force it).
    Outside the main thread nothing can be installed, and the block runs with the handlers as they are.
    """
    wanted = signums or (signal.SIGTERM,)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if raised:
            return
        raised = True
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in wanted}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
