"""Evaluate a YOLO model on one dataset split and build the evaluation document.

The document (schema: `evaluation_schema.json` beside this file; every field described in
docs/evaluation-schema.md) is flat, with numeric leaves at stable paths, because the SageMaker
condition step reads it as a PropertyFile (`Std:JsonGet` on `metrics.map50`).

Overall and per-class numbers come from Ultralytics' own validator, so they equal what
`YOLO(weights).val(...)` prints. The object-size slices, which Ultralytics does not report, are
computed by `skyops.evaluation.detmetrics` from the very predictions that validator scored.

`evaluate` writes nothing of its own (Ultralytics' scratch output goes to a temporary folder that is
removed); `write_evaluation` publishes a document atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from skyops.errors import ConfigError, DataValidationError, problems_error
from skyops.evaluation.detmetrics import SIZE_SLICES, ImageBoxes, box_area, slice_metrics

SCHEMA_VERSION = "1.0"
SCHEMA_RESOURCE = "evaluation_schema.json"
SPLITS = ("train", "val", "test")
PRIMARY_METRIC = "map50_95"  # decides challenger_better; ties keep the champion

Champion = str | os.PathLike[str] | Mapping[str, Any]


@dataclass(kw_only=True)
class ValidationRun:
    """One pass of Ultralytics' validator: its own numbers, and the boxes it scored.

    `images` holds, per image, the ground truth and the post-NMS predictions as Ultralytics matched
    them (letterboxed pixels), with their areas in original-image pixels (for the size slices).
    """

    metrics: dict[str, float]  # map50, map50_95, precision, recall
    per_class: list[dict[str, Any]]  # one entry per class id, in id order
    speed_ms: dict[str, float]  # preprocess, inference, postprocess: ms per image
    instances: int
    device: str = ""
    images: list[ImageBoxes] = field(default_factory=list)


def evaluate(
    weights: str | os.PathLike[str],
    data_yaml: str | os.PathLike[str],
    *,
    split: str = "test",
    imgsz: int,
    batch: int,
    conf: float = 0.001,
    iou: float = 0.7,
    device: str = "cpu",
    names: list[str],
    champion: Champion | None = None,
    state_dir: str | os.PathLike[str],
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Evaluate `weights` on `split` of `data_yaml` and return the evaluation document.

    Args:
        weights: the challenger's .pt file.
        data_yaml: an Ultralytics data yaml with an entry for `split` (see skyops.data.layout.write_data_yaml).
        split: "train", "val" or "test".
        imgsz: inference size in pixels, a multiple of 32.
        batch: images per batch.
        conf: confidence threshold of NMS; keep it low (0.001) for mAP, as Ultralytics does.
        iou: IoU threshold of NMS.
        device: "cpu", "0", "0,1", ...
        names: class names by id; must have as many entries as the model has classes.
        champion: the model to compare with: its weights (.pt, evaluated here with the same settings),
            a previous evaluation document, or the path of one (.json). None: no comparison.
        state_dir: the project's state dir (Ultralytics' private offline settings live there).
        fingerprint: the dataset manifest's fingerprint, recorded in `dataset.fingerprint`.

    Returns:
        The evaluation document, valid against the schema.

    Raises:
        ConfigError: a setting is out of range, a file is missing, or the champion is not comparable.
        DataValidationError: a champion document does not match the schema.
    """
    _check_settings(weights, data_yaml, split=split, imgsz=imgsz, batch=batch, conf=conf, iou=iou, names=names, champion=champion)
    champion_doc, champion_source = _champion_document(
        champion, data_yaml, split=split, imgsz=imgsz, batch=batch, conf=conf, iou=iou, device=device, names=names, state_dir=state_dir
    )
    run = run_validation(
        weights, data_yaml, split=split, imgsz=imgsz, batch=batch, conf=conf, iou=iou, device=device, names=names, state_dir=state_dir
    )
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "metrics": run.metrics,
        "per_class": run.per_class,
        "per_size": {name: _size_entry(run.images, area) for name, area in SIZE_SLICES.items()},
        "speed_ms": {**run.speed_ms, "total": sum(run.speed_ms.values()), "device": run.device, "imgsz": imgsz},
        "dataset": {"split": split, "images": len(run.images), "instances": run.instances, "fingerprint": fingerprint},
        "model": {"weights_sha256": file_sha256(Path(weights)), "imgsz": imgsz},
        "settings": {"conf": float(conf), "iou": float(iou), "batch": batch},
        "comparison": None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if champion_doc is not None:
        doc["comparison"] = compare(doc, champion_doc, source=champion_source)
    validate_evaluation(doc)
    return doc


