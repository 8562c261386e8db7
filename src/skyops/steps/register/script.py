"""register: a new model version in the registry, with its model card and gate decision.

Runs only when the pipeline's quality gate passed. It registers the trained weights as
PendingManualApproval when the registration gate (absolute bars plus the champion comparison)
passes, as Rejected otherwise, and writes both the decision and its reasons onto the version.
Approving is an ML Engineer's act (`skyops models approve`), never the pipeline's.
On SageMaker this step compiles to a RegisterModel step into a model package group.
"""

from __future__ import annotations

import json
import platform
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
    outputs=(Port(name="registration", kind="registration", description="registration.json: name, version, status, gate"),),
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


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=RegisterConfig, libraries=("mlflow",))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: RegisterConfig) -> None:
    from skyops.registry.audit import AuditLog, Outcome
    from skyops.registry.gate import GatePolicy, decide
    from skyops.registry.models import ApprovalStatus, ModelRegistry
    from skyops.training.tracking import TrackingStore

    training = json.loads((inputs["model"] / "training.json").read_text())
    evaluation = json.loads((inputs["evaluation"] / "evaluation.json").read_text())
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
    client.log_artifact(run_id, str(inputs["evaluation"] / "evaluation.json"), "evaluation")
    if "profile" in inputs:
        client.log_artifact(run_id, str(inputs["profile"] / "profile.json"), "data")
    metrics = {k: evaluation["metrics"][k] for k in ("map50", "map50_95", "precision", "recall")}
    card = {
        "summary": f"YOLO11 detector for {', '.join(training['names'])}; mAP50 {metrics['map50']:.3f} on the test split",
        "classes": training["names"],
        "data_fingerprint": training["data_fingerprint"],
        "metrics": metrics,
        "per_size": evaluation["per_size"],
        "training": {k: training[k] for k in ("epochs_completed", "device", "imgsz", "seconds")},
        "pipeline_run": env["SKYOPS_RUN_ID"],
        "mlflow_run": run_id,
        "libraries": versions("ultralytics", "torch", "mlflow"),
        "intended_use": args.intended_use,
        "limitations": args.limitations,
    }
    artifacts = client.get_run(run_id).info.artifact_uri
    status = ApprovalStatus.PENDING if gate["passed"] else ApprovalStatus.REJECTED
    version = registry.register(run_id=run_id, source=f"{artifacts}/weights", metrics=metrics, card=card, gate=gate, status=status)
    target = f"{args.model_name}:{version.version}"
    AuditLog(state_dir / "audit.log").append(
        actor=env["SKYOPS_USER"],
        role="pipeline",
        action="register",
        target=target,
        outcome=Outcome.SUCCEEDED,
        reason=status.value,
        details={"gate": gate},
    )
    result = {"model": args.model_name, "version": version.version, "status": status.value, "gate": gate, "mlflow_run_id": run_id}
    (outputs["registration"] / "registration.json").write_text(json.dumps(result, indent=1))
    print(f"registered {target} as {status.value}; gate {'passed' if gate['passed'] else 'failed'}:")
    for reason in gate["reasons"]:
        print(f"  - {reason}")
