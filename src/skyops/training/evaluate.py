"""Evaluate a YOLO model on one dataset split and build the evaluation document.

The document (schema: `evaluation_schema.json` beside this file; every field described in
docs/evaluation-schema.md) is flat, with numeric leaves at stable paths, because the SageMaker
condition step reads it as a PropertyFile (`Std:JsonGet` on `metrics.map50`).

Overall and per-class numbers come from Ultralytics' own validator, so they equal what
`YOLO(weights).val(...)` prints. What Ultralytics does not report is computed by `skyops.evaluation`
from the very predictions that validator scored (`skyops.training.validation_run`): mAP per slice (object
size, class, brightness, image region, crowding, and VisDrone occlusion/truncation when the dataset
keeps them), the standard COCO metrics (faster-coco-eval), the confusion matrix and the worst images.

`evaluate` writes nothing of its own but the HTML report when asked for one (Ultralytics' scratch
output goes to a temporary folder that is removed); `write_evaluation` publishes a document atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from skyops.errors import ConfigError, problems_error
from skyops.evaluation.analysis import analyse
from skyops.evaluation.slices import compare_slices
from skyops.training.evaluation_doc import SCHEMA_VERSION, file_sha256, load_schema, validate_evaluation, write_evaluation
from skyops.training.validation_run import ValidationRun, run_validation

__all__ = [
    "SCHEMA_VERSION",
    "ValidationRun",
    "compare",
    "evaluate",
    "load_schema",
    "run_validation",
    "validate_evaluation",
    "write_evaluation",
]

SPLITS = ("train", "val", "test")
PRIMARY_METRIC = "map50_95"  # decides challenger_better; ties keep the champion
MIN_SLICE_INSTANCES = 20  # ground-truth boxes a slice needs to be singled out or compared (fewer: its AP is noise)
REPORT_CONF = 0.25  # operating point of the confusion matrix and the worst images (Ultralytics' predict default)
WORST_IMAGES = 6

Champion = str | os.PathLike[str] | Mapping[str, Any]


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
    threads: int = 0,
    names: list[str],
    champion: Champion | None = None,
    state_dir: str | os.PathLike[str],
    fingerprint: str | None = None,
    attributes: Mapping[str, np.ndarray] | None = None,
    attribute_columns: Sequence[str] = (),
    min_slice_instances: int = MIN_SLICE_INSTANCES,
    report_conf: float = REPORT_CONF,
    worst_images: int = WORST_IMAGES,
    sliced: Mapping[str, Any] | None = None,
    report: str | os.PathLike[str] | None = None,
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
        threads: torch CPU threads; 0 = every usable core (recorded in `speed_ms.threads`).
        names: class names by id; must have as many entries as the model has classes.
        champion: the model to compare with: its weights (.pt, evaluated here with the same settings),
            a previous evaluation document, or the path of one (.json). None: no comparison.
        state_dir: the project's state dir (Ultralytics' private offline settings live there).
        fingerprint: the dataset manifest's fingerprint, recorded in `dataset.fingerprint`.
        attributes: box attributes by image file name (skyops.data.attributes.read_attributes), for
            the occlusion and truncation slices; None or empty: the dataset has none.
        attribute_columns: the columns of `attributes` (skyops.data.attributes.COLUMNS).
        min_slice_instances: ground-truth boxes a slice needs to be the weakest or to be compared with the champion.
        report_conf: confidence of the operating point for the confusion matrix and the worst images.
        worst_images: how many worst images the document lists and the report draws.
        sliced: the full-frame against sliced comparison (skyops.steps.evaluate.sliced), put in the
            document as `sliced` and in the report; None: none was run.
        report: where to write the HTML report (atomically); None: no report.

    Returns:
        The evaluation document, valid against the schema.

    Raises:
        ConfigError: a setting is out of range, a file is missing, or the champion is not comparable.
        DataValidationError: a champion document does not match the schema.
    """
    _check_settings(weights, data_yaml, split=split, imgsz=imgsz, batch=batch, conf=conf, iou=iou, names=names, champion=champion)
    _check_analysis(min_slice_instances=min_slice_instances, report_conf=report_conf, worst_images=worst_images)
    shared: dict[str, Any] = {
        "split": split,
        "imgsz": imgsz,
        "batch": batch,
        "conf": conf,
        "iou": iou,
        "device": device,
        "threads": threads,
        "names": names,
        "state_dir": state_dir,
    }
    analysis_settings = {"min_slice_instances": min_slice_instances, "report_conf": report_conf, "worst_images": worst_images}
    champion_doc, champion_source = _champion_document(
        champion, data_yaml, **shared, attributes=attributes, attribute_columns=attribute_columns, **analysis_settings
    )
    run = run_validation(weights, data_yaml, **shared, attributes=attributes)
    with_attributes = sum(image.attributes is not None for image in run.images)
    columns = list(attribute_columns) if with_attributes else []
    analysis = analyse(
        run.images,
        names,
        attribute_columns=columns,
        min_slice_instances=min_slice_instances,
        report_conf=report_conf,
        worst_count=worst_images,
    )
    sizes = analysis.sections["slices"]["size"]
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "metrics": run.metrics,
        "per_class": run.per_class,
        "per_size": {name: {k: entry[k] for k in ("map50", "map50_95", "instances")} for name, entry in sizes.items()},
        **analysis.sections,
        "speed_ms": {**run.speed_ms, "total": sum(run.speed_ms.values()), "device": run.device, "threads": run.threads, "imgsz": imgsz},
        "dataset": {
            "split": split,
            "images": len(run.images),
            "instances": run.instances,
            "fingerprint": fingerprint,
            "box_attributes": {"columns": columns, "images": with_attributes, "unaligned": run.unaligned} if attributes else None,
        },
        "model": {"weights_sha256": file_sha256(Path(weights)), "imgsz": imgsz},
        "settings": {"conf": float(conf), "iou": float(iou), "batch": batch, **analysis_settings},
        "comparison": None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if sliced is not None:
        doc["sliced"] = dict(sliced)
    if champion_doc is not None:
        doc["comparison"] = compare(doc, champion_doc, source=champion_source)
    validate_evaluation(doc)
    if report is not None:
        from skyops.evaluation.report import write_report  # matplotlib, jinja2: only for the report

        write_report(doc, Path(report), coco=analysis.coco, worst=analysis.worst, names=names)
    return doc


