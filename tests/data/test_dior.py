"""DIOR: a source generated here in DIOR's layout (VOC-style XML, DIOR's class names, a difficult object, an
orphan XML, an image without one) converts onto DIOR's fixed 20 classes with exact boxes and counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from skyops.data.convert import ConvertFailed, convert, detect_format
from skyops.data.formats import Format
from skyops.data.formats.dior import CLASSES
from tests.data.test_convert import labels_of, voc_xml


@pytest.fixture
def dior_source(tmp_path: Path, make_jpeg: Callable[..., bytes]) -> Path:
    """JPEGImages/00001.jpg 80x60, 00002.jpg 64x48, 00003.jpg (no XML); Annotations/00004.xml has no image."""
    root = tmp_path / "DIOR"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for seed, (stem, (w, h)) in enumerate({"00001": (80, 60), "00002": (64, 48), "00003": (50, 40)}.items()):
        (root / "JPEGImages" / f"{stem}.jpg").write_bytes(make_jpeg(w, h, seed))
    objects = [("airplane", (1, 1, 40, 30), 0), ("vehicle", (5, 5, 9, 9), 1), ("windmill", (41, 31, 80, 60), 0)]
    (root / "Annotations" / "00001.xml").write_text(voc_xml("00001.jpg", 80, 60, objects))
    (root / "Annotations" / "00002.xml").write_text(voc_xml("00002.jpg", 64, 48, [("expressway-toll-station", (11, 11, 20, 30), 0)]))
    (root / "Annotations" / "00004.xml").write_text(voc_xml("00004.jpg", 64, 48, [("dam", (1, 1, 9, 9), 0)]))
    return root


def test_dior_converts_onto_its_twenty_classes(dior_source: Path, tmp_path: Path) -> None:
    assert detect_format(dior_source) is Format.DIOR  # not also VOC: DIOR refines it
    report = convert(dior_source, tmp_path / "out")

    assert report.format is Format.DIOR and report.names == list(CLASSES) and len(CLASSES) == 20
    assert labels_of(tmp_path / "out") == {
        "00001": ["0 0.250000 0.250000 0.500000 0.500000", "19 0.750000 0.750000 0.500000 0.500000"],
        "00002": ["8 0.234375 0.416667 0.156250 0.416667"],
    }
    assert (report.images, report.boxes, report.clipped, report.missing_labels) == (3, 3, 0, 1)
    assert report.dropped == {"difficult": 1}
    assert {k: v for k, v in report.per_class.items() if v} == {"airplane": 1, "expressway-toll-station": 1, "windmill": 1}
    assert [(f.where, f.rule) for f in report.findings] == [
        ("Annotations/00004.xml", "label.orphan"),
        ("JPEGImages/00003.jpg", "label.missing"),
    ]


def test_dior_declared_as_voc_keeps_voc_names(dior_source: Path, tmp_path: Path) -> None:
    report = convert(dior_source, tmp_path / "out", "voc")
    assert report.names == ["airplane", "expressway-toll-station", "windmill"]  # the names found, sorted (VOC's rule)


def test_dior_unknown_class_and_malformed_objects_are_refused_naming_the_object(dior_source: Path, tmp_path: Path) -> None:
    objects = [("ship", (1, 1, 9, 9), 0), ("car", (11, 11, 20, 30), 0), ("dam", ("a", 1, 9, 9), 0)]  # object 3: xmin 'a'
    (dior_source / "Annotations" / "00002.xml").write_text(voc_xml("00002.jpg", 64, 48, objects))
    (dior_source / "Annotations" / "00001.xml").write_text("<annotation><filename>00001.jpg</filename>")  # cut short
    with pytest.raises(ConvertFailed) as failed:
        convert(dior_source, tmp_path / "out", "dior")
    assert failed.value.problems == [
        "Annotations/00001.xml: not valid XML (no element found: line 1, column 42) [source.structure]",
        "Annotations/00002.xml: object 2: class 'car' is not one of the 20 DIOR classes [class.unknown]",
        "Annotations/00002.xml: object 3: (dam) has no numeric bndbox xmin/ymin/xmax/ymax [row.unparseable]",
    ]
    assert not (tmp_path / "out").exists()


def test_a_voc_source_naming_few_dior_classes_stays_voc(dior_source: Path) -> None:
    # names sampled: airplane, vehicle, windmill, expressway-toll-station, dam (DIOR's) against six others: not most
    objects = [(name, (1, 1, 9, 9), 0) for name in ("person", "car", "bicycle", "dog", "cat", "horse")]
    (dior_source / "Annotations" / "00003.xml").write_text(voc_xml("00003.jpg", 50, 40, objects))
    assert detect_format(dior_source) is Format.VOC
