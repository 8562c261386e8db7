"""VisDrone's truncation and occlusion survive conversion, validation, the split and the private view, row for row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skyops.data.attributes import COLUMNS, read_attributes
from skyops.data.convert import convert
from skyops.data.layout import ATTRIBUTES, LABELS, private_view, read_split
from skyops.data.split import split_dataset
from skyops.data.validate import ValidationPolicy, validate, write_validated

# left,top,width,height,score,category,truncation,occlusion
ROWS = {
    "0000001_00001_d_0000001": [
        "10,10,40,30,1,4,0,0",  # car, fully visible
        "100,20,30,30,1,1,1,2",  # pedestrian, truncated, heavily occluded
        "0,0,50,50,0,0,0,0",  # an ignored region: dropped, so no row of either file
        "200,40,20,20,0,4,0,1",  # score 0: dropped
        "150,150,40,40,1,6,0,1",  # truck, partly occluded
    ],
    "0000002_00001_d_0000001": ["20,20,60,40,1,4,1,0", "120,60,30,30,1,9,0"],  # the second row lacks its occlusion field
    "0000003_00001_d_0000001": [],  # an image with no objects
}
EXPECTED = {
    "0000001_00001_d_0000001": [[0, 0], [1, 2], [0, 1]],
    "0000002_00001_d_0000001": [[1, 0], [0, -1]],
    "0000003_00001_d_0000001": [],
}


@pytest.fixture
def visdrone(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i, (stem, rows) in enumerate(ROWS.items()):
        Image.fromarray(np.full((240, 320, 3), 40 * i, dtype=np.uint8)).save(root / "images" / f"{stem}.jpg")
        (root / "annotations" / f"{stem}.txt").write_text("".join(f"{row}\n" for row in rows))
    return root


def rows_of(path: Path) -> list[list[int]]:
    return [[int(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_the_converter_keeps_truncation_and_occlusion_beside_each_label_row(visdrone: Path, tmp_path: Path) -> None:
    convert(visdrone, tmp_path / "out", "visdrone", workers=1)
    for stem, expected in EXPECTED.items():
        attributes = tmp_path / "out" / ATTRIBUTES / f"{stem}.txt"
        labels = (tmp_path / "out" / LABELS / f"{stem}.txt").read_text().splitlines()
        assert rows_of(attributes) == expected
        assert len(labels) == len(expected)  # one attribute line per label row, in the same order
    first = (tmp_path / "out" / LABELS / "0000001_00001_d_0000001.txt").read_text().splitlines()
    assert [line.split()[0] for line in first] == ["3", "0", "5"]  # car, pedestrian, truck: the same rows


def test_other_formats_get_no_attributes(tmp_path: Path) -> None:
    source = tmp_path / "yolo"
    (source / "images").mkdir(parents=True)
    (source / "labels").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(source / "images" / "a.png")
    (source / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    convert(source, tmp_path / "out", "yolo", names=["thing"], workers=1)
    assert not (tmp_path / "out" / ATTRIBUTES).exists()


def test_attributes_travel_with_their_images_through_validation_split_and_view(visdrone: Path, tmp_path: Path) -> None:
    convert(visdrone, tmp_path / "converted", "visdrone", workers=1)
    report = validate(tmp_path / "converted", ValidationPolicy(), workers=1)
    write_validated(tmp_path / "converted", tmp_path / "validated", report)
    split_dataset(tmp_path / "validated", tmp_path / "split", (0.34, 0.33, 0.33), seed=1)
    view = private_view(tmp_path / "split", tmp_path / "view")
    for stage in ("validated", "split", "view"):
        found = sorted(p.name for p in (tmp_path / stage / ATTRIBUTES).iterdir())
        assert found == sorted(f"{stem}.txt" for stem in EXPECTED), stage
    test_images = read_split(view, "test")
    read = read_attributes(view, test_images)
    assert sorted(read) == sorted(Path(i).name for i in test_images)
    for name, values in read.items():
        assert values.tolist() == EXPECTED[Path(name).stem] and values.shape[1] == len(COLUMNS)


def test_read_attributes_leaves_out_what_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / ATTRIBUTES).mkdir()
    (tmp_path / ATTRIBUTES / "good.txt").write_text("0 1\n1 2\n")
    (tmp_path / ATTRIBUTES / "words.txt").write_text("zero one\n")
    (tmp_path / ATTRIBUTES / "three.txt").write_text("0 1 2\n")
    (tmp_path / ATTRIBUTES / "empty.txt").write_text("")
    found = read_attributes(tmp_path, ["images/good.jpg", "images/words.jpg", "images/three.jpg", "images/empty.jpg", "images/none.jpg"])
    assert {k: v.tolist() for k, v in found.items()} == {"good.jpg": [[0, 1], [1, 2]], "empty.jpg": []}
    assert read_attributes(tmp_path / "elsewhere", ["images/good.jpg"]) == {}


def test_real_visdrone_rows_align_with_their_labels(shared_datasets: Path, tmp_path: Path) -> None:
    source = shared_datasets / "visdrone-sample" / "VisDrone2019-DET-val"
    convert(source, tmp_path / "out", "visdrone")
    checked = 0
    for annotation in sorted((source / "annotations").glob("*.txt")):
        kept = []
        for line in annotation.read_text().splitlines():
            fields = line.strip().rstrip(",").split(",")
            if len(fields) >= 6 and fields[4] != "0" and fields[5] not in ("0", "11"):
                kept.append([int(fields[6]), int(fields[7])])
        attributes = rows_of(tmp_path / "out" / ATTRIBUTES / annotation.name)
        labels = (tmp_path / "out" / LABELS / annotation.name).read_text().splitlines()
        assert len(attributes) == len(labels)
        if len(kept) == len(labels):  # no box dropped by a box rule: the rows are the kept source rows, in order
            assert attributes == kept
            checked += 1
    assert checked >= 6
    levels = np.concatenate([np.array(rows_of(p)).reshape(-1, 2) for p in (tmp_path / "out" / ATTRIBUTES).iterdir()])
    assert set(levels[:, 0]) <= {0, 1} and set(levels[:, 1]) <= {0, 1, 2} and len(set(levels[:, 1])) == 3
