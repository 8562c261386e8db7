"""The closing summary of a drone-detection run: metrics, MLflow run, artifacts, next commands.

The engine is domain-free; this module knows where the drone steps leave their results
(`training.json` beside the weights, `evaluation.json`, `registration.json`) and says what to do
next. A damaged record is a one-line StateFileError (`skyops.registry.records`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skyops.cli.output import Output
    from skyops.pipeline.lineage import RunRecord


def find_output(record: RunRecord, file: str) -> Path | None:
    """The first step output of the run that holds `file`."""
    for step in record.steps.values():
        for output in step.outputs.values():
            path = Path(output["path"]) / file
            if path.is_file():
                return path
    return None


def print_results(out: Output, record: RunRecord) -> None:
    """The run's results, one line each; paths are printed as they are (`Output` reads no markup)."""
    from skyops.registry.records import EVALUATION, REGISTRATION, TRAINING, read_evaluation, read_registration, read_training

    training_path = find_output(record, TRAINING)
    evaluation_path = find_output(record, EVALUATION)
    registration_path = find_output(record, REGISTRATION)
    training = read_training(training_path.parent) if training_path else None
    evaluation = read_evaluation(evaluation_path.parent) if evaluation_path else None
    registration = read_registration(registration_path.parent) if registration_path else None
    if training_path and training:
        out.line(f"model      {training_path.parent / 'best.pt'}  ({training['epochs_completed']} epochs on {training['device']})")
        out.line(f"MLflow     run {training['mlflow_run_id']} in experiment {training['experiment']!r}  (open it: skyops ui)")
    if evaluation_path and evaluation:
        m, d = evaluation["metrics"], evaluation["dataset"]
        out.line(
            f"metrics    mAP50 {m['map50']:.3f}  mAP50-95 {m['map50_95']:.3f}  precision {m['precision']:.3f}  recall {m['recall']:.3f}"
            f"  ({d['split']} split, {d['images']} images)"
        )
        out.line(f"evaluation {evaluation_path}")
        if (evaluation_path.parent / "report.html").is_file():
            out.line(f"report     {evaluation_path.parent / 'report.html'}")
        if weakest := evaluation.get("weakest_slice"):
            out.line(
                f"weakest    slice {weakest['family']}={weakest['name']}: mAP50-95 {weakest['map50_95']:.3f} ({weakest['instances']} boxes)"
            )
        if evaluation.get("comparison"):
            c = evaluation["comparison"]
            out.line(
                f"champion   mAP50-95 delta {c['delta']['map50_95']:+.3f}: challenger {'better' if c['challenger_better'] else 'not better'}"
            )
            if (c.get("slices") or {}).get("worst"):
                w = c["slices"]["worst"]
                out.line(f"champion   worst slice {w['family']}={w['name']}: mAP50-95 delta {w['delta']:+.3f}")
    if registration:
        verdict = "passed" if registration["gate"].get("passed") else "failed"
        done = "registered" if registration["created"] else "already registered as"
        out.line(f"{done} {registration['model']} v{registration['version']}: {registration['status']} (registration gate {verdict})")
        out.line(
            f"next       skyops models show {registration['version']}  ·  skyops models approve {registration['version']} --as <ml-engineer>"
        )
    out.line(f"next       skyops runs show {record.run_id}  ·  skyops models list  ·  skyops ui")
