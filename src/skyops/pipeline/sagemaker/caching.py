"""SageMaker's step cache: which attributes make a step's key, and a checkpoint place keyed the same way.

SageMaker reuses an earlier run of a step when these attributes of its arguments equal that run's
(AWS docs, "Default cache key attributes by pipeline step type"). Nothing that differs between two
executions of the same settings may appear in them: no execution variable (execution id, start
time, ...) and no parameter that says who or when rather than what is computed. Output locations
(ProcessingOutputConfig, OutputDataConfig) are not part of the key, so they may carry the execution id.

A training job's checkpoints are mutable state of one computation. Locally they live in
`checkpoints/<cache key>/`; here in `{prefix}/<sha256>/<value>/<value>...`, where the SHA-256 covers
the compiled cache-key attributes of the step and of every step it depends on (code archive, image,
literal settings, wiring) and the values are those of every parameter these attributes read, joined
in at run time. The same settings resume the same checkpoints (a retried step, a re-run after a
failure whose earlier steps hit the cache); different settings, here or upstream, never meet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from skyops.pipeline.sagemaker.expressions import Value, join, references

CACHE_KEY_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "TrainingJobDefinitions"),
}


def cache_key_attributes(step_type: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a step's `Arguments` that SageMaker compares to find a cached run ({} for other step types)."""
    return {name: arguments[name] for name in CACHE_KEY_ATTRIBUTES.get(step_type, ()) if name in arguments}


def checkpoint_uri(prefix: str, own: Mapping[str, Any], upstream: Sequence[Mapping[str, Any]]) -> Value:
    """Where a training step keeps its checkpoints: `{prefix}/<sha256>` then each parameter's value.

    Args:
        prefix: e.g. s3://bucket/skyops/drone-detection/checkpoints/train.
        own: the step's cache-key attributes, without CheckpointConfig (which this makes).
        upstream: the cache-key attributes of every step it depends on, in pipeline order.
    """
    scope = {"step": {k: v for k, v in own.items() if k != "CheckpointConfig"}, "upstream": list(upstream)}
    digest = hashlib.sha256(json.dumps(scope, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    parameters = sorted(ref for ref in references(scope) if ref.startswith("Parameters."))
    if not parameters:
        return f"{prefix}/{digest}"
    return join([f"{prefix}/{digest}", *({"Get": ref} for ref in parameters)], "/")
