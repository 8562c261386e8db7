"""Profile a dataset in the canonical layout: class balance, box sizes, image statistics.

`profile_dataset` writes `profile.json`, PNG plots under `plots/` and one self-contained
`profile.html`. The JSON doubles as the monitoring baseline: every feature has a histogram over
fixed bin edges (the same edges for every dataset, so two profiles compare bin by bin) and a capped
sample of raw values for distribution tests.

profile.json, schema "skyops.profile" version 1 (`PROFILE_JSON_SCHEMA` is the JSON Schema of it):

    schema, version           "skyops.profile", 1
    dataset                   {fingerprint (of the manifest), source_format, names: [class names by id],
                               images, boxes}; no local paths, so the same data gives the same profile anywhere
    settings                  {max_side: images are downscaled to this longest side (px, INTER_AREA)
                               before image statistics, sample_cap, size_thresholds_px2: [1024, 9216]}
    classes                   {name: {boxes, images (holding at least one box of the class),
                               small, medium, large}}
    size_buckets              {small, medium, large}: boxes by COCO area in pixels of the original image:
                               small < 32^2 <= medium < 96^2 <= large
    image_sizes               {"<width>x<height>": images}
    features                  {name: {level: "image" | "box", unit, summary, histogram, sample}}
        summary               {count, mean, std, min, max, quantiles: {"p01", "p05", "p25", "p50", "p75",
                               "p95", "p99"}}; statistics are null when count is 0
        histogram             {edges: n + 1 fixed bin edges, counts: n}; values outside the edges are
                               counted in the first / last bin, so counts sum to `count`
        sample                raw values, at most `sample_cap`, a seeded subset in dataset order when
                               there are more; image-level samples hold the same images in the same order

Features. Image level: brightness (mean gray, 0-255), contrast (std of gray), sharpness (variance of
the Laplacian of gray, at `max_side`), boxes_per_image, width, height (px). Box level: box_width,
box_height (px of the original image), box_area (px^2), aspect_ratio (width / height).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from skyops.data.layout import ImageRecord, Manifest, atomic_output_dir
from skyops.errors import DataValidationError, problems_error

PROFILE_SCHEMA = "skyops.profile"
PROFILE_VERSION = 1
PROFILE_JSON = "profile.json"
PROFILE_HTML = "profile.html"
STATS_MAX_SIDE = 256  # px; cheap, and sizes vary: sharpness is scale-dependent, so it is only comparable at one max_side
SAMPLE_CAP = 5000
SMALL_AREA, LARGE_AREA = 32**2, 96**2  # COCO object-size thresholds, px^2
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _geometric(low: float, high: float, bins: int) -> list[float]:
    return [round(float(x), 6) for x in np.geomspace(low, high, bins + 1)]


# Fixed bin edges per feature: never derive them from the data, or two profiles stop being comparable.
FEATURES: dict[str, tuple[str, str, list[float]]] = {  # name -> (level, unit, edges)
    "brightness": ("image", "gray level 0-255", [float(x) for x in range(0, 257, 8)]),
    "contrast": ("image", "gray level", [float(x) for x in range(0, 129, 4)]),
    "sharpness": ("image", "variance of Laplacian", [0.0, *_geometric(1, 1e5, 40)]),
    "boxes_per_image": ("image", "boxes", [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000]),
    "width": ("image", "px", _geometric(16, 16384, 20)),
    "height": ("image", "px", _geometric(16, 16384, 20)),
    "box_width": ("box", "px", _geometric(1, 4096, 24)),
    "box_height": ("box", "px", _geometric(1, 4096, 24)),
    "box_area": ("box", "px^2", _geometric(1, 4096**2, 24)),
    "aspect_ratio": ("box", "width / height", _geometric(1 / 16, 16, 32)),
}


class ImageStats(NamedTuple):
    brightness: float  # mean gray, 0-255
    contrast: float  # std of gray
    sharpness: float  # variance of the Laplacian of gray


def image_statistics(image: np.ndarray, max_side: int = STATS_MAX_SIDE) -> ImageStats:
    """Brightness, contrast and sharpness of an image, measured at `max_side` px (INTER_AREA).

    Args:
        image: (H, W) gray or (H, W, 3) BGR, uint8. For features comparable with a profile, decode
            with `decode_gray` (as the profile does) and call this same function.
        max_side: the longest side after downscaling (images already smaller are not upscaled).
    """
    import cv2  # heavy; only data steps need it

    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    height, width = gray.shape
    scale = max_side / max(height, width)
    if scale < 1:
        gray = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    values = gray.astype(np.float32)
    return ImageStats(float(values.mean()), float(values.std()), float(cv2.Laplacian(values, cv2.CV_32F).var()))


def decode_gray(data: bytes) -> np.ndarray | None:
    """Decode encoded image bytes (JPEG, PNG, ...) to (H, W) uint8 gray; None if they are not an image."""
    import cv2  # heavy; see image_statistics

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


@dataclass(frozen=True)
class _Measured:
    stats: ImageStats | None  # None when the image cannot be read
    boxes: np.ndarray  # (N, 3): class id, width px, height px
    problems: list[str]


def _measure(root: Path, record: ImageRecord, max_side: int) -> _Measured:
    problems: list[str] = []
    rows: list[tuple[float, float, float]] = []
    try:
        lines = (root / record.label).read_text().splitlines()
    except OSError as e:
        lines, problems = [], [f"{record.label}: cannot read ({e.strerror})"]
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, _, _, w, h = (float(f) for f in fields)
        except ValueError:
            problems.append(f"{record.label}:{number}: expected 'class cx cy w h', got {line.strip()!r}")
            continue
        rows.append((cls, w * record.width, h * record.height))
    boxes = np.array(rows, dtype=np.float64).reshape(-1, 3)
    try:
        data = (root / record.image).read_bytes()
    except OSError as e:
        return _Measured(None, boxes, [*problems, f"{record.image}: cannot read ({e.strerror})"])
    gray = decode_gray(data)
    if gray is None:
        return _Measured(None, boxes, [*problems, f"{record.image}: not a readable image"])
    return _Measured(image_statistics(gray, max_side), boxes, problems)


def _sample_indices(n: int, cap: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, cap, replace=False))


def _r(x: float) -> float:
    return round(float(x), 6)


def summarise(values: np.ndarray, edges: list[float], sample: np.ndarray) -> dict[str, Any]:
    """Summary statistics, a fixed-edge histogram (outliers in the end bins) and the sample."""
    values = np.asarray(values, dtype=np.float64)
    clipped = np.clip(values, edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=np.asarray(edges, dtype=np.float64))
    empty = values.size == 0
    quantiles = np.quantile(values, QUANTILES) if not empty else [math.nan] * len(QUANTILES)
    summary = {
        "count": int(values.size),
        "mean": None if empty else _r(values.mean()),
        "std": None if empty else _r(values.std()),
        "min": None if empty else _r(values.min()),
        "max": None if empty else _r(values.max()),
        "quantiles": {f"p{round(q * 100):02d}": None if empty else _r(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
    }
    return {
        "summary": summary,
        "histogram": {"edges": edges, "counts": [int(c) for c in counts]},
        "sample": [_r(v) for v in values[sample]],
    }


def _bucket(area: np.ndarray) -> np.ndarray:
    return np.where(area < SMALL_AREA, 0, np.where(area < LARGE_AREA, 1, 2))


def build_profile(manifest: Manifest, measured: list[_Measured], max_side: int, sample_cap: int) -> dict[str, Any]:
    """Aggregate per-image measurements (in manifest order) into the profile.json document."""
    names = manifest.names
    boxes = np.concatenate([m.boxes for m in measured]) if measured else np.zeros((0, 3))
    class_ids = boxes[:, 0].astype(int)
    width_px, height_px = boxes[:, 1], boxes[:, 2]
    area = width_px * height_px
    buckets = _bucket(area)
    stats = np.array([m.stats for m in measured], dtype=np.float64).reshape(-1, 3)

    def class_name(c: int) -> str:
        return names[c] if 0 <= c < len(names) else str(c)

    images_with: Counter[int] = Counter(c for m in measured for c in set(m.boxes[:, 0].astype(int).tolist()))
    classes: dict[str, dict[str, int]] = {}
    for c in sorted(set(range(len(names))) | set(class_ids.tolist())):
        in_class = buckets[class_ids == c]
        classes[class_name(c)] = {"boxes": int(in_class.size), "images": images_with[c], **_bucket_counts(in_class)}
    image_values = {
        "brightness": stats[:, 0],
        "contrast": stats[:, 1],
        "sharpness": stats[:, 2],
        "boxes_per_image": np.array([len(m.boxes) for m in measured], dtype=np.float64),
        "width": np.array([r.width for r in manifest.images], dtype=np.float64),
        "height": np.array([r.height for r in manifest.images], dtype=np.float64),
    }
    box_values = {"box_width": width_px, "box_height": height_px, "box_area": area, "aspect_ratio": width_px / np.maximum(height_px, 1e-9)}
    image_sample, box_sample = _sample_indices(len(measured), sample_cap), _sample_indices(len(boxes), sample_cap)
    features = {}
    for name, (level, unit, edges) in FEATURES.items():
        values, sample = (image_values[name], image_sample) if level == "image" else (box_values[name], box_sample)
        features[name] = {"level": level, "unit": unit, **summarise(values, edges, sample)}
    return {
        "schema": PROFILE_SCHEMA,
        "version": PROFILE_VERSION,
        "dataset": {
            "fingerprint": manifest.fingerprint,
            "source_format": manifest.source_format,
            "names": names,
            "images": len(measured),
            "boxes": len(boxes),
        },
        "settings": {"max_side": max_side, "sample_cap": sample_cap, "size_thresholds_px2": [SMALL_AREA, LARGE_AREA]},
        "classes": classes,
        "size_buckets": _bucket_counts(buckets),
        "image_sizes": dict(sorted(Counter(f"{r.width}x{r.height}" for r in manifest.images).items())),
        "features": features,
    }


def _bucket_counts(buckets: np.ndarray) -> dict[str, int]:
    counts = np.bincount(buckets, minlength=3)
    return {"small": int(counts[0]), "medium": int(counts[1]), "large": int(counts[2])}


def profile_dataset(
    root: Path, out_dir: Path, *, max_side: int = STATS_MAX_SIDE, sample_cap: int = SAMPLE_CAP, workers: int | None = None
) -> dict[str, Any]:
    """Profile the dataset at `root` and write profile.json, plots/*.png and profile.html to `out_dir`.

    Args:
        root: a dataset in the canonical layout (manifest.json, images/, labels/). Not modified.
        out_dir: created atomically; must not exist or be an empty folder.
        max_side: longest side (px) images are downscaled to for brightness/contrast/sharpness.
        sample_cap: most raw values kept per feature in the JSON.
        workers: threads measuring images, default: CPU count up to 8 (OpenCV releases the GIL while decoding and filtering:
            on an idle 2-core machine threads ran 1.8x faster than serial, on par with processes, without their start-up).

    Returns:
        The profile.json document (see the module docstring).

    Raises:
        DataValidationError: no manifest, unreadable images or labels, malformed label lines.
    """
    from skyops.data.profile_report import write_html, write_plots  # matplotlib and jinja2 load only here

    root, out_dir = Path(root), Path(out_dir)
    manifest = Manifest.read(root)
    with ThreadPoolExecutor(max(1, workers or min(os.cpu_count() or 1, 8))) as pool:
        measured = list(pool.map(lambda r: _measure(root, r, max_side), manifest.images))
    problems = [p for m in measured for p in m.problems]
    if problems:
        raise problems_error(DataValidationError, f"dataset {root}", problems, hint="run the validate step to quarantine bad files")
    profile = build_profile(manifest, measured, max_side, sample_cap)
    with atomic_output_dir(out_dir) as staging:
        (staging / PROFILE_JSON).write_text(json.dumps(profile, indent=1))
        plots = write_plots(profile, staging / "plots")
        write_html(profile, plots, staging / PROFILE_HTML)
    return profile


def _nullable_number() -> dict[str, Any]:
    return {"type": ["number", "null"]}


_COUNTS = {"type": "object", "required": ["small", "medium", "large"], "additionalProperties": {"type": "integer", "minimum": 0}}
_FEATURE = {
    "type": "object",
    "required": ["level", "unit", "summary", "histogram", "sample"],
    "properties": {
        "level": {"enum": ["image", "box"]},
        "unit": {"type": "string"},
        "summary": {
            "type": "object",
            "required": ["count", "mean", "std", "min", "max", "quantiles"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                **{k: _nullable_number() for k in ("mean", "std", "min", "max")},
                "quantiles": {
                    "type": "object",
                    "required": [f"p{round(q * 100):02d}" for q in QUANTILES],
                    "additionalProperties": _nullable_number(),
                },
            },
        },
        "histogram": {
            "type": "object",
            "required": ["edges", "counts"],
            "properties": {
                "edges": {"type": "array", "items": {"type": "number"}, "minItems": 2},
                "counts": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            },
        },
        "sample": {"type": "array", "items": {"type": "number"}},
    },
}
PROFILE_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "skyops dataset profile, version 1",
    "type": "object",
    "required": ["schema", "version", "dataset", "settings", "classes", "size_buckets", "image_sizes", "features"],
    "properties": {
        "schema": {"const": PROFILE_SCHEMA},
        "version": {"const": PROFILE_VERSION},
        "dataset": {
            "type": "object",
            "required": ["fingerprint", "source_format", "names", "images", "boxes"],
            "properties": {
                "names": {"type": "array", "items": {"type": "string"}},
                "images": {"type": "integer"},
                "boxes": {"type": "integer"},
            },
        },
        "settings": {"type": "object", "required": ["max_side", "sample_cap", "size_thresholds_px2"]},
        "classes": {"type": "object", "additionalProperties": {**_COUNTS, "required": ["boxes", "images", "small", "medium", "large"]}},
        "size_buckets": _COUNTS,
        "image_sizes": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
        "features": {"type": "object", "required": list(FEATURES), "additionalProperties": _FEATURE},
    },
}
