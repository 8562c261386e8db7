"""The export step on a really trained tiny model: the package, its metadata, the check, the variants' rule.

The step runs as the local engine runs it (skyops.pipeline.runtime with the contract's paths mapped
to folders), in this process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from skyops.serving import package
from skyops.serving.export_check import Tolerance, keep_variant
from tests.serving.export_fixtures import NAMES, SIZE, Trained, run_export, tiny_trained  # noqa: F401 - a fixture

NO_VARIANTS = ("--int8", "false", "--openvino", "false")
CANARY_CONF = ("--conf", "0.001")  # the tiny model's scores are low: at this default threshold it finds things to expect


@pytest.fixture(scope="module")
def exported(tiny_trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The package of the default settings (INT8 and OpenVINO tried, kept or dropped by measurement)."""
    out = tmp_path_factory.mktemp("exported") / "package"
    assert run_export(tiny_trained, out) == 0
    return out


def metadata_of(out: Path) -> dict[str, Any]:
    return json.loads((package.model_dir(out) / package.METADATA).read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_package_is_the_model_folder_and_its_archive(exported: Path) -> None:
    model = package.model_dir(exported)
    assert sorted(p.name for p in exported.iterdir()) == ["model", "model.tar.gz"]
    on_disk = sorted(p.relative_to(model).as_posix() for p in model.rglob("*"))
    assert {"metadata.json", "model.onnx", "best.pt"} <= set(on_disk)
    with tarfile.open(exported / package.ARCHIVE) as tar:
        assert tar.getnames() == on_disk  # the tarball's members are the model folder's entries, in order
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None and extracted.read() == (model / member.name).read_bytes()


def test_metadata_describes_the_model_and_every_file_digest(exported: Path, tiny_trained: Trained) -> None:  # noqa: F811
    doc = metadata_of(exported)
    model = package.model_dir(exported)
    assert (doc["format"], doc["names"], doc["imgsz"]) == (1, NAMES, SIZE)
    assert doc["thresholds"] == {"conf": 0.25, "iou": 0.45, "max_det": 300}
    assert doc["source"] == {"model": "drone-detector", "version": None, "weights_sha256": sha256(tiny_trained.weights)}
    assert doc["files"] == {
        p.relative_to(model).as_posix(): sha256(p) for p in model.rglob("*") if p.is_file() and p.name != "metadata.json"
    }
    assert doc["artifacts"]["onnx"] == {
        "file": "model.onnx",
        "sha256": sha256(model / "model.onnx"),
        "opset": 17,
        "input": "images",
        "shape": [1, 3, SIZE, SIZE],
        "dtype": "float32",
        "output": "output0",
        "output_shape": [1, 4 + len(NAMES), (SIZE // 8) ** 2 + (SIZE // 16) ** 2 + (SIZE // 32) ** 2],
    }
    assert doc["artifacts"]["torch"]["sha256"] == sha256(tiny_trained.weights) == sha256(model / "best.pt")
    assert package.read_metadata(model).source.weights_sha256 == sha256(tiny_trained.weights)


def test_the_onnx_graph_is_static_opset_17_raw_head_and_dateless(exported: Path) -> None:
    import onnx

    graph = onnx.load(str(package.model_dir(exported) / "model.onnx"))
    assert [(o.domain, o.version) for o in graph.opset_import] == [("", 17)]
    assert [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim] == [1, 3, SIZE, SIZE]
    assert not [n for n in graph.graph.node if n.op_type == "NonMaxSuppression"]  # NMS is the server's
    properties = {p.key: p.value for p in graph.metadata_props}
    assert "date" not in properties and properties["task"] == "detect"


def test_the_check_passed_within_the_tolerance(exported: Path) -> None:
    check = metadata_of(exported)["check"]
    tolerance = Tolerance()
    assert check["passed"] is True and (check["split"], check["images"]) == ("test", 6)
    assert abs(check["map50"]["onnx"] - check["map50"]["torch"]) <= tolerance.map50
    agreement = check["onnx_vs_torch"]
    assert agreement["anchors"] == 6 * 84 and agreement["boxes"] > 0
    assert agreement["worst_box_iou"] >= tolerance.box_iou and agreement["worst_score_delta"] <= tolerance.score


@pytest.mark.parametrize(("name", "file"), [("int8", "model-int8.onnx"), ("openvino", "openvino/model.xml")])
def test_a_variant_is_in_the_package_exactly_when_the_rule_keeps_it(exported: Path, name: str, file: str) -> None:
    doc = metadata_of(exported)
    check, verdict = doc["check"], doc["check"]["variants"][name]
    expected = keep_variant(
        name,
        latency_ms=check["latency_ms"][name],
        map50=check["map50"][name],
        fp32_latency_ms=check["latency_ms"]["onnx"],
        fp32_map50=check["map50"]["onnx"],
        tolerance=Tolerance(),
    )
    assert (verdict["kept"], verdict["reason"]) == (expected.kept, expected.reason)
    assert (name in doc["artifacts"]) is verdict["kept"] is (package.model_dir(exported) / file).is_file()
    if verdict["kept"]:
        assert doc["artifacts"][name]["file"] == file


def test_the_same_weights_give_the_same_archive(tiny_trained: Trained, tmp_path: Path) -> None:  # noqa: F811
    assert run_export(tiny_trained, tmp_path / "a", *NO_VARIANTS, *CANARY_CONF) == 0
    assert run_export(tiny_trained, tmp_path / "b", *NO_VARIANTS, *CANARY_CONF) == 0
    assert (tmp_path / "a" / package.ARCHIVE).read_bytes() == (tmp_path / "b" / package.ARCHIVE).read_bytes()
    check = metadata_of(tmp_path / "a")["check"]
    assert check["canary"]["written"] is True  # the canary set is in the archive, and the same bytes too
    assert "latency_ms" not in check  # nothing to choose: no machine-dependent numbers in the package
    assert check["variants"]["int8"] == {"kept": False, "reason": "int8 not tried (config int8: false)"}


def test_a_corrupted_onnx_fails_the_check_and_nothing_is_packaged(
    tiny_trained: Trained,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import onnx
    from onnx import numpy_helper

    from skyops.serving import export

    real_export = export.export_onnx

    def export_with_a_zeroed_weight(weights: Path, target: Path, **settings: Any) -> dict[str, Any]:
        """The real export, then the bias of the class-score convolution at stride 8 zeroed: a weight tensor
        that matters even to a barely trained model (YOLO starts it near log(5 / nc / 80²), scores near 0)."""
        details = real_export(weights, target, **settings)
        graph = onnx.load(str(target))
        scores = next(n for n in graph.graph.node if n.op_type == "Conv" and n.name.endswith("/cv3.0.2/Conv"))
        bias = next(t for t in graph.graph.initializer if t.name == scores.input[2])
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) * 0, bias.name))
        onnx.save(graph, str(target))
        return details

    monkeypatch.setattr(export, "export_onnx", export_with_a_zeroed_weight)
    out = tmp_path / "package"
    assert run_export(tiny_trained, out, *NO_VARIANTS) == 1
    error = capsys.readouterr().err
    assert error.startswith(
        "error: the ONNX export does not match the PyTorch model on the test split (6 images): class scores differ by up to "
    )
    assert "hint: nothing was packaged" in error
    assert not (out / package.ARCHIVE).exists() and not (package.model_dir(out) / package.METADATA).exists()


def test_a_split_without_test_images_is_refused(tiny_trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    splits = tmp_path / "splits"
    shutil.copytree(tiny_trained.splits, splits)
    (splits / "test.txt").write_text("")
    code = run_export(tiny_trained, tmp_path / "package", *NO_VARIANTS, inputs={"splits": splits})
    assert code == 1
    assert capsys.readouterr().err.splitlines()[0] == f"error: the dataset {splits} has no test images; the export is checked on them"


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_damaged_weights_are_one_clear_error(
    tiny_trained: Trained,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_trained.model, model)
    weights = model / "best.pt"
    real = weights.read_bytes()
    weights.write_bytes({"garbage": b"secret text, not a checkpoint\n" * 4, "empty": b"", "truncated": real[: len(real) // 2]}[damage])
    code = run_export(dataclasses.replace(tiny_trained, model=model), tmp_path / "package", *NO_VARIANTS)
    assert code == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert re.fullmatch(
        rf"error: weights {re.escape(str(weights))} cannot be loaded \(\w+\): expected an Ultralytics YOLO checkpoint; "
        r"this one is empty, truncated or not a PyTorch checkpoint",
        lines[0],
    )
    assert lines[1] == (
        "hint: export the best.pt the train step wrote; if it is that one, the model folder is damaged: run the pipeline again with --no-cache"
    )
    assert "secret" not in err  # the file's bytes are never echoed
    assert not (tmp_path / "package" / package.ARCHIVE).exists()


def test_a_damaged_label_of_the_split_is_one_clear_error(tiny_trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    splits = tmp_path / "splits"
    shutil.copytree(tiny_trained.splits, splits)
    first = (splits / "test.txt").read_text().splitlines()[0]  # images/sceneNNN.png
    label = splits / "labels" / f"{Path(first).stem}.txt"
    label.write_text("0 0.5 half 0.1 0.1\n")
    assert run_export(tiny_trained, tmp_path / "package", *NO_VARIANTS, inputs={"splits": splits}) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: label file {label} is not YOLO text (class cx cy w h per line)",
        "hint: the split is damaged: run the pipeline again with --no-cache",
    ]


@pytest.fixture(scope="module")
def with_canary(tiny_trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("with-canary") / "package"
    assert run_export(tiny_trained, out, *NO_VARIANTS, *CANARY_CONF) == 0
    return out


def test_the_package_holds_a_canary_set_of_held_back_images_and_the_onnx_answers(with_canary: Path, tiny_trained: Trained) -> None:  # noqa: F811
    from skyops.data.layout import read_split
    from skyops.serving.canary import load_canary
    from skyops.serving.export_runtime import OnnxModel, letterbox, nms, read_image
    from skyops.steps.export.script import CANARY_IMAGES

    model = package.model_dir(with_canary)
    canary = load_canary(model / "canary")  # refuses a set that expects nothing
    doc = metadata_of(with_canary)
    assert doc["check"]["canary"] == {
        "written": True,
        "folder": "canary",
        "images": len(canary.images),
        "detections": canary.expected,
        "expected_from": "onnx",
        "reason": f"canary set: {len(canary.images)} images with {canary.expected} expected detections "
        "(the ONNX model's, test split, conf 0.001, iou 0.45, max_det 300)",
    }
    assert (canary.conf, canary.max_det) == (0.001, 300)  # asked at the package's defaults
    assert 0 < len(canary.images) <= CANARY_IMAGES and all(image.detections for image in canary.images)
    test_images = {(tiny_trained.splits / p).read_bytes(): p for p in read_split(tiny_trained.splits, "test")}
    onnx = OnnxModel(model / "model.onnx")
    for image in canary.images:
        source = tiny_trained.splits / test_images[image.path.read_bytes()]  # a held-back test image, copied byte for byte
        pixels = read_image(source)
        found = nms(onnx(letterbox(pixels, SIZE)), pixels.shape[:2], SIZE, package.Thresholds(conf=0.001))
        assert [(d.class_id, d.box) for d in image.detections] == [
            (int(c), tuple(round(float(v), 2) for v in box)) for c, box in zip(found.classes, found.boxes, strict=True)
        ]
    files = doc["files"]
    assert {p for p in files if p.startswith("canary/")} == {
        p.relative_to(model).as_posix() for p in (model / "canary").rglob("*") if p.is_file()
    }  # hashed in metadata.json, and so in model.tar.gz
    with tarfile.open(with_canary / package.ARCHIVE) as tar:
        assert "canary/canary.json" in tar.getnames()


def test_a_model_that_finds_nothing_gets_no_canary_set_and_metadata_says_why(
    tiny_trained: Trained,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_export(tiny_trained, tmp_path / "p", *NO_VARIANTS, "--conf", "1") == 0  # no score exceeds 1: nothing found
    model = package.model_dir(tmp_path / "p")
    assert not (model / "canary").exists()
    reason = (
        "no canary set: the model finds nothing in any of the 6 images of the test split, conf 1.0, iou 0.45, max_det 300 "
        "(a set expecting nothing cannot tell a broken model from a working one); a local deployment needs local.canary"
    )
    assert metadata_of(tmp_path / "p")["check"]["canary"] == {"written": False, "reason": reason}
    assert reason in capsys.readouterr().out.splitlines()


def test_a_server_of_the_package_passes_its_own_canary_set(with_canary: Path, tmp_path: Path) -> None:
    """What local deploy does before a version takes traffic: the packaged set, checked against `skyops serve` of the package."""
    from skyops.serving.canary import load_canary, run_canary
    from tests.serving.conftest import launch, shut

    server = launch(with_canary, cwd=tmp_path)
    try:
        result = run_canary(server.url, load_canary(package.model_dir(with_canary) / "canary"))
    finally:
        assert shut(server) == 0
    assert result.passed, result.summary()
    assert result.expected > 0 and result.matched >= 0.8 * result.expected
