"""evaluate: the document against its schema and against a direct Ultralytics validation.

The integration tests train a YOLO11n from `yolo11n.yaml` (no pretrained weights, nothing downloaded)
on 16 generated images of coloured squares, once per module (20-45 s on 2 shared CPU cores). 30 short epochs
rather than 1-2: the model must find something (mAP50 > 0), or "our numbers equal Ultralytics'"
would hold trivially as 0 == 0.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from skyops.data.layout import IMAGES, LABELS, write_data_yaml
from skyops.errors import ConfigError, DataValidationError
from skyops.evaluation.detmetrics import slice_metrics
from skyops.training.evaluate import compare, evaluate, load_schema, run_validation, validate_evaluation, write_evaluation
from skyops.training.threads import pin_threads, torch_threads, usable_cpus

NAMES = ["red", "green", "blue"]  # "blue" never occurs: its per-class entry must be null
COLOURS = [(230, 40, 40), (40, 220, 40)]
IMAGE_SIDE = 160  # pixels; squares of 14-28 (small), 40-80 (medium) and 100-130 px (large)
IMGSZ = 64
FINGERPRINT = "f" * 64
SETTINGS: dict[str, Any] = {"split": "test", "imgsz": IMGSZ, "batch": 8, "conf": 0.001, "iou": 0.7, "device": "cpu", "names": NAMES}


# --- a hand-made document, for the schema tests (no model needed) ------------------------------


def sample_document() -> dict[str, Any]:
    ap = {"ap50": 0.5, "ap50_95": 0.3, "precision": 0.6, "recall": 0.4}
    return {
        "schema_version": "1.0",
        "metrics": {"map50": 0.5, "map50_95": 0.3, "precision": 0.6, "recall": 0.4},
        "per_class": [
            {"class_id": 0, "name": "car", "instances": 7, **ap},
            {"class_id": 1, "name": "bus", "instances": 0, "ap50": None, "ap50_95": None, "precision": None, "recall": None},
        ],
        "per_size": {
            "small": {"map50": 0.1, "map50_95": 0.05, "instances": 3},
            "medium": {"map50": 0.6, "map50_95": 0.4, "instances": 4},
            "large": {"map50": None, "map50_95": None, "instances": 0},
        },
        "speed_ms": {"preprocess": 0.1, "inference": 4.0, "postprocess": 0.2, "total": 4.3, "device": "cpu", "imgsz": 640},
        "dataset": {"split": "test", "images": 5, "instances": 7, "fingerprint": None},
        "model": {"weights_sha256": "a" * 64, "imgsz": 640},
        "settings": {"conf": 0.001, "iou": 0.7, "batch": 16},
        "comparison": None,
        "created": "2025-01-01T12:00:00+00:00",
    }


def test_sample_document_is_valid() -> None:
    validate_evaluation(sample_document())


def test_schema_rejects_a_missing_map50() -> None:
    doc = sample_document()
    del doc["metrics"]["map50"]
    with pytest.raises(DataValidationError, match=r"1 problem in evaluation document:\n  - metrics: 'map50' is a required property"):
        validate_evaluation(doc)


def test_schema_rejects_a_non_numeric_map50() -> None:
    doc = sample_document()
    doc["metrics"]["map50"] = "high"
    with pytest.raises(DataValidationError, match=r"metrics\.map50: 'high' is not of type 'number'"):
        validate_evaluation(doc)


def test_schema_rejects_a_nan_map50() -> None:
    doc = sample_document()
    doc["metrics"]["map50"] = float("nan")
    with pytest.raises(DataValidationError, match=r"metrics\.map50: nan is not a finite number"):
        validate_evaluation(doc)


def test_schema_lists_every_failing_path() -> None:
    doc = sample_document()
    doc["per_class"][0]["ap50"] = 2
    doc["comparison"] = {"delta": {}}
    with pytest.raises(DataValidationError, match=r"^5 problems in evaluation document") as caught:
        validate_evaluation(doc)
    assert caught.value.problems == [
        "comparison.delta: 'map50' is a required property",
        "comparison.delta: 'map50_95' is a required property",
        "comparison: 'challenger_better' is a required property",
        "comparison: 'champion' is a required property",
        "per_class[0].ap50: 2 is greater than the maximum of 1",
    ]


def test_write_evaluation_is_atomic_and_round_trips(tmp_path: Path) -> None:
    target = write_evaluation(sample_document(), tmp_path / "out" / "evaluation.json")
    assert json.loads(target.read_text()) == sample_document()
    assert [p.name for p in target.parent.iterdir()] == ["evaluation.json"]  # no temp file left


def test_write_evaluation_refuses_an_invalid_document_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = write_evaluation(sample_document(), tmp_path / "evaluation.json")
    before = target.read_text()
    bad = sample_document()
    bad["metrics"]["map50"] = None
    with pytest.raises(DataValidationError, match=r"metrics\.map50: None is not of type 'number'"):
        write_evaluation(bad, target)
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["evaluation.json"]


def test_settings_problems_are_reported_together(tmp_path: Path) -> None:
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text("path: /nowhere\ntrain: images\nval: images\nnames: {0: a}\n")
    with pytest.raises(ConfigError, match=r"^6 problems in the evaluation settings") as caught:
        evaluate(
            tmp_path / "missing.pt",
            data_yaml,
            split="test",
            imgsz=50,
            batch=0,
            conf=1.0,
            names=["a"],
            champion=tmp_path / "old.pt",
            state_dir=tmp_path,
        )
    assert caught.value.problems == [
        "batch: expected at least 1, got 0",
        f"champion: {tmp_path / 'old.pt'} does not exist (expected weights or an evaluation document)",
        "conf: expected 0 <= conf < 1, got 1.0",
        f"data_yaml: {data_yaml} has no 'test' entry, so that split cannot be evaluated",
        "imgsz: expected a multiple of 32 (the model's largest stride), at least 32, got 50",
        f"weights: {tmp_path / 'missing.pt'} does not exist",
    ]


def test_champion_on_another_dataset_is_refused() -> None:
    challenger, champion = sample_document(), sample_document()
    challenger["dataset"]["fingerprint"] = "1" * 64
    champion["dataset"]["fingerprint"] = "2" * 64
    with pytest.raises(ConfigError, match=r"dataset fingerprint: challenger 111111111111…, champion 222222222222…"):
        compare(challenger, champion, source="document")


# --- real Ultralytics validation on a tiny trained model ---------------------------------------


@pytest.fixture(scope="module")
def state_dir(ultra_state: Path) -> Path:
    """The session's Ultralytics state dir, with Ultralytics imported offline from it."""
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(ultra_state)
    return ultra_state


