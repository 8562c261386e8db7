"""Step JSON of each SageMaker job kind, from what the compiler resolved for one pipeline step.

The renderers in `render.py` call these (one renderer per job kind); they are plain functions from
a `SageMakerJob` (or, for a model version, its parts) to the step's dict, so each can be read and
tested on its own. Arguments follow the request shapes of CreateProcessingJob, CreateTrainingJob and
CreateModelPackage minus the job name, which SageMaker generates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skyops.errors import PipelineError
from skyops.pipeline.contract import CHECKPOINTS, TRAINING_CHANNELS, TRAINING_MODEL, TRAINING_OUTPUT, ScriptContract
from skyops.pipeline.sagemaker.caching import cache_key_attributes, checkpoint_uri
from skyops.pipeline.sagemaker.container import CODE_INPUT, PROCESSING_CODE_DIR, TRAINING_CODE_DIR, code_entrypoint
from skyops.pipeline.sagemaker.expressions import Expression, Value, join, parameter, step_property

if TYPE_CHECKING:
    from skyops.pipeline.sagemaker.settings import SageMakerSettings

PROCESSING_INSTANCE_TYPE = "ProcessingInstanceType"
TRAINING_INSTANCE_TYPE = "TrainingInstanceType"
CONTENT_TYPES = ["application/x-image", "application/json"]  # what the inference container accepts
RESPONSE_TYPES = ["application/json"]
_CHANNEL = re.compile(r"[A-Za-z0-9.\-_]{1,64}")  # botocore's ChannelName
RETRIED = ["SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR"]  # failures that are SageMaker's, not the step's


@dataclass(frozen=True, kw_only=True)
class SageMakerJob:
    """One pipeline step as the compiler resolved it.

    Args:
        name: step name in the definition.
        contract: the step's script contract (paths, entry point).
        arguments: `--name value` pairs as `config_arguments` makes them locally; values may be expressions.
        inputs: bound input port -> S3 URI (value or expression); unbound optional ports are absent.
        archives: input ports whose URI is one model.tar.gz (a training job's model), not a folder.
        output_parts: values joined with '/' into the S3 prefix of this step's outputs in this execution.
        environment: the contract's env vars -> values.
        settings: the engine settings.
        description: one line shown in SageMaker Studio.
        property_files: PropertyFiles of a processing step read by gates.
        metadata: CustomerMetadataProperties of a model version the job registers.
        pipeline: the pipeline's name (its S3 folder under the settings' prefix).
        upstream_cache_keys: the cache-key attributes of every step this one depends on, in pipeline
            order; a training step's checkpoint place is keyed by them too (caching.py).
        rechecked: the step's catalog definition has a `recheck`: its cached result refers to outside
            state that the local engine rechecks on a hit. SageMaker cannot, so the step never caches.
        config: the step's config values, parameters at their compile-time defaults (for checks).
    """

    name: str
    contract: ScriptContract
    arguments: tuple[Value, ...]
    inputs: Mapping[str, Value]
    archives: frozenset[str] = frozenset()
    output_parts: tuple[Value, ...]
    environment: Mapping[str, Value]
    settings: SageMakerSettings
    description: str = ""
    property_files: tuple[dict[str, str], ...] = ()
    metadata: Mapping[str, Value] = field(default_factory=dict)
    pipeline: str
    upstream_cache_keys: tuple[Mapping[str, Any], ...] = ()
    rechecked: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def hyperparameters(self) -> dict[str, Value]:
        """The `--name value` pairs as a name -> value mapping (a training job's settings)."""
        pairs = self.arguments
        return {str(pairs[i])[2:]: pairs[i + 1] for i in range(0, len(pairs), 2)}


def processing_entrypoint(module: str) -> list[str]:
    """Unpack the code archive, then run the step; ContainerArguments follow as "$@" (container.py).

    The image holds the dependencies; the code comes from a content-addressed archive, so a code
    change is a new S3 key, new step arguments and therefore a miss of SageMaker's step cache.
    """
    return code_entrypoint(module, PROCESSING_CODE_DIR, with_arguments=True)


def step_options(job: SageMakerJob) -> dict[str, Any]:
    """CacheConfig and RetryPolicies, shared by processing and training steps.

    A step with a catalog `recheck` never caches: its result refers to outside state (a registry
    version) that the local engine rechecks on every hit, and SageMaker has no way to.
    """
    s = job.settings
    cache: dict[str, Any] = (
        {"Enabled": False} if job.rechecked or not s.cache_enabled else {"Enabled": True, "ExpireAfter": s.cache_expire_after}
    )
    return {
        "CacheConfig": cache,
        "RetryPolicies": [
            {"ExceptionType": RETRIED, "IntervalSeconds": s.retry_interval, "BackoffRate": s.retry_backoff, "MaxAttempts": s.retry_attempts}
        ],
    }


def _step(job: SageMakerJob, kind: str, arguments: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = {"Name": job.name, "Type": kind, "Arguments": arguments}
    if job.description:
        step["Description"] = job.description
    return step


def processing_step(job: SageMakerJob) -> dict[str, Any]:
    s, contract = job.settings, job.contract
    n = s.processing_instance_count
    _refuse_instances(n, "processing_instance_count", f"runs the step {n} times, each on the full input and uploading to the same outputs")
    inputs = [_processing_input(port, job.inputs[port], contract.inputs[port]) for port in contract.inputs if port in job.inputs]
    inputs.append(_processing_input(CODE_INPUT, s.code_uri, PROCESSING_CODE_DIR))
    outputs = [
        {"OutputName": port, "S3Output": {"S3Uri": join([*job.output_parts, port], "/"), "LocalPath": path, "S3UploadMode": "EndOfJob"}}
        for port, path in contract.outputs.items()
    ]
    arguments: dict[str, Any] = {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": parameter(PROCESSING_INSTANCE_TYPE),
                "InstanceCount": s.processing_instance_count,
                "VolumeSizeInGB": s.processing_volume_gb,
            }
        },
        "AppSpecification": {"ImageUri": s.image_uri, "ContainerEntrypoint": processing_entrypoint(contract.entry_point)},
        "RoleArn": s.role_arn,
        "ProcessingInputs": inputs,
        "StoppingCondition": {"MaxRuntimeInSeconds": s.processing_max_runtime},
    }
    if job.arguments:  # SageMaker refuses an empty list
        arguments["AppSpecification"]["ContainerArguments"] = list(job.arguments)
    if outputs:
        arguments["ProcessingOutputConfig"] = {"Outputs": outputs}
    if job.environment:
        arguments["Environment"] = dict(job.environment)
    step = _step(job, "Processing", arguments) | step_options(job)
    if job.property_files:
        step["PropertyFiles"] = list(job.property_files)
    return step


