"""The registration gate: absolute thresholds plus a comparison with the current champion.

The decision and every reason are stored with the model version, passed or not, so a reviewer
sees why a version is pending or was rejected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class GatePolicy:
    min_map50: float = 0.0
    min_map50_95: float = 0.0
    max_regression: float = 0.02  # a challenger may trail the champion's mAP50-95 by at most this


def decide(evaluation: dict[str, Any], champion: dict[str, Any] | None, policy: GatePolicy) -> dict[str, Any]:
    """Pass or fail, with one reason per rule.

    Args:
        evaluation: the challenger's evaluation.json document.
        champion: {"version": int, "metrics": {...}} of the current @champion, or None.
        policy: the thresholds.

    The champion comparison uses the evaluation's own `comparison` (both models evaluated on the
    same data) when present, else the champion's recorded metrics (possibly on other data, said so).
    """
    metrics = evaluation["metrics"]
    reasons: list[str] = []
    passed = True
    for key, label, bar in (("map50", "mAP50", policy.min_map50), ("map50_95", "mAP50-95", policy.min_map50_95)):
        ok = metrics[key] >= bar
        passed &= ok
        reasons.append(f"{label} {metrics[key]:.3f} {'>=' if ok else '<'} {bar:.3f} (absolute bar)")
    if champion is None:
        reasons.append("no champion yet: nothing to compare with")
    else:
        comparison = evaluation.get("comparison")
        if comparison:
            delta, basis = comparison["delta"]["map50_95"], "both evaluated on this test split"
        else:
            delta, basis = metrics["map50_95"] - champion["metrics"]["map50_95"], "champion's recorded metrics, possibly on other data"
        ok = delta >= -policy.max_regression
        passed &= ok
        reasons.append(
            f"mAP50-95 {delta:+.3f} vs champion v{champion['version']} ({basis}); {'within' if ok else 'beyond'} the allowed regression {policy.max_regression:.3f}"
        )
    return {"passed": passed, "reasons": reasons, "policy": asdict(policy), "champion": champion}
