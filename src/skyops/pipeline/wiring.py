"""Deterministic wiring: each input port binds to exactly one upstream output.

Rules, in order (no scores, no guesses):
  1. An explicit binding in the pipeline (`inputs: {port: step.output}`, an external path, or a
     `scheme:reference` that the engine resolves when a run starts) wins.
  2. Otherwise the candidates are the outputs of steps listed *earlier* in the pipeline whose kind
     equals the input's kind and whose name or aliases share a name with the input's name or aliases.
  3. Exactly one candidate binds. None leaves an optional input unbound and is an error otherwise;
     several is always an error. Both errors list the candidates and how to bind explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skyops.pipeline.spec import Port


@dataclass(frozen=True)
class OutputRef:
    """An output port of another step: `step.port`."""

    step: str
    port: str

    def __str__(self) -> str:
        return f"{self.step}.{self.port}"


@dataclass(frozen=True)
class ParamRef:
    """A pipeline parameter, written `${name}` in YAML."""

    name: str

    def __str__(self) -> str:
        return "${" + self.name + "}"


@dataclass(frozen=True)
class ExternalRef:
    """Data from outside the pipeline: a local path or an S3 URI, literal or from a parameter."""

    location: str | ParamRef

    def __str__(self) -> str:
        return str(self.location)


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class SchemeRef:
    """Data that a resolver of `scheme` finds when a run starts, e.g. `registry:${model_name}@champion`.

    The core knows no scheme: each engine is given a resolver per scheme (the local engine one that
    returns a local folder, `skyops sagemaker start` one that returns an S3 URI). `${param}` in the
    reference is replaced by the parameter's value first. A resolver that finds nothing leaves an
    optional input unbound; for a required input that is an error naming the source.
    """

    scheme: str
    reference: str

    @property
    def parameters(self) -> list[str]:
        """The parameters the reference names, in order."""
        return _PLACEHOLDER.findall(self.reference)

    def resolved(self, params: Mapping[str, Any]) -> str:
        """The reference with every `${param}` replaced by its value."""
        return _PLACEHOLDER.sub(lambda m: str(params[m.group(1)]), self.reference)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.reference}"


Source = OutputRef | ExternalRef | SchemeRef


@dataclass(frozen=True)
class Edge:
    """One binding of an input port, and why it was chosen."""

    consumer: str
    port: str
    source: Source
    reason: str

    def __str__(self) -> str:
        return f"{self.source} -> {self.consumer}.{self.port}  ({self.reason})"


@dataclass(frozen=True)
class WiringNode:
    """What wiring needs of a step: its name, its ports and its explicit bindings."""

    name: str
    inputs: Sequence[Port]
    outputs: Sequence[Port]
    bindings: dict[str, Source]


def wire(nodes: Sequence[WiringNode]) -> tuple[list[Edge], list[str]]:
    """Bind every input of every node; return the edges and every problem found."""
    edges: list[Edge] = []
    problems: list[str] = []
    names = [n.name for n in nodes]
    for index, node in enumerate(nodes):
        upstream = nodes[:index]
        ports = {p.name: p for p in node.inputs}
        for port_name in sorted(set(node.bindings) - set(ports)):
            problems.append(f"step {node.name!r} binds unknown input {port_name!r} (inputs: {', '.join(ports) or 'none'})")
        for port in node.inputs:
            explicit = node.bindings.get(port.name)
            if explicit is not None:
                problem = _check_explicit(node, port, explicit, nodes, names[:index])
                if problem:
                    problems.append(problem)
                else:
                    edges.append(Edge(node.name, port.name, explicit, _explicit_reason(port, explicit)))
                continue
            same_kind = [(u, o) for u in upstream for o in u.outputs if o.kind == port.kind]
            matches = [(u, o) for u, o in same_kind if o.match_names & port.match_names]
            where = f"input {node.name}.{port.name} (kind {port.kind!r})"
            if len(matches) == 1:
                producer, output = matches[0]
                shared = sorted(output.match_names & port.match_names)
                how = "name" if output.name == port.name else f"alias {shared[0]!r}"
                edges.append(
                    Edge(node.name, port.name, OutputRef(producer.name, output.name), f"only upstream {port.kind} output matching by {how}")
                )
            elif len(matches) > 1:
                listed = ", ".join(f"{u.name}.{o.name}" for u, o in matches)
                problems.append(
                    f"{where} matches {len(matches)} upstream outputs: {listed}; bind one explicitly with inputs: {{{port.name}: STEP.OUTPUT}}"
                )
            elif not port.optional:
                if same_kind:
                    listed = ", ".join(f"{u.name}.{o.name}" for u, o in same_kind)
                    problems.append(
                        f"{where} matches no upstream output by name or alias; same-kind outputs: {listed}; bind one explicitly"
                    )
                else:
                    problems.append(
                        f"{where} has no upstream producer of that kind; add a step that outputs {port.kind!r} before {node.name!r} or bind an external path"
                    )
    return edges, problems


def _explicit_reason(port: Port, source: Source) -> str:
    if not isinstance(source, SchemeRef):
        return "bound explicitly in the pipeline"
    nothing = "nothing found leaves it unbound" if port.optional else "nothing found is an error"
    return (
        f"bound explicitly in the pipeline to a {source.scheme!r} source: resolved when a run starts "
        f"(skyops run; skyops sagemaker start), {nothing}"
    )


def _check_explicit(node: WiringNode, port: Port, source: Source, nodes: Sequence[WiringNode], earlier: list[str]) -> str | None:
    if isinstance(source, ExternalRef | SchemeRef):
        return None
    where = f"step {node.name!r} input {port.name!r} is bound to {source}"
    if source.step not in earlier:
        known = "an unknown step" if source.step not in {n.name for n in nodes} else "a step that is not listed before it"
        return f"{where}, {known}; list the producer earlier in the pipeline"
    producer = next(n for n in nodes if n.name == source.step)
    output = next((o for o in producer.outputs if o.name == source.port), None)
    if output is None:
        return (
            f"{where}, but {source.step!r} has no output {source.port!r} (outputs: {', '.join(o.name for o in producer.outputs) or 'none'})"
        )
    if output.kind != port.kind:
        return f"{where}, whose kind {output.kind!r} differs from the input's kind {port.kind!r}"
    return None
