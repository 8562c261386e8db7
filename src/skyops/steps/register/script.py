"""register: decide whether a model version is registered pending review or rejected, and register it.

Runs only when the pipeline's quality gate passed. It decides from its inputs alone, the same way on
every engine: the absolute bars and the champion comparison that the evaluate step made on the same
test split (the champion comes from the pipeline's declared source, `registry:<model>@champion`).
It writes decision.json (status PendingManualApproval or Rejected, every reason, the model card)
and card.json. Approving is an ML Engineer's act (`skyops models approve`), never the pipeline's.

Then, with SKYOPS_REGISTRY=local (the local engine), it registers the version in the MLflow registry
with that status, its card and decision, through the governed registry (skyops.registry.governed) as
the user who started the run (SKYOPS_USER, from the run record), with that user's role from the
project's roles file: a user who may not register is refused and the refusal audited, and the audit
record of a registration names the run's user and role. It writes registration.json. With
SKYOPS_REGISTRY=sagemaker it stops there: the compiled pipeline registers the model package from
decision.json (a Condition on its status picks a RegisterModel step with that status); who may start
that pipeline is IAM's to decide.

The same weights are never registered twice locally. A re-run after a champion change evaluates again
and so misses this step's cache, but if the registry already has a version with these weights (by the
sha256 of best.pt) that version is returned untouched: its status, card and gate decision stay those
a reviewer saw; this run's decision is recorded in registration.json (`created: false`).

With the export step's package bound (`package`), the package is checked (every file against its
metadata.json, made from these very weights) and its artifacts go on record: in decision.json on both
engines; locally also on the version (tags skyops.artifacts, e.g. "onnx,int8,torch", and
skyops.package_sha256, the sha256 of its model.tar.gz), with the package's files logged to the
training run (tag skyops.package_uri), where `skyops serve` finds them. On SageMaker the version's
model data (ModelDataUrl) is that model.tar.gz, which the server image serves.

A cached result is re-checked before it is reused (`recheck`): a registration whose version was
deleted, or that was made in another store, is not reported as true; the step runs again.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.pipeline.contract import Registers
from skyops.settings import DEFAULT_MODEL
from skyops.steps import CATALOG

REGISTRIES = ("local", "sagemaker")  # SKYOPS_REGISTRY: who registers the version this step decided on


@dataclass(frozen=True, kw_only=True)
class RegisterConfig(StepConfig):
    model_name: str = DEFAULT_MODEL
    min_map50: Annotated[float, Range(ge=0, le=1)] = 0.0
    min_map50_95: Annotated[float, Range(ge=0, le=1)] = 0.0
    max_regression: Annotated[float, Range(ge=0, le=1)] = 0.02  # allowed mAP50-95 drop against the champion
    max_slice_regression: Annotated[float, Range(ge=0, le=1)] = 0.05  # allowed mAP50-95 drop on the worst slice
    intended_use: str = "Detecting vehicles and people in top-down drone imagery (nadir views, 50-150 m altitude)."
    limitations: str = "Not for safety-critical use; untested on oblique views, night imagery and classes it was not trained on."


SPEC = StepSpec(
    step_type="register",
    node_type=NodeType.INTERNAL,
    inputs=(
        Port(name="model", kind="model-weights"),
        Port(name="evaluation", kind="evaluation"),
        Port(name="profile", kind="data-profile", optional=True),
        Port(
            name="package",
            kind="model-package",
            optional=True,
            description="the export step's package: the version records its artifacts; on SageMaker its model.tar.gz is the model data",
        ),
    ),
    outputs=(
        Port(
            name="registration",
            kind="registration",
            description="decision.json (status, reasons, card), card.json; locally also registration.json (the registered version)",
            files=("decision.json", "card.json"),
        ),
    ),
    description="decide on the model version (quality bars, champion comparison) and register it with its card",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.register",
    job_kind=JobKind.REGISTRATION,
    inputs={
        "model": processing_input("model"),
        "evaluation": processing_input("evaluation"),
        "profile": processing_input("profile"),
        "package": processing_input("package"),
    },
    outputs={"registration": processing_output("registration")},
    optional_env={
        "SKYOPS_STATE_DIR": "/tmp/skyops",
        "SKYOPS_TRACKING_URI": "",
        "SKYOPS_RUN_ID": "",
        "SKYOPS_USER": "pipeline",
        "SKYOPS_REGISTRY": "local",
    },
    registers=Registers(
        model="package",  # the server image serves the exported model.tar.gz, not the training job's archive
        model_file="model.tar.gz",
        metrics="evaluation",
        metrics_file="evaluation.json",
        decision="registration",
        decision_file="decision.json",
        card_file="card.json",
        model_name_config="model_name",
    ),
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


def model_card(training: Mapping[str, Any], evaluation: Mapping[str, Any], env: Mapping[str, str], args: RegisterConfig) -> dict[str, Any]:
    """What a reviewer reads about the version: data, metrics, training, intended use and limits."""
    metrics = {k: evaluation["metrics"][k] for k in ("map50", "map50_95", "precision", "recall")}
    return {
        "summary": f"YOLO11 detector for {', '.join(training['names'])}; mAP50 {metrics['map50']:.3f} on the test split",
        "classes": training["names"],
        "data_fingerprint": training["data_fingerprint"],
        "metrics": metrics,
        "per_size": evaluation.get("per_size", {}),
        "coco": evaluation.get("coco"),  # COCO's AP, AP50, AP75, APs/m/l, AR (schema 1.1; None before)
        "slices": _slice_summary(evaluation.get("slices", {})),
        "weakest_slice": evaluation.get("weakest_slice"),
        "training": {k: training[k] for k in ("epochs_completed", "device", "imgsz", "seconds")},
        "pipeline_run": env["SKYOPS_RUN_ID"],
        "mlflow_run": training["mlflow_run_id"],
        "libraries": versions("ultralytics", "torch", "mlflow"),
        "intended_use": args.intended_use,
        "limitations": args.limitations,
    }


def _slice_summary(slices: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The card's view of the slices: mAP50-95 and ground-truth boxes of each (evaluation.json has the rest)."""
    return {
        family: {name: {"map50_95": s["map50_95"], "instances": s["instances"]} for name, s in entries.items()}
        for family, entries in slices.items()
    }


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=RegisterConfig, libraries=("mlflow",), recheck=recheck)
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: RegisterConfig) -> None:
    from skyops.errors import ConfigError
    from skyops.pipeline.contract import Decision
    from skyops.pipeline.hashing import hash_file, write_json_atomic
    from skyops.registry.gate import GatePolicy, champion_comparison, decide
    from skyops.registry.records import read_evaluation, read_training
    from skyops.training.model_folder import WEIGHTS, model_folder

    registry = env["SKYOPS_REGISTRY"]
    if registry not in REGISTRIES:
        raise ConfigError(f"SKYOPS_REGISTRY is {registry!r}; expected one of {', '.join(REGISTRIES)}", hint="the engine sets it; unset it")
    model_dir = model_folder(inputs["model"])  # a SageMaker model.tar.gz is unpacked first
    training = read_training(model_dir)
    evaluation = read_evaluation(inputs["evaluation"])
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"input 'model' ({inputs['model']}) has no best.pt", hint="bind the train step's model folder")
    digest = hash_file(weights)
    if evaluation["model"]["weights_sha256"] != digest:
        raise ConfigError(
            f"evaluation.json scored weights {evaluation['model']['weights_sha256'][:12]}, but the model to register is {digest[:12]} ({weights})",
            hint="wire register's evaluation input to the evaluate step that scored this model",
        )
    package = exported_package(inputs["package"], digest) if "package" in inputs else None
    policy = GatePolicy(
        min_map50=args.min_map50,
        min_map50_95=args.min_map50_95,
        max_regression=args.max_regression,
        max_slice_regression=args.max_slice_regression,
    )
    gate = decide(evaluation, champion_comparison(evaluation), policy)
    status = Decision.PENDING if gate["passed"] else Decision.REJECTED
    card = model_card(training, evaluation, env, args)
    decision = {
        "model": args.model_name,
        "status": status.value,
        "reasons": gate["reasons"],
        "gate": gate,
        "weights_sha256": digest,
        "actor": {"user": env["SKYOPS_USER"], "run": env["SKYOPS_RUN_ID"]},
        "registry": registry,
        "card": card,
        "package": package,  # the exported artifacts and the sha256 of their model.tar.gz; None without an export
    }
    write_json_atomic(outputs["registration"] / "card.json", card)
    write_json_atomic(outputs["registration"] / "decision.json", decision)
    print(f"decision on {args.model_name} ({digest[:12]}): {status.value}; gate {'passed' if gate['passed'] else 'failed'}:")
    for reason in gate["reasons"]:
        print(f"  - {reason}")
    if package is not None:
        print(f"package: {', '.join(package['artifacts'])} (model.tar.gz sha256 {package['sha256'][:12]})")
    if registry == "local":
        register_locally(inputs, outputs, env, args, training=training, digest=digest, decision=decision)
    else:
        print(f"{registry} registers the version from decision.json (status {status.value})")


