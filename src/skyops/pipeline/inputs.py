"""What a step reads: upstream outputs recorded in the run, external paths, or what a resolver found, hashed by content."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError, problems_error
from skyops.pipeline.definition import Pipeline, StepNode
from skyops.pipeline.hashing import StatMemo, hash_tree
from skyops.pipeline.lineage import RunRecord
from skyops.pipeline.wiring import ExternalRef, OutputRef, ParamRef, SchemeRef

# scheme -> resolver: the local folder a `scheme:reference` names, or None when there is nothing there.
Resolver = Callable[[str], Path | None]
# (step, input port) -> (the resolved reference, the folder it names or None)
Resolved = dict[tuple[str, str], tuple[str, Path | None]]


def resolve_sources(pipeline: Pipeline, params: Mapping[str, Any], resolvers: Mapping[str, Resolver]) -> Resolved:
    """Every `scheme:reference` input of the pipeline, resolved once, before any step runs.

    A resolver may raise (a SkyopsError says why its answer cannot be trusted); None means nothing
    is there: an optional input stays unbound, a required one is an error.

    Raises:
        ConfigError: every scheme without a resolver and every required input left without data, at once.
    """
    resolved: Resolved = {}
    problems = []
    for edge in pipeline.edges:
        source = edge.source
        if not isinstance(source, SchemeRef):
            continue
        where = f"step {edge.consumer!r} input {edge.port!r} ({source})"
        resolver = resolvers.get(source.scheme)
        if resolver is None:
            problems.append(f"{where}: no resolver for {source.scheme!r} sources (known: {', '.join(sorted(resolvers)) or 'none'})")
            continue
        reference = source.resolved(params)
        path = resolver(reference)
        if path is None and not pipeline.step(edge.consumer).definition.spec.input(edge.port).optional:
            problems.append(f"{where}: {source.scheme}:{reference} names nothing, and the input is required")
        resolved[(edge.consumer, edge.port)] = (f"{source.scheme}:{reference}", path)
    if problems:
        raise problems_error(
            ConfigError, f"the sources of pipeline {pipeline.name!r}", problems, hint="see `skyops pipeline explain` for each source"
        )
    return resolved


def resolve_inputs(
    pipeline: Pipeline, node: StepNode, params: dict[str, Any], record: RunRecord, memo: StatMemo, sources: Resolved | None = None
) -> dict[str, tuple[str, Path, str]]:
    """Input port -> (source description, local path, content digest)."""
    resolved = {}
    for edge in pipeline.inputs_of(node.name):
        source = edge.source
        if isinstance(source, OutputRef):
            out = record.steps[source.step].outputs[source.port]
            resolved[edge.port] = (str(source), Path(out["path"]), out["digest"])
            continue
        if isinstance(source, SchemeRef):
            reference, found = (sources or {})[(node.name, edge.port)]
            if found is not None:  # None: nothing there, an optional input (resolve_sources refused a required one)
                resolved[edge.port] = (f"{reference} ({found})", found, hash_tree(found, memo).digest)
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
