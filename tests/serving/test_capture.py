"""Data capture on disk: the reader takes SageMaker's own capture files as they are, names a bad line by file and line,
and never reads a file being written; the writer samples, and finishes files a killed server left behind.

The server writing captures end to end is in test_lifecycle.py.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from skyops.errors import ConfigError, DataValidationError
from skyops.serving.capture import read_captures
from skyops.serving.capture_writer import CaptureConfig, CaptureEvent, CaptureWriter
from skyops.serving.metrics import ServerMetrics

# Records as SageMaker's data capture writes them (the shape of the examples in its Model Monitor guide; values ours):
# a CSV endpoint, both sides; an image endpoint with an inference id the caller gave; an endpoint capturing output only.
CSV_RECORD = {
    "captureData": {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "5.1,3.5,1.4,0.2\n", "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT", "data": "0.91", "encoding": "CSV"},
    },
    "eventMetadata": {"eventId": "3c0a47a2-5a8e-4a43-9d36-7f0e0c4d2f11", "inferenceTime": "2026-01-31T13:05:09Z"},
    "eventVersion": "0",
}
IMAGE = b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"
IMAGE_RECORD = {
    "captureData": {
        "endpointInput": {
            "observedContentType": "image/jpeg",
            "mode": "INPUT",
            "data": base64.b64encode(IMAGE).decode(),
            "encoding": "BASE64",
        },
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": '{"detections": []}', "encoding": "JSON"},
    },
    "eventMetadata": {
        "eventId": "9b1f3e0e-1d1c-4b7e-8f7a-2a9d3c5e6f70",
        "inferenceId": "client-42",
        "inferenceTime": "2026-01-31T14:59:59.250Z",
    },
    "eventVersion": "0",
}
OUTPUT_ONLY = {
    "captureData": {
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": '{"detections": [1]}', "encoding": "JSON"}
    },
    "eventMetadata": {"eventId": "e2a8f5c1-0b4d-4c3e-a6f9-5d7b8c9e0a12", "inferenceTime": "2026-02-01T00:00:01Z"},
    "eventVersion": "0",
}


def write_lines(path: Path, *records: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path


@pytest.fixture
def sagemaker_captures(tmp_path: Path) -> Path:
    """A copy of an endpoint's capture prefix (`aws s3 sync`): <endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl, hours out of order on disk."""
    root = tmp_path / "datacapture"
    write_lines(root / "ep" / "AllTraffic" / "2026" / "02" / "01" / "00" / "00-01-000-b.jsonl", OUTPUT_ONLY)
    write_lines(root / "ep" / "AllTraffic" / "2026" / "01" / "31" / "13" / "05-09-000-a.jsonl", CSV_RECORD)
    write_lines(root / "ep" / "AllTraffic" / "2026" / "01" / "31" / "14" / "59-59-250-c.jsonl", IMAGE_RECORD)
    return root


def test_sagemakers_own_captures_are_read_oldest_first(sagemaker_captures: Path) -> None:
    records = list(read_captures(sagemaker_captures))
    assert [r.event_id for r in records] == [
        CSV_RECORD["eventMetadata"]["eventId"],
        IMAGE_RECORD["eventMetadata"]["eventId"],
        OUTPUT_ONLY["eventMetadata"]["eventId"],
    ]  # type: ignore[index]
    csv, image, output_only = records
    assert csv.input is not None and csv.output is not None
    assert (csv.input.raw(), csv.output.raw(), csv.inference_id) == (b"5.1,3.5,1.4,0.2\n", b"0.91", None)
    assert image.input is not None and image.output is not None
    assert (image.input.raw(), image.output.json(), image.inference_id) == (IMAGE, {"detections": []}, "client-42")
    assert image.inference_time == datetime(2026, 1, 31, 14, 59, 59, 250000, tzinfo=UTC)
    assert (output_only.input, output_only.event_version, output_only.thumbnails) == (None, "0", [])
    assert (output_only.file.name, output_only.line) == ("00-01-000-b.jsonl", 1)


def test_any_level_of_the_layout_or_one_file(sagemaker_captures: Path) -> None:
    hour = sagemaker_captures / "ep" / "AllTraffic" / "2026" / "01" / "31"
    assert len(list(read_captures(hour))) == 2
    assert len(list(read_captures(str(hour / "13" / "05-09-000-a.jsonl")))) == 1


