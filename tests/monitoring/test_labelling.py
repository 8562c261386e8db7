"""The labelling loop: the documented score, the diverse and deterministic pick, captured requests read through the one
capture reader, the job's files (Ground Truth, Label Studio), and labels taken back into a new dataset version."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from skyops.data.convert import ConvertFailed
from skyops.data.layout import Manifest
from skyops.errors import ConfigError, DataValidationError, StateFileError
from skyops.monitoring.datasets import DatasetStore, external
from skyops.monitoring.labeljob import GT_CATEGORIES, GT_INPUT, LS_CONFIG, LS_TASKS, SELECTION, export_job, import_labels, read_selection
from skyops.monitoring.labelling import Candidate, Scored, Skipped, Weights, read_candidates, read_drift_contributions, score, select
from skyops.serving.capture import capture_record
from skyops.settings import Settings

from .conftest import NAMES, cli, groundtruth_line, write_manifest

WHEN = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def picture(seed: int, *, dark: float = 1.0, size: tuple[int, int] = (48, 64)) -> bytes:
    """A JPEG of random blocks (seeded): different seeds are different scenes; `dark` scales the same scene's brightness."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 255, (6, 8, 3)).astype(np.float64)
    image = cv2.resize(blocks, (size[1], size[0]), interpolation=cv2.INTER_NEAREST) * dark
    return bytes(cv2.imencode(".jpg", image.clip(0, 255).astype(np.uint8))[1].tobytes())


def detection(class_id: int, score: float, box: tuple[float, float, float, float] = (4, 6, 20, 18)) -> dict[str, Any]:
    return {"class_id": class_id, "class_name": NAMES[class_id], "score": score, "box": list(box)}


def candidate(key: str, detections: list[dict[str, Any]], image: bytes | None = None) -> Candidate:
    return Candidate(key, key, f"ev-{key}", 0, WHEN, image or picture(hash(key) % 1000), ".jpg", 64, 48, detections)


def test_the_score_is_the_documented_weighted_sum() -> None:
    cands = [
        candidate("a", [detection(0, 0.9), detection(0, 0.7)]),  # confident, common class
        candidate("b", [detection(0, 0.3), detection(3, 0.5)]),  # unsure, with the rare class
        candidate("c", []),  # nothing found
    ]
    scored = score(cands, {"a": 0.2, "b": 0.8, "zzz": -1.0}, Weights())
    parts = [(s.candidate.key, round(s.uncertainty, 6), round(s.drift, 6), round(s.rarity, 6)) for s in scored]
    # class counts: car 3, person 1 -> rarity car 0, person 1 - 1/3
    assert parts == [("a", 0.2, 0.25, 0.0), ("b", 0.6, 1.0, round(2 / 3, 6)), ("c", 1.0, 0.0, 0.0)]
    assert [round(s.score, 6) for s in scored] == [round(0.5 * 0.2 + 0.3 * 0.25, 6), round(0.5 * 0.6 + 0.3 + 0.2 * 2 / 3, 6), 0.5]


def test_the_pick_prefers_variety_over_near_copies_and_is_deterministic() -> None:
    scene = [candidate(f"copy{i}", [detection(0, 0.2)], picture(7, dark=1.0 - 0.2 * i)) for i in range(3)]  # one scene, darker
    other = candidate("other", [detection(0, 0.3)], picture(99))
    scored = score([*scene, other], {}, Weights())
    picked = select(scored, 2, Weights())
    assert [s.candidate.key for s in picked] == ["copy0", "other"]  # not copy1: the same scene, only darker
    assert picked[0].similarity == 0.0 and picked[1].similarity < 0.5
    alone = select(scored, 2, Weights(diversity=0.0))
    assert [s.candidate.key for s in alone] == ["copy0", "copy1"]  # ties broken by key: the smaller first
    assert [s.to_json() for s in select(list(reversed(scored)), 4, Weights())] == [s.to_json() for s in select(scored, 4, Weights())]


@pytest.mark.parametrize("bad", [float("nan"), -0.1, float("inf")])
def test_weights_must_be_finite_and_not_negative(bad: float) -> None:
    with pytest.raises(DataValidationError, match=r"weight drift=.* is not a finite number >= 0"):
        Weights(drift=bad)


