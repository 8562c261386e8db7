"""The script side of a step: turn the contract into paths, env and typed args, then call main.

The same code runs in a SageMaker container (container paths are real) and under the local engine,
which passes `SKYOPS_PATHS`, a JSON map from container path to local folder. Scripts never know
which one they are in. Kept to the standard library: it runs at the start of every step.

The run id (SKYOPS_RUN_ID) comes from the local engine; a SageMaker job receives it empty, since its
Environment is part of SageMaker's cache key, and the runtime fills in the name of the job it runs
in, new for every job the pipeline starts (`sagemaker_job_name`).

A long step tells how far it is with `report_progress(done, total, metrics=...)`: one plain line
on stdout (the step's log; CloudWatch on SageMaker) and, under the local engine, one JSON line in
the step's progress file, which `skyops run` shows as a live bar.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from skyops.errors import ContractError, SkyopsError
from skyops.pipeline.catalog import StepDefinition
from skyops.pipeline.config import build_config, parse_arguments
from skyops.pipeline.contract import PROGRESS_ENV, UNBOUND_INPUT, JobKind, ScriptContract

PATHS_ENV = "SKYOPS_PATHS"  # JSON: container path -> local path (absent in a real container)
CHECKPOINTS = "checkpoints"  # key of the checkpoint folder in `outputs`, when the contract has one
HYPERPARAMETERS = "/opt/ml/input/config/hyperparameters.json"
RUN_ID_ENV = "SKYOPS_RUN_ID"
TRAINING_JOB_NAME_ENV = "TRAINING_JOB_NAME"  # set by SageMaker in a training container
PROCESSING_JOB_CONFIG = "/opt/ml/config/processingjobconfig.json"  # written by SageMaker in a processing container


def prepare(
    definition: StepDefinition, argv: Sequence[str], environ: Mapping[str, str]
) -> tuple[dict[str, Path], dict[str, Path], dict[str, str], object]:
    """Resolve a step's inputs, outputs, env and args from its contract; create output folders."""
    contract = definition.contract
    mapping: dict[str, str] = json.loads(environ.get(PATHS_ENV) or "{}")

    def local(container_path: str) -> Path:
        return Path(mapping.get(container_path, container_path))

    inputs: dict[str, Path] = {}
    missing = []
    for port, container_path in contract.inputs.items():
        path = local(container_path)
        if path.exists() and not unbound(path):
            inputs[port] = path
        elif not definition.spec.input(port).optional:
            missing.append(f"input {port!r} at {path}" + (" (its source found nothing)" if path.exists() else ""))
    missing += [f"env var {name}" for name in contract.required_env if name not in environ]
    if missing:
        raise ContractError(
            f"step {definition.name!r} started without {', '.join(missing)}",
            hint="run it through `skyops run`, which provides every path and variable of the contract",
        )
    outputs = {port: local(container_path) for port, container_path in contract.outputs.items()}
    if contract.checkpoint_path:
        outputs[CHECKPOINTS] = local(contract.checkpoint_path)
    for path in outputs.values():
        path.mkdir(parents=True, exist_ok=True)
    env = contract_env(contract, environ)
    if env.get(RUN_ID_ENV) == "":
        env[RUN_ID_ENV] = sagemaker_job_name(environ, local(PROCESSING_JOB_CONFIG))
    values = parse_arguments(argv)
    if contract.job_kind is JobKind.TRAINING:  # SageMaker hands a training job its settings as a file
        values = {**hyperparameters(local(HYPERPARAMETERS)), **values}
    args = build_config(definition.config, values, where=f"step {definition.name!r} arguments")
    return inputs, outputs, env, args


