"""The canary set: held-back images and the detections a healthy server must answer for them.

A new version's server is checked with it before it takes traffic (skyops.deploy_local): each image
is sent to the server as a client would send it, and the answers are matched against the expected
detections. A model that answers nothing, garbage or boxes in the wrong place fails; a server that
cannot decode, times out or answers an error fails.

    <folder>/canary.json
      {"format": 1,
       "conf": 0.25,          # asked with each request (null: the model's default)
       "max_det": 300,        # asked with each request (null: the model's default)
       "iou": 0.5,            # an answer matches an expected detection of its class with at least this IoU
       "min_recall": 0.8,     # share of the expected detections that must be answered
       "min_precision": 0.8,  # share of the answered detections that must be expected
       "images": [{"file": "images/0001.jpg",
                   "detections": [{"class_id": 0, "box": [x1, y1, x2, y2]}, ...]}, ...]}   # pixels of the image
    <folder>/images/...       JPEG or PNG files; paths stay inside the folder

Where a deployment takes it from: the environment's `local.canary` folder when it names one (committed
beside the environment file, reviewed like the version), else the version's package, `canary/` in the
model folder: the exported model's own answers on held-back test images (`record_canary` writes one
from a running server). Expected detections are matched one to one, per class, best score first, so
a canary set recorded from one version checks that another still finds the same objects; the two
thresholds say how much may differ. A set whose images expect no detection at all is refused: it
cannot tell a model that answers nothing from one that works.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from skyops.data.imageinfo import ImageFormat, ImageHeaderError, probe
from skyops.errors import ConfigError, problems_error

FORMAT = 1
FILE = "canary.json"
MEDIA_TYPES = {ImageFormat.JPEG: "image/jpeg", ImageFormat.PNG: "image/png"}
DEFAULTS = {"iou": 0.5, "min_recall": 0.8, "min_precision": 0.8}
REQUEST_TIMEOUT = 60.0  # seconds per canary request
HINT = "see skyops/serving/canary.py for the format; record one from a good server with skyops.serving.canary.record_canary"


@dataclass(frozen=True)
class Expected:
    class_id: int
    box: tuple[float, float, float, float]  # xyxy, pixels of the original image


@dataclass(frozen=True)
class CanaryImage:
    path: Path
    media_type: str
    width: int
    height: int
    detections: tuple[Expected, ...]


@dataclass(frozen=True, kw_only=True)
class CanarySet:
    folder: Path
    images: tuple[CanaryImage, ...]
    conf: float | None = None
    max_det: int | None = None
    iou: float = DEFAULTS["iou"]
    min_recall: float = DEFAULTS["min_recall"]
    min_precision: float = DEFAULTS["min_precision"]

    @property
    def expected(self) -> int:
        return sum(len(image.detections) for image in self.images)


@dataclass(kw_only=True)
class CanaryResult:
    """What the server answered for a canary set: counts over every image, and what went wrong."""

    images: int
    expected: int
    answered: int = 0  # detections the server answered (at the set's conf)
    matched: int = 0  # answered detections matched one to one with expected ones
    failures: list[str] = field(default_factory=list)  # requests that failed or answered wrongly
    min_recall: float = 1.0
    min_precision: float = 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.answered if self.answered else 1.0

    @property
    def passed(self) -> bool:
        return not self.failures and self.recall >= self.min_recall and self.precision >= self.min_precision

    def summary(self) -> str:
        """One line: 'recall 0.40 < 0.80 (4 of 10 expected detections found), precision 1.00 on 4 images'."""
        if self.failures:
            more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
            return f"{self.failures[0]}{more}"
        recall = f"recall {self.recall:.2f}{' < ' if self.recall < self.min_recall else ' >= '}{self.min_recall:.2f}"
        precision = f"precision {self.precision:.2f}{' < ' if self.precision < self.min_precision else ' >= '}{self.min_precision:.2f}"
        return (
            f"{recall} ({self.matched} of {self.expected} expected detections found), {precision} "
            f"({self.answered} answered) on {self.images} images"
        )

    def record(self) -> dict[str, Any]:
        """The audit record's view: counts, rates, the first failures."""
        return {
            "passed": self.passed,
            "images": self.images,
            "expected": self.expected,
            "answered": self.answered,
            "matched": self.matched,
            "recall": round(self.recall, 4),
            "precision": round(self.precision, 4),
            "failures": self.failures[:3],
        }


