"""`skyops data convert|validate|profile|split|tile|synth`: the data steps' logic, by hand, on folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args

import click

from skyops.cli.params import Choice, ExistingPath, FiniteRange, Integer, IntegerRange, argument
from skyops.cli.usage import SkyopsGroup

app = SkyopsGroup(
    "data",
    help="Work on datasets directly: convert to the canonical YOLO layout, validate, profile, split, tile, synthesise.",
    no_args_is_help=True,
)

# The formats `skyops.data.convert` reads (kept here so that `--help` imports no data code; a test compares them).
SourceFormat = Literal["auto", "visdrone", "coco", "voc", "groundtruth", "yolo", "dota", "dior"]
AnyPath = click.Path(path_type=Path)

source_argument = argument("source", type=ExistingPath(), metavar="SOURCE", help="Dataset folder (or COCO JSON / Ground Truth manifest).")
dataset_argument = argument(
    "dataset",
    type=ExistingPath(file_okay=False),
    metavar="DATASET",
    help="A dataset in the canonical layout (manifest.json, images/, labels/).",
)
target_argument = argument(
    "target", type=AnyPath, metavar="TARGET", help="Output folder; must not exist (or be empty). Written atomically."
)


@app.command()
@source_argument
@target_argument
@click.option(
    "--format",
    "-f",
    type=Choice(get_args(SourceFormat), case_sensitive=False),
    default="auto",
    help="The source's format (any case); auto detects it.",
)
@click.option("--classes", default="", show_default=False, help="Comma-separated target class names (default: the source's).")
@click.option("--keep-ignored/--no-keep-ignored", default=False, help="Keep boxes the source marks as ignored (VisDrone 0/11, score 0).")
@click.option("--obb/--no-obb", default=False, help="Also write YOLO-OBB labels (labels-obb/) of a DOTA source's oriented boxes.")
@click.option("--images-dir", type=AnyPath, help="Where COCO file names / Ground Truth source-refs resolve.")
@click.option("--s3-prefix", help="s3://bucket/prefix/ stripped from Ground Truth source-refs.")
@click.option("--workers", type=IntegerRange(min=0), default=0, help="Processes; 0 = one per CPU.")
@click.option(
    "--overwrite/--no-overwrite", default=False, help="Replace TARGET if it exists (the old one goes only once the new one is complete)."
)
def convert(
    source: Path,
    target: Path,
    format: str,
    classes: str,
    keep_ignored: bool,
    obb: bool,
    images_dir: Path | None,
    s3_prefix: str | None,
    workers: int,
    overwrite: bool,
) -> None:
    """Convert a VisDrone, COCO, VOC, Ground Truth, YOLO, DOTA or DIOR dataset into the canonical YOLO layout.

    Example: skyops data convert ../shared/datasets/visdrone-sample out/visdrone --format visdrone
    """
    from skyops.data.convert import convert as run_convert

    report = run_convert(
        source,
        target,
        None if format == "auto" else format,
        names=[c.strip() for c in classes.split(",") if c.strip()] or None,
        keep_ignored=keep_ignored,
        obb=obb,
        workers=workers or None,
        overwrite=overwrite,
        images_dir=images_dir,
        s3_prefix=s3_prefix,
    )
    print(report.summary())  # counts, the first findings (file, line, rule) and where the full report is


@app.command()
@dataset_argument
@argument("target", type=AnyPath, required=False, metavar="TARGET", help="Optional: write the dataset minus quarantined images here.")
@click.option(
    "--max-invalid", type=FiniteRange(min=0, max=1), default=0.05, help="Fail when more than this fraction of images is quarantined."
)
@click.option("--min-side", type=IntegerRange(min=1), default=32, help="Quarantine images whose shorter side is below this many pixels.")
@click.option("--decode/--no-decode", default=False, help="Decode every image fully (slower; finds corruption inside the data).")
@click.option("--report", type=AnyPath, help="Write the JSON report (every finding) to this file.")
def validate(dataset: Path, target: Path | None, max_invalid: float, min_side: int, decode: bool, report: Path | None) -> None:
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
@dataset_argument
@target_argument
@click.option("--workers", type=IntegerRange(min=1), default=2)
def profile(dataset: Path, target: Path, workers: int) -> None:
    """Profile a dataset: profile.json (the monitoring baseline), plots/ and profile.html."""
    from skyops.data.profile import profile_dataset

    doc = profile_dataset(dataset, target, workers=workers)
    print(f"profiled {doc['dataset']['images']} images, {doc['dataset']['boxes']} boxes -> {target / 'profile.html'}")


@app.command()
@dataset_argument
@target_argument
@click.option("--ratios", default="0.8,0.1,0.1", help="train,val,test fractions of the images.")
@click.option("--seed", type=Integer(), default=0, help="Same seed, same lists.")
def split(dataset: Path, target: Path, ratios: str, seed: int) -> None:
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
@dataset_argument
@target_argument
@click.option("--size", type=IntegerRange(min=32), default=640, help="Tile side in pixels.")
@click.option(
    "--overlap", type=FiniteRange(min=0), default=0.2, help="Overlap of neighbouring tiles: pixels if >= 1, else a fraction of --size."
)
@click.option("--min-visible", type=FiniteRange(min=0, max=1), default=0.5, help="Keep a box in a tile when this share of it is inside.")
@click.option("--empty-fraction", type=FiniteRange(min=0, max=1), default=0.1, help="Share of the tiles without boxes that is kept.")
@click.option("--seed", type=Integer(), default=0, help="Seeds the choice of empty tiles.")
@click.option("--workers", type=IntegerRange(min=0), default=0, help="Processes; 0 = one per CPU.")
def tile(
    dataset: Path, target: Path, size: int, overlap: float, min_visible: float, empty_fraction: float, seed: int, workers: int
) -> None:
    """Cut large frames into overlapping tiles for training; tiles.json records where each came from (docs/data.md)."""
    from skyops.data.tiling import TileSettings, tile_dataset

    settings = TileSettings(size=size, overlap=overlap, min_visible=min_visible, empty_tile_fraction=empty_fraction, seed=seed)
    report = tile_dataset(dataset, target, settings, workers=workers or None)
    print(
        f"{report.images} images -> {report.tiles} tiles in {target} ({report.tiles_with_boxes} with boxes, "
        f"{report.empty_tiles_kept} of {report.empty_tiles} empty ones kept)"
    )
    print(f"boxes: {report.box_tiles} in tiles ({report.boxes_clipped} clipped); {report.boxes_lost} of {report.boxes} in no tile")


@app.command()
@target_argument
@click.option("--count", type=IntegerRange(min=1), default=100, help="Number of images.")
@click.option("--size", type=IntegerRange(min=64), default=256, help="Image side in pixels.")
@click.option("--seed", type=Integer(), default=0, help="Same seed, byte-identical scenes.")
@click.option("--preview/--no-preview", default=False, help="Also write TARGET-preview.png with boxes drawn.")
def synth(target: Path, count: int, size: int, seed: int, preview: bool) -> None:
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
