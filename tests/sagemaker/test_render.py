"""The engine-neutral core: one builder and one renderer per job kind, the local engine free of the
SageMaker compiler, and no compiled path that deploys or approves anything."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from skyops.pipeline.builders import BUILDERS
from skyops.pipeline.contract import JobKind, ScriptContract
from skyops.pipeline.definition import Pipeline, pipeline_from_dict
from skyops.pipeline.sagemaker import compile_pipeline
from skyops.pipeline.sagemaker.jobs import SageMakerJob
from skyops.pipeline.sagemaker.render import RENDERERS, Output, Rendered

from .checks import all_steps
from .conftest import SETTINGS

JOB_STEP_TYPES = {JobKind.PROCESSING: "Processing", JobKind.TRAINING: "Training", JobKind.REGISTRATION: "Processing"}


def test_every_job_kind_has_exactly_one_builder_and_one_renderer() -> None:
    assert list(BUILDERS) == list(RENDERERS) == list(JobKind)
    assert all(BUILDERS[kind].job_kind is kind for kind in JobKind)
    assert len({id(r) for r in RENDERERS.values()}) == len(JobKind)


def test_the_core_and_the_local_engine_load_nothing_of_the_sagemaker_engine() -> None:
    code = (
        "import sys\n"
        "import skyops.pipeline.builders, skyops.pipeline.check, skyops.pipeline.engine, skyops.pipeline.runtime\n"
        "from skyops.pipeline.catalog import catalog_of\n"
        "catalog_of('skyops.steps').load()\n"
        "print(sorted(m for m in sys.modules if m.startswith('skyops.pipeline.sagemaker')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout == "[]\n"


class ToyRenderer:
    """A job kind written as a Fail step that names its inputs, plus one follower: all a new kind needs."""

    def steps(self, job: SageMakerJob) -> Rendered:
        message = f"toy {job.name} reads {', '.join(f'{port}={uri}' for port, uri in sorted(job.inputs.items())) or 'nothing'}"
        follower = {"Name": f"{job.name}-after", "Type": "Fail", "Arguments": {"ErrorMessage": "after"}}
        return Rendered({"Name": job.name, "Type": "Fail", "Arguments": {"ErrorMessage": message}}, (follower,))

    def output(self, step: str, port: str, contract: ScriptContract) -> Output:
        return Output(f"s3://toy/{step}/{port}")


def test_the_compiler_asks_the_renderer_of_each_step_s_kind(scratch: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    package = scratch("make", outputs={"parts": "parts"})
    scratch("use", inputs={"parts": "parts"}, outputs={"product": "product"})
    monkeypatch.setitem(RENDERERS, JobKind.PROCESSING, ToyRenderer())
    compiled = compile_pipeline(
        pipeline_from_dict({"name": "toy", "catalog": package, "steps": [{"step": "make"}, {"step": "use"}]}), SETTINGS
    )
    assert [(s["Name"], s["Arguments"]["ErrorMessage"]) for s in compiled["Steps"]] == [
        ("make", "toy make reads nothing"),
        ("use", "toy use reads parts=s3://toy/make/parts"),
        ("make-after", "after"),
        ("use-after", "after"),
    ]


# ---- nothing unapproved is deployed ---------------------------------------------------------------


def every_value(value: Any) -> Iterator[Any]:
    """Every key and value inside a definition, at any depth (condition branches included)."""
    yield value
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from every_value(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from every_value(inner)


@pytest.fixture
def every_kind(scratch: Callable[..., str]) -> Pipeline:
    """prepare (processing) -> fit (training) -> score (processing) -> enroll (registration), without a gate."""
    package = scratch("prepare", outputs={"data": "data"})
    scratch("fit", kind="TRAINING", inputs={"data": "data"}, outputs={"model": "model-weights"})
    scratch("score", inputs={"model": "model-weights", "data": "data"}, outputs={"metrics": "metrics"})
    scratch("enroll", kind="REGISTRATION", inputs={"model": "model-weights", "metrics": "metrics"}, outputs={"decision": "decision"})
    steps = [{"step": s} for s in ("prepare", "fit", "score", "enroll")]
    pipeline = pipeline_from_dict({"name": "every-kind", "catalog": package, "steps": steps})
    assert {n.definition.contract.job_kind for n in pipeline.steps} == set(JobKind)
    return pipeline


@pytest.mark.parametrize("which", ["drone-detection", "every job kind"])
def test_no_compiled_path_deploys_or_approves(which: str, drone: Pipeline, every_kind: Pipeline) -> None:
    pipeline = drone if which == "drone-detection" else every_kind
    definition = compile_pipeline(pipeline, SETTINGS)
    steps = all_steps(definition["Steps"])
    assert {s["Type"] for s in steps} <= {"Processing", "Training", "Condition", "Fail", "RegisterModel"}
    kinds = {n.name: n.definition.contract.job_kind for n in pipeline.steps}
    jobs = [s for s in steps if s["Type"] in ("Processing", "Training")]
    assert sorted((s["Name"], s["Type"]) for s in jobs) == sorted((name, JOB_STEP_TYPES[kind]) for name, kind in kinds.items())
    versions = [s for s in steps if s["Type"] == "RegisterModel"]
    assert versions and {v["Arguments"]["ModelApprovalStatus"] for v in versions} == {"PendingManualApproval", "Rejected"}
    texts = [v for v in every_value(definition) if isinstance(v, str)]
    assert not [t for t in texts if "ModelPackageArn" in t or t == "Approved"]
    assert not [t for t in texts if any(word in t for word in ("CreateModel", "CreateEndpoint", "deploy-endpoint", "UpdateEndpoint"))]
