"""register: a new model version in the registry, with its model card and gate decision.

Runs only when the pipeline's quality gate passed. It registers the trained weights as
PendingManualApproval when the registration gate (absolute bars plus the champion comparison)
passes, as Rejected otherwise, and writes both the decision and its reasons onto the version.
Approving is an ML Engineer's act (`skyops models approve`), never the pipeline's.
On SageMaker this step compiles to a RegisterModel step into a model package group.

The same weights are never registered twice. A re-run after a champion change evaluates again and
so misses this step's cache, but if the registry already has a version with these weights (by the
sha256 of best.pt) that version is returned untouched: its status, card and gate decision stay those
a reviewer saw; this run's gate decision is recorded in registration.json (`created: false`).

A cached result is re-checked before it is reused (`recheck`): a registration whose version was
deleted, or that was made in another store, is not reported as true; the step runs again.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class RegisterConfig(StepConfig):
    model_name: str = "drone-detector"
    min_map50: Annotated[float, Range(ge=0, le=1)] = 0.0
    min_map50_95: Annotated[float, Range(ge=0, le=1)] = 0.0
    max_regression: Annotated[float, Range(ge=0, le=1)] = 0.02  # allowed mAP50-95 drop against the champion
    intended_use: str = "Detecting vehicles and people in top-down drone imagery (nadir views, 50-150 m altitude)."
    limitations: str = "Not for safety-critical use; untested on oblique views, night imagery and classes it was not trained on."


SPEC = StepSpec(
    step_type="register",
    node_type=NodeType.INTERNAL,
    inputs=(
        Port(name="model", kind="model-weights"),
        Port(name="evaluation", kind="evaluation"),
        Port(name="profile", kind="data-profile", optional=True),
    ),
    outputs=(
        Port(
            name="registration",
            kind="registration",
            description="registration.json: name, version, status, gate",
            files=("registration.json",),
        ),
    ),
    description="register the model version with its card and gate decision",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.register",
    job_kind=JobKind.REGISTRATION,
    inputs={"model": processing_input("model"), "evaluation": processing_input("evaluation"), "profile": processing_input("profile")},
    outputs={"registration": processing_output("registration")},
    optional_env={"SKYOPS_STATE_DIR": "/tmp/skyops", "SKYOPS_TRACKING_URI": "", "SKYOPS_RUN_ID": "", "SKYOPS_USER": "pipeline"},
)


def versions(*names: str) -> dict[str, str]:
    return {"python": platform.python_version(), **{n: metadata.version(n) for n in names}}


def recheck(outputs: Mapping[str, Path], env: Mapping[str, str]) -> str | None:
    """Whether a cached registration is still true: None when it is, else why the step must run again.

    Called by the engine on a cache hit, with the published output folders and the step's env.
    True means: the registry the step would use now is the one it registered in, and it still
    has that version of that model, from the same MLflow run and source. Cheap on the embedded
    store (a read-only sqlite query, no MLflow import; see skyops.registry.lookup).
    """
    from skyops.errors import StateFileError
    from skyops.registry.lookup import RegistryLookup
    from skyops.registry.records import read_registration
    from skyops.training.uris import store_uri

    try:
        done = read_registration(outputs["registration"])
    except StateFileError as e:
        return e.message
    uri = store_uri(Path(env.get("SKYOPS_STATE_DIR") or CONTRACT.optional_env["SKYOPS_STATE_DIR"]), env.get("SKYOPS_TRACKING_URI", ""))
    name = f"{done['model']} v{done['version']}"
    if done["tracking_uri"] != uri:
        return f"{name} was registered in {done['tracking_uri']}, but this run's registry is {uri}"
    lookup = RegistryLookup(uri)
    if not lookup.store_exists:
        return f"the registry {lookup.database} that holds {name} no longer exists"
    found = lookup.version(done["model"], done["version"])
    if found is None:
        return f"the registry no longer has {name} (deleted)"
    if (found.run_id, found.source) != (done["mlflow_run_id"], done["source"]):
        return f"{name} in the registry now comes from MLflow run {found.run_id}, not {done['mlflow_run_id']}"
    return None


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=RegisterConfig, libraries=("mlflow",), recheck=recheck)
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: RegisterConfig) -> None:
    from skyops.errors import ConfigError
    from skyops.pipeline.hashing import hash_file, write_json_atomic
    from skyops.registry.audit import AuditLog, Outcome
    from skyops.registry.gate import GatePolicy, decide
    from skyops.registry.models import ApprovalStatus, ModelRegistry
    from skyops.registry.records import read_evaluation, read_training
    from skyops.training.tracking import TrackingStore

    training = read_training(inputs["model"])
    evaluation = read_evaluation(inputs["evaluation"])
    weights = inputs["model"] / "best.pt"
    if not weights.is_file():
        raise ConfigError(f"input 'model' ({inputs['model']}) has no best.pt", hint="bind the train step's model folder")
    digest = hash_file(weights)
    if evaluation["model"]["weights_sha256"] != digest:
        raise ConfigError(
            f"evaluation.json scored weights {evaluation['model']['weights_sha256'][:12]}, but the model to register is {digest[:12]} ({weights})",
            hint="wire register's evaluation input to the evaluate step that scored this model",
        )
    state_dir = Path(env["SKYOPS_STATE_DIR"])
    registry = ModelRegistry(TrackingStore.local(state_dir, env["SKYOPS_TRACKING_URI"]), args.model_name)
    champion = registry.by_alias("champion")
    gate = decide(
        evaluation,
        {"version": champion.version, "metrics": champion.metrics} if champion else None,
        GatePolicy(min_map50=args.min_map50, min_map50_95=args.min_map50_95, max_regression=args.max_regression),
    )
    run_id = training["mlflow_run_id"]
    client = registry.client
    metrics = {k: evaluation["metrics"][k] for k in ("map50", "map50_95", "precision", "recall")}
    card = {
        "summary": f"YOLO11 detector for {', '.join(training['names'])}; mAP50 {metrics['map50']:.3f} on the test split",
        "classes": training["names"],
        "data_fingerprint": training["data_fingerprint"],
        "metrics": metrics,
        "per_size": evaluation.get("per_size", {}),
        "training": {k: training[k] for k in ("epochs_completed", "device", "imgsz", "seconds")},
        "pipeline_run": env["SKYOPS_RUN_ID"],
        "mlflow_run": run_id,
        "libraries": versions("ultralytics", "torch", "mlflow"),
        "intended_use": args.intended_use,
        "limitations": args.limitations,
    }
    artifacts = client.get_run(run_id).info.artifact_uri
    status = ApprovalStatus.PENDING if gate["passed"] else ApprovalStatus.REJECTED
    done = registry.register(
        run_id=run_id, source=f"{artifacts}/weights", weights_sha256=digest, metrics=metrics, card=card, gate=gate, status=status
    )
    version = done.version
    target = f"{args.model_name}:{version.version}"
    if done.created:
        client.log_artifact(run_id, str(inputs["evaluation"] / "evaluation.json"), "evaluation")
        if "profile" in inputs:
            client.log_artifact(run_id, str(inputs["profile"] / "profile.json"), "data")
        AuditLog(state_dir / "audit.log").append(
            actor=env["SKYOPS_USER"],
            role="pipeline",
            action="register",
            target=target,
            outcome=Outcome.SUCCEEDED,
            reason=status.value,
            details={"gate": gate, "weights_sha256": digest},
        )
    result = {
        "model": args.model_name,
        "version": version.version,
        "status": version.status.value,
        "created": done.created,
        "gate": gate,  # this run's decision (for an existing version, the one on the version may differ)
        "mlflow_run_id": version.run_id,
        "source": version.source,
        "tracking_uri": registry.store.uri,
        "weights_sha256": digest,
    }
    write_json_atomic(outputs["registration"] / "registration.json", result)
    if done.created:
        print(f"registered {target} as {status.value}; gate {'passed' if gate['passed'] else 'failed'}:")
    else:
        print(
            f"{args.model_name}: these weights are already registered as v{version.version} ({version.status.value}); not registered again"
        )
        print(f"this run's gate {'passed' if gate['passed'] else 'failed'} (the version keeps the decision it was registered with):")
    for reason in gate["reasons"]:
        print(f"  - {reason}")
