"""The HTML evaluation report: written atomically, self-contained (every resource inline), with what a reviewer needs."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from skyops.evaluation import report as report_module
from skyops.evaluation.analysis import Analysis, analyse
from skyops.evaluation.drawing import MISSED, draw_errors
from skyops.evaluation.mistakes import image_errors
from skyops.evaluation.scored import ScoredImage

from .conftest import scored

NAMES = ["car", "person"]
SIDE = 800  # px: drawings are shrunk to 640


class Resources(HTMLParser):
    """Every URL-bearing attribute of the page, and every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [(tag, name, value or "") for name, value in attrs if name in ("src", "href", "srcset", "data", "action", "poster")]


def photo(folder: Path, name: str, seed: int, size: tuple[int, int] = (SIDE, SIDE)) -> str:
    """A real image file on disk (noise), as the validator would have read it; size is (height, width)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    path = folder / name
    Image.fromarray(pixels).save(path)
    return str(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[ScoredImage]:
    folder = tmp_path_factory.mktemp("images")
    a, b, far = (100.0, 100.0, 160.0, 160.0), (400.0, 420.0, 470.0, 480.0), (700.0, 50.0, 760.0, 110.0)
    return [
        scored([(0, *a), (1, *b)], [(0, 0.9, *a), (0, 0.8, *b)], shape=(SIDE, SIDE), name="one.png", path=photo(folder, "one.png", 1)),
        scored([(0, *a)], [(1, 0.7, *far)], shape=(SIDE, SIDE), name="two.png", path=photo(folder, "two.png", 2)),
        scored([(1, *b)], [(1, 0.95, *b)], shape=(SIDE, SIDE), name="gone.png", path=str(folder / "gone.png")),  # never written
    ]


@pytest.fixture(scope="module")
def analysis(images: list[ScoredImage]) -> Analysis:
    return analyse(images, NAMES, min_slice_instances=1, report_conf=0.25, worst_count=6)


@pytest.fixture(scope="module")
def written(analysis: Analysis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("out") / "report.html"
    return report_module.write_report(document(analysis.sections), target, coco=analysis.coco, worst=analysis.worst, names=NAMES)


def document(sections: dict[str, Any], *, comparison: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema_version": "1.1",
        "metrics": {"map50": 0.5, "map50_95": 0.3, "precision": 0.6, "recall": 0.4},
        **sections,
        "dataset": {"split": "test", "images": 3, "instances": 4, "fingerprint": "f" * 64, "box_attributes": None},
        "model": {"weights_sha256": "a" * 64, "imgsz": 640},
        "settings": {"conf": 0.001, "iou": 0.7, "batch": 16, "min_slice_instances": 1, "report_conf": 0.25, "worst_images": 6},
        "comparison": comparison,
        "created": "2025-01-01T12:00:00+00:00",
    }


def test_the_report_is_self_contained(written: Path) -> None:
    html = written.read_text(encoding="utf-8")
    assert [p.name for p in written.parent.iterdir()] == ["report.html"]  # no temp file left beside it
    assert "http://" not in html and "https://" not in html  # nothing to fetch, not even a namespace
    assert not re.search(r"url\(|@import|<link|<script", html, re.IGNORECASE)
    page = Resources()
    page.feed(html)
    assert page.urls, "the page has no images at all"
    for tag, attribute, value in page.urls:
        assert (tag, attribute) == ("img", "src") and value.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")), value[:40]
    plots = [v for _, _, v in page.urls if v.startswith("data:image/png")]
    assert len(plots) == 1  # the PR curves (slice bars and the confusion matrix are HTML)
    for plot in plots:
        assert Image.open(io.BytesIO(base64.b64decode(plot.split(",", 1)[1]))).format == "PNG"


def test_the_worst_images_are_drawn_shrunk_and_a_missing_one_is_named(analysis: Analysis, written: Path) -> None:
    assert [e.image.name for e in analysis.worst] == ["two.png", "one.png", "gone.png"]  # F1 0, 0.5, 1.0
    html = written.read_text(encoding="utf-8")
    drawings = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(drawings) == 2  # gone.png cannot be drawn
    sizes = [Image.open(io.BytesIO(base64.b64decode(d))).size for d in drawings]
    assert sizes == [(640, 640), (640, 640)]
    assert "cannot draw gone.png: No such file or directory" in html
    for heading in ("Headline", "Champion", "Slices", "Precision and recall", "Confusion matrix", "Worst images"):
        assert f"<h2>{heading}</h2>" in html


def test_a_missed_object_is_drawn_in_the_missed_colour(images: list[ScoredImage]) -> None:
    picture = np.asarray(Image.open(io.BytesIO(draw_errors(image_errors(images[1]), NAMES))).convert("RGB")).astype(int)
    # the missed car at (100, 100)-(160, 160) px of 800 is outlined at 0.8 scale: its left edge at x = 80, y from 80 to 128
    edge = picture[84:124, 80]
    orange = np.array([int(MISSED[i : i + 2], 16) for i in (1, 3, 5)])
    assert np.abs(edge - orange).max(axis=1).mean() < 40  # JPEG blurs colours a little


def test_a_small_image_is_enlarged_so_its_boxes_show(tmp_path: Path) -> None:
    small = scored(
        [(0, 10.0, 10.0, 30.0, 30.0)], [], shape=(90, 120), name="small.png", path=photo(tmp_path, "small.png", 3, size=(90, 120))
    )
    assert Image.open(io.BytesIO(draw_errors(image_errors(small), NAMES))).size == (480, 360)  # 4 times, not 640 / 120


def test_the_comparison_with_the_champion_is_shown_slice_by_slice(analysis: Analysis) -> None:
    worst = {"family": "region", "name": "edge", "challenger": 0.2, "champion": 0.5, "delta": -0.3, "instances": 2}
    comparison = {
        "champion": {
            "source": "weights",
            "weights_sha256": "c" * 64,
            "metrics": {"map50": 0.6, "map50_95": 0.4, "precision": 0.7, "recall": 0.5},
        },
        "delta": {"map50": -0.1, "map50_95": -0.1},
        "challenger_better": False,
        "slices": {"min_instances": 1, "compared": 9, "worst": worst, "delta": {"region": {"edge": -0.3}}},
    }
    html = report_module.render(document(analysis.sections, comparison=comparison), coco=analysis.coco, worst=[], names=NAMES)
    assert "<b>region = edge</b>, mAP50-95 0.200 against\n  0.500 (-0.300, 2 boxes)" in html
    assert '<td class="worse">-0.300</td>' in html


def test_a_failed_write_keeps_the_old_report(analysis: Analysis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    target.write_text("the previous report")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_module.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        report_module.write_report(document(analysis.sections), target, coco=analysis.coco, worst=analysis.worst, names=NAMES)
    assert target.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # the temp file is gone
