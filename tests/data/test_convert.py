"""Converters: real VisDrone and Roboflow data, exact boxes from generated COCO / VOC / Ground Truth / YOLO
sources, format detection and mis-declaration, class mapping, atomic output."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from skyops.data.convert import convert, detect_format
from skyops.data.formats import Format, group_of
from skyops.data.layout import Manifest
from skyops.errors import DataValidationError

VISDRONE_NAMES = ["pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor"]


def labels_of(root: Path) -> dict[str, list[str]]:
    """stem -> label lines of a converted dataset."""
    return {p.stem: p.read_text().splitlines() for p in sorted((root / "labels").iterdir())}


# ---- VisDrone (real data) ----


def test_visdrone_counts_equal_the_kept_source_rows(
    visdrone_sample: Path, tmp_path: Path, tree_digest: Callable[[Path], dict[str, str]]
) -> None:
    """Kept = category 1..10 and score != 0: VisDrone's evaluation ignores score-0 boxes, so we drop them too."""
    before = tree_digest(visdrone_sample)
    expected: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for path in sorted((visdrone_sample / "annotations").glob("*.txt")):
        for line in path.read_text().split():
            fields = line.rstrip(",").split(",")
            score, category = int(fields[4]), int(fields[5])
            if category in (0, 11):
                dropped["ignored_region" if category == 0 else "others"] += 1
            elif score == 0:
                dropped["score_zero"] += 1
            else:
                expected[VISDRONE_NAMES[category - 1]] += 1

    report = convert(visdrone_sample, tmp_path / "out", "visdrone")

    assert report.per_class == {name: expected[name] for name in VISDRONE_NAMES}
    assert report.dropped == dict(dropped)
    assert report.images == 8 and report.boxes == sum(expected.values()) and report.clipped == 0
    written = Counter(VISDRONE_NAMES[int(line.split()[0])] for lines in labels_of(tmp_path / "out").values() for line in lines)
    assert written == expected
    assert tree_digest(visdrone_sample) == before


def test_visdrone_boxes_lie_inside_their_images(visdrone_sample: Path, tmp_path: Path) -> None:
    convert(visdrone_sample, tmp_path / "out", "visdrone")
    manifest = Manifest.read(tmp_path / "out")
    for record in manifest.images:
        width, height = Image.open(tmp_path / "out" / record.image).size  # independent of skyops' header parser
        assert (record.width, record.height) == (width, height)
        for line in (tmp_path / "out" / record.label).read_text().splitlines():
            _, cx, cy, w, h = (float(v) for v in line.split())
            # 6-decimal labels: edges may overshoot by rounding, < 1e-6 of the image size.
            assert cx - w / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6 and cy - h / 2 >= -1e-6 and cy + h / 2 <= 1 + 1e-6, line
            assert w > 0 and h > 0


def test_visdrone_manifest_hashes_links_and_groups(visdrone_sample: Path, tmp_path: Path) -> None:
    report = convert(visdrone_sample, tmp_path / "out")  # format detected
    manifest = Manifest.read(tmp_path / "out")
    assert manifest.source_format == "visdrone" and manifest.names == VISDRONE_NAMES
    assert manifest.fingerprint == report.fingerprint
    assert manifest.stats["dropped"] == report.dropped
    for record in manifest.images:
        image, label = tmp_path / "out" / record.image, tmp_path / "out" / record.label
        source = visdrone_sample / record.source
        assert hashlib.sha256(image.read_bytes()).hexdigest() == record.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert hashlib.sha256(label.read_bytes()).hexdigest() == record.label_sha256
        assert record.group == record.image.split("/")[1][:7]  # <seq>_<frame>_d_<n> -> <seq>
        assert record.boxes == len(label.read_text().splitlines())


def test_group_ids() -> None:
    assert group_of("0000001_02999_d_0000005") == "0000001"
    assert group_of("DJI_0022_JPG.rf.826bb21879b747afe5456efc20d28a1c") == "DJI_0022"
    assert group_of("DJI-00760-00003_jpg.rf.224a3025683634f0ec57e1d54c76af2a") == "DJI-00760-00003"
    assert group_of("0000001_02999_d_0000005_jpg.rf.0123456789abcdef") == "0000001"
    assert group_of("frame_12") == "frame_12"


def test_keep_ignored_keeps_every_row(visdrone_sample: Path, tmp_path: Path) -> None:
    rows = sum(len(p.read_text().split()) for p in (visdrone_sample / "annotations").glob("*.txt"))
    report = convert(visdrone_sample, tmp_path / "out", "visdrone", keep_ignored=True)
    assert report.boxes == rows and report.dropped == {}
    assert report.names[10:] == ["others", "ignored-region"]


