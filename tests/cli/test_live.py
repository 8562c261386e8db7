"""The live view of `skyops run`: bars and clocks that move on a terminal, one line per epoch in a log.

The toy `ticker` step reports an epoch, then waits until the test has seen it (a `seen-<k>` file),
so each test looks at the display between epochs without guessing how long anything takes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from skyops.cli.live import ProgressFollower, Report, remaining

ROOT = Path(__file__).resolve().parents[2]
TICKER = ROOT / "tests" / "pipeline" / "pipelines" / "ticker.yaml"
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()=>][0-9A-Za-z]?")
RUNNING_ROW = re.compile(r"ticker\s+running\s+(\d+(?:\.\d+)?) (ms|s|min)\b(.*)$")
GUARD = 120  # seconds before a wait gives up on a hung child: a guard, not a timing assertion


def run_env(state: Path, markers: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_INTERACTIVE", "TTY_COMPATIBLE", "NO_COLOR", "CI")}
    return {
        **env,
        "SKYOPS_STATE_DIR": str(state),
        "TOY_MARKER_DIR": str(markers),
        "COLUMNS": "160",
        "LINES": "40",
        "TERM": "xterm-256color",
    }


class Screen:
    """What a pseudo-terminal has shown so far, as plain lines (escape sequences removed)."""

    def __init__(self, child: pexpect.spawn, guard: float = GUARD) -> None:
        self.child = child
        self.guard = guard
        self.raw = ""
        self.ended = False

    def lines(self) -> list[str]:
        return ANSI.sub("", self.raw).replace("\r", "\n").split("\n")

    def wait_for(self, what: str, done: Callable[[list[str]], bool]) -> list[str]:
        deadline = time.monotonic() + self.guard
        while not done(self.lines()):
            if self.ended or time.monotonic() > deadline:
                pytest.fail(f"the screen never showed {what}; it showed:\n" + "\n".join(self.lines()[-40:]))
            try:
                self.raw += self.child.read_nonblocking(65536, timeout=1).decode(errors="replace")
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                self.ended = True
        return self.lines()


def running_rows(lines: list[str]) -> list[tuple[float, str]]:
    """(elapsed seconds, rest of the row) of every drawing of the running ticker row."""
    rows = []
    for line in lines:
        match = RUNNING_ROW.search(line)
        if match:
            value, unit, rest = match.groups()
            rows.append((float(value) * {"ms": 0.001, "s": 1, "min": 60}[unit], rest))
    return rows


def epoch_rows(lines: list[str], k: int) -> list[tuple[float, str]]:
    return [(elapsed, rest) for elapsed, rest in running_rows(lines) if f"epoch {k}/3" in rest]


def test_terminal_shows_the_counter_and_the_clock_advancing(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    child = pexpect.spawn(
        sys.executable, ["-m", "skyops", "run", str(TICKER)], env=run_env(tmp_path / "state", markers), cwd=str(ROOT), dimensions=(40, 160)
    )
    screen = Screen(child)
    try:
        # While epoch 2 has not ended, nothing happens but the clock: the row must still move.
        lines = screen.wait_for("the elapsed time moving at epoch 1/3", lambda lines: len({e for e, _ in epoch_rows(lines, 1)}) >= 3)
        elapsed = [e for e, _ in epoch_rows(lines, 1)]
        assert elapsed == sorted(elapsed) and len(set(elapsed)) >= 3
        assert "loss 1.000" in epoch_rows(lines, 1)[-1][1] and "━" in epoch_rows(lines, 1)[-1][1]  # metrics and a bar
        (markers / "seen-1").touch()
        lines = screen.wait_for("epoch 2/3", lambda lines: bool(epoch_rows(lines, 2)))
        assert "loss 0.500" in epoch_rows(lines, 2)[-1][1] and "ETA " in epoch_rows(lines, 2)[-1][1]
        (markers / "seen-2").touch()
        lines = screen.wait_for("epoch 3/3", lambda lines: bool(epoch_rows(lines, 3)))
        (markers / "seen-3").touch()
        lines = screen.wait_for("the end of the run", lambda _: screen.ended)
        child.wait()
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, "\n".join(lines[-30:])
    order = [next(i for i, line in enumerate(lines) if f"epoch {k}/3" in line) for k in (1, 2, 3)]
    assert order == sorted(order)
    assert re.search(r"│ ticker\s+│ done\s+│", "\n".join(lines))


def test_a_log_gets_one_line_per_epoch_between_the_status_lines(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyops", "run", str(TICKER)],
        env=run_env(tmp_path / "state", markers),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:  # a pipe: not a terminal
            lines.append(line.rstrip("\n"))
            seen = re.search(r"ticker: epoch (\d)/3", line)
            if seen:
                (markers / f"seen-{seen.group(1)}").touch()
        proc.wait(GUARD)
    finally:
        proc.kill()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    steps = [re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line) for line in lines if re.match(r"^\[\d\d:\d\d:\d\d\] ticker: ", line)]
    assert [re.sub(r" \(.*\)$", "", line) for line in steps] == [
        "ticker: running",
        "ticker: epoch 1/3: loss 1.000, score 0.333",
        "ticker: epoch 2/3: loss 0.500, score 0.667",
        "ticker: epoch 3/3: loss 0.333, score 1.000",
        "ticker: done",
    ]
    assert all(re.search(r" \(ETA \d", line) for line in steps[1:3]) and "ETA" not in steps[3]


def test_follower_reads_whole_lines_only_and_each_once(tmp_path: Path) -> None:
    path = tmp_path / "step.progress.jsonl"
    follower = ProgressFollower(str(path))
    assert follower.poll() == [] and follower.latest is None  # nothing reported yet
    line = '{"done": 1, "total": 4, "unit": "epoch", "metrics": {"loss": 0.5}, "time": 110.0, "started": 100.0}\n'
    path.write_text(line[:30])  # a report being written
    assert follower.poll() == []
    path.write_text(line + "not json\n" + line.replace('"done": 1', '"done": 2').replace("110.0", "114.0")[:-1])
    assert [r.done for r in follower.poll()] == [1]  # the broken line is skipped, the partial one waits
    with path.open("a") as f:
        f.write("\n")
    assert [(r.done, r.metrics) for r in follower.poll()] == [(2, {"loss": 0.5})]
    assert follower.poll() == []
    assert follower.first is not None and follower.first.done == 1 and follower.latest is not None and follower.latest.done == 2
    assert follower.eta(now=115.0) == 4 * 2 - 1  # 4 s per epoch between the reports, 2 epochs left, 1 s since the last


def test_eta_of_a_resumed_step_counts_only_its_own_epochs() -> None:
    def report(done: int, at: float) -> Report:
        return Report(done=done, total=10, unit="epoch", metrics={}, time=at, started=100.0)

    assert remaining(report(6, 130.0), report(6, 130.0), now=130.0) == 30 / 6 * 4  # one report: time since the start per epoch
    assert remaining(report(6, 130.0), report(8, 140.0), now=140.0) == 5 * 2  # then the step's own pace
    assert remaining(report(6, 130.0), report(10, 150.0), now=150.0) is None  # finished


@pytest.mark.slow
def test_terminal_shows_real_training_epochs_with_losses_and_map(tmp_path: Path) -> None:
    from skyops.cli.sagemaker_cmd import TRAIN_METRICS
    from skyops.pipeline.lineage import load_record

    tiny = ["-p", "images=48", "-p", "image_size=96", "-p", "batch=8", "-p", "epochs=2", "-p", "min_map50=0"]
    child = pexpect.spawn(
        sys.executable,
        ["-m", "skyops", "run", "drone-detection", *tiny],
        env=run_env(tmp_path / "state", tmp_path),
        cwd=str(ROOT),
        dimensions=(40, 200),
    )
    screen = Screen(child, guard=900)
    try:
        lines = screen.wait_for("the end of the run", lambda _: screen.ended)
        child.wait()
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, "\n".join(lines[-30:])
    train_rows = [line for line in lines if re.search(r"train\s+running", line)]
    epoch_one = [line for line in train_rows if "epoch 1/2" in line]
    assert epoch_one and all(name in epoch_one[-1] for name in ("box_loss", "cls_loss", "dfl_loss", "mAP50(B)", "mAP50-95(B)"))
    elapsed = [re.search(r"running\s+(\S+ \S+)", line).group(1) for line in train_rows]  # type: ignore[union-attr]
    assert len(set(elapsed)) > 3  # the clock moved during training
    log = Path(load_record(tmp_path / "state" / "runs", "latest").steps["train"].log).read_text()
    epochs = [line for line in log.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    for regex in TRAIN_METRICS.values():  # SageMaker's metric definitions read the same lines
        assert all(re.search(regex, line) for line in epochs), regex
