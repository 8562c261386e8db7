"""DOTA: a source generated here in DOTA's exact layout (headers, difficult flags, a rotated quad crossing
the border, an orphan, an image without labels) converts with exact boxes and counts; bad lines refuse it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.data.convert import ConvertFailed, convert, detect_format
from skyops.data.formats import Format
from skyops.data.formats.dota import CLASSES
from skyops.data.layout import Manifest
from skyops.errors import DataValidationError
from tests.clirun import cli
from tests.data.test_convert import labels_of


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


PNG_100x80 = _png(100, 80)
P0001 = """imagesource:GoogleEarth
gsd:0.146
10 10 30 10 30 20 10 20 plane 0
50 40 60 30 70 40 60 50 small-vehicle 1
90 30 110 40 100 60 80 50 ship 0
"""  # line 3: a plane; line 4: difficult; line 5: a rotated quad reaching past x = 100
P0002 = """imagesource:GoogleEarth
gsd:null
5 5 15 5 15 15 5 15 helipad 0
"""


@pytest.fixture
def dota_source(tmp_path: Path, make_png: Callable[..., bytes]) -> Path:
    """images/P0001.png 100x80, P0002.png 60x60, P0003.png 50x50 (no label file); labelTxt/P0009.txt has no image."""
    root = tmp_path / "dota"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for seed, (stem, (w, h)) in enumerate({"P0001": (100, 80), "P0002": (60, 60), "P0003": (50, 50)}.items()):
        (root / "images" / f"{stem}.png").write_bytes(make_png(w, h, seed))
    (root / "labelTxt" / "P0001.txt").write_text(P0001)
    (root / "labelTxt" / "P0002.txt").write_text(P0002)
    (root / "labelTxt" / "P0009.txt").write_text("1 1 2 1 2 2 1 2 plane 0\n")
    return root


def test_dota_converts_with_exact_boxes_and_counts(dota_source: Path, tmp_path: Path) -> None:
    assert detect_format(dota_source) is Format.DOTA
    report = convert(dota_source, tmp_path / "out")

    assert report.format is Format.DOTA and report.names == list(CLASSES) and len(CLASSES) == 18
    assert labels_of(tmp_path / "out") == {
        "P0001": ["0 0.200000 0.187500 0.200000 0.125000", "6 0.900000 0.562500 0.200000 0.375000"],  # ship clipped to x <= 100
        "P0002": ["17 0.166667 0.166667 0.166667 0.166667"],
    }
    assert (report.images, report.boxes, report.clipped, report.missing_labels) == (3, 3, 1, 1)
    assert report.dropped == {"difficult": 1}
    assert {k: v for k, v in report.per_class.items() if v} == {"plane": 1, "ship": 1, "helipad": 1}
    assert report.counts() == {"box.out_of_image": 1, "label.missing": 1, "label.orphan": 1}
    assert [(f.where, f.rule) for f in report.findings] == [
        ("images/P0003.png", "label.missing"),
        ("labelTxt/P0001.txt:5", "box.out_of_image"),
        ("labelTxt/P0009.txt", "label.orphan"),
    ]
    assert not (tmp_path / "out" / "labels-obb").exists()  # only when asked


def test_dota_keep_ignored_keeps_difficult_objects(dota_source: Path, tmp_path: Path) -> None:
    report = convert(dota_source, tmp_path / "out", "DOTA", keep_ignored=True)
    assert report.boxes == 4 and report.dropped == {}
    assert labels_of(tmp_path / "out")["P0001"][1] == "4 0.600000 0.500000 0.200000 0.250000"  # small-vehicle (50..70, 30..50)


def test_dota_obb_labels_follow_the_label_rows(dota_source: Path, tmp_path: Path) -> None:
    convert(dota_source, tmp_path / "out", obb=True)
    obb = {p.stem: p.read_text().splitlines() for p in sorted((tmp_path / "out" / "labels-obb").iterdir())}
    assert obb == {
        "P0001": [
            "0 0.100000 0.125000 0.300000 0.125000 0.300000 0.250000 0.100000 0.250000",
            "6 0.900000 0.375000 1.000000 0.500000 1.000000 0.750000 0.800000 0.625000",  # x = 110 clamped to the border
        ],
        "P0002": ["17 0.083333 0.083333 0.250000 0.083333 0.250000 0.250000 0.083333 0.250000"],
    }


def test_obb_needs_an_oriented_source(tmp_path: Path, dota_source: Path) -> None:
    (tmp_path / "voc" / "Annotations").mkdir(parents=True)
    (tmp_path / "voc" / "JPEGImages").mkdir()
    (tmp_path / "voc" / "Annotations" / "a.xml").write_text("<annotation><filename>a.jpg</filename></annotation>")
    with pytest.raises(DataValidationError, match=r"obb labels need oriented boxes, which a voc source does not have"):
        convert(tmp_path / "voc", tmp_path / "out", obb=True)
    assert not (tmp_path / "out").exists()


def test_dota_bad_lines_refuse_with_file_and_line(dota_source: Path, tmp_path: Path) -> None:
    with (dota_source / "labelTxt" / "P0002.txt").open("a") as f:
        f.write("1 2 3 4 5 6 7 8 plane\n")  # line 4: nine fields
        f.write("a b c d e f g h plane 0\n")  # line 5: corners are not numbers
        f.write("1 1 2 1 2 2 1 2 tank 0\n")  # line 6: not a DOTA category
        f.write("source:somewhere\n")  # line 7: a header DOTA does not have
    with pytest.raises(ConvertFailed) as failed:
        convert(dota_source, tmp_path / "out")
    assert failed.value.problems == [
        "labelTxt/P0002.txt:4: expected 10 space-separated fields 'x1 y1 ... x4 y4 category difficult', got 9 ('1 2 3 4 5 6 7 8 plane') [row.unparseable]",
        "labelTxt/P0002.txt:5: corners or difficult flag are not numbers ('a b c d e f g h plane 0') [row.unparseable]",
        "labelTxt/P0002.txt:6: category 'tank' is not one of the 18 DOTA categories [class.unknown]",
        "labelTxt/P0002.txt:7: expected 10 space-separated fields 'x1 y1 ... x4 y4 category difficult', got 1 ('source:somewhere') [row.unparseable]",
    ]
    assert not (tmp_path / "out").exists()


def test_dota_folder_of_splits(dota_source: Path, tmp_path: Path) -> None:
    """DOTA ships train/ and val/ folders, each images/ + labelTxt/: a folder of them converts as one source."""
    outer = tmp_path / "DOTA-v1.5"
    outer.mkdir()
    dota_source.rename(outer / "train")
    report = convert(outer, tmp_path / "out", "dota")
    assert report.boxes == 3 and [r.source for r in Manifest.read(tmp_path / "out").images] == [
        f"train/images/P000{i}.png" for i in (1, 2, 3)
    ]


def test_convert_obb_is_for_dota_sources_only(tmp_path: Path, capsys: pytest.CaptureFixture[str], dota_source: Path) -> None:
    code, out, _ = cli(capsys, "data", "convert", str(dota_source), str(tmp_path / "out"), "--obb")
    assert code == 0 and (tmp_path / "out" / "labels-obb" / "P0001.txt").is_file() and "converted 3 dota images" in out
    code, _, err = cli(capsys, "data", "convert", str(tmp_path / "out"), str(tmp_path / "again"), "--format", "yolo", "--obb")
    assert code == 2
    assert err.splitlines() == [
        "error: obb labels need oriented boxes, which a yolo source does not have",
        "hint: drop --obb (obb=True in Python), or convert a DOTA source",
    ]


def test_dota_links_out_of_the_source_and_bad_bytes_are_refused(dota_source: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("1 1 2 1 2 2 1 2 plane 0\n")
    (dota_source / "labelTxt" / "P0002.txt").unlink()
    (dota_source / "labelTxt" / "P0002.txt").symlink_to(secret)
    (dota_source / "labelTxt" / "P0001.txt").write_bytes(b"gsd:0.1\n1 1 2 1 2 2 1 2 pl\xe9ne 0\n")
    with pytest.raises(ConvertFailed) as failed:
        convert(dota_source, tmp_path / "out")
    assert [p.rsplit("[", 1)[1] for p in failed.value.problems] == ["text.not_utf8]", "path.escapes_root]"]
    assert failed.value.problems[0].startswith("labelTxt/P0001.txt:2: byte 0xe9 is not UTF-8")
    assert str(secret) not in "\n".join(failed.value.problems)  # never echoed


@settings(max_examples=25, deadline=None)
@given(corners=st.lists(st.floats(-30, 130, allow_nan=False), min_size=8, max_size=8))
def test_dota_box_is_the_quads_bounding_box_clipped_to_the_image(corners: list[float], tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("dota")
    (root / "src" / "images").mkdir(parents=True)
    (root / "src" / "labelTxt").mkdir()
    (root / "src" / "images" / "a.png").write_bytes(PNG_100x80)
    (root / "src" / "labelTxt" / "a.txt").write_text(" ".join(f"{v:.3f}" for v in corners) + " plane 0\n")
    rounded = [float(f"{v:.3f}") for v in corners]
    xs, ys = rounded[0::2], rounded[1::2]
    x1, y1, x2, y2 = max(min(xs), 0), max(min(ys), 0), min(max(xs), 100), min(max(ys), 80)
    report = convert(root / "src", root / "out")
    rows = (root / "out" / "labels" / "a.txt").read_text().split()
    if min(xs) == max(xs) or min(ys) == max(ys):
        assert rows == [] and report.dropped == {"box.zero_area": 1}
    elif x2 <= x1 or y2 <= y1:
        assert rows == [] and report.dropped == {"box.outside_image": 1}
    else:
        expected = [(x1 + x2) / 200, (y1 + y2) / 160, (x2 - x1) / 100, (y2 - y1) / 80]
        assert rows[0] == "0" and all(abs(float(a) - b) <= 1e-6 for a, b in zip(rows[1:], expected, strict=True))
        assert report.clipped == int((x1, y1, x2, y2) != (min(xs), min(ys), max(xs), max(ys)))