def _processing_input(name: str, uri: Value, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def processing_output(step: str, port: str) -> Expression:
    return step_property(step, f"ProcessingOutputConfig.Outputs['{port}'].S3Output.S3Uri")


def training_step(job: SageMakerJob) -> dict[str, Any]:
    """A Training step: the code archive as a channel, the contract's env vars in Environment, the config as hyperparameters.

    The job runs the same unpack-and-exec entrypoint as a processing job (container.py), so the
    image needs no bootstrap of its own; HyperParameters hold only the step's config (what tuning varies).
    """
    s, contract = job.settings, job.contract
    n = s.training_instance_count
    if contract.launcher is None:
        _refuse_instances(
            n,
            "training_instance_count",
            f"runs {n} independent trainings that overwrite each other's checkpoints; this step's contract declares no launcher",
        )
    launcher = contract.launcher if n > 1 else None  # one instance runs the script itself, as before
    channels = [_channel(channel_name(contract, port), job.inputs[port]) for port in contract.inputs if port in job.inputs]
    channels.append(_channel(CODE_INPUT, s.code_uri))
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": s.training_max_runtime}
    if s.spot:
        stopping["MaxWaitTimeInSeconds"] = s.spot_max_wait
    algorithm: dict[str, Any] = {
        "TrainingImage": s.image_uri,
        "TrainingInputMode": "File",
        "ContainerEntrypoint": code_entrypoint(contract.entry_point, TRAINING_CODE_DIR, with_arguments=False, launcher=launcher),
    }
    if s.metric_definitions:
        algorithm["MetricDefinitions"] = [{"Name": name, "Regex": regex} for name, regex in sorted(s.metric_definitions.items())]
        algorithm["EnableSageMakerMetricsTimeSeries"] = True
    arguments: dict[str, Any] = {
        "AlgorithmSpecification": algorithm,
        "RoleArn": s.role_arn,
        "HyperParameters": job.hyperparameters,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": join(list(job.output_parts), "/")},
        "ResourceConfig": {
            "InstanceType": parameter(TRAINING_INSTANCE_TYPE),
            "InstanceCount": s.training_instance_count,
            "VolumeSizeInGB": s.training_volume_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": s.spot,
    }
    if job.environment:
        arguments["Environment"] = dict(job.environment)
    if contract.checkpoint_path:
        prefix = f"s3://{s.bucket}/{s.prefix}/{job.pipeline}/checkpoints/{job.name}"
        uri = checkpoint_uri(prefix, cache_key_attributes("Training", arguments), job.upstream_cache_keys)
        arguments["CheckpointConfig"] = {"S3Uri": uri, "LocalPath": CHECKPOINTS}
    return _step(job, "Training", arguments) | step_options(job)


def _refuse_instances(count: int, setting: str, consequence: str) -> None:
    """More than one instance of a job without a launcher is not one computation spread out: refuse it."""
    if count > 1:
        raise PipelineError(
            f"{setting} is {count}: SageMaker {consequence}",
            hint=f"set {setting} to 1 (SKYOPS_SAGEMAKER_{setting.upper()})",
        )


def channel_name(contract: ScriptContract, port: str) -> str:
    """The channel of a training input: its folder under /opt/ml/input/data."""
    path = contract.inputs[port]
    name = path.removeprefix(TRAINING_CHANNELS + "/")
    if "/" in name or name == path:
        raise PipelineError(f"training input {port!r} at {path}: SageMaker mounts channels only as {TRAINING_CHANNELS}/<channel>")
    if name == CODE_INPUT:
        raise PipelineError(f"training input {port!r} uses channel {CODE_INPUT!r}, which carries skyops' code archive; rename it")
    if not _CHANNEL.fullmatch(name):
        raise PipelineError(f"training input {port!r} at {path}: SageMaker channel names are 1-64 letters, digits, '.', '-' and '_'")
    return name


def _channel(name: str, uri: Value) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}},
        "InputMode": "File",
    }


