"""Script contract: where a script finds each port inside its container, and which env vars it reads.

Paths follow SageMaker's container layouts, so the same script runs unchanged in a SageMaker job
and under the local engine (which maps each container path to a local folder).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from skyops.errors import ContractError

PROCESSING_INPUT = "/opt/ml/processing/input"
PROCESSING_OUTPUT = "/opt/ml/processing/output"
TRAINING_CHANNELS = "/opt/ml/input/data"
TRAINING_MODEL = "/opt/ml/model"
TRAINING_OUTPUT = "/opt/ml/output/data"
CHECKPOINTS = "/opt/ml/checkpoints"

# Set by every engine for every step: where and when it runs, not what it computes, so these never
# enter cache keys. (The local engine fills them in; the SageMaker compiler maps them to execution variables.)
# SKYOPS_PROGRESS_FILE is where `runtime.report_progress` appends a step's progress for the live
# display: set by the local engine only (empty in a SageMaker job, whose progress lines go to CloudWatch).
PROGRESS_ENV = "SKYOPS_PROGRESS_FILE"
RUN_CONTEXT_ENV = ("SKYOPS_RUN_ID", "SKYOPS_STEP_NAME", "SKYOPS_STATE_DIR", "SKYOPS_USER", PROGRESS_ENV)
# Set by every engine for a registration job: which registry acts on its decision. "local": the
# script registers the version itself (the local engine); any other value names the engine that
# registers it from the decision file (the SageMaker compiler sets "sagemaker"). A registration
# contract declares it; the engine's value always wins over the pipeline's env and the shell.
REGISTRY_ENV = "SKYOPS_REGISTRY"
LOCAL_REGISTRY = "local"
# An input folder that holds only this file is not bound: how an engine that cannot leave an input
# out at run time (SageMaker, for a source nothing was found for) says "nothing here" (runtime.prepare).
UNBOUND_INPUT = ".skyops-unbound"

_ENV = re.compile(r"^[A-Z][A-Z0-9_]*$")


class JobKind(StrEnum):
    """The kind of job a step runs as; each kind has one builder (skyops.pipeline.builders) and one
    renderer per engine that needs one (e.g. skyops.pipeline.sagemaker.render)."""

    PROCESSING = "processing"
    TRAINING = "training"
    REGISTRATION = "registration"  # a processing job that decides; the engine registers from its decision (see Registers)


class Decision(StrEnum):
    """What a registration job decided: the approval status a new version is registered with.

    A registration job writes it under DECISION_STATUS in its decision file; never "Approved":
    approving is a person's act, never a pipeline's.
    """

    PENDING = "PendingManualApproval"
    REJECTED = "Rejected"


DECISION_STATUS = "status"  # key of the decision file (a JSON object) holding the Decision


def processing_input(name: str) -> str:
    return f"{PROCESSING_INPUT}/{name}"


def processing_output(name: str) -> str:
    return f"{PROCESSING_OUTPUT}/{name}"


def training_channel(name: str) -> str:
    return f"{TRAINING_CHANNELS}/{name}"


@dataclass(frozen=True, kw_only=True)
class Registers:
    """What an engine needs to register the model a registration job decided on, named by the contract.

    The core never knows a step's port names: a registration contract says which ports and files
    play which part, and each engine reads them from here.

    Args:
        model: input port of the model to register: a training job's model artifact (one
            model.tar.gz), or, with `model_file`, a folder a processing step wrote.
        model_file: the file inside the `model` folder that is the model data (e.g. the model.tar.gz
            an export step packaged); "" when the port is itself a training job's model artifact.
        metrics: input port of the folder holding the model's metrics file.
        metrics_file: that file, recorded as the version's model quality metrics.
        decision: output port the job writes its decision and model card into.
        decision_file: the decision (a JSON object; its DECISION_STATUS is a Decision).
        card_file: the model card (a JSON object), in the same output.
        model_name_config: config field holding the registered model's name (a model package group on SageMaker).
    """

    model: str
    metrics: str
    metrics_file: str
    decision: str
    decision_file: str
    card_file: str
    model_name_config: str
    model_file: str = ""

    def problems(self, contract: ScriptContract) -> list[str]:
        """What of this does not fit the contract it belongs to."""
        problems = [
            f"registers names input {port!r}, which the contract does not declare"
            for port in (self.model, self.metrics)
            if port not in contract.inputs
        ]
        if self.decision not in contract.outputs:
            problems.append(f"registers.decision names output {self.decision!r}, which the contract does not declare")
        files = {"metrics_file": self.metrics_file, "decision_file": self.decision_file, "card_file": self.card_file}
        problems += [
            f"registers.{part} {name!r} must be a file name without '/'" for part, name in files.items() if not name or "/" in name
        ]
        if "/" in self.model_file:
            problems.append(f"registers.model_file {self.model_file!r} must be a file name without '/'")
        if self.decision_file == self.card_file:
            problems.append(f"registers.decision_file and card_file are both {self.card_file!r}")
        if REGISTRY_ENV not in contract.env_names:
            problems.append(f"a registration contract declares {REGISTRY_ENV} (the engine says there which registry acts on the decision)")
        return problems


@dataclass(frozen=True, kw_only=True)
class ScriptContract:
    """The container-side interface of a step's script.

    Args:
        entry_point: module run as `python -m <entry_point>`.
        job_kind: processing, training or registration; decides which container paths are legal.
        inputs: input port name -> container path.
        outputs: output port name -> container path.
        checkpoint_path: container path kept across attempts (training resume), or None.
        required_env: env vars the script must be given.
        optional_env: env vars the script may read -> default value.
        registers: for and only for a registration job: which ports and files its engine registers from.
        launcher: for a training job that can spread over several instances: a module run as
            `python -m <launcher> <entry_point>` that starts the script on every rank (e.g. torchrun)
            and leaves the writing to one. Without it the SageMaker compiler refuses more than one instance.
    """

    entry_point: str
    job_kind: JobKind
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    checkpoint_path: str | None = None
    required_env: tuple[str, ...] = ()
    optional_env: Mapping[str, str] = field(default_factory=dict)
    registers: Registers | None = None
    launcher: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "outputs", MappingProxyType(dict(self.outputs)))
        object.__setattr__(self, "optional_env", MappingProxyType(dict(self.optional_env)))
        problems = []
        paths = [*self.inputs.values(), *self.outputs.values()]
        if self.checkpoint_path:
            paths.append(self.checkpoint_path)
        problems += [f"path {p!r} is not absolute" for p in paths if not p.startswith("/")]
        problems += [f"path {p!r} is used by two ports" for p in sorted({p for p in paths if paths.count(p) > 1})]
        env_names = [*self.required_env, *self.optional_env]
        problems += [f"env var {e!r} must match {_ENV.pattern}" for e in env_names if not _ENV.match(e)]
        problems += [f"env var {e!r} is both required and optional" for e in set(self.required_env) & set(self.optional_env)]
        if self.job_kind is JobKind.REGISTRATION and self.registers is None:
            problems.append("a registration job declares registers=Registers(...): the ports and files its engine registers from")
        elif self.job_kind is not JobKind.REGISTRATION and self.registers is not None:
            problems.append(f"only a registration job declares registers; this is a {self.job_kind} job")
        elif self.registers is not None:
            problems += self.registers.problems(self)
        if self.launcher is not None and self.job_kind is not JobKind.TRAINING:
            problems.append(f"only a training job declares a launcher; this is a {self.job_kind} job")
        if problems:
            raise ContractError(f"contract of {self.entry_point!r}: " + "; ".join(sorted(problems)))

    @property
    def env_names(self) -> frozenset[str]:
        return frozenset((*self.required_env, *self.optional_env))
