"""`scheme:reference` inputs on SageMaker: one String parameter each, filled when an execution starts.

SageMaker cannot call a resolver when an execution starts, and a processing input cannot be left
out at run time (an empty S3Uri is refused, and so is a prefix holding no object). So each scheme
source gets its own String parameter, `<Step><Port>` (e.g. `EvaluateChampion`), bound to the input.
Its default is the *unbound marker*: a prefix holding one file, UNBOUND_INPUT, which the step
runtime reads as "not bound". `skyops sagemaker upsert` uploads the marker; `skyops sagemaker
start` resolves each reference with the resolvers it is given (the SageMaker model registry for
`registry:`) and passes what they find. An execution started any other way (a schedule, the
console) keeps the default: its optional input is unbound, exactly as locally when the resolver
finds nothing. The definition's Metadata records each parameter's source, so `start` needs only the
stored definition.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from skyops.errors import ConfigError, problems_error
from skyops.pipeline.definition import Parameter, ParamType, Pipeline
from skyops.pipeline.sagemaker.settings import SageMakerSettings
from skyops.pipeline.wiring import SchemeRef

SOURCE_METADATA = "skyops-source-"  # Metadata key prefix, followed by the parameter's name

# scheme -> resolver: the S3 URI a reference names now, or None when nothing is there.
UriResolver = Callable[[str], str | None]


def source_parameter(step: str, port: str) -> str:
    """`evaluate`, `champion` -> `EvaluateChampion`."""
    return "".join(part.capitalize() for name in (step, port) for part in name.replace("-", "_").split("_"))


def source_parameters(pipeline: Pipeline, settings: SageMakerSettings) -> tuple[Parameter, ...]:
    """One String parameter per scheme source, defaulting to the unbound marker."""
    return tuple(
        Parameter(
            name=source_parameter(edge.consumer, edge.port),
            type=ParamType.STRING,
            default=settings.unbound_uri,
            description=f"S3 URI of {edge.source}; filled by `skyops sagemaker start`",
        )
        for edge in pipeline.edges
        if isinstance(edge.source, SchemeRef)
    )


def source_metadata(pipeline: Pipeline) -> dict[str, str]:
    """The definition's Metadata entries: parameter -> its source, and whether the input may stay unbound."""
    return {
        SOURCE_METADATA + source_parameter(edge.consumer, edge.port): json.dumps(
            {"source": str(edge.source), "optional": pipeline.step(edge.consumer).definition.spec.input(edge.port).optional},
            sort_keys=True,
        )
        for edge in pipeline.edges
        if isinstance(edge.source, SchemeRef)
    }


def fill_sources(
    definition: Mapping[str, Any], given: Mapping[str, str], resolvers: Mapping[str, UriResolver]
) -> tuple[dict[str, str], list[str]]:
    """Values of the source parameters `given` does not set, as the resolvers find them now.

    `${param}` in a reference takes the value in `given`, else the parameter's default.

    Returns:
        (parameter -> S3 URI for each source that was found, one line per source saying what it is bound to).

    Raises:
        ConfigError: a scheme without a resolver, or a required input whose source found nothing; all at once.
    """
    defaults = {p["Name"]: p.get("DefaultValue", "") for p in definition.get("Parameters", [])}
    values = {**{k: str(v) for k, v in defaults.items()}, **given}
    found: dict[str, str] = {}
    notes, problems = [], []
    for key, text in sorted(definition.get("Metadata", {}).items()):
        if not key.startswith(SOURCE_METADATA):
            continue
        name, declared = key.removeprefix(SOURCE_METADATA), json.loads(text)
        scheme, _, template = declared["source"].partition(":")
        if name in given:
            notes.append(f"{name}: {given[name]} (given)")
            continue
        reference = SchemeRef(scheme, template).resolved(values)
        resolver = resolvers.get(scheme)
        if resolver is None:
            problems.append(f"{name}: no resolver for {scheme!r} sources (known: {', '.join(sorted(resolvers)) or 'none'})")
            continue
        uri = resolver(reference)
        if uri is not None:
            found[name] = uri
            notes.append(f"{name}: {scheme}:{reference} is {uri}")
        elif declared["optional"]:
            notes.append(f"{name}: {scheme}:{reference} names nothing; the input stays unbound")
        else:
            problems.append(f"{name}: {scheme}:{reference} names nothing, and its input is required")
    if problems:
        raise problems_error(ConfigError, "the sources of the execution", problems, hint="pass the value yourself: -p NAME=s3://...")
    return found, notes