def run_validation(
    weights: str | os.PathLike[str],
    data_yaml: str | os.PathLike[str],
    *,
    split: str,
    imgsz: int,
    batch: int,
    conf: float,
    iou: float,
    device: str,
    names: list[str],
    state_dir: str | os.PathLike[str],
) -> ValidationRun:
    """Run Ultralytics' validator once, keeping its numbers and every image's boxes."""
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(Path(state_dir))
    from ultralytics import YOLO  # heavy (torch); imported offline above

    model = YOLO(str(weights))
    if model.task != "detect":
        raise ConfigError(f"weights {weights} are a {model.task!r} model; evaluation needs a 'detect' model")
    if len(model.names) != len(names):
        raise ConfigError(
            f"names has {len(names)} classes but the model {weights} predicts {len(model.names)}: {list(model.names.values())}",
            hint="pass the class names of the dataset the model was trained on",
        )
    run = ValidationRun(metrics={}, per_class=[], speed_ms={}, instances=0)
    # Ultralytics' scratch output (save dir, never plots here) goes to a folder removed afterwards.
    with tempfile.TemporaryDirectory(prefix="skyops-eval-") as scratch:
        result = model.val(
            validator=_recording_validator(run),
            data=str(data_yaml),
            split=split,
            imgsz=imgsz,
            batch=batch,
            conf=conf,
            iou=iou,
            device=device,
            plots=False,
            save_json=False,
            project=scratch,
            name="val",
            exist_ok=True,
            verbose=False,
        )
    box = result.box
    run.metrics = {"map50": float(box.map50), "map50_95": float(box.map), "precision": float(box.mp), "recall": float(box.mr)}
    counts = np.asarray(result.nt_per_class, dtype=int)
    run.instances = int(counts.sum())
    row_of = {int(c): i for i, c in enumerate(box.ap_class_index)}
    for class_id, name in enumerate(names):
        instances = int(counts[class_id]) if class_id < len(counts) else 0
        entry: dict[str, Any] = {"class_id": class_id, "name": name, "instances": instances}
        if class_id in row_of and instances:
            p, r, ap50, ap = box.class_result(row_of[class_id])
            entry |= {"ap50": float(ap50), "ap50_95": float(ap), "precision": float(p), "recall": float(r)}
        else:  # no ground truth of this class in the split: AP is undefined
            entry |= {"ap50": None, "ap50_95": None, "precision": None, "recall": None}
        run.per_class.append(entry)
    run.speed_ms = {key: float(result.speed[key]) for key in ("preprocess", "inference", "postprocess")}
    return run


def _recording_validator(run: ValidationRun) -> type:
    """A DetectionValidator that also records each image's labels and predictions into `run`.

    Why hook the validator rather than run `model.predict`: Ultralytics scores predictions in its
    letterboxed batch coordinates (rect batches, its own NMS settings and max_det) and keeps no
    per-box record. A separate predict pass would letterbox and batch differently and give other
    boxes; recording inside `update_metrics` keeps exactly the boxes it scored, in the frame it
    matched them in, so the all-sizes slice reproduces its mAP. Areas, which pick the size slice,
    are taken in original-image pixels (boxes mapped back and clipped to the image), where COCO's
    thresholds apply.
    """
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils import ops

    def as_numpy(values: Any, shape: tuple[int, ...]) -> np.ndarray:
        return values.detach().cpu().numpy().astype(np.float64).reshape(shape)  # astype copies

    def original_areas(boxes: Any, prepared: dict[str, Any]) -> np.ndarray:
        scaled = ops.scale_boxes(prepared["imgsz"], boxes.clone(), prepared["ori_shape"], ratio_pad=prepared["ratio_pad"])
        return box_area(as_numpy(scaled, (-1, 4)))

    class RecordingValidator(DetectionValidator):
        def update_metrics(self, preds: list[dict[str, Any]], batch: dict[str, Any]) -> None:
            run.device = str(self.device)
            for si, pred in enumerate(preds):
                prepared = self._prepare_batch(si, batch)
                run.images.append(
                    ImageBoxes(
                        gt_boxes=as_numpy(prepared["bboxes"], (-1, 4)),
                        gt_classes=as_numpy(prepared["cls"], (-1,)).astype(int),
                        pred_boxes=as_numpy(pred["bboxes"], (-1, 4)),
                        pred_classes=as_numpy(pred["cls"], (-1,)).astype(int),
                        pred_scores=as_numpy(pred["conf"], (-1,)),
                        gt_areas=original_areas(prepared["bboxes"], prepared),
                        pred_areas=original_areas(pred["bboxes"], prepared),
                    )
                )
            super().update_metrics(preds, batch)

    return RecordingValidator


def _size_entry(images: list[ImageBoxes], area: tuple[float, float]) -> dict[str, Any]:
    result = slice_metrics(images, area)
    return {"map50": result.map50, "map50_95": result.map50_95, "instances": result.instances}


