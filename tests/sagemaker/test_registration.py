"""The same registration decision on both engines: the register script run as the local engine runs it
(a real MLflow store) and as the compiled definition runs it (its arguments and environment, then the
decision Condition), for the same evaluation.json, champion comparison and exported package."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skyops.pipeline import runtime
from skyops.pipeline.builders import builder_for
from skyops.pipeline.definition import Pipeline
from skyops.pipeline.runtime import PATHS_ENV
from skyops.pipeline.sagemaker import compile_pipeline
from skyops.registry.models import ModelRegistry
from skyops.training.evaluate import write_evaluation
from skyops.training.tracking import TrackingStore
from tests.steps.conftest import (  # noqa: F401 - fixtures: a real store, a trained-model folder
    evaluation_document,
    step_state,
    trained,
    write_package,
)

from .conftest import SETTINGS
from .evaluator import Execution

Trained = Callable[[bytes], tuple[Path, Path]]


def comparison(delta: float, *, worst_slice: float | None = 0.0) -> dict[str, Any]:
    """The evaluate step's comparison with a champion whose mAP50-95 is 0.2: the challenger is `delta` away,
    and `worst_slice` away on its worst slice (small objects); None: the champion's document had no slices."""
    champion = {"map50": 0.4, "map50_95": 0.2, "precision": 0.5, "recall": 0.5}
    slices = None
    if worst_slice is not None:
        worst = {"family": "size", "name": "small", "challenger": 0.3 + worst_slice, "champion": 0.3, "delta": worst_slice, "instances": 40}
        slices = {
            "min_instances": 20,
            "compared": 2,
            "worst": worst,
            "delta": {"size": {"small": worst_slice, "medium": max(worst_slice, delta)}},
        }
    return {
        "champion": {"source": "weights", "weights_sha256": "c" * 64, "metrics": champion},
        "delta": {"map50": delta, "map50_95": delta},
        "challenger_better": delta > 0,
        "slices": slices,
    }


# (challenger's mAP50, its comparison with the champion, parameter values) -> the status both engines decide
CASES = {
    "no champion, above the bars": (0.5, None, {"min_map50": "0.3"}, "PendingManualApproval"),
    "better than the champion": (0.6, comparison(0.1), {"min_map50": "0.3"}, "PendingManualApproval"),
    "within the allowed regression": (0.5, comparison(-0.01), {"max_regression": "0.02"}, "PendingManualApproval"),
    "beyond the allowed regression": (0.5, comparison(-0.05), {"max_regression": "0.02"}, "Rejected"),
    "below the quality bar": (0.2, comparison(0.1), {"min_map50": "0.3"}, "Rejected"),
    "worst slice within the allowed slice regression": (
        0.5,
        comparison(0.01, worst_slice=-0.04),
        {"max_slice_regression": "0.05"},
        "PendingManualApproval",
    ),
    "worst slice beyond the allowed slice regression": (
        0.5,
        comparison(0.01, worst_slice=-0.08),
        {"max_slice_regression": "0.05"},
        "Rejected",
    ),
    "a tighter slice margin refuses the same model": (
        0.5,
        comparison(0.01, worst_slice=-0.04),
        {"max_slice_regression": "0.03"},
        "Rejected",
    ),
    "a champion without slices is not compared by slice": (
        0.5,
        comparison(0.01, worst_slice=None),
        {"max_slice_regression": "0.0"},
        "PendingManualApproval",
    ),
}

# the slice rule's reason, in both engines' decisions, for the cases about it
SLICE_REASONS = {
    "worst slice within the allowed slice regression": "worst slice size=small: mAP50-95 -0.040 vs the champion (0.260 against 0.300, 40 boxes; 2 slices compared); within the allowed slice regression 0.050",
    "worst slice beyond the allowed slice regression": "worst slice size=small: mAP50-95 -0.080 vs the champion (0.220 against 0.300, 40 boxes; 2 slices compared); beyond the allowed slice regression 0.050",
    "a tighter slice margin refuses the same model": "worst slice size=small: mAP50-95 -0.040 vs the champion (0.260 against 0.300, 40 boxes; 2 slices compared); beyond the allowed slice regression 0.030",
    "a champion without slices is not compared by slice": "slices not compared: the champion's evaluation has none (an evaluation document older than schema 1.1)",
}


@pytest.fixture(autouse=True)
def _runtime_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """`runtime.run` keeps its process's progress state in a module global: restored after each test."""
    monkeypatch.setattr(runtime, "_progress", runtime._progress)


