"""export: the trained weights as a model package the server runs, checked against the PyTorch model.

Writes `package/` (layout and metadata: skyops/serving/package.py): `model.tar.gz` in SageMaker's
layout, which a RegisterModel step names as its ModelDataUrl, and `model/`, the same files
unpacked: metadata.json, model.onnx (fp32, opset 17, onnxslim-simplified, no NMS), best.pt,
model-int8.onnx and openvino/ when they earn their place, and canary/ (see 4).

1. ONNX from Ultralytics' exporter, offline (skyops.serving.export).
2. The check (skyops.serving.export_check): the PyTorch and the ONNX model on every image of the
   test split, fed the same letterboxed input; mAP50 within 0.005 and every box and score agreeing,
   else the step fails and nothing is packaged.
3. INT8 (ONNX Runtime static quantisation, calibrated on `calibration_images` training images) and
   OpenVINO, each kept only when measured faster here than fp32 ONNX Runtime with a test mAP50 at
   most 0.01 lower; the measurement and the reason are printed and kept in metadata.json's `check`.
   Those measurements are this machine's, so with a variant switched on two exports of the same
   weights may keep different files; with both off the package is a function of its inputs, byte
   for byte.
4. The canary set (skyops.serving.canary, `canary/` in the model folder): what a local deployment
   checks a new server with before it takes traffic. See `write_package_canary`.

It reads the trained model and the split dataset only, so a new champion (which makes evaluate run
again) finds it cached. The default pipeline runs it after evaluate, behind the quality gate: a model
below the bar is neither exported nor registered.

`source.version` is null: the register step, which runs after, records the package on the version.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata as distributions
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from skyops.errors import DataValidationError
from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.settings import DEFAULT_MODEL
from skyops.steps import CATALOG

if TYPE_CHECKING:  # numpy, cv2 and Ultralytics load only when the step runs
    from skyops.serving.export_runtime import LabelledImage

PACKAGE_FILES = ("model.tar.gz", "model/metadata.json", "model/model.onnx", "model/best.pt")
ONNX_FILE, INT8_FILE, OPENVINO_DIR, TORCH_FILE = "model.onnx", "model-int8.onnx", "openvino", "best.pt"
CANARY_DIR, CANARY_IMAGES = "canary", 8  # the canary set's folder in the model folder, and its most images
LIBRARIES = ("ultralytics", "torch", "onnx", "onnxruntime", "onnxslim", "openvino")


@dataclass(frozen=True, kw_only=True)
class ExportConfig(StepConfig):
    model_name: str = DEFAULT_MODEL  # the registered model the package is of (metadata.json source.model)
    split: Literal["test", "val"] = "test"  # the split the export is checked on
    conf: Annotated[float, Range(ge=0, le=1)] = 0.25  # the server's default thresholds (each request may override them)
    iou: Annotated[float, Range(gt=0, le=1)] = 0.45
    max_det: Annotated[int, Range(ge=1)] = 300
    int8: bool = True  # try an INT8 model; kept only when faster here with mAP50 loss <= 0.01
    openvino: bool = True  # try an OpenVINO model; same rule
    calibration_images: Annotated[int, Range(ge=1)] = 64  # training images the INT8 model is calibrated on


SPEC = StepSpec(
    step_type="export",
    node_type=NodeType.INTERNAL,
    inputs=(
        Port(name="model", kind="model-weights"),
        Port(name="splits", kind="yolo-splits"),
    ),
    outputs=(
        Port(
            name="package",
            kind="model-package",
            description="model.tar.gz (SageMaker's model data) and model/ (the same files): ONNX, best.pt, metadata.json",
            files=PACKAGE_FILES,
        ),
    ),
    description="export the model to ONNX (optionally INT8, OpenVINO), check it on the test split, package it",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.export",
    job_kind=JobKind.PROCESSING,
    inputs={"model": processing_input("model"), "splits": processing_input("splits")},
    outputs={"package": processing_output("package")},
    optional_env={"SKYOPS_STATE_DIR": "/tmp/skyops"},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=ExportConfig, libraries=LIBRARIES)
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: ExportConfig) -> None:
    from skyops.errors import ConfigError
    from skyops.pipeline.hashing import hash_file
    from skyops.registry.records import read_training
    from skyops.serving import package
    from skyops.serving.export import export_onnx
    from skyops.serving.export_runtime import split_images
    from skyops.training.model_folder import WEIGHTS, model_folder

    started = time.perf_counter()
    state_dir = Path(env["SKYOPS_STATE_DIR"])
    model_dir = model_folder(inputs["model"])  # a SageMaker model.tar.gz is unpacked first
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"input 'model' ({inputs['model']}) has no best.pt", hint="bind the train step's model folder")
    training = read_training(model_dir)
    digest = hash_file(weights)
    names, imgsz = list(training["names"]), int(training["imgsz"])
    images = split_images(inputs["splits"], args.split)
    root = package.model_dir(outputs["package"])
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, root / TORCH_FILE)
    onnx_details = export_onnx(weights, root / ONNX_FILE, imgsz=imgsz, names=names, state_dir=state_dir)
    print(f"exported {ONNX_FILE}: opset {onnx_details['opset']}, input {onnx_details['shape']}, output {onnx_details['output_shape']}")
    with tempfile.TemporaryDirectory(prefix="skyops-variants-") as scratch:
        check, kept = check_and_choose(
            weights, root / ONNX_FILE, Path(scratch), inputs["splits"], images, imgsz=imgsz, args=args, state_dir=state_dir
        )
        artifacts = {
            "onnx": package.Artifact(file=ONNX_FILE, details=onnx_details),
            "torch": package.Artifact(file=TORCH_FILE, details={"format": "ultralytics"}),
        }
        for name, (moved, details) in kept.items():
            shutil.move(str(moved), str(root / moved.name))
            artifacts[name] = package.Artifact(file=INT8_FILE if name == "int8" else f"{OPENVINO_DIR}/model.xml", details=details)
    check["canary"] = write_package_canary(root / ONNX_FILE, root / CANARY_DIR, images, imgsz=imgsz, args=args)
    print(check["canary"]["reason"])
    sealed = package.seal(
        outputs["package"],
        package.PackageMetadata(
            names=names,
            imgsz=imgsz,
            thresholds=package.Thresholds(conf=args.conf, iou=args.iou, max_det=args.max_det),
            source=package.Source(model=args.model_name, version=None, weights_sha256=digest),
            artifacts=artifacts,
            check=check,
        ),
    )
    print(
        f"packaged {', '.join(sealed.artifact_names)}: {package.ARCHIVE} sha256 {package.archive_sha256(outputs['package'])[:12]} "
        f"({time.perf_counter() - started:.1f} s)"
    )


def write_package_canary(onnx_file: Path, folder: Path, images: list[LabelledImage], *, imgsz: int, args: ExportConfig) -> dict[str, Any]:
    """Write the package's canary set from held-back images; returns metadata.json's `check.canary` (what and why).

    Images: the first CANARY_IMAGES of the checked split (held back from training: test by default),
    in split order, that are JPEG or PNG and on which the model finds something. Expected detections:
    the checked fp32 ONNX model's own answers at the package's default thresholds (conf, iou, max_det),
    through the check's letterbox and NMS. Not the PyTorch reference's: the canary asks "does this
    server answer what this package answers", the ONNX model is what the server runs by default, and
    it was just shown to agree with PyTorch box for box; taking its answers keeps a score that sits at
    the conf threshold in one backend and just below it in the other out of the expectation. The
    canary's own slack (recall and precision >= 0.8, IoU 0.5) absorbs the small differences of the
    server's NMS and of the INT8/OpenVINO backends. Deterministic: same model and images, same bytes.

    When no image has a detection (an untrained or very weak model finds nothing at conf), no canary
    set is written, since one expecting nothing cannot tell a broken model from a working one
    (load_canary refuses it); `written` is false with the reason, and a local deployment of the
    package is refused until its environment names a canary set (`local.canary`).
    """
    from skyops.data.imageinfo import ImageFormat, ImageHeaderError, probe
    from skyops.serving import canary
    from skyops.serving.export_runtime import OnnxModel, letterbox, nms, read_image
    from skyops.serving.package import Thresholds

    model = OnnxModel(onnx_file)
    thresholds = Thresholds(conf=args.conf, iou=args.iou, max_det=args.max_det)
    chosen: list[tuple[Path, list[tuple[int, list[float]]]]] = []
    for image in images:
        if len(chosen) == CANARY_IMAGES:
            break
        try:
            if probe(image.path.read_bytes()).format not in (ImageFormat.JPEG, ImageFormat.PNG):
                continue
        except ImageHeaderError:
            continue
        pixels = read_image(image.path)
        found = nms(model(letterbox(pixels, imgsz)), pixels.shape[:2], imgsz, thresholds)
        if len(found.classes):
            boxes = [[round(float(v), 2) for v in box] for box in found.boxes]
            chosen.append((image.path, [(int(c), box) for c, box in zip(found.classes, boxes, strict=True)]))
    where = f"{args.split} split, conf {args.conf}, iou {args.iou}, max_det {args.max_det}"
    if not chosen:
        return {
            "written": False,
            "reason": f"no canary set: the model finds nothing in any of the {len(images)} images of the {where} "
            "(a set expecting nothing cannot tell a broken model from a working one); a local deployment needs local.canary",
        }
    canary.write_canary(folder, chosen, conf=args.conf, max_det=args.max_det)
    detections = sum(len(found) for _, found in chosen)
    return {
        "written": True,
        "folder": folder.name,
        "images": len(chosen),
        "detections": detections,
        "expected_from": "onnx",
        "reason": f"canary set: {len(chosen)} images with {detections} expected detections (the ONNX model's, {where})",
    }


def check_and_choose(
    weights: Path,
    onnx_file: Path,
    scratch: Path,
    splits: Path,
    images: list[LabelledImage],
    *,
    imgsz: int,
    args: ExportConfig,
    state_dir: Path,
) -> tuple[dict[str, Any], dict[str, tuple[Path, dict[str, Any]]]]:
    """Run the check and the variants' measurements; returns metadata.json's `check` and the kept variants' files.

    Raises:
        ExportCheckError: the ONNX model does not match the PyTorch model.
    """
    from skyops.serving import export_check as ec
    from skyops.serving.export_runtime import OnnxModel, RawModel, TorchModel

    tolerance = ec.Tolerance()
    models: dict[str, RawModel] = {ec.REFERENCE: TorchModel(weights, state_dir), ec.EXPORT: OnnxModel(onnx_file)}
    candidates, verdicts = make_variants(onnx_file, scratch, splits, imgsz=imgsz, args=args)
    models.update({name: model for name, (model, _, _) in candidates.items()})
    started = time.perf_counter()
    runs, agreements = ec.run_backends(models, images, imgsz)
    maps = {name: ec.map50(images, run) for name, run in runs.items()}
    problems = ec.export_problems(maps[ec.REFERENCE], maps[ec.EXPORT], agreements[ec.EXPORT], tolerance)
    summary = {name: None if value is None else round(value, 4) for name, value in maps.items()}
    print(f"check on {len(images)} {args.split} images ({time.perf_counter() - started:.1f} s): mAP50 {json.dumps(summary)}")
    print(f"onnx vs torch, anchor by anchor: {json.dumps(agreements[ec.EXPORT].to_json())}")
    ec.raise_for(problems, images=len(images), split=args.split)
    kept: dict[str, tuple[Path, dict[str, Any]]] = {}
    fp32 = runs[ec.EXPORT]
    for name, (_, path, details) in candidates.items():
        verdict = ec.keep_variant(
            name,
            latency_ms=runs[name].median_ms,
            map50=maps[name],
            fp32_latency_ms=fp32.median_ms,
            fp32_map50=maps[ec.EXPORT],
            tolerance=tolerance,
        )
        verdicts[name] = {
            **verdict.to_json(),
            "vs_onnx": agreements[name].to_json(),
            "detections_differing": round(ec.detections_differing(fp32, runs[name], args.conf), 4),
        }
        print(verdict.reason)
        if verdict.kept:
            kept[name] = (path, details)
    check: dict[str, Any] = {
        "passed": True,
        "split": args.split,
        "images": len(images),
        "instances": sum(len(image.gt_classes) for image in images),
        "nms": ec.MAP_NMS.to_json(),
        "tolerance": tolerance.to_json(),
        "map50": maps,
        "onnx_vs_torch": agreements[ec.EXPORT].to_json(),
        "variants": verdicts,
        "libraries": {name: distributions.version(name) for name in LIBRARIES},
    }
    if candidates:  # measured only to choose variants: this machine's numbers, so absent when there is nothing to choose
        check["latency_ms"] = {"what": "median inference per image, round-robin", **{name: run.median_ms for name, run in runs.items()}}
    return check, kept


def make_variants(
    onnx_file: Path, scratch: Path, splits: Path, *, imgsz: int, args: ExportConfig
) -> tuple[dict[str, tuple[Any, Path, dict[str, Any]]], dict[str, dict[str, Any]]]:
    """The INT8 and OpenVINO candidates switched on, loaded (name -> (model, file, details)), and a verdict for each one not tried.

    A conversion that fails drops that variant with the reason: variants are optional, the fp32 model is the package.
    """
    from skyops.serving.export import convert_openvino, quantize_int8
    from skyops.serving.export_runtime import OnnxModel, OpenVinoModel

    candidates: dict[str, tuple[Any, Path, dict[str, Any]]] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    for name, wanted in (("int8", args.int8), ("openvino", args.openvino)):
        if not wanted:
            verdicts[name] = {"kept": False, "reason": f"{name} not tried (config {name}: false)"}
            continue
        started = time.perf_counter()
        calibration = calibration_inputs(splits, args.calibration_images, imgsz) if name == "int8" else []
        try:
            if name == "int8":
                path = scratch / INT8_FILE
                details = quantize_int8(onnx_file, path, calibration)
                model: Any = OnnxModel(path)
            else:
                path = scratch / OPENVINO_DIR
                details = convert_openvino(onnx_file, path)
                model = OpenVinoModel(path / "model.xml")
                details = {**details, "weights": f"{OPENVINO_DIR}/model.bin", "precision": model.precision}
        except Exception as e:  # a third-party conversion failing costs this variant only, with the reason on record
            reason = f"{name} dropped: its conversion failed ({type(e).__name__}: {str(e)[:300]})"
            print(reason)
            verdicts[name] = {"kept": False, "reason": reason}
            continue
        print(f"made {name} in {time.perf_counter() - started:.1f} s")
        candidates[name] = (model, path, details)
    return candidates, verdicts


def calibration_inputs(splits: Path, count: int, imgsz: int) -> list[Any]:
    """Up to `count` training images, evenly spread over the train list, preprocessed as the server does."""
    import numpy as np

    from skyops.data.layout import read_split
    from skyops.serving.export_runtime import letterbox, read_image

    listed = read_split(splits, "train")
    if not listed:
        raise DataValidationError(
            f"the dataset {splits} has no train images to calibrate INT8 on", hint="set int8: false, or bind the split step's output"
        )
    picks = sorted({int(i) for i in np.linspace(0, len(listed) - 1, min(count, len(listed))).round()})
    return [letterbox(read_image(splits / listed[i]), imgsz) for i in picks]
