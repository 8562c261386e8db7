"""Benchmark: skyops' VisDrone converter against an anchor in the style of Ultralytics' own.

The anchor follows the approach of the `visdrone2yolo` download script in Ultralytics'
VisDrone.yaml: one thread; for each annotation file, open the image with PIL to read its size,
convert the rows, write one label file with a plain `open().write`. It also hard-links each image
into images/ (Ultralytics moves them, an equally cheap metadata operation) so both sides produce a
usable dataset. It does less than skyops: no hashes, no manifest, no clipping, no checks.

    python benchmarks/convert_visdrone.py               # 2,000 images, 3 runs each
    python benchmarks/convert_visdrone.py --images 5000 --runs 5
    python benchmarks/convert_visdrone.py --quick       # smoke run: 200 images, 1 run
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from skyops.data.convert import convert
from skyops.data.validate import validate

# ---- settings ----
WIDTH, HEIGHT = 64, 48  # pixels of each generated image
MAX_BOXES = 6  # boxes per image: 1..MAX_BOXES
SEED = 0


def make_corpus(root: Path, count: int) -> int:
    """Write `count` random JPEGs + VisDrone annotations under root/{images,annotations}; returns rows written."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = np.random.default_rng(SEED)
    rand = random.Random(SEED)
    rows_written = 0
    for i in range(count):
        stem = f"{i // 40:07d}_{i % 40:05d}_d_{i:07d}"  # 40 frames per sequence
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=85)
        (root / "images" / f"{stem}.jpg").write_bytes(buffer.getvalue())
        rows = []
        for _ in range(rand.randint(1, MAX_BOXES)):
            w, h = rand.randint(2, 16), rand.randint(2, 16)
            left, top = rand.randint(-2, WIDTH - w), rand.randint(-2, HEIGHT - h)  # a few start left of / above the border
            category = rand.choice([*range(1, 11)] * 4 + [0, 11])  # mostly classes, some ignored / others
            score = 0 if category == 0 else 1
            rows.append(f"{left},{top},{w},{h},{score},{category},0,0\n")
        (root / "annotations" / f"{stem}.txt").write_text("".join(rows))
        rows_written += len(rows)
    return rows_written


def bad_boxes(dropped: dict[str, int]) -> int:
    """Boxes skyops dropped as bad (rule ids box.*), as opposed to those the format marks as ignored."""
    return sum(count for reason, count in dropped.items() if reason.startswith("box."))


def anchor(source: Path, target: Path) -> int:
    """Ultralytics-style conversion, one thread. Returns the number of boxes written."""
    (target / "images").mkdir(parents=True)
    (target / "labels").mkdir()
    boxes = 0
    for annotation in sorted((source / "annotations").glob("*.txt")):
        image = source / "images" / f"{annotation.stem}.jpg"
        width, height = Image.open(image).size
        lines = []
        with open(annotation, encoding="utf-8") as f:
            for row in [line.split(",") for line in f.read().strip().splitlines()]:
                if row[4] == "0" or row[5] in ("0", "11"):  # ignored regions, "others"
                    continue
                x, y, w, h = map(int, row[:4])
                lines.append(f"{int(row[5]) - 1} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}\n")
        with open(target / "labels" / f"{annotation.stem}.txt", "w", encoding="utf-8") as f:
            f.write("".join(lines))
        os.link(image, target / "images" / image.name)
        boxes += len(lines)
    return boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the generated corpus (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side; the median is reported (default 3)")
    parser.add_argument("--workers", type=int, default=None, help="skyops worker processes (default: CPU count)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 images, 1 run")
    args = parser.parse_args()
    count, runs = (200, 1) if args.quick else (args.images, args.runs)
    load_before = os.getloadavg()[0]

    times: dict[str, list[float]] = {"skyops": [], "skyops-serial": [], "anchor": [], "validate": [], "validate-serial": []}
    with tempfile.TemporaryDirectory(prefix="skyops-bench-") as tmp:
        work = Path(tmp)
        source = work / "visdrone"
        rows = make_corpus(source, count)
        for run in range(runs):  # sides interleaved run by run, so background load hits them alike
            started = time.perf_counter()
            report = convert(source, work / f"skyops-{run}", "visdrone", workers=args.workers)
            times["skyops"].append(time.perf_counter() - started)
            started = time.perf_counter()
            serial = convert(source, work / f"serial-{run}", "visdrone", workers=1)
            times["skyops-serial"].append(time.perf_counter() - started)
            started = time.perf_counter()
            anchor_boxes = anchor(source, work / f"anchor-{run}")
            times["anchor"].append(time.perf_counter() - started)
            started = time.perf_counter()
            validation = validate(work / f"skyops-{run}", workers=args.workers)
            times["validate"].append(time.perf_counter() - started)
            started = time.perf_counter()
            validate(work / f"skyops-{run}", workers=1)
            times["validate-serial"].append(time.perf_counter() - started)
            for side in ("skyops", "serial", "anchor"):
                shutil.rmtree(work / f"{side}-{run}")
        # Same work on both sides: the anchor keeps the boxes skyops drops as bad (box.* rules: wholly outside the image, ...).
        assert report.boxes + bad_boxes(report.dropped) == anchor_boxes == serial.boxes + bad_boxes(serial.dropped)

    rate = {side: count / statistics.median(seconds) for side, seconds in times.items()}
    print()
    print(f"==== convert_visdrone: {count} images {WIDTH}x{HEIGHT} JPEG, {rows} annotation rows, median of {runs} run(s) ====")
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after (others' work slows every side)"
    )
    print(
        f"skyops convert   {rate['skyops']:9,.0f} images/s  ({report.workers} process(es), default settings; hashes, manifest, clipping, checks)"
    )
    print(f"skyops convert   {rate['skyops-serial']:9,.0f} images/s  (1 process)")
    print(f"anchor           {rate['anchor']:9,.0f} images/s  (Ultralytics-style visdrone2yolo, 1 thread)")
    print(
        f"ratio skyops/anchor  {rate['skyops'] / rate['anchor']:5.2f}x  ({rate['skyops-serial'] / rate['anchor']:.2f}x with 1 process; target >= 5x)"
    )
    print(
        f"skyops validate  {rate['validate']:9,.0f} images/s  ({len(validation.findings)} findings, {len(validation.quarantined)} quarantined)"
    )
    print(f"skyops validate  {rate['validate-serial']:9,.0f} images/s  (1 process)")
    print(f"boxes: skyops kept {report.boxes}, clipped {report.clipped}, dropped {report.dropped}; anchor wrote {anchor_boxes}")


if __name__ == "__main__":
    main()
