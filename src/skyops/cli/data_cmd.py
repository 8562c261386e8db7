"""`skyops data convert|validate|profile|split|synth`: the data steps' logic, by hand, on folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from skyops.cli.usage import SkyopsGroup

app = typer.Typer(
    help="Work on datasets directly: convert to the canonical YOLO layout, validate, profile, split, synthesise.",
    cls=SkyopsGroup,
    no_args_is_help=True,
)

Source = Annotated[Path, typer.Argument(help="Dataset folder (or COCO JSON / Ground Truth manifest).", exists=True, metavar="SOURCE")]
Dataset = Annotated[
    Path,
    typer.Argument(
        help="A dataset in the canonical layout (manifest.json, images/, labels/).", exists=True, file_okay=False, metavar="DATASET"
    ),
]
# The formats `skyops.data.convert` reads (kept here so that `--help` imports no data code; a test compares them).
SourceFormat = Literal["auto", "visdrone", "coco", "voc", "groundtruth", "yolo"]
Target = Annotated[Path, typer.Argument(help="Output folder; must not exist (or be empty). Written atomically.", metavar="TARGET")]


@app.command()
def convert(
    source: Source,
    target: Target,
    format: Annotated[
        SourceFormat, typer.Option("--format", "-f", case_sensitive=False, help="The source's format (any case); auto detects it.")
    ] = "auto",
    classes: Annotated[str, typer.Option(help="Comma-separated target class names (default: the source's).")] = "",
    keep_ignored: Annotated[bool, typer.Option(help="Keep boxes the source marks as ignored (VisDrone 0/11, score 0).")] = False,
    images_dir: Annotated[Path | None, typer.Option(help="Where COCO file names / Ground Truth source-refs resolve.")] = None,
    s3_prefix: Annotated[str | None, typer.Option(help="s3://bucket/prefix/ stripped from Ground Truth source-refs.")] = None,
    workers: Annotated[int, typer.Option(help="Processes; 0 = one per CPU.", min=0)] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Replace TARGET if it exists (the old one goes only once the new one is complete).")
    ] = False,
) -> None:
    """Convert a VisDrone, COCO, VOC, Ground Truth or YOLO dataset into the canonical YOLO layout.

    Example: skyops data convert ../shared/datasets/visdrone-sample out/visdrone --format visdrone
    """
    from skyops.data.convert import convert as run_convert

    report = run_convert(
        source,
        target,
        None if format == "auto" else format,
        names=[c.strip() for c in classes.split(",") if c.strip()] or None,
        keep_ignored=keep_ignored,
        workers=workers or None,
        overwrite=overwrite,
        images_dir=images_dir,
        s3_prefix=s3_prefix,
    )
    print(report.summary())  # counts, the first findings (file, line, rule) and where the full report is


@app.command()
def validate(
    dataset: Dataset,
    target: Annotated[
        Path | None, typer.Argument(help="Optional: write the dataset minus quarantined images here.", metavar="TARGET")
    ] = None,
    max_invalid: Annotated[float, typer.Option(help="Fail when more than this fraction of images is quarantined.", min=0, max=1)] = 0.05,
    min_side: Annotated[int, typer.Option(help="Quarantine images whose shorter side is below this many pixels.", min=1)] = 32,
    decode: Annotated[bool, typer.Option(help="Decode every image fully (slower; finds corruption inside the data).")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the JSON report (every finding) to this file.")] = None,
) -> None:
    """Check every image and label; list findings by rule with a fix each; quarantine, never delete.

    Exits 1 when more than --max-invalid of the images are quarantined.
    Example: skyops data validate out/visdrone out/visdrone-valid --report validation.json
    """
    from skyops.data.validate import ValidationFailed, ValidationPolicy, summary, write_validated
    from skyops.data.validate import validate as run_validate

    try:
        result = run_validate(dataset, ValidationPolicy(max_invalid_fraction=max_invalid, min_side=min_side, decode=decode))
    except ValidationFailed as failed:
        if report:
            report.write_text(json.dumps(failed.report.to_json(), indent=1))
        raise
    if report:
        report.write_text(json.dumps(result.to_json(), indent=1))
    print(summary(result))
    if target:
        write_validated(dataset, target, result)
        print(f"validated dataset ({result.images - len(result.quarantined)} images) -> {target}")


@app.command()
def profile(dataset: Dataset, target: Target, workers: Annotated[int, typer.Option(min=1)] = 2) -> None:
    """Profile a dataset: profile.json (the monitoring baseline), plots/ and profile.html."""
    from skyops.data.profile import profile_dataset

    doc = profile_dataset(dataset, target, workers=workers)
    print(f"profiled {doc['dataset']['images']} images, {doc['dataset']['boxes']} boxes -> {target / 'profile.html'}")


@app.command()
def split(
    dataset: Dataset,
    target: Target,
    ratios: Annotated[str, typer.Option(help="train,val,test fractions of the images.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Same seed, same lists.")] = 0,
) -> None:
    """Split into train/val/test keeping related frames (sequences, augmented copies) on one side."""
    from skyops.data.split import split_dataset
    from skyops.errors import ConfigError

    try:
        values = [float(r) for r in ratios.split(",")]
    except ValueError:
        raise ConfigError(f"--ratios {ratios!r} is not three comma-separated numbers", hint="e.g. --ratios 0.8,0.1,0.1") from None
    report = split_dataset(dataset, target, ratios=values, seed=seed)
    for side, counts in report.counts.items():
        print(f"{side:5} {counts.images:6} images {counts.boxes:8} boxes")
    print(f"leakage check: {'clean' if report.leakage.clean else json.dumps(report.leakage.__dict__)}")


@app.command()
def synth(
    target: Target,
    count: Annotated[int, typer.Option(help="Number of images.", min=1)] = 100,
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=64)] = 256,
    seed: Annotated[int, typer.Option(help="Same seed, byte-identical scenes.")] = 0,
    preview: Annotated[bool, typer.Option(help="Also write TARGET-preview.png with boxes drawn.")] = False,
) -> None:
    """Generate synthetic top-down aerial scenes with exact labels (the embedded default data)."""
    from rich.progress import Progress

    from skyops.data.synth import generate_scenes
    from skyops.data.synth import preview as draw_preview

    with Progress(transient=True) as bar:
        bar.add_task(f"drawing {count} scenes", total=None)
        manifest = generate_scenes(target, count, size=size, seed=seed)
    print(f"{len(manifest.images)} scenes, {sum(r.boxes for r in manifest.images)} boxes -> {target}")
    if preview:
        print(f"preview: {draw_preview(target, target.with_name(target.name + '-preview.png'))}")
