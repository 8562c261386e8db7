"""How the compiler maps a pipeline: golden file, determinism, wiring, gates, registration, and its errors.

Regenerate the golden file after an intended change: SKYOPS_REGEN_GOLDEN=1 pytest tests/sagemaker -k golden
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import pytest

from skyops.errors import ConfigError, PipelineError
from skyops.pipeline.definition import Pipeline, pipeline_from_dict
from skyops.pipeline.sagemaker import SageMakerSettings, compile_pipeline
from skyops.pipeline.sagemaker.compile import run_context
from skyops.pipeline.sagemaker.expressions import EXECUTION_ID

from .checks import all_steps, definition_schema, parameter_defaults, request_errors, schema_errors
from .conftest import GOLDEN, ROOT, SETTINGS


def render(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2, sort_keys=True) + "\n"


def step(definition: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in all_steps(definition["Steps"]) if s["Name"] == name)


def drone_dict(**changes: Any) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((ROOT / "pipelines" / "drone-detection.yaml").read_text())
    data.update(changes)
    return data


def test_golden_file(definition: dict[str, Any]) -> None:
    path = GOLDEN / "drone-detection.json"
    if os.environ.get("SKYOPS_REGEN_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(render(definition))
    assert path.read_text() == render(definition), (
        "the compiled definition changed; if intended: SKYOPS_REGEN_GOLDEN=1 pytest tests/sagemaker -k golden"
    )


def test_compiling_twice_gives_the_same_bytes(drone: Pipeline) -> None:
    assert render(compile_pipeline(drone, SETTINGS)) == render(compile_pipeline(drone, SETTINGS))


def test_steps_wire_through_property_references(definition: dict[str, Any]) -> None:
    train = step(definition, "train")["Arguments"]
    splits = next(c for c in train["InputDataConfig"] if c["ChannelName"] == "splits")
    assert splits["DataSource"]["S3DataSource"]["S3Uri"] == {"Get": "Steps.split.ProcessingOutputConfig.Outputs['splits'].S3Output.S3Uri"}
    evaluate = {i["InputName"]: i["S3Input"]["S3Uri"] for i in step(definition, "evaluate")["Arguments"]["ProcessingInputs"]}
    assert evaluate["model"] == {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}
    assert evaluate["champion"] == {"Get": "Parameters.EvaluateChampion"}  # its registry: source, filled by `start` (test_sources.py)
    assert evaluate["skyops_code"] == f"s3://{SETTINGS.bucket}/{SETTINGS.code_key}"


def test_outputs_go_under_the_execution_and_checkpoints_under_the_settings(definition: dict[str, Any]) -> None:
    (output,) = step(definition, "split")["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == {
        "Std:Join": {"On": "/", "Values": [f"s3://{SETTINGS.bucket}/skyops/drone-detection", EXECUTION_ID, "split", "splits"]}
    }
    checkpoints = step(definition, "train")["Arguments"]["CheckpointConfig"]
    assert checkpoints["LocalPath"] == "/opt/ml/checkpoints"
    first, *values = checkpoints["S3Uri"]["Std:Join"]["Values"]
    assert first.startswith(f"s3://{SETTINGS.bucket}/skyops/drone-detection/checkpoints/train/") and len(first.rsplit("/", 1)[1]) == 64
    assert values == [
        {"Get": f"Parameters.{name}"}
        for name in sorted(
            (
                *("batch", "cos_lr", "epochs", "format", "image_size", "images", "lr0", "max_invalid_fraction", "mosaic", "nbs"),
                *("seed", "warmup_epochs"),
            )
        )
    ]


def test_a_dataset_parameter_becomes_an_input_once_it_has_an_s3_default(drone: Pipeline) -> None:
    compiled = compile_pipeline(drone, SETTINGS, {"dataset": "s3://data/visdrone/", "TrainingInstanceType": "ml.p3.2xlarge"})
    inputs = {i["InputName"]: i["S3Input"] for i in step(compiled, "ingest")["Arguments"]["ProcessingInputs"]}
    assert inputs["source"]["S3Uri"] == {"Get": "Parameters.dataset"} and inputs["source"]["LocalPath"] == "/opt/ml/processing/input/source"
    defaults = {p["Name"]: p["DefaultValue"] for p in compiled["Parameters"]}
    assert defaults["dataset"] == "s3://data/visdrone/" and defaults["TrainingInstanceType"] == "ml.p3.2xlarge"


def test_non_string_parameters_are_joined_into_strings(definition: dict[str, Any]) -> None:
    arguments = step(definition, "ingest")["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--format") + 1] == {"Get": "Parameters.format"}  # a String parameter as is
    assert arguments[arguments.index("--seed") + 1] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.seed"}]}}
    assert step(definition, "train")["Arguments"]["HyperParameters"]["epochs"] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.epochs"}]}
    }


def test_gate_holds_the_guarded_step_and_fails_with_the_message(definition: dict[str, Any]) -> None:
    assert [s["Name"] for s in definition["Steps"]] == [
        "ingest", "validate", "profile", "split", "train", "evaluate", "quality-gate", "register-decision",
    ]  # fmt: skip
    gate = step(definition, "quality-gate")["Arguments"]
    assert gate["Conditions"] == [
        {
            "Type": "GreaterThanOrEqualTo",
            "LeftValue": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.evaluate.PropertyFiles.quality"}, "Path": "metrics.map50"}},
            "RightValue": {"Get": "Parameters.min_map50"},
        }
    ]
    assert [s["Name"] for s in gate["IfSteps"]] == ["export", "register"]  # a model below the bar is neither exported nor registered
    (fail,) = gate["ElseSteps"]
    assert fail["Type"] == "Fail" and "below min_map50" in fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"][0]
    assert step(definition, "evaluate")["PropertyFiles"] == [
        {"PropertyFileName": "quality", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]


def test_registration_decides_in_a_processing_job_then_registers_with_that_status(definition: dict[str, Any]) -> None:
    decide = step(definition, "register")
    assert decide["Type"] == "Processing" and decide["Arguments"]["Environment"]["SKYOPS_REGISTRY"] == "sagemaker"
    assert decide["PropertyFiles"] == [{"PropertyFileName": "Decision", "OutputName": "registration", "FilePath": "decision.json"}]
    condition = step(definition, "register-decision")
    assert condition["DependsOn"] == ["register"] and condition["Arguments"]["Conditions"] == [
        {
            "Type": "Equals",
            "LeftValue": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.register.PropertyFiles.Decision"}, "Path": "status"}},
            "RightValue": "PendingManualApproval",
        }
    ]
    (pending,) = condition["Arguments"]["IfSteps"]
    (rejected,) = condition["Arguments"]["ElseSteps"]
    assert (pending["Name"], pending["Arguments"]["ModelApprovalStatus"]) == ("register-pending", "PendingManualApproval")
    assert (rejected["Name"], rejected["Arguments"]["ModelApprovalStatus"]) == ("register-rejected", "Rejected")
    decision = {"Get": "Steps.register.ProcessingOutputConfig.Outputs['registration'].S3Output.S3Uri"}
    evaluation = {"Get": "Steps.evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}
    package = {"Get": "Steps.export.ProcessingOutputConfig.Outputs['package'].S3Output.S3Uri"}
    assert {"InputName": "package", "S3Uri": package} in [
        {"InputName": i["InputName"], "S3Uri": i["S3Input"]["S3Uri"]} for i in decide["Arguments"]["ProcessingInputs"]
    ]  # the decision job checks the package it registers
    for version in (pending, rejected):
        arguments = version["Arguments"]
        assert arguments["ModelPackageGroupName"] == {"Get": "Parameters.model_name"}  # the pipeline's one model name
        assert arguments["InferenceSpecification"]["Containers"] == [
            {"Image": SETTINGS.image_uri, "ModelDataUrl": {"Std:Join": {"On": "/", "Values": [package, "model.tar.gz"]}}}
        ]  # the exported package, which the server image serves from /opt/ml/model
        statistics = arguments["ModelMetrics"]["ModelQuality"]["Statistics"]
        assert statistics["S3Uri"] == {"Std:Join": {"On": "/", "Values": [evaluation, "evaluation.json"]}}
        metadata = arguments["CustomerMetadataProperties"]
        assert metadata["skyops:decision"] == {"Std:Join": {"On": "/", "Values": [decision, "decision.json"]}}
        assert metadata["skyops:card"] == {"Std:Join": {"On": "/", "Values": [decision, "card.json"]}}


def test_a_model_name_sagemaker_refuses_is_refused_at_compile_time(drone: Pipeline) -> None:
    with pytest.raises(PipelineError, match=r"step 'register': config 'model_name' is 'drone_detector', which SageMaker refuses"):
        compile_pipeline(drone, SETTINGS, {"model_name": "drone_detector"})


def test_spot_is_a_definition_time_choice(drone: Pipeline) -> None:
    on_demand = step(compile_pipeline(drone, SETTINGS), "train")["Arguments"]
    spot = step(compile_pipeline(drone, dataclasses.replace(SETTINGS, spot=True)), "train")["Arguments"]
    assert on_demand["EnableManagedSpotTraining"] is False and "MaxWaitTimeInSeconds" not in on_demand["StoppingCondition"]
    assert spot["EnableManagedSpotTraining"] is True and spot["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 86400,
        "MaxWaitTimeInSeconds": 172800,
    }


def test_run_context_maps_every_variable_the_engine_sets() -> None:
    from skyops.pipeline.contract import RUN_CONTEXT_ENV

    assert run_context("train") == {
        "SKYOPS_RUN_ID": "",  # the step runtime fills in the job's name: an execution id here would defeat SageMaker's cache
        "SKYOPS_STEP_NAME": "train",
        "SKYOPS_STATE_DIR": "/tmp/skyops",
        "SKYOPS_USER": "sagemaker-pipeline",  # who started an execution is in its CreatedBy, not in a job's cache key
        "SKYOPS_PROGRESS_FILE": "",
    }
    assert list(run_context("train")) == list(RUN_CONTEXT_ENV)


def test_unknown_override_lists_the_parameters(drone: Pipeline) -> None:
    with pytest.raises(ConfigError, match=r"has no parameter 'epoch'") as info:
        compile_pipeline(drone, SETTINGS, {"epoch": "3"})
    assert "TrainingInstanceType (string)" in info.value.hint and "TrainingInstanceCount" not in info.value.hint


def test_local_paths_cannot_reach_sagemaker(drone: Pipeline) -> None:
    with pytest.raises(
        PipelineError, match=r"input 'source' \(\$\{dataset\}\) is '/data/visdrone'; a SageMaker job reads its inputs from S3"
    ):
        compile_pipeline(drone, SETTINGS, {"dataset": "/data/visdrone"})
    steps = drone_dict()["steps"]
    steps[5]["inputs"] = {"champion": "./weights/champion"}
    with pytest.raises(PipelineError, match=r"input 'champion' \(./weights/champion\) is a local path"):
        compile_pipeline(pipeline_from_dict(drone_dict(steps=steps)), SETTINGS)


def test_parameter_clash_with_the_engine_is_refused() -> None:
    data = drone_dict()
    data["parameters"]["TrainingInstanceType"] = {"type": "string", "default": "ml.p3.2xlarge"}
    with pytest.raises(PipelineError, match=r"defines parameter 'TrainingInstanceType', which the SageMaker engine adds itself"):
        compile_pipeline(pipeline_from_dict(data), SETTINGS)


def test_gate_problems_are_reported_together() -> None:
    data = drone_dict()
    second = {**data["gates"][0], "name": "speed", "conditions": [{"path": "speed_ms.total", "op": "<", "value": 50}]}
    on_training = {**data["gates"][0], "name": "fit", "step": "train", "output": "model", "file": "training.json", "guards": ["evaluate"]}
    with pytest.raises(PipelineError) as info:
        compile_pipeline(pipeline_from_dict(drone_dict(gates=[*data["gates"], second, on_training])), SETTINGS)
    assert info.value.problems == [
        "gate 'fit' reads step 'train', but only processing steps can declare the PropertyFile it needs",
        "step 'export' is guarded by gates quality, speed; SageMaker cannot nest condition steps, so merge them into one gate with all the conditions",
        "step 'register' is guarded by gates fit, quality, speed; SageMaker cannot nest condition steps, so merge them into one gate with all the conditions",
    ]


def test_missing_code_key_is_refused(drone: Pipeline) -> None:
    with pytest.raises(ConfigError, match="no code_key"):
        compile_pipeline(drone, dataclasses.replace(SETTINGS, code_key=""))


def test_registration_needs_a_training_model(scratch) -> None:
    package = scratch("export", outputs={"model": "model-weights", "evaluation": "evaluation"})
    scratch("enroll", kind="REGISTRATION", inputs={"model": "model-weights", "evaluation": "evaluation"}, outputs={"record": "decision"})
    pipeline = pipeline_from_dict({"name": "reg", "catalog": package, "steps": [{"step": "export"}, {"step": "enroll"}]})
    with pytest.raises(
        PipelineError, match=r"step 'enroll': registration step 'enroll': its 'model' input is a folder written by a processing step"
    ):
        compile_pipeline(pipeline, SETTINGS)


def test_registration_of_a_file_in_a_folder_needs_that_folder(scratch) -> None:
    scratch("fit", kind="TRAINING", inputs={"data": "yolo-dataset"}, outputs={"model": "model-weights"})
    scratch("pack", inputs={"model": "model-weights"}, outputs={"package": "model-package", "evaluation": "evaluation"})
    for name, model in (("enroll", {"package": "model-package"}), ("misbound", {"model": "model-weights"})):
        inputs = {**model, "evaluation": "evaluation"}
        package = scratch(name, kind="REGISTRATION", inputs=inputs, outputs={"record": "decision"}, model_file="model.tar.gz")

    def pipeline(registration: str) -> Pipeline:
        steps = [{"step": "fit", "inputs": {"data": "s3://bucket/data"}}, {"step": "pack"}, {"step": registration}]
        return pipeline_from_dict({"name": "reg", "catalog": package, "steps": steps})

    (container,) = step(compile_pipeline(pipeline("enroll"), SETTINGS), "enroll-pending")["Arguments"]["InferenceSpecification"][
        "Containers"
    ]
    folder = {"Get": "Steps.pack.ProcessingOutputConfig.Outputs['package'].S3Output.S3Uri"}
    assert container["ModelDataUrl"] == {"Std:Join": {"On": "/", "Values": [folder, "model.tar.gz"]}}
    with pytest.raises(
        PipelineError,
        match=r"registration step 'misbound': its 'model' input is a training job's model.tar.gz, but the contract registers "
        r"the file 'model.tar.gz' inside a folder \(bind the input to the output folder that holds model.tar.gz \(an export step's package\)\)$",
    ):
        compile_pipeline(pipeline("misbound"), SETTINGS)


def test_required_env_var_needs_a_value_in_the_pipeline(scratch) -> None:
    package = scratch("notify", outputs={"sent": "receipt"}, required_env=("WEBHOOK_URL",))
    data = {"name": "env", "catalog": package, "steps": [{"step": "notify"}]}
    with pytest.raises(PipelineError, match=r"step 'notify': needs env var WEBHOOK_URL, which has no value in the pipeline"):
        compile_pipeline(pipeline_from_dict(data), SETTINGS)
    compiled = compile_pipeline(pipeline_from_dict({**data, "env": {"WEBHOOK_URL": "https://hooks.example/x"}}), SETTINGS)
    assert step(compiled, "notify")["Arguments"]["Environment"] == {"WEBHOOK_URL": "https://hooks.example/x"}
    assert schema_errors(compiled, definition_schema()) == [] and request_errors(step(compiled, "notify")) == ""


def test_settings_reach_the_jobs(drone: Pipeline) -> None:
    custom = dataclasses.replace(SETTINGS, prefix="teams/vision", retry_attempts=5, cache_expire_after="PT12H", training_volume_gb=200)
    compiled = compile_pipeline(drone, custom)
    train = step(compiled, "train")
    assert train["CacheConfig"] == {"Enabled": True, "ExpireAfter": "PT12H"}
    assert train["RetryPolicies"][0]["MaxAttempts"] == 5 and train["Arguments"]["ResourceConfig"]["VolumeSizeInGB"] == 200
    assert (
        train["Arguments"]["OutputDataConfig"]["S3OutputPath"]["Std:Join"]["Values"][0]
        == f"s3://{SETTINGS.bucket}/teams/vision/drone-detection"
    )


def test_settings_problems_are_listed_together() -> None:
    with pytest.raises(ConfigError) as info:
        SageMakerSettings(
            bucket="Bad_Bucket",
            role_arn="role",
            region="eu-west-1",
            image_uris={"eu-west-1": "1.dkr.ecr.us-east-1.amazonaws.com/x"},
            cache_expire_after="30 days",
        )
    assert info.value.problems == [
        "bucket 'Bad_Bucket' is not an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')",
        "cache_expire_after '30 days' is not an ISO 8601 duration like P30D or PT12H",
        "image for eu-west-1 is in ECR of us-east-1 (1.dkr.ecr.us-east-1.amazonaws.com/x); SageMaker pulls images from its own region",
        "role_arn 'role' is not an IAM role ARN like arn:aws:iam::123456789012:role/skyops-sagemaker",
    ]


def test_config_problems_are_the_local_engines_all_at_once(drone: Pipeline) -> None:
    overrides = {"image_size": "100", "images": "0", "max_invalid_fraction": "2"}
    with pytest.raises(ConfigError) as local:
        drone.resolve_configs(drone.resolve_parameters(overrides))
    with pytest.raises(ConfigError) as compiled:
        compile_pipeline(drone, SETTINGS, overrides)
    assert compiled.value.message == local.value.message
    assert compiled.value.problems == [
        "step 'ingest' config: synth_images: 0 must be >= 1",
        "step 'train' config: imgsz: 100 is not a multiple of 32 (the model's largest stride); use 128",
        "step 'validate' config: max_invalid_fraction: 2.0 must be <= 1",
    ]


def test_more_than_one_processing_instance_is_refused_at_compile_time(drone: Pipeline) -> None:
    with pytest.raises(PipelineError) as info:
        compile_pipeline(drone, dataclasses.replace(SETTINGS, processing_instance_count=2))
    assert (
        "step 'ingest': processing_instance_count is 2: SageMaker runs the step 2 times, each on the full input and uploading "
        "to the same outputs (set processing_instance_count to 1 (SKYOPS_SAGEMAKER_PROCESSING_INSTANCE_COUNT))"
    ) in info.value.problems


def test_several_training_instances_run_the_train_step_under_its_launcher(drone: Pipeline) -> None:
    definition = compile_pipeline(drone, dataclasses.replace(SETTINGS, training_instance_count=3))
    arguments = step(definition, "train")["Arguments"]
    assert arguments["ResourceConfig"]["InstanceCount"] == 3
    script = arguments["AlgorithmSpecification"]["ContainerEntrypoint"][2]
    assert script.endswith("exec python -m skyops.training.distributed skyops.steps.train")
    assert schema_errors(definition, definition_schema()) == []
    assert request_errors(step(definition, "train"), parameter_defaults(definition)) == ""


def test_a_training_step_without_a_launcher_is_refused_on_several_instances(drone: Pipeline) -> None:
    node = drone.step("train")
    contract = dataclasses.replace(node.definition.contract, launcher=None)
    definition = dataclasses.replace(node.definition, contract=contract)
    steps = tuple(dataclasses.replace(n, definition=definition) if n.name == "train" else n for n in drone.steps)
    with pytest.raises(PipelineError) as info:
        compile_pipeline(dataclasses.replace(drone, steps=steps), dataclasses.replace(SETTINGS, training_instance_count=2))
    assert (
        "step 'train': training_instance_count is 2: SageMaker runs 2 independent trainings that overwrite each other's "
        "checkpoints; this step's contract declares no launcher (set training_instance_count to 1 "
        "(SKYOPS_SAGEMAKER_TRAINING_INSTANCE_COUNT))"
    ) in info.value.problems


def test_instance_count_is_a_setting_not_a_parameter(definition: dict[str, Any]) -> None:
    assert "TrainingInstanceCount" not in {p["Name"] for p in definition["Parameters"]}
    assert step(definition, "train")["Arguments"]["ResourceConfig"]["InstanceCount"] == 1


def test_env_values_longer_than_a_job_takes_are_refused(scratch) -> None:
    package = scratch("notify", outputs={"sent": "receipt"}, required_env=("WEBHOOK_URL",))
    data = {"name": "env", "catalog": package, "steps": [{"step": "notify"}], "env": {"WEBHOOK_URL": "https://hooks.example/" + "x" * 250}}
    with pytest.raises(
        PipelineError,
        match=r"step 'notify': env var WEBHOOK_URL \(272 characters\) is longer than a processing job's Environment takes \(256\)",
    ):
        compile_pipeline(pipeline_from_dict(data), SETTINGS)


FIT = """
from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepSpec
from {package} import CATALOG

SPEC = StepSpec(
    step_type="fit",
    node_type=NodeType.SOURCE,
    inputs=(Port(name="data", kind="rows", optional=True),),
    outputs=(Port(name="model", kind="model-weights"),),
)
CONTRACT = ScriptContract(
    entry_point="{package}.fit",
    job_kind=JobKind.TRAINING,
    inputs={{"data": "/opt/ml/input/data/my data"}},
    outputs={{"model": "/opt/ml/model"}},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT)
def main(inputs, outputs, env, args):
    pass
"""


def test_a_channel_name_sagemaker_refuses_is_refused_at_compile_time(scratch, tmp_path) -> None:
    package = scratch("fit")
    (next(tmp_path.glob("pkgs/*/fit")) / "script.py").write_text(FIT.format(package=package))
    data = {
        "name": "ch",
        "catalog": package,
        "parameters": {"rows": {"type": "string", "default": "s3://b/rows"}},
        "steps": [{"step": "fit", "inputs": {"data": "${rows}"}}],
    }
    with pytest.raises(
        PipelineError, match=r"training input 'data' at /opt/ml/input/data/my data: SageMaker channel names are 1-64 letters"
    ):
        compile_pipeline(pipeline_from_dict(data), SETTINGS)
