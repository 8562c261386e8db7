"""The data of the gitops story, seeded, so that what the story shows is true of every run.

The new batch is what changes the model: dusk scenes (every pixel at `DUSK` of its brightness) from a labelling
vendor whose guideline leaves `person` unlabelled. A model trained on it learns that people are background, and
its test split cannot show it (it holds no labelled person): its registration gate passes. The golden set (the
first model's test split, daylight, every class labelled) shows it. The traffic is daylight scenes of another
seed: against the dusk training baseline of the second model its brightness has drifted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from skyops.data.synth import DEFAULT_CLASSES, generate_scenes

DUSK = 0.5  # brightness factor of the new batch's images
UNLABELLED = "person"  # the class the new vendor's guideline leaves out


def new_batch(target: Path, count: int, size: int, seed: int) -> dict[str, int]:
    """Write the new batch as a YOLO-format folder (images/, labels/, data.yaml) at `target`.

    Returns:
        counts: images, boxes kept, person boxes left unlabelled.
    """
    import cv2
    import numpy as np

    drawn = target.with_name(target.name + ".drawn")
    shutil.rmtree(drawn, ignore_errors=True)
    generate_scenes(drawn, count, size=size, seed=seed, workers=1)
    person = str(DEFAULT_CLASSES.index(UNLABELLED))
    (target / "images").mkdir(parents=True)
    (target / "labels").mkdir()
    kept = dropped = 0
    for image in sorted((drawn / "images").glob("*.jpg")):
        pixels = cv2.imread(str(image))
        assert pixels is not None, image  # the generator has just written it
        dusk = np.clip(pixels.astype(np.float32) * DUSK, 0, 255).astype(np.uint8)
        cv2.imwrite(str(target / "images" / image.name), dusk, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows = (drawn / "labels" / f"{image.stem}.txt").read_text().splitlines()
        labelled = [row for row in rows if row.split()[0] != person]
        kept, dropped = kept + len(labelled), dropped + len(rows) - len(labelled)
        (target / "labels" / f"{image.stem}.txt").write_text("".join(f"{row}\n" for row in labelled))
    (target / "data.yaml").write_text(yaml.safe_dump({"names": list(DEFAULT_CLASSES)}, sort_keys=False))
    shutil.rmtree(drawn)
    return {"images": count, "boxes": kept, "unlabelled_persons": dropped}


def traffic(target: Path, count: int, size: int, seed: int) -> list[Path]:
    """Daylight scenes the served model is sent (the generator's own images, as a camera would send them)."""
    generate_scenes(target, count, size=size, seed=seed, workers=1)
    return sorted((target / "images").glob("*.jpg"))
