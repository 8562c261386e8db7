"""A SageMaker environment's settings: defaults, every type and range problem named with its key path at once,
and the rules between fields."""

from __future__ import annotations

from typing import Any

import pytest

from skyops.targets import Alarms, Autoscaling, Canary, Capture, SageMakerTarget, parse_sagemaker

SMALLEST = {"endpoint": "drone-detector-staging", "capture": {"s3_uri": "s3://skyops-capture/staging"}}


def parsed(value: Any) -> tuple[SageMakerTarget | None, list[str]]:
    problems: list[str] = []
    return parse_sagemaker(value, problems), problems


def test_an_endpoint_and_a_capture_place_are_enough() -> None:
    target, problems = parsed(SMALLEST)
    assert problems == []
    assert target == SageMakerTarget(
        endpoint="drone-detector-staging",
        capture=Capture(s3_uri="s3://skyops-capture/staging", percentage=20),
        role_arn=None,
        instance_type="ml.m5.large",
        instance_count=1,
        canary=Canary(size_percent=25, wait_seconds=300, termination_wait_seconds=300, max_execution_seconds=3600),
        alarms=Alarms(max_5xx_rate=0.01, max_latency_ms=1000.0, period_seconds=60, evaluation_periods=2),
        autoscaling=Autoscaling(min_instances=1, max_instances=2, target_invocations_per_instance=100.0),
    )


def test_every_value_is_checked_and_every_problem_named_at_once() -> None:
    target, problems = parsed(
        {
            "endpoint": "drone_detector!",
            "role_arn": "arn:aws:iam::123456789012:user/alice",
            "instance_type": "m5.large",
            "instance_count": True,
            "capture": {"s3_uri": "/local/capture", "percentage": 101, "every": 2},
            "canary": {"size_percent": 60, "wait_seconds": "300"},
            "alarms": {"max_5xx_rate": 0, "max_latency_ms": float("nan"), "period_seconds": 45, "evaluation_periods": 0},
            "autoscaling": {"min_instances": 0, "target_invocations_per_instance": -1},
            "instances": 3,
        }
    )
    assert target is None
    assert sorted(problems) == [
        "sagemaker.alarms.evaluation_periods: 0 is not an integer from 1 to 1440",
        "sagemaker.alarms.max_5xx_rate: 0 is not a number above 0 and up to 1",
        "sagemaker.alarms.max_latency_ms: nan is not a number above 0 and up to 3.6e+06",
        "sagemaker.alarms.period_seconds: 45 is not 10, 30 or a multiple of 60 (CloudWatch's alarm periods, in seconds)",
        "sagemaker.autoscaling.min_instances: 0 is not an integer from 1 to 100",
        "sagemaker.autoscaling.target_invocations_per_instance: -1 is not a number above 0 and up to 1e+06",
        "sagemaker.canary.size_percent: 60 is not an integer from 1 to 50",
        "sagemaker.canary.wait_seconds: '300' is not an integer from 0 to 3600",
        "sagemaker.capture.percentage: 101 is not an integer from 0 to 100",
        "sagemaker.capture.s3_uri: '/local/capture' is not an S3 URI s3://bucket/prefix (512 characters at most)",
        "sagemaker.capture: unknown key 'every'; expected s3_uri, percentage",
        "sagemaker.endpoint: 'drone_detector!' is not a SageMaker endpoint name: letters, digits and inner hyphens, 40 at most",
        "sagemaker.instance_count: True is not an integer from 1 to 100",
        "sagemaker.instance_type: 'm5.large' is not a SageMaker instance type, e.g. ml.m5.large",
        "sagemaker.role_arn: 'arn:aws:iam::123456789012:user/alice' is not an IAM role ARN, arn:aws:iam::<account>:role/<name>",
        "sagemaker: unknown key 'instances'; expected endpoint, role_arn, instance_type, instance_count, capture, canary, alarms, autoscaling",
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            None,
            "sagemaker: expected a mapping with keys endpoint, role_arn, instance_type, instance_count, capture, canary, alarms, autoscaling, found nothing",
        ),
        ({"endpoint": "e"}, "sagemaker: missing key 'capture'"),
        ({**SMALLEST, "capture": {}}, "sagemaker.capture: missing key 's3_uri'"),
        ({**SMALLEST, "canary": [1]}, "sagemaker.canary: [1] is not a mapping"),
        (
            {**SMALLEST, "endpoint": "e" * 41},
            f"sagemaker.endpoint: {'e' * 41!r} is not a SageMaker endpoint name: letters, digits and inner hyphens, 40 at most",
        ),
    ],
)
def test_a_missing_or_misshapen_section_is_one_line(value: Any, problem: str) -> None:
    assert parsed(value) == (None, [problem])


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            {"canary": {"wait_seconds": 600, "termination_wait_seconds": 300, "max_execution_seconds": 900}},
            "sagemaker.canary.max_execution_seconds 900 must exceed wait_seconds + termination_wait_seconds (900): SageMaker rolls back "
            "a deployment that outlasts it",
        ),
        (
            {"alarms": {"period_seconds": 3600, "evaluation_periods": 25}},
            "sagemaker.alarms: period_seconds x evaluation_periods is 90000 s; CloudWatch evaluates one day at most (86400 s)",
        ),
        ({"autoscaling": {"min_instances": 3, "max_instances": 2}}, "sagemaker.autoscaling.min_instances 3 exceeds max_instances 2"),
        ({"instance_count": 5}, "sagemaker.instance_count 5 lies outside autoscaling's 1..2 instances"),
    ],
)
def test_rules_between_fields(extra: dict[str, Any], problem: str) -> None:
    assert parsed({**SMALLEST, **extra}) == (None, [problem])


def test_capture_off_and_whole_numbers_for_floats() -> None:
    target, problems = parsed({**SMALLEST, "capture": {"s3_uri": "s3://b-1/x", "percentage": 0}, "alarms": {"max_latency_ms": 250}})
    assert problems == [] and target is not None
    assert (target.capture.percentage, target.alarms.max_latency_ms, type(target.alarms.max_latency_ms)) == (0, 250.0, float)
