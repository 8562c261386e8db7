"""What a step reads: upstream outputs recorded in the run, external paths, or what a resolver found, hashed by content.

An external location with a URL scheme (`s3://bucket/prefix`) is read through the fetcher of its
scheme, given by the caller like the resolvers (`LocalEngine(fetchers={"s3": fn})`): the fetcher
makes a local copy and returns it with its content digest, which must be `hash_tree`'s digest of
that copy (so the cache key of a step reading the copy is the one it would have read from a local
folder of the same files). The core knows no scheme.
"""

from __future__ import annotations

import re
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
# URL scheme -> fetcher: a local copy of what `scheme://...` names and its content digest (hash_tree's).
Fetcher = Callable[[str], tuple[Path, str]]
# (step, input port) -> (the location, its local copy, the copy's content digest)
Fetched = dict[tuple[str, str], tuple[str, Path, str]]
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://")


def external_location(source: ExternalRef, params: Mapping[str, Any]) -> str:
    """Where an external input points, its `${param}` replaced by the parameter's value."""
    return str(params[source.location.name]) if isinstance(source.location, ParamRef) else source.location


def fetch_external(pipeline: Pipeline, params: Mapping[str, Any], fetchers: Mapping[str, Fetcher]) -> Fetched:
    """Every external input given as a URL (`s3://...`), fetched once, before any step runs.

    Each distinct location is fetched once, however many inputs name it.

    Raises:
        ConfigError: every URL whose scheme has no fetcher, at once (nothing is fetched then).
        SkyopsError: what a fetcher raises (a refused AWS profile, a key that would escape the copy, ...).
    """
    wanted: dict[tuple[str, str], str] = {}
    problems = []
    for edge in pipeline.edges:
        if not isinstance(edge.source, ExternalRef):
            continue
        location = external_location(edge.source, params)
        scheme = _URL.match(location)
        if scheme is None:
            continue
        if scheme.group(1) not in fetchers:
            problems.append(
                f"step {edge.consumer!r} input {edge.port!r} is {location}; this engine has no fetcher for {scheme.group(1)}:// locations "
                f"(it fetches: {', '.join(f'{s}://' for s in sorted(fetchers)) or 'none'})"
            )
            continue
        wanted[(edge.consumer, edge.port)] = location
    if problems:
        raise problems_error(
            ConfigError,
            f"the external inputs of pipeline {pipeline.name!r}",
            problems,
            hint="give a local path, or run on SageMaker with `skyops sagemaker start`",
        )
    copies: dict[str, tuple[Path, str]] = {}
    for location in sorted(set(wanted.values())):
        copies[location] = fetchers[location.split("://", 1)[0]](location)
    return {port: (location, *copies[location]) for port, location in wanted.items()}


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
    pipeline: Pipeline,
    node: StepNode,
    params: dict[str, Any],
    record: RunRecord,
    memo: StatMemo,
    sources: Resolved | None = None,
    fetched: Fetched | None = None,
) -> dict[str, tuple[str, Path, str]]:
    """Input port -> (source description, local path, content digest).

    `sources` and `fetched` are what `resolve_sources` and `fetch_external` found when the run started.
    """
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
        location = external_location(source, params)
        if not location:
            if node.definition.spec.input(edge.port).optional:
                continue
            raise ConfigError(
                f"step {node.name!r} input {edge.port!r} is bound to {source}, which is empty", hint="give it a value with --param"
            )
        if (node.name, edge.port) in (fetched or {}):
            _, copy, digest = (fetched or {})[(node.name, edge.port)]
            resolved[edge.port] = (f"external {location} (local copy {copy})", copy, digest)
            continue
        if _URL.match(location):  # fetch_external fetched every URL it had a fetcher for
            raise ConfigError(
                f"step {node.name!r} input {edge.port!r} is {location}; the local engine was given no fetcher for it",
                hint="give a local path, or run on SageMaker with `skyops sagemaker start`",
            )
        path = Path(location).expanduser().resolve()
        if not path.exists():
            raise ConfigError(f"step {node.name!r} input {edge.port!r}: {path} does not exist", hint=f"check the path given to {source}")
        resolved[edge.port] = (f"external {location}", path, hash_tree(path, memo).digest)
    return resolved
