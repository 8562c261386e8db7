"""Renderers: how each job kind is written into a SageMaker pipeline definition, one per kind.

The compiler resolves every pipeline step into a `SageMakerJob` (arguments, inputs as S3 URIs,
environment, output prefix) and asks the renderer of the step's job kind for its steps; a later
step that reads an output asks the producer's renderer where that output is. The builders
(skyops.pipeline.builders) say what a kind is for every engine; this is the SageMaker engine's
half, so the core never carries SageMaker knowledge.

A new job kind is a `JobKind` value, a builder, and one renderer added to `RENDERERS` (the tests
check that every kind has exactly one). The per-kind step JSON itself is built in `jobs.py`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Protocol

from skyops.errors import PipelineError
from skyops.pipeline.contract import REGISTRY_ENV, TRAINING_MODEL, Decision, JobKind, Registers, ScriptContract
from skyops.pipeline.sagemaker import conditions, jobs
from skyops.pipeline.sagemaker.expressions import Value, join
from skyops.pipeline.sagemaker.jobs import SageMakerJob

ENGINE = "sagemaker"  # REGISTRY_ENV of a registration job here: the script decides, RegisterModel registers
DECISION_PROPERTY_FILE = "Decision"  # the PropertyFile of a registration job's decision file
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # CreateModelPackage's ModelPackageGroupName


@dataclass(frozen=True)
class Rendered:
    """The steps of one job.

    Args:
        step: the job's own step, named after the pipeline step. The compiler places it where the
            pipeline puts the step: at the top level, or inside its gate's Condition.
        followers: top-level steps that come after every placed step (a registration's decision
            Condition: a Condition step cannot hold another, so these never go inside a gate's).
    """

    step: dict[str, Any]
    followers: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Output:
    """Where a later step finds an output: its S3 URI, and whether that is one model.tar.gz (a
    training job's model) rather than a folder of files."""

    uri: Value
    archive: bool = False


class Renderer(Protocol):
    """Writes one job kind into a pipeline definition."""

    def steps(self, job: SageMakerJob) -> Rendered:
        """The steps that run `job`.

        Raises:
            PipelineError: the job asks for something this kind cannot do on SageMaker.
        """
        ...

    def output(self, step: str, port: str, contract: ScriptContract) -> Output:
        """What a consumer of output `port` of `step` (whose contract is `contract`) receives."""
        ...


class ProcessingRenderer:
    """A Processing step; each output port is uploaded from its contract path."""

    def steps(self, job: SageMakerJob) -> Rendered:
        return Rendered(jobs.processing_step(job))

    def output(self, step: str, port: str, contract: ScriptContract) -> Output:
        return Output(jobs.processing_output(step, port))


class TrainingRenderer:
    """A Training step; its model folder is uploaded as one model.tar.gz."""

    def steps(self, job: SageMakerJob) -> Rendered:
        return Rendered(jobs.training_step(job))

    def output(self, step: str, port: str, contract: ScriptContract) -> Output:
        return Output(jobs.training_output(step, port, contract), archive=contract.outputs[port] == TRAINING_MODEL)


class RegistrationRenderer:
    """A registration: the same decision as the local engine, then a model version with that status.

    1. The job's script runs as a Processing step (placed where the step is, e.g. inside its gate),
       with REGISTRY_ENV = "sagemaker": it decides from its inputs exactly as it does locally,
       writes the decision file and the model card, and registers nothing itself.
    2. A top-level Condition `<step>-decision` reads the decision's status (a PropertyFile) and runs
       one of two RegisterModel steps: `<step>-pending` (PendingManualApproval) or
       `<step>-rejected` (Rejected). Two steps because ModelApprovalStatus takes no JsonGet; top
       level because a Condition cannot hold a Condition. Neither is ever Approved.
    Both register into the group named by the config field `registers.model_name_config`, with the
    model data (a training job's model.tar.gz, or `registers.model_file` in the folder of the
    `registers.model` input: the exported package's model.tar.gz, which the server image serves),
    its metrics file, and the S3 URIs of the decision and the card as metadata.
    """

    def steps(self, job: SageMakerJob) -> Rendered:
        registers = job.contract.registers
        assert registers is not None, "ScriptContract refuses a registration job without registers"
        model_data = _model_data(job, registers)
        group = job.hyperparameters[registers.model_name_config]  # the literal, or the parameter it binds
        name = str(job.config.get(registers.model_name_config, group))
        if not _GROUP_NAME.match(name):
            raise PipelineError(
                f"config {registers.model_name_config!r} is {name!r}, which SageMaker refuses as a model package group name "
                "(1-63 letters, digits and inner hyphens)",
                hint="give the model a name such as my-detector, on both engines",
            )
        decide = dataclasses.replace(
            job,
            environment={**job.environment, REGISTRY_ENV: ENGINE},
            property_files=(*job.property_files, _decision_file(registers)),
        )
        decision_dir = jobs.processing_output(job.name, registers.decision)
        metadata = {
            **job.metadata,
            "skyops:decision": join([decision_dir, registers.decision_file], "/"),
            "skyops:card": join([decision_dir, registers.card_file], "/"),
        }
        metrics = join([job.inputs[registers.metrics], registers.metrics_file], "/") if registers.metrics in job.inputs else None
        versions = {
            status: jobs.register_model_step(
                f"{job.name}-{suffix}",
                job.settings,
                group=group,
                status=status.value,
                model_data=model_data,
                metrics=metrics,
                metadata=metadata,
                description=f"{status.value}: decided by step {job.name}, reasons in its decision (skyops:decision). {job.description}"[
                    :1024
                ],
            )
            for status, suffix in ((Decision.PENDING, "pending"), (Decision.REJECTED, "rejected"))
        }
        condition = conditions.decision_condition_step(
            job.name, DECISION_PROPERTY_FILE, pending=versions[Decision.PENDING], rejected=versions[Decision.REJECTED]
        )
        return Rendered(jobs.processing_step(decide), (condition,))

    def output(self, step: str, port: str, contract: ScriptContract) -> Output:
        return Output(jobs.processing_output(step, port))  # the decision job writes files like any processing job


def _model_data(job: SageMakerJob, registers: Registers) -> Value:
    """The ModelDataUrl: the `model` input itself (a training job's model.tar.gz), or `model_file` inside that folder."""
    model = job.inputs.get(registers.model)
    if model is None:
        wanted = f"the folder holding {registers.model_file}" if registers.model_file else "a training step's model"
        raise PipelineError(
            f"registration step {job.name!r} has no bound {registers.model!r} input; a model version needs it: bind it to {wanted}"
        )
    if registers.model_file:
        if registers.model in job.archives:
            raise PipelineError(
                f"registration step {job.name!r}: its {registers.model!r} input is a training job's model.tar.gz, "
                f"but the contract registers the file {registers.model_file!r} inside a folder",
                hint=f"bind the input to the output folder that holds {registers.model_file} (an export step's package)",
            )
        return join([model, registers.model_file], "/")
    if registers.model not in job.archives and not _is_external(model):
        raise PipelineError(
            f"registration step {job.name!r}: its {registers.model!r} input is a folder written by a processing step; "
            "a model version needs the model.tar.gz of a training job",
            hint="bind the input to the training step's model output",
        )
    return model


def _decision_file(registers: Registers) -> dict[str, str]:
    return {"PropertyFileName": DECISION_PROPERTY_FILE, "OutputName": registers.decision, "FilePath": registers.decision_file}


def _is_external(uri: Value) -> bool:
    """A literal S3 URI or a parameter: the user vouches that it names a model.tar.gz."""
    return isinstance(uri, str) or (isinstance(uri, dict) and str(uri.get("Get", "")).startswith("Parameters."))


RENDERERS: dict[JobKind, Renderer] = {
    JobKind.PROCESSING: ProcessingRenderer(),
    JobKind.TRAINING: TrainingRenderer(),
    JobKind.REGISTRATION: RegistrationRenderer(),
}


def renderer_for(contract: ScriptContract) -> Renderer:
    return RENDERERS[contract.job_kind]