def write_captures(folder: Path, records: list[dict[str, Any]]) -> Path:
    hour = folder / "local" / "AllTraffic" / "2026" / "02" / "01" / "12"
    hour.mkdir(parents=True)
    (hour / "00-00-000-x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def request(n: int, body: bytes, answer: dict[str, Any], kind: str = "image/jpeg") -> dict[str, Any]:
    return capture_record(
        event_id=f"ev{n}",
        inference_id=f"req{n}",
        when=WHEN + timedelta(seconds=n),
        input_type=kind,
        body=body,
        output_type="application/json",
        output=json.dumps(answer).encode(),
    )


def test_captured_requests_become_candidates_one_per_image(tmp_path: Path) -> None:
    one = {"image": {"width": 64, "height": 48}, "detections": [detection(1, 0.4)]}
    batch_body = json.dumps({"images": [base64.b64encode(picture(2)).decode(), base64.b64encode(picture(3)).decode()]}).encode()
    batch = {"predictions": [{"detections": [detection(0, 0.6)]}, {"detections": []}]}
    output_only = request(9, b"", one)
    del output_only["captureData"]["endpointInput"]
    records = [
        request(1, picture(1), one),
        request(2, batch_body, batch, "application/json"),
        request(3, picture(1), one),  # the same picture again
        output_only,
        request(4, b"not an image", one),
        request(5, batch_body, {"predictions": [batch["predictions"][0]]}, "application/json"),  # one answer for two images
    ]
    found, skipped = read_candidates(write_captures(tmp_path / "captures", records))
    assert [(c.key, c.inference_id, c.index, c.width, c.height, len(c.detections)) for c in found] == [
        ("req1-0", "req1", 0, 64, 48, 1),
        ("req2-0", "req2", 0, 64, 48, 1),
        ("req2-1", "req2", 1, 64, 48, 0),
    ]
    assert found[1].image == picture(2)
    assert dict(skipped.reasons) == {
        "same image as an earlier request": 1,
        "request or response not captured": 1,
        "not an image": 1,
        "response does not answer each image": 1,
    }


def test_drift_contributions_come_from_the_contract_and_a_bad_file_is_named(tmp_path: Path, write_drift: Any) -> None:
    assert read_drift_contributions(write_drift(requests={"req1": 0.5, "req2": 2.0})) == {"req1": 0.5, "req2": 2.0}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"requests": [{"inference_id": "x", "drift_contribution": "high"}]}))
    with pytest.raises(StateFileError, match=r"drift result .*bad\.json has the wrong shape: requests\[0\] is not \{inference_id"):
        read_drift_contributions(bad)


def picked(keys: list[str]) -> list[Scored]:
    cands = [candidate(k, [detection(0, 0.4, (6.4, 4.8, 32, 24)), detection(3, 0.2)]) for k in keys]
    return select(score(cands, {}, Weights()), len(cands), Weights())


def export(out: Path, keys: list[str], **kwargs: Any) -> Any:
    options = {"names": NAMES, "captures": "caps", "drift_file": None, "weights": Weights(), "skipped": Skipped(), "candidates": len(keys)}
    return export_job(picked(keys), out, **{**options, **kwargs})


def test_the_job_holds_ground_truth_and_label_studio_files(tmp_path: Path) -> None:
    job = export(tmp_path / "job", ["req1-0", "req2-0"], s3_prefix="s3://bucket/labelling/job1")
    files = sorted(p.name for p in job.path.iterdir())
    assert files == sorted([GT_CATEGORIES, GT_INPUT, "images", LS_CONFIG, LS_TASKS, SELECTION])
    lines = [json.loads(line) for line in (job.path / GT_INPUT).read_text().splitlines()]
    assert lines == [{"source-ref": f"s3://bucket/labelling/job1/images/{k}.jpg", "skyops-key": k} for k in ("req1-0", "req2-0")]
    assert json.loads((job.path / GT_CATEGORIES).read_text())["labels"] == [{"label": n} for n in NAMES]
    task = json.loads((job.path / LS_TASKS).read_text())[0]
    assert task["data"] == {"image": "/data/local-files/?d=job/images/req1-0.jpg", "skyops_key": "req1-0"}
    [first, _] = task["predictions"][0]["result"]
    assert first["value"] == {"x": 10.0, "y": 10.0, "width": 40.0, "height": 40.0, "rotation": 0, "rectanglelabels": ["car"]}
    assert (first["from_name"], first["to_name"], first["type"], first["original_width"], first["score"]) == (
        "label",
        "image",
        "rectanglelabels",
        64,
        0.4,
    )
    assert '<RectangleLabels name="label" toName="image">' in (job.path / LS_CONFIG).read_text()
    assert (job.path / "images" / "req1-0.jpg").read_bytes() == picked(["req1-0"])[0].candidate.image
    assert read_selection(job.path)["s3_prefix"] == "s3://bucket/labelling/job1/"