def test_names_override_merges_and_reorders(visdrone_sample: Path, tmp_path: Path) -> None:
    plain = convert(visdrone_sample, tmp_path / "plain", "visdrone")
    people = {"pedestrian": 0, "people": 0}
    vehicles = dict.fromkeys(["car", "van", "truck", "bus"], 1)
    small = dict.fromkeys(["bicycle", "tricycle", "awning-tricycle", "motor"], 2)
    report = convert(visdrone_sample, tmp_path / "out", "visdrone", names=people | vehicles | small)
    assert report.names == ["pedestrian", "car", "bicycle"]
    pc = plain.per_class
    assert report.per_class == {
        "pedestrian": pc["pedestrian"] + pc["people"],
        "car": pc["car"] + pc["van"] + pc["truck"] + pc["bus"],
        "bicycle": pc["bicycle"] + pc["tricycle"] + pc["awning-tricycle"] + pc["motor"],
    }


def test_names_override_must_cover_every_source_class(visdrone_sample: Path, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"no target class for source class\(es\) 'people'"):
        convert(visdrone_sample, tmp_path / "out", "visdrone", names=[n for n in VISDRONE_NAMES if n != "people"])
    with pytest.raises(DataValidationError, match=r"'lorry' is not a source class"):
        convert(visdrone_sample, tmp_path / "out", "visdrone", names={**{n: i for i, n in enumerate(VISDRONE_NAMES)}, "lorry": 3})
    assert not (tmp_path / "out").exists()


# ---- format detection and mis-declaration ----


def test_detect_format(visdrone_sample: Path, aerial_cars: Path) -> None:
    assert detect_format(visdrone_sample) is Format.VISDRONE
    assert detect_format(visdrone_sample.parent) is Format.VISDRONE  # a folder of VisDrone split folders
    assert detect_format(aerial_cars) is Format.YOLO


def test_misdeclared_format_says_what_was_found(visdrone_sample: Path, tmp_path: Path) -> None:
    with pytest.raises(
        DataValidationError,
        match=r"is not a coco dataset: expected a COCO instances JSON.*found annotations/, images/; it looks like visdrone",
    ) as error:
        convert(visdrone_sample, tmp_path / "out", "coco")
    assert error.value.hint == "declare it: --format visdrone (fmt='visdrone' in Python)"
    with pytest.raises(DataValidationError, match=r"is not a voc dataset: expected a folder with Annotations/"):
        convert(visdrone_sample, tmp_path / "out", "voc")
    with pytest.raises(DataValidationError, match=r"unknown format 'pascal'"):
        convert(visdrone_sample, tmp_path / "out", "pascal")


def test_unknown_layout_lists_the_formats(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.md").write_text("hello")
    with pytest.raises(DataValidationError, match=r"cannot tell the format of .*photos: found notes.md; expected one of:\n  - visdrone: "):
        detect_format(tmp_path / "photos")


# ---- generated sources: exact boxes ----


def test_coco_exact_boxes(tmp_path: Path, image_set: dict[str, tuple[int, int]]) -> None:
    images = [{"id": 10 + i, "file_name": name, "width": w, "height": h} for i, (name, (w, h)) in enumerate(image_set.items())]
    annotations = [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [16, 12, 32, 24], "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0, 0, 8, 6], "iscrowd": 0},
        {"id": 3, "image_id": 11, "category_id": 1, "bbox": [70, 50, 20, 20], "iscrowd": 0},  # clipped to 80x60
        {"id": 4, "image_id": 11, "category_id": 3, "bbox": [100, 0, 5, 5], "iscrowd": 0},  # wholly outside: zero area
        {"id": 5, "image_id": 11, "category_id": 3, "bbox": [0, 0, 10, 10], "iscrowd": 1},
    ]
    categories = [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}]
    source = tmp_path / "src" / "instances.json"
    source.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))

    report = convert(source, tmp_path / "out", images_dir=tmp_path / "src" / "images")

    assert report.format is Format.COCO and report.names == ["person", "car"]
    assert labels_of(tmp_path / "out") == {
        "a": ["1 0.500000 0.500000 0.500000 0.500000", "0 0.062500 0.062500 0.125000 0.125000"],
        "b": ["0 0.937500 0.916667 0.125000 0.166667"],
        "c": [],
    }
    assert report.dropped == {"crowd": 1, "box.outside_image": 1} and report.clipped == 1 and report.empty_labels == 1
    assert [str(f) for f in report.findings] == [
        "instances.json: annotations[2]: reaches outside the 80x60 image: clipped to it [box.out_of_image]",
        "instances.json: annotations[3]: lies wholly outside the 80x60 image: dropped [box.outside_image]",
    ]


