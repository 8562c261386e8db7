"""Acceptance (issue 13): drift found on shifted windows, and not on windows of the training distribution.

Windows of 200 synthetic scenes, captured in SageMaker's format and read back through the capture
reader, against the baseline of 400 scenes of the training distribution (conftest.py, scenes.py), with
the default thresholds (alpha 0.01, Holm, 2000 permutations). The slow test measures the rates the
issue asks for: detection rate >= 0.95 over 20 shifted windows of 200 (4 independent streams per
shift) and false alarms <= 5% over 20 windows of 200 of the training distribution. The default test is
its small version, cheap enough for every run: one window of 120 per shift and one unshifted, against a
baseline of 300 (every shift but class_mix changes the same 120 scenes, so 540 scenes are drawn in all).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from skyops.monitoring.baseline import Baseline
from skyops.monitoring.drift import DriftResult, DriftThresholds, detect_drift
from skyops.monitoring.features import FeatureTable
from skyops.monitoring.window import WindowInfo

from .scenes import SHIFTS

# A feature each shift must move (more may move with it: darker images are also less colourful).
EXPECTED = {"dark": "brightness", "blur": "sharpness", "rescale": "pixels", "class_mix": "class_mix", "unseen": "min_score"}

Window = Callable[..., tuple[FeatureTable, WindowInfo]]


def check(baseline: Baseline, window: Window, seed: int, shift: str | None = None, count: int = 200) -> DriftResult:
    table, info = window(seed, shift, count)
    assert info.requests == count and info.images == count and not info.skipped
    return detect_drift(baseline, table, info.to_json(), DriftThresholds())


def flagged(result: DriftResult) -> list[str]:
    return [f.name for f in result.features if f.drifted] + (["embedding"] if result.embedding.drifted else [])


def test_every_shift_is_found_and_the_training_distribution_is_not(synthetic_baseline: Callable[[int], Baseline], window: Window) -> None:
    baseline = synthetic_baseline(300)
    stable = check(baseline, window, 1, count=120)
    assert not stable.drifted, f"false alarm on {flagged(stable)}"
    for shift in SHIFTS:
        result = check(baseline, window, 1, shift, count=120)
        assert result.drifted, f"{shift} window not found drifted: top {result.top[:4]}"
        assert EXPECTED[shift] in flagged(result), f"{shift}: {EXPECTED[shift]} not among the drifted {flagged(result)}"
        assert result.top[0] in flagged(result)


@pytest.mark.slow
def test_detection_rate_and_false_alarm_rate_over_twenty_windows_each(
    synthetic_baseline: Callable[[int], Baseline], window: Window
) -> None:
    baseline = synthetic_baseline(400)
    stable = {seed: check(baseline, window, seed) for seed in range(100, 120)}
    false_alarms = {seed: flagged(r) for seed, r in stable.items() if r.drifted}
    missed = [(shift, seed) for shift in SHIFTS for seed in range(200, 204) if not check(baseline, window, seed, shift).drifted]
    print(f"false alarms {len(false_alarms)}/20 {false_alarms}; detection rate {(20 - len(missed)) / 20:.2f}, missed {missed}")
    assert len(false_alarms) <= 1, f"false alarm rate {len(false_alarms) / 20:.2f} > 0.05: windows {false_alarms}"
    assert len(missed) <= 1, f"detection rate {(20 - len(missed)) / 20:.2f} < 0.95: missed {missed}"
