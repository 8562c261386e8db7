"""Running every backend of a package the same way, for the export's check: images in, raw head out, NMS.

Each backend is a `RawModel`: a (1, 3, S, S) float32 input (RGB in 0..1, letterboxed) in, the raw
YOLO11 head (1, 4 + nc, anchors) out, so one preprocessing and one NMS serve them all and any
difference between two backends is the model's alone. The letterbox and the NMS are Ultralytics'
own (what its predictor does for the torch backend): centred, grey (114) padding, linear resize.

Test images come from a split folder (skyops.data.layout): the image list of the split, each
image's YOLO labels turned into boxes in original pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from skyops.errors import DataValidationError
from skyops.evaluation.detmetrics import ImageBoxes
from skyops.serving.package import Thresholds

NMS_TIME_LIMIT_S = 60.0  # per image: Ultralytics' default (0.05 s) drops boxes on a busy machine


class RawModel(Protocol):
    """A backend as the check runs it."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(1, 3, S, S) float32 -> (1, 4 + nc, anchors) float32: xywh in input pixels, then class scores."""
        ...


@dataclass(frozen=True, kw_only=True)
class LabelledImage:
    """One image of the split with its ground truth in original pixels."""

    path: Path
    gt_boxes: np.ndarray  # (M, 4) xyxy, pixels of the original image
    gt_classes: np.ndarray  # (M,) int


@dataclass(frozen=True, kw_only=True)
class Detections:
    """Post-NMS detections of one image, in original pixels."""

    boxes: np.ndarray  # (N, 4) xyxy
    scores: np.ndarray  # (N,)
    classes: np.ndarray  # (N,) int


def split_images(splits: Path, split: str) -> list[LabelledImage]:
    """The images of `split` in a split dataset folder, with their labels as boxes.

    Raises:
        DataValidationError: the split lists no image, or a listed image is not in the manifest.
    """
    from skyops.data.layout import Manifest, read_split

    manifest = Manifest.read(splits)
    records = {r.image: r for r in manifest.images}
    listed = read_split(splits, split)
    if not listed:
        raise DataValidationError(
            f"the dataset {splits} has no {split} images; the export is checked on them",
            hint="bind the split step's output (train.txt, val.txt, test.txt beside the images)",
        )
    unknown = [image for image in listed if image not in records]
    if unknown:
        raise DataValidationError(
            f"{split}.txt of {splits} lists {len(unknown)} images the manifest does not have (first: {unknown[0]})",
            hint="the split is damaged: run the pipeline again with --no-cache",
        )
    found = []
    for image in listed:
        record = records[image]
        label = splits / record.label
        text = label.read_text() if record.label and label.is_file() else ""  # no label file: an image without objects
        try:  # (M, 5): class, centre x, centre y, width, height; the last four relative to the image
            rows = np.array([line.split()[:5] for line in text.splitlines() if line.strip()], dtype=np.float64).reshape(-1, 5)
        except ValueError:
            raise DataValidationError(
                f"label file {label} is not YOLO text (class cx cy w h per line)",
                hint="the split is damaged: run the pipeline again with --no-cache",
            ) from None
        cx, cy, w, h = rows[:, 1] * record.width, rows[:, 2] * record.height, rows[:, 3] * record.width, rows[:, 4] * record.height
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        found.append(LabelledImage(path=splits / image, gt_boxes=boxes, gt_classes=rows[:, 0].astype(int)))
    return found