def test_class_names_are_escaped_in_the_label_studio_config(tmp_path: Path) -> None:
    job = export(tmp_path / "job", ["req1-0"], names=["car", 'big "truck" & <bus>'])
    assert "<Label value='big \"truck\" &amp; &lt;bus&gt;'/>" in (job.path / LS_CONFIG).read_text()


def test_an_export_never_writes_into_a_folder_with_content_nor_without_images(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "keep.txt").write_text("mine")
    with pytest.raises(DataValidationError, match="already exists and is not an empty folder"):
        export(tmp_path / "job", ["req1-0"])
    assert (tmp_path / "job" / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="no captured image to label in caps"):
        export_job(
            [], tmp_path / "empty", names=NAMES, captures="caps", drift_file=None, weights=Weights(), skipped=Skipped(), candidates=0
        )
    with pytest.raises(ConfigError, match=r"--s3-prefix 'bucket/x' is not an s3://bucket/prefix/ URI"):
        export(tmp_path / "other", ["req1-0"], s3_prefix="bucket/x")


def labels_for(
    job: Path, keys: list[str], *, prefix: str = "", boxes: list[tuple[int, float, float, float, float]] | None = None
) -> list[dict[str, Any]]:
    """The Ground Truth output manifest a labeller returns for the job's images `keys`."""
    return [groundtruth_line(f"{prefix}images/{k}.jpg", 64, 48, boxes or [(3, 10, 8, 12, 20)]) for k in keys]


def test_labels_come_back_as_a_new_fingerprinted_version_that_grows_with_each_job(project: Settings, scenes: Path, tmp_path: Path) -> None:
    store = DatasetStore(project.state_dir)
    base = external(scenes)
    first_job = export(tmp_path / "job1", ["req1-0", "req2-0", "req3-0"], s3_prefix="s3://bucket/jobs/1/")
    output = write_manifest(
        tmp_path / "out1" / "output.manifest", labels_for(first_job.path, ["req1-0", "req2-0"], prefix="s3://bucket/jobs/1/")
    )
    v1 = import_labels(first_job.path, output, store, base)
    assert (v1.number, v1.images, v1.added, v1.parent) == (1, 10, 2, base.fingerprint)
    assert v1.fingerprint != base.fingerprint and v1.fingerprint == Manifest.read(v1.path).fingerprint
    record = json.loads((v1.path / "version.json").read_text())
    assert record["labels"]["job"] == first_job.job and record["parent"]["version"] is None
    label = (v1.path / "labels" / "req1-0.txt").read_text()
    assert label == f"3 {(10 + 6) / 64:.6f} {(8 + 10) / 48:.6f} {12 / 64:.6f} {20 / 48:.6f}\n"
    second_job = export(tmp_path / "job2", ["req7-0"])
    v2 = import_labels(second_job.path, write_manifest(tmp_path / "out2.manifest", labels_for(second_job.path, ["req7-0"])), store, v1)
    assert (v2.number, v2.images, v2.added, v2.parent) == (2, 11, 1, v1.fingerprint)
    assert store.added_since(v2, None) == 3 and store.added_since(v2, v1.fingerprint) == 1
    assert [v.label for v in store.versions()] == ["v0001", "v0002"] and store.resolve("latest").path == v2.path
    assert Manifest.read(base.path).fingerprint == base.fingerprint  # the base is untouched
    with pytest.raises(DataValidationError, match="every labelled image is already in the base dataset v0002 with the same label"):
        import_labels(second_job.path, tmp_path / "out2.manifest", store, v2)


