"""Step specification: the logical ports of a step and what kind of artifact each carries.

A spec says *what* a step consumes and produces, never *where* (that is the contract's job).
Specs are frozen and validated on construction; `dataclasses.replace` returns a changed copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath

from skyops.errors import SpecError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


class NodeType(StrEnum):
    """Where a step may stand in a pipeline graph."""

    SOURCE = "source"  # no inputs: brings data in
    INTERNAL = "internal"  # inputs and outputs
    SINK = "sink"  # no outputs: registers, deploys, reports


class JobType(StrEnum):
    """Variants of one step type that run on different data splits."""

    TRAINING = "training"
    VALIDATION = "validation"
    TESTING = "testing"
    CALIBRATION = "calibration"


@dataclass(frozen=True, kw_only=True)
class Port:
    """One logical input or output of a step.

    Args:
        name: identifier, lower snake case; also the default match key for wiring.
        kind: artifact kind, e.g. "yolo-dataset"; wiring only joins ports of equal kind.
        aliases: other names under which this port may match a port of the other side.
        optional: an input that may stay unbound.
        description: one line for `pipeline explain` and docs.
        files: outputs only: files (relative paths) the folder must hold. The local engine fails a
            step that exits 0 without them, and re-runs a step whose cached output lacks one.
    """

    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    optional: bool = False
    description: str = ""
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"port name {self.name!r} must match {_NAME.pattern}")
        if not _KIND.match(self.kind):
            problems.append(f"port {self.name!r}: kind {self.kind!r} must match {_KIND.pattern}")
        problems += [f"port {self.name!r}: alias {a!r} must match {_NAME.pattern}" for a in self.aliases if not _NAME.match(a)]
        problems += [
            f"port {self.name!r}: declared file {f!r} must be a relative path inside the folder"
            for f in self.files
            if not f or f.startswith("/") or "\\" in f or ".." in PurePosixPath(f).parts
        ]
        if problems:
            raise SpecError("; ".join(problems), hint="use lower-case names such as 'data' and kinds such as 'yolo-dataset'")

    @property
    def match_names(self) -> frozenset[str]:
        return frozenset((self.name, *self.aliases))


@dataclass(frozen=True, kw_only=True)
class StepSpec:
    """What a step type consumes and produces.

    Args:
        step_type: catalog name of the step, e.g. "split".
        node_type: source, internal or sink; checked against the ports.
        inputs: input ports, unique names.
        outputs: output ports, unique names.
        job_types: variants this step supports (empty: one variant only).
    """

    step_type: str
    node_type: NodeType
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    job_types: tuple[JobType, ...] = ()
    description: str = ""
    _by_name: dict[str, Port] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not _NAME.match(self.step_type):
            problems.append(f"step type {self.step_type!r} must match {_NAME.pattern}")
        for side, ports in (("input", self.inputs), ("output", self.outputs)):
            names = [p.name for p in ports]
            problems += [f"{side} port {n!r} is declared twice" for n in sorted({n for n in names if names.count(n) > 1})]
        if self.node_type is NodeType.SOURCE and any(not p.optional for p in self.inputs):
            problems.append("a source step may only have optional inputs")
        if self.node_type is NodeType.SINK and self.outputs:
            problems.append("a sink step has no outputs")
        if self.node_type is not NodeType.SINK and not self.outputs:
            problems.append(f"a {self.node_type} step needs at least one output")
        problems += [f"input port {p.name!r} declares files; only outputs do" for p in self.inputs if p.files]
        if problems:
            raise SpecError(f"spec of step {self.step_type!r}: " + "; ".join(sorted(problems)))
        object.__setattr__(self, "_by_name", {p.name: p for p in (*self.inputs, *self.outputs)})

    def input(self, name: str) -> Port:
        return next(p for p in self.inputs if p.name == name)

    def output(self, name: str) -> Port:
        return next(p for p in self.outputs if p.name == name)
