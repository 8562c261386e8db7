"""Features of one image and its detections, the feature table, a window read from captures, the detector's embedding."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from skyops.errors import ConfigError, DataValidationError
from skyops.monitoring.embedding import Detector, Embedder, Thresholds, find_weights
from skyops.monitoring.features import FeatureTable, Predicted, image_features, prediction_features
from skyops.monitoring.window import parse_time, select_records, window_features
from skyops.serving.capture import capture_record

from .scenes import shots, write_captures


def test_image_features_of_known_images() -> None:
    gray = np.full((60, 80, 3), 100, np.uint8)
    features = image_features(gray)
    assert features["brightness"] == pytest.approx(100) and features["contrast"] == 0 and features["sharpness"] == 0
    assert features["saturation"] == 0 and features["colourfulness"] == 0
    assert features["pixels"] == pytest.approx(math.log10(4800)) and features["aspect"] == pytest.approx(80 / 60)
    red = np.zeros((50, 50, 3), np.uint8)
    red[:, :, 2] = 255  # BGR
    features = image_features(red)
    assert features["saturation"] == pytest.approx(255)
    assert features["colourfulness"] == pytest.approx(0.3 * math.hypot(255, 127.5))  # rg = 255, yb = 127.5, no spread
    striped = gray.copy()
    striped[:, ::2] = 200
    assert image_features(striped)["sharpness"] > 1000


def test_prediction_features_of_an_empty_and_a_busy_image() -> None:
    numeric, categorical = prediction_features(Predicted((), np.zeros(0), np.zeros((0, 4))), 100, 100)
    assert numeric["boxes"] == 0 and math.isnan(numeric["mean_score"]) and math.isnan(numeric["box_size"])
    assert categorical == {"empty": "yes", "class_mix": "none"}
    boxes = np.array([[0, 0, 10, 10], [0, 0, 20, 20], [50, 50, 90, 90]], float)
    numeric, categorical = prediction_features(Predicted(("truck", "car", "truck"), np.array([0.9, 0.5, 0.7]), boxes), 100, 100)
    assert numeric == {"boxes": 3, "mean_score": pytest.approx(0.7), "min_score": 0.5, "box_size": pytest.approx(0.2)}
    assert categorical == {"empty": "no", "class_mix": "truck"}
    _, tie = prediction_features(Predicted(("truck", "car"), np.array([0.9, 0.5]), boxes[:2]), 100, 100)
    assert tie["class_mix"] == "car"  # a tie goes to the first name, so the label does not depend on the order


def test_a_table_saves_and_loads_with_rows_without_pixels(tmp_path: Path) -> None:
    table = FeatureTable()
    image = np.full((40, 60, 3), 90, np.uint8)
    table.add("a", image, (60, 40), Predicted(("car",), np.array([0.8]), np.array([[1, 1, 9, 9]], float)), np.arange(4, dtype=np.float32))
    table.add("b", None, (640, 480), Predicted((), np.zeros(0), np.zeros((0, 4))), None)
    table.save(tmp_path / "features.npz")
    loaded = FeatureTable.load(tmp_path / "features.npz")
    assert loaded.request_ids == ["a", "b"]
    assert loaded.column("pixels")[1] == pytest.approx(math.log10(640 * 480)) and math.isnan(loaded.column("brightness")[1])
    assert loaded.column("class_mix").tolist() == ["car", "none"]
    np.testing.assert_array_equal(loaded.embedding[0], np.arange(4)) and np.isnan(loaded.embedding[1]).all()
    assert loaded.embedding_rows[1] is None
    (tmp_path / "bad.npz").write_bytes(b"not a table")
    with pytest.raises(DataValidationError, match=r"bad.npz is not a feature table"):
        FeatureTable.load(tmp_path / "bad.npz")


def _record(folder: Path, name: str, *, input_type: str, body: bytes, output: dict | str, when: datetime) -> None:  # type: ignore[type-arg]
    folder.mkdir(parents=True, exist_ok=True)
    text = output if isinstance(output, str) else json.dumps(output)
    record = capture_record(
        event_id=name, inference_id=name, when=when, input_type=input_type, body=body, output_type="application/json", output=text.encode()
    )
    with (folder / "capture.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")


def test_a_window_reads_batches_output_only_records_and_skips_what_it_cannot_use(tmp_path: Path) -> None:
    folder = tmp_path / "captures"
    first, second = (cv2.imencode(".jpg", s.image)[1].tobytes() for s in shots(9, 2))
    answer = {"image": {"width": 128, "height": 128}, "detections": [{"class_name": "car", "score": 0.9, "box": [1, 1, 20, 20]}]}
    when = datetime(2026, 1, 31, 13, 0, tzinfo=UTC)
    batch = json.dumps({"images": [base64.b64encode(first).decode(), base64.b64encode(second).decode()]}).encode()
    _record(folder, "batch", input_type="application/json", body=batch, output={"predictions": [answer, answer]}, when=when)
    _record(folder, "csv", input_type="text/csv", body=b"1,2,3", output=answer, when=when)
    _record(folder, "not-ours", input_type="image/jpeg", body=first, output='{"label": "cat"}', when=when)
    _record(folder, "single", input_type="image/jpeg", body=first, output=answer, when=when.replace(minute=30))
    line = json.loads((folder / "capture.jsonl").read_text().splitlines()[3])
    del line["captureData"]["endpointInput"]  # SageMaker's CaptureMode Output: no input side
    line["eventMetadata"]["inferenceId"] = "output-only"
    (folder / "output-only.jsonl").write_text(json.dumps(line) + "\n")
    records = select_records(folder)
    table, info = window_features(records, None, source=str(folder))
    assert table.request_ids == ["batch", "batch", "single", "output-only"]
    assert info.requests == 3 and info.images == 4
    assert dict(info.skipped) == {"input is not a readable image": 1, "no skyops answer captured": 1}
    assert math.isnan(table.column("brightness")[3]) and table.column("pixels")[3] == pytest.approx(math.log10(128 * 128))
    assert table.column("boxes").tolist() == [1, 1, 1, 1]
    assert info.to_json()["start"] == "2026-01-31T13:00:00+00:00" and info.to_json()["end"] == "2026-01-31T13:30:00+00:00"


def test_select_records_by_time_and_count(tmp_path: Path) -> None:
    write_captures(tmp_path, list(shots(9, 5)), when=datetime(2026, 1, 31, 13, 0, tzinfo=UTC))  # one a second

    def ids(records: list) -> list[str | None]:  # type: ignore[type-arg]
        return [r.inference_id for r in records]

    assert ids(select_records(tmp_path, start=parse_time("2026-01-31T13:00:01Z", "start"), end=parse_time("2026-01-31T13:00:04", "end"))) == [
        "req-00001", "req-00002", "req-00003",
    ]  # fmt: skip
    assert ids(select_records(tmp_path, last=2)) == ["req-00003", "req-00004"]
    with pytest.raises(ConfigError, match=r"^start 'noon' is not an ISO 8601 time$"):
        parse_time("noon", "start")


def test_detections_and_embeddings_of_the_real_network(detector: Detector) -> None:
    images = [s.image for s in shots(9, 3)]
    detections = detector.detect(images, Thresholds(conf=0.0, iou=0.45, max_det=5))
    assert len(detections) == 3 and all(len(d.scores) == 5 and d.boxes.shape == (5, 4) for d in detections)  # conf 0: max_det each
    embedding = detector.embed(images)
    assert embedding.shape == (3, 512)  # YOLO11n: 128 + 128 + 256 channels of layers 4, 6 and 10
    assert not np.allclose(embedding[0], embedding[1])  # images differ, so do their embeddings
    assert not np.allclose(detector.embed(images, 64), embedding)  # another input size, other features


def test_the_onnx_embedder_gives_the_detectors_embedding(detector: Detector, embedder: Embedder) -> None:
    images = [s.image for s in shots(9, 4)]
    expected = detector.embed(images, 128)
    np.testing.assert_allclose(embedder.embed(images), expected, rtol=1e-3, atol=1e-3 * float(np.abs(expected).max()))


def test_find_weights_takes_best_pt_and_refuses_a_folder_without_a_model(weights: Path, tmp_path: Path) -> None:
    assert find_weights(weights) == (weights / "best.pt", None)
    with pytest.raises(ConfigError, match=r"holds neither best.pt nor a served model \(metadata.json\)"):
        find_weights(tmp_path)
