"""Per-box attributes a source keeps beyond class and box: VisDrone's truncation and occlusion.

YOLO label rows have room for class and box only, and Ultralytics reads extra columns as polygon
points; so the converter keeps a side file per image, beside its label file:

    <root>/attributes/<stem>.txt   one line per row of labels/<stem>.txt, in the same order:
                                   `truncation occlusion` as integers (VisDrone's fields 7 and 8;
                                   -1 where a row did not have them)

VisDrone's levels: truncation 0 none, 1 partial (1-50 %); occlusion 0 none, 1 partial (1-50 %),
2 heavy (50-100 %). Validation and the split carry the files with their images (hard links, like the
labels); the evaluate step reads them to slice mAP by occlusion and truncation. The manifest's
fingerprint covers images and labels, not these files: they come from the same annotation rows as
the labels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from skyops.data.layout import ATTRIBUTES, attributes_file

COLUMNS = ("truncation", "occlusion")
ROW = "%d %d\n"
UNKNOWN = -1


def read_attributes(root: Path, images: Iterable[str]) -> dict[str, np.ndarray]:
    """The attributes of `images` that have a side file: image file name -> (rows, len(COLUMNS)) int array.

    Args:
        root: a dataset in the canonical layout.
        images: paths or names under images/ (e.g. the lines of test.txt).

    Returns:
        Only images whose side file exists and parses; an unreadable or malformed file is left out
        (its boxes count as of unknown attributes in the evaluation: they never fail it).
    """
    if not (root / ATTRIBUTES).is_dir():
        return {}
    found: dict[str, np.ndarray] = {}
    for image in images:
        path = attributes_file(root, image)
        try:
            rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError):
            continue
        if any(len(row) != len(COLUMNS) for row in rows):
            continue
        try:
            found[os.path.basename(image)] = np.array(rows, dtype=np.int64).reshape(-1, len(COLUMNS))
        except ValueError:  # not integers
            continue
    return found
