"""Compile time of `skyops sagemaker compile drone-detection` against the SageMaker Python SDK v3 building the same pipeline.

Both sides are timed as whole processes (interpreter start and imports included), median of --runs, in
the same run of this script:
  skyops  `python -m skyops sagemaker compile drone-detection --out FILE` (builds the code archive too)
  anchor  a script (SDK_SCRIPT below) that builds an equivalent pipeline with the SDK v3: the same 17
          parameters, 5 processing steps with the same inputs/outputs/arguments, a ModelTrainer
          training step, a PropertyFile + JsonGet condition step, a ModelBuilder.register() model
          step and a Fail step, then calls Pipeline.definition().

The SDK lives in its own venv, created once under .skyops/bench/sm-sdk-venv (python3.11 -m venv, then
pip install sagemaker 'botocore<1.43.118'; about 1 GB). Neither side may send a request: fake
credentials, AWS_ENDPOINT_URL at a closed local port, SAGEMAKER_VALIDATE_ROLE=false. The SDK checks
its default bucket in S3 while registering a model even under a PipelineSession, so the anchor presets
the session's cached bucket name (a private attribute) to keep it offline.

    python benchmarks/compile_sagemaker.py [--runs 5]

Target (issue 6): skyops at least 10x faster. Without the SDK (install failed, no network) it says so
and prints the skyops figure alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".skyops" / "bench" / "sm-sdk-venv"
SDK_PACKAGES = ["sagemaker", "botocore<1.43.118"]
REGION = "eu-west-1"
SETTINGS_ENV = {
    "SKYOPS_SAGEMAKER_BUCKET": "skyops-artifacts",
    "SKYOPS_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/skyops-sagemaker",
    "SKYOPS_SAGEMAKER_REGION": REGION,
    "SKYOPS_SAGEMAKER_IMAGE_URI": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/skyops:0.1.0",
}
OFFLINE_ENV = {
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_DEFAULT_REGION": REGION,  # the SDK v3 needs a region before import
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # a request would fail at once instead of reaching AWS
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "SAGEMAKER_VALIDATE_ROLE": "false",
}

SDK_SCRIPT = r"""
import json, sys
import boto3
from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import CheckpointConfig, OutputDataConfig, ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output, StoppingCondition
from sagemaker.core.training.configs import Compute, InputData
from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterBoolean, ParameterFloat, ParameterInteger, ParameterString
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.retry import SageMakerJobExceptionTypeEnum, SageMakerJobStepRetryPolicy
from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train.model_trainer import ModelTrainer

BUCKET, PREFIX = "skyops-artifacts", "s3://skyops-artifacts/skyops/drone-detection"
ROLE = "arn:aws:iam::123456789012:role/skyops-sagemaker"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/skyops:0.1.0"
CODE = "s3://skyops-artifacts/skyops/code/0/sourcedir.tar.gz"
session = PipelineSession(boto_session=boto3.Session(region_name="eu-west-1"), default_bucket=BUCKET)
session._default_bucket = BUCKET  # else ModelBuilder.register() checks the bucket in S3
p = {
    "dataset": ParameterString(name="dataset", default_value=""),
    "format": ParameterString(name="format", default_value="auto"),
    "images": ParameterInteger(name="images", default_value=800),
    "image_size": ParameterInteger(name="image_size", default_value=256),
    "seed": ParameterInteger(name="seed", default_value=0),
    "max_invalid_fraction": ParameterFloat(name="max_invalid_fraction", default_value=0.05),
    "epochs": ParameterInteger(name="epochs", default_value=10),
    "batch": ParameterInteger(name="batch", default_value=16),
    "champion": ParameterString(name="champion", default_value=""),
    "min_map50": ParameterFloat(name="min_map50", default_value=0.5),
    "max_regression": ParameterFloat(name="max_regression", default_value=0.02),
    "ProcessingInstanceType": ParameterString(name="ProcessingInstanceType", default_value="ml.m5.xlarge"),
    "TrainingInstanceType": ParameterString(name="TrainingInstanceType", default_value="ml.g4dn.xlarge"),
    "TrainingInstanceCount": ParameterInteger(name="TrainingInstanceCount", default_value=1),
    "Deploy": ParameterBoolean(name="Deploy", default_value=False),
    "EndpointName": ParameterString(name="EndpointName", default_value="drone-detection"),
    "EndpointInstanceType": ParameterString(name="EndpointInstanceType", default_value="ml.m5.large"),
}
cache = CacheConfig(enable_caching=True, expire_after="P30D")
errors = [SageMakerJobExceptionTypeEnum.INTERNAL_ERROR, SageMakerJobExceptionTypeEnum.CAPACITY_ERROR]
retry = [SageMakerJobStepRetryPolicy(exception_types=errors, interval_seconds=60, backoff_rate=2.0, max_attempts=3)]


