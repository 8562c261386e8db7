"""Synthetic aerial scenes with exact labels, written in the canonical layout: the embedded demo data.

Top-down views of grass, dirt or pavement with roads (lane markings), parking lots, roofs and trees
as distractors, and objects of the classes asked for (car, truck, bus, person) at varied sizes,
headings, colours and light, with shadows and partial occlusion by trees. See `synth_scene` for how
a scene is composed and why its labels are exact, and `synth_draw` for the objects.

Deterministic: image i is drawn from `numpy.random.default_rng([seed, i])` alone, so the same seed
gives byte-identical images and labels whatever the number of workers (on the same OpenCV build:
its JPEG encoder makes the bytes). Each scene is its own split group.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from skyops.data.layout import IMAGES, LABELS, ImageRecord, Manifest, atomic_output_dir
from skyops.errors import ConfigError, DataValidationError

DEFAULT_CLASSES = ("car", "truck", "bus", "person")
KNOWN_CLASSES = DEFAULT_CLASSES  # the sprites `synth_scene.SPRITES` can draw
GENERATOR_VERSION = 1  # bump when a change alters the images a seed gives
MIN_SIZE, MAX_SIZE = 64, 4096  # px; below 64 a person is under 3 px
MIN_SCALE, MAX_SCALE = 0.25, 16.0  # px per px of a 256 px scene; below 0.25 a person is under 3 px
JPEG_QUALITY = 92


def _check(count: int, size: int, seed: int, classes: Sequence[str], scale: float | None) -> None:
    problems = []
    if scale is not None and not (math.isfinite(scale) and MIN_SCALE <= scale <= MAX_SCALE and scale * 256 <= size * 4):
        problems.append(f"scale={scale}: expected {MIN_SCALE}..{MAX_SCALE} and at most size/64 (a car must fit in the frame)")
    if count < 1:
        problems.append(f"count={count}: expected at least 1 image")
    if not MIN_SIZE <= size <= MAX_SIZE:
        problems.append(f"size={size}: expected {MIN_SIZE}..{MAX_SIZE} px")
    if seed < 0:
        problems.append(f"seed={seed}: expected a non-negative integer")
    unknown = [c for c in classes if c not in KNOWN_CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        problems.append(f"classes={list(classes)}: expected distinct names among {list(KNOWN_CLASSES)}")
    if problems:
        raise ConfigError(
            "invalid synthetic-scene settings: " + "; ".join(problems),
            hint=f"e.g. count=800, size=256, seed=0, classes={list(DEFAULT_CLASSES)}; scale=0.5 at size=1536 for 8-15 px cars",
        )


def _render(
    staging: str, indices: range, size: int, seed: int, classes: tuple[str, ...], scale: float | None
) -> list[tuple[ImageRecord, int]]:
    """Draw and write scenes `indices` into `staging`; returns their records and hidden-object counts."""
    import cv2  # heavy: loaded in the worker
    import numpy as np

    from skyops.data.synth_scene import render_scene

    done = []
    for index in indices:
        scene = render_scene(np.random.default_rng([seed, index]), size, classes, scale)
        ok, encoded = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode scene {index} as JPEG")
        image_bytes = encoded.tobytes()
        cls, x0, y0, x1, y1 = scene.boxes.T
        label_bytes = "".join(
            f"{int(c)} {(a + b) / 2 / size:.6f} {(t + u) / 2 / size:.6f} {(b - a) / size:.6f} {(u - t) / size:.6f}\n"
            for c, a, t, b, u in zip(cls, x0, y0, x1, y1, strict=True)
        ).encode()
        name = f"scene_{index:06d}"
        image, label = f"{IMAGES}/{name}.jpg", f"{LABELS}/{name}.txt"
        Path(staging, image).write_bytes(image_bytes)
        Path(staging, label).write_bytes(label_bytes)
        record = ImageRecord(
            image=image,
            label=label,
            width=size,
            height=size,
            sha256=hashlib.sha256(image_bytes).hexdigest(),
            label_sha256=hashlib.sha256(label_bytes).hexdigest(),
            boxes=len(scene.boxes),
            group=name,
            source=f"synthetic:v{GENERATOR_VERSION}:seed={seed}:index={index}" + (f":scale={scale}" if scale is not None else ""),
        )
        done.append((record, scene.hidden))
    return done


def _worker_init() -> None:
    import cv2  # heavy; see _render

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe


def generate_scenes(
    target: Path,
    count: int,
    size: int = 256,
    seed: int = 0,
    classes: Sequence[str] = DEFAULT_CLASSES,
    *,
    workers: int | None = None,
    scale: float | None = None,
) -> Manifest:
    """Generate `count` synthetic aerial scenes of `size` x `size` px into `target` (canonical layout).

    Args:
        target: output dataset folder; must not exist or be an empty folder; written atomically.
        count: number of images (at least 1).
        size: side in px (64..4096). Object sizes scale with it: cars are 16-30 px long at 256.
        seed: the same seed gives byte-identical files.
        classes: names among "car", "truck", "bus", "person"; class ids follow this order.
        workers: processes drawing scenes (default: CPU count, at most 8); 1 draws in this process.
        scale: object scale in px per px of a 256 px scene (cars 16-30 px long times `scale`), for
            high-resolution frames of small objects: size=1536, scale=0.5 gives 8-15 px cars and 5-7 px
            people, `round(size / (256 * scale))` times as many objects (see `synth_scene`). None (the
            default): `size / 256`, the images every earlier version drew.

    Returns:
        The manifest written to `<target>/manifest.json`; `stats` holds the settings and counts.

    Raises:
        ConfigError: count, size, seed, classes or scale out of range.
    """
    classes = tuple(classes)
    _check(count, size, seed, classes, scale)
    workers = max(1, min(workers or min(os.cpu_count() or 1, 8), count))
    with atomic_output_dir(Path(target)) as staging:
        (staging / IMAGES).mkdir()
        (staging / LABELS).mkdir()
        chunk = max(1, math.ceil(count / (workers * 4)))  # a few chunks per worker evens out their load
        chunks = [range(start, min(start + chunk, count)) for start in range(0, count, chunk)]
        if workers == 1:
            results = [_render(str(staging), c, size, seed, classes, scale) for c in chunks]
        else:
            # forkserver: workers start from a clean process, safe even when the caller holds threads (torch, a server)
            context = multiprocessing.get_context("forkserver")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
                results = list(
                    pool.map(
                        _render,
                        [str(staging)] * len(chunks),
                        chunks,
                        [size] * len(chunks),
                        [seed] * len(chunks),
                        [classes] * len(chunks),
                        [scale] * len(chunks),
                    )
                )
        done = [item for result in results for item in result]
        manifest = Manifest(
            names=list(classes),
            images=[record for record, _ in done],
            source_format="synthetic",
            stats={
                "generator_version": GENERATOR_VERSION,
                "seed": seed,
                "size": size,
                **({"scale": scale} if scale is not None else {}),
                "count": count,
                "boxes": sum(r.boxes for r, _ in done),
                "hidden_objects": sum(h for _, h in done),
            },
        )
        manifest.write(staging)
    return manifest


_PREVIEW_COLOURS = [(0, 220, 255), (255, 140, 0), (60, 60, 255), (255, 0, 255), (0, 255, 0), (255, 255, 0)]  # BGR by class id


def preview(target: Path, out_png: Path, n: int = 9) -> Path:
    """Tile the first `n` images of the dataset at `target` with their boxes and class names drawn.

    Args:
        target: a dataset in the canonical layout (e.g. written by `generate_scenes`).
        out_png: the PNG to write (its folder is created).
        n: how many images; they are laid out in a square-ish grid.

    Returns:
        `out_png`.
    """
    import cv2  # heavy; only previews need it here
    import numpy as np

    target = Path(target)
    manifest = Manifest.read(target)
    tiles = []
    for record in manifest.images[:n]:
        img = cv2.imread(str(target / record.image), cv2.IMREAD_COLOR)
        if img is None:
            raise DataValidationError(f"{target / record.image} is not a readable image", hint="run the validate step on the dataset")
        for line in (target / record.label).read_text().splitlines():
            cls, cx, cy, w, h = (float(v) for v in line.split())
            x0, y0 = round((cx - w / 2) * record.width), round((cy - h / 2) * record.height)
            x1, y1 = round((cx + w / 2) * record.width), round((cy + h / 2) * record.height)
            colour = _PREVIEW_COLOURS[int(cls) % len(_PREVIEW_COLOURS)]
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, 1)
            name = manifest.names[int(cls)] if int(cls) < len(manifest.names) else str(int(cls))
            cv2.putText(img, name, (x0, max(8, y0 - 2)), cv2.FONT_HERSHEY_PLAIN, 0.7, colour, 1, cv2.LINE_AA)
        tiles.append(img)
    if not tiles:
        raise ConfigError(f"dataset {target} has no images to preview")
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    gap = 4
    sheet = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * (height + gap) : r * (height + gap) + tile.shape[0], c * (width + gap) : c * (width + gap) + tile.shape[1]] = tile
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), sheet)
    return out_png