def compare(challenger: Mapping[str, Any], champion: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """The `comparison` section: champion metrics, deltas (challenger minus champion), verdict.

    Args:
        challenger: the new model's document (needs `metrics`, `dataset`).
        champion: the champion's document, already checked against the schema.
        source: "weights" (evaluated here) or "document" (a previous evaluation).

    Raises:
        ConfigError: the two were evaluated on different splits or datasets.
    """
    ours, theirs = challenger["dataset"], champion["dataset"]
    problems = []
    if ours["split"] != theirs["split"]:
        problems.append(f"split: challenger on {ours['split']!r}, champion on {theirs['split']!r}")
    if ours.get("fingerprint") and theirs.get("fingerprint") and ours["fingerprint"] != theirs["fingerprint"]:
        problems.append(f"dataset fingerprint: challenger {ours['fingerprint'][:12]}…, champion {theirs['fingerprint'][:12]}…")
    if problems:
        raise problems_error(
            ConfigError,
            "the champion comparison",
            problems,
            hint="pass the champion's weights instead, so it is re-evaluated on the same data",
        )
    delta = {key: challenger["metrics"][key] - champion["metrics"][key] for key in ("map50", "map50_95")}
    return {
        "champion": {"source": source, "weights_sha256": champion["model"]["weights_sha256"], "metrics": dict(champion["metrics"])},
        "delta": delta,
        "challenger_better": bool(delta[PRIMARY_METRIC] > 0),
    }


def _champion_document(champion: Champion | None, data_yaml: str | os.PathLike[str], **settings: Any) -> tuple[dict[str, Any] | None, str]:
    if champion is None:
        return None, ""
    if isinstance(champion, Mapping):
        doc: Any = dict(champion)
    elif Path(champion).suffix == ".json":
        try:
            doc = json.loads(Path(champion).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"champion document {champion} is unreadable: {e}", hint="pass a file written by write_evaluation") from None
    else:
        return evaluate(champion, data_yaml, champion=None, **settings), "weights"
    validate_evaluation(doc, subject="the champion's evaluation document")
    return doc, "document"


def _check_settings(
    weights: str | os.PathLike[str],
    data_yaml: str | os.PathLike[str],
    *,
    split: str,
    imgsz: int,
    batch: int,
    conf: float,
    iou: float,
    names: list[str],
    champion: Champion | None,
) -> None:
    """Collect every bad setting and raise once, before anything heavy is imported."""
    problems = []
    if not Path(weights).is_file():
        problems.append(f"weights: {weights} does not exist")
    if champion is not None and not isinstance(champion, Mapping) and not Path(champion).is_file():
        problems.append(f"champion: {champion} does not exist (expected weights or an evaluation document)")
    if split not in SPLITS:
        problems.append(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    if imgsz < 32 or imgsz % 32:
        problems.append(f"imgsz: expected a multiple of 32 (the model's largest stride), at least 32, got {imgsz}")
    if batch < 1:
        problems.append(f"batch: expected at least 1, got {batch}")
    if not 0 <= conf < 1:
        problems.append(f"conf: expected 0 <= conf < 1, got {conf}")
    if not 0 < iou <= 1:
        problems.append(f"iou: expected 0 < iou <= 1, got {iou}")
    if not names:
        problems.append("names: expected the class names by id, got an empty list")
    try:
        data = yaml.safe_load(Path(data_yaml).read_text())
    except (OSError, yaml.YAMLError) as e:
        problems.append(f"data_yaml: {data_yaml} is unreadable: {e}")
    else:
        if not isinstance(data, dict) or not data.get(split):
            problems.append(f"data_yaml: {data_yaml} has no {split!r} entry, so that split cannot be evaluated")
    if problems:
        raise problems_error(ConfigError, "the evaluation settings", problems)


@cache
def load_schema() -> dict[str, Any]:
    """The evaluation document's JSON Schema (draft 2020-12), shipped as package data."""
    schema: dict[str, Any] = json.loads(resources.files("skyops.training").joinpath(SCHEMA_RESOURCE).read_text())
    return schema


def validate_evaluation(doc: Any, *, subject: str = "evaluation document") -> None:
    """Check `doc` against the schema, and that every number is finite; report every failing path.

    Raises:
        DataValidationError: one line per problem, e.g. "metrics.map50: 'high' is not of type 'number'".
    """
    from jsonschema import Draft202012Validator  # only needed when validating

    validator = Draft202012Validator(load_schema())
    problems = [f"{_json_path(error.absolute_path)}: {error.message}" for error in validator.iter_errors(doc)]
    problems += [f"{path}: {value!r} is not a finite number (JSON has no NaN or Infinity)" for path, value in _non_finite(doc, [])]
    if problems:
        raise problems_error(
            DataValidationError,
            subject,
            problems,
            hint=f"build it with skyops.training.evaluate.evaluate (schema {SCHEMA_VERSION}, see docs/evaluation-schema.md)",
        )


def write_evaluation(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate `doc` and write it as JSON to `path` atomically (temp file in the same folder, then rename)."""
    validate_evaluation(doc)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_path(parts: Any) -> str:
    """deque(['per_class', 0, 'ap50']) -> 'per_class[0].ap50'; the root is '<document>'."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "<document>"


def _non_finite(value: Any, at: list[str | int]) -> list[tuple[str, float]]:
    if isinstance(value, float) and not np.isfinite(value):
        return [(_json_path(at), value)]
    if isinstance(value, Mapping):
        return [found for key, item in value.items() for found in _non_finite(item, [*at, str(key)])]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _non_finite(item, [*at, i])]
    return []
