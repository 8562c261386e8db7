"""Seeded synthetic traffic for the drift tests: aerial scenes, shifted or not, a simulated detector's answers, captures.

Images are the project's synthetic aerial scenes (skyops.data.synth_scene), drawn in memory from
`default_rng([seed, index])`. Shifts apply to whole windows:

    dark       pixel values x 0.55 (dusk, an under-exposed camera)
    blur       Gaussian blur, sigma 1.2 px (focus, motion, a dirty lens)
    rescale    frames 1.5x larger (another camera or altitude)
    class_mix  scenes with trucks and people but no cars (another site)
    unseen     shipping containers appear (2-5 per scene, bright rotated boxes): a type the model never saw

The detector's answers are simulated from the scenes' exact labels, in the server's JSON shape: a
known object is found with probability 0.9 and a confident score (Beta(8, 2)); an unseen container is
taken for a truck 60% of the time with a low score (Beta(2, 5)), as detectors do with what they do not know;
about one false positive in three images, low scores. The drift tests never read these rules: they see
captured requests, as they would from a real server. The embedding is a real network's
(tests/monitoring/detector_model.py).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from skyops.data.synth_scene import Scene, render_scene
from skyops.serving.capture import capture_record

KNOWN = ("car", "truck", "person")  # what the model was trained on
UNSEEN = "container"
SHIFTS = ("dark", "blur", "rescale", "class_mix", "unseen")
SIZE = 128


@dataclass(frozen=True)
class Shot:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    answer: dict[str, Any]  # the server's JSON answer for it


def _classes(shift: str | None) -> tuple[str, ...]:
    return {"class_mix": ("truck", "person")}.get(shift or "", KNOWN)


def _containers(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint 2-5 containers (rotated, saturated boxes with a dark rim) into `image`; their (N, 4) xyxy boxes."""
    boxes = []
    for _ in range(int(rng.integers(2, 6))):
        centre = rng.uniform(12, SIZE - 12, 2)
        size = (float(rng.uniform(10, 16)), float(rng.uniform(5, 7)))
        corners = cv2.boxPoints((tuple(centre), size, float(rng.uniform(0, 180))))
        colour = [(0, 120, 255), (200, 80, 20), (40, 40, 220)][int(rng.integers(3))]
        cv2.fillPoly(image, [corners.astype(np.int32)], colour, cv2.LINE_AA)
        cv2.polylines(image, [corners.astype(np.int32)], True, (30, 30, 30), 1, cv2.LINE_AA)
        boxes.append([*corners.min(axis=0).tolist(), *corners.max(axis=0).tolist()])
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _shifted(image: np.ndarray, shift: str | None) -> np.ndarray:
    if shift == "dark":
        return (image.astype(np.float32) * 0.55).astype(np.uint8)
    if shift == "blur":
        return cv2.GaussianBlur(image, (0, 0), 1.2)
    if shift == "rescale":
        return cv2.resize(image, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    return image


def simulated_answer(
    boxes: np.ndarray, classes: tuple[str, ...], unseen: np.ndarray, width: int, height: int, scale: float, rng: np.random.Generator
) -> dict[str, Any]:
    """The server's JSON answer a fair detector of KNOWN classes would give for a scene with these labelled and unseen boxes."""
    detections = []
    for cls, x0, y0, x1, y1 in boxes.tolist():
        if rng.random() < 0.9:
            detections.append((classes[int(cls)], float(rng.beta(8, 2)), [x0, y0, x1, y1]))
    for box in unseen.tolist():
        if rng.random() < 0.6:
            detections.append(("truck", float(rng.beta(2, 5)), box))
    for _ in range(rng.poisson(0.35)):
        x, y, side = rng.uniform(0, SIZE - 12), rng.uniform(0, SIZE - 12), rng.uniform(4, 12)
        detections.append((KNOWN[int(rng.integers(len(KNOWN)))], float(rng.beta(2, 6)), [x, y, x + side, y + side]))
    detections.sort(key=lambda d: -d[1])
    return {
        "image": {"width": width, "height": height},
        "detections": [
            {"class_id": KNOWN.index(n), "class_name": n, "score": round(s, 4), "box": [round(v * scale, 2) for v in b]}
            for n, s, b in detections
        ],
    }


@functools.lru_cache(maxsize=4096)
def _scene(seed: int, index: int, classes: tuple[str, ...]) -> Scene:
    """Scene `index` of stream `seed`, drawn once per process: shifted windows of one stream share their scenes."""
    return render_scene(np.random.default_rng([seed, index]), SIZE, classes)


def shots(seed: int, count: int, shift: str | None = None, start: int = 0) -> Iterator[Shot]:
    """`count` scenes (indices start..) of stream `seed`, shifted, with their simulated answers.

    Every shift but class_mix draws the same scenes as no shift for a stream, then changes them.
    """
    classes = _classes(shift)
    for index in range(start, start + count):
        scene = _scene(seed, index, classes)
        drawn = scene.image.copy()
        unseen = _containers(drawn, np.random.default_rng([seed, index, 3])) if shift == "unseen" else np.zeros((0, 4))
        image = _shifted(drawn, shift)
        scale = image.shape[1] / SIZE
        answer = simulated_answer(
            scene.boxes[:, :5], classes, unseen, image.shape[1], image.shape[0], scale, np.random.default_rng([seed, index, 7])
        )
        yield Shot(image, answer)


JPEG_QUALITY = 92  # the synthetic dataset's own (skyops.data.synth), so captured scenes match a split's files


def jpeg(image: np.ndarray) -> bytes:
    return bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())


def as_stored(image: np.ndarray) -> np.ndarray:
    """The image as a dataset stores it and a client sends it: through JPEG and back (JPEG smooths what sharpness measures)."""
    return cv2.imdecode(np.frombuffer(jpeg(image), np.uint8), cv2.IMREAD_COLOR)


def write_captures(folder: Path, items: list[Shot], *, when: datetime | None = None) -> Path:
    """One capture file in the server's layout (SageMaker's format): one JPEG request per shot, a second apart."""
    when = when or datetime(2026, 1, 31, 13, 0, tzinfo=UTC)
    hour = folder / "local" / "AllTraffic" / when.strftime("%Y/%m/%d/%H")
    hour.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, shot in enumerate(items):
        body = jpeg(shot.image)
        request_id = f"req-{i:05d}"
        output = json.dumps({"request_id": request_id, "model": {"name": "drone-detector", "version": 1, "backend": "onnx"}, **shot.answer})
        record = capture_record(
            event_id=str(uuid.UUID(int=i)),
            inference_id=request_id,
            when=when + timedelta(seconds=i),
            input_type="image/jpeg",
            body=body,
            output_type="application/json",
            output=output.encode(),
        )
        lines.append(json.dumps(record, separators=(",", ":")))
    path = hour / "00-00-000-capture.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
