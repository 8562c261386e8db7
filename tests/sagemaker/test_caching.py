"""SageMaker's step cache can hit: no run-specific value in any cache-key attribute; checkpoints keyed like the local engine's.

The cache-key attributes are the AWS documentation's ("Default cache key attributes by pipeline
step type"), written out here on their own so that this test checks the compiler's list too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from skyops.pipeline.definition import Pipeline, pipeline_from_dict
from skyops.pipeline.sagemaker import compile_pipeline
from skyops.pipeline.sagemaker.caching import CACHE_KEY_ATTRIBUTES
from skyops.pipeline.sagemaker.expressions import references
from skyops.pipeline.sagemaker.sources import source_parameters

from .checks import all_steps, parameter_defaults
from .conftest import SETTINGS
from .constraints import known_value
from .test_compile import drone_dict

DOCUMENTED = {
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
    # Of TrainingJobDefinition only AlgorithmSpecification, HyperParameterRanges, InputDataConfig,
    # StaticHyperParameters and TuningObjective count (the code archive is an InputDataConfig channel).
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "TrainingJobDefinitions"),
}


def cache_key_references(definition: dict[str, Any]) -> dict[str, set[str]]:
    """Step name -> every Get inside its cache-key attributes, for each step that caches (the others' keys are never looked up)."""
    return {
        s["Name"]: references([s["Arguments"].get(attribute) for attribute in DOCUMENTED[s["Type"]]])
        for s in all_steps(definition["Steps"])
        if s["Type"] in DOCUMENTED and s["CacheConfig"]["Enabled"]
    }


def checkpoint(definition: dict[str, Any], step: str = "train") -> Any:
    return next(s for s in all_steps(definition["Steps"]) if s["Name"] == step)["Arguments"]["CheckpointConfig"]["S3Uri"]


def resolved(uri: Any, definition: dict[str, Any], **values: Any) -> str:
    """The checkpoint URI of an execution with these parameter values (the definition's defaults otherwise)."""
    value = known_value(uri, {**parameter_defaults(definition), **values})
    assert isinstance(value, str), f"the checkpoint URI reads more than parameters: {uri}"
    return value


def test_the_compiler_uses_the_documented_cache_key_attributes() -> None:
    assert dict(CACHE_KEY_ATTRIBUTES) == DOCUMENTED


def test_no_cache_key_attribute_reads_an_execution_variable_or_a_run_specific_parameter(
    definition: dict[str, Any], drone: Pipeline
) -> None:
    found = cache_key_references(definition)
    assert set(found) >= {"ingest", "validate", "profile", "split", "train", "evaluate"}
    settings = {f"Parameters.{p.name}" for p in drone.parameters}  # what a step computes from; nothing about who or when
    settings |= {f"Parameters.{p.name}" for p in source_parameters(drone, SETTINGS)}  # a resolved source (the champion) is an input
    assert {name: sorted(r for r in refs if not (r in settings or r.startswith("Steps."))) for name, refs in found.items()} == {
        name: [] for name in found
    }


def test_a_job_reading_skyops_user_gets_a_constant_not_a_parameter(scratch) -> None:
    package = scratch("notify", outputs={"sent": "receipt"}, required_env=("SKYOPS_USER", "SKYOPS_RUN_ID"))
    compiled = compile_pipeline(pipeline_from_dict({"name": "env", "catalog": package, "steps": [{"step": "notify"}]}), SETTINGS)
    (notify,) = compiled["Steps"]
    assert notify["Arguments"]["Environment"] == {"SKYOPS_RUN_ID": "", "SKYOPS_USER": "sagemaker-pipeline"}
    assert [p["Name"] for p in compiled["Parameters"]] == ["ProcessingInstanceType"]


def test_the_same_settings_give_the_same_checkpoints_and_different_settings_never_meet(drone: Pipeline) -> None:
    first, again = compile_pipeline(drone, SETTINGS), compile_pipeline(drone, SETTINGS)
    assert checkpoint(first) == checkpoint(again)
    assert references(checkpoint(first)) <= {f"Parameters.{p.name}" for p in drone.parameters}
    base = resolved(checkpoint(first), first)
    assert base.startswith(f"s3://{SETTINGS.bucket}/skyops/drone-detection/checkpoints/train/")
    assert resolved(checkpoint(first), first, epochs=30) != base  # the step's own setting, at start
    assert resolved(checkpoint(first), first, max_invalid_fraction=0.1) != base  # a setting of a step upstream of it
    assert resolved(checkpoint(first), first, **parameter_defaults(first)) == base

    thirty = compile_pipeline(drone, SETTINGS, {"epochs": "30"})  # a new default at compile (upsert) time
    assert checkpoint(thirty) == checkpoint(first) and resolved(checkpoint(thirty), thirty) == resolved(checkpoint(first), first, epochs=30)


@pytest.mark.parametrize(
    "change",
    ["code archive", "image", "literal setting of the step", "literal setting upstream"],
)
def test_literal_changes_here_or_upstream_move_the_checkpoints(drone: Pipeline, change: str) -> None:
    settings, pipeline = SETTINGS, drone
    if change == "code archive":
        settings = dataclasses.replace(SETTINGS, code_key=SETTINGS.code_key.replace("/0000", "/1111"))
    elif change == "image":
        settings = dataclasses.replace(SETTINGS, image_uris={SETTINGS.region: SETTINGS.image_uri + "-next"})
    else:
        data = drone_dict()
        index = 4 if change == "literal setting of the step" else 1  # train's `workers`, or validate's threshold
        key = "workers" if index == 4 else "max_invalid_fraction"
        data["steps"][index]["config"][key] = 1 if index == 4 else 0.2
        pipeline = pipeline_from_dict(data)
    before = resolved(checkpoint(compile_pipeline(drone, SETTINGS)), compile_pipeline(drone, SETTINGS))
    changed = compile_pipeline(pipeline, settings)
    assert resolved(checkpoint(changed), changed) != before


def test_settings_that_do_not_change_the_computation_keep_the_checkpoints(drone: Pipeline) -> None:
    """Instance types, retries and run times are not part of the key: a bigger instance resumes the same training."""
    before = compile_pipeline(drone, SETTINGS)
    bigger = compile_pipeline(
        drone, dataclasses.replace(SETTINGS, retry_attempts=7, training_max_runtime=3600), {"TrainingInstanceType": "ml.p3.2xlarge"}
    )
    assert resolved(checkpoint(bigger), bigger) == resolved(checkpoint(before), before)


def test_a_step_whose_result_the_local_engine_rechecks_never_caches_on_sagemaker() -> None:
    toy = pipeline_from_dict({"name": "toy", "catalog": "tests.pipeline.toysteps", "steps": [{"step": "registrar"}, {"step": "emit"}]})
    assert toy.step("registrar").definition.recheck is not None and toy.step("emit").definition.recheck is None
    steps = {s["Name"]: s for s in compile_pipeline(toy, SETTINGS)["Steps"]}
    assert steps["registrar"]["CacheConfig"] == {"Enabled": False}
    assert steps["emit"]["CacheConfig"] == {"Enabled": True, "ExpireAfter": SETTINGS.cache_expire_after}
