"""Which captured images are most worth labelling: a documented, deterministic score, then a diverse pick.

Every image of every captured request (read with `skyops.serving.capture.read_captures`, the one
reader; a batch request gives one candidate per image) is scored from three parts, each in [0, 1]:

    uncertainty  u = 1 - mean score of the image's detections; 1 when there are none (the model saw
                 nothing: a miss is as likely as an empty scene, and a label settles which)
    drift        d = the request's `drift_contribution` in drift.json's `requests`, divided by the
                 largest in the window; 0 without drift.json or for a request it does not list
    rarity       r = max over the classes detected in the image of 1 - n_c / n_max, n_c being the
                 detections of class c in the whole window (0 for the commonest class, near 1 for
                 the rarest); 0 for an image without detections

    score = w_u * u + w_d * d + w_r * r          (Weights: 0.5, 0.3, 0.2 by default)

Diversity: images are then picked greedily (maximal marginal relevance). Each round takes the
candidate with the highest `score - w_div * s`, where s is its largest similarity to an image
already picked: the cosine similarity of the two images' 16x16 grey thumbnails, each normalised to
zero mean and unit length (so a darker copy of a scene is still that scene), clipped at 0. Ties go
to the smaller key. Byte-identical images (one picture sent twice) count once (the earliest). The
same captures and drift.json always give the same pick.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from skyops.data.imageinfo import ImageFormat, ImageHeaderError, probe
from skyops.errors import DataValidationError
from skyops.serving.capture import read_captures
from skyops.statefile import read_json_state, shape_problems

THUMB = 16  # px, side of the grey thumbnail compared for diversity
SUFFIXES = {ImageFormat.JPEG: ".jpg", ImageFormat.PNG: ".png"}
_MAX_BATCH = 10_000  # a captured request was accepted by its server: its batch size is not ours to limit


@dataclass(frozen=True)
class Weights:
    uncertainty: float = 0.5
    drift: float = 0.3
    rarity: float = 0.2
    diversity: float = 0.5  # how much similarity to an image already picked costs

    def __post_init__(self) -> None:
        for name in ("uncertainty", "drift", "rarity", "diversity"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise DataValidationError(f"weight {name}={value} is not a finite number >= 0", hint="e.g. 0.5")


@dataclass(frozen=True)
class Candidate:
    """One captured image and what the model answered for it."""

    key: str  # "<inference id or event id>-<index in the request>": unique, and the exported file's stem
    inference_id: str
    event_id: str
    index: int
    time: datetime
    image: bytes = field(repr=False)
    suffix: str  # ".jpg" / ".png"
    width: int
    height: int
    detections: list[dict[str, Any]]  # as the server answered: class_id, class_name, score, box (xyxy pixels)


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    uncertainty: float
    drift: float
    rarity: float
    score: float
    similarity: float = 0.0  # to the most similar image picked before it
    pick: float = 0.0  # score - diversity * similarity, when it was picked

    def to_json(self) -> dict[str, Any]:
        c = self.candidate
        parts = {k: round(getattr(self, k), 6) for k in ("score", "uncertainty", "drift", "rarity", "similarity", "pick")}
        return {"key": c.key, "inference_id": c.inference_id, "event_id": c.event_id, "index": c.index, **parts}


@dataclass
class Skipped:
    """Captured requests or images that gave no candidate, counted by reason."""

    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.reasons[reason] += 1


def read_candidates(captures: Path | str) -> tuple[list[Candidate], Skipped]:
    """Every captured image with its detections, oldest first; what could not be used is counted in `Skipped`.

    Raises:
        ConfigError / DataValidationError: from `read_captures` (no such folder, a line that is not a record).
    """
    from skyops.serving.images import Limits, split_payload
    from skyops.serving.problems import RequestError

    limits = Limits(max_bytes=1 << 62, max_pixels=1 << 62, max_batch=_MAX_BATCH)
    found: list[Candidate] = []
    skipped = Skipped()
    seen: set[str] = set()
    for record in read_captures(captures):
        if record.input is None or record.output is None:
            skipped.add("request or response not captured")
            continue
        kind = record.input.content_type.split(";", 1)[0].strip().lower()
        try:
            images, batch = split_payload(kind, record.input.raw(), limits)
            answer = record.output.json()
        except (RequestError, ValueError):
            skipped.add("request or response unreadable")
            continue
        results = answer.get("predictions") if batch and isinstance(answer, dict) else [answer]
        if not isinstance(results, list) or len(results) != len(images):
            skipped.add("response does not answer each image")
            continue
        request = record.inference_id or record.event_id
        for index, (data, result) in enumerate(zip(images, results, strict=True)):
            try:
                info = probe(data)
            except ImageHeaderError:
                skipped.add("not an image")
                continue
            if info.format not in SUFFIXES:
                skipped.add(f"{info.format} image")
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                skipped.add("same image as an earlier request")
                continue
            seen.add(digest)
            detections = result.get("detections") if isinstance(result, dict) else None
            found.append(
                Candidate(
                    key=f"{request}-{index}",
                    inference_id=request,
                    event_id=record.event_id,
                    index=index,
                    time=record.inference_time,
                    image=data,
                    suffix=SUFFIXES[info.format],
                    width=info.width,
                    height=info.height,
                    detections=[d for d in detections or [] if isinstance(d, dict) and isinstance(d.get("score"), int | float)],
                )
            )
    return found, skipped


def read_drift_contributions(path: Path) -> dict[str, float]:
    """inference id -> drift contribution, from a drift.json's `requests` (the monitoring contract)."""

    def problems(value: Any) -> list[str]:
        found = shape_problems(value, [("requests", lambda v: isinstance(v, list), "a list")])
        if found:
            return found
        bad = [
            i
            for i, r in enumerate(value["requests"])
            if not (isinstance(r, dict) and isinstance(r.get("inference_id"), str) and _finite(r.get("drift_contribution")))
        ]
        return [f"requests[{bad[0]}] is not {{inference_id: str, drift_contribution: number}}"] if bad else []

    data = read_json_state(
        path,
        what="drift result",
        expected='a drift.json of `skyops monitor run` with "requests": [{"inference_id", "drift_contribution"}]',
        hint="give the drift.json the monitor pipeline wrote, or leave --drift out",
        problems=problems,
    )
    return {r["inference_id"]: float(r["drift_contribution"]) for r in data["requests"]}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def score(candidates: Sequence[Candidate], contributions: Mapping[str, float], weights: Weights) -> list[Scored]:
    """Each candidate's score and its parts (see the module docstring), in the candidates' order."""
    classes = Counter(int(d.get("class_id", -1)) for c in candidates for d in c.detections)
    most = max(classes.values(), default=0)
    top = max((max(v, 0.0) for v in contributions.values()), default=0.0)
    scored = []
    for c in candidates:
        scores = [float(d["score"]) for d in c.detections]
        u = 1.0 - sum(scores) / len(scores) if scores else 1.0
        d = max(contributions.get(c.inference_id, 0.0), 0.0) / top if top > 0 else 0.0
        seen = {int(det.get("class_id", -1)) for det in c.detections}
        r = max((1.0 - classes[k] / most for k in seen), default=0.0) if most else 0.0
        u, d, r = (min(max(v, 0.0), 1.0) for v in (u, d, r))
        scored.append(Scored(c, u, d, r, weights.uncertainty * u + weights.drift * d + weights.rarity * r))
    return scored