def training_output(step: str, port: str, contract: ScriptContract) -> Value:
    """What a consumer of a training job's output receives: model.tar.gz, or output.tar.gz of /opt/ml/output/data."""
    path = contract.outputs[port]
    if path == TRAINING_MODEL:
        return step_property(step, "ModelArtifacts.S3ModelArtifacts")
    if path == TRAINING_OUTPUT:
        output_path = step_property(step, "OutputDataConfig.S3OutputPath")
        return join([output_path, "/", step_property(step, "TrainingJobName"), "/output/output.tar.gz"])
    raise PipelineError(
        f"step {step!r} output {port!r} at {path}: a training job uploads only {TRAINING_MODEL} and {TRAINING_OUTPUT}",
        hint="declare the output at one of those two paths",
    )


def register_model_step(
    name: str,
    settings: SageMakerSettings,
    *,
    group: Value,
    status: str,
    model_data: Value,
    metrics: Value | None,
    metadata: Mapping[str, Value],
    description: str,
) -> dict[str, Any]:
    """A RegisterModel step: a new version of `group` with approval status `status`, its metrics and metadata."""
    arguments: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [{"Image": settings.image_uri, "ModelDataUrl": model_data}],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": RESPONSE_TYPES,
            "SupportedRealtimeInferenceInstanceTypes": list(settings.inference_instance_types),
            "SupportedTransformInstanceTypes": list(settings.transform_instance_types),
        },
        "ModelPackageDescription": description,
    }
    if metrics is not None:
        arguments["ModelMetrics"] = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics}}}
    if metadata:
        arguments["CustomerMetadataProperties"] = dict(metadata)
    return {"Name": name, "Type": "RegisterModel", "Arguments": arguments}
