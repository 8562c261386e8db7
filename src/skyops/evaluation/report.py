"""The HTML evaluation report written beside evaluation.json: one self-contained page.

What a reviewer reads before approving a version: the headline numbers (Ultralytics' and COCO's), the
comparison with the champion, mAP per slice with the weakest slice singled out, precision/recall
curves, the confusion matrix and the worst images with their boxes drawn. The PR curves (matplotlib,
Agg, no pyplot) and the drawings are embedded as base64 data URIs; slice bars and the confusion
matrix's shading are plain HTML and inline CSS (a matplotlib figure each cost seconds, for what a
table shows as well): the page loads nothing from anywhere, so it opens offline and from an S3
console download alike.

matplotlib and jinja2 are imported here only; the evaluation imports this module when it writes a report.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from skyops.evaluation import drawing
from skyops.evaluation.coco import CocoResult
from skyops.evaluation.mistakes import ImageErrors

REPORT = "report.html"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata={"Software": None})  # the default names matplotlib's URL
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pr_curves(coco: CocoResult, names: Sequence[str]) -> str | None:
    """COCO's precision/recall curve per class at IoU 0.50 (100 detections per image); None without ground truth."""
    shown = [k for k in range(coco.precision.shape[1]) if (coco.precision[:, k] >= 0).any()]
    if not shown:
        return None
    fig = Figure(figsize=(7, 4.5))
    fig.subplots_adjust(left=0.09, right=0.98, top=0.93, bottom=0.11)  # fixed margins: a layout engine costs a third of the time
    ax = fig.subplots()
    for k in shown:
        curve = coco.precision[:, k]
        ax.plot(coco.recall_points, curve, linewidth=1.5, label=f"{names[k]} (AP50 {curve.mean():.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision / recall at IoU 0.50 (COCO)")
    ax.legend(loc="lower left", fontsize="small")
    return _png(fig)


def confusion_rows(matrix: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    """The confusion matrix as table rows: per true class, each cell's count and its share of the row (the cell's shade)."""
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    return [
        {"label": label, "cells": [{"count": int(c), "share": float(f)} for c, f in zip(row, share, strict=True)]}
        for label, row, share in zip(labels, matrix, shares, strict=True)
    ]


def _drawings(worst: Sequence[ImageErrors], names: Sequence[str]) -> list[dict[str, Any]]:
    shown = []
    for errors in worst:
        try:
            picture = "data:image/jpeg;base64," + base64.b64encode(drawing.draw_errors(errors, names)).decode("ascii")
        except OSError as e:  # the image is gone or unreadable: the row stays, without its picture
            picture, why = "", f"cannot draw {errors.image.name}: {e.strerror or e}"
        else:
            why = ""
        shown.append({**errors.to_json(), "picture": picture, "why": why})
    return shown


def render(doc: Mapping[str, Any], *, coco: CocoResult, worst: Sequence[ImageErrors], names: Sequence[str]) -> str:
    """The report page for an evaluation document (already valid) and what it was made from."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("skyops.evaluation", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    confusion = doc["confusion"]
    plots = {"pr": pr_curves(coco, names)}
    comparison = doc["comparison"] or {}
    slice_deltas = (comparison.get("slices") or {}).get("delta", {})
    colours = {"found": drawing.FOUND, "missed": drawing.MISSED, "tp": drawing.TRUE_POSITIVE, "fp": drawing.FALSE_POSITIVE}
    return env.get_template("evaluation.html.j2").render(
        doc=doc,
        plots=plots,
        confusion_rows=confusion_rows(np.asarray(confusion["matrix"]), confusion["labels"]),
        worst=_drawings(worst, names),
        slice_deltas=slice_deltas,
        colours=colours,
    )


def write_report(doc: Mapping[str, Any], path: Path, *, coco: CocoResult, worst: Sequence[ImageErrors], names: Sequence[str]) -> Path:
    """Render the report and publish it at `path` atomically (temp file beside it, then rename)."""
    return write_text_atomic(path, render(doc, coco=coco, worst=worst, names=names))


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to a temp file beside `path`, fsync it, then rename it over `path` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
