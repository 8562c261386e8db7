"""botocore's length, pattern and enum constraints: each class of bad value is caught with its member path; Java patterns compile."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from skyops.pipeline.definition import Pipeline
from skyops.pipeline.sagemaker import compile_pipeline

from .checks import OPERATIONS, _sagemaker_model, all_steps, parameter_defaults, request_errors, request_shape
from .conftest import SETTINGS
from .constraints import constraint_problems, python_pattern


def job(definition: dict[str, Any], name: str) -> dict[str, Any]:
    return copy.deepcopy(next(s for s in all_steps(definition["Steps"]) if s["Name"] == name))


def test_too_long_a_name_is_caught(definition: dict[str, Any]) -> None:
    train = job(definition, "train")
    train["Arguments"]["InputDataConfig"][0]["ChannelName"] = "c" * 65
    assert request_errors(train) == f"InputDataConfig[0].ChannelName: '{'c' * 56}... has 65 characters; botocore's ChannelName takes 1..64"


def test_a_pattern_violation_is_caught(definition: dict[str, Any]) -> None:
    train = job(definition, "train")
    train["Arguments"]["InputDataConfig"][0]["ChannelName"] = "split data"
    train["Arguments"]["RoleArn"] = "arn:aws:iam::123456789012:user/someone"
    assert request_errors(train).splitlines() == [
        r"InputDataConfig[0].ChannelName: 'split data' does not match botocore's ChannelName pattern [A-Za-z0-9\.\-_]+",
        r"RoleArn: 'arn:aws:iam::123456789012:user/someone' does not match botocore's RoleArn pattern "
        r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+",
    ]


def test_a_bad_enum_value_is_caught(definition: dict[str, Any]) -> None:
    ingest = job(definition, "ingest")
    ingest["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3DataType"] = "S3Folder"
    assert request_errors(ingest) == (
        "ProcessingInputs[0].S3Input.S3DataType: 'S3Folder' is not one of the values of botocore's ProcessingS3DataType"
    )


def test_a_parameter_default_feeding_a_member_is_checked(drone: Pipeline) -> None:
    compiled = compile_pipeline(drone, SETTINGS, {"ProcessingInstanceType": "ml.m5.huge"})
    assert request_errors(job(compiled, "ingest"), parameter_defaults(compiled)) == (
        "ProcessingResources.ClusterConfig.InstanceType: 'ml.m5.huge' (the default of parameter ProcessingInstanceType) "
        "is not one of the values of botocore's ProcessingInstanceType"
    )
    assert request_errors(job(compiled, "ingest")) == ""  # without the defaults the expression is not checked


def test_a_join_of_parameters_is_checked_with_their_defaults(definition: dict[str, Any]) -> None:
    ingest = job(definition, "ingest")
    ingest["Arguments"]["AppSpecification"]["ContainerArguments"][1] = {
        "Std:Join": {"On": "-", "Values": ["x" * 250, {"Get": "Parameters.seed"}, "abcdef"]}
    }
    assert request_errors(ingest, {"seed": 0}) == (
        f"AppSpecification.ContainerArguments[1]: '{'x' * 56}... (with the parameters' defaults) has 259 characters; "
        "botocore's ContainerArgument takes 0..256"
    )


def test_values_known_only_at_run_time_are_not_checked(definition: dict[str, Any]) -> None:
    train = job(definition, "train")
    assert "Steps.split" in str(train["Arguments"]["InputDataConfig"][0]["DataSource"]) and "Execution." in str(
        train["Arguments"]["OutputDataConfig"]
    )
    assert request_errors(train, parameter_defaults(definition)) == ""


def test_counts_and_numbers_are_checked_against_their_bounds(definition: dict[str, Any]) -> None:
    train = job(definition, "train")
    train["Arguments"]["StoppingCondition"]["MaxRuntimeInSeconds"] = 0
    train["Arguments"]["HyperParameters"] = {f"h{i}": "1" for i in range(101)}
    assert request_errors(train).splitlines()[-2:] == [
        "HyperParameters: {'h0': '1', 'h1': '1', 'h2': '1', 'h3': '1', 'h4': '1', '... has 101 entries; "
        "botocore's HyperParameters takes 0..100",
        "StoppingCondition.MaxRuntimeInSeconds: 0 is outside botocore's MaxRuntimeInSeconds range >= 1",
    ]


def _patterns() -> list[str]:
    """Every pattern of the request shapes the compiler targets."""
    found: set[str] = set()
    seen: set[str] = set()

    def walk(shape: Any) -> None:
        if shape.name in seen:
            return
        seen.add(shape.name)
        if "pattern" in shape.metadata:
            found.add(shape.metadata["pattern"])
        for child in {
            "structure": lambda: shape.members.values(),
            "list": lambda: [shape.member],
            "map": lambda: [shape.key, shape.value],
        }.get(shape.type_name, lambda: [])():
            walk(child)

    for operation, _ in OPERATIONS.values():
        walk(request_shape(operation))
    return sorted(found)


def test_every_pattern_of_the_request_shapes_compiles() -> None:
    patterns = _patterns()
    assert len(patterns) > 30 and any(r"\p{" in p for p in patterns)
    assert _sagemaker_model().service_name == "sagemaker"
    for pattern in patterns:
        re.compile(python_pattern(pattern))


@pytest.mark.parametrize(
    ("java", "matches", "refuses"),
    [
        (r"[\p{L}\p{M}\p{Z}\p{S}\p{N}\p{P}]*", ["Détection 10 €, ok.", "数据"], ["tab\there", "\x00"]),
        (r"([\p{L}\p{Z}\p{N}_.:\/=+\-@]*)${1,128}", ["skyops:pipeline", "a b"], ["a,b", "x!"]),
        (
            r"arn:[\p{Alnum}\-]+:lambda:[\p{Alnum}\-]+:[0-9]{12}:function:.*",
            ["arn:aws:lambda:eu-west-1:123456789012:function:f"],
            ["arn:awsé:lambda:x:123456789012:function:f"],
        ),
        (r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*", ["plain text\t", "emoji \U0001f600"], ["\x01", "\ufffe"]),
        (r"\p{Print}+", ["drone-detector-invocations-per-instance", "a b~"], ["tab\there", "é"]),  # PutScalingPolicy's PolicyName
        (  # Budgets' BudgetName: an inline flag in the middle of a lookahead
            "^(?![^:\\\\]*/action/|(?i).*<script>.*</script>.*)[^:\\\\]+$",
            ["skyops-dev-monthly", "a <b>"],
            ["x<SCRIPT>y</Script>z", "a:b", "p/action/q"],
        ),
    ],
)
def test_java_patterns_mean_the_same_in_python(java: str, matches: list[str], refuses: list[str]) -> None:
    pattern = re.compile(python_pattern(java))
    assert [bool(pattern.fullmatch(v)) for v in matches + refuses] == [True] * len(matches) + [False] * len(refuses)


def test_constraints_walk_a_whole_request(definition: dict[str, Any]) -> None:
    shape = request_shape("CreateProcessingJob")
    assert constraint_problems(job(definition, "ingest")["Arguments"], shape, "", parameter_defaults(definition)) == []
