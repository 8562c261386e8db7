"""Settings of the SageMaker engine: where artifacts go, which image, role and instances run the jobs.

Every value can come from the command line or from `SKYOPS_SAGEMAKER_<FIELD>` in the environment
(`SKYOPS_SAGEMAKER_BUCKET`, `SKYOPS_SAGEMAKER_TRAINING_INSTANCE_TYPE`, ...). Settings are frozen
and checked when made: one ConfigError lists every problem, each with the option or variable
that fixes it.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from skyops.errors import ConfigError, problems_error
from skyops.pipeline.config import coerce
from skyops.pipeline.contract import UNBOUND_INPUT

ENV_PREFIX = "SKYOPS_SAGEMAKER_"
REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")  # fallbacks for the region, in botocore's order

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ECR_REGION = re.compile(r"\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com")
_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")  # ISO 8601
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")


@dataclass(frozen=True, kw_only=True)
class SageMakerSettings:
    """Where and how the compiled pipeline runs. Times in seconds, volumes in GB.

    Args:
        bucket: S3 bucket of code, step outputs and checkpoints.
        role_arn: IAM role the pipeline and its jobs run as.
        region: AWS region of the pipeline; picks the image from `image_uris`.
        image_uris: region -> URI of the skyops image (docker/Dockerfile), pushed to ECR in that region.
        prefix: S3 key prefix: outputs under s3://{bucket}/{prefix}/{pipeline}/, code under {prefix}/code/.
        code_key: S3 key of the code archive, `{prefix}/code/<sha256>/sourcedir.tar.gz` (see archive.py).
        processing_instance_count, training_instance_count: instances per job, compile-time settings
            (not parameters). The compiler refuses more than 1 processing instance, and more than 1
            training instance for a step whose contract declares no launcher: N instances would each
            run the whole step over the same outputs and checkpoints (docs/training-scale.md).
        spot: managed spot training. A definition-time choice: SageMaker refuses MaxWaitTimeInSeconds
            without spot and a definition cannot drop a field at run time.
        cache_expire_after: ISO 8601 duration a cached step result stays reusable, e.g. "P30D".
        retry_attempts: attempts of a job that failed for SageMaker's own reasons (internal error, capacity).
        metric_definitions: metric name -> regex over a training job's log, first group is the value.
    """

    bucket: str
    role_arn: str
    region: str
    image_uris: Mapping[str, str]
    prefix: str = "skyops"
    code_key: str = ""
    processing_instance_type: str = "ml.m5.xlarge"
    processing_instance_count: int = 1
    processing_volume_gb: int = 30
    processing_max_runtime: int = 4 * 3600
    training_instance_type: str = "ml.g4dn.xlarge"
    training_instance_count: int = 1
    training_volume_gb: int = 50
    training_max_runtime: int = 24 * 3600
    spot: bool = False
    spot_max_wait: int = 48 * 3600
    cache_enabled: bool = True
    cache_expire_after: str = "P30D"
    retry_attempts: int = 3
    retry_interval: int = 60
    retry_backoff: float = 2.0
    inference_instance_types: tuple[str, ...] = ("ml.m5.large", "ml.c5.xlarge", "ml.g4dn.xlarge")
    transform_instance_types: tuple[str, ...] = ("ml.m5.large",)
    metric_definitions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_uris", MappingProxyType(dict(self.image_uris)))
        object.__setattr__(self, "metric_definitions", MappingProxyType(dict(self.metric_definitions)))
        problems = self._problems()
        if problems:
            raise problems_error(ConfigError, "SageMaker settings", problems, hint=_HINT)

    @property
    def image_uri(self) -> str:
        return self.image_uris[self.region]

    @property
    def code_uri(self) -> str:
        return f"s3://{self.bucket}/{self.code_key}"

    @property
    def unbound_key(self) -> str:
        """S3 key of the unbound marker (sources.py): the one object under `unbound_uri`, uploaded by `upsert`."""
        return f"{self.prefix}/unbound/{UNBOUND_INPUT}"

    @property
    def unbound_uri(self) -> str:
        """The prefix an input reads when its source found nothing: it holds only the marker."""
        return f"s3://{self.bucket}/{self.prefix}/unbound/"

    def _problems(self) -> list[str]:
        problems = []
        if not _BUCKET.match(self.bucket):
            problems.append(f"bucket {self.bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')")
        if not _ROLE.match(self.role_arn):
            problems.append(f"role_arn {self.role_arn!r} is not an IAM role ARN like arn:aws:iam::123456789012:role/skyops-sagemaker")
        if not _REGION.match(self.region):
            problems.append(f"region {self.region!r} is not an AWS region like eu-west-1")
        elif self.region not in self.image_uris:
            problems.append(f"no image for region {self.region} (images for: {', '.join(sorted(self.image_uris)) or 'none'})")
        for region, uri in sorted(self.image_uris.items()):
            ecr = _ECR_REGION.search(uri)
            if ecr and ecr.group(1) != region:
                problems.append(f"image for {region} is in ECR of {ecr.group(1)} ({uri}); SageMaker pulls images from its own region")
        if not _PREFIX.match(self.prefix):
            problems.append(f"prefix {self.prefix!r} must be S3 key parts joined by '/', without leading or trailing '/'")
        if self.code_key.startswith("/"):
            problems.append(f"code_key {self.code_key!r} must not start with '/'")
        for name in ("processing_instance_type", "training_instance_type"):
            if not getattr(self, name).startswith("ml."):
                problems.append(f"{name} {getattr(self, name)!r} is not a SageMaker instance type like ml.m5.xlarge")
        for name in ("processing_instance_count", "training_instance_count", "processing_volume_gb", "training_volume_gb"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.spot and self.spot_max_wait < self.training_max_runtime:
            problems.append(f"spot_max_wait ({self.spot_max_wait} s) must be >= training_max_runtime ({self.training_max_runtime} s)")
        if not _DURATION.match(self.cache_expire_after):
            problems.append(f"cache_expire_after {self.cache_expire_after!r} is not an ISO 8601 duration like P30D or PT12H")
        if not 1 <= self.retry_attempts <= 20:
            problems.append(f"retry_attempts must be in 1..20 (SageMaker's cap), got {self.retry_attempts}")
        for name, regex in sorted(self.metric_definitions.items()):
            try:
                if re.compile(regex).groups < 1:
                    problems.append(f"metric {name!r}: regex {regex!r} has no group to capture the value")
            except re.error as e:
                problems.append(f"metric {name!r}: regex {regex!r} does not compile: {e}")
        return problems


_HINT = "set them with the command's options or SKYOPS_SAGEMAKER_<NAME> variables (see docs/sagemaker.md)"
_REQUIRED = {
    "bucket": "--bucket or SKYOPS_SAGEMAKER_BUCKET",
    "role_arn": "--role-arn or SKYOPS_SAGEMAKER_ROLE_ARN",
    "region": "--region, SKYOPS_SAGEMAKER_REGION, AWS_REGION or AWS_DEFAULT_REGION",
    "image_uris": "--image-uri, SKYOPS_SAGEMAKER_IMAGE_URI (this region) or SKYOPS_SAGEMAKER_IMAGE_URIS (JSON: region -> URI)",
}


def settings_from_env(environ: Mapping[str, str], given: Mapping[str, Any] | None = None) -> SageMakerSettings:
    """Settings from explicit values (command-line options; None = not given) over `SKYOPS_SAGEMAKER_*`.

    `image_uri` (one URI, for the settings' region) is accepted besides `image_uris`.

    Raises:
        ConfigError: listing every missing or malformed value and where to set it.
    """
    given = {k: v for k, v in (given or {}).items() if v is not None}
    hints = typing.get_type_hints(SageMakerSettings)
    names = [f.name for f in dataclasses.fields(SageMakerSettings)]
    values: dict[str, Any] = {}
    problems = [f"unknown setting {k!r}" for k in given if k not in names and k != "image_uri"]
    for name in names:
        raw = given.get(name, environ.get(ENV_PREFIX + name.upper()))
        if raw is None:
            continue
        try:
            values[name] = coerce(raw, hints[name])
        except ValueError as e:
            problems.append(f"{name} ({ENV_PREFIX + name.upper()}): {e}")
    if "region" not in values and (region := next((environ[e] for e in REGION_ENVS if environ.get(e)), None)):
        values["region"] = region
    single = given.get("image_uri", environ.get(ENV_PREFIX + "IMAGE_URI"))
    if single and "region" in values:
        values["image_uris"] = {**values.get("image_uris", {}), values["region"]: str(single)}
    problems += [f"{name} is not set: use {where}" for name, where in _REQUIRED.items() if name not in values]
    if problems:
        raise problems_error(ConfigError, "SageMaker settings", problems, hint=_HINT)
    return SageMakerSettings(**values)
