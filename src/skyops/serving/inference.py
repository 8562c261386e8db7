"""One request's work, off the event loop: decode, letterbox, inference, NMS, rescale, the JSON answer.

The event loop only parses HTTP; everything that costs CPU runs here, in a pool of `workers` threads
(decoding, resizing, ONNX Runtime and most of numpy release the GIL, so two workers use two cores).
Admission is bounded: at most `workers + max_queue` requests are admitted at once, the rest are told
to come back (429 with Retry-After), so a burst costs a bounded amount of memory (bodies are read only
once admitted) and latency, instead of a queue that grows without end.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyops.serving.backends import Backend
from skyops.serving.detect import Detections, NmsKind, letterbox, postprocess
from skyops.serving.images import Limits, decode, split_payload, thumbnail
from skyops.serving.metrics import ServerMetrics
from skyops.serving.model import ModelInfo
from skyops.serving.params import DetectParams
from skyops.serving.problems import RequestError
from skyops.serving.sliced import SliceLimitError, SliceSettings, detect_sliced

WARMUP_RUNS = 3  # the first runs of a session allocate; /ping says ready after these


@dataclass(frozen=True)
class Prediction:
    body: bytes  # the JSON response
    images: int
    detections: int
    thumbnails: tuple[bytes, ...]  # for data capture, when asked


class Predictor:
    """Runs requests on `workers` threads; `admit`/`release` bound how many are in the server at once."""

    def __init__(
        self,
        info: ModelInfo,
        backend: Backend,
        limits: Limits,
        metrics: ServerMetrics,
        *,
        workers: int,
        max_queue: int,
        nms: NmsKind,
        slicing: SliceSettings | None = None,
    ) -> None:
        self.info, self.backend, self.limits, self.metrics, self.nms = info, backend, limits, metrics, nms
        self.slicing = slicing or SliceSettings(size=0)  # the server's --slice; a request's slice=SIZE overrides the size
        self.workers, self.capacity = workers, workers + max_queue
        self.admitted = 0  # changed on the event loop only
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="skyops-infer")
        self.model_json = {"name": info.model_name, "version": info.version, "backend": backend.name.value}
        self._names = info.names

    def warm_up(self) -> None:
        """Run the network a few times on a grey image, in every worker thread (per-thread state is made here, not in a request).

        The first run is alone, in the loading thread: a runtime's first call initialises its lazy statics,
        and OpenVINO's Python binding deadlocks (GIL against a C++ static-init guard) when two threads make
        that first call at once; afterwards concurrent calls are safe.
        """
        blob, _ = letterbox(np.full((self.info.imgsz, self.info.imgsz, 3), 114, np.uint8), self.info.imgsz)
        self.backend.infer(blob)
        for _ in range(WARMUP_RUNS):
            list(self.pool.map(lambda _: self.backend.infer(blob), range(self.workers)))

    def admit(self) -> bool:
        """Take a place for one request (event loop only); False when the server is full."""
        if self.admitted >= self.capacity:
            return False
        self.admitted += 1
        self.metrics.in_flight.inc()
        return True

    def release(self) -> None:
        self.admitted -= 1
        self.metrics.in_flight.dec()

    async def predict(self, kind: str, body: bytes, params: DetectParams, request_id: str, want_thumbnails: bool) -> Prediction:
        """Queue the request for a worker thread and wait for its answer (see `run`)."""
        self.metrics.queue_depth.inc()
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.run, kind, body, params, request_id, want_thumbnails)

    def run(self, kind: str, body: bytes, params: DetectParams, request_id: str, want_thumbnails: bool) -> Prediction:
        """The whole request, in a worker thread. Raises RequestError for a bad payload (see skyops.serving.images)."""
        self.metrics.queue_depth.dec()
        encoded, batch = split_payload(kind, body, self.limits)
        decoded = [decode(data, kind, self.limits, _where(kind, batch, i)) for i, data in enumerate(encoded)]
        results = []
        found = 0
        slicing = self._slicing(params)
        for i, image in enumerate(decoded):
            height, width = image.shape[:2]
            result: dict[str, Any] = {"image": {"width": width, "height": height}}
            if slicing.size:
                try:
                    sliced = detect_sliced(
                        image,
                        self.backend.infer,
                        self.info.imgsz,
                        slicing,
                        conf=params.conf,
                        iou=params.iou,
                        max_det=params.max_det,
                        nms=self.nms,
                    )
                except SliceLimitError as e:
                    raise RequestError(
                        422,
                        "too_many_slices",
                        f"{_where(kind, batch, i)}: {e}: send a larger slice=SIZE, or slice=0",
                        limit=slicing.max_slices,
                    ) from None
                detections = sliced.detections
                result["slices"] = {"size": slicing.size, "overlap": slicing.overlap, "count": sliced.slices, "runs": sliced.runs}
            else:
                blob, box = letterbox(image, self.info.imgsz)
                raw = self.backend.infer(blob)
                detections = postprocess(raw, box, conf=params.conf, iou=params.iou, max_det=params.max_det, nms=self.nms)
            found += len(detections.scores)
            result["detections"] = self._detections(detections)
            results.append(result)
        self.metrics.images.inc(len(decoded))
        answer: dict[str, Any] = {"request_id": request_id, "model": self.model_json}
        if batch:
            answer["predictions"] = results
        else:
            answer |= results[0]
        thumbnails = tuple(thumbnail(image) for image in decoded) if want_thumbnails else ()
        return Prediction(json.dumps(answer, separators=(",", ":")).encode(), len(decoded), found, thumbnails)

    def _slicing(self, params: DetectParams) -> SliceSettings:
        """The server's slice settings, with the request's window size when it gives one (slice=0: none)."""
        if params.slice is None or params.slice == self.slicing.size:
            return self.slicing
        return SliceSettings(size=params.slice, overlap=self.slicing.overlap, merge=self.slicing.merge, max_slices=self.slicing.max_slices)

    def _detections(self, found: Detections) -> list[dict[str, Any]]:
        boxes = np.round(found.boxes.astype(np.float64), 2).tolist()
        scores = np.round(found.scores.astype(np.float64), 4).tolist()
        return [
            {"class_id": c, "class_name": self._names[c] if c < len(self._names) else str(c), "score": s, "box": b}
            for c, s, b in zip(found.classes.tolist(), scores, boxes, strict=True)
        ]

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _where(kind: str, batch: bool, index: int) -> str:
    """How an error names the image: the body itself, or its place in the JSON."""
    if kind != "application/json":
        return "the body"
    return f"images[{index}]" if batch else "image"
