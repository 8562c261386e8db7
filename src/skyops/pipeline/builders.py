"""Step builders: one per job kind. A builder turns a step into something an engine executes.

For the local engine that is a `LocalTask` (a module to run, its argv, env and path map); the
SageMaker compiler asks the same builder for the step's pipeline-definition JSON.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from skyops.errors import PipelineError
from skyops.pipeline.catalog import StepDefinition
from skyops.pipeline.config import StepConfig, config_to_dict, to_argument
from skyops.pipeline.contract import (
    CHECKPOINTS,
    PROCESSING_INPUT,
    PROCESSING_OUTPUT,
    TRAINING_CHANNELS,
    TRAINING_MODEL,
    TRAINING_OUTPUT,
    JobKind,
    ScriptContract,
)
from skyops.pipeline.runtime import PATHS_ENV

# The SageMaker job shapes are imported by the methods that build SageMaker steps (the compiler's
# calls): a local run never loads them.
if TYPE_CHECKING:
    from skyops.pipeline.sagemaker import jobs
    from skyops.pipeline.sagemaker.expressions import Value


@dataclass(frozen=True)
class LocalTask:
    """Everything needed to run one step locally as `python -m <module> <argv>`."""

    module: str
    argv: tuple[str, ...]
    env: dict[str, str]  # added to the engine's environment
    paths: dict[str, str]  # container path -> local path

    def command(self) -> str:
        """The equivalent shell command, for logs and 'run it yourself' hints."""
        import shlex

        return f"{PATHS_ENV}={shlex.quote(json.dumps(self.paths))} python -m {self.module} " + " ".join(shlex.quote(a) for a in self.argv)


def config_arguments(config: StepConfig) -> tuple[str, ...]:
    """A config as `--name value` pairs, the same form both engines pass to the script."""
    return tuple(arg for name, value in sorted(config_to_dict(config).items()) for arg in (f"--{name}", to_argument(value)))


class StepBuilder(ABC):
    """Base of the per-job-kind builders; a kind declares which container paths it can carry."""

    job_kind: ClassVar[JobKind]
    input_prefixes: ClassVar[tuple[str, ...]]
    output_prefixes: ClassVar[tuple[str, ...]]
    supports_checkpoints: ClassVar[bool] = False

    def path_problems(self, contract: ScriptContract) -> list[str]:
        """Paths of the contract that this job kind cannot mount."""
        problems = [
            f"input {port!r} at {path} is not under {' or '.join(self.input_prefixes)} ({self.job_kind} jobs mount inputs there)"
            for port, path in contract.inputs.items()
            if not path.startswith(self.input_prefixes)
        ]
        problems += [
            f"output {port!r} at {path} is not under {' or '.join(self.output_prefixes)} ({self.job_kind} jobs upload outputs from there)"
            for port, path in contract.outputs.items()
            if not (path.startswith(self.output_prefixes) or path in self.output_prefixes)
        ]
        if contract.checkpoint_path and not self.supports_checkpoints:
            problems.append(f"{self.job_kind} jobs have no checkpoint folder, but the contract declares {contract.checkpoint_path}")
        if contract.checkpoint_path and self.supports_checkpoints and contract.checkpoint_path != CHECKPOINTS:
            problems.append(f"checkpoint path {contract.checkpoint_path} must be {CHECKPOINTS}")
        return problems

    def local_task(
        self,
        definition: StepDefinition,
        config: StepConfig,
        inputs: dict[str, Path],
        outputs: dict[str, Path],
        checkpoints: Path | None,
    ) -> LocalTask:
        contract = definition.contract
        paths = {contract.inputs[port]: str(path) for port, path in inputs.items()}
        paths.update({contract.outputs[port]: str(path) for port, path in outputs.items()})
        if contract.checkpoint_path and checkpoints is not None:
            paths[contract.checkpoint_path] = str(checkpoints)
        return LocalTask(contract.entry_point, config_arguments(config), {PATHS_ENV: json.dumps(paths)}, paths)

    @abstractmethod
    def sagemaker_step(self, job: jobs.SageMakerJob) -> dict[str, Any]:
        """The step's entry in a SageMaker pipeline definition (its `Name`, `Type`, `Arguments`, ...)."""

    @abstractmethod
    def sagemaker_output(self, step: str, port: str, contract: ScriptContract) -> Value:
        """What a later step receives for output `port` of `step`: a property reference to its S3 URI."""


class ProcessingBuilder(StepBuilder):
    job_kind = JobKind.PROCESSING
    input_prefixes = (PROCESSING_INPUT + "/",)
    output_prefixes = (PROCESSING_OUTPUT + "/",)

    def sagemaker_step(self, job: jobs.SageMakerJob) -> dict[str, Any]:
        from skyops.pipeline.sagemaker import jobs

        return jobs.processing_step(job)

    def sagemaker_output(self, step: str, port: str, contract: ScriptContract) -> Value:
        from skyops.pipeline.sagemaker import jobs

        return jobs.processing_output(step, port)


class TrainingBuilder(StepBuilder):
    job_kind = JobKind.TRAINING
    input_prefixes = (TRAINING_CHANNELS + "/",)
    output_prefixes = (TRAINING_MODEL, TRAINING_OUTPUT)
    supports_checkpoints = True

    def sagemaker_step(self, job: jobs.SageMakerJob) -> dict[str, Any]:
        from skyops.pipeline.sagemaker import jobs

        return jobs.training_step(job)

    def sagemaker_output(self, step: str, port: str, contract: ScriptContract) -> Value:
        from skyops.pipeline.sagemaker import jobs

        return jobs.training_output(step, port, contract)


class RegistrationBuilder(StepBuilder):
    """Registers a model version. Locally its script runs like a processing job (paths included);
    on SageMaker it becomes a RegisterModel step fed by its `model` and `evaluation` inputs."""

    job_kind = JobKind.REGISTRATION
    input_prefixes = (PROCESSING_INPUT + "/",)
    output_prefixes = (PROCESSING_OUTPUT + "/",)

    def sagemaker_step(self, job: jobs.SageMakerJob) -> dict[str, Any]:
        from skyops.pipeline.sagemaker import jobs

        return jobs.register_model_step(job)

    def sagemaker_output(self, step: str, port: str, contract: ScriptContract) -> Value:
        raise PipelineError(
            f"output {port!r} of registration step {step!r} is consumed by a later step, but on SageMaker a registration "
            "is a RegisterModel step, which writes no files",
            hint="read the registered version from the model registry instead, or make the consumer a separate pipeline",
        )


BUILDERS: dict[JobKind, StepBuilder] = {b.job_kind: b for b in (ProcessingBuilder(), TrainingBuilder(), RegistrationBuilder())}


def builder_for(contract: ScriptContract) -> StepBuilder:
    return BUILDERS[contract.job_kind]
