"""Where an environment's desired version is served, and, for a SageMaker endpoint, how (plain data, no AWS).

The registry reads these settings from deploy/environments/<env>.yaml (`skyops.registry.gitops`) and
`skyops.aws.endpoint_deploy` builds its requests from them; neither layer imports the other, so the
settings sit below both.

    target: sagemaker                       # or local (the default: what `skyops deploy apply` did before)
    sagemaker:
      endpoint: drone-detector-production   # required
      instance_type: ml.m5.large
      capture: {percentage: 20, s3_uri: s3://my-bucket/capture/production}
      canary: {size_percent: 25, wait_seconds: 300}
      alarms: {max_5xx_rate: 0.01, max_latency_ms: 1000}
      autoscaling: {min_instances: 1, max_instances: 4, target_invocations_per_instance: 100}

`parse_sagemaker` checks the section's shape: every key known, every value of its type (a YAML
`true` is not a number, `"3"` is not an integer) and in its range, and the few rules between
fields (the canary fits in the deployment's time limit, the first instance count lies within the
scaling range). Every problem is named with its key path, all at once. What only AWS can tell (an
instance type SageMaker has, the package version's ARN and model data) is checked by `skyops.aws.endpoint_plan`.

The ranges are SageMaker's, CloudWatch's and Application Auto Scaling's own where they have one
(botocore's request shapes: a canary wait of 0-3600 s, a deployment of 600-28800 s, a sampling
percentage of 0-100); the endpoint name is kept to 40 characters so that the model and endpoint
config names derived from it (`<endpoint>-v<version>-<hash>`) stay within SageMaker's 63.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,39}")  # SageMaker's EntityName, 40 characters at most (see above)
ROLE_ARN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")  # botocore's RoleArn pattern
INSTANCE_TYPE = re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9]+")  # e.g. ml.m5.large; the list of real ones is botocore's
S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?")  # a bucket name, then an optional key prefix
MAX_S3_URI = 512  # botocore's DestinationS3Uri


class Target(StrEnum):
    LOCAL = "local"  # the local registry's alias (and, later, a local server)
    SAGEMAKER = "sagemaker"  # a SageMaker real-time endpoint


@dataclass(frozen=True, kw_only=True)
class Capture:
    """SageMaker's data capture: `percentage` of requests and responses written as JSON Lines under `s3_uri`."""

    s3_uri: str
    percentage: int = 20  # 0 turns capture off


@dataclass(frozen=True, kw_only=True)
class Canary:
    """Blue/green with canary traffic shifting: `size_percent` of the new fleet takes traffic for `wait_seconds`
    (the baking period) while the alarms watch; then all of it, and the old fleet ends `termination_wait_seconds` later."""

    size_percent: int = 25  # SageMaker: at most 50% of the fleet
    wait_seconds: int = 300
    termination_wait_seconds: int = 300
    max_execution_seconds: int = 3600  # the whole deployment; longer and SageMaker rolls back


@dataclass(frozen=True, kw_only=True)
class Alarms:
    """The CloudWatch alarms that roll a deployment back, over the endpoint's variant (old and new fleet together)."""

    max_5xx_rate: float = 0.01  # Average of Invocation5XXErrors: the share of requests answered 5xx
    max_latency_ms: float = 1000.0  # Average ModelLatency (CloudWatch counts it in microseconds)
    period_seconds: int = 60
    evaluation_periods: int = 2  # consecutive periods over the threshold before the alarm fires


@dataclass(frozen=True, kw_only=True)
class Autoscaling:
    """Application Auto Scaling target tracking on SageMakerVariantInvocationsPerInstance (invocations per instance per minute)."""

    min_instances: int = 1
    max_instances: int = 2
    target_invocations_per_instance: float = 100.0
    scale_in_cooldown_seconds: int = 300
    scale_out_cooldown_seconds: int = 60


@dataclass(frozen=True, kw_only=True)
class SageMakerTarget:
    """The `sagemaker:` section of an environment file (see the module docstring)."""

    endpoint: str
    capture: Capture
    role_arn: str | None = None  # None: $SKYOPS_SAGEMAKER_ROLE_ARN
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    canary: Canary = Canary()
    alarms: Alarms = Alarms()
    autoscaling: Autoscaling = Autoscaling()


Check = Callable[[Any], str]  # '' when the value is fine, else what was expected
Fields = Mapping[str, tuple[bool, Check]]  # key -> (REQUIRED or OPTIONAL, its check); the defaults are the dataclasses'
REQUIRED, OPTIONAL = True, False


def _mapping(value: Any) -> str:
    return "" if isinstance(value, dict) else "a mapping"


def _text(pattern: re.Pattern[str], expected: str) -> Check:
    return lambda value: "" if isinstance(value, str) and pattern.fullmatch(value) else expected


def _integer(low: int, high: int) -> Check:
    def check(value: Any) -> str:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return "" if ok else f"an integer from {low} to {high}"

    return check


def _number(low: float, high: float) -> Check:
    """A number above `low` (excluded), up to `high`."""

    def check(value: Any) -> str:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low < value <= high  # nan and inf fail it
        return "" if ok else f"a number above {low:g} and up to {high:g}"

    return check


def _period(value: Any) -> str:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value in (10, 30) or (value >= 60 and value % 60 == 0))
    return "" if ok else "10, 30 or a multiple of 60 (CloudWatch's alarm periods, in seconds)"


def _s3_uri(value: Any) -> str:
    ok = isinstance(value, str) and len(value) <= MAX_S3_URI and S3_URI.fullmatch(value) is not None
    return "" if ok else f"an S3 URI s3://bucket/prefix ({MAX_S3_URI} characters at most)"