def load_detector(weights: Path, *, shown_as: Path | None = None) -> Any:
    """`ultralytics.YOLO(weights)`, refusing with one line what is not a YOLO detection checkpoint.

    Call after skyops.training.ultra.import_ultralytics (offline settings). `shown_as` is the path
    the error names (the step's input, when `weights` is a private copy of it).

    Raises:
        DataValidationError: the file is empty, truncated or not a PyTorch checkpoint of Ultralytics,
            or its model is not a detection model. Ultralytics' own message is not repeated: it quotes
            bytes of the file.
    """
    from ultralytics import YOLO

    shown = shown_as or weights
    hint = "export the best.pt the train step wrote; if it is that one, the model folder is damaged: run the pipeline again with --no-cache"
    try:
        model = YOLO(str(weights))
    except Exception as e:  # Ultralytics raises TypeError, OSError, EOFError, pickle errors, ... for a damaged file
        raise DataValidationError(
            f"weights {shown} cannot be loaded ({type(e).__name__}): expected an Ultralytics YOLO checkpoint; "
            "this one is empty, truncated or not a PyTorch checkpoint",
            hint=hint,
        ) from None
    if model.task != "detect":
        raise DataValidationError(f"weights {shown} are a {model.task!r} model; the export needs a 'detect' model", hint=hint)
    return model


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR, as Ultralytics reads it."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataValidationError(f"image {path} cannot be decoded", hint="the dataset is damaged: run the pipeline again with --no-cache")
    return image


def letterbox(image: np.ndarray, imgsz: int) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (1, 3, imgsz, imgsz) float32 RGB in 0..1, letterboxed as Ultralytics' predictor does."""
    from ultralytics.data.augment import LetterBox

    padded = LetterBox(new_shape=(imgsz, imgsz), auto=False, scale_fill=False, scaleup=True, center=True, stride=32)(image=image)
    assert isinstance(padded, np.ndarray), "LetterBox returns the image when given no labels"
    return np.ascontiguousarray(padded[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def nms(raw: np.ndarray, original_shape: tuple[int, int], imgsz: int, thresholds: Thresholds) -> Detections:
    """Ultralytics' NMS of one raw head output, boxes mapped back to the original image (clipped to it)."""
    import torch
    from ultralytics.utils import ops
    from ultralytics.utils.nms import non_max_suppression

    (kept,) = non_max_suppression(
        torch.from_numpy(raw), thresholds.conf, thresholds.iou, max_det=thresholds.max_det, max_time_img=NMS_TIME_LIMIT_S
    )
    kept = cast("torch.Tensor", kept)  # (N, 6): xyxy in input pixels, score, class
    boxes = cast("torch.Tensor", ops.scale_boxes((imgsz, imgsz), kept[:, :4].clone(), original_shape))
    return Detections(
        boxes=boxes.numpy().astype(np.float64), scores=kept[:, 4].numpy().astype(np.float64), classes=kept[:, 5].numpy().astype(int)
    )


def image_boxes(image: LabelledImage, found: Detections) -> ImageBoxes:
    """Ground truth and detections of one image, as skyops.evaluation.detmetrics scores them."""
    return ImageBoxes(
        gt_boxes=image.gt_boxes,
        gt_classes=image.gt_classes,
        pred_boxes=found.boxes,
        pred_classes=found.classes,
        pred_scores=found.scores,
    )


def timed(model: RawModel, images: np.ndarray) -> tuple[np.ndarray, float]:
    """The model's raw output and the milliseconds it took."""
    started = time.perf_counter()
    raw = model(images)
    return raw, (time.perf_counter() - started) * 1000.0


# ---- the backends ---------------------------------------------------------------------------------


class TorchModel:
    """The PyTorch weights through Ultralytics' model, fused as its predictor fuses it (the reference)."""

    def __init__(self, weights: Path, state_dir: Path) -> None:
        from skyops.training.ultra import import_ultralytics

        import_ultralytics(state_dir)
        import torch

        detector = load_detector(weights).model  # an ultralytics DetectionModel
        self.model = cast("torch.nn.Module", detector.float().fuse().eval())

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(images))
        out = out[0] if isinstance(out, tuple | list) else out  # eval mode returns (raw, per-level features)
        return np.asarray(out.numpy(), dtype=np.float32)


class OnnxModel:
    """An .onnx file in ONNX Runtime on the CPU, default session options (the server's default backend)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input: images})[0])


class OpenVinoModel:
    """An OpenVINO IR compiled for the CPU with the device's default precision and hints."""

    def __init__(self, xml: Path) -> None:
        import openvino as ov

        compiled = ov.Core().compile_model(str(xml), "CPU")
        self.precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = compiled.create_infer_request()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.request.infer({0: images})
        return np.array(self.request.get_output_tensor(0).data)  # a copy: the request reuses its buffer
