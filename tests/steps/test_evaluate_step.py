"""The evaluate step takes a model folder's best.pt, or fails clearly: never another .pt in its place."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from skyops.errors import DataValidationError
from skyops.steps.evaluate.script import weights_in


def test_best_pt_is_taken(tmp_path: Path) -> None:
    for name in ("best.pt", "last.pt"):
        (tmp_path / name).write_bytes(name.encode())
    assert weights_in(tmp_path, "model") == tmp_path / "best.pt"


def test_a_folder_without_best_pt_is_refused_even_with_one_other_weights_file(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"last")
    with pytest.raises(DataValidationError, match=rf"^input 'model' \({tmp_path}\) has no best.pt \(it holds last.pt\)$"):
        weights_in(tmp_path, "model")


def test_an_empty_champion_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=rf"^input 'champion' \({tmp_path}\) has no best.pt$"):
        weights_in(tmp_path, "champion")


def test_a_sagemaker_model_archive_is_unpacked_and_read_only_for_best_pt(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "best.pt").write_bytes(b"best")
    (tmp_path / "model").mkdir()
    with tarfile.open(tmp_path / "model" / "model.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "src" / "best.pt", arcname="best.pt")
    found = weights_in(tmp_path / "model", "model")
    assert found.name == "best.pt" and found.read_bytes() == b"best" and found.parent != tmp_path / "model"
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.tar.gz"]  # the input is never written to