TOP: Fields = {
    "endpoint": (REQUIRED, _text(ENDPOINT_NAME, "a SageMaker endpoint name: letters, digits and inner hyphens, 40 at most")),
    "role_arn": (OPTIONAL, _text(ROLE_ARN, "an IAM role ARN, arn:aws:iam::<account>:role/<name>")),
    "instance_type": (OPTIONAL, _text(INSTANCE_TYPE, "a SageMaker instance type, e.g. ml.m5.large")),
    "instance_count": (OPTIONAL, _integer(1, 100)),
    "capture": (REQUIRED, _mapping),
    "canary": (OPTIONAL, _mapping),
    "alarms": (OPTIONAL, _mapping),
    "autoscaling": (OPTIONAL, _mapping),
}
SECTIONS: Mapping[str, tuple[type[Any], Fields]] = {
    "capture": (Capture, {"s3_uri": (REQUIRED, _s3_uri), "percentage": (OPTIONAL, _integer(0, 100))}),
    "canary": (
        Canary,
        {
            "size_percent": (OPTIONAL, _integer(1, 50)),
            "wait_seconds": (OPTIONAL, _integer(0, 3600)),
            "termination_wait_seconds": (OPTIONAL, _integer(0, 3600)),
            "max_execution_seconds": (OPTIONAL, _integer(600, 28800)),
        },
    ),
    "alarms": (
        Alarms,
        {
            "max_5xx_rate": (OPTIONAL, _number(0.0, 1.0)),
            "max_latency_ms": (OPTIONAL, _number(0.0, 3_600_000.0)),
            "period_seconds": (OPTIONAL, _period),
            "evaluation_periods": (OPTIONAL, _integer(1, 1440)),
        },
    ),
    "autoscaling": (
        Autoscaling,
        {
            "min_instances": (OPTIONAL, _integer(1, 100)),
            "max_instances": (OPTIONAL, _integer(1, 100)),
            "target_invocations_per_instance": (OPTIONAL, _number(0.0, 1_000_000.0)),
            "scale_in_cooldown_seconds": (OPTIONAL, _integer(0, 86400)),
            "scale_out_cooldown_seconds": (OPTIONAL, _integer(0, 86400)),
        },
    ),
}


def parse_sagemaker(value: Any, problems: list[str]) -> SageMakerTarget | None:
    """The `sagemaker:` section as a SageMakerTarget; None, and a line per problem appended, when it is not one.

    Every section is checked even when another has problems, so one run names them all.
    """
    before = len(problems)
    top = _section(value, "sagemaker", TOP, problems)
    if top is None:
        return None
    built = {
        name: _build(cls, top[name], f"sagemaker.{name}", fields, problems)
        for name, (cls, fields) in SECTIONS.items()
        if isinstance(top.get(name), dict)  # a missing one takes its defaults; anything else was named by the top's check
    }
    if len(problems) > before:
        return None
    target = SageMakerTarget(**{name: given for name, given in top.items() if name not in SECTIONS}, **built)
    problems += _between(target)
    return None if len(problems) > before else target


def _between(target: SageMakerTarget) -> list[str]:
    """The rules between fields, once each field is fine on its own."""
    canary, alarms, scaling = target.canary, target.alarms, target.autoscaling
    found = []
    if canary.max_execution_seconds <= canary.wait_seconds + canary.termination_wait_seconds:
        found.append(
            f"sagemaker.canary.max_execution_seconds {canary.max_execution_seconds} must exceed wait_seconds + "
            f"termination_wait_seconds ({canary.wait_seconds + canary.termination_wait_seconds}): SageMaker rolls back a deployment "
            f"that outlasts it"
        )
    if alarms.period_seconds * alarms.evaluation_periods > 86400:
        found.append(
            f"sagemaker.alarms: period_seconds x evaluation_periods is {alarms.period_seconds * alarms.evaluation_periods} s; "
            f"CloudWatch evaluates one day at most (86400 s)"
        )
    if scaling.min_instances > scaling.max_instances:
        found.append(f"sagemaker.autoscaling.min_instances {scaling.min_instances} exceeds max_instances {scaling.max_instances}")
    elif not scaling.min_instances <= target.instance_count <= scaling.max_instances:
        found.append(
            f"sagemaker.instance_count {target.instance_count} lies outside autoscaling's "
            f"{scaling.min_instances}..{scaling.max_instances} instances"
        )
    return found


def _section(value: Any, path: str, fields: Fields, problems: list[str]) -> dict[str, Any] | None:
    """The values a mapping gives (a problem appended for each missing, unknown or wrong one); None when `value`
    is not a mapping at all."""
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping with keys {', '.join(fields)}, found {_kind(value)}")
        return None
    problems += [f"{path}: unknown key {key!r}; expected {', '.join(fields)}" for key in value if key not in fields]
    problems += [f"{path}: missing key {name!r}" for name, (required, _) in fields.items() if required and name not in value]
    for name, (_, check) in fields.items():
        if name in value and (expected := check(value[name])):
            problems.append(f"{path}.{name}: {value[name]!r} is not {expected}")
    return {name: given for name, given in value.items() if name in fields}


def _build(cls: type[Any], value: Any, path: str, fields: Fields, problems: list[str]) -> Any:
    """A section's dataclass (its own defaults for what is not given), or None when it has problems (they are appended)."""
    before = len(problems)
    values = _section(value, path, fields, problems)
    if values is None or len(problems) > before:
        return None
    floats = {f.name for f in dataclasses.fields(cls) if f.type == "float"}  # a YAML 250 for a float field is 250.0
    return cls(**{name: float(given) if name in floats else given for name, given in values.items()})


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