def run_job(step_definition: Any, argv: tuple[str, ...], environ: dict[str, str]) -> None:
    """The step's script in this process, as its job runs it (environ maps container paths to local folders)."""
    assert runtime.run(step_definition, argv, environ) == 0


def as_sagemaker_model(model_dir: Path, into: Path) -> Path:
    """The model folder as a SageMaker job receives a training job's model: one model.tar.gz."""
    into.mkdir(parents=True)
    with tarfile.open(into / "model.tar.gz", "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    return into


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_engines_decide_the_same_status_for_the_same_model_name(
    case: str,
    drone: Pipeline,
    trained: Trained,  # noqa: F811
    step_state: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    map50, compared, given, expected = CASES[case]
    model_name = f"parity-case-{sorted(CASES).index(case)}"  # a model of its own in the session's store
    model_dir, evaluation = trained(case.encode())
    digest = hashlib.sha256(case.encode()).hexdigest()
    write_evaluation(evaluation_document(digest, map50=map50, comparison=compared), evaluation / "evaluation.json")
    exported = write_package(tmp_path / "package", case.encode())
    params = {**given, "model_name": model_name}
    register = drone.step("register").definition
    contract = register.contract

    # The local engine: the builder's task for the resolved config, on a real MLflow store.
    config = drone.resolve_configs(drone.resolve_parameters(params))["register"]
    local_out = tmp_path / "local"
    task = builder_for(contract).local_task(
        register, config, {"model": model_dir, "evaluation": evaluation, "package": exported}, {"registration": local_out}, None
    )
    local_env = {"SKYOPS_STATE_DIR": str(step_state), "SKYOPS_TRACKING_URI": "", "SKYOPS_RUN_ID": "run-1", "SKYOPS_USER": "pipeline"}
    run_job(register, task.argv, {**local_env, **task.env})
    registration = json.loads((local_out / "registration.json").read_text())
    registry = ModelRegistry(TrackingStore.local(step_state), registration["model"])
    local_status = registry.get(registration["version"]).status.value

    # SageMaker: the compiled register job, with the arguments and environment the definition gives it.
    definition = compile_pipeline(drone, SETTINGS, params)
    execution = Execution(definition)
    job = execution.step("register")["Arguments"]
    sagemaker_out = tmp_path / "sagemaker"
    inputs = {"model": as_sagemaker_model(model_dir, tmp_path / "model-archive"), "evaluation": evaluation, "package": exported}
    paths = {i["S3Input"]["LocalPath"]: inputs[i["InputName"]] for i in job["ProcessingInputs"] if i["InputName"] in inputs}
    paths.update({o["S3Output"]["LocalPath"]: sagemaker_out / o["OutputName"] for o in job["ProcessingOutputConfig"]["Outputs"]})
    environ = {**execution.value(job["Environment"]), PATHS_ENV: json.dumps({k: str(v) for k, v in paths.items()})}
    run_job(register, tuple(execution.value(job["AppSpecification"]["ContainerArguments"])), environ)
    assert [v.version for v in registry.versions()] == [registration["version"]]  # the SageMaker run registered nothing itself
    execution.outputs[("register", "registration")] = sagemaker_out / "registration"
    (version,) = execution.branch(execution.step("register-decision"))
    compiled_status = version["Arguments"]["ModelApprovalStatus"]

    assert local_status == compiled_status == expected
    assert registration["model"] == execution.value(version["Arguments"]["ModelPackageGroupName"]) == model_name
    local_decision = json.loads((local_out / "decision.json").read_text())
    sagemaker_decision = json.loads((sagemaker_out / "registration" / "decision.json").read_text())
    assert sagemaker_decision["reasons"] == local_decision["reasons"] == registry.get(registration["version"]).gate["reasons"]
    assert sagemaker_decision["registry"] == "sagemaker" and local_decision["registry"] == "local"
    if case in SLICE_REASONS:
        assert local_decision["reasons"][-1] == SLICE_REASONS[case]
    # The package on record: in both decisions; on the local version as tags; on SageMaker as the version's model data.
    archive_sha256 = hashlib.sha256((exported / "model.tar.gz").read_bytes()).hexdigest()
    assert sagemaker_decision["package"] == local_decision["package"] == {"artifacts": ["onnx", "torch"], "sha256": archive_sha256}
    assert registry.get(registration["version"]).artifacts == ("onnx", "torch")
    execution.outputs[("export", "package")] = exported
    (container,) = version["Arguments"]["InferenceSpecification"]["Containers"]
    assert Path(execution.value(container["ModelDataUrl"])) == exported / "model.tar.gz"
