"""The live view of `skyops run`: a step table that redraws itself on a terminal, plain lines elsewhere.

On a terminal, rich's `Live` redraws the table four times a second by calling `render()`, which
reads the clock and each running step's progress file (written by `runtime.report_progress`) at
that moment: elapsed times, bars and ETAs move between engine events, not only at them. A step
that reports no progress shows the last line of its log instead.

Elsewhere (CI logs, a pipe), one line per status change and one per progress report of a running
step, so a log shows each epoch as it ends.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skyops.cli.common import format_seconds

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from skyops.pipeline.lineage import StepRecord

STYLE = {
    "pending": "dim",
    "running": "yellow",
    "waiting": "yellow",  # for another run executing the same step
    "cached": "cyan",
    "done": "green",
    "failed": "bold red",
    "skipped": "dim",
    "gated": "magenta",
}
MARK = {"done": "✔", "cached": "↺", "failed": "✘", "skipped": "-"}
POLL_SECONDS = 0.25  # how often, off a terminal, running steps' progress files are read


@dataclass(frozen=True)
class Report:
    """One `report_progress` call: `done` of `total` units at `time`, the metric values then."""

    done: int
    total: int
    unit: str
    metrics: dict[str, float]
    time: float
    started: float  # when the step's script started

    @classmethod
    def parse(cls, line: bytes) -> Report | None:
        """A report from one line of a progress file; None for a line that is not one."""
        try:
            data = json.loads(line)
            return cls(
                done=int(data["done"]),
                total=int(data["total"]),
                unit=str(data["unit"]),
                metrics={str(k): float(v) for k, v in data["metrics"].items()},
                time=float(data["time"]),
                started=float(data["started"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def counter(self) -> str:
        return f"{self.unit} {self.done}/{self.total}"

    def values(self, separator: str = ", ") -> str:
        return separator.join(f"{name} {value:.3f}" for name, value in self.metrics.items())


class ProgressFollower:
    """Follows a step's progress file (one JSON line per report) from where it last read."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.first: Report | None = None
        self.latest: Report | None = None
        self._offset = 0

    def poll(self) -> list[Report]:
        """The reports appended since the last poll (a partial last line waits for the next)."""
        if not self.path:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:  # not written yet: the step has reported nothing
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        reports = [r for r in map(Report.parse, complete.splitlines()) if r is not None]
        if reports:
            self.first = self.first or reports[0]
            self.latest = reports[-1]
        return reports

    def eta(self, now: float) -> float | None:
        return remaining(self.first, self.latest, now) if self.first and self.latest else None


def remaining(first: Report, latest: Report, now: float) -> float | None:
    """Seconds left at `now` after report `latest`; None when finished or before a unit is done.

    The time per unit is measured between the step's first and latest reports, so a resumed step
    (whose first report is past 0) counts only the units it did itself.
    """
    if latest.done >= latest.total:
        return None
    if latest.done > first.done:
        per_unit = (latest.time - first.time) / (latest.done - first.done)
    elif latest.done > 0:
        per_unit = (latest.time - latest.started) / latest.done
    else:
        return None
    return max(0.0, per_unit * (latest.total - latest.done) - (now - latest.time))


class Progress:
    """Live step table on a terminal; one line per change and per progress report elsewhere (CI logs).

    Args:
        console: the terminal's console, where the table goes; None off a terminal: plain lines on stdout.
        names: the pipeline's steps, in order.
    """

    def __init__(self, console: Console | None, names: list[str]) -> None:
        self.console = console
        self.status = dict.fromkeys(names, "pending")
        self.started: dict[str, float] = {}
        self.logs: dict[str, str] = {}  # running step -> its log, whose last line the table shows
        self.followers: dict[str, ProgressFollower] = {}  # running step -> its progress file
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._spinners: dict[str, RenderableType] = {}  # one per running step, so it turns between refreshes
        self._live = None
        if console is not None:
            from rich.live import Live

            self._live = Live(console=console, refresh_per_second=4, transient=False, get_renderable=self.render)

    def __enter__(self) -> Progress:
        if self._live:
            self._live.__enter__()
        else:
            self._poller = threading.Thread(target=self._poll, name="progress", daemon=True)
            self._poller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.refresh()
            self._live.__exit__(None, None, None)
        elif self._poller:
            self._stop.set()
            self._poller.join()

    def update(self, step: StepRecord) -> None:
        """The engine's listener: a step changed status."""
        with self._lock:
            was_running = self.status.get(step.name) == "running"
            self.status[step.name] = str(step.status)
            if step.status == "running":
                self.started[step.name] = time.time()
                self.logs[step.name] = step.log
                self.followers[step.name] = ProgressFollower(step.progress)
            if not self._live:
                if was_running:  # the reports the poller has not seen yet come before the step's end
                    self._print_reports(step.name)
                took = f" ({format_seconds(step.seconds)})" if step.ended else ""
                print(f"[{time.strftime('%H:%M:%S')}] {step.name}: {step.status}{took}", flush=True)
        if self._live:
            self._live.refresh()  # outside our lock: render() takes it, under Live's own lock

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            with self._lock:
                for name in [n for n, s in self.status.items() if s == "running"]:
                    self._print_reports(name)

    def _print_reports(self, name: str) -> None:
        """One line per report the step made since the last look (caller holds the lock)."""
        follower = self.followers[name]
        for report in follower.poll():
            eta = remaining(follower.first, report, report.time) if follower.first else None
            values = report.values()
            print(
                f"[{time.strftime('%H:%M:%S', time.localtime(report.time))}] {name}: {report.counter()}"
                + (f": {values}" if values else "")
                + (f" (ETA {format_seconds(eta)})" if eta is not None else ""),
                flush=True,
            )

    def render(self) -> Table:
        """The table as of now: Live calls it on every refresh."""
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        now = time.time()
        table = Table.grid(padding=(0, 2))
        for column in ("mark", "name", "status", "elapsed"):
            table.add_column(column, no_wrap=True)
        table.add_column("detail", no_wrap=True, overflow="ellipsis")
        with self._lock:
            for name, status in self.status.items():
                if status != "running":
                    table.add_row(MARK.get(status, "·"), name, f"[{STYLE[status]}]{status}[/]", "", "")
                    continue
                follower = self.followers[name]
                follower.poll()
                detail = progress_cell(follower, now) if follower.latest else Text(last_line(self.logs[name]))  # Text: not markup
                spinner = self._spinners.setdefault(name, Spinner("dots"))
                table.add_row(spinner, name, f"[{STYLE[status]}]{status}[/]", format_seconds(now - self.started[name]), detail)
        return table


def progress_cell(follower: ProgressFollower, now: float) -> Table:
    """A bar, `epoch k/N`, the ETA and the metric values, on one line."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    latest = follower.latest
    assert latest is not None
    eta = follower.eta(now)
    cell = Table.grid(padding=(0, 1))
    cell.add_row(
        ProgressBar(total=latest.total, completed=latest.done, width=20),
        Text(latest.counter()),
        f"ETA {format_seconds(eta)}" if eta is not None else "",
        Text(latest.values("  ")),
    )
    return cell


def last_line(log: str, width: int = 80) -> str:
    """The last non-empty line of a log (read from its tail only), for the live table."""
    if not log:
        return ""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [line.strip() for line in f.read().decode(errors="replace").replace("\r", "\n").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:width] if lines else ""