def exported_package(folder: Path, digest: str) -> dict[str, Any]:
    """The export step's package, checked: every file as its metadata.json records it, made from these weights.

    Returns:
        {"artifacts": backend names in the package, "sha256": of its model.tar.gz}.
    """
    from skyops.errors import ConfigError
    from skyops.serving.package import archive_sha256, model_dir, read_metadata

    metadata = read_metadata(model_dir(folder))  # StateFileError for a damaged package: one line, never registered
    made_from = metadata.source.weights_sha256
    if made_from != digest:
        raise ConfigError(
            f"the package {folder} was exported from weights {made_from[:12]}, but the model to register is {digest[:12]}",
            hint="wire register's package input to the export step of this model",
        )
    return {"artifacts": list(metadata.artifact_names), "sha256": archive_sha256(folder)}


def register_locally(
    inputs: dict[str, Path],
    outputs: dict[str, Path],
    env: dict[str, str],
    args: RegisterConfig,
    *,
    training: Mapping[str, Any],
    digest: str,
    decision: Mapping[str, Any],
) -> None:
    """Register the decided version in the MLflow registry (once per weights) as the run's user, write registration.json.

    The governed registry checks the user's `register` permission and audits the registration (also
    one that finds these weights already registered: `created` false in the record).
    """
    from skyops.pipeline.hashing import write_json_atomic
    from skyops.registry.acting import run_governance
    from skyops.registry.governed import GovernedRegistry
    from skyops.registry.models import Candidate, ModelRegistry
    from skyops.serving.package import model_dir
    from skyops.training.tracking import TrackingStore

    state_dir = Path(env["SKYOPS_STATE_DIR"])
    registry = ModelRegistry(TrackingStore.local(state_dir, env["SKYOPS_TRACKING_URI"]), args.model_name)
    governance = run_governance(state_dir)
    gate = decision["gate"]
    run_id = training["mlflow_run_id"]
    client = registry.client
    artifacts = client.get_run(run_id).info.artifact_uri
    package, package_uri = decision["package"], ""
    if package is not None and registry.by_weights(digest) is None:
        # Logged before the version exists, under the package's own digest: a version never names files not yet
        # there, and a concurrent registration of the same weights cannot overwrite the files this one names.
        where = f"package/{package['sha256'][:16]}"
        client.log_artifacts(run_id, str(model_dir(inputs["package"])), where)
        package_uri = f"{artifacts}/{where}"
    candidate = Candidate(
        run_id=run_id,
        source=f"{artifacts}/weights",
        weights_sha256=digest,
        metrics=decision["card"]["metrics"],
        card=decision["card"],
        gate=gate,
        artifacts=tuple(package["artifacts"]) if package else (),
        package_sha256=package["sha256"] if package else "",
        package_uri=package_uri,
    )
    done = GovernedRegistry(registry, governance).register(
        env["SKYOPS_USER"],
        candidate,
        decision["status"],
        reason=f"pipeline run {env['SKYOPS_RUN_ID']}",
        details={"gate": gate, "weights_sha256": digest},
    )
    version = registry.get(done.version)
    target = f"{args.model_name}:{version.version}"
    if done.created:
        client.log_artifact(run_id, str(inputs["evaluation"] / "evaluation.json"), "evaluation")
        if (inputs["evaluation"] / "report.html").is_file():  # the HTML evaluation report, opened from MLflow's UI
            client.log_artifact(run_id, str(inputs["evaluation"] / "report.html"), "evaluation")
        client.log_artifact(run_id, str(outputs["registration"] / "decision.json"), "registration")
        if "profile" in inputs:
            client.log_artifact(run_id, str(inputs["profile"] / "profile.json"), "data")
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
        "artifacts": list(version.artifacts),  # what the version records (an existing version keeps its own)
        "package_sha256": version.package_sha256,
        "registered_by": {"user": env["SKYOPS_USER"], "role": str(governance.role_of(env["SKYOPS_USER"]))},
    }
    write_json_atomic(outputs["registration"] / "registration.json", result)
    if done.created:
        print(f"registered {target} as {version.status.value}")
    else:
        print(
            f"{args.model_name}: these weights are already registered as v{version.version} ({version.status.value}); not registered again "
            "(the version keeps the decision it was registered with)"
        )
