"""The records a training pipeline leaves beside its outputs, read back with their shape checked.

    <model>/training.json              the train step: MLflow run, data, epochs, device
    <evaluation>/evaluation.json       the evaluate step (schema: skyops/training/evaluation_schema.json)
    <registration>/registration.json   the register step: model, version, status, gate, weights digest

The register step, its cache recheck and the CLI's summaries read them. A damaged one (cut short,
edited, from an older skyops) is a `StateFileError` naming the file and the way back, not a KeyError
deep in a summary. Only the keys readers use are checked: the evaluate step validates its document
against the full schema when it writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from skyops.statefile import Field, is_object, is_text, is_version, read_json_state, shape_problems

TRAINING = "training.json"
EVALUATION = "evaluation.json"
REGISTRATION = "registration.json"
RERUN_HINT = "the step's output is damaged: run the pipeline again with --no-cache (or delete that step's entry under .skyops/cache/)"


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(n, str) for n in value)


TRAINING_FIELDS: Sequence[Field] = (
    ("mlflow_run_id", is_text, "an MLflow run id"),
    ("experiment", is_text, "an experiment name"),
    ("names", is_names, "a list of class names"),
    ("data_fingerprint", is_text, "a fingerprint"),
    ("epochs_completed", is_count, "a count of epochs"),
    ("device", is_text, "a device"),
    ("seconds", is_number, "a number of seconds"),
    ("imgsz", is_count, "an image size"),
)
REGISTRATION_FIELDS: Sequence[Field] = (
    ("model", is_text, "a model name"),
    ("version", is_version, "a positive integer"),
    ("status", is_text, "an approval status"),
    ("gate", is_object, "the gate decision"),
    ("mlflow_run_id", is_text, "an MLflow run id"),
    ("source", is_text, "the registered source URI"),
    ("tracking_uri", is_text, "the registry's store URI"),
    ("weights_sha256", is_text, "the weights' sha256"),
    ("created", is_bool, "true or false"),
)
_METRICS: Sequence[Field] = tuple((k, is_number, "a number") for k in ("map50", "map50_95", "precision", "recall"))


def read_training(folder: Path) -> dict[str, Any]:
    """`training.json` of a train step's model folder."""
    return _read(folder / TRAINING, "training record", "the train step's summary", lambda v: shape_problems(v, TRAINING_FIELDS))


def read_evaluation(folder: Path) -> dict[str, Any]:
    """`evaluation.json` of an evaluate step's output folder."""
    return _read(
        folder / EVALUATION, "evaluation document", "the evaluate step's document (docs/evaluation-schema.md)", _evaluation_problems
    )


def read_registration(folder: Path) -> dict[str, Any]:
    """`registration.json` of a register step's output folder."""
    return _read(
        folder / REGISTRATION, "registration record", "the register step's record", lambda v: shape_problems(v, REGISTRATION_FIELDS)
    )


def _evaluation_problems(value: Any) -> list[str]:
    found = shape_problems(
        value, [("metrics", is_object, "an object"), ("dataset", is_object, "an object"), ("model", is_object, "an object")]
    )
    if found:
        return found
    found += shape_problems(value["metrics"], _METRICS, at="metrics.")
    found += shape_problems(value["dataset"], [("split", is_text, "a split name"), ("images", is_count, "a count")], at="dataset.")
    found += shape_problems(value["model"], [("weights_sha256", is_text, "a sha256")], at="model.")
    comparison = value.get("comparison")
    if comparison is not None:
        found += shape_problems(
            comparison, [("delta", is_object, "an object"), ("challenger_better", is_bool, "true or false")], at="comparison."
        )
        found += shape_problems(comparison, [("champion", is_object, "an object")], at="comparison.")
        if not found:
            found += shape_problems(comparison["delta"], [("map50_95", is_number, "a number")], at="comparison.delta.")
            found += shape_problems(
                comparison["champion"],
                [("weights_sha256", is_text, "a sha256"), ("metrics", is_object, "an object")],
                at="comparison.champion.",
            )
    return found


def _read(path: Path, what: str, expected: str, problems: Callable[[Any], list[str]]) -> dict[str, Any]:
    data: dict[str, Any] = read_json_state(path, what=what, expected=expected, hint=RERUN_HINT, problems=problems)
    return data
