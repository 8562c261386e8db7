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

_ENV = re.compile(r"^[A-Z][A-Z0-9_]*$")


class JobKind(StrEnum):
    """The kind of job a step runs as; each kind has one builder and one container layout."""

    PROCESSING = "processing"
    TRAINING = "training"
    REGISTRATION = "registration"  # runs like processing locally; a RegisterModel step on SageMaker


def processing_input(name: str) -> str:
    return f"{PROCESSING_INPUT}/{name}"


def processing_output(name: str) -> str:
    return f"{PROCESSING_OUTPUT}/{name}"


def training_channel(name: str) -> str:
    return f"{TRAINING_CHANNELS}/{name}"


@dataclass(frozen=True, kw_only=True)
class ScriptContract:
    """The container-side interface of a step's script.

    Args:
        entry_point: module run as `python -m <entry_point>`.
        job_kind: processing or training; decides which container paths are legal.
        inputs: input port name -> container path.
        outputs: output port name -> container path.
        checkpoint_path: container path kept across attempts (training resume), or None.
        required_env: env vars the script must be given.
        optional_env: env vars the script may read -> default value.
    """

    entry_point: str
    job_kind: JobKind
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    checkpoint_path: str | None = None
    required_env: tuple[str, ...] = ()
    optional_env: Mapping[str, str] = field(default_factory=dict)

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
        if problems:
            raise ContractError(f"contract of {self.entry_point!r}: " + "; ".join(sorted(problems)))

    @property
    def env_names(self) -> frozenset[str]:
        return frozenset((*self.required_env, *self.optional_env))
