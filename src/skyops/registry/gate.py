"""The registration gate: absolute thresholds plus a comparison with the current champion.

The decision is a function of the evaluation document and the policy only: the champion enters
through the evaluation's own `comparison` (the evaluate step scored the champion bound by the
pipeline's declared source on the same test split), never through a registry look-up at decision
time. So the register step decides the same way on every engine, from the same inputs.

The rules, in the order of their reasons:
1. mAP50 and mAP50-95 at least the absolute bars.
2. mAP50-95 at most `max_regression` below the champion's.
3. No slice worse than the champion by more than `max_slice_regression` in mAP50-95: the worst
   per-slice delta the evaluate step computed (`comparison.slices.worst`, over the slices with
   enough ground truth to compare: object size, class, brightness, region, crowding, occlusion,
   truncation). A champion document without slices (schema 1.0), or no slice with enough boxes,
   is said in the reasons and does not fail the gate.

The decision and every reason are stored with the model version, passed or not, so a reviewer
sees why a version is pending or was rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class GatePolicy:
    min_map50: float = 0.0
    min_map50_95: float = 0.0
    max_regression: float = 0.02  # a challenger may trail the champion's mAP50-95 by at most this
    max_slice_regression: float = 0.05  # ... and its mAP50-95 on any one slice by at most this


def champion_comparison(evaluation: Mapping[str, Any]) -> dict[str, Any] | None:
    """The evaluation's comparison with the champion, or None when the evaluate step had none to compare with."""
    comparison = evaluation.get("comparison")
    return dict(comparison) if comparison else None


def decide(evaluation: Mapping[str, Any], champion: Mapping[str, Any] | None, policy: GatePolicy) -> dict[str, Any]:
    """Pass or fail, with one reason per rule.

    Args:
        evaluation: the challenger's evaluation.json document.
        champion: `champion_comparison(evaluation)`: the champion's metrics and the deltas
            (challenger minus champion), both evaluated on the same split; None: no champion.
        policy: the thresholds.

    Returns:
        {"passed", "reasons", "policy", "champion"}; `champion` is None or
        {"weights_sha256", "metrics", "delta"} of the champion compared with.
    """
    metrics = evaluation["metrics"]
    reasons: list[str] = []
    passed = True
    for key, label, bar in (("map50", "mAP50", policy.min_map50), ("map50_95", "mAP50-95", policy.min_map50_95)):
        ok = metrics[key] >= bar
        passed &= ok
        reasons.append(f"{label} {metrics[key]:.3f} {'>=' if ok else '<'} {bar:.3f} (absolute bar)")
    compared = None
    if champion is None:
        reasons.append("no champion to compare with: the evaluate step had none bound")
    else:
        delta = champion["delta"]["map50_95"]
        weights = champion["champion"]["weights_sha256"]
        ok = delta >= -policy.max_regression
        passed &= ok
        reasons.append(
            f"mAP50-95 {delta:+.3f} vs the champion (weights {weights[:12]}, both evaluated on this test split); "
            f"{'within' if ok else 'beyond'} the allowed regression {policy.max_regression:.3f}"
        )
        compared = {"weights_sha256": weights, "metrics": dict(champion["champion"]["metrics"]), "delta": dict(champion["delta"])}
        ok, reason = _worst_slice(champion, policy.max_slice_regression)
        passed &= ok
        reasons.append(reason)
    return {"passed": passed, "reasons": reasons, "policy": asdict(policy), "champion": compared}


def _worst_slice(champion: Mapping[str, Any], margin: float) -> tuple[bool, str]:
    """Rule 3: the worst per-slice mAP50-95 delta against the champion, within `margin`."""
    slices = champion.get("slices")
    if slices is None:
        return True, "slices not compared: the champion's evaluation has none (an evaluation document older than schema 1.1)"
    worst = slices["worst"]
    if worst is None:
        return True, f"slices not compared: none has the {slices['min_instances']} ground-truth boxes a comparison needs"
    ok = worst["delta"] >= -margin
    return ok, (
        f"worst slice {worst['family']}={worst['name']}: mAP50-95 {worst['delta']:+.3f} vs the champion "
        f"({worst['challenger']:.3f} against {worst['champion']:.3f}, {worst['instances']} boxes; {slices['compared']} slices compared); "
        f"{'within' if ok else 'beyond'} the allowed slice regression {margin:.3f}"
    )