def sagemaker_job_name(environ: Mapping[str, str], processing_config: Path) -> str:
    """The name of the SageMaker job this process runs in ("" outside SageMaker).

    A training job has it in TRAINING_JOB_NAME; a processing job in the `ProcessingJobName` of the
    job description SageMaker writes to /opt/ml/config/processingjobconfig.json. The pipeline gives
    every job it starts a new name (unique in the account and region), so it serves as the run id.

    Raises:
        ContractError: the processing job's description is there but unreadable.
    """
    if environ.get(TRAINING_JOB_NAME_ENV):
        return environ[TRAINING_JOB_NAME_ENV]
    if not processing_config.is_file():
        return ""
    try:
        name = json.loads(processing_config.read_text()).get("ProcessingJobName", "")
    except (OSError, ValueError, AttributeError) as e:
        raise ContractError(
            f"cannot read the processing job's name from {processing_config}: {e}",
            hint=f"SageMaker writes this file in every processing job; or set {RUN_ID_ENV}",
        ) from None
    return str(name)


def unbound(path: Path) -> bool:
    """Whether an input folder holds only the UNBOUND_INPUT marker: an input its engine found nothing for."""
    if not path.is_dir():
        return False
    first_two = [entry.name for _, entry in zip(range(2), path.iterdir(), strict=False)]  # a dataset folder can be huge
    return first_two == [UNBOUND_INPUT]


def hyperparameters(path: Path) -> dict[str, str]:
    """A training job's hyperparameters.json (all values strings), minus SageMaker's own keys."""
    if not path.is_file():
        return {}
    return {k: str(v) for k, v in json.loads(path.read_text()).items() if not k.startswith(("sagemaker_", "_"))}


def contract_env(contract: ScriptContract, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a script sees as `env`: the contract's required ones, and its optional ones with their defaults."""
    env = {name: environ[name] for name in contract.required_env}
    env.update({name: environ.get(name, default) for name, default in contract.optional_env.items()})
    return env


def run(definition: StepDefinition, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of `python -m <step>`: run the script and return the process exit code.

    A SkyopsError prints one line and a hint on stderr and exits 1; anything else keeps its traceback.
    """
    global _progress
    environ = os.environ if environ is None else environ
    _progress = _ProgressState(started=time.time(), path=environ.get(PROGRESS_ENV, ""))
    try:
        inputs, outputs, env, args = prepare(definition, sys.argv[1:] if argv is None else argv, environ)
        definition(inputs, outputs, env, args)
    except SkyopsError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 1
    return 0


# ---- progress -----------------------------------------------------------------------------------


@dataclass
class _ProgressState:
    """Where this process reports progress (a step process runs one script)."""

    started: float | None = None  # when `run` started the script; None outside `run`
    path: str | None = None  # the progress file `run` was given ("" for none); None outside `run`: read os.environ
    broken: set[str] = field(default_factory=set)  # progress files that could not be written (warned once)


_progress = _ProgressState()


def report_progress(done: int, total: int, *, unit: str = "epoch", metrics: Mapping[str, float] | None = None) -> None:
    """Say how far a long step is: `done` of `total` units, with the latest metric values.

    Prints one line to stdout (the step's log), e.g. `epoch 2/10: box_loss 1.234, mAP50 0.456`, and,
    when the engine gave the step a progress file (SKYOPS_PROGRESS_FILE), appends the report to it
    as one JSON line for the live display. A file that cannot be written costs a warning on stderr,
    never the step.

    Args:
        done: units finished so far, 0 <= done <= total.
        total: units in the whole step (>= 1).
        unit: what a unit is ("epoch", "image", ...), shown beside the counter.
        metrics: name -> latest value (losses, validation scores), shown in this order.
    """
    if total < 1 or not 0 <= done <= total:
        raise ValueError(f"report_progress({done}, {total}): expected 0 <= done <= total and total >= 1")
    values = {name: float(value) for name, value in (metrics or {}).items()}
    print(f"{unit} {done}/{total}" + (": " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()) if values else ""), flush=True)
    path = os.environ.get(PROGRESS_ENV, "") if _progress.path is None else _progress.path
    if not path or path in _progress.broken:
        return
    now = time.time()
    report = {"done": done, "total": total, "unit": unit, "metrics": values, "time": now, "started": _progress.started or now}
    try:
        # One write of one line on an O_APPEND file: a reader sees whole lines, plus at most a partial
        # last one it waits for. Every report stays, so a log-style reader misses none.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(report) + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        _progress.broken.add(path)
        print(f"warning: cannot write the progress file {path}: {e.strerror or e}; progress goes to this log only", file=sys.stderr)