def test_coco_size_mismatch_and_missing_image(tmp_path: Path, image_set: dict[str, tuple[int, int]]) -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}, {"id": 2, "file_name": "gone.jpg", "width": 5, "height": 5}]
    source = tmp_path / "src" / "instances.json"
    source.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "car"}]}))
    with pytest.raises(DataValidationError, match=r"image 'gone.jpg' \(id 2\) is not in"):
        convert(source, tmp_path / "out", "coco", images_dir=tmp_path / "src" / "images")
    images.pop()
    source.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "car"}]}))
    with pytest.raises(DataValidationError, match=r"a.jpg: the annotation says 640x480, the image is 64x48"):
        convert(source, tmp_path / "out", "coco", images_dir=tmp_path / "src" / "images")


def voc_xml(filename: str, width: int, height: int, objects: list[tuple[str, tuple[int, int, int, int], int]]) -> str:
    body = "".join(
        f"<object><name>{name}</name><difficult>{difficult}</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, (x1, y1, x2, y2), difficult in objects
    )
    return f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height><depth>3</depth></size>{body}</annotation>"


def test_voc_exact_boxes(tmp_path: Path, image_set: dict[str, tuple[int, int]]) -> None:
    root = tmp_path / "src"
    (root / "images").rename(root / "JPEGImages")
    (root / "Annotations").mkdir()
    # VOC pixels are 1-based and inclusive: (1, 1, 32, 24) covers [0, 32] x [0, 24].
    (root / "Annotations" / "a.xml").write_text(
        voc_xml("a.jpg", 64, 48, [("car", (1, 1, 32, 24), 0), ("person", (5, 5, 9, 9), 1), ("person", (33, 25, 64, 48), 0)])
    )
    (root / "Annotations" / "b.xml").write_text(voc_xml("b.jpg", 80, 60, [("person", (11, 11, 20, 30), 0)]))

    report = convert(root, tmp_path / "out")

    assert report.format is Format.VOC and report.names == ["car", "person"]
    assert labels_of(tmp_path / "out") == {
        "a": ["0 0.250000 0.250000 0.500000 0.500000", "1 0.750000 0.750000 0.500000 0.500000"],
        "b": ["1 0.187500 0.333333 0.125000 0.333333"],
    }
    assert report.dropped == {"difficult": 1}
    # c.png has no XML: converted without a label file, so that validation raises label.missing
    assert report.skipped == [] and report.missing_labels == 1 and not (tmp_path / "out" / "labels" / "c.txt").exists()
    assert [(f.file, f.rule) for f in report.findings] == [("JPEGImages/c.png", "label.missing")]


def gt_line(ref: str, attribute: str, boxes: list[tuple[int, int, int, int, int]], size: tuple[int, int]) -> str:
    annotations = [{"class_id": c, "left": x, "top": y, "width": w, "height": h} for c, x, y, w, h in boxes]
    metadata = {
        "class-map": {"0": "person", "1": "car"},
        "type": "groundtruth/object-detection",
        "human-annotated": "yes",
        "job-name": f"labeling-job/{attribute}",
    }
    return json.dumps(
        {
            "source-ref": ref,
            attribute: {"annotations": annotations, "image_size": [{"width": size[0], "height": size[1], "depth": 3}]},
            f"{attribute}-metadata": metadata,
        }
    )


@pytest.fixture
def gt_manifest(tmp_path: Path, image_set: dict[str, tuple[int, int]]) -> Path:
    lines = [
        gt_line("s3://bucket/jobs/raw/a.jpg", "cars-2024", [(1, 16, 12, 32, 24)], (64, 48)),
        gt_line("s3://bucket/jobs/raw/b.jpg", "cars-2024", [(0, 70, 50, 20, 20)], (80, 60)),
        json.dumps({"source-ref": "s3://bucket/jobs/raw/c.png", "cars-2024-metadata": {"failure-reason": "ClientError: timed out"}}),
    ]
    path = tmp_path / "gt" / "output.manifest"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path


