"""skyops.pipeline: the domain-free core. Specs, contracts, catalog, wiring, check, local engine.

This package knows nothing of drones or YOLO and never imports from `skyops.steps` or the domain
packages. Public names are re-exported here and loaded on first use, so a step's process imports
only what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "NodeType": "spec",
    "JobType": "spec",
    "Port": "spec",
    "StepSpec": "spec",
    "JobKind": "contract",
    "ScriptContract": "contract",
    "Registers": "contract",
    "processing_input": "contract",
    "processing_output": "contract",
    "training_channel": "contract",
    "StepConfig": "config",
    "Range": "config",
    "Catalog": "catalog",
    "StepDefinition": "catalog",
    "EmptyConfig": "catalog",
    "Parameter": "definition",
    "ParamType": "definition",
    "Pipeline": "definition",
    "StepNode": "definition",
    "load_pipeline": "definition",
    "OutputRef": "wiring",
    "ParamRef": "wiring",
    "ExternalRef": "wiring",
    "SchemeRef": "wiring",
    "Edge": "wiring",
    "LocalEngine": "engine",
    "StateDir": "engine",
    "RunRecord": "lineage",
    "RunStatus": "lineage",
    "StepRecord": "lineage",
    "StepStatus": "lineage",
    "GateResult": "gates",
    "check_catalog": "check",
    "run": "runtime",
    "report_progress": "runtime",
}

__all__ = [
    "Catalog",
    "Edge",
    "EmptyConfig",
    "ExternalRef",
    "GateResult",
    "JobKind",
    "JobType",
    "LocalEngine",
    "NodeType",
    "OutputRef",
    "ParamRef",
    "ParamType",
    "Parameter",
    "Pipeline",
    "Port",
    "Range",
    "Registers",
    "RunRecord",
    "RunStatus",
    "SchemeRef",
    "ScriptContract",
    "StateDir",
    "StepConfig",
    "StepDefinition",
    "StepNode",
    "StepRecord",
    "StepSpec",
    "StepStatus",
    "check_catalog",
    "load_pipeline",
    "processing_input",
    "processing_output",
    "report_progress",
    "run",
    "training_channel",
]

if TYPE_CHECKING:
    from skyops.pipeline.catalog import Catalog, EmptyConfig, StepDefinition
    from skyops.pipeline.check import check_catalog
    from skyops.pipeline.config import Range, StepConfig
    from skyops.pipeline.contract import JobKind, Registers, ScriptContract, processing_input, processing_output, training_channel
    from skyops.pipeline.definition import Parameter, ParamType, Pipeline, StepNode, load_pipeline
    from skyops.pipeline.engine import LocalEngine, StateDir
    from skyops.pipeline.gates import GateResult
    from skyops.pipeline.lineage import RunRecord, RunStatus, StepRecord, StepStatus
    from skyops.pipeline.runtime import report_progress, run
    from skyops.pipeline.spec import JobType, NodeType, Port, StepSpec
    from skyops.pipeline.wiring import Edge, ExternalRef, OutputRef, ParamRef, SchemeRef


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skyops.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"skyops.pipeline.{module}"), name)