@pytest.fixture(scope="module")
def squares_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 noisy images with 2-3 coloured squares each, one of every size class; train = val = test."""
    root = tmp_path_factory.mktemp("squares")
    (root / IMAGES).mkdir()
    (root / LABELS).mkdir()
    rng = np.random.default_rng(0)
    entries = []
    for i in range(16):
        pixels = rng.integers(0, 90, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
        lines = []
        squares = [(0, rng.integers(14, 28)), (1, rng.integers(40, 80)), (i % 2, rng.integers(100, 130))]
        for cls, side in squares[: 2 + (i % 3 == 0)]:
            x0, y0 = (int(v) for v in rng.integers(0, IMAGE_SIDE - side, 2))
            pixels[y0 : y0 + side, x0 : x0 + side] = COLOURS[cls]
            lines.append(f"{cls} {(x0 + side / 2) / IMAGE_SIDE} {(y0 + side / 2) / IMAGE_SIDE} {side / IMAGE_SIDE} {side / IMAGE_SIDE}")
        Image.fromarray(pixels).save(root / IMAGES / f"sq{i:02d}.png")
        (root / LABELS / f"sq{i:02d}.txt").write_text("\n".join(lines) + "\n")
        entries.append(f"{IMAGES}/sq{i:02d}.png")
    for split in ("train", "val", "test"):
        (root / f"{split}.txt").write_text("\n".join(entries) + "\n")
    return write_data_yaml(root, tmp_path_factory.mktemp("yaml") / "data.yaml", NAMES)


@pytest.fixture(scope="module")
def weights(state_dir: Path, squares_yaml: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ultralytics import YOLO

    project = tmp_path_factory.mktemp("train")
    YOLO("yolo11n.yaml").train(
        data=str(squares_yaml),
        epochs=30,
        imgsz=IMGSZ,
        batch=2,  # 8 optimiser steps per epoch: enough to learn squares in 30 epochs
        optimizer="AdamW",
        lr0=0.01,
        warmup_epochs=0,
        mosaic=0.0,
        seed=0,
        deterministic=True,
        workers=0,
        device="cpu",
        amp=False,
        val=False,
        plots=False,
        project=str(project),
        name="run",
        verbose=False,
    )
    return project / "run" / "weights" / "last.pt"


@pytest.fixture(scope="module")
def evaluation(
    weights: Path, squares_yaml: Path, state_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], list[str]]:
    """The document, and whatever evaluate left in an empty working directory."""
    workdir = tmp_path_factory.mktemp("cwd")
    with contextlib.chdir(workdir):
        doc = evaluate(weights, squares_yaml, state_dir=state_dir, fingerprint=FINGERPRINT, **SETTINGS)
    return doc, sorted(p.name for p in workdir.iterdir())


@pytest.fixture(scope="module")
def direct_val(weights: Path, squares_yaml: Path, state_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Ultralytics' own numbers, from a plain `YOLO(weights).val(...)` with the same settings.

    On the evaluation's thread count too: Ultralytics' own (cores - 1) sums in another order, and on some
    CPUs that moves a class's precision by ~1e-9, past the equality's tolerance.
    """
    from ultralytics import YOLO

    model = YOLO(str(weights))
    pin_threads(model, usable_cpus())  # after Ultralytics sets its own
    args = {k: v for k, v in SETTINGS.items() if k != "names"}
    with torch_threads(usable_cpus()):
        return model.val(data=str(squares_yaml), **args, project=str(tmp_path_factory.mktemp("val")), name="val", verbose=False)