def test_files_being_written_are_not_read(sagemaker_captures: Path) -> None:
    hour = sagemaker_captures / "ep" / "AllTraffic" / "2026" / "01" / "31" / "13"
    (hour / ".06-00-000-d.jsonl.123.partial").write_text('{"captureData": {"endpointInput"')
    (hour / "thumbnails").mkdir()
    (hour / "thumbnails" / ".x.jpg.5.tmp").write_bytes(b"")
    assert len(list(read_captures(sagemaker_captures))) == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"^{file}:2 is not a JSON line \(Expecting property name"),
        ('{"captureData": {}}', r"^{file}:2 is not a capture record: expected captureData and eventMetadata objects$"),
        ('{"captureData": {}, "eventMetadata": {"eventId": 7}}', r"^{file}:2: eventMetadata needs eventId and inferenceTime strings$"),
        (
            '{"captureData": {}, "eventMetadata": {"eventId": "e", "inferenceTime": "yesterday"}}',
            r"^{file}:2: inferenceTime 'yesterday' is not an ISO 8601 time$",
        ),
        (
            '{"captureData": {"endpointInput": {"mode": "INPUT"}}, "eventMetadata": {"eventId": "e", "inferenceTime": "2026-01-31T13:05:09Z"}}',
            r"^{file}:2: captureData.endpointInput needs observedContentType, mode, data, encoding strings$",
        ),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    file = write_lines(tmp_path / "c.jsonl", CSV_RECORD)
    with file.open("a") as f:
        f.write(line + "\n")
    records = read_captures(file)
    assert next(records).event_id == CSV_RECORD["eventMetadata"]["eventId"]  # type: ignore[index]
    with pytest.raises(DataValidationError, match=message.replace("{file}", str(file).replace(".", r"\."))):
        next(records)


def test_an_unknown_encoding_is_refused(tmp_path: Path) -> None:
    record = json.loads(json.dumps(CSV_RECORD))
    record["captureData"]["endpointInput"]["encoding"] = "GZIP"
    file = write_lines(tmp_path / "c.jsonl", record)
    with pytest.raises(
        DataValidationError, match=r"c\.jsonl:1: captureData\.endpointInput\.encoding is 'GZIP', expected BASE64, JSON or CSV$"
    ):
        list(read_captures(file))


def test_s3_and_missing_folders_are_refused_with_the_way_forward(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^reading captures from s3://bucket/datacapture/ep directly is not built yet$") as s3:
        list(read_captures("s3://bucket/datacapture/ep"))
    assert s3.value.hint == "copy them down first: aws s3 sync s3://bucket/datacapture/ep ./captures --profile ab, then read ./captures"
    with pytest.raises(ConfigError, match=rf"^capture folder {tmp_path / 'none'} does not exist$"):
        list(read_captures(tmp_path / "none"))


# ---- the writer ----------------------------------------------------------------------------------


def event(n: int) -> CaptureEvent:
    return CaptureEvent(
        datetime(2026, 1, 31, 13, 5, n, tzinfo=UTC), f"req-{n}", "image/png", b"\x89PNG body %d" % n, b'{"detections": []}', ()
    )


def test_sampling_takes_about_the_percentage_asked(tmp_path: Path) -> None:
    random.seed(12)
    writer = CaptureWriter(CaptureConfig(root=tmp_path, percent=25), ServerMetrics().capture())
    taken = sum(writer.sampled() for _ in range(4000))
    assert 900 <= taken <= 1100  # binomial(4000, 0.25): mean 1000, sd 27


def test_a_file_left_by_a_killed_server_is_finished_by_the_next(tmp_path: Path) -> None:
    """Whole lines kept, a torn last line cut, renamed to its final name; a live writer's file is left alone."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    hour = tmp_path / "local" / "AllTraffic" / "2026" / "01" / "31" / "12"
    whole = json.dumps(CSV_RECORD) + "\n"
    left = write_lines(hour / f".00-00-000-x.jsonl.{gone.stdout.strip()}.partial", CSV_RECORD)
    left.write_text(whole + '{"captureData": {"endpoin')
    live = hour / f".00-00-001-y.jsonl.{1}.partial"  # pid 1 is alive
    live.write_text(whole)
    writer = CaptureWriter(CaptureConfig(root=tmp_path), ServerMetrics().capture())
    writer.start()
    writer.submit(event(1))
    writer.close()
    assert (hour / "00-00-000-x.jsonl").read_text() == whole
    assert not left.exists() and live.exists()
    assert [r.inference_id for r in read_captures(tmp_path)] == [None, "req-1"]