def s3_input(name, uri, path):
    source = ProcessingS3Input(s3_uri=uri, local_path=path, s3_data_type="S3Prefix", s3_input_mode="File", s3_data_distribution_type="FullyReplicated")
    return ProcessingInput(input_name=name, s3_input=source)


def processing(name, inputs, outputs, arguments, property_files=None):
    script = f'tar -xzf /opt/ml/processing/skyops_code/sourcedir.tar.gz -C /tmp/c && PYTHONPATH=/tmp/c exec python -m skyops.steps.{name} "$@"'
    env = {"SKYOPS_RUN_ID": ExecutionVariables.PIPELINE_EXECUTION_ID, "SKYOPS_STEP_NAME": name, "SKYOPS_STATE_DIR": "/tmp/skyops"}
    processor = Processor(role=ROLE, image_uri=IMAGE, instance_count=1, instance_type=p["ProcessingInstanceType"], entrypoint=["/bin/sh", "-c", script, "sh"], env=env, sagemaker_session=session)
    ins = [s3_input(port, uri, f"/opt/ml/processing/input/{port}") for port, uri in inputs.items()]
    ins.append(s3_input("skyops_code", CODE, "/opt/ml/processing/skyops_code"))
    outs = [
        ProcessingOutput(output_name=port, s3_output=ProcessingS3Output(s3_uri=Join(on="/", values=[PREFIX, ExecutionVariables.PIPELINE_EXECUTION_ID, name, port]), local_path=f"/opt/ml/processing/output/{port}", s3_upload_mode="EndOfJob"))
        for port in outputs
    ]
    return ProcessingStep(name=name, step_args=processor.run(inputs=ins, outputs=outs, arguments=arguments), cache_config=cache, retry_policies=retry, property_files=property_files)


def output(step, port):
    return step.properties.ProcessingOutputConfig.Outputs[port].S3Output.S3Uri