def test_labels_that_do_not_fit_the_job_are_refused_and_no_version_is_made(project: Settings, scenes: Path, tmp_path: Path) -> None:
    store = DatasetStore(project.state_dir)
    base = external(scenes)
    job = export(tmp_path / "job", ["req1-0", "req2-0"])
    outside = tmp_path / "stray.jpg"
    outside.write_bytes(picture(5))
    cases = [
        (labels_for(job.path, ["req1-0"], boxes=[(9, 1, 1, 5, 5)]), ConvertFailed, r"class_id 9 is not in any class-map"),
        ([groundtruth_line("../stray.jpg", 64, 48, [(0, 1, 1, 5, 5)])], ConvertFailed, r"leads outside the images folder"),
        (labels_for(job.path, ["req1-0"], boxes=[(0, 1, 1, math.inf, 5)]), ConvertFailed, r"is not finite"),
    ]
    for n, (lines, error, message) in enumerate(cases):
        with pytest.raises(error, match=message):
            import_labels(job.path, write_manifest(tmp_path / f"bad{n}.manifest", lines), store, base)
    other = export(tmp_path / "other", ["req9-0"])
    (job.path / "images" / "req9-0.jpg").write_bytes((other.path / "images" / "req9-0.jpg").read_bytes())  # an image the job never exported
    with pytest.raises(DataValidationError, match=r"labels 1 image\(s\) that job .* did not export: images/req9-0\.jpg"):
        import_labels(job.path, write_manifest(tmp_path / "foreign.manifest", labels_for(job.path, ["req9-0"])), store, base)
    assert store.versions() == [] and list(store.root.iterdir()) == []  # no version, no scratch left behind


def test_the_cli_exports_and_imports_and_says_what_is_missing(
    project: Settings, scenes: Path, tmp_path: Path, capsys: Any, write_drift: Any
) -> None:
    one = {"image": {"width": 64, "height": 48}, "detections": [detection(1, 0.4)]}
    captures = write_captures(tmp_path / "captures", [request(n, picture(n), one) for n in range(1, 6)])
    code, _, err = cli(capsys, "monitor", "label", "export", str(captures), "--out", str(tmp_path / "job"))
    assert code == 2 and err.startswith(
        "error: dataset 'drone-detection' has no version yet, so there is no base dataset to label for\nhint: give --base"
    )
    drift = write_drift(requests={"req4": 3.0})
    code, out, err = cli(
        capsys,
        "monitor",
        "label",
        "export",
        str(captures),
        "--out",
        str(tmp_path / "job"),
        "--base",
        str(scenes),
        "--count",
        "2",
        "--drift",
        str(drift),
    )
    assert code == 0, err
    assert out.startswith("labelling job ") and "2 of 5 captured images picked" in out
    keys = [i["key"] for i in read_selection(tmp_path / "job")["items"]]
    assert keys[0] == "req4-0"  # the request drift.json blames most
    output = write_manifest(tmp_path / "output.manifest", labels_for(tmp_path / "job", keys))
    code, out, err = cli(capsys, "monitor", "label", "import", str(output), "--job", str(tmp_path / "job"))
    assert code == 2 and "error: dataset 'drone-detection' has no version yet" in err
    code, out, err = cli(capsys, "monitor", "label", "import", str(output), "--job", str(tmp_path / "job"), "--base", str(scenes))
    assert code == 0, err
    assert out.splitlines()[0].endswith(
        "v0001: 10 images (2 newly labelled) in " + str(project.state_dir / "datasets" / "drone-detection" / "v0001")
    )
    code, _, err = cli(capsys, "monitor", "label", "export", str(captures), "--out", str(tmp_path / "job2"), "--weights", "1,2")
    assert (code, err.splitlines()[0]) == (2, "error: --weights '1,2' is not four numbers")


def test_the_cli_default_dataset_name_is_the_stores() -> None:
    from skyops.cli.monitor_loop_cmd import DEFAULT_DATASET
    from skyops.monitoring.datasets import DEFAULT_NAME

    assert DEFAULT_DATASET == DEFAULT_NAME
