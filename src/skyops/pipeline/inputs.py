"""What a step reads: upstream outputs recorded in the run, or external paths hashed by content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skyops.errors import ConfigError
from skyops.pipeline.definition import Pipeline, StepNode
from skyops.pipeline.hashing import StatMemo, hash_tree
from skyops.pipeline.lineage import RunRecord
from skyops.pipeline.wiring import ExternalRef, OutputRef, ParamRef


def resolve_inputs(
    pipeline: Pipeline, node: StepNode, params: dict[str, Any], record: RunRecord, memo: StatMemo
) -> dict[str, tuple[str, Path, str]]:
    """Input port -> (source description, local path, content digest)."""
    resolved = {}
    for edge in pipeline.inputs_of(node.name):
        source = edge.source
        if isinstance(source, OutputRef):
            out = record.steps[source.step].outputs[source.port]
            resolved[edge.port] = (str(source), Path(out["path"]), out["digest"])
            continue
        assert isinstance(source, ExternalRef)
        location = str(params[source.location.name]) if isinstance(source.location, ParamRef) else source.location
        if not location:
            if node.definition.spec.input(edge.port).optional:
                continue
            raise ConfigError(
                f"step {node.name!r} input {edge.port!r} is bound to {source}, which is empty", hint="give it a value with --param"
            )
        if location.startswith("s3://"):
            raise ConfigError(
                f"step {node.name!r} input {edge.port!r} is {location}; the local engine reads local paths",
                hint="download it first, or run on SageMaker with `skyops sagemaker start`",
            )
        path = Path(location).expanduser().resolve()
        if not path.exists():
            raise ConfigError(f"step {node.name!r} input {edge.port!r}: {path} does not exist", hint=f"check the path given to {source}")
        resolved[edge.port] = (f"external {location}", path, hash_tree(path, memo).digest)
    return resolved
