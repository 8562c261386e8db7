"""The script side of a step: turn the contract into paths, env and typed args, then call main.

The same code runs in a SageMaker container (container paths are real) and under the local engine,
which passes `SKYOPS_PATHS`, a JSON map from container path to local folder. Scripts never know
which one they are in. Kept to the standard library: it runs at the start of every step.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from skyops.errors import ContractError, SkyopsError
from skyops.pipeline.catalog import StepDefinition
from skyops.pipeline.config import build_config, parse_arguments
from skyops.pipeline.contract import JobKind

PATHS_ENV = "SKYOPS_PATHS"  # JSON: container path -> local path (absent in a real container)
CHECKPOINTS = "checkpoints"  # key of the checkpoint folder in `outputs`, when the contract has one
HYPERPARAMETERS = "/opt/ml/input/config/hyperparameters.json"


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
        if path.exists():
            inputs[port] = path
        elif not definition.spec.input(port).optional:
            missing.append(f"input {port!r} at {path}")
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
    env = {name: environ[name] for name in contract.required_env}
    env.update({name: environ.get(name, default) for name, default in contract.optional_env.items()})
    values = parse_arguments(argv)
    if contract.job_kind is JobKind.TRAINING:  # SageMaker hands a training job its settings as a file
        values = {**hyperparameters(local(HYPERPARAMETERS)), **values}
    args = build_config(definition.config, values, where=f"step {definition.name!r} arguments")
    return inputs, outputs, env, args


def hyperparameters(path: Path) -> dict[str, str]:
    """A training job's hyperparameters.json (all values strings), minus SageMaker's own keys."""
    if not path.is_file():
        return {}
    return {k: str(v) for k, v in json.loads(path.read_text()).items() if not k.startswith(("sagemaker_", "_"))}


def run(definition: StepDefinition, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of `python -m <step>`: run the script and return the process exit code.

    A SkyopsError prints one line and a hint on stderr and exits 1; anything else keeps its traceback.
    """
    try:
        inputs, outputs, env, args = prepare(definition, sys.argv[1:] if argv is None else argv, os.environ if environ is None else environ)
        definition(inputs, outputs, env, args)
    except SkyopsError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 1
    return 0