def test_document_is_valid_json_with_plain_numbers(evaluation: tuple[dict[str, Any], list[str]]) -> None:
    doc, _ = evaluation
    validate_evaluation(doc)
    parsed = json.loads(json.dumps(doc, allow_nan=False))
    from jsonschema import Draft202012Validator

    Draft202012Validator(load_schema()).validate(parsed)
    assert type(parsed["metrics"]["map50"]) is float


def test_evaluate_writes_nothing(evaluation: tuple[dict[str, Any], list[str]]) -> None:
    _, leftovers = evaluation
    assert leftovers == []


def test_overall_metrics_equal_ultralytics(evaluation: tuple[dict[str, Any], list[str]], direct_val: Any) -> None:
    metrics = evaluation[0]["metrics"]
    assert metrics["map50"] > 0, "the tiny model found nothing: the equality below would hold trivially"
    box = direct_val.box
    assert metrics == pytest.approx({"map50": box.map50, "map50_95": box.map, "precision": box.mp, "recall": box.mr}, abs=1e-9)


def test_per_class_metrics_equal_ultralytics(evaluation: tuple[dict[str, Any], list[str]], direct_val: Any) -> None:
    per_class = evaluation[0]["per_class"]
    box = direct_val.box
    assert [int(c) for c in box.ap_class_index] == [0, 1]
    for row, class_id in enumerate(box.ap_class_index):
        p, r, ap50, ap = box.class_result(row)
        entry = per_class[class_id]
        assert entry["name"] == NAMES[class_id]
        assert entry["instances"] == int(direct_val.nt_per_class[class_id]) > 0
        assert (entry["ap50"], entry["ap50_95"], entry["precision"], entry["recall"]) == pytest.approx((ap50, ap, p, r), abs=1e-9)


def test_class_absent_from_the_split_is_reported_as_null(evaluation: tuple[dict[str, Any], list[str]]) -> None:
    assert evaluation[0]["per_class"][2] == {
        "class_id": 2,
        "name": "blue",
        "instances": 0,
        "ap50": None,
        "ap50_95": None,
        "precision": None,
        "recall": None,
    }


def test_size_slices_partition_the_ground_truth(evaluation: tuple[dict[str, Any], list[str]]) -> None:
    doc = evaluation[0]
    sizes = doc["per_size"]
    assert all(sizes[name]["instances"] > 0 for name in ("small", "medium", "large"))
    assert sum(s["instances"] for s in sizes.values()) == doc["dataset"]["instances"] == 38


