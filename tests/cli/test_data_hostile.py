"""Hostile sources through the real command line (`python -m skyops data convert|validate` in a
subprocess): one clear error, exit 2, no traceback, no byte of a foreign file, the source unchanged."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data.hostile import GOOD, SECRET, World, coco_images
from tests.data.hostile_cases import CASES

ROOT = Path(__file__).resolve().parents[2]


def skyops(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skyops", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT)


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): (f"link -> {os.readlink(p)}" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


@pytest.mark.parametrize(
    ("case_id", "rule"),
    [
        ("coco-traversal", "path.escapes_root"),
        ("yolo-symlink-label", "path.escapes_root"),
        ("groundtruth-s3-traversal", "path.escapes_root"),
        ("coco-duplicate-image-id", "image.duplicate_id"),
        ("yolo-latin1", "text.not_utf8"),
    ],
)
def test_convert_refuses_with_one_clear_error(case_id: str, rule: str, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    world = World(tmp_path / "world")
    source, extra = case.build(world)
    before = digest(world.root)
    options = [f"--{k.replace('_', '-')}={v}" for k, v in extra.items()]
    done = skyops("data", "convert", source, tmp_path / "out", "--format", case.fmt.upper(), *options)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: 1 problem in {case.fmt} source {source}:\n  - ") and f"[{rule}]" in done.stderr
    assert done.stderr.count("\nhint: ") == 1 and "Traceback" not in done.stderr and done.stdout == ""
    assert SECRET not in done.stderr
    assert digest(world.root) == before and sorted(os.listdir(tmp_path)) == ["world"]


def test_validate_after_convert_raises_label_missing(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    world.yolo({"a": GOOD}, images=("a.jpg", "b.jpg"))  # b.jpg has no label file
    converted = skyops("data", "convert", world.ds, tmp_path / "out", "--format", "Yolo")
    assert converted.returncode == 0, converted.stderr
    done = skyops("data", "validate", tmp_path / "out", "--min-side", "8")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: validation FAILED for {tmp_path / 'out'}: 1 of 2 images quarantined")
    assert "label.missing" in done.stderr and "images/b.jpg" in done.stderr


def test_validate_on_a_raw_source_is_one_clear_error(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    world.link("images/c.jpg", world.root / "secret.jpg")
    world.yolo()
    done = skyops("data", "validate", world.ds)
    assert done.returncode == 2 and "Traceback" not in done.stderr and SECRET not in done.stderr
    assert done.stderr == (
        f"error: {world.ds} has no manifest.json and no names were given\n"
        "hint: validate a dataset made by `skyops data convert` (or pass names=[...] in Python)\n"
    )


def test_format_flag_is_case_insensitive(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    source = world.coco(coco_images("a.jpg", "b.jpg"), [])
    done = skyops("data", "convert", source, tmp_path / "out", "--format", "COCO")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("converted 2 coco images from ")
    assert "findings: " in done.stdout and "without a label file: 0" in done.stdout
