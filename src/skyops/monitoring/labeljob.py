"""A labelling job out (Ground Truth input manifest, Label Studio tasks), and its labels back in as a new dataset version.

Export writes one folder, whole or not at all:

    <job>/
      images/<key>.jpg                      the picked images, as captured (full size, bytes unchanged)
      groundtruth-input.manifest            SageMaker Ground Truth input manifest: {"source-ref": ..., "skyops-key": key}
      groundtruth-label-categories.json     the job's label categories ({"document-version": "2018-11-28", "labels": [...]})
      label-studio-tasks.json               Label Studio tasks, the model's detections as pre-annotations (predictions)
      label-studio-config.xml               the Label Studio labelling config (RectangleLabels of the classes)
      selection.json                        what was picked and why (labelling.py's score parts), the class names, the job id

`source-ref`s are `<s3-prefix>images/<key>.jpg` when an S3 prefix is given (upload the folder there:
`aws s3 sync <job> <s3-prefix>`), else `images/<key>.jpg` relative to the job folder. Label Studio image
URLs are `<image-url-prefix><key>.jpg` (default: Label Studio's local-files URL of the job's images).

Import reads the labelled result as a Ground Truth OUTPUT manifest (what a Ground Truth job writes, or
any labeller writing that format) through skyops' own converter (skyops.data.convert, format
groundtruth: every refusal listed at once), resolves its source-refs inside the job folder only, keeps
only images of this job, and grows a dataset version: the base dataset plus these labelled images
(datasets.py), with a new fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from skyops.data.layout import IMAGES, Manifest, atomic_output_dir, json_lines
from skyops.errors import ConfigError, DataValidationError
from skyops.monitoring.datasets import DatasetStore, DatasetVersion
from skyops.monitoring.events import format_time
from skyops.monitoring.labelling import Scored, Skipped, Weights
from skyops.statefile import is_text, read_json_state, shape_problems

SELECTION = "selection.json"
GT_INPUT = "groundtruth-input.manifest"
GT_CATEGORIES = "groundtruth-label-categories.json"
LS_TASKS = "label-studio-tasks.json"
LS_CONFIG = "label-studio-config.xml"
LS_FROM, LS_TO = "label", "image"  # the control and object tag names of the config, which every result names


@dataclass(frozen=True)
class ExportedJob:
    path: Path
    job: str  # a short id: the sha256 of the picked keys
    images: int


def export_job(
    picked: Sequence[Scored],
    out: Path,
    *,
    names: Sequence[str],
    captures: str,
    drift_file: str | None,
    weights: Weights,
    skipped: Skipped,
    candidates: int,
    s3_prefix: str | None = None,
    image_url_prefix: str | None = None,
) -> ExportedJob:
    """Write the job folder `out` (which must not exist, or be empty). See the module docstring.

    Raises:
        ConfigError: nothing picked, or an S3 prefix that is not s3://bucket/...
        DataValidationError: `out` exists and is not empty.
    """
    if not picked:
        raise ConfigError(f"no captured image to label in {captures}", hint="send traffic to a server with --capture-dir first")
    if s3_prefix is not None and not (s3_prefix.startswith("s3://") and len(s3_prefix) > 5):
        raise ConfigError(
            f"--s3-prefix {s3_prefix[:60]!r} is not an s3://bucket/prefix/ URI", hint="e.g. --s3-prefix s3://my-bucket/labelling/"
        )
    prefix = (s3_prefix.rstrip("/") + "/") if s3_prefix else ""
    job = hashlib.sha256("\n".join(sorted(s.candidate.key for s in picked)).encode()).hexdigest()[:12]
    urls = image_url_prefix if image_url_prefix is not None else f"/data/local-files/?d={Path(out).name}/{IMAGES}/"
    with atomic_output_dir(out) as staging:
        (staging / IMAGES).mkdir()
        items = []
        for s in picked:
            c = s.candidate
            name = f"{c.key}{c.suffix}"
            (staging / IMAGES / name).write_bytes(c.image)
            items.append(
                {**s.to_json(), "image": f"{IMAGES}/{name}", "source_ref": f"{prefix}{IMAGES}/{name}", "width": c.width, "height": c.height}
            )
        (staging / GT_INPUT).write_text("".join(json.dumps({"source-ref": i["source_ref"], "skyops-key": i["key"]}) + "\n" for i in items))
        categories = {"document-version": "2018-11-28", "labels": [{"label": n} for n in names]}
        (staging / GT_CATEGORIES).write_text(json.dumps(categories, indent=1) + "\n")
        tasks = [_task(n, s, f"{urls}{s.candidate.key}{s.candidate.suffix}", names) for n, s in enumerate(picked, 1)]
        (staging / LS_TASKS).write_text(json.dumps(tasks, indent=1) + "\n")
        (staging / LS_CONFIG).write_text(label_studio_config(names))
        selection = {
            "format": 1,
            "job": job,
            "created": format_time(datetime.now(UTC)),
            "captures": captures,
            "drift_file": drift_file,
            "names": list(names),
            "s3_prefix": prefix or None,
            "weights": vars(weights),
            "candidates": candidates,
            "skipped": dict(sorted(skipped.reasons.items())),
            "items": items,
        }
        (staging / SELECTION).write_text(json_lines(selection))
    return ExportedJob(Path(out), job, len(items))


def _task(number: int, s: Scored, url: str, names: Sequence[str]) -> dict[str, Any]:
    """A Label Studio task: the image URL, and the model's boxes as one prediction (percent of the image, top-left)."""
    c = s.candidate
    result = []
    for n, d in enumerate(c.detections):
        label = d.get("class_name")
        box = d.get("box")
        if label not in names or not (isinstance(box, list) and len(box) == 4):
            continue  # a class the labelling config does not have would be refused by Label Studio
        x1, y1, x2, y2 = (float(v) for v in box)
        value = {
            "x": 100 * x1 / c.width,
            "y": 100 * y1 / c.height,
            "width": 100 * (x2 - x1) / c.width,
            "height": 100 * (y2 - y1) / c.height,
            "rotation": 0,
            "rectanglelabels": [label],
        }
        result.append(
            {
                "id": f"{c.key}-{n}",
                "from_name": LS_FROM,
                "to_name": LS_TO,
                "type": "rectanglelabels",
                "original_width": c.width,
                "original_height": c.height,
                "value": value,
                "score": float(d["score"]),
            }
        )
    return {
        "id": number,
        "data": {"image": url, "skyops_key": c.key},
        "predictions": [{"model_version": "skyops-serve", "score": s.score, "result": result}],
    }


