"""`skyops data ...`: the data steps' logic by hand, through the command line."""

import json
from pathlib import Path

import pytest

from tests.clirun import cli


def test_synth_validate_profile_split_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "data", "synth", str(tmp_path / "scenes"), "--count", "12", "--size", "96", "--preview")[0] == 0
    assert (tmp_path / "scenes-preview.png").is_file()
    code, out, _ = cli(capsys, "data", "validate", str(tmp_path / "scenes"), "--report", str(tmp_path / "v.json"))
    assert code == 0 and out.startswith(f"validation passed for {tmp_path / 'scenes'}: 0 of 12 images quarantined")
    assert json.loads((tmp_path / "v.json").read_text())["images"] == 12
    assert cli(capsys, "data", "profile", str(tmp_path / "scenes"), str(tmp_path / "profile"))[0] == 0
    assert (tmp_path / "profile" / "profile.html").is_file()
    code, out, _ = cli(
        capsys, "data", "split", str(tmp_path / "scenes"), str(tmp_path / "split"), "--ratios", "0.5,0.25,0.25", "--seed", "3"
    )
    assert code == 0 and "leakage check: clean" in out


def test_validate_fails_with_exit_1_and_a_summary_when_too_much_is_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "data", "synth", str(tmp_path / "scenes"), "--count", "4", "--size", "96")
    for image in sorted((tmp_path / "scenes" / "images").iterdir())[:2]:
        image.write_bytes(image.read_bytes()[:100])  # truncated JPEGs
    code, _, err = cli(capsys, "data", "validate", str(tmp_path / "scenes"), "--max-invalid", "0.1")
    assert code == 1
    assert err.startswith(f"error: validation FAILED for {tmp_path / 'scenes'}: 2 of 4 images quarantined")
    assert "image.unreadable" in err and "fix: replace the file with a valid JPEG/PNG" in err


def test_convert_reports_what_it_dropped(tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_datasets: Path) -> None:
    code, out, _ = cli(capsys, "data", "convert", str(shared_datasets / "visdrone-sample"), str(tmp_path / "vd"), "--format", "visdrone")
    assert code == 0 and "converted 8 visdrone images" in out and "boxes dropped: " in out and "ignored_region" in out
