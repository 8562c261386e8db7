"""evaluate: mAP50, mAP50-95, precision, recall, per class and per slice, COCO metrics, errors, speed.

Writes evaluation.json (schema: skyops/training/evaluation_schema.json, docs/evaluation-schema.md),
which SageMaker reads as a PropertyFile, and beside it report.html, the self-contained evaluation
report (PR curves, confusion matrix, slices, worst images drawn). Compares with the champion when one
is bound (the pipeline declares its source, `registry:${model_name}@champion`): on the same test
split, slice by slice, so the register step's decision needs nothing but this document. A dataset
that keeps box attributes (VisDrone's occlusion and truncation, skyops.data.attributes) is also
sliced by them.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig(StepConfig):
    split: Literal["test", "val", "train"] = "test"
    imgsz: Annotated[int, Range(ge=32)] = 256  # pixels; use the training size
    batch: Annotated[int, Range(ge=1)] = 16
    conf: Annotated[float, Range(ge=0, le=1)] = 0.001  # low, as for mAP
    iou: Annotated[float, Range(gt=0, le=1)] = 0.7
    device: str = "cpu"
    threads: Annotated[int, Range(ge=0)] = 0  # torch CPU threads: 0 = every usable core (Ultralytics alone: cores - 1)
    min_slice_instances: Annotated[int, Range(ge=1)] = 20  # boxes a slice needs to be singled out or compared
    report_conf: Annotated[float, Range(ge=0, le=1)] = 0.25  # operating point of the confusion matrix and worst images
    worst_images: Annotated[int, Range(ge=0)] = 6  # images listed and drawn in the report
    # Sliced inference beside the full frame (section `sliced`): windows of slice_size px (0: off; use imgsz), see docs/small-objects.md
    slice_size: Annotated[int, Range(ge=0, le=4096)] = 0
    slice_overlap: Annotated[float, Range(ge=0, le=0.75)] = 0.2
    slice_merge: Literal["nmm", "nms"] = "nms"  # evaluation scores at conf 0.001, where NMM inflates boxes


SPEC = StepSpec(
    step_type="evaluate",
    node_type=NodeType.INTERNAL,
    inputs=(
        Port(name="model", kind="model-weights"),
        Port(name="splits", kind="yolo-splits"),
        Port(name="champion", kind="model-weights", optional=True, description="the current champion's weights"),
    ),
    outputs=(
        Port(
            name="evaluation",
            kind="evaluation",
            description="evaluation.json and report.html (the HTML evaluation report)",
            files=("evaluation.json", "report.html"),
        ),
    ),
    description="evaluate the trained model on the test split",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.evaluate",
    job_kind=JobKind.PROCESSING,
    inputs={"model": processing_input("model"), "splits": processing_input("splits"), "champion": processing_input("champion")},
    outputs={"evaluation": processing_output("evaluation")},
    optional_env={"SKYOPS_STATE_DIR": "/tmp/skyops"},
)


def weights_in(folder: Path, port: str) -> Path:
    """The folder's best.pt; a model folder without one is an error, never a fallback to another .pt.

    On SageMaker a training job's model arrives as one model.tar.gz: it is unpacked into a temp
    folder first (inputs are never written to).
    """
    from skyops.errors import DataValidationError
    from skyops.training.model_folder import WEIGHTS, model_folder

    folder = model_folder(folder)
    if not (folder / WEIGHTS).is_file():
        others = sorted(p.name for p in folder.glob("*.pt"))
        raise DataValidationError(
            f"input {port!r} ({folder}) has no best.pt" + (f" (it holds {', '.join(others)})" if others else ""),
            hint="bind a model folder as the train step writes it (best.pt, last.pt, ...); a cached one without best.pt is damaged: run with --no-cache",
        )
    return folder / WEIGHTS


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=EvaluateConfig, libraries=("ultralytics", "torch"))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: EvaluateConfig) -> None:
    from skyops.data.attributes import COLUMNS, read_attributes
    from skyops.data.layout import Manifest, private_view, read_split, write_data_yaml
    from skyops.training.evaluate import evaluate, write_evaluation

    manifest = Manifest.read(inputs["splits"])
    weights = weights_in(inputs["model"], "model")
    state_dir = Path(env["SKYOPS_STATE_DIR"])
    champion = weights_in(inputs["champion"], "champion") if "champion" in inputs else None
    with tempfile.TemporaryDirectory(prefix="skyops-eval-") as tmp:
        view = private_view(inputs["splits"], Path(tmp) / "data")
        data_yaml = write_data_yaml(view, Path(tmp) / "data.yaml", manifest.names)
        attributes = read_attributes(view, read_split(view, args.split))
        sliced = None
        if args.slice_size:
            from skyops.steps.evaluate.sliced import sliced_section

            sliced = sliced_section(
                weights,
                view,
                read_split(view, args.split),
                len(manifest.names),
                imgsz=args.imgsz,
                conf=args.conf,
                iou=args.iou,
                size=args.slice_size,
                overlap=args.slice_overlap,
                merge=args.slice_merge,
                state_dir=state_dir,
            )
        doc = evaluate(
            weights,
            data_yaml,
            split=args.split,
            imgsz=args.imgsz,
            batch=args.batch,
            conf=args.conf,
            iou=args.iou,
            device=args.device,
            threads=args.threads,
            names=manifest.names,
            champion=champion,
            state_dir=state_dir,
            fingerprint=manifest.fingerprint,
            attributes=attributes,
            attribute_columns=COLUMNS,
            min_slice_instances=args.min_slice_instances,
            report_conf=args.report_conf,
            worst_images=args.worst_images,
            sliced=sliced,
            report=outputs["evaluation"] / "report.html",  # drawn while the images are at hand
        )
    write_evaluation(doc, outputs["evaluation"] / "evaluation.json")
    m = doc["metrics"]
    print(json.dumps({"map50": m["map50"], "map50_95": m["map50_95"], "precision": m["precision"], "recall": m["recall"]}))
    if sliced is not None:
        full, cut = sliced["full_frame"], sliced["sliced"]
        print(f"small-object AP50: full frame {full['ap50_small']}, sliced {cut['ap50_small']} ({cut['runs_per_image']} runs per image)")
    if doc["weakest_slice"]:
        w = doc["weakest_slice"]
        print(f"weakest slice: {w['family']}={w['name']} mAP50-95 {w['map50_95']:.3f} ({w['instances']} boxes)")
