"""A corpus of hostile sources for the converters, generated in each test (nothing hostile is stored).

Every case builds one small dataset under `world/ds` beside files that are NOT part of it
(`world/secret.jpg`, `world/secret.txt`, `world/outside/`), each holding the marker `SECRET`: a
case passes only if that marker never shows up in an error, a report or an output file. A case
pins the outcome (converted or refused) and the exact set of rule ids found.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SECRET = "S3CR3T"  # starts every foreign file: the 8 bytes an unreadable-image message would quote contain it
GOOD = "0 0.5 0.5 0.2 0.2\n"  # a YOLO row that converts as it is


@cache
def jpeg(seed: int, width: int = 64, height: int = 48) -> bytes:
    """A JPEG of random pixels (distinct per seed)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def truncated_jpeg(seed: int) -> bytes:
    """A JPEG cut short inside its pixel data: the header (and size) is intact, the end marker is not."""
    data = jpeg(seed)
    return data[: len(data) - 200]


class World:
    """A folder holding the dataset `ds/` and the foreign files a hostile dataset may reach for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ds = root / "ds"
        self.ds.mkdir(parents=True)
        (root / "secret.jpg").write_bytes(f"{SECRET} jpeg-named foreign file\n".encode())
        (root / "secret.txt").write_text(f"0 0.5 0.5 0.1 {SECRET}\n1,2,3,{SECRET},1,1,0,0\n")
        (root / "outside").mkdir()
        (root / "outside" / "c.jpg").write_bytes(f"{SECRET} in a foreign folder\n".encode())

    def file(self, rel: str, data: bytes | str) -> Path:
        path = self.ds / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_bytes(data.encode())  # bytes as written: no newline translation
        else:
            path.write_bytes(data)
        return path

    def link(self, rel: str, target: Path | str) -> None:
        path = self.ds / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)

    # ---- one small, valid dataset per format; cases then damage it ----

    def yolo(self, labels: dict[str, str | bytes] | None = None, images: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Path:
        for seed, name in enumerate(images):
            self.file(f"images/{name}", jpeg(seed))
        for stem, text in (labels if labels is not None else {"a": GOOD, "b": "1 0.25 0.25 0.1 0.1\n"}).items():
            self.file(f"labels/{stem}.txt", text)
        self.file("data.yaml", "names: [car, person]\n")
        return self.ds

    def visdrone(self, annotations: dict[str, str | bytes] | None = None, images: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Path:
        for seed, name in enumerate(images):
            self.file(f"images/{name}", jpeg(seed))
        for stem, text in (annotations if annotations is not None else {"a": "5,5,10,10,1,4,0,0\n", "b": "1,1,8,8,1,1,0,0\n"}).items():
            self.file(f"annotations/{stem}.txt", text)
        return self.ds

    def coco(self, images: list[dict[str, Any]], annotations: list[dict[str, Any]], prefix: bytes = b"") -> Path:
        for seed, name in enumerate(["a.jpg", "b.jpg"]):
            self.file(f"images/{name}", jpeg(seed))
        document = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]}
        self.file("instances.json", prefix + json.dumps(document).encode())
        return self.ds / "instances.json"

    def voc(self, xmls: dict[str, str], images: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Path:
        for seed, name in enumerate(images):
            self.file(f"JPEGImages/{name}", jpeg(seed))
        for stem, xml in xmls.items():
            self.file(f"Annotations/{stem}.xml", xml)
        return self.ds

    def groundtruth(self, lines: list[str], prefix: bytes = b"") -> Path:
        for seed, name in enumerate(["a.jpg", "b.jpg"]):
            self.file(f"images/{name}", jpeg(seed))
        self.file("output.manifest", prefix + "\n".join(lines).encode() + b"\n")
        return self.ds / "output.manifest"


def coco_images(*names: str) -> list[dict[str, Any]]:
    return [{"id": i + 1, "file_name": name, "width": 64, "height": 48} for i, name in enumerate(names)]


def coco_boxes(*bboxes: list[float], image_id: int = 1, category_id: int = 1) -> list[dict[str, Any]]:
    return [{"id": 100 + i, "image_id": image_id, "category_id": category_id, "bbox": b, "iscrowd": 0} for i, b in enumerate(bboxes)]


def voc_xml(filename: str, *boxes: tuple[str, str, str, str], name: str = "car") -> str:
    objects = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for a, b, c, d in boxes
    )
    return f"<annotation><filename>{filename}</filename><size><width>64</width><height>48</height></size>{objects}</annotation>"


def gt_line(ref: str, *boxes: tuple[float, float, float, float], class_id: int = 0) -> str:
    annotations = [{"class_id": class_id, "left": x, "top": y, "width": w, "height": h} for x, y, w, h in boxes]
    return json.dumps(
        {
            "source-ref": ref,
            "job": {"annotations": annotations, "image_size": [{"width": 64, "height": 48, "depth": 3}]},
            "job-metadata": {"class-map": {"0": "car", "1": "person"}, "type": "groundtruth/object-detection"},
        }
    )


@dataclass(frozen=True)
class Case:
    id: str
    fmt: str
    outcome: str  # "converted" or "refused"
    rules: frozenset[str]  # every rule id the run finds, exactly
    build: Callable[[World], tuple[Path, dict[str, Any]]]  # -> (source, extra convert arguments)
    findings: tuple[str, ...] = field(default=())  # when given: every finding of the run, exactly (str(finding))


CASES: list[Case] = []


def case(
    id: str, fmt: str, outcome: str, *rules: str, findings: tuple[str, ...] = ()
) -> Callable[[Callable[[World], Any]], Callable[[World], Any]]:
    """Register a builder; it returns the source path, or (source path, extra convert arguments)."""

    def register(build: Callable[[World], Any]) -> Callable[[World], Any]:
        def normalised(world: World) -> tuple[Path, dict[str, Any]]:
            built = build(world)
            return built if isinstance(built, tuple) else (built, {})

        CASES.append(Case(id, fmt, outcome, frozenset(rules), normalised, findings))
        return build

    return register