def load_canary(folder: Path) -> CanarySet:
    """The canary set in `folder`, every problem reported at once.

    Raises:
        ConfigError: no canary.json, not JSON, a wrong shape or value, an image that is missing, outside
            the folder or not a JPEG/PNG, a box outside its image, or no expected detection at all.
    """
    path = folder / FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no canary set at {folder}: {FILE} does not exist", hint=HINT) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"canary set {path} cannot be read as JSON ({type(e).__name__})", hint=HINT) from None
    if not isinstance(document, dict):
        raise ConfigError(f"canary set {path} holds a {type(document).__name__}, not an object", hint=HINT)
    problems: list[str] = []
    if document.get("format") != FORMAT:
        problems.append(f"format is {document.get('format')!r}, expected {FORMAT}")
    conf = _optional(document, "conf", lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1 or null", problems)
    max_det = _optional(document, "max_det", lambda v: _is_int(v) and v >= 1, "a positive integer or null", problems)
    rates = {key: _optional(document, key, lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1", problems) for key in DEFAULTS}
    images = document.get("images")
    found: list[CanaryImage] = []
    if not isinstance(images, list) or not images:
        problems.append("images is not a non-empty list")
    else:
        for i, entry in enumerate(images):
            image = _image(folder, entry, f"images[{i}]", problems)
            if image is not None:
                found.append(image)
    if not problems and not any(image.detections for image in found):
        problems.append("no image expects a detection: such a set cannot tell a model that answers nothing from one that works")
    if problems:
        raise problems_error(ConfigError, f"canary set {path}", problems, hint=HINT)
    return CanarySet(
        folder=folder,
        images=tuple(found),
        conf=conf,
        max_det=max_det,
        **{key: DEFAULTS[key] if value is None else float(value) for key, value in rates.items()},
    )


def run_canary(base_url: str, canary: CanarySet) -> CanaryResult:
    """Send every canary image to the server at `base_url` and match its answers (see the module docstring)."""
    import httpx

    result = CanaryResult(
        images=len(canary.images), expected=canary.expected, min_recall=canary.min_recall, min_precision=canary.min_precision
    )
    params = {k: v for k, v in (("conf", canary.conf), ("max_det", canary.max_det)) if v is not None}
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        for image in canary.images:
            name = image.path.relative_to(canary.folder).as_posix()
            try:
                response = client.post(
                    "/invocations", params=params, content=image.path.read_bytes(), headers={"Content-Type": image.media_type}
                )
            except httpx.HTTPError as e:
                result.failures.append(f"{name}: no answer ({type(e).__name__})")
                continue
            answered = _answer(response, image, name, result.failures)
            if answered is None:
                continue
            result.answered += len(answered)
            result.matched += matches(image.detections, answered, canary.iou)
    return result


def matches(expected: Sequence[Expected], answered: Sequence[tuple[Expected, float]], iou: float) -> int:
    """How many answered detections (with their scores) match an expected one: same class, IoU >= `iou`, one to one,
    answers taken best score first, each matched to the unmatched expected box it overlaps most."""
    taken = [False] * len(expected)
    count = 0
    for answer, _ in sorted(answered, key=lambda pair: -pair[1]):
        best, best_iou = -1, iou
        for i, want in enumerate(expected):
            if not taken[i] and want.class_id == answer.class_id and (overlap := box_iou(want.box, answer.box)) >= best_iou:
                best, best_iou = i, overlap
        if best >= 0:
            taken[best] = True
            count += 1
    return count


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def record_canary(
    base_url: str, images: Sequence[Path], folder: Path, *, conf: float | None = None, max_det: int | None = None, **rates: float
) -> CanarySet:
    """Write a canary set into `folder` (replaced whole, atomically) from what the server at `base_url` answers for `images`.

    Use a server of a version known to be good: its answers become what later servers must answer.

    Raises:
        ConfigError: an image that is not a JPEG/PNG, or a server that does not answer one with 200.
    """
    import httpx

    params = {k: v for k, v in (("conf", conf), ("max_det", max_det)) if v is not None}
    entries = []
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (staging / "images").mkdir()
        with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
            for i, source in enumerate(images):
                data = source.read_bytes()
                media = _media_type(data, str(source))
                name = f"images/{i:04d}{'.png' if media == 'image/png' else '.jpg'}"
                (staging / name).write_bytes(data)
                response = client.post("/invocations", params=params, content=data, headers={"Content-Type": media})
                if response.status_code != 200:
                    raise ConfigError(f"{base_url} answered {source} with {response.status_code}", hint="record from a server that works")
                detections = [{"class_id": d["class_id"], "box": d["box"]} for d in response.json()["detections"]]
                entries.append({"file": name, "detections": detections})
        document = {"format": FORMAT, "conf": conf, "max_det": max_det, **DEFAULTS, **rates, "images": entries}
        (staging / FILE).write_text(json.dumps(document, indent=1), encoding="utf-8")
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_canary(folder)


def write_canary(
    folder: Path, images: Sequence[tuple[Path, Sequence[tuple[int, Sequence[float]]]]], *, conf: float | None, max_det: int | None
) -> None:
    """Write a canary set into `folder` (replaced whole, atomically) from images and their expected detections, offline.

    `images`: (a JPEG or PNG file, [(class id, box xyxy in its pixels), ...]) each; the files are copied in.
    What the export step uses to put a canary set into the package it makes (record_canary asks a server instead).
    """
    entries = []
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (staging / "images").mkdir()
        for i, (source, detections) in enumerate(images):
            data = source.read_bytes()
            name = f"images/{i:04d}{'.png' if _media_type(data, str(source)) == 'image/png' else '.jpg'}"
            (staging / name).write_bytes(data)
            entries.append({"file": name, "detections": [{"class_id": int(c), "box": [float(v) for v in box]} for c, box in detections]})
        document = {"format": FORMAT, "conf": conf, "max_det": max_det, **DEFAULTS, "images": entries}
        (staging / FILE).write_text(json.dumps(document, indent=1), encoding="utf-8")
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_folder(new: Path, folder: Path) -> None:
    """`new` takes the place of `folder` (the old one, if any, moved aside first, then removed)."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old.{new.name}")
        folder.rename(old)
    new.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _answer(response: Any, image: CanaryImage, name: str, failures: list[str]) -> list[tuple[Expected, float]] | None:
    """The detections of one answer, or None (a failure appended) when the answer is not a good one."""
    if response.status_code != 200:
        failures.append(f"{name}: answered {response.status_code} {response.text[:160]}")
        return None
    try:
        body = response.json()
        size = (body["image"]["width"], body["image"]["height"])
        answered = [(Expected(int(d["class_id"]), _box(d["box"])), float(d["score"])) for d in body["detections"]]
    except (ValueError, KeyError, TypeError) as e:
        failures.append(f"{name}: the answer is not the server's detections JSON ({type(e).__name__}: {e})")
        return None
    if size != (image.width, image.height):
        failures.append(f"{name}: answered for a {size[0]}x{size[1]} image, but it is {image.width}x{image.height}")
        return None
    return answered


def _image(folder: Path, entry: Any, where: str, problems: list[str]) -> CanaryImage | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("detections"), list):
        problems.append(f'{where} is not {{"file": "images/...", "detections": [...]}}')
        return None
    relative = PurePosixPath(entry["file"])
    if relative.is_absolute() or ".." in relative.parts:
        problems.append(f"{where}.file {entry['file'][:80]!r} is not a path inside the canary folder")
        return None
    path = folder / relative
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.append(f"{where}.file {relative} cannot be read ({e.strerror or type(e).__name__})")
        return None
    try:
        info = probe(data)
    except ImageHeaderError:
        info = None
    if info is None or info.format not in MEDIA_TYPES:
        problems.append(f"{where}.file {relative} is not a JPEG or PNG image")
        return None
    detections = []
    for j, d in enumerate(entry["detections"]):
        ok = isinstance(d, dict) and _is_int(d.get("class_id")) and d["class_id"] >= 0 and _is_box(d.get("box"), info.width, info.height)
        if not ok:
            problems.append(f'{where}.detections[{j}] is not {{"class_id": >= 0, "box": [x1, y1, x2, y2] inside the image}}')
            continue
        detections.append(Expected(d["class_id"], _box(d["box"])))
    return CanaryImage(path=path, media_type=MEDIA_TYPES[info.format], width=info.width, height=info.height, detections=tuple(detections))


def _media_type(data: bytes, where: str) -> str:
    try:
        info = probe(data)
    except ImageHeaderError:
        info = None
    if info is None or info.format not in MEDIA_TYPES:
        raise ConfigError(f"{where} is not a JPEG or PNG image", hint="a canary set holds JPEG or PNG images")
    return MEDIA_TYPES[info.format]


def _optional(document: dict[str, Any], key: str, check: Any, expected: str, problems: list[str]) -> Any:
    value = document.get(key)
    if value is not None and not check(value):
        problems.append(f"{key} is {value!r}, not {expected}")
        return None
    return value


def _box(value: Any) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in value)
    return (x1, y1, x2, y2)


def _is_box(value: Any, width: int, height: int) -> bool:
    if not (isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)):
        return False
    x1, y1, x2, y2 = value
    return 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
