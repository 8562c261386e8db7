"""The package contract: sealing writes sha256s and a deterministic archive; reading refuses every kind of damage."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from skyops.errors import StateFileError
from skyops.serving import package
from skyops.serving.package import Artifact, PackageMetadata, Source, Thresholds

WEIGHTS = b"weights"


def draft(**artifacts: Artifact) -> PackageMetadata:
    return PackageMetadata(
        names=["car", "person"],
        imgsz=64,
        thresholds=Thresholds(),
        source=Source(model="drone-detector", version=None, weights_sha256=hashlib.sha256(WEIGHTS).hexdigest()),
        artifacts=artifacts or {"onnx": Artifact(file="model.onnx", details={"opset": 17}), "torch": Artifact(file="best.pt")},
        check={"passed": True},
    )


def make_package(root: Path, *, openvino: bool = False) -> Path:
    """A package folder with stand-in files (the contract is about files and their digests, not their content)."""
    model = package.model_dir(root)
    model.mkdir(parents=True)
    (model / "model.onnx").write_bytes(b"onnx bytes")
    (model / "best.pt").write_bytes(WEIGHTS)
    artifacts = {"onnx": Artifact(file="model.onnx", details={"opset": 17}), "torch": Artifact(file="best.pt")}
    if openvino:
        (model / "openvino").mkdir()
        (model / "openvino" / "model.xml").write_bytes(b"<net/>")
        (model / "openvino" / "model.bin").write_bytes(b"\0" * 64)
        artifacts["openvino"] = Artifact(file="openvino/model.xml")
    package.seal(root, draft(**artifacts))
    return root


def test_seal_records_every_file_and_writes_the_archive_of_the_model_folder(tmp_path: Path) -> None:
    root = make_package(tmp_path / "pkg", openvino=True)
    model = package.model_dir(root)
    doc = json.loads((model / "metadata.json").read_text())
    on_disk = {p.relative_to(model).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in model.rglob("*") if p.is_file()}
    assert doc["files"] == {k: v for k, v in on_disk.items() if k != "metadata.json"}
    assert doc["artifacts"]["openvino"]["sha256"] == on_disk["openvino/model.xml"]
    assert list(doc["artifacts"]) == ["onnx", "openvino", "torch"]  # package.ARTIFACTS order
    assert doc["source"] == {"model": "drone-detector", "version": None, "weights_sha256": hashlib.sha256(WEIGHTS).hexdigest()}
    assert doc["thresholds"] == {"conf": 0.25, "iou": 0.45, "max_det": 300} and doc["format"] == 1
    with tarfile.open(root / package.ARCHIVE) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(p.relative_to(model).as_posix() for p in model.rglob("*"))
        for member in members:
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None and extracted.read() == (model / member.name).read_bytes()
    assert package.read_metadata(model).artifact_names == ("onnx", "openvino", "torch")


def test_the_archive_depends_on_the_files_only(tmp_path: Path) -> None:
    first, second = make_package(tmp_path / "a"), make_package(tmp_path / "b")
    os.utime(package.model_dir(second) / "best.pt", (1_000_000, 1_000_000))  # other times, same bytes
    package.write_archive(package.model_dir(second), second / package.ARCHIVE)
    assert (first / package.ARCHIVE).read_bytes() == (second / package.ARCHIVE).read_bytes()
    with gzip.open(first / package.ARCHIVE) as zipped:
        zipped.read(1)
        assert zipped.mtime == 0  # no time in the gzip header either
    (package.model_dir(second) / "best.pt").write_bytes(b"other weights")
    package.write_archive(package.model_dir(second), second / package.ARCHIVE)
    assert package.archive_sha256(first) != package.archive_sha256(second)


def test_a_changed_file_is_refused_with_both_digests(tmp_path: Path) -> None:
    root = make_package(tmp_path / "pkg")
    model = package.model_dir(root)
    recorded = hashlib.sha256(b"onnx bytes").hexdigest()
    (model / "model.onnx").write_bytes(b"tampered")
    actual = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(
        StateFileError, match=rf"^model package {model}: model.onnx has sha256 {actual[:12]}…, metadata.json records {recorded[:12]}…$"
    ):
        package.read_metadata(model)
    assert package.read_metadata(model, verify=False).files["model.onnx"] == recorded  # shape only: no file is read


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    model = package.model_dir(make_package(tmp_path / "pkg"))
    (model / "best.pt").unlink()
    with pytest.raises(StateFileError, match=rf"^model package {model}: best.pt is missing$"):
        package.read_metadata(model)


@pytest.mark.parametrize("path", ["../outside.onnx", "/etc/passwd", "a/../../b"])
def test_paths_never_leave_the_model_folder(tmp_path: Path, path: str) -> None:
    model = package.model_dir(make_package(tmp_path / "pkg"))
    doc = json.loads((model / "metadata.json").read_text())
    doc["files"][path] = doc["files"]["model.onnx"]
    (model / "metadata.json").write_text(json.dumps(doc))
    with pytest.raises(StateFileError, match=rf"path '{path}' leaves the model folder \(expected a relative path inside it\)"):
        package.read_metadata(model)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    model = package.model_dir(make_package(tmp_path / "pkg"))
    outside = tmp_path / "secret.onnx"
    outside.write_bytes(b"onnx bytes")  # the same bytes: only where it lives is wrong
    (model / "model.onnx").unlink()
    (model / "model.onnx").symlink_to(outside)
    with pytest.raises(StateFileError, match=r"model.onnx resolves outside the model folder"):
        package.read_metadata(model)


def test_every_shape_problem_is_reported_at_once_without_echoing_values(tmp_path: Path) -> None:
    model = package.model_dir(make_package(tmp_path / "pkg"))
    doc = json.loads((model / "metadata.json").read_text())
    doc |= {"format": 2, "imgsz": 100, "names": [], "thresholds": {"conf": 2, "iou": 0.5, "max_det": 0}}
    doc["source"]["weights_sha256"] = "secret-value"
    doc["artifacts"] = {"tflite": {"file": "m.tflite", "sha256": "0" * 64}}
    (model / "metadata.json").write_text(json.dumps(doc))
    with pytest.raises(StateFileError) as info:
        package.read_metadata(model)
    message = info.value.message
    for problem in (
        "'format' is not 1",
        "'names' is not a non-empty list of class names",
        "'imgsz' is not a multiple of 32 pixels",
        "'thresholds.conf' is not a number in [0, 1]",
        "'thresholds.max_det' is not a positive integer",
        "'source.weights_sha256' is not a sha256 hex digest",
        "'artifacts' has no 'onnx' entry",
        "'artifacts' names 'tflite'; known: onnx, int8, openvino, torch",
    ):
        assert problem in message
    assert "secret-value" not in message and info.value.hint.startswith("export the model again")


def test_seal_refuses_an_artifact_that_is_not_there(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    package.model_dir(root).mkdir(parents=True)
    with pytest.raises(StateFileError, match=r"model package .*: model.onnx is missing"):
        package.seal(root, draft())
    assert not (root / package.ARCHIVE).exists()


def test_the_archive_is_a_model_folder_as_sagemaker_and_a_champion_input_unpack_it(tmp_path: Path) -> None:
    from skyops.training.model_folder import model_folder

    root = make_package(tmp_path / "pkg", openvino=True)
    received = tmp_path / "champion"  # what a job gets for a ModelDataUrl: the archive alone
    received.mkdir()
    shutil.copyfile(root / package.ARCHIVE, received / package.ARCHIVE)
    unpacked = model_folder(received)
    assert (unpacked / "best.pt").read_bytes() == WEIGHTS  # the evaluate step reads a champion's best.pt at the root
    assert package.read_metadata(unpacked).artifact_names == ("onnx", "openvino", "torch")  # every digest holds
