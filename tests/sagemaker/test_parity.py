"""Same pipeline, two engines: every job in the definition sees exactly what its contract and the local engine give it.

The registration's decision itself is compared on both engines in test_registration.py."""

from __future__ import annotations

from typing import Any

import pytest

from skyops.pipeline.builders import builder_for
from skyops.pipeline.config import to_argument
from skyops.pipeline.contract import REGISTRY_ENV, RUN_CONTEXT_ENV, JobKind
from skyops.pipeline.definition import Pipeline, StepNode
from skyops.pipeline.sagemaker.compile import infrastructure_parameters, run_context
from skyops.pipeline.sagemaker.container import CODE_INPUT, TRAINING_CODE_DIR, code_entrypoint
from skyops.pipeline.sagemaker.expressions import as_string
from skyops.pipeline.sagemaker.render import ENGINE
from skyops.pipeline.sagemaker.sources import source_parameters
from skyops.pipeline.wiring import Edge, ExternalRef, ParamRef

from .checks import all_steps
from .conftest import SETTINGS

DRONE_STEPS = ("ingest", "validate", "profile", "split", "train", "evaluate", "register")


def job(definition: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in all_steps(definition["Steps"]) if s["Name"] == name)


def local_arguments(drone: Pipeline, node: StepNode) -> tuple[str, ...]:
    """The argv the local engine passes: the builder's local task for the default parameters."""
    config = node.resolved_config(drone.defaults())
    return builder_for(node.definition.contract).local_task(node.definition, config, {}, {}, None).argv


def sagemaker_arguments_with_defaults(drone: Pipeline, arguments: list[Any]) -> tuple[str, ...]:
    """The definition's arguments, each parameter expression replaced by the parameter's default."""
    expressions = {repr(as_string(p)): to_argument(p.default) for p in drone.parameters}
    return tuple(a if isinstance(a, str) else expressions[repr(a)] for a in arguments)


def left_out(drone: Pipeline, edge: Edge) -> bool:
    """An input bound to a parameter whose default is "": unbound locally, absent from the definition."""
    source = edge.source
    return isinstance(source, ExternalRef) and isinstance(source.location, ParamRef) and drone.defaults()[source.location.name] == ""


def expected_environment(drone: Pipeline, node: StepNode) -> dict[str, Any]:
    """The run context, the pipeline's env, the contract's defaults; and the engine's own value where the local engine sets one too."""
    contract = node.definition.contract
    context = run_context(node.name)
    engine = {REGISTRY_ENV: ENGINE} if contract.job_kind is JobKind.REGISTRATION else {}
    assert set(engine) == set(builder_for(contract).local_env)  # the local engine sets the same variables, to "local"
    given = {**drone.env, **node.env}
    return {name: engine.get(name, context.get(name, given.get(name, contract.optional_env.get(name)))) for name in contract.env_names}


def test_parameters_keep_names_types_and_defaults(definition: dict[str, Any], drone: Pipeline) -> None:
    compiled = {p["Name"]: (p["Type"].lower(), p["DefaultValue"]) for p in definition["Parameters"]}
    local = {p.name: (str(p.type), p.default) for p in drone.parameters}
    extra = {p.name: (str(p.type), p.default) for p in (*infrastructure_parameters(drone, SETTINGS), *source_parameters(drone, SETTINGS))}
    assert compiled == {**local, **extra}
    assert set(local).isdisjoint(extra)


@pytest.mark.parametrize("name", DRONE_STEPS)
def test_arguments_equal_the_local_engines(definition: dict[str, Any], drone: Pipeline, name: str) -> None:
    node, compiled = drone.step(name), job(definition, name)
    if node.definition.contract.job_kind is JobKind.TRAINING:
        arguments = [x for k, v in sorted(compiled["Arguments"]["HyperParameters"].items()) for x in (f"--{k}", v)]
    else:
        arguments = compiled["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert sagemaker_arguments_with_defaults(drone, arguments) == local_arguments(drone, node)


@pytest.mark.parametrize("name", DRONE_STEPS)
def test_container_paths_and_environment_are_the_contracts(definition: dict[str, Any], drone: Pipeline, name: str) -> None:
    node, arguments = drone.step(name), job(definition, name)["Arguments"]
    contract = node.definition.contract
    bound = {e.port for e in drone.inputs_of(name) if not left_out(drone, e)}
    if contract.job_kind is JobKind.TRAINING:
        channels = {
            c["ChannelName"]: f"/opt/ml/input/data/{c['ChannelName']}"
            for c in arguments["InputDataConfig"]
            if c["ChannelName"] != CODE_INPUT
        }
        assert channels == {port: contract.inputs[port] for port in bound}
        assert arguments["CheckpointConfig"]["LocalPath"] == contract.checkpoint_path
        assert set(contract.outputs.values()) == {"/opt/ml/model"}  # uploaded as ModelArtifacts
        entrypoint = arguments["AlgorithmSpecification"]["ContainerEntrypoint"]
        assert entrypoint == code_entrypoint(contract.entry_point, TRAINING_CODE_DIR, with_arguments=False)
        assert f"python -m {contract.entry_point}" in entrypoint[2] and f"{TRAINING_CODE_DIR}/sourcedir.tar.gz" in entrypoint[2]
        environment = arguments["Environment"]
    else:
        inputs = {i["InputName"]: i["S3Input"]["LocalPath"] for i in arguments["ProcessingInputs"] if i["InputName"] != CODE_INPUT}
        assert inputs == {port: contract.inputs[port] for port in bound}
        outputs = {o["OutputName"]: o["S3Output"]["LocalPath"] for o in arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])}
        assert outputs == dict(contract.outputs)
        assert f"python -m {contract.entry_point} " in arguments["AppSpecification"]["ContainerEntrypoint"][2]
        environment = arguments.get("Environment", {})
    assert environment == expected_environment(drone, node)
    assert set(environment) == set(contract.env_names)


def test_training_job_gets_its_run_context_in_environment_and_only_its_config_as_hyperparameters(
    definition: dict[str, Any], drone: Pipeline
) -> None:
    arguments = job(definition, "train")["Arguments"]
    assert arguments["Environment"] == {
        "SKYOPS_RUN_ID": "",  # the step runtime fills in the training job's name
        "SKYOPS_STATE_DIR": "/tmp/skyops",
        "SKYOPS_STEP_NAME": "train",
        "SKYOPS_TRACKING_URI": "",
        "SKYOPS_USER": "sagemaker-pipeline",  # who trains: the job's user (IAM decided who may start the pipeline)
    }
    config = drone.step("train").resolved_config(drone.defaults())
    assert set(arguments["HyperParameters"]) == {f.removeprefix("--") for f in local_arguments(drone, drone.step("train"))[::2]}
    assert set(arguments["HyperParameters"]) == set(vars(config))
    assert set(run_context("x")) == set(RUN_CONTEXT_ENV)
