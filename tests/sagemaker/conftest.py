"""Small named fixtures of the SageMaker engine tests: fixed settings, the drone pipeline, scratch steps, moto.

The moto server, the AWS config files and the request counter are the AWS tests' own fixtures.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from skyops.pipeline.definition import Pipeline, load_pipeline
from skyops.pipeline.sagemaker import SageMakerSettings, compile_pipeline
from tests.aws.conftest import AwsFiles, MotoServer, aws_files, moto, moto_server  # noqa: F401 - fixtures shared with tests/aws

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
ACCOUNT = "123456789012"
REGION = "eu-west-1"  # the region of profile `ab` in tests/aws/conftest.py
BUCKET = "skyops-artifacts"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/skyops-sagemaker"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/skyops:0.1.0"
CODE_KEY = "skyops/code/0000000000000000000000000000000000000000000000000000000000000000/sourcedir.tar.gz"
SETTINGS = SageMakerSettings(bucket=BUCKET, role_arn=ROLE, region=REGION, image_uris={REGION: IMAGE}, code_key=CODE_KEY)
SAGEMAKER_ENV = {
    "SKYOPS_SAGEMAKER_BUCKET": BUCKET,
    "SKYOPS_SAGEMAKER_ROLE_ARN": ROLE,
    "SKYOPS_SAGEMAKER_REGION": REGION,
    "SKYOPS_SAGEMAKER_IMAGE_URI": IMAGE,
}


@pytest.fixture
def settings() -> SageMakerSettings:
    """Fixed settings; the code key is fixed too, so the golden file does not change with every edit."""
    return SETTINGS


@pytest.fixture(scope="session")
def drone() -> Pipeline:
    return load_pipeline("drone-detection", search=[ROOT / "pipelines"])


@pytest.fixture(scope="session")
def definition(drone: Pipeline) -> dict[str, Any]:
    return compile_pipeline(drone, SETTINGS)


@pytest.fixture
def sagemaker_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """SKYOPS_SAGEMAKER_* for the CLI, and nothing else of that prefix from the developer's shell."""
    import os

    for name in [n for n in os.environ if n.startswith("SKYOPS_SAGEMAKER_")]:
        monkeypatch.delenv(name)
    for name, value in SAGEMAKER_ENV.items():
        monkeypatch.setenv(name, value)
    return dict(SAGEMAKER_ENV)


STEP = """
from dataclasses import dataclass

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec, processing_input, processing_output, training_channel
from skyops.pipeline.catalog import EmptyConfig
from skyops.pipeline.contract import TRAINING_MODEL, Registers
from {package} import CATALOG


@dataclass(frozen=True, kw_only=True)
class RegistrationConfig(StepConfig):
    model_name: str = "toy-model"


SPEC = StepSpec(
    step_type="{name}",
    node_type=NodeType.INTERNAL,
    inputs=tuple(Port(name=n, kind=k) for n, k in {inputs!r}.items()),
    outputs=tuple(Port(name=n, kind=k) for n, k in {outputs!r}.items()),
)
CONTRACT = ScriptContract(
    entry_point="{package}.{name}",
    job_kind=JobKind.{kind},
    inputs={{n: {input_path}(n) for n in {inputs!r}}},
    outputs={outputs_paths},
    required_env={required_env!r},
    optional_env={optional_env!r},
    registers={registers},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config={config})
def main(inputs, outputs, env, args):
    pass
"""


def step_source(
    package: str,
    name: str,
    kind: str,
    inputs: dict[str, str],
    outputs: dict[str, str],
    required_env: tuple[str, ...],
    model_file: str = "",
) -> str:
    """A scratch step's script.py. A training step puts its one output at /opt/ml/model; a registration step
    registers its first input (the model; with `model_file`, that file in it), reading its second (metrics.json)
    and writing decision.json to its output."""
    registers, config, optional_env = "None", "EmptyConfig", {}
    if kind == "REGISTRATION":
        model, metrics = list(inputs)[:2]
        registers = (
            f"Registers(model={model!r}, metrics={metrics!r}, metrics_file='metrics.json', decision={next(iter(outputs))!r}, "
            f"decision_file='decision.json', card_file='card.json', model_name_config='model_name', model_file={model_file!r})"
        )
        config, optional_env = "RegistrationConfig", {"SKYOPS_REGISTRY": "local"}
    if kind == "TRAINING":
        outputs_paths = f"{{{next(iter(outputs))!r}: TRAINING_MODEL}}"
    else:
        outputs_paths = f"{{n: processing_output(n) for n in {outputs!r}}}"
    return STEP.format(
        package=package,
        name=name,
        kind=kind,
        inputs=inputs,
        outputs=outputs,
        input_path="training_channel" if kind == "TRAINING" else "processing_input",
        outputs_paths=outputs_paths,
        required_env=required_env,
        optional_env=optional_env,
        registers=registers,
        config=config,
    )


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """A throw-away step catalog; `add(name, kind, inputs, outputs, required_env, model_file)` adds a step (see `step_source`) and
    returns the package."""
    package = f"smscratch_{tmp_path.name.replace('-', '_')}"
    root = tmp_path / "pkgs"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("from skyops.pipeline.catalog import Catalog\n\nCATALOG = Catalog(__name__)\n")
    monkeypatch.syspath_prepend(str(root))

    def add(
        name: str,
        kind: str = "PROCESSING",
        inputs: dict[str, str] | None = None,
        outputs: dict[str, str] | None = None,
        required_env: tuple[str, ...] = (),
        model_file: str = "",
    ) -> str:
        step = root / package / name
        step.mkdir()
        (step / "__init__.py").write_text("")
        (step / "script.py").write_text(
            textwrap.dedent(step_source(package, name, kind, inputs or {}, outputs or {}, required_env, model_file))
        )
        return package

    yield add
    for module in [m for m in sys.modules if m.split(".")[0] == package]:
        del sys.modules[module]