def test_groundtruth_exact_boxes(tmp_path: Path, gt_manifest: Path) -> None:
    report = convert(gt_manifest, tmp_path / "out", images_dir=tmp_path / "src" / "images", s3_prefix="s3://bucket/jobs/raw/")
    assert report.format is Format.GROUNDTRUTH and report.names == ["person", "car"]
    assert labels_of(tmp_path / "out") == {"a": ["1 0.500000 0.500000 0.500000 0.500000"], "b": ["0 0.937500 0.916667 0.125000 0.166667"]}
    assert report.skipped == [
        (
            "output.manifest:3",
            "groundtruth.no_label: source-ref s3://bucket/jobs/raw/c.png has no label attribute (a failed or unlabelled task): skipped",
        )
    ]
    assert report.clipped == 1
    assert Manifest.read(tmp_path / "out").images[0].source == "s3://bucket/jobs/raw/a.jpg"


def test_groundtruth_s3_refs_need_the_prefix(tmp_path: Path, gt_manifest: Path) -> None:
    with pytest.raises(
        DataValidationError, match=r"output.manifest:1: source-ref s3://bucket/jobs/raw/a.jpg is an S3 URI; pass --s3-prefix "
    ):
        convert(gt_manifest, tmp_path / "out", "groundtruth", images_dir=tmp_path / "src" / "images")
    with pytest.raises(DataValidationError, match=r"does not start with the given s3_prefix s3://other/"):
        convert(gt_manifest, tmp_path / "out", "groundtruth", images_dir=tmp_path / "src" / "images", s3_prefix="s3://other")


@pytest.fixture
def yolo_source(tmp_path: Path, make_jpeg: Callable[..., bytes]) -> Path:
    root = tmp_path / "yolo"
    for split, stem in (("train", "a"), ("train", "n"), ("val", "b")):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "images" / split / f"{stem}.jpg").write_bytes(make_jpeg(64, 48, seed=ord(stem)))
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n0 0.9 0.5 0.4 0.2\n")  # second reaches past the right edge
    (root / "labels" / "val" / "b.txt").write_text("0 0.25 0.25 0.75 0.25 0.75 0.5 0.25 0.5\n")  # polygon
    (root / "data.yaml").write_text("train: ../elsewhere/train\nnames: {0: car, 1: person}\n")
    return root


def test_yolo_checked_pass_through(tmp_path: Path, yolo_source: Path) -> None:
    report = convert(yolo_source, tmp_path / "out")
    assert report.format is Format.YOLO and report.names == ["car", "person"]
    assert labels_of(tmp_path / "out") == {
        "a": ["1 0.500000 0.500000 0.500000 0.500000", "0 0.850000 0.500000 0.300000 0.200000"],  # clipped at x = 1
        "b": ["0 0.500000 0.375000 0.500000 0.250000"],  # the polygon's bounding box
    }  # n.jpg has no label file: converted without one (nobody said it is empty; validation decides)
    assert report.clipped == 1 and report.missing_labels == 1 and report.empty_labels == 0
    assert (tmp_path / "out" / "images" / "n.jpg").is_file() and Manifest.read(tmp_path / "out").images[2].label_sha256 == ""