def label_studio_config(names: Sequence[str]) -> str:
    labels = "\n".join(f"    <Label value={quoteattr(n)}/>" for n in names)
    return (
        "<View>\n"
        f'  <Image name="{LS_TO}" value="$image"/>\n'
        f'  <RectangleLabels name="{LS_FROM}" toName="{LS_TO}">\n{labels}\n  </RectangleLabels>\n'
        "</View>\n"
    )


def read_selection(job: Path) -> dict[str, Any]:
    def problems(value: Any) -> list[str]:
        fields = [("job", is_text, "a job id"), ("names", lambda v: isinstance(v, list) and bool(v), "a list of class names")]
        return shape_problems(value, [*fields, ("items", lambda v: isinstance(v, list), "a list")])

    path = Path(job) / SELECTION
    if not path.is_file():
        raise ConfigError(
            f"{job} is not a labelling job folder (no {SELECTION})", hint="give the folder `skyops monitor label export` wrote"
        )
    return dict(
        read_json_state(
            path,
            what="labelling job",
            expected=f"the {SELECTION} of `skyops monitor label export`",
            hint="export the job again",
            problems=problems,
        )
    )


def import_labels(job: Path, labels: Path, store: DatasetStore, base: DatasetVersion) -> DatasetVersion:
    """A new dataset version: `base` plus the images of `job` labelled in `labels` (a Ground Truth output manifest).

    Raises:
        ConvertFailed: the manifest has refused findings (all listed: bad JSON, an unknown class, a box off the image,
            a source-ref outside the job folder, ...).
        DataValidationError: classes differ from `base`'s, labels for images not in this job, nothing labelled, or
            already imported.
    """
    from skyops.data.convert import convert

    job = Path(job).resolve()
    selection = read_selection(job)
    names = list(Manifest.read(base.path).names)
    if names != selection["names"]:
        raise DataValidationError(
            f"the job {selection['job']} was exported for classes {selection['names']}, the base dataset {base.label} has {names}",
            hint="import onto the dataset the job was exported for (--base)",
        )
    store.root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".import-", dir=store.root))  # beside the versions: hard links work
    try:
        # The manifest is read from a copy: the converter refuses a target inside the source's folder, and the
        # labeller's folder may well hold the state folder (a manifest saved at the project's root).
        manifest = _manifest_file(Path(labels))
        (scratch / "labels").mkdir()
        shutil.copyfile(manifest, scratch / "labels" / manifest.name)
        converted = scratch / "labelled"
        report = convert(
            scratch / "labels" / manifest.name, converted, "groundtruth", names=names, images_dir=job, s3_prefix=selection.get("s3_prefix")
        )
        expected = {i["source_ref"] for i in selection["items"] if isinstance(i, dict)}
        foreign = sorted(r.source for r in Manifest.read(converted).images if r.source not in expected)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise DataValidationError(
                f"{labels} labels {len(foreign)} image(s) that job {selection['job']} did not export: {shown}",
                hint="import each job's labels with its own folder (--job)",
            )
        if report.images == 0:
            raise DataValidationError(f"{labels} labels no image of job {selection['job']}", hint="is the labelling job finished?")
        return store.grow(base, converted, labels_manifest=manifest.resolve(), job=selection["job"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _manifest_file(labels: Path) -> Path:
    """The output manifest: `labels` itself, or the one *.manifest in the folder `labels`."""
    if labels.is_file():
        return labels
    found = sorted(labels.glob("*.manifest")) if labels.is_dir() else []
    if len(found) != 1:
        raise ConfigError(
            f"expected a Ground Truth output manifest, or a folder with exactly one *.manifest; {labels} has {len(found)}",
            hint="give the output.manifest file itself",
        )
    return found[0]
