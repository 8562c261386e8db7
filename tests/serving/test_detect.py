"""Letterbox, NMS and rescaling answer what Ultralytics' own predict path answers, box for box.

Ultralytics' functions (LetterBox, non_max_suppression, scale_boxes, and `YOLO(model.onnx).predict`
end to end) are the reference: an independent implementation of the same maths.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from skyops.serving.backends import OnnxBackend
from skyops.serving.detect import NmsKind, letterbox, postprocess
from skyops.serving.images import Limits
from skyops.serving.inference import Predictor
from skyops.serving.metrics import ServerMetrics
from skyops.serving.model import BackendName, read_model_info
from skyops.serving.params import DetectParams
from skyops.training.ultra import import_ultralytics
from tests.serving.conftest import encode

SIZES = [(256, 256), (200, 320), (320, 200), (1, 300), (300, 1), (97, 61), (1080, 1920), (640, 480)]  # (height, width)


@pytest.fixture(scope="session")
def ultralytics(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return import_ultralytics(tmp_path_factory.mktemp("ultralytics-state"))


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_letterbox_is_ultralytics_letterbox_pixel_for_pixel(ultralytics: ModuleType, height: int, width: int) -> None:
    from ultralytics.data.augment import LetterBox

    image = np.random.default_rng(height * 7919 + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    blob, box = letterbox(image, 256)
    reference = LetterBox(new_shape=(256, 256), auto=False, stride=32)(image=image)  # (256, 256, 3) BGR uint8
    assert blob.shape == (1, 3, 256, 256) and blob.dtype == np.float32
    np.testing.assert_array_equal(np.round(blob[0] * 255).astype(np.uint8), reference[:, :, ::-1].transpose(2, 0, 1))
    assert (box.width, box.height) == (width, height)


def raw_head(seed: int, anchors: int, classes: int) -> np.ndarray:
    """A (4 + nc, N) head with boxes around the 256 px input, of every size, and scores spread over [0, 1]."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 276, (2, anchors))
    sizes = rng.uniform(0.5, 200, (2, anchors))
    scores = rng.uniform(0, 1, (classes, anchors)) ** 3
    return np.concatenate([centres, sizes, scores]).astype(np.float32)


def near_ties(raw: np.ndarray, conf: float, iou: float) -> bool:
    """Whether the answer is not unique: two candidates of one class overlap by an IoU within 1e-4 of `iou` (float32
    rounding, not the algorithm, decides which survives: both sides shift each class by 7680 px, as Ultralytics does,
    where float32 keeps ~0.001 px, so the IoU of two small boxes is off by up to ~1e-4; hypothesis found pairs 3e-7
    and 1.1e-5 from the threshold), or two have the same score (their order is arbitrary: torch's sort is not stable)."""
    scores = raw[4:].max(0)
    keep = scores > conf
    if len(np.unique(scores[keep])) < keep.sum():
        return True
    xywh, classes = raw[:4, keep].T.astype(np.float64), raw[4:, keep].argmax(0)
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    w = (np.minimum(xyxy[:, None, 2], xyxy[None, :, 2]) - np.maximum(xyxy[:, None, 0], xyxy[None, :, 0])).clip(0)
    h = (np.minimum(xyxy[:, None, 3], xyxy[None, :, 3]) - np.maximum(xyxy[:, None, 1], xyxy[None, :, 1])).clip(0)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = w * h / (area[:, None] + area[None, :] - w * h)
    same_class = classes[:, None] == classes[None, :]
    return bool((same_class & (np.abs(overlap - iou) < 1e-4)).any())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    classes=st.integers(1, 6),
    conf=st.floats(0.001, 0.9),
    iou=st.floats(0.05, 0.95),
    max_det=st.integers(1, 300),
    shape=st.sampled_from(SIZES),
)
def test_postprocess_is_ultralytics_nms_and_scale_boxes(
    ultralytics: ModuleType, seed: int, classes: int, conf: float, iou: float, max_det: int, shape: tuple[int, int]
) -> None:
    import torch
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    raw = raw_head(seed, 400, classes)
    assume(not near_ties(raw, conf, iou))
    _, box = letterbox(np.zeros((*shape, 3), np.uint8), 256)
    ours = postprocess(raw, box, conf=conf, iou=iou, max_det=max_det)
    theirs = non_max_suppression(torch.from_numpy(raw[None]), conf, iou, max_det=max_det, nc=classes)[0]
    theirs[:, :4] = scale_boxes((256, 256), theirs[:, :4], shape)
    assert ours.classes.tolist() == theirs[:, 5].long().tolist()
    np.testing.assert_allclose(ours.scores, theirs[:, 4].numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.boxes, theirs[:, :4].numpy(), atol=1e-3)
    opencv = postprocess(raw, box, conf=conf, iou=iou, max_det=max_det, nms=NmsKind.OPENCV)
    assert opencv.classes.tolist() == ours.classes.tolist()
    np.testing.assert_allclose(opencv.boxes, ours.boxes, atol=1e-3)


def test_nothing_above_conf_is_no_detection() -> None:
    raw = raw_head(1, 100, 3)
    _, box = letterbox(np.zeros((10, 10, 3), np.uint8), 256)
    found = postprocess(raw, box, conf=1.0, iou=0.5, max_det=10)
    assert found.boxes.shape == (0, 4) and found.scores.shape == (0,) and found.classes.shape == (0,)


def test_the_server_pipeline_answers_what_ultralytics_predict_answers(
    ultralytics: ModuleType, model_dir: Path, scene_files: list[Path]
) -> None:
    """Decode, letterbox, ONNX Runtime, NMS, rescale: the same boxes as `YOLO(model.onnx).predict` on the same images."""
    from ultralytics import YOLO

    info = read_model_info(model_dir)
    predictor = Predictor(
        info,
        OnnxBackend(info.artifact(BackendName.ONNX), BackendName.ONNX, 1),
        Limits(10**8, 10**8, 8),
        ServerMetrics(),
        workers=1,
        max_queue=0,
        nms=NmsKind.NUMPY,
    )
    reference = YOLO(str(model_dir / "model.onnx"), task="detect")
    try:
        for path, (height, width) in zip(scene_files, [(256, 256), (200, 320), (480, 360), (150, 600)], strict=False):
            image = cv2.resize(cv2.imread(str(path)), (width, height))
            data = encode(image, ".png")  # lossless: both sides see the same pixels
            answer = json.loads(predictor.run("image/png", data, DetectParams(conf=0.001, iou=0.7, max_det=50), "t", False).body)
            result = reference.predict(image, imgsz=256, conf=0.001, iou=0.7, max_det=50, verbose=False)[0]
            assert [d["class_id"] for d in answer["detections"]] == result.boxes.cls.long().tolist()
            np.testing.assert_allclose([d["box"] for d in answer["detections"]], result.boxes.xyxy.numpy().reshape(-1, 4), atol=0.01)
            np.testing.assert_allclose([d["score"] for d in answer["detections"]], result.boxes.conf.numpy(), atol=1e-4)
    finally:
        predictor.close()