def test_yolo_bad_class_id_fails(tmp_path: Path, yolo_source: Path) -> None:
    (yolo_source / "labels" / "val" / "b.txt").write_text("5 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DataValidationError, match=r"labels/val/b.txt:1: class id 5 is not one of the 2 source classes \[class.unknown\]"):
        convert(yolo_source, tmp_path / "out")


def test_aerial_cars_yolo_conversion(aerial_cars: Path, tmp_path: Path) -> None:
    label_files = sorted(aerial_cars.glob("datasets/*/labels/*.txt"))
    rows = sum(1 for p in label_files for line in p.read_text().splitlines() if line.strip())
    report = convert(aerial_cars, tmp_path / "out", "yolo")
    assert report.images == 367 and report.boxes == rows and report.names == ["0", "1", "2", "3"]
    groups = {r.group for r in Manifest.read(tmp_path / "out").images}
    assert "DJI-00760-00003" in groups and len(groups) < 200  # augmented copies share their source frame


# ---- VisDrone error handling, atomic output, parallel determinism ----


@pytest.fixture
def small_visdrone(tmp_path: Path, make_jpeg: Callable[..., bytes]) -> Path:
    """40 generated 32x24 frames of two sequences, 2 boxes each (enough for several worker chunks)."""
    root = tmp_path / "vd"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(40):
        stem = f"{i % 2:07d}_{i:05d}_d_{i:07d}"
        (root / "images" / f"{stem}.jpg").write_bytes(make_jpeg(32, 24, seed=i))
        (root / "annotations" / f"{stem}.txt").write_text(f"1,2,{3 + i % 5},4,1,{1 + i % 10},0,0\n20,10,20,20,1,4,0,0,\n")
    return root


def test_bad_rows_fail_listing_file_and_line_and_leave_nothing(small_visdrone: Path, tmp_path: Path) -> None:
    (small_visdrone / "annotations" / "0000001_00003_d_0000003.txt").write_text("1,2,3,4,1,4,0,0\n1,2,x,4,1,4,0,0\n5,5,5,5,1,12,0,0\n")
    with pytest.raises(DataValidationError, match=r"2 problems in visdrone source") as error:
        convert(small_visdrone, tmp_path / "out", "visdrone")
    assert error.value.problems == [
        "annotations/0000001_00003_d_0000003.txt:2: fields are not numbers ('1,2,x,4,1,4,0,0') [row.unparseable]",
        "annotations/0000001_00003_d_0000003.txt:3: category 12 is not in 0..11 [class.unknown]",
    ]
    assert sorted(os.listdir(tmp_path)) == ["vd"]  # no target, no staging folder left behind


def test_score_zero_rows_are_dropped_and_counted(small_visdrone: Path, tmp_path: Path) -> None:
    (small_visdrone / "annotations" / "0000000_00000_d_0000000.txt").write_text("1,2,3,4,0,4,0,0\n1,2,3,4,0,0,0,0\n1,2,3,4,1,11,0,0\n")
    report = convert(small_visdrone, tmp_path / "out", "visdrone")
    assert report.dropped == {"score_zero": 1, "ignored_region": 1, "others": 1}
    assert (tmp_path / "out" / "labels" / "0000000_00000_d_0000000.txt").read_text() == ""
    kept = convert(small_visdrone, tmp_path / "kept", "visdrone", keep_ignored=True)
    assert kept.dropped == {} and kept.per_class["car"] == report.per_class["car"] + 1  # category 4 = car


def test_unreadable_image_is_skipped_and_listed(small_visdrone: Path, tmp_path: Path) -> None:
    (small_visdrone / "images" / "0000000_00000_d_0000000.jpg").write_bytes(b"<html>not found</html>")
    report = convert(small_visdrone, tmp_path / "out", "visdrone")
    assert report.images == 39
    assert report.skipped == [
        ("images/0000000_00000_d_0000000.jpg", "image.unreadable: not a known image format (first bytes b'<html>no'): skipped")
    ]


def test_orphan_annotation_is_counted_and_image_without_one_has_no_label(small_visdrone: Path, tmp_path: Path) -> None:
    """Both used to fail the conversion; now the orphan is counted and the unannotated image is left to validation."""
    (small_visdrone / "images" / "0000000_00000_d_0000000.jpg").unlink()
    (small_visdrone / "annotations" / "0000001_00001_d_0000001.txt").unlink()
    report = convert(small_visdrone, tmp_path / "out", "visdrone")
    assert report.images == 39 and report.missing_labels == 1
    assert [str(f) for f in report.findings if f.rule in ("label.orphan", "label.missing")] == [
        "annotations/0000000_00000_d_0000000.txt: no image images/0000000_00000_d_0000000.* "
        "(looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp): not converted [label.orphan]",
        "images/0000001_00001_d_0000001.jpg: no annotation file annotations/0000001_00001_d_0000001.txt: "
        "converted without a label file [label.missing]",
    ]
    assert not (tmp_path / "out" / "labels" / "0000001_00001_d_0000001.txt").exists()


def test_parallel_output_equals_serial(small_visdrone: Path, tmp_path: Path) -> None:
    serial = convert(small_visdrone, tmp_path / "serial", "visdrone", workers=1)
    parallel = convert(small_visdrone, tmp_path / "parallel", "visdrone", workers=2)
    assert parallel.workers == 2 and serial.workers == 1
    assert (tmp_path / "serial" / "manifest.json").read_bytes() == (tmp_path / "parallel" / "manifest.json").read_bytes()
    assert serial.per_class == parallel.per_class and serial.clipped == parallel.clipped == 40


def test_target_rules(small_visdrone: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()  # an empty folder (as a pipeline engine pre-creates outputs) is fine
    convert(small_visdrone, target, "visdrone")
    with pytest.raises(DataValidationError, match=r"target .*out already exists and is not an empty folder"):
        convert(small_visdrone, target, "visdrone")
    (small_visdrone / "annotations" / "0000000_00000_d_0000000.txt").write_text("")
    report = convert(small_visdrone, target, "visdrone", overwrite=True)
    assert (target / "labels" / "0000000_00000_d_0000000.txt").read_text() == "" and report.empty_labels == 1
    assert sorted(os.listdir(tmp_path)) == ["out", "vd"]  # the old target is gone, no staging left
    with pytest.raises(DataValidationError, match=r"overlaps the source folder"):
        convert(small_visdrone, small_visdrone / "converted", "visdrone")
