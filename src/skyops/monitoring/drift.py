"""Is a window of captured requests drifted from the training baseline? The decision and `drift.json`.

Every feature of skyops.monitoring.features is tested on the rows where it is measured (KS for numeric
features, chi-square for categorical ones; skyops.monitoring.stats), and the embedding by MMD with a
permutation test. These p-values form one family, adjusted together:

- Holm (the default) controls the family-wise error rate: on a window drawn from the baseline's own
  distribution, the chance that anything at all is flagged is at most `alpha`, whatever the
  dependence between the tests. Our tests are strongly dependent (brightness and contrast, boxes and
  empty share, and the embedding sees everything), and "the window drifted" is a family-wise claim:
  one alarm per window is what an operator pays for, so a per-window false-alarm rate is the guarantee
  that matters. Its price is a little power on windows where only one weak feature moved.
- Benjamini-Hochberg (`correction="bh"`) controls the false discovery rate instead: more features flagged
  once drift is there, the same alarm rate when nothing moved (then FDR = FWER), but its guarantee
  needs positive dependence between the tests.

A feature named in `psi_features` is judged by its PSI alone (drifted when PSI >= `psi_threshold`) and
stays out of the family: for a feature whose every small move is significant at large windows but only a
large one matters. Every feature reports its PSI as an effect size regardless.

The window is drifted when any feature or the embedding is. Each request gets a drift contribution,
for the labelling loop: the mean, over the components found drifted, of each component's witness at
the request's images (skyops.monitoring.stats.witness, scaled to at most 1 per component; the largest
over a batch request's images); 0 for every request when nothing drifted.

drift.json is the contract shared with the alert and retraining code (docs/monitoring.md):
`DriftResult.to_json(path)` writes it atomically, `DriftResult.from_json(path)` reads it back.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skyops.errors import ConfigError, DataValidationError
from skyops.monitoring import stats
from skyops.monitoring.baseline import Baseline
from skyops.monitoring.features import FEATURES, FeatureTable

FORMAT = 1
MIN_TESTED = 5  # a feature measured on fewer rows on either side is not tested (p null): e.g. scores of a window without boxes


@dataclass(frozen=True, kw_only=True)
class DriftThresholds:
    alpha: float = 0.01  # per-window false-alarm rate (Holm) or false discovery rate (BH)
    correction: Literal["holm", "bh"] = "holm"
    psi_threshold: float = 0.25  # for features judged by PSI alone
    psi_features: tuple[str, ...] = ()
    permutations: int = 2000  # of the MMD test; its smallest p-value is 1 / (1 + permutations) (see detect_drift)
    reference_size: int = 1000  # most baseline rows in the MMD reference sample (seeded subset)
    min_images: int = 30  # a smaller window is refused: too few to test anything
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "psi_features": list(self.psi_features)}


@dataclass(frozen=True)
class FeatureResult:
    name: str
    kind: str  # image | prediction
    test: str  # ks | chi2 | psi
    statistic: float
    p_value: float | None
    p_adjusted: float | None
    psi: float | None
    drifted: bool


@dataclass(frozen=True)
class EmbeddingResult:
    test: str  # mmd
    statistic: float
    p_value: float
    drifted: bool
    p_adjusted: float | None = None


@dataclass(frozen=True)
class DriftResult:
    """drift.json, typed (the module docstring; the contract in docs/monitoring.md)."""

    drifted: bool
    window: dict[str, Any]  # start, end (ISO 8601), requests, source
    baseline: dict[str, Any]  # dataset_fingerprint, images
    features: list[FeatureResult]
    embedding: EmbeddingResult
    thresholds: dict[str, Any]
    top: list[str]
    requests: list[dict[str, Any]] = field(default_factory=list)  # {inference_id, drift_contribution}
    format: int = FORMAT

    def document(self) -> dict[str, Any]:
        doc = asdict(self)
        return {"format": doc.pop("format"), **doc}

    def to_json(self, path: Path) -> Path:
        """Write drift.json atomically (a temp file beside it, then rename)."""
        path = Path(path)
        text = json.dumps(self.document(), indent=1, allow_nan=False)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_json(cls, path: Path) -> DriftResult:
        """Read drift.json.

        Raises:
            DataValidationError: unreadable, not JSON, another format, or a member missing (named).
        """
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise DataValidationError(f"{path} cannot be read as drift.json ({e})", hint="run the monitor pipeline again") from None
        required = ("format", "drifted", "window", "baseline", "features", "embedding", "thresholds", "top")
        missing = [k for k in required if not isinstance(doc, dict) or k not in doc]
        if missing or doc.get("format") != FORMAT:
            what = f"lacks {', '.join(missing)}" if missing else f"is format {doc.get('format')!r}, expected {FORMAT}"
            raise DataValidationError(f"{path} {what}", hint="it was not written by this skyops version's monitor")
        try:
            features = [FeatureResult(**f) for f in doc["features"]]
            embedding = EmbeddingResult(**doc["embedding"])
        except TypeError as e:
            raise DataValidationError(f"{path}: a feature or the embedding has the wrong members ({e})") from None
        return cls(
            drifted=bool(doc["drifted"]),
            window=doc["window"],
            baseline=doc["baseline"],
            features=features,
            embedding=embedding,
            thresholds=doc["thresholds"],
            top=list(doc["top"]),
            requests=list(doc.get("requests", [])),
        )


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def detect_drift(baseline: Baseline, window: FeatureTable, window_meta: dict[str, Any], thresholds: DriftThresholds) -> DriftResult:
    """Test the window against the baseline (the module docstring).

    Args:
        window_meta: start, end (ISO 8601 or None), requests and source of the window, as drift.json reports them.

    Raises:
        ConfigError: too few permutations for the embedding ever to be found drifted: Holm multiplies its p-value,
            at least 1 / (1 + permutations), by up to the number of tests.
        DataValidationError: the window has fewer than `min_images` images with pixels, or names an unknown PSI feature.
    """
    tests = len([f for f in FEATURES if f.name not in thresholds.psi_features]) + 1
    if tests / (1 + thresholds.permutations) > thresholds.alpha:
        raise ConfigError(
            f"permutations={thresholds.permutations} cannot show embedding drift at alpha={thresholds.alpha}: its smallest p-value,"
            f" 1/{1 + thresholds.permutations}, times {tests} tests is above alpha",
            hint=f"use permutations >= {math.ceil(tests / thresholds.alpha)} (or a larger alpha)",
        )
    unknown = sorted(set(thresholds.psi_features) - {f.name for f in FEATURES})
    if unknown:
        raise DataValidationError(
            f"psi_features names unknown features {', '.join(unknown)}", hint=f"features: {', '.join(f.name for f in FEATURES)}"
        )
    with_pixels = ~np.isnan(window.embedding).any(axis=1) if window.embedding.shape[1] else np.zeros(len(window), bool)
    if with_pixels.sum() < thresholds.min_images:
        raise DataValidationError(
            f"the window has {int(with_pixels.sum())} captured images with pixels, fewer than min_images={thresholds.min_images}",
            hint="widen the window (an earlier start, a larger last), or capture the requests' input too (CaptureMode Input)",
        )
    rows: list[dict[str, Any]] = []
    for spec in FEATURES:
        base, win = baseline.table.column(spec.name), window.column(spec.name)
        if not spec.categorical:
            base, win = base[~np.isnan(base)], win[~np.isnan(win)]
        row: dict[str, Any] = {"name": spec.name, "kind": spec.kind.value, "base": base, "win": win, "categorical": spec.categorical}
        testable = min(len(base), len(win)) >= MIN_TESTED
        row["psi"] = stats.psi(base, win, categorical=spec.categorical) if testable else None
        if spec.name in thresholds.psi_features:
            row.update(test="psi", statistic=row["psi"] or 0.0, p=None)
        elif not testable:
            row.update(test="chi2" if spec.categorical else "ks", statistic=0.0, p=None)
        else:
            statistic, p = (stats.chi2_test if spec.categorical else stats.ks_test)(base, win)
            row.update(test="chi2" if spec.categorical else "ks", statistic=statistic, p=p)
        rows.append(row)

    reference_rows = baseline.projection.reference
    if len(reference_rows) > thresholds.reference_size:
        reference_rows = np.sort(np.random.default_rng(thresholds.seed).choice(reference_rows, thresholds.reference_size, replace=False))
    reference = baseline.projection.apply(baseline.table.embedding[reference_rows])
    projected = baseline.projection.apply(window.embedding[with_pixels])
    mmd = stats.mmd_test(reference, projected, permutations=thresholds.permutations, seed=thresholds.seed)

    family = [r for r in rows if r["p"] is not None]
    p_values = np.array([r["p"] for r in family] + [mmd.p_value])
    adjusted = stats.holm(p_values) if thresholds.correction == "holm" else stats.benjamini_hochberg(p_values)
    for r, p_adjusted in zip(family, adjusted[:-1], strict=True):
        r["p_adjusted"] = float(p_adjusted)
    for r in rows:
        r.setdefault("p_adjusted", None)
        if r["test"] == "psi":
            r["drifted"] = r["psi"] is not None and r["psi"] >= thresholds.psi_threshold
        else:
            r["drifted"] = r["p_adjusted"] is not None and r["p_adjusted"] <= thresholds.alpha
    embedding = EmbeddingResult("mmd", mmd.statistic, mmd.p_value, bool(adjusted[-1] <= thresholds.alpha), float(adjusted[-1]))

    features = [
        FeatureResult(
            r["name"],
            r["kind"],
            r["test"],
            float(r["statistic"]),
            _finite(r["p"]),
            _finite(r["p_adjusted"]),
            _finite(r["psi"]),
            r["drifted"],
        )
        for r in rows
    ]
    return DriftResult(
        drifted=embedding.drifted or any(f.drifted for f in features),
        window={k: window_meta.get(k) for k in ("start", "end", "requests", "source")},
        baseline={"dataset_fingerprint": baseline.fingerprint, "images": len(baseline.table)},
        features=features,
        embedding=embedding,
        thresholds=thresholds.to_json(),
        top=_ranked(features, embedding),
        requests=_contributions(rows, window, with_pixels, mmd.witness, embedding.drifted),
    )


def _ranked(features: list[FeatureResult], embedding: EmbeddingResult) -> list[str]:
    """Names by evidence: drifted first, then by adjusted p-value (PSI-judged ones by PSI), then by PSI."""
    entries = [(f.name, f.drifted, f.p_adjusted, f.psi) for f in features]
    entries.append(("embedding", embedding.drifted, embedding.p_adjusted, None))
    return [e[0] for e in sorted(entries, key=lambda e: (not e[1], 1.0 if e[2] is None else e[2], -(e[3] or 0.0), e[0]))]


def _contributions(
    rows: list[dict[str, Any]], window: FeatureTable, with_pixels: np.ndarray, mmd_witness: np.ndarray, embedding_drifted: bool
) -> list[dict[str, Any]]:
    """Each request's drift contribution (the module docstring), in the window's order of first appearance."""
    parts: list[np.ndarray] = []
    for r in rows:
        if not r["drifted"]:
            continue
        values = window.column(r["name"])
        part = np.zeros(len(window))
        measured = np.ones(len(window), bool) if r["categorical"] else ~np.isnan(values)
        part[measured] = stats.feature_witness(r["base"], values[measured], categorical=r["categorical"])
        parts.append(part)
    if embedding_drifted:
        part = np.zeros(len(window))
        part[with_pixels] = mmd_witness
        parts.append(part)
    scaled = [p / np.abs(p).max() if np.abs(p).max() > 0 else p for p in parts]
    per_row = np.mean(scaled, axis=0) if scaled else np.zeros(len(window))
    best: dict[str, float] = {}
    for request_id, value in zip(window.request_ids, per_row.tolist(), strict=True):
        best[request_id] = max(best.get(request_id, -math.inf), value)
    return [{"inference_id": request_id, "drift_contribution": round(value, 6)} for request_id, value in best.items()]