def thumbnail_vector(image: bytes) -> np.ndarray:
    """The (256,) float64 grey 16x16 thumbnail of an image, zero mean and unit length (zeros for a flat image)."""
    import cv2

    grey = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        return np.zeros(THUMB * THUMB)
    small = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 1e-9 else np.zeros_like(small)


def select(scored: Sequence[Scored], count: int, weights: Weights) -> list[Scored]:
    """Up to `count` candidates, picked greedily by score minus weighted similarity to those picked (module docstring)."""
    if count <= 0 or not scored:
        return []
    order = sorted(range(len(scored)), key=lambda i: scored[i].candidate.key)
    vectors = np.stack([thumbnail_vector(scored[i].candidate.image) for i in order])  # (N, 256)
    base = np.array([scored[i].score for i in order])
    nearest = np.zeros(len(order))  # largest similarity to a picked image, per candidate
    free = np.ones(len(order), dtype=bool)
    picked: list[Scored] = []
    for _ in range(min(count, len(order))):
        value = np.where(free, base - weights.diversity * nearest, -np.inf)
        best = int(np.argmax(value))  # the first maximum: keys are sorted, so ties go to the smaller key
        s = scored[order[best]]
        picked.append(Scored(s.candidate, s.uncertainty, s.drift, s.rarity, s.score, float(nearest[best]), float(value[best])))
        free[best] = False
        nearest = np.maximum(nearest, np.clip(vectors @ vectors[best], 0.0, 1.0))
    return picked