def compare(challenger: Mapping[str, Any], champion: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """The `comparison` section: champion metrics, deltas (challenger minus champion), verdict, and per-slice deltas.

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
    found = {
        "champion": {"source": source, "weights_sha256": champion["model"]["weights_sha256"], "metrics": dict(champion["metrics"])},
        "delta": delta,
        "challenger_better": bool(delta[PRIMARY_METRIC] > 0),
    }
    if "slices" in challenger:  # a 1.1 document: per-slice deltas, None when the champion's document has no slices (1.0)
        min_instances = challenger["settings"].get("min_slice_instances", MIN_SLICE_INSTANCES)
        found["slices"] = compare_slices(challenger["slices"], champion["slices"], min_instances) if "slices" in champion else None
    return found


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


def _check_analysis(*, min_slice_instances: int, report_conf: float, worst_images: int) -> None:
    problems = []
    if min_slice_instances < 1:
        problems.append(f"min_slice_instances: expected at least 1, got {min_slice_instances}")
    if not 0 <= report_conf <= 1:
        problems.append(f"report_conf: expected 0 <= report_conf <= 1, got {report_conf}")
    if worst_images < 0:
        problems.append(f"worst_images: expected 0 or more, got {worst_images}")
    if problems:
        raise problems_error(ConfigError, "the evaluation settings", problems)
