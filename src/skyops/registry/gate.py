"""The registration gate: absolute thresholds plus a comparison with the current champion.

The decision is a function of the evaluation document and the policy only: the champion enters
through the evaluation's own `comparison` (the evaluate step scored the champion bound by the
pipeline's declared source on the same test split), never through a registry look-up at decision
time. So the register step decides the same way on every engine, from the same inputs.

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
    return {"passed": passed, "reasons": reasons, "policy": asdict(policy), "champion": compared}