ingest = processing("ingest", {}, ["raw"], ["--format", p["format"], "--seed", p["seed"].to_string(), "--synth_images", p["images"].to_string(), "--synth_size", p["image_size"].to_string()])
validate = processing("validate", {"raw": output(ingest, "raw")}, ["data", "report"], ["--max_invalid_fraction", p["max_invalid_fraction"].to_string()])
profile = processing("profile", {"data": output(validate, "data")}, ["profile"], ["--max_side", "256"])
split = processing("split", {"data": output(validate, "data")}, ["splits"], ["--seed", p["seed"].to_string()])
per_execution = [PREFIX, ExecutionVariables.PIPELINE_EXECUTION_ID, "train"]
trainer = ModelTrainer(
    training_image=IMAGE,
    role=ROLE,
    sagemaker_session=session,
    base_job_name="train",
    compute=Compute(instance_type=p["TrainingInstanceType"], instance_count=p["TrainingInstanceCount"], volume_size_in_gb=50),
    stopping_condition=StoppingCondition(max_runtime_in_seconds=86400),
    output_data_config=OutputDataConfig(s3_output_path=Join(on="/", values=per_execution)),
    checkpoint_config=CheckpointConfig(s3_uri=Join(on="/", values=[*per_execution, "checkpoints"]), local_path="/opt/ml/checkpoints"),
    input_data_config=[InputData(channel_name="splits", data_source=output(split, "splits")), InputData(channel_name="skyops_code", data_source=CODE)],
    hyperparameters={"epochs": p["epochs"].to_string(), "batch": p["batch"].to_string(), "imgsz": p["image_size"].to_string(), "seed": p["seed"].to_string(), "_skyops_entry_point": "skyops.steps.train"},
)
train = TrainingStep(name="train", step_args=trainer.train(), cache_config=cache, retry_policies=retry)
quality = PropertyFile(name="quality", output_name="evaluation", path="evaluation.json")
model = train.properties.ModelArtifacts.S3ModelArtifacts
evaluate = processing("evaluate", {"model": model, "splits": output(split, "splits")}, ["evaluation"], ["--imgsz", p["image_size"].to_string()], [quality])
metrics = ModelMetrics(model_statistics=MetricsSource(content_type="application/json", s3_uri=Join(on="/", values=[output(evaluate, "evaluation"), "evaluation.json"])))
builder = ModelBuilder(image_uri=IMAGE, s3_model_data_url=model, role_arn=ROLE, sagemaker_session=session)
registration = builder.register(
    model_package_group_name="drone-detection",
    content_types=["application/x-image", "application/json"],
    response_types=["application/json"],
    inference_instances=["ml.m5.large"],
    transform_instances=["ml.m5.large"],
    approval_status="PendingManualApproval",
    model_metrics=metrics,
)
register = ModelStep(name="register", step_args=registration)
fail = FailStep(name="quality-failed", error_message=Join(on="", values=["test mAP50 below ", p["min_map50"]]))
condition = ConditionGreaterThanOrEqualTo(left=JsonGet(step_name="evaluate", property_file=quality, json_path="metrics.map50"), right=p["min_map50"])
gate = ConditionStep(name="quality-gate", conditions=[condition], if_steps=[register], else_steps=[fail])
pipeline = Pipeline(name="drone-detection", parameters=list(p.values()), steps=[ingest, validate, profile, split, train, evaluate, gate], sagemaker_session=session)
definition = json.loads(pipeline.definition())
print(json.dumps({"steps": len(definition["Steps"]), "parameters": len(definition["Parameters"])}))
"""


def ensure_sdk_venv() -> Path | None:
    """The SDK venv's python, creating the venv once; None (and why, on stderr) when it cannot be made."""
    python = VENV / "bin" / "python"
    if python.is_file():
        return python
    print(f"creating {VENV} with {' '.join(SDK_PACKAGES)} (once; about 1 GB) ...", file=sys.stderr)
    try:
        subprocess.run(["python3.11", "-m", "venv", str(VENV)], check=True, capture_output=True, text=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *SDK_PACKAGES], check=True, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        print(f"the SageMaker SDK cannot be installed: {detail.strip()[-500:]}", file=sys.stderr)
        return None
    return python


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds of one whole process, and its stdout; exits with its stderr when it fails."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(argv[:4])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each side (median reported; at least 5)")
    runs = max(5, parser.parse_args().runs)
    env = {**os.environ, **OFFLINE_ENV, **SETTINGS_ENV, "SKYOPS_PROJECT_DIR": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="skyops-bench-") as tmp:
        out = Path(tmp) / "definition.json"
        ours = [
            timed([sys.executable, "-m", "skyops", "sagemaker", "compile", "drone-detection", "--out", str(out)], env)[0]
            for _ in range(runs)
        ]
        definition = json.loads(out.read_text())
        print(f"skyops compile      median {statistics.median(ours):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ours)})")
        print(f"                    {len(definition['Steps'])} top-level steps, {len(definition['Parameters'])} parameters")
        python = ensure_sdk_venv()
        if python is None:
            print("SageMaker SDK v3   not available: only the skyops figure above")
            return
        script = Path(tmp) / "sdk_pipeline.py"
        script.write_text(SDK_SCRIPT)
        version = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"], capture_output=True, text=True, env=env
        )
        results = [timed([str(python), str(script)], env) for _ in range(runs)]
        theirs = [t for t, _ in results]
        shape = json.loads(results[0][1].strip().splitlines()[-1])
        print(
            f"SageMaker SDK {version.stdout.strip():7} median {statistics.median(theirs):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in theirs)})"
        )
        print(f"                    {shape['steps']} top-level steps, {shape['parameters']} parameters")
    ratio = statistics.median(theirs) / statistics.median(ours)
    print(f"ratio               {ratio:.1f}x faster (target >= 10x)")


if __name__ == "__main__":
    main()
