"""Converters under hostile input: every case of the generated corpus (hostile_cases.py) has a pinned
outcome and rule ids, never a traceback, never a byte of a foreign file in any output, and leaves
its source byte-identical. Then the cross-cutting promises: all problems in one run, capped lists,
missing labels reach validation, hints that name the CLI flags."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyops.data.convert import REPORT_JSON, ConvertFailed, convert
from skyops.data.formats import Format
from skyops.data.layout import Manifest
from skyops.data.validate import ValidationPolicy, validate
from skyops.errors import DataValidationError
from tests.data.hostile import GOOD, SECRET, World, jpeg, truncated_jpeg
from tests.data.hostile_cases import CASES

State = Callable[[Path], dict[str, str]]


def output_texts(target: Path) -> list[str]:
    """Every file of a converted dataset, as text (images too: a foreign file must not be linked in)."""
    return [p.read_bytes().decode("latin-1") for p in sorted(target.rglob("*")) if p.is_file()]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_case(case, world: World, tmp_path: Path, source_state: State) -> None:
    source, extra = case.build(world)
    before = source_state(world.root)
    target = tmp_path / "out"
    try:
        report = convert(source, target, None if case.fmt == "auto" else case.fmt, **extra)
    except ConvertFailed as error:
        outcome, findings = "refused", error.findings
        texts = [error.message, error.hint, *error.problems, *(str(f) for f in findings)]
    else:
        outcome, findings = "converted", report.findings
        texts = [report.summary(), json.dumps(asdict(report), default=str), *output_texts(target)]
        written = json.loads((target / REPORT_JSON).read_text())
        assert [f["message"] for f in written["findings"]] == [f.message for f in findings]
        assert Manifest.read(target).stats["findings"] == written["counts"] == report.counts()

    assert (outcome, {str(f.rule) for f in findings}) == (case.outcome, set(case.rules)), [str(f) for f in findings]
    if case.findings:
        assert [str(f) for f in findings] == list(case.findings)
    assert not [t for t in texts if SECRET in t]  # no byte of a file outside the dataset, anywhere
    assert source_state(world.root) == before  # the source (and everything beside it) is byte-identical
    assert sorted(os.listdir(tmp_path)) == (["out", "world"] if outcome == "converted" else ["world"])  # no staging left


def test_bad_boxes_leave_the_good_ones_and_keep_a_duplicate_once(world: World, tmp_path: Path) -> None:
    from tests.data.hostile_cases import YOLO_BOXES

    report = convert(world.yolo({"a": YOLO_BOXES, "b": GOOD}), tmp_path / "out")
    # kept: the clipped box (x from 0.85 to 1.0 of the width) and one copy of the duplicated one
    assert (tmp_path / "out" / "labels" / "a.txt").read_text().splitlines() == [
        "0 0.925000 0.500000 0.150000 0.200000",
        "1 0.500000 0.500000 0.200000 0.200000",
    ]
    assert report.dropped == {"box.duplicate": 1, "box.negative_size": 1, "box.outside_image": 1, "box.zero_area": 1}
    assert report.clipped == 1 and report.boxes == 3


def test_every_problem_of_a_source_in_one_run(world: World, tmp_path: Path) -> None:
    """Before: source-level problems raised before any row was read, and a name clash raised on its own."""
    world.yolo({"a": "0 0.5 x 0.2 0.2\n", "b": GOOD})
    (world.ds / "data.yaml").unlink()  # no class names
    world.link("images/c.jpg", world.root / "secret.jpg")  # leaves the dataset
    world.file("images/b.png", jpeg(9))  # b.jpg and b.png would share labels/b.txt
    with pytest.raises(ConvertFailed) as error:
        convert(world.ds, tmp_path / "out", "yolo")
    assert error.value.problems == [
        "no class names: 0 yaml files with 'names' in "
        f"{world.ds}; expected a data.yaml with 'names' (or pass --classes a,b,... / names=[...] in Python) [names.missing]",
        "images/b.png: would share its label file with images/b.jpg (same stem, any case): rename one in a copy of the source [image.name_clash]",
        "images/c.jpg: a link to outside the source; copy what it points at into the source, or remove the link [path.escapes_root]",
        "labels/a.txt:1: fields are not numbers ('0 0.5 x 0.2 0.2') [row.unparseable]",
    ]
    assert error.value.message.startswith(f"4 problems in yolo source {world.ds}:\n  - no class names")


def test_a_long_list_is_capped_with_a_count_and_kept_whole(world: World, tmp_path: Path) -> None:
    world.yolo({"a": "".join(f"0 0.5 0.5 0.1 bad{i}\n" for i in range(30)), "b": GOOD})
    with pytest.raises(ConvertFailed, match=r"^30 problems in yolo source") as error:
        convert(world.ds, tmp_path / "out")
    assert error.value.message.count("\n  - ") == 20 and error.value.message.endswith("\n  … and 10 more")
    assert (
        len(error.value.problems) == 30
        and error.value.problems[-1] == "labels/a.txt:30: fields are not numbers ('0 0.5 0.5 0.1 bad29') [row.unparseable]"
    )


def test_summary_caps_findings_and_points_at_the_report(world: World, tmp_path: Path) -> None:
    world.yolo({"a": "".join(f"0 0.5 0.5 0 0.{i + 1}\n" for i in range(25)), "b": GOOD})  # 25 zero-width boxes
    report = convert(world.ds, tmp_path / "out")
    summary = report.summary()
    assert "  findings: box.zero_area 25" in summary
    assert summary.count("    - labels/a.txt:") == 20 and f"    … and 5 more in {tmp_path / 'out' / REPORT_JSON}" in summary
    assert len(json.loads((tmp_path / "out" / REPORT_JSON).read_text())["findings"]) == 25


@pytest.mark.parametrize("fmt", ["yolo", "visdrone", "voc"])
def test_a_missing_annotation_reaches_validation_as_label_missing(fmt: str, world: World, tmp_path: Path) -> None:
    """Before: the image got an empty label file (YOLO), or the conversion failed (VisDrone) or skipped it (VOC)."""
    builders = {
        "yolo": lambda: world.yolo({"a": GOOD}),
        "visdrone": lambda: world.visdrone({"a": "5,5,10,10,1,4,0,0\n"}),
        "voc": lambda: world.voc(
            {
                "a": "<annotation><filename>a.jpg</filename><object><name>car</name><bndbox><xmin>6</xmin><ymin>6</ymin><xmax>15</xmax><ymax>15</ymax></bndbox></object></annotation>"
            }
        ),
    }
    report = convert(builders[fmt](), tmp_path / "out", fmt)
    assert report.images == 2 and report.missing_labels == 1 and not (tmp_path / "out" / "labels" / "b.txt").exists()
    result = validate(tmp_path / "out", ValidationPolicy(max_invalid_fraction=1.0, min_side=8))
    assert [(f.rule, f.file) for f in result.findings] == [("label.missing", "images/b.jpg")]
    assert result.quarantined == ["images/b.jpg"]


def test_no_objects_is_an_empty_label_not_a_missing_one(world: World, tmp_path: Path) -> None:
    source = world.coco([{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}, {"id": 2, "file_name": "b.jpg"}], [])
    report = convert(source, tmp_path / "out")
    assert report.empty_labels == 2 and report.missing_labels == 0
    result = validate(tmp_path / "out", ValidationPolicy(min_side=8))
    assert {str(f.rule) for f in result.findings} == {"label.empty"} and result.quarantined == []


def test_a_truncated_image_is_converted_and_left_to_validation(world: World, tmp_path: Path) -> None:
    world.yolo()
    world.file("images/a.jpg", truncated_jpeg(0))
    report = convert(world.ds, tmp_path / "out")
    assert [str(f) for f in report.findings] == [
        "images/a.jpg: jpeg data ends before its end marker: converted; validation's image.truncated decides [image.truncated]"
    ]
    result = validate(tmp_path / "out", ValidationPolicy(max_invalid_fraction=1.0, min_side=8))
    assert [(f.rule, f.file) for f in result.findings] == [("image.truncated", "images/a.jpg")]


def test_format_is_case_insensitive(world: World, tmp_path: Path) -> None:
    source = world.coco([{"id": 1, "file_name": "a.jpg"}], [])
    assert convert(source, tmp_path / "upper", "COCO").format is Format.COCO
    assert convert(source, tmp_path / "auto", "Auto").format is Format.COCO
    with pytest.raises(DataValidationError, match=r"unknown format 'pascal'") as error:
        convert(source, tmp_path / "bad", "pascal")
    assert (
        error.value.hint == "use one of: auto, visdrone, coco, voc, groundtruth, yolo, dota, dior (--format, or fmt= in Python; any case)"
    )


def test_hints_name_the_cli_flag_and_the_python_argument(world: World, tmp_path: Path) -> None:
    convert(world.yolo(), tmp_path / "out")
    with pytest.raises(DataValidationError, match=r"already exists") as error:
        convert(world.ds, tmp_path / "out")
    assert error.value.hint == "pass --overwrite (overwrite=True in Python) to replace it, or choose a new target"
    with pytest.raises(ConvertFailed, match=r"no target class for source class\(es\) 'person' \[names.invalid\]") as names:
        convert(world.ds, tmp_path / "other", names=["car"])
    assert names.value.hint == "fix these in the source (skyops never modifies it) or in the convert options named above"


# a YOLO value on a coarse grid, so that zero sizes, edges and exact duplicates come up often
grid = st.sampled_from([-0.5, -0.1, 0.0, 0.1, 0.25, 0.5, 0.9, 1.0, 1.2, 2.0])
rows = st.lists(st.tuples(st.sampled_from([0, 1]), grid, grid, grid, grid), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_every_row_is_kept_or_has_exactly_one_box_finding(rows: list[tuple[int, float, float, float, float]], tmp_path_factory) -> None:
    world = World(tmp_path_factory.mktemp("property") / "world")
    world.yolo({"a": "".join(f"{c} {x} {y} {w} {h}\n" for c, x, y, w, h in rows), "b": GOOD})
    target = world.root.parent / "out"
    report = convert(world.ds, target, "yolo", workers=1)

    by_line = {f.line: f for f in report.findings if f.file == "labels/a.txt"}
    dropped = {line for line, f in by_line.items() if f.outcome == "dropped"}
    assert len(by_line) == sum(1 for f in report.findings if f.file == "labels/a.txt")  # one finding per box at most
    written = (target / "labels" / "a.txt").read_text().splitlines()
    assert len(written) == len(rows) - len(dropped) == report.boxes - 1  # b.txt holds one box
    assert report.boxes + sum(n for reason, n in report.dropped.items() if reason.startswith("box.")) == len(rows) + 1
    seen = set()
    for line, (c, x, y, w, h) in enumerate(rows, 1):
        rule = by_line[line].rule if line in by_line else None
        if w < 0 or h < 0:
            assert rule == "box.negative_size"
        elif w == 0 or h == 0:
            assert rule == "box.zero_area"
        elif x + w / 2 <= 0 or x - w / 2 >= 1 or y + h / 2 <= 0 or y - h / 2 >= 1:
            assert rule == "box.outside_image"
        elif (c, x, y, w, h) in seen:
            assert rule == "box.duplicate"
        else:
            inside = x - w / 2 >= 0 and x + w / 2 <= 1 and y - h / 2 >= 0 and y + h / 2 <= 1
            assert rule == (None if inside else "box.out_of_image"), (line, rows)
            seen.add((c, x, y, w, h))
    for row in written:
        _, cx, cy, w, h = map(float, row.split())
        assert w > 0 and h > 0 and cx - w / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6 and cy - h / 2 >= -1e-6 and cy + h / 2 <= 1 + 1e-6


def test_validate_refuses_links_out_of_the_dataset_without_reading_them(world: World, tmp_path: Path) -> None:
    convert(world.yolo(), tmp_path / "out")
    (tmp_path / "out" / "labels" / "b.txt").unlink()
    os.symlink(world.root / "secret.txt", tmp_path / "out" / "labels" / "b.txt")  # its rows would be quoted if read
    with pytest.raises(
        DataValidationError, match=r"^1 problem in dataset .*out:\n  - labels/b.txt: a link to outside the dataset"
    ) as error:
        validate(tmp_path / "out")
    assert "[path.escapes_root]" in error.value.message and SECRET not in error.value.message
