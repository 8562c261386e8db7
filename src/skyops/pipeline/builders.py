"""Step builders: one per job kind. A builder says what a kind of job is, for every engine.

It knows which container paths the kind can carry (checked by `skyops pipeline check`), whether it
keeps checkpoints, and how the local engine runs it: a `LocalTask` (a module to run, its argv, env
and path map). How another engine writes the kind down is that engine's business: the SageMaker
compiler has one renderer per kind (skyops.pipeline.sagemaker.render). Nothing here imports an
engine, so the local engine never loads the SageMaker compiler.
"""

from __future__ import annotations

import json
from abc import ABC
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from skyops.pipeline.catalog import StepDefinition
from skyops.pipeline.config import StepConfig, config_to_dict, to_argument
from skyops.pipeline.contract import (
    CHECKPOINTS,
    LOCAL_REGISTRY,
    PROCESSING_INPUT,
    PROCESSING_OUTPUT,
    REGISTRY_ENV,
    TRAINING_CHANNELS,
    TRAINING_MODEL,
    TRAINING_OUTPUT,
    JobKind,
    ScriptContract,
)
from skyops.pipeline.runtime import PATHS_ENV


@dataclass(frozen=True)
class LocalTask:
    """Everything needed to run one step locally as `python -m <module> <argv>`."""

    module: str
    argv: tuple[str, ...]
    env: dict[str, str]  # added to the engine's environment: SKYOPS_PATHS first, then the kind's own (local_env)
    paths: dict[str, str]  # container path -> local path

    def command(self) -> str:
        """The equivalent shell command, for logs and 'run it yourself' hints."""
        import shlex

        env = " ".join(f"{name}={shlex.quote(value)}" for name, value in self.env.items())
        return f"{env} python -m {self.module} " + " ".join(shlex.quote(a) for a in self.argv)


def config_arguments(config: StepConfig) -> tuple[str, ...]:
    """A config as `--name value` pairs, the same form both engines pass to the script."""
    return tuple(arg for name, value in sorted(config_to_dict(config).items()) for arg in (f"--{name}", to_argument(value)))


class StepBuilder(ABC):
    """Base of the per-job-kind builders; a kind declares which container paths it can carry.

    A new job kind is a `JobKind` value, one builder here and one renderer per engine that writes
    jobs down (docs/architecture.md).
    """

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
        env = {PATHS_ENV: json.dumps(paths), **self.local_env}
        return LocalTask(contract.entry_point, config_arguments(config), env, paths)

    @property
    def local_env(self) -> dict[str, str]:
        """Variables the local engine sets for every job of this kind (over the pipeline's env and the shell)."""
        return {}


class ProcessingBuilder(StepBuilder):
    job_kind = JobKind.PROCESSING
    input_prefixes = (PROCESSING_INPUT + "/",)
    output_prefixes = (PROCESSING_OUTPUT + "/",)


class TrainingBuilder(StepBuilder):
    job_kind = JobKind.TRAINING
    input_prefixes = (TRAINING_CHANNELS + "/",)
    output_prefixes = (TRAINING_MODEL, TRAINING_OUTPUT)
    supports_checkpoints = True


class RegistrationBuilder(StepBuilder):
    """A processing job that decides whether and how a model version is registered (its contract's
    `registers` names the ports and files). Locally the script registers the version itself
    (REGISTRY_ENV = local); another engine registers it from the decision file the script wrote."""

    job_kind = JobKind.REGISTRATION
    input_prefixes = (PROCESSING_INPUT + "/",)
    output_prefixes = (PROCESSING_OUTPUT + "/",)

    @property
    def local_env(self) -> dict[str, str]:
        return {REGISTRY_ENV: LOCAL_REGISTRY}


BUILDERS: dict[JobKind, StepBuilder] = {b.job_kind: b for b in (ProcessingBuilder(), TrainingBuilder(), RegistrationBuilder())}


def builder_for(contract: ScriptContract) -> StepBuilder:
    return BUILDERS[contract.job_kind]