def test_dataset_model_and_speed_sections(evaluation: tuple[dict[str, Any], list[str]], weights: Path) -> None:
    doc = evaluation[0]
    assert doc["dataset"] == {"split": "test", "images": 16, "instances": 38, "fingerprint": FINGERPRINT, "box_attributes": None}
    assert doc["model"] == {"weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "imgsz": IMGSZ}
    speed = doc["speed_ms"]
    assert speed["inference"] > 0
    assert speed["total"] == pytest.approx(speed["preprocess"] + speed["inference"] + speed["postprocess"])
    assert (speed["device"], speed["threads"], speed["imgsz"]) == ("cpu", usable_cpus(), IMGSZ)
    assert doc["comparison"] is None


def test_validation_runs_on_every_core(
    weights: Path, squares_yaml: Path, state_dir: Path, threads_seen: Callable[..., list[tuple[str, int]]]
) -> None:
    """Ultralytics' validator sets torch to cores - 1 threads when it picks the CPU; the evaluation uses them all."""
    from ultralytics.utils import NUM_THREADS

    if usable_cpus() == NUM_THREADS:
        pytest.skip(f"on {usable_cpus()} cores Ultralytics' count is ours already: the test could not fail")
    seen = threads_seen("on_val_batch_end")
    run = run_validation(weights, squares_yaml, **SETTINGS, state_dir=state_dir)
    assert run.threads == usable_cpus() and set(seen) == {("on_val_batch_end (standalone)", usable_cpus())}
    seen.clear()
    run = run_validation(weights, squares_yaml, **SETTINGS, state_dir=state_dir, threads=1)
    assert run.threads == 1 and set(seen) == {("on_val_batch_end (standalone)", 1)}


def test_all_sizes_from_detmetrics_reproduce_ultralytics(weights: Path, squares_yaml: Path, state_dir: Path) -> None:
    run = run_validation(weights, squares_yaml, state_dir=state_dir, **SETTINGS)
    assert len(run.images) == 16
    everything = slice_metrics([image.boxes for image in run.images])
    assert everything.instances == run.instances
    # Same boxes, same matching, same AP method: equal to float precision, not just within 0.01.
    assert everything.map50 == pytest.approx(run.metrics["map50"], abs=1e-9)
    assert everything.map50_95 == pytest.approx(run.metrics["map50_95"], abs=1e-9)
    # The recorded image: its name and size, its boxes mapped back to original pixels, its brightness
    root = Path(yaml.safe_load(squares_yaml.read_text())["path"])
    for image in run.images:
        with Image.open(root / IMAGES / image.name) as original:
            assert image.shape == (original.height, original.width) == (IMAGE_SIDE, IMAGE_SIDE)
            gray = float(np.asarray(original.convert("L"), dtype=float).mean())  # ITU-R 601 luma, the weights the evaluation uses
        assert image.brightness == pytest.approx(gray, abs=1.0)  # measured on the 64 px network input, padding cut off
        labels = np.loadtxt(root / LABELS / f"{Path(image.name).stem}.txt", ndmin=2)
        expected = np.column_stack(
            (
                labels[:, 1] - labels[:, 3] / 2,
                labels[:, 2] - labels[:, 4] / 2,
                labels[:, 1] + labels[:, 3] / 2,
                labels[:, 2] + labels[:, 4] / 2,
            )
        )
        assert np.sort(image.gt_xyxy, axis=0) == pytest.approx(np.sort(expected * IMAGE_SIDE, axis=0), abs=0.5)


def test_slices_repeat_ultralytics_numbers_where_they_overlap(evaluation: tuple[dict[str, Any], list[str]]) -> None:
    doc = evaluation[0]
    slices = doc["slices"]
    assert list(slices) == ["size", "class", "brightness", "region", "crowding"]  # no attributes: no occlusion, no truncation
    assert {name: {k: e[k] for k in ("map50", "map50_95", "instances")} for name, e in slices["size"].items()} == doc["per_size"]
    for entry in doc["per_class"]:
        found = slices["class"][entry["name"]]
        assert found["instances"] == entry["instances"]
        assert (found["map50"], found["map50_95"]) == pytest.approx((entry["ap50"], entry["ap50_95"]), abs=1e-9)
    for family in ("size", "brightness", "region", "crowding"):  # each family partitions the ground truth
        assert sum(e["instances"] for e in slices[family].values()) == doc["dataset"]["instances"]
    weakest = doc["weakest_slice"]
    assert weakest is not None and weakest["instances"] >= doc["settings"]["min_slice_instances"] == 20
    assert weakest["map50_95"] == min(e["map50_95"] for f in slices.values() for e in f.values() if e["instances"] >= 20)


def test_coco_confusion_and_worst_images_sections(evaluation: tuple[dict[str, Any], list[str]]) -> None:
    doc = evaluation[0]
    assert doc["coco"]["max_detections"] == 100 and doc["coco"]["ap50"] is not None
    assert doc["coco"]["ap"] <= doc["coco"]["ap50"]
    confusion = doc["confusion"]
    assert confusion["labels"] == [*NAMES, "background"]
    truth = [sum(row) for row in confusion["matrix"]]
    assert truth[:3] == [entry["instances"] for entry in doc["per_class"]]  # every true box once: found, confused or missed
    worst = doc["worst_images"]
    assert 0 < len(worst) <= doc["settings"]["worst_images"] == 6
    assert [w["f1"] for w in worst] == sorted(w["f1"] for w in worst)


@pytest.fixture(scope="module")
def reported(weights: Path, squares_yaml: Path, state_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """An evaluation with box attributes (one image's rows do not match its labels) and a report."""
    root = Path(yaml.safe_load(squares_yaml.read_text())["path"])
    attributes = {}
    for label in sorted((root / LABELS).glob("*.txt")):
        rows = len(label.read_text().splitlines())
        attributes[f"{label.stem}.png"] = np.array([[0, i % 3] for i in range(rows)])  # occlusion none, partial, heavy by row
    attributes["sq00.png"] = np.zeros((9, 2), dtype=int)  # not its row count: left without attributes
    out = tmp_path_factory.mktemp("report")
    doc = evaluate(
        weights,
        squares_yaml,
        state_dir=state_dir,
        attributes=attributes,
        attribute_columns=("truncation", "occlusion"),
        report=out / "report.html",
        **SETTINGS,
    )
    return doc, out


def test_box_attributes_add_occlusion_and_truncation_slices(reported: tuple[dict[str, Any], Path]) -> None:
    doc, _ = reported
    assert doc["dataset"]["box_attributes"] == {"columns": ["truncation", "occlusion"], "images": 15, "unaligned": 1}
    occlusion = doc["slices"]["occlusion"]
    assert [occlusion[level]["instances"] > 0 for level in ("none", "partial", "heavy")] == [True, True, True]
    first_image_boxes = 3  # sq00 has 3 squares (i % 3 == 0): its boxes are in no occlusion slice
    assert sum(e["instances"] for e in occlusion.values()) == doc["dataset"]["instances"] - first_image_boxes
    assert doc["slices"]["truncation"]["partial"]["instances"] == 0


def test_evaluate_writes_the_report_it_is_asked_for(reported: tuple[dict[str, Any], Path]) -> None:
    doc, out = reported
    assert [p.name for p in out.iterdir()] == ["report.html"]
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html
    assert html.count('src="data:image/jpeg;base64,') == len(doc["worst_images"]) > 0
    assert "<h3>occlusion</h3>" in html


def test_champion_weights_are_evaluated_with_the_same_settings(
    evaluation: tuple[dict[str, Any], list[str]], weights: Path, squares_yaml: Path, state_dir: Path
) -> None:
    doc = evaluate(weights, squares_yaml, state_dir=state_dir, champion=weights, **SETTINGS)
    comparison = doc["comparison"]
    assert comparison["champion"]["source"] == "weights"
    assert comparison["champion"]["metrics"] == pytest.approx(evaluation[0]["metrics"], abs=1e-9)
    assert comparison["delta"] == pytest.approx({"map50": 0.0, "map50_95": 0.0}, abs=1e-9)
    assert comparison["challenger_better"] is False  # a tie keeps the champion
    slices = comparison["slices"]  # the same weights: every slice the same
    assert slices["compared"] > 0 and slices["worst"]["delta"] == 0.0
    assert {d for family in slices["delta"].values() for d in family.values()} == {0.0}


def test_champion_document_file_is_compared(
    evaluation: tuple[dict[str, Any], list[str]], weights: Path, squares_yaml: Path, state_dir: Path, tmp_path: Path
) -> None:
    champion = copy.deepcopy(evaluation[0])
    champion["metrics"] = {"map50": 0.0, "map50_95": 0.0, "precision": 0.0, "recall": 0.0}
    path = write_evaluation(champion, tmp_path / "champion.json")
    doc = evaluate(weights, squares_yaml, state_dir=state_dir, champion=path, fingerprint=FINGERPRINT, **SETTINGS)
    comparison = doc["comparison"]
    assert comparison["champion"]["source"] == "document"
    assert comparison["delta"] == pytest.approx({"map50": doc["metrics"]["map50"], "map50_95": doc["metrics"]["map50_95"]})
    assert comparison["challenger_better"] is True


def test_invalid_champion_document_is_refused(weights: Path, squares_yaml: Path, state_dir: Path) -> None:
    champion = sample_document()
    champion["metrics"]["map50"] = "n/a"
    with pytest.raises(
        DataValidationError, match=r"in the champion's evaluation document:\n  - metrics\.map50: 'n/a' is not of type 'number'"
    ):
        evaluate(weights, squares_yaml, state_dir=state_dir, champion=champion, **SETTINGS)


def test_names_must_match_the_model(weights: Path, squares_yaml: Path, state_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"names has 1 classes but the model .* predicts 3"):
        evaluate(weights, squares_yaml, state_dir=state_dir, **{**SETTINGS, "names": ["red"]})
